//! The console's operations pages over real HTTP, in-process: the backlog chart from the
//! recorder's samples, devices and printers with the print queue and the handhelds' tokens
//! (issued and revoked through the API, then used and refused on the device API), and the
//! cache page with "Pull now" waking the pull task against the Odoo simulator.
//!
//! A separate file from `console.rs`: these tests need a cloud and the pull task beside the
//! server, which the sign-in tests do not.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use holdfast::http::{AppState, ServeOptions};
use holdfast::status::{CloudStatus, SiteStatus};
use holdfast::store::{DeviceCmd, Lane, ManagerCmd, NewAudit, NewPrintJob, Store, StoreOptions};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const MANAGER_TOKEN: &str = "manager-token-for-the-ops-tests";
const PASSWORD: &str = "correct horse battery";
const T: Duration = Duration::from_secs(20);

struct Server {
    base: String,
    store: Store,
    progress: Option<holdfast::pull::ProgressHandle>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// The appliance's HTTP server on its store; with `sim`, the pull task against it (a
    /// pull at start, then only when asked: the interval is a day).
    async fn start(dir: &Path, sim: Option<&Simulator>) -> Server {
        let odoo = sim.map(|sim| {
            let c = sim.config();
            format!(
                "[odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\n",
                sim.url(),
                c.database,
                c.login,
                c.api_key
            )
        });
        let config = holdfast::config::RawConfig::from_toml(&format!(
            "[site]\nid = \"o\"\n[http]\nmanager_token = \"{MANAGER_TOKEN}\"\n[sync]\npull_interval_secs = 86400\n[[devices]]\nid = \"h1\"\ntoken = \"device-token-of-h1-in-the-config\"\n{}",
            odoo.unwrap_or_default()
        ))
        .unwrap()
        .validate()
        .unwrap();
        let store = Store::open(StoreOptions::new(dir.join("h.db"), "o")).unwrap();
        let floor = holdfast::floor::Floor::new(
            store.clone(),
            Default::default(),
            None,
            config.devices.clone(),
        );
        let connectivity = holdfast::connectivity::Connectivity::new(store.clone());
        let progress = config
            .odoo
            .as_ref()
            .map(|_| holdfast::pull::ProgressHandle::default());
        let pull_now = config
            .odoo
            .as_ref()
            .map(|_| holdfast::pull::PullNowHandle::default());
        let state = AppState {
            cloud: CloudStatus {
                target: config.odoo.as_ref().map(|o| o.url.clone()),
            },
            pull: progress.clone(),
            pull_now: pull_now.clone(),
            connectivity: connectivity.clone(),
            manager_token: config.http.manager_token.clone(),
            printing: holdfast::printing::Printing::new(store.clone(), config.lan.clone()),
            ..AppState::new(
                store.clone(),
                floor,
                SiteStatus {
                    id: "o".into(),
                    name: "Ops tests".into(),
                },
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let mut tasks = vec![tokio::spawn({
            let stop = stop.clone();
            async move {
                holdfast::http::serve_with(listener, state, ServeOptions::default(), stop)
                    .await
                    .unwrap();
            }
        })];
        if let (Some(odoo), Some(progress), Some(now)) = (config.odoo, progress.clone(), pull_now) {
            tasks.push(tokio::spawn(holdfast::pull::run_pull(
                store.clone(),
                odoo,
                config.sync.clone(),
                progress,
                connectivity,
                now,
                stop.clone(),
            )));
        }
        Server {
            base: format!("http://{addr}"),
            store,
            progress,
            stop,
            tasks,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the tasks stop within 10 s")
                .unwrap();
        }
        self.store.shutdown().await.unwrap();
    }

    async fn add_manager(&self, name: &str, role: &str) {
        self.store
            .managers(ManagerCmd::Add {
                name: name.into(),
                role: role.into(),
                password_hash: holdfast::managers::hash_password(PASSWORD).unwrap(),
                audit: NewAudit {
                    actor: "cli:test".into(),
                    action: "manager.add".into(),
                    target: Some(format!("manager:{name}")),
                    detail: json!({"role": role}),
                },
            })
            .await
            .unwrap();
    }

    /// When the pull task last finished a pull.
    fn last_pull(&self) -> Option<i64> {
        let progress = self.progress.as_ref()?;
        progress.lock().unwrap().last_finished_at
    }
}

/// A signed-in session: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(http: &reqwest::Client, base: &str, name: &str) -> Session {
    let answer = http
        .post(format!("{base}/console/login"))
        .json(&json!({"name": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = answer.json().await.unwrap();
    Session {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// A page as `session` sees it: (status, body).
async fn page(http: &reqwest::Client, base: &str, path: &str, session: &Session) -> (u16, String) {
    let answer = http
        .get(format!("{base}{path}"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// A console form's POST as console.js sends it: JSON, the cookie and the CSRF token.
async fn post(
    http: &reqwest::Client,
    url: String,
    session: &Session,
    body: Value,
) -> reqwest::Response {
    http.post(url)
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn audit(http: &reqwest::Client, base: &str) -> Vec<Value> {
    let answer = http
        .get(format!("{base}/api/v1/audit?limit=1000"))
        .bearer_auth(MANAGER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    body["audit"].as_array().cloned().unwrap_or_default()
}

fn audited(rows: &[Value], action: &str, actor: &str, target: Option<&str>) -> bool {
    rows.iter().any(|r| {
        r["action"] == action && r["actor"] == actor && target.is_none_or(|t| r["target"] == t)
    })
}

#[tokio::test]
async fn the_backlog_page_draws_the_recorders_samples() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    server.add_manager("vera", "viewer").await;
    let http = client();
    let base = &server.base;
    let viewer = sign_in(&http, base, "vera").await;

    // No sample yet: the page says so and draws nothing.
    let (status, body) = page(&http, base, "/console/backlog", &viewer).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"id="backlog-empty""#), "{body}");
    assert!(!body.contains("<svg"), "{body}");

    // Three entries wait; the recorder samples twice a minute apart (the second write also
    // prunes samples older than two days, here one planted three days back).
    for n in 0..3 {
        server.store.append(Lane::Device, entry(n)).await.unwrap();
    }
    let now = holdfast::store::now_ms();
    let old = holdfast::backlog::record(&server.store, now - 72 * 3600 * 1000)
        .await
        .unwrap();
    let first = holdfast::backlog::record(&server.store, now - 60_000)
        .await
        .unwrap();
    assert_eq!(first.pending, 3);
    assert!(first.oldest_pending_age_s.is_some());
    holdfast::backlog::record(&server.store, now).await.unwrap();
    let rows = server.store.read(|r| r.backlog_since(0)).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.minute != old.minute), "pruned");

    let (status, body) = page(&http, base, "/console/backlog", &viewer).await;
    assert_eq!(status, 200);
    assert_eq!(
        body.matches(r#"<svg class="chart" role="img""#).count(),
        3,
        "{body}"
    );
    // Depth and age have two points each; the drain one (between the two samples).
    assert_eq!(body.matches("<circle").count(), 5, "{body}");
    assert!(
        body.contains("Queue depth over the last 24 hours: 3 now, highest 3"),
        "{body}"
    );
    assert!(body.contains("2 samples"), "{body}");
    server.stop().await;
}

/// A day of samples (one a minute): the page still answers quickly and stays small; prints
/// the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_day_of_samples_draws_three_lines_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    server.add_manager("vera", "viewer").await;
    let http = client();
    let base = &server.base;
    let viewer = sign_in(&http, base, "vera").await;
    let now_minute = holdfast::store::now_ms() / 60_000;
    let written = Instant::now();
    let mut writes = tokio::task::JoinSet::new();
    for m in 0..1440 {
        let store = server.store.clone();
        writes.spawn(async move {
            let minute = now_minute - 1439 + m;
            store
                .backlog(holdfast::store::BacklogCmd::Record {
                    sample: holdfast::store::BacklogSample {
                        minute,
                        pending: m % 97,
                        in_flight: m % 5,
                        conflicts: 0,
                        oldest_pending_age_s: Some(m * 7 % 3600),
                        applied_total: m * 3,
                    },
                    keep_from: 0,
                })
                .await
                .unwrap();
        });
    }
    while let Some(done) = writes.join_next().await {
        done.unwrap();
    }
    let write_time = written.elapsed();
    let mut times = Vec::new();
    let mut body = String::new();
    for _ in 0..5 {
        let asked = Instant::now();
        let (status, page) = page(&http, base, "/console/backlog", &viewer).await;
        times.push(asked.elapsed());
        assert_eq!(status, 200);
        body = page;
    }
    times.sort();
    let lines: Vec<usize> = body
        .split(r#"<polyline class="series" fill="none" points=""#)
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].split(' ').count())
        .collect();
    assert_eq!(lines, vec![1440, 1440, 1439], "depth, age, drain");
    assert!(!body.contains("<circle"), "a day is a line, not 4,319 dots");
    assert!(body.contains("1440 samples"), "the count below the charts");
    println!(
        "backlog page with 1,440 samples: {} KB, median {:?}, slowest {:?} of 5 (debug build); 1,440 samples written concurrently in {write_time:?}",
        body.len() / 1024,
        times[2],
        times[4]
    );
    assert!(times[2] < Duration::from_secs(2), "{times:?}");
    server.stop().await;
}

/// A pick entry on its own picking (`n`), as a handheld's step journals one.
fn entry(n: i64) -> holdfast::store::NewEntry {
    use holdfast_sync::ops::{Operation, PickOp};
    holdfast::store::NewEntry {
        id: None,
        device: "h1".into(),
        operator: None,
        op: Operation::Pick(PickOp {
            picking_id: 100 + n,
            move_id: 1,
            product_id: 1,
            location_id: 1,
            lot_name: None,
            package_id: None,
            quantity: 1.0,
            view_quantity: 1.0,
        }),
    }
}

#[tokio::test]
async fn devices_page_lists_jobs_and_tokens_issued_there_work_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    server.add_manager("vera", "viewer").await;
    server.add_manager("max", "manager").await;
    let http = client();
    let base = &server.base;
    let viewer = sign_in(&http, base, "vera").await;
    let manager = sign_in(&http, base, "max").await;
    let job = server
        .store
        .devices(DeviceCmd::Enqueue(NewPrintJob {
            printer: "zebra-<1>".into(),
            template: "product".into(),
            label: "{}".into(),
            zpl: "^XA^XZ".into(),
            requested_by: "device:h1".into(),
            source: None,
            request_key: None,
        }))
        .await
        .unwrap();

    // The viewer sees the queue but no buttons; the manager gets Cancel (the job is queued,
    // so no Reprint yet) and the issue form.
    let (status, body) = page(&http, base, "/console/devices", &viewer).await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!(r#"<tr id="job-{job}">"#)), "{body}");
    assert!(body.contains("zebra-&lt;1&gt;"), "escaped: {body}");
    assert!(!body.contains("data-api=\"/api/v1/print-jobs"), "{body}");
    assert!(!body.contains(r#"id="issue""#), "{body}");
    let (_, body) = page(&http, base, "/console/devices", &manager).await;
    assert!(
        body.contains(&format!(r#"data-api="/api/v1/print-jobs/{job}/cancel""#)),
        "{body}"
    );
    assert!(!body.contains(&format!("/api/v1/print-jobs/{job}/reprint")));
    assert!(
        body.contains(r#"data-api="/api/v1/devices/{id}/token""#),
        "{body}"
    );

    // Issuing: a viewer is refused, a bad id is refused, a manager gets the token once.
    let issue = format!("{base}/api/v1/devices/h9/token");
    assert_eq!(
        post(&http, issue.clone(), &viewer, json!({}))
            .await
            .status(),
        403
    );
    let bad = post(
        &http,
        format!("{base}/api/v1/devices/bad%20id/token"),
        &manager,
        json!({}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let configured = post(
        &http,
        format!("{base}/api/v1/devices/h1/token"),
        &manager,
        json!({}),
    )
    .await;
    assert_eq!(configured.status(), 409, "h1's token is in the config file");
    let answer = post(&http, issue.clone(), &manager, json!({"id": "h9"})).await;

    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64, "{body}");

    // The handheld uses it on the device API.
    let me = || {
        http.get(format!("{base}/api/v1/me"))
            .bearer_auth(&token)
            .send()
    };
    let answer = me().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["device"], "h9");
    // The page lists it as issued, the token itself nowhere.
    let (_, body) = page(&http, base, "/console/devices", &manager).await;
    assert!(body.contains(r#"<tr id="handheld-h9">"#), "{body}");
    assert!(body.contains(r#"<tr id="handheld-h1">"#), "{body}");
    assert!(body.contains("set in the configuration file"), "{body}");
    assert!(!body.contains("/api/v1/devices/h1/revoke"), "{body}");
    assert!(
        body.contains(r#"data-api="/api/v1/devices/h9/revoke""#),
        "{body}"
    );
    assert!(!body.contains(&token));

    // Revoking: a viewer is refused; the manager's revoke makes the token useless at once.
    let revoke = format!("{base}/api/v1/devices/h9/revoke");
    assert_eq!(
        post(&http, revoke.clone(), &viewer, json!({}))
            .await
            .status(),
        403
    );
    assert_eq!(me().await.unwrap().status(), 200, "still valid");
    assert_eq!(
        post(&http, revoke.clone(), &manager, json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(me().await.unwrap().status(), 401);
    assert_eq!(
        post(&http, revoke, &manager, json!({})).await.status(),
        404,
        "nothing left to revoke"
    );
    let (_, body) = page(&http, base, "/console/devices", &manager).await;
    assert!(
        !body.contains(r#"data-api="/api/v1/devices/h9/revoke""#),
        "{body}"
    );
    assert!(body.contains("revoked on"), "{body}");

    let rows = audit(&http, base).await;
    assert!(
        audited(&rows, "device.issue", "manager:max", Some("device:h9")),
        "{rows:#?}"
    );
    assert!(
        audited(&rows, "device.revoke", "manager:max", Some("device:h9")),
        "{rows:#?}"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r["actor"] == "manager:vera" && r["action"] != "login.success")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_now_wakes_the_pull_task_and_the_cache_page_shows_it() {
    let data = Dataset::generate(&DatasetSpec {
        seed: 5,
        products: 40,
        quants: 120,
        pickings: 8,
    });
    let sim = Simulator::start(SimConfig::default(), &data).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some(&sim)).await;
    server.add_manager("vera", "viewer").await;
    server.add_manager("max", "manager").await;
    let http = client();
    let base = &server.base;
    let viewer = sign_in(&http, base, "vera").await;
    let manager = sign_in(&http, base, "max").await;

    // The pull at start (the interval is a day: no other pull comes by itself).
    let first = wait_for(|| server.last_pull()).await;
    let (status, body) = page(&http, base, "/console/cache", &viewer).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<td class=\"mono\">stock.quant</td>"),
        "{body}"
    );
    assert!(body.contains(r#"<dd id="last-pull" data-at=""#), "{body}");
    assert!(
        !body.contains(r#"id="pull-now""#),
        "a viewer has no button: {body}"
    );
    let (_, body) = page(&http, base, "/console/cache", &manager).await;
    assert!(body.contains(r#"id="pull-now""#), "{body}");
    let quants = server.store.read(|r| r.mirror_counts()).unwrap()["quant"];
    assert!(quants > 0);
    assert!(
        body.contains(&format!(
            "<td class=\"mono\">stock.quant</td><td>{quants}</td>"
        )),
        "{body}"
    );

    let pull = format!("{base}/api/v1/pull");
    assert_eq!(
        post(&http, pull.clone(), &viewer, json!({})).await.status(),
        403
    );
    assert_eq!(
        server.last_pull(),
        Some(first),
        "a refused request pulls nothing"
    );
    let answer = post(&http, pull.clone(), &manager, json!({})).await;
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["requested"], "incremental");
    let second = wait_for(|| server.last_pull().filter(|t| *t > first)).await;
    // A full one on request: the quants' full-pull time moves.
    let full_before = server
        .store
        .read(|r| r.cursor(holdfast_sync::records::Model::Quant))
        .unwrap()
        .full_at;
    let answer = post(&http, pull, &manager, json!({"full": true})).await;
    assert_eq!(answer.status(), 202);
    wait_for(|| server.last_pull().filter(|t| *t > second)).await;
    let full_after = server
        .store
        .read(|r| r.cursor(holdfast_sync::records::Model::Quant))
        .unwrap()
        .full_at;
    assert!(full_after > full_before, "{full_before:?} → {full_after:?}");

    let rows = audit(&http, base).await;
    assert!(audited(&rows, "pull.now", "manager:max", None), "{rows:#?}");
    server.stop().await;
}

#[tokio::test]
async fn pull_now_without_an_odoo_is_a_conflict_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    server.add_manager("max", "manager").await;
    let http = client();
    let base = &server.base;
    let manager = sign_in(&http, base, "max").await;
    let answer = post(&http, format!("{base}/api/v1/pull"), &manager, json!({})).await;
    assert_eq!(answer.status(), 409);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "no_odoo");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no Odoo is configured")
    );
    let (status, body) = page(&http, base, "/console/cache", &manager).await;
    assert_eq!(status, 200);
    assert!(body.contains("No Odoo is configured"), "{body}");
    assert!(!body.contains(r#"id="pull-now""#), "{body}");
    server.stop().await;
}

/// Polls `check` until it answers, at most [`T`].
async fn wait_for<V>(mut check: impl FnMut() -> Option<V>) -> V {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < T, "not within {T:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
