//! Odoo behind a keep-alive reverse proxy (nginx, Azure Application Gateway, Front Door)
//! whose path dies silently: the appliance's pooled connections stay open and nothing
//! answers. The mode must say offline within 15 s with the default settings, and come back
//! (and the pull succeed again) soon after the path does.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use holdfast::config::RawConfig;
use holdfast::store::{Store, StoreOptions};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::sim::proxy::{FaultProxy, Link};
use holdfast_sync::sim::{SimConfig, Simulator};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The site manager's token in this test's config.
const MANAGER: &str = "outage-manager-token-0123456789";

/// The appliance's status, as a site manager's tools read it.
async fn status(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/api/v1/status"))
        .bearer_auth(MANAGER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Reads status until `done` holds; returns the last status and how long it took.
async fn until(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let s = status(http, base).await;
        if done(&s) {
            return (s, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "not {what} after {limit:?}: mode {} ({})",
            s["mode"],
            s["mode_reason"]
        );
        // Status is read every 100 ms: the figures below are that precise.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_black_hole_behind_a_keep_alive_proxy_is_offline_within_15_s() {
    let sim = Simulator::start(
        SimConfig::default(),
        &Dataset::generate(&DatasetSpec::demo()),
    )
    .await
    .unwrap();
    let upstream = sim.url().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start_keep_alive(upstream).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = sim.config();
    // Default time-outs and probe period: the 15 s bound holds for a site as shipped.
    let text = format!(
        "[site]\nid = \"outage\"\n[store]\npath = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\nmanager_token = \"{MANAGER}\"\n\
         [sync]\npull_interval_secs = 5\n\
         [odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\n",
        dir.path().join("h.db").display(),
        proxy.url(),
        c.database,
        c.login,
        c.api_key
    );
    let config = RawConfig::from_toml(&text).unwrap().validate().unwrap();
    let store = Store::open(StoreOptions::new(config.store.path.clone(), "outage")).unwrap();
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let appliance = tokio::spawn({
        let stop = stop.clone();
        async move { holdfast::runtime::run_until(&config, store, listener, None, stop).await }
    });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let (s, _) = until(&http, &base, "online", Duration::from_secs(30), |s| {
        s["mode"] == "online" && s["pull"]["last_ok_at"].is_i64()
    })
    .await;
    assert_eq!(s["source"], "appliance");
    assert!(
        s.get("mode_reason").is_none(),
        "online needs no reason: {s}"
    );
    // The keep-alive path is real: the appliance reused pooled connections.
    let (connections, requests) = (proxy.connections(), proxy.requests());
    assert!(
        requests > connections,
        "{requests} requests over {connections} connections: nothing was pooled"
    );

    proxy.set(Link::Stall);
    let (s, detected) = until(&http, &base, "offline", Duration::from_secs(30), |s| {
        s["mode"] == "offline"
    })
    .await;
    println!(
        "silent black hole behind a keep-alive proxy: offline after {:.1} s ({requests} requests over {connections} pooled connections before)",
        detected.as_secs_f64()
    );
    assert!(
        detected <= Duration::from_secs(15),
        "offline only after {detected:?}"
    );
    assert!(
        s["mode_reason"]
            .as_str()
            .is_some_and(|r| r == "odoo unreachable: health probe: no answer within 3.0 s"),
        "{s}"
    );

    proxy.set(Link::Up);
    let restored = Instant::now();
    let (_, back) = until(&http, &base, "back", Duration::from_secs(15), |s| {
        s["mode"] != "offline"
    })
    .await;
    // The pull's next attempt must not sit on a connection the outage killed.
    let (s, pulled) = until(&http, &base, "pulled again", Duration::from_secs(30), |s| {
        s["pull"]["last_ok_at"].as_i64().is_some_and(|at| {
            at >= holdfast::store::now_ms() - restored.elapsed().as_millis() as i64
        })
    })
    .await;
    println!(
        "link restored: sending again after {:.1} s, mirror pulled again after {:.1} s (mode {})",
        back.as_secs_f64(),
        (back + pulled).as_secs_f64(),
        s["mode"]
    );
    assert!(back <= Duration::from_secs(5), "back only after {back:?}");
    assert!(
        back + pulled <= Duration::from_secs(20),
        "pulled again only after {:?}",
        back + pulled
    );

    stop.cancel();
    appliance.await.unwrap().unwrap();
}
