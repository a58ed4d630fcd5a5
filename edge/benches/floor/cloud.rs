//! The cloud-only scanner app: what the same scan costs when a scanner asks Odoo directly
//! (`search_read` the product by barcode, `write` the move line), with a per-call profile of
//! Odoo's processing and the WAN on top of the simulator's own answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast::store::Store;
use holdfast_sync::odoo::OdooClient;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::client::Seen;
use crate::run::{Run, Snapshot};

/// What a cloud-only scanner waits for on top of the simulator's own answer, per call.
#[derive(Clone, Copy, Debug)]
pub struct CloudProfile {
    /// Odoo's processing of a `search_read` of a product by barcode.
    pub search_read: Duration,
    /// Odoo's processing of a `write` on a move line.
    pub write: Duration,
    /// The WAN round trip, added to every call.
    pub wan: Duration,
}

impl CloudProfile {
    /// The flat profile: 30 ms per call, the simulator's processing only.
    pub const FLAT: CloudProfile = CloudProfile {
        search_read: Duration::ZERO,
        write: Duration::ZERO,
        wan: Duration::from_millis(30),
    };

    /// What a real Odoo 18 took on this machine (ODOO.md: search_read ~31 ms, move-line
    /// write ~62 ms) plus 20 ms of WAN per call; each figure can be set in milliseconds with
    /// `HOLDFAST_BENCH_ODOO_SEARCH_MS`, `HOLDFAST_BENCH_ODOO_WRITE_MS`, `HOLDFAST_BENCH_WAN_MS`.
    pub fn real_odoo() -> CloudProfile {
        let ms = |name: &str, default: u64| {
            Duration::from_millis(
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default),
            )
        };
        CloudProfile {
            search_read: ms("HOLDFAST_BENCH_ODOO_SEARCH_MS", 31),
            write: ms("HOLDFAST_BENCH_ODOO_WRITE_MS", 62),
            wan: ms("HOLDFAST_BENCH_WAN_MS", 20),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "search_read +{} ms, write +{} ms, WAN +{} ms per call",
            self.search_read.as_millis(),
            self.write.as_millis(),
            self.wan.as_millis()
        )
    }
}

pub struct CloudScanner {
    pub client: OdooClient,
    /// `barcode` or `default_code`.
    pub field: &'static str,
    pub code: String,
    pub product_id: i64,
    pub line_id: i64,
    pub quantity: f64,
    pub profile: CloudProfile,
}

impl CloudScanner {
    /// Resolves the barcode, then records the pick on the move line.
    pub async fn scan(&mut self) -> Result<(), String> {
        let found = self
            .client
            .search_read(
                "product.product",
                json!([[self.field, "=", self.code]]),
                &["id"],
                "id",
                Some(1),
            )
            .await
            .map_err(|e| format!("search_read {}: {e}", self.code))?;
        tokio::time::sleep(self.profile.search_read + self.profile.wan).await;
        let id = found
            .first()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_i64);
        if id != Some(self.product_id) {
            return Err(format!(
                "{} resolved to {id:?}, not {}",
                self.code, self.product_id
            ));
        }
        self.quantity += 1.0;
        self.client
            .write(
                "stock.move.line",
                &[self.line_id],
                json!({"quantity": self.quantity, "picked": true}),
            )
            .await
            .map_err(|e| format!("write stock.move.line {}: {e}", self.line_id))?;
        tokio::time::sleep(self.profile.write + self.profile.wan).await;
        Ok(())
    }

    pub async fn run(mut self, warmup: u64, start: Arc<Barrier>, scans: u64) -> Seen {
        let mut seen = Seen::default();
        for _ in 0..warmup {
            if let Err(e) = self.scan().await {
                seen.failed(e);
            }
        }
        start.wait().await;
        for _ in 0..scans {
            let t = Instant::now();
            let result = self.scan().await;
            seen.latencies.push(t.elapsed());
            if let Err(e) = result {
                seen.failed(e);
            }
        }
        seen
    }
}

pub async fn cloud_run(
    store: &Store,
    scanners: Vec<CloudScanner>,
    warmup: u64,
    scans: u64,
    label: String,
) -> Run {
    let start = Arc::new(Barrier::new(scanners.len() + 1));
    let tasks: Vec<_> = scanners
        .into_iter()
        .map(|s| tokio::spawn(s.run(warmup, start.clone(), scans)))
        .collect();
    start.wait().await;
    let before = Snapshot::take(store);
    let started = Instant::now();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    Run::new(label, seen, elapsed, before, Snapshot::take(store))
}
