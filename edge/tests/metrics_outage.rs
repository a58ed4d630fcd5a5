//! What central ops sees of an outage, through a real Prometheus: the appliance (in process)
//! reaches the Odoo simulator through a fault proxy, Debian's Prometheus scrapes its
//! `/metrics` every second, and the test reads Prometheus's query API, not the appliance.
//!
//! The link is cut (a black hole behind a keep-alive reverse proxy) while the floor keeps
//! counting: Prometheus must show the site offline, the counts pending and the oldest one's
//! age. The link comes back: Prometheus must show the journal drained (every count applied,
//! none pending or in flight), Odoo calls that succeeded, and the site online again.
//!
//! Probes are fast here (`push.probe_secs = 0.2`, `odoo.probe_timeout_secs = 0.5`) so the
//! outage is found within about 2 s; `edge/tests/outage.rs` holds the shipped defaults to
//! their 15 s bound. Its own test binary: the push call counter is the process's, so what
//! it shows here is this appliance's alone. Under `CI=true` a missing Prometheus fails;
//! elsewhere the test skips with a message.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/prometheus.rs"]
mod prometheus;

use std::time::{Duration, Instant};

use holdfast::config::RawConfig;
use holdfast::store::{Lane, NewEntry, Store, StoreOptions};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::ops::{CountOp, Operation};
use holdfast_sync::records::{LocationUsage, Tracking, WarehouseId};
use holdfast_sync::sim::proxy::{FaultProxy, Link};
use holdfast_sync::sim::{SimConfig, Simulator};
use prometheus::{Prometheus, single};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "metrics-outage-manager-token-0123";

/// How long each wait on Prometheus may take.
const LIMIT: Duration = Duration::from_secs(30);

/// Counts on `n` untracked quants of the site's warehouse, each its own product and bin (so
/// its own causal key), one more than Odoo holds.
fn counts(data: &Dataset, n: usize) -> Vec<CountOp> {
    let mut products = Vec::new();
    let mut bins = Vec::new();
    let mut counts = Vec::new();
    for q in &data.quants {
        let product = data.products.iter().find(|p| p.id == q.product_id).unwrap();
        let bin = data
            .locations
            .iter()
            .find(|l| l.id == q.location_id)
            .unwrap();
        if product.tracking != Tracking::None
            || bin.usage != LocationUsage::Internal
            || bin.warehouse_id != Some(WarehouseId(1))
            || q.lot_id.is_some()
            || q.package_id.is_some()
            || products.contains(&q.product_id)
            || bins.contains(&q.location_id)
        {
            continue;
        }
        products.push(q.product_id);
        bins.push(q.location_id);
        counts.push(CountOp {
            product_id: q.product_id.get(),
            location_id: q.location_id.get(),
            lot_name: None,
            counted: q.quantity + 1.0,
            expected: q.quantity,
        });
        if counts.len() == n {
            return counts;
        }
    }
    panic!("the demo data set has fewer than {n} untracked quants on distinct bins");
}

/// The journal's figure for `state` in a `holdfast_journal_entries` result.
fn entries(result: &[Value], state: &str) -> Option<f64> {
    result.iter().find(|s| s["metric"]["state"] == state)?["value"][1]
        .as_str()?
        .parse()
        .ok()
}

fn is(expected: f64) -> impl Fn(&[Value]) -> bool {
    move |result| single(result) == Some(expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_an_outage_and_the_drain_after_it() {
    let Some(binary) = prometheus::required() else {
        return;
    };
    let data = Dataset::generate(&DatasetSpec::demo());
    let made = counts(&data, 3);
    let sim = Simulator::start(SimConfig::default(), &data).await.unwrap();
    let upstream = sim.url().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start_keep_alive(upstream).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = sim.config();
    let text = format!(
        "[site]\nid = \"outage-metrics\"\n[store]\npath = \"{}\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\nmanager_token = \"{MANAGER}\"\n\
         [sync]\npull_interval_secs = 5\n\
         [push]\nprobe_secs = 0.2\nretry_max_secs = 5\n\
         [odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\n\
         timeout_secs = 2\nprobe_timeout_secs = 0.5\n",
        dir.path().join("h.db").display(),
        proxy.url(),
        c.database,
        c.login,
        c.api_key
    );
    let config = RawConfig::from_toml(&text).unwrap().validate().unwrap();
    let store = Store::open(StoreOptions::new(
        config.store.path.clone(),
        "outage-metrics",
    ))
    .unwrap();
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let appliance = tokio::spawn({
        let (stop, store) = (stop.clone(), store.clone());
        async move { holdfast::runtime::run_until(&config, store, listener, None, stop).await }
    });
    let prometheus = Prometheus::start(&binary, addr, None);

    // Before: Prometheus scrapes a site that is online with nothing to send.
    prometheus
        .until("holdfast_mode{mode=\"online\"}", LIMIT, is(1.0))
        .await;
    prometheus
        .until(
            "holdfast_journal_entries{state=\"pending\"}",
            LIMIT,
            is(0.0),
        )
        .await;

    // The link dies silently behind the proxy; the floor keeps counting.
    proxy.set(Link::BlackHole);
    let cut = Instant::now();
    for op in &made {
        store
            .append(
                Lane::Device,
                NewEntry {
                    id: None,
                    device: "h1".into(),
                    operator: Some("anna".into()),
                    op: Operation::Count(op.clone()),
                },
            )
            .await
            .unwrap();
    }
    let n = made.len() as f64;
    prometheus
        .until("holdfast_mode{mode=\"offline\"}", LIMIT, is(1.0))
        .await;
    let offline = cut.elapsed();
    // A count sent before the outage was found waits out its call's time-out, then pending.
    prometheus
        .until("holdfast_journal_entries{state=\"pending\"}", LIMIT, is(n))
        .await;
    let pending = cut.elapsed();
    let (age, _) = prometheus
        .until("holdfast_oldest_pending_age_seconds", LIMIT, |r| {
            single(r).is_some_and(|age| age > 0.0)
        })
        .await;
    let age = single(&age).unwrap();
    // The oldest count's age, not the site's uptime (a scrape is at most ~1 s old).
    assert!(
        age <= cut.elapsed().as_secs_f64() + 1.0,
        "oldest pending {age} s, {:?} after the cut",
        cut.elapsed()
    );
    let still = prometheus
        .query("holdfast_mode{mode=\"offline\"}")
        .await
        .unwrap();
    assert_eq!(
        single(&still),
        Some(1.0),
        "offline while pending: {still:?}"
    );

    // The link comes back: the counts drain and the site is online again.
    proxy.set(Link::Up);
    let restored = Instant::now();
    let (journal, _) = prometheus
        .until("holdfast_journal_entries", LIMIT, |r| {
            entries(r, "applied") == Some(n)
                && entries(r, "pending") == Some(0.0)
                && entries(r, "in_flight") == Some(0.0)
        })
        .await;
    let drained = restored.elapsed();
    for state in ["conflict", "rejected"] {
        assert_eq!(entries(&journal, state), Some(0.0), "{state}: {journal:?}");
    }
    prometheus
        .until("holdfast_oldest_pending_age_seconds", LIMIT, is(0.0))
        .await;
    // The series appears at the first call: its value, not `increase`, counts the drain.
    let (calls, _) = prometheus
        .until(
            "sum(holdfast_push_calls_total{outcome=\"ok\"})",
            LIMIT,
            |r| single(r).is_some_and(|v| v > 0.0),
        )
        .await;
    let calls = single(&calls).unwrap();
    prometheus
        .until("holdfast_mode{mode=\"online\"}", LIMIT, is(1.0))
        .await;
    let online = restored.elapsed();
    let outcomes: Vec<String> = prometheus
        .query("sum by (outcome) (holdfast_push_calls_total)")
        .await
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["metric"]["outcome"].as_str().unwrap(),
                s["value"][1].as_str().unwrap()
            )
        })
        .collect();
    println!(
        "prometheus: link cut → offline seen after {:.1} s, {} counts pending seen after {:.1} s (oldest {age:.1} s old)",
        offline.as_secs_f64(),
        made.len(),
        pending.as_secs_f64()
    );
    println!(
        "prometheus: link restored → drained seen after {:.1} s ({calls} push calls ok; by outcome: {}), online seen after {:.1} s",
        drained.as_secs_f64(),
        outcomes.join(", "),
        online.as_secs_f64()
    );

    drop(prometheus);
    stop.cancel();
    appliance.await.unwrap().unwrap();
}
