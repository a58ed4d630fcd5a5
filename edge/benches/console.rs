//! The site manager's console on the full benchmark data set (the store benchmark's large
//! mirror: 100,000 products, 500,000 quants, 2,000 pickings, at `HOLDFAST_BENCH_SCALE` 1):
//! the overview page and its live JSON, loaded 200 times each over one keep-alive
//! connection, p50/p99 against `/healthz` in the same run (the cost of the HTTP path itself).
//!
//! `cargo bench -p holdfast --bench console`

// Benchmark code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use holdfast::floor::{Floor, sha256_hex};
use holdfast::http::AppState;
use holdfast::status::SiteStatus;
use holdfast::store::{ManagerCmd, NewAudit, Store, StoreOptions};
use holdfast::workflow::FloorPolicy;
use holdfast_sync::dataset::{Dataset, DatasetSpec};

const LOADS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn loads(http: &reqwest::Client, url: &str, cookie: &str) -> (Duration, Duration, usize) {
    // One warm-up load (templates parsed, statements prepared).
    let first = http.get(url).header("cookie", cookie).send().await.unwrap();
    assert!(first.status().is_success(), "{url}: {}", first.status());
    let bytes = first.bytes().await.unwrap().len();
    let mut times = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let started = Instant::now();
        let answer = http.get(url).header("cookie", cookie).send().await.unwrap();
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        answer.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), bytes)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let scale: f64 = std::env::var("HOLDFAST_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("console.db"), "bench")).unwrap();
    let spec = DatasetSpec {
        seed: 1,
        products: (100_000.0 * scale) as usize,
        quants: (500_000.0 * scale) as usize,
        pickings: (2_000.0 * scale) as usize,
    };
    let data = Dataset::generate(&spec);
    let records = rt.block_on(holdfast::demo::load(&store, &data)).unwrap();

    // A signed-in manager: the session a browser would hold.
    let token = "console-benchmark-session-token";
    rt.block_on(async {
        let audit = NewAudit {
            actor: "bench".into(),
            action: "manager.add".into(),
            target: None,
            detail: serde_json::json!({}),
        };
        store
            .managers(ManagerCmd::Add {
                name: "bench".into(),
                role: "manager".into(),
                password_hash: "not-used".into(),
                audit: audit.clone(),
            })
            .await
            .unwrap();
        let now = holdfast::store::now_ms();
        store
            .managers(ManagerCmd::OpenSession {
                token_sha256: sha256_hex(token.as_bytes()),
                manager: "bench".into(),
                now,
                stale_before: 0,
                born_before: 0,
                audit,
            })
            .await
            .unwrap();
    });
    let cookie = format!("{}={token}", holdfast::managers::COOKIE);
    let floor = Floor::new(store.clone(), FloorPolicy::default(), None, vec![]);
    let state = AppState {
        ..AppState::new(
            store.clone(),
            floor,
            SiteStatus {
                id: "bench".into(),
                name: "Console benchmark".into(),
            },
        )
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = rt.spawn(holdfast::http::serve(listener, state, shutdown.clone()));

    println!("holdfast console benchmark (scale {scale})");
    println!(
        "mirror: {records} records ({} products, {} quants, {} pickings)",
        spec.products, spec.quants, spec.pickings
    );
    rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://{addr}");
        let (h50, h99, _) = loads(&http, &format!("{base}/healthz"), "").await;
        println!("\n## {LOADS} loads each, one keep-alive connection");
        println!(
            "baseline GET /healthz            : p50 {:>7.2} ms  p99 {:>7.2} ms",
            ms(h50),
            ms(h99)
        );
        for (name, path) in [
            ("overview page GET /console/      ", "/console/"),
            (
                "overview JSON, the live refresh  ",
                "/console/overview.json",
            ),
            ("runbook page GET /console/runbook", "/console/runbook"),
        ] {
            let (p50, p99, bytes) = loads(&http, &format!("{base}{path}"), &cookie).await;
            println!(
                "{name}: p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.1}x / {:.1}x baseline, {bytes} bytes)",
                ms(p50),
                ms(p99),
                ms(p50) / ms(h50),
                ms(p99) / ms(h99),
            );
        }
    });
    shutdown.cancel();
    rt.block_on(server).unwrap().unwrap();
    rt.block_on(store.shutdown()).unwrap();
}
