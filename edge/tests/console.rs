//! Manager sign-in and authorisation over real HTTP: the server runs in-process on a loopback
//! socket with its store, managers are added as `holdfast manager add` does, and a client
//! signs in, acts and reads the audit trail as the console will.
//!
//! What it shows: a wrong password is refused and counted, repeated failures lock the account
//! and the client's address out (429 with Retry-After), every manager route refuses an
//! anonymous client and a viewer's change, a change made with the cookie but without the
//! session's CSRF token is refused, bearer-token scripts need none, sessions survive a
//! restart and end at sign-out, and the audit trail holds each of these. The record pages
//! (conflicts, journal, floor sessions, audit) are in `console/records.rs`.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use holdfast::http::{
    AppState, CONSOLE_CSP, CONSOLE_PAGES, MANAGER_ROUTES, SELF_SERVICE_ROUTES, ServeOptions,
};
use holdfast::status::SiteStatus;
use holdfast::store::{DeviceCmd, ManagerCmd, NewAudit, NewPrintJob, Store, StoreOptions};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const MANAGER_TOKEN: &str = "manager-token-for-the-console-tests";
const DEVICE: &str = "device-token-for-the-console-tests";
const PASSWORD: &str = "correct horse battery";

struct Server {
    base: String,
    store: Store,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(dir: &Path) -> Server {
        Server::start_named(dir, "Console tests").await
    }

    /// A server whose site is called `site_name`.
    async fn start_named(dir: &Path, site_name: &str) -> Server {
        let config = holdfast::config::RawConfig::from_toml(&format!(
            "[site]\nid = \"c\"\n[http]\nmanager_token = \"{MANAGER_TOKEN}\"\n[[devices]]\nid = \"h1\"\ntoken = \"{DEVICE}\"\n"
        ))
        .unwrap()
        .validate()
        .unwrap();
        let store = Store::open(StoreOptions::new(dir.join("h.db"), "c")).unwrap();
        let floor = holdfast::floor::Floor::new(
            store.clone(),
            Default::default(),
            None,
            config.devices.clone(),
        );
        let state = AppState {
            manager_token: config.http.manager_token.clone(),
            ..AppState::new(
                store.clone(),
                floor,
                SiteStatus {
                    id: "c".into(),
                    name: site_name.into(),
                },
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(holdfast::http::serve_with(
            listener,
            state,
            ServeOptions::default(),
            stop.clone(),
        ));
        Server {
            base: format!("http://{addr}"),
            store,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap()
            .unwrap();
        self.store.shutdown().await.unwrap();
    }

    /// Adds a manager as `holdfast manager add` does.
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
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A client whose connections come from 127.0.0.`n` (all of 127.0.0.0/8 is loopback).
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, n]))
        .build()
        .unwrap()
}

/// A signed-in session: its cookie and CSRF token.
#[derive(Clone, Debug)]
struct Session {
    cookie: String,
    csrf: String,
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> reqwest::Response {
    http.post(format!("{base}/console/login"))
        .json(&json!({"name": name, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn sign_in(http: &reqwest::Client, base: &str, name: &str) -> Session {
    let answer = login(http, base, name, PASSWORD).await;
    assert_eq!(answer.status(), 200);
    let set_cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "no TLS here: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["name"], name);
    Session {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// A request as `session` (with its CSRF token when `csrf`).
fn request(
    http: &reqwest::Client,
    method: &str,
    url: String,
    session: &Session,
    csrf: bool,
) -> reqwest::RequestBuilder {
    let mut builder = http
        .request(method.parse().unwrap(), url)
        .header("cookie", &session.cookie);
    if csrf {
        builder = builder.header("x-csrf-token", &session.csrf);
    }
    if method == "POST" {
        builder = builder.json(&json!({"action": "discard", "note": "n"}));
    }
    builder
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
    body["audit"].as_array().unwrap().clone()
}

fn has(rows: &[Value], action: &str, actor: &str) -> bool {
    rows.iter()
        .any(|r| r["action"] == action && r["actor"].as_str() == Some(actor))
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_locked_out_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("anna", "manager").await;
    server.add_manager("ben", "manager").await;
    let base = &server.base;

    // Clients on three loopback addresses.
    let (a, b, c) = (client_from(1), client_from(2), client_from(3));
    // An unknown name is refused as a wrong password is.
    let answer = login(&a, base, "nobody", "whatever12345").await;
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().get("set-cookie").is_none());
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "login_failed");

    // Five failures on one account from two addresses lock the account: even the right
    // password is refused, with Retry-After, from an address that failed once only.
    for _ in 0..4 {
        assert_eq!(
            login(&b, base, "anna", "wrong password!").await.status(),
            401
        );
    }
    assert_eq!(
        login(&c, base, "anna", "wrong password!").await.status(),
        401
    );
    let answer = login(&c, base, "anna", PASSWORD).await;
    assert_eq!(answer.status(), 429);
    let wait: u64 = answer.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=31).contains(&wait), "{wait}");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "locked_out");
    // Another account is not locked with it.
    assert_eq!(login(&a, base, "ben", PASSWORD).await.status(), 200);

    // Five failures from one address lock the address, whatever account it tries next.
    assert_eq!(
        login(&b, base, "ben", "wrong password!").await.status(),
        401
    );
    assert_eq!(login(&b, base, "ben", PASSWORD).await.status(), 429);
    assert_eq!(login(&a, base, "ben", PASSWORD).await.status(), 200);
    let http = a;

    // Bad input is refused, never a crash.
    for (content_type, body) in [
        ("application/json", b"{".to_vec()),
        (
            "application/json",
            b"{\"name\": 3, \"password\": \"x\"}".to_vec(),
        ),
        (
            "application/json",
            b"{\"name\": \"a b\", \"password\": \"xxxxxxxxxxx\"}".to_vec(),
        ),
        (
            "application/json",
            b"{\"name\": \"a\", \"password\": \"\"}".to_vec(),
        ),
        ("application/json", vec![0xff, 0xfe, 0x00]),
        (
            "application/x-www-form-urlencoded",
            b"name=%zz&password=x".to_vec(),
        ),
        ("application/x-www-form-urlencoded", b"name=anna".to_vec()),
        ("application/x-www-form-urlencoded", vec![0xff, b'=', 0xfe]),
        (
            "application/x-www-form-urlencoded",
            b"name=a&password=b&role=manager".to_vec(),
        ),
    ] {
        let answer = http
            .post(format!("{base}/console/login"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            400,
            "{content_type} {:?}",
            String::from_utf8_lossy(&body)
        );
    }

    let rows = audit(&http, base).await;
    let failures = rows
        .iter()
        .filter(|r| r["action"] == "login.failure")
        .count();
    assert_eq!(failures, 7, "{rows:#?}");
    let locked = |target: &str, key: &str| {
        rows.iter().any(|r| {
            r["action"] == "login.locked" && r["target"] == target && r["detail"]["key"] == key
        })
    };
    assert!(locked("manager:anna", "manager:anna"), "{rows:#?}");
    assert!(locked("manager:ben", "addr:127.0.0.2"), "{rows:#?}");
    let successes = rows
        .iter()
        .filter(|r| r["action"] == "login.success")
        .count();
    assert_eq!(successes, 2, "{rows:#?}");
    server.stop().await;
}

#[tokio::test]
async fn a_form_post_signs_in_and_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("carla", "viewer").await;
    let http = client();
    let answer = http
        .post(format!("{}/console/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=carla&password=correct+horse%20battery")
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
    assert_eq!(body["role"], "viewer");
    let session = Session {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    server.stop().await;

    let server = Server::start(dir.path()).await;
    let me: Value = request(
        &http,
        "GET",
        format!("{}/console/me", server.base),
        &session,
        false,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(me["name"], "carla");
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["csrf_token"], session.csrf.as_str());

    // Signing out needs the CSRF token, then the cookie is worth nothing.
    let logout = format!("{}/console/logout", server.base);
    let answer = request(&http, "POST", logout.clone(), &session, false)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let answer = request(&http, "POST", logout, &session, true)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let answer = request(
        &http,
        "GET",
        format!("{}/console/me", server.base),
        &session,
        false,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(answer.status(), 401);
    let rows = audit(&http, &server.base).await;
    assert!(has(&rows, "logout", "manager:carla"), "{rows:#?}");
    assert!(has(&rows, "login.success", "manager:carla"), "{rows:#?}");
    server.stop().await;
}

#[tokio::test]
async fn every_manager_route_refuses_anonymous_clients_and_viewers_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("vera", "viewer").await;
    server.add_manager("max", "manager").await;
    let http = client();
    let base = &server.base;
    let viewer = sign_in(&http, base, "vera").await;
    let manager = sign_in(&http, base, "max").await;

    for (method, path) in MANAGER_ROUTES {
        let url = format!("{base}{}", path.replace("{id}", "1"));
        let own = SELF_SERVICE_ROUTES.contains(path);
        let anonymous = http
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "anonymous {method} {path}");
        let forged = http
            .request(method.parse().unwrap(), &url)
            .header("cookie", "hf_session=0123456789abcdef")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401, "made-up session {method} {path}");
        if own {
            // Signing out and choosing one's language are any role's right (their CSRF
            // check is shown elsewhere).
            continue;
        }
        let as_viewer = request(&http, method, url.clone(), &viewer, true)
            .send()
            .await
            .unwrap();
        if *method == "GET" {
            assert!(
                ![401, 403].contains(&as_viewer.status().as_u16()),
                "a viewer reads {method} {path}: {}",
                as_viewer.status()
            );
        } else {
            assert_eq!(as_viewer.status(), 403, "viewer {method} {path}");
            // A manager's change without the CSRF token is refused too; with it, it passes
            // the check (and the handler answers whatever it answers: no such conflict...).
            let no_csrf = request(&http, method, url.clone(), &manager, false)
                .send()
                .await
                .unwrap();
            assert_eq!(
                no_csrf.status(),
                403,
                "manager without CSRF {method} {path}"
            );
            let body: Value = no_csrf.json().await.unwrap();
            assert_eq!(body["code"], "csrf");
            let with_csrf = request(&http, method, url.clone(), &manager, true)
                .send()
                .await
                .unwrap();
            assert!(
                ![401, 403].contains(&with_csrf.status().as_u16()),
                "manager {method} {path}: {}",
                with_csrf.status()
            );
        }
    }

    // The viewer cannot resolve a conflict; the body says why.
    let answer = request(
        &http,
        "POST",
        format!("{base}/api/v1/conflicts/1/resolve"),
        &viewer,
        true,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(answer.status(), 403);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "forbidden");

    // Scripts keep working with the bearer token and need no CSRF token; devices keep their
    // routes.
    let answer = http
        .get(format!("{base}/api/v1/conflicts"))
        .bearer_auth(MANAGER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer = http
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(DEVICE)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer = http
        .get(format!("{base}/api/v1/conflicts"))
        .bearer_auth(DEVICE)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401, "a device token is no manager's");
    server.stop().await;
}

#[tokio::test]
async fn print_job_actions_need_a_manager_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("vera", "viewer").await;
    server.add_manager("max", "manager").await;
    let http = client();
    let base = &server.base;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = server
            .store
            .devices(DeviceCmd::Enqueue(NewPrintJob {
                printer: "p1".into(),
                template: "product".into(),
                label: "{}".into(),
                zpl: "^XA^XZ".into(),
                requested_by: "device:h1".into(),
                source: None,
                request_key: None,
            }))
            .await
            .unwrap();
        ids.push(id);
    }
    let viewer = sign_in(&http, base, "vera").await;
    let manager = sign_in(&http, base, "max").await;
    let cancel = |id: i64| format!("{base}/api/v1/print-jobs/{id}/cancel");

    let answer = http
        .post(cancel(ids[0]))
        .header("cookie", &viewer.cookie)
        .header("x-csrf-token", &viewer.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let answer = http
        .post(cancel(ids[0]))
        .header("cookie", &manager.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403, "no CSRF token");
    let answer = http
        .post(cancel(ids[0]))
        .header("cookie", &manager.cookie)
        .header("x-csrf-token", &manager.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["job"]["state"], "cancelled");
    // A device at the printer still cancels with its own token.
    let answer = http
        .post(cancel(ids[1]))
        .bearer_auth(DEVICE)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    let rows = audit(&http, base).await;
    let of = |actor: &str| {
        rows.iter()
            .find(|r| r["action"] == "print.cancel" && r["actor"] == actor)
            .cloned()
    };
    let by_manager = of("manager:max").expect("the manager's cancel is audited");
    assert_eq!(by_manager["target"], format!("print_job:{}", ids[0]));
    assert_eq!(by_manager["detail"]["by"], "manager:max");
    assert!(of("device:h1").is_some(), "{rows:#?}");
    assert!(has(&rows, "manager.add", "cli:test"));
    // The viewer's refused attempt changed nothing and left no action behind.
    assert!(
        rows.iter()
            .all(|r| r["actor"] != "manager:vera" || r["action"] == "login.success")
    );
    server.stop().await;
}

/// Runs the real binary on the config in `dir` with `stdin`: (success, stdout, stderr).
fn holdfast(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write as _;
    let config = dir.join("holdfast.toml");
    if !config.exists() {
        std::fs::write(
            &config,
            format!(
                "[site]\nid = \"c\"\n[store]\npath = \"{}\"\n",
                dir.join("h.db").display()
            ),
        )
        .unwrap();
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("USER", "tester")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn managers_made_on_the_command_line_sign_in_and_the_cli_shows_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = holdfast(
        d,
        &[
            "manager",
            "add",
            "anna",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!ok && err.contains("at least 10"), "{err}");
    let (ok, _, err) = holdfast(
        d,
        &[
            "manager",
            "add",
            "anna",
            "--role",
            "boss",
            "--password-stdin",
        ],
        "",
    );
    assert!(!ok && err.contains("viewer, manager"), "{err}");
    let (ok, _, err) = holdfast(
        d,
        &[
            "manager",
            "add",
            "anna",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    let (ok, _, err) = holdfast(
        d,
        &[
            "manager",
            "add",
            "anna",
            "--role",
            "manager",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(!ok && err.contains("exists already"), "{err}");
    // Without --password-stdin a password is generated and printed once, on stdout.
    let (ok, generated, err) = holdfast(d, &["manager", "add", "bob", "--role", "manager"], "");
    assert!(ok, "{err}");
    let generated = generated.trim().to_owned();
    assert!(generated.len() >= 10, "{generated:?}");
    let (ok, list, _) = holdfast(d, &["manager", "list", "--json"], "");
    assert!(ok);
    let list: Value = serde_json::from_str(&list).unwrap();
    let roles: Vec<(&str, &str)> = list["managers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [("anna", "viewer"), ("bob", "manager")]);
    assert!(!list.to_string().contains("argon2"), "no hashes shown");
    let (ok, _, err) = holdfast(d, &["device", "issue", "h9"], "");
    assert!(ok, "{err}");

    let server = Server::start(d).await;
    let http = client();
    let body: Value = login(&http, &server.base, "bob", &generated)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["role"], "manager");
    server.stop().await;

    let (ok, _, err) = holdfast(
        d,
        &["manager", "passwd", "anna", "--password-stdin"],
        "another good one\n",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = holdfast(d, &["manager", "remove", "anna"], "");
    assert!(ok, "{err}");
    let (ok, _, err) = holdfast(d, &["manager", "remove", "anna"], "");
    assert!(!ok, "{err}");

    let (ok, out, err) = holdfast(d, &["audit", "--json"], "");
    assert!(ok, "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trail: Vec<(&str, &str)> = rows
        .iter()
        .rev()
        .map(|r| (r["actor"].as_str().unwrap(), r["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        trail,
        [
            ("cli:tester", "manager.add"),
            ("cli:tester", "manager.add"),
            ("cli:tester", "device.issue"),
            ("manager:bob", "login.success"),
            ("cli:tester", "manager.passwd"),
            ("cli:tester", "manager.remove"),
        ]
    );
    let (ok, table, _) = holdfast(d, &["audit", "--limit", "2"], "");
    assert!(ok);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("manager.remove"), "{table}");
}

#[tokio::test]
async fn idle_and_old_sessions_are_refused_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("anna", "manager").await;
    let http = client();
    let now = holdfast::store::now_ms();
    let minute = 60_000;
    // Sessions as a sign-in long ago would have left them: one idle for 31 minutes, one
    // used a minute ago but signed in 12 hours ago.
    for (token, created, last_seen) in [
        ("idle-token", now - 31 * minute, now - 31 * minute),
        ("old-token", now - 12 * 60 * minute, now - minute),
    ] {
        let token_sha256 = holdfast::floor::sha256_hex(token.as_bytes());
        server
            .store
            .managers(ManagerCmd::OpenSession {
                token_sha256: token_sha256.clone(),
                manager: "anna".into(),
                now: created,
                stale_before: 0,
                born_before: 0,
                audit: NewAudit {
                    actor: "manager:anna".into(),
                    action: "login.success".into(),
                    target: None,
                    detail: json!({}),
                },
            })
            .await
            .unwrap();
        server
            .store
            .managers(ManagerCmd::Touch {
                token_sha256: token_sha256.clone(),
                at: last_seen,
            })
            .await
            .unwrap();
        let answer = http
            .get(format!("{}/console/me", server.base))
            .header("cookie", format!("hf_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{token}");
        // Removed, not just refused (the removal is not awaited by the request).
        let mut removed = false;
        for _ in 0..100 {
            if server
                .store
                .read(|r| r.manager_session(&token_sha256))
                .unwrap()
                .is_none()
            {
                removed = true;
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(removed, "{token}");
    }
    // A fresh sign-in works.
    let session = sign_in(&http, &server.base, "anna").await;
    let answer = request(
        &http,
        "GET",
        format!("{}/console/me", server.base),
        &session,
        false,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn random_sign_in_bodies_are_refused_never_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("anna", "manager").await;
    let http = client();
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let pieces: [&[u8]; 10] = [
        b"name=",
        b"&password=",
        b"%",
        b"%4",
        b"+",
        b"{\"name\":",
        b"\"zed\"",
        b",\"password\":",
        b"}",
        "é\u{0}".as_bytes(),
    ];
    for _ in 0..200 {
        let mut body = Vec::new();
        for _ in 0..rng.usize(0..8) {
            if rng.bool() {
                body.extend_from_slice(pieces[rng.usize(..pieces.len())]);
            } else {
                body.extend((0..rng.usize(0..20)).map(|_| rng.u8(..)));
            }
        }
        let content_type = if rng.bool() {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        let answer = http
            .post(format!("{}/console/login", server.base))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(
            [400, 401, 429].contains(&answer.status().as_u16()),
            "seed {seed}: {content_type} {body:?} → {}",
            answer.status()
        );
    }
    // The appliance still signs the manager in (from another address: the random bodies
    // may have been counted as failures of 127.0.0.1).
    sign_in(&client_from(9), &server.base, "anna").await;
    server.stop().await;
}

/// A client that shows redirects instead of following them, as a test of the pages needs.
fn page_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in through the page's form, as a browser posts it: a 303 to the overview and the
/// session cookie.
async fn sign_in_by_form(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> reqwest::Response {
    http.post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html,application/xhtml+xml")
        .body(format!(
            "name={name}&password={}",
            password.replace(' ', "+")
        ))
        .send()
        .await
        .unwrap()
}

fn assert_page_headers(answer: &reqwest::Response) {
    let h = answer.headers();
    assert_eq!(h["content-security-policy"], CONSOLE_CSP);
    assert!(CONSOLE_CSP.contains("default-src 'self'"));
    assert!(CONSOLE_CSP.contains("frame-ancestors 'none'"));
    assert!(!CONSOLE_CSP.contains("unsafe-inline"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn the_overview_needs_a_session_and_shows_the_stores_figures() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("vera", "viewer").await;
    let http = page_client();
    let base = &server.base;

    // Without a session every page redirects to the sign-in page and shows no data.
    for path in CONSOLE_PAGES {
        let path = path.replace("{id}", "1");
        let answer = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 303, "{path}");
        assert_eq!(answer.headers()["location"], "/console/login", "{path}");
        let body = answer.text().await.unwrap();
        assert!(!body.contains("Console tests"), "{path}: {body}");
    }
    // A stale or forged cookie is no session either.
    let answer = http
        .get(format!("{base}/console/"))
        .header("cookie", "hf_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    // The overview's figures need a session too.
    let answer = http
        .get(format!("{base}/console/overview.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);

    // The sign-in page: a form posting back, the console's headers, assets from the binary.
    let answer = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_page_headers(&answer);
    let body = answer.text().await.unwrap();
    assert!(
        body.contains(r#"<form method="post" action="/console/login">"#),
        "{body}"
    );
    assert!(!body.contains("<script>"), "no inline script: {body}");
    for (asset, kind) in [
        ("console.js", "text/javascript"),
        ("console.css", "text/css"),
    ] {
        let answer = http
            .get(format!("{base}/console/{asset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{asset}");
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }

    // A wrong password from the form comes back to the page with a message.
    let answer = sign_in_by_form(&http, base, "vera", "wrong one").await;
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/console/login?error=failed");
    assert!(answer.headers().get("set-cookie").is_none());
    let body = http
        .get(format!("{base}/console/login?error=failed"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("Unknown name or wrong password."), "{body}");

    // Three scans waiting in the journal, then the right password (a viewer: any role).
    for n in 0..3 {
        server
            .store
            .append(
                holdfast::store::Lane::Device,
                holdfast::store::NewEntry {
                    id: None,
                    device: "h1".into(),
                    operator: Some("op-1".into()),
                    op: holdfast_sync::ops::Operation::Pick(holdfast_sync::ops::PickOp {
                        picking_id: 1,
                        move_id: 1,
                        product_id: 1 + n,
                        location_id: 10,
                        lot_name: None,
                        package_id: None,
                        quantity: 1.0,
                        view_quantity: 0.0,
                    }),
                },
            )
            .await
            .unwrap();
    }
    let answer = sign_in_by_form(&http, base, "vera", PASSWORD).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/console/");
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let answer = http
        .get(format!("{base}/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_page_headers(&answer);
    let body = answer.text().await.unwrap();
    // The mode banner (no Odoo here: unknown, with the reason) and the queue from the store.
    assert!(body.contains(r#"class="banner mode-unknown""#), "{body}");
    assert!(body.contains("no odoo configured"), "{body}");
    assert!(
        body.contains(r#"<dd data-field="queue">pending 3</dd>"#),
        "{body}"
    );
    assert!(body.contains("vera (viewer)"), "{body}");
    assert!(body.contains("/console/console.js"), "{body}");
    assert!(!body.contains("<script>"), "no inline script: {body}");
    // The page carries the session's CSRF token, the same `/console/me` answers.
    let me: Value = http
        .get(format!("{base}/console/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = me["csrf_token"].as_str().unwrap();
    assert!(
        body.contains(&format!(r#"<meta name="csrf-token" content="{csrf}">"#)),
        "{body}"
    );

    // The script's JSON: the same figures, not cached.
    let answer = http
        .get(format!("{base}/console/overview.json"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let o: Value = answer.json().await.unwrap();
    assert_eq!(o["mode"], "unknown");
    assert_eq!(o["queue"], "pending 3");
    assert_eq!(o["site"], "Console tests");

    // Sign-out as the page's script does: refused without the CSRF token, done with it.
    let answer = http
        .post(format!("{base}/console/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let answer = http
        .get(format!("{base}/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "still signed in");
    let answer = http
        .post(format!("{base}/console/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer = http
        .get(format!("{base}/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "signed out");
    server.stop().await;
}

#[tokio::test]
async fn console_pages_escape_hostile_values() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = r#"<script>alert("x")</script>&"#;
    let server = Server::start_named(dir.path(), hostile).await;
    server.add_manager("mia", "manager").await;
    let http = page_client();
    let base = &server.base;
    let login = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer = sign_in_by_form(&http, base, "mia", PASSWORD).await;
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let overview = http
        .get(format!("{base}/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for body in [login, overview] {
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("&lt;script&gt;"), "{body}");
    }
    // A form error is chosen from a fixed set, never echoed from the URL.
    let body = http
        .get(format!("{base}/console/login?error=%3Cscript%3E"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("Enter a name and a password."), "{body}");
    assert!(!body.contains("<script>"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn console_json_answers_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("mia", "manager").await;
    let http = client();
    let base = &server.base;
    // The sign-in answer carries the session's CSRF token, `/console/me` too.
    let answer = login(&http, base, "mia", PASSWORD).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let set_cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = answer.json().await.unwrap();
    let session = Session {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    for path in ["/console/me", "/api/v1/conflicts", "/api/v1/audit"] {
        let answer = request(&http, "GET", format!("{base}{path}"), &session, false)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.headers()["cache-control"], "no-store", "{path}");
    }
    let answer = http
        .post(format!("{base}/console/language"))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .json(&json!({"language": "de"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    // A refusal is not kept either.
    let answer = http.get(format!("{base}/console/me")).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    server.stop().await;
}

#[tokio::test]
async fn a_sign_in_posted_from_another_site_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("mia", "manager").await;
    let http = page_client();
    let base = &server.base;
    let host = base.strip_prefix("http://").unwrap();
    let form = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut builder = http
            .post(format!("{base}/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .body(format!("name=mia&password={}", PASSWORD.replace(' ', "+")));
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        if let Some(site) = fetch_site {
            builder = builder.header("sec-fetch-site", site);
        }
        builder.send()
    };
    for (origin, site) in [
        (Some("http://evil.example".to_owned()), None),
        (Some("null".to_owned()), None),
        (Some(format!("http://{host}.evil.example")), None),
        (None, Some("cross-site")),
    ] {
        let answer = form(origin.as_deref(), site).await.unwrap();
        assert_eq!(answer.status(), 403, "{origin:?} {site:?}");
        assert!(answer.headers().get("set-cookie").is_none());
    }
    // The console's own page (and a script without any of these headers) signs in.
    let own = format!("http://{host}");
    for (origin, site) in [(Some(own.as_str()), Some("same-origin")), (None, None)] {
        let answer = form(origin, site).await.unwrap();
        assert_eq!(answer.status(), 303, "{origin:?}");
        assert_eq!(answer.headers()["location"], "/console/");
        assert!(answer.headers().get("set-cookie").is_some());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_new_sign_in_ends_the_browsers_previous_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    server.add_manager("mia", "manager").await;
    server.add_manager("vera", "viewer").await;
    let http = client();
    let base = &server.base;
    let first = sign_in(&http, base, "mia").await;
    let answer = http
        .post(format!("{base}/console/login"))
        .header("cookie", &first.cookie)
        .json(&json!({"name": "vera", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let second = answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(second, first.cookie, "a new token at each sign-in");
    let me = |cookie: String| {
        http.get(format!("{base}/console/me"))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(me(first.cookie.clone()).await.unwrap().status(), 401);
    let answer = me(second).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["name"], "vera");
    server.stop().await;
}

#[tokio::test]
async fn refusals_that_quote_the_url_are_never_sniffed_as_html() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let http = page_client();
    let base = &server.base;
    for path in [
        "/console/conflicts/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/console/journal?before=%3Cscript%3E",
        "/api/v1/conflicts/%3Cb%3E",
    ] {
        let answer = http.get(format!("{base}{path}")).send().await.unwrap();
        assert!(answer.status().is_client_error(), "{path}");
        assert_eq!(
            answer.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn signing_out_of_an_ended_session_removes_its_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let http = client();
    let answer = http
        .post(format!("{}/console/logout", server.base))
        .header("cookie", "hf_session=ended-or-forged")
        .header("x-csrf-token", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("hf_session=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    // Without a cookie (a post from another site carries none) nothing is set.
    let answer = http
        .post(format!("{}/console/logout", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().get("set-cookie").is_none());
    server.stop().await;
}

#[path = "console/records.rs"]
mod records;
