//! `GET /metrics` and what central ops builds on it.
//!
//! - The figures follow the store and the floor: the journal gauge after entries are
//!   appended, the scan counter after a scan.
//! - Access: loopback open; from the LAN 403 without a configured token, 401 without or
//!   with a wrong token, 200 with it (a real connection from the host's own LAN address).
//! - The shipped rules and dashboard (`ops/`) name only metrics a running appliance exports:
//!   the appliance in process against the Odoo simulator, with a pull, a push, HTTP and TCP
//!   scans, a refused frame and a printer; then a real Prometheus scrapes it and its query
//!   API answers with `holdfast_*` series.
//! - `promtool check rules` and `promtool test rules` on the shipped rules (Debian's
//!   `prometheus` package, installed by `scripts/test.sh`; under `CI=true` a missing
//!   promtool or prometheus fails, elsewhere those parts skip with a message).

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/prometheus.rs"]
mod prometheus;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use holdfast::http::{AppState, ConnLimits, ServeOptions};
use holdfast::status::SiteStatus;
use holdfast::store::{Lane, NewEntry, Store, StoreOptions};
use holdfast_sync::ops::{CountOp, Operation};
use prometheus::{Prometheus, client, free_port, may_skip};
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "metrics-manager-token-0123456789";
const DEVICE: &str = "metrics-device-token-0123456789";
const SCRAPE: &str = "metrics-scrape-token-0123456789";

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops")
}

/// An HTTP-only appliance (no Odoo) on `bind`, with one handheld and `telemetry`.
struct Server {
    addr: SocketAddr,
    store: Store,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(bind: &str, telemetry: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[site]\nid = \"m\"\n[http]\nmanager_token = \"{MANAGER}\"\n\
             [[devices]]\nid = \"h1\"\ntoken = \"{DEVICE}\"\n{telemetry}"
        );
        let config = holdfast::config::RawConfig::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "m")).unwrap();
        let floor = holdfast::floor::Floor::new(
            store.clone(),
            Default::default(),
            None,
            config.devices.clone(),
        );
        let state = AppState {
            manager_token: config.http.manager_token.clone(),
            metrics_token: config.telemetry.metrics_token.clone(),
            ..AppState::new(
                store.clone(),
                floor,
                SiteStatus {
                    id: "m".into(),
                    name: "Metrics tests".into(),
                },
            )
        };
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(holdfast::http::serve_with(
            listener,
            state,
            ServeOptions {
                limits: ConnLimits::default(),
                public_status: false,
            },
            stop.clone(),
        ));
        Server {
            addr,
            store,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// `/metrics` from `base` (with `token`), as status and text.
async fn scrape(base: &str, token: Option<&str>) -> (u16, String) {
    let mut request = client().get(format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}

/// The value of the sample `series` (name and labels as rendered), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// The metric names with at least one sample in an exposition (histograms by their
/// `_bucket`, `_sum` and `_count` series, as queries name them).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// Every `holdfast_*` name in a query expression.
fn names_in(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("holdfast_") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // A name, not the tail of another identifier or a `holdfast:` recording rule.
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
            into.insert(expr[start..end].to_owned());
        }
        i = end;
    }
}

/// The metric names the shipped alerting rules and the Grafana dashboard query.
fn names_used_by_ops() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let rules = std::fs::read_to_string(ops_dir().join("prometheus/holdfast.rules.yml")).unwrap();
    let mut exprs = 0;
    for line in rules.lines() {
        if let Some(expr) = line.trim_start().strip_prefix("expr:") {
            names_in(expr, &mut names);
            exprs += 1;
        }
    }
    assert!(exprs >= 6, "only {exprs} rule expressions found");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ops_dir().join("grafana/holdfast.json")).unwrap(),
    )
    .unwrap();
    fn walk(v: &serde_json::Value, names: &mut BTreeSet<String>, n: &mut usize) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => {
                            names_in(e, names);
                            *n += 1;
                        }
                        ("query" | "definition", serde_json::Value::String(e)) => {
                            names_in(e, names)
                        }
                        _ => walk(v, names, n),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    walk(v, names, n);
                }
            }
            _ => {}
        }
    }
    let mut panels = 0;
    walk(&dashboard, &mut names, &mut panels);
    assert!(panels >= 10, "only {panels} dashboard queries found");
    names
}

#[test]
fn names_are_found_in_expressions() {
    let mut names = BTreeSet::new();
    names_in(
        "histogram_quantile(0.95, sum by (le) (rate(holdfast_scan_duration_seconds_bucket{x=\"holdfast_no\"}[5m]))) / holdfast:ratio + my_holdfast_x",
        &mut names,
    );
    let expected: BTreeSet<String> = ["holdfast_scan_duration_seconds_bucket", "holdfast_no"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_journal_and_the_floor() {
    let server = Server::start("127.0.0.1:0", "").await;
    let base = format!("http://{}", server.addr);
    let (status, text) = scrape(&base, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        value(&text, "holdfast_journal_entries{state=\"pending\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "holdfast_oldest_pending_age_seconds"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            &format!(
                "holdfast_build_info{{version=\"{}\",site=\"m\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{text}"
    );
    let modes: f64 = ["unknown", "online", "degraded", "offline"]
        .iter()
        .map(|m| value(&text, &format!("holdfast_mode{{mode=\"{m}\"}}")).unwrap())
        .sum();
    assert_eq!(modes, 1.0, "exactly one mode is current:\n{text}");
    assert!(value(&text, "holdfast_store_size_bytes").unwrap() > 0.0);
    assert!(value(&text, "holdfast_store_headroom_bytes").unwrap() > 0.0);

    for counted in [7.0, 8.0] {
        server
            .store
            .append(
                Lane::Device,
                NewEntry {
                    id: None,
                    device: "h1".into(),
                    operator: Some("anna".into()),
                    op: Operation::Count(CountOp {
                        product_id: 4,
                        location_id: 21,
                        lot_name: None,
                        counted,
                        expected: 9.0,
                    }),
                },
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, text) = scrape(&base, None).await;
    assert_eq!(
        value(&text, "holdfast_journal_entries{state=\"pending\"}"),
        Some(2.0),
        "{text}"
    );
    assert!(value(&text, "holdfast_oldest_pending_age_seconds").unwrap() > 0.0);

    // A scan on the handheld API (signed out: refused) counts as an HTTP scan, timed.
    let refused = "holdfast_scans_total{transport=\"http\",outcome=\"refused\"}";
    let latency = "holdfast_scan_duration_seconds_count{transport=\"http\",outcome=\"refused\"}";
    let before = value(&text, refused).unwrap_or(0.0);
    let before_timed = value(&text, latency).unwrap_or(0.0);
    let answer = client()
        .post(format!("{base}/api/v1/scan"))
        .bearer_auth(DEVICE)
        .header("Idempotency-Key", "scan-1")
        .json(&serde_json::json!({"code": "5901234123457"}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_client_error(), "{}", answer.status());
    let (_, text) = scrape(&base, None).await;
    // Other tests in this process scan too: at least this one was counted.
    assert!(value(&text, refused).unwrap() >= before + 1.0, "{text}");
    assert!(
        value(&text, latency).unwrap() >= before_timed + 1.0,
        "{text}"
    );
    assert!(text.contains("# TYPE holdfast_scan_duration_seconds histogram"));
    server.stop().await;
}

/// A local address other than loopback, if the host has one: the source address the kernel
/// would use towards a documentation network (no packet is sent by a UDP `connect`).
fn lan_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    ["198.51.100.1:9", "192.0.2.254:9", "10.255.255.254:9"]
        .iter()
        .find_map(|to| {
            socket.connect(to).ok()?;
            let ip = socket.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_from_the_lan_take_the_configured_token() {
    let Some(lan) = lan_address() else {
        if may_skip("a non-loopback network address") {
            return;
        }
        unreachable!()
    };
    // No token configured: loopback only.
    let server = Server::start("0.0.0.0:0", "").await;
    let on_lan = format!("http://{lan}:{}", server.addr.port());
    let on_loopback = format!("http://127.0.0.1:{}", server.addr.port());
    assert_eq!(scrape(&on_loopback, None).await.0, 200);
    let (status, body) = scrape(&on_lan, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("telemetry.metrics_token"), "{body}");
    assert_eq!(scrape(&on_lan, Some(SCRAPE)).await.0, 403);
    server.stop().await;

    let server = Server::start(
        "0.0.0.0:0",
        &format!("[telemetry]\nmetrics_token = \"{SCRAPE}\"\n"),
    )
    .await;
    let on_lan = format!("http://{lan}:{}", server.addr.port());
    let on_loopback = format!("http://127.0.0.1:{}", server.addr.port());
    let (status, body) = scrape(&on_lan, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(scrape(&on_lan, Some("not-the-scrape-token")).await.0, 401);
    // The manager's token is not the scrape token.
    assert_eq!(scrape(&on_lan, Some(MANAGER)).await.0, 401);
    let (status, text) = scrape(&on_lan, Some(SCRAPE)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("holdfast_journal_entries{state=\"pending\"} 0"));
    assert_eq!(scrape(&on_loopback, None).await.0, 200);
    server.stop().await;
}

#[test]
fn promtool_accepts_the_shipped_rules_and_their_unit_tests() {
    let promtool = Path::new("/usr/bin/promtool");
    if !promtool.exists() && may_skip("promtool") {
        return;
    }
    let dir = ops_dir().join("prometheus");
    for args in [
        ["check", "rules", "holdfast.rules.yml"],
        ["test", "rules", "holdfast.rules.test.yml"],
    ] {
        let out = std::process::Command::new(promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Polls `f` every 100 ms until it gives a value, for at most `limit`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < limit, "not {what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_appliance_exports_every_metric_the_shipped_rules_and_dashboard_use() {
    use holdfast_devices::printer::{FakeBehaviour, FakePrinter};
    use holdfast_sync::dataset::{Dataset, DatasetSpec};
    use holdfast_sync::sim::{SimConfig, Simulator};
    use tokio::io::AsyncWriteExt;

    let sim = Simulator::start(
        SimConfig::default(),
        &Dataset::generate(&DatasetSpec::demo()),
    )
    .await
    .unwrap();
    let printer = FakePrinter::start("127.0.0.1:0".parse().unwrap(), FakeBehaviour::Normal)
        .await
        .unwrap();
    let scanner_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let c = sim.config();
    let text = format!(
        "[site]\nid = \"metrics\"\n[store]\npath = \"{}\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\nmanager_token = \"{MANAGER}\"\n\
         [[devices]]\nid = \"h1\"\ntoken = \"{DEVICE}\"\n\
         [[scanners]]\nid = \"dock-1\"\ntransport = \"tcp-listen\"\naddress = \"127.0.0.1:{scanner_port}\"\n\
         [[printers]]\nid = \"dock\"\naddress = \"{}\"\npoll_secs = 0.2\n\
         [telemetry]\nmetrics_token = \"{SCRAPE}\"\n\
         [sync]\npull_interval_secs = 5\n\
         [odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\n",
        dir.path().join("h.db").display(),
        printer.addr(),
        sim.url(),
        c.database,
        c.login,
        c.api_key
    );
    let config = holdfast::config::RawConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap();
    let store = Store::open(StoreOptions::new(config.store.path.clone(), "metrics")).unwrap();
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let stop = CancellationToken::new();
    let appliance = tokio::spawn({
        let (stop, store) = (stop.clone(), store.clone());
        async move { holdfast::runtime::run_until(&config, store, listener, None, stop).await }
    });

    // Work for every kind of figure: a count pushed to Odoo, scans over HTTP and TCP, and an
    // overlong TCP frame refused before the floor.
    store
        .append(
            Lane::Device,
            NewEntry {
                id: None,
                device: "h1".into(),
                operator: Some("anna".into()),
                op: Operation::Count(CountOp {
                    product_id: 4,
                    location_id: 21,
                    lot_name: None,
                    counted: 7.0,
                    expected: 9.0,
                }),
            },
        )
        .await
        .unwrap();
    client()
        .post(format!("{base}/api/v1/scan"))
        .bearer_auth(DEVICE)
        .header("Idempotency-Key", "scan-1")
        .json(&serde_json::json!({"code": "5901234123457"}))
        .send()
        .await
        .unwrap();
    let mut scanner = until("scanner port open", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", scanner_port))
            .await
            .ok()
    })
    .await;
    scanner.write_all(b"5901234123457\r").await.unwrap();
    scanner
        .write_all(&[b'9'; holdfast_devices::scan::MAX_SCAN_LEN + 10])
        .await
        .unwrap();
    scanner.write_all(b"\r").await.unwrap();

    let used = names_used_by_ops();
    assert!(used.len() >= 15, "{used:?}");
    // Until a whole pull is done (the last model has its age) and every name is there, for
    // at most 30 s; then the names still missing are the failure.
    let started = Instant::now();
    let (text, missing) = loop {
        let (status, text) = scrape(&base, None).await;
        assert_eq!(status, 200, "{text}");
        let have = exported(&text);
        let missing: Vec<String> = used
            .iter()
            .filter(|n| !have.contains(*n))
            .cloned()
            .collect();
        let pulled = value(&text, "holdfast_pull_age_seconds{model=\"stock.picking\"}").is_some();
        if (pulled && missing.is_empty()) || started.elapsed() > Duration::from_secs(30) {
            break (text, missing);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        missing.is_empty(),
        "named by ops/ but not exported: {missing:?}\n{text}"
    );
    assert_eq!(
        value(&text, "holdfast_printer_up{printer=\"dock\"}"),
        Some(1.0)
    );

    // What a scrape costs on this site (demo data set, a pull done): printed, not judged.
    let mut took = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = scrape(&base, None).await;
        took.push(started.elapsed());
        assert_eq!(status, 200);
    }
    took.sort();
    println!(
        "/metrics: {} bytes, {} series, scrape p50 {:.1} ms, max {:.1} ms (20 scrapes)",
        text.len(),
        text.lines().filter(|l| !l.starts_with('#')).count(),
        took[10].as_secs_f64() * 1e3,
        took[19].as_secs_f64() * 1e3
    );

    prometheus_scrapes(addr).await;

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), appliance).await;
}

/// A real Prometheus scrapes the appliance at `addr` every second with the shipped rules
/// loaded; its query API answers with the journal's series and the target up, and its rules
/// API lists every shipped rule.
async fn prometheus_scrapes(addr: SocketAddr) {
    let Some(binary) = prometheus::required() else {
        return;
    };
    let rules_file = ops_dir().join("prometheus/holdfast.rules.yml");
    let server = Prometheus::start(&binary, addr, Some(&rules_file));
    let any = |result: &[serde_json::Value]| !result.is_empty();
    let (entries, first) = server
        .until("holdfast_journal_entries", Duration::from_secs(20), any)
        .await;
    let (up, _) = server
        .until("up{job=\"holdfast\"}", Duration::from_secs(10), any)
        .await;
    // The shipped rules loaded into the real server, every one of them.
    let rules = server.rules().await;
    drop(server);
    let shipped = std::fs::read_to_string(&rules_file)
        .unwrap()
        .matches("- alert:")
        .count();
    let loaded: usize = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert_eq!(loaded, shipped, "{rules}");
    println!(
        "prometheus: first holdfast series after {:.1} s",
        first.as_secs_f64()
    );
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let states: BTreeSet<_> = entries
        .iter()
        .map(|s| s["metric"]["state"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        states.contains("pending") && states.contains("applied"),
        "{states:?}"
    );
    assert!(
        entries
            .iter()
            .all(|s| s["metric"]["instance"] == addr.to_string()),
        "{entries:?}"
    );
}
