//! HTTPS on the appliance's listener, with the real binary: the device API, the handheld
//! pages and the probes over TLS to a client that trusts only the appliance's own
//! certificate; plain HTTP refused on that port; the redirect listener serving nothing but
//! 308s; SIGHUP putting new certificate files in use (and refusing a bad pair); bad
//! certificate files stopping the start with the file and the reason named; and, in this
//! process, handshakes counted against the connection caps and bounded by the header
//! time-out.

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use site::{Appliance, Site, cli, free_port, holdfast};

const DEVICE_TOKEN: &str = "tls-handheld-token-0001";
const MANAGER_TOKEN: &str = "tls-manager-token-0001";

/// A client that trusts only `cert_pem` (no built-in roots), never following redirects.
fn pinned_client(cert_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `AB:CD:…` of the first certificate in a PEM file.
fn fingerprint(cert_pem: &[u8]) -> String {
    let der = CertificateDer::pem_slice_iter(cert_pem)
        .next()
        .unwrap()
        .unwrap();
    Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A self-signed pair (certificate PEM, key PEM) for `names`, valid from `from` to `to`
/// (years).
fn pair(names: &[&str], from: i32, to: i32) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn log_of(site: &Site) -> String {
    std::fs::read_to_string(site.log()).unwrap_or_default()
}

/// Waits until `client` gets 200 from `url`; fails with the log after 30 s.
async fn wait_ok(site: &Site, client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(url).send().await {
            Ok(r) if r.status() == 200 => return,
            other => assert!(
                Instant::now() < deadline,
                "{url}: never answered 200 (last {other:?})\nlog: {}",
                log_of(site)
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tls_status(client: &reqwest::Client, base: &str) -> Value {
    let s: Value = client
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(DEVICE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    s["tls"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_https_serves_pinned_clients_redirects_and_reloads() {
    let redirect_port = free_port();
    let site = Site::new(DEVICE_TOKEN, |port, dir| {
        format!(
            "[site]\nid = \"t\"\n[store]\npath = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmanager_token = \"{MANAGER_TOKEN}\"\n\
             tls = \"self-signed\"\ntls_names = [\"holdfast.site.lan\", \"127.0.0.1\"]\n\
             redirect_listen = \"127.0.0.1:{redirect_port}\"\n\
             [log]\nlevel = \"debug\"\n\
             [[devices]]\nid = \"hh1\"\ntoken = \"{DEVICE_TOKEN}\"\n",
            dir.join("holdfast.db").display(),
        )
    });
    cli(
        &site.config,
        &[
            "operator", "add", "alice", "--name", "Alice", "--badge", "OP-ALICE",
        ],
    );
    let port = site.base.rsplit(':').next().unwrap().to_owned();
    let base = format!("https://127.0.0.1:{port}");
    let app = site.start_appliance();
    let tls_dir = site.dir.path().join("tls");
    let (cert_path, key_path) = (tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(cert_path.exists() && key_path.exists()) {
        assert!(
            Instant::now() < deadline,
            "no certificate generated\nlog: {}",
            log_of(&site)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key_mode = std::fs::metadata(&key_path).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
        0o600
    );
    let cert_pem = std::fs::read(&cert_path).unwrap();
    let client = pinned_client(&cert_pem);
    wait_ok(&site, &client, &format!("{base}/healthz")).await;
    wait_ok(&site, &client, &format!("{base}/readyz")).await;

    // The fingerprint a handheld pins to: status, start-up log, and the file agree.
    let tls = tls_status(&client, &base).await;
    assert_eq!(tls["mode"], "self-signed", "{tls}");
    assert_eq!(tls["fingerprint_sha256"], fingerprint(&cert_pem), "{tls}");
    let years = tls["not_after"].as_str().unwrap()[..4]
        .parse::<i32>()
        .unwrap();
    let this_year = jiff::Zoned::now().year() as i32;
    assert!((this_year + 4..=this_year + 5).contains(&years), "{tls}");
    assert!(log_of(&site).contains(&fingerprint(&cert_pem)));

    // The device API and the handheld pages, over TLS.
    let scan = |client: &reqwest::Client, token: Option<&str>| {
        let mut request = client
            .post(format!("{base}/api/v1/scan"))
            .header("Idempotency-Key", site::idempotency_key())
            .json(&json!({"code": "WH-A-02-03"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let login = client
        .post(format!("{base}/api/v1/login"))
        .bearer_auth(DEVICE_TOKEN)
        .header("Idempotency-Key", site::idempotency_key())
        .json(&json!({"badge": "OP-ALICE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "{}", login.text().await.unwrap());
    let answer = scan(&client, Some(DEVICE_TOKEN)).await.unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert!(status != 401 && body["code"].is_string(), "{status} {body}");
    assert_eq!(scan(&client, None).await.unwrap().status(), 401);
    let ui = client.get(format!("{base}/ui/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("<html"));
    // The console over the same HTTPS: its sign-in page, and its figures for the manager.
    let login = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.text().await.unwrap().contains("<form"));
    let overview = client
        .get(format!("{base}/console/overview.json"))
        .bearer_auth(MANAGER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), 200);
    let overview: Value = overview.json().await.unwrap();
    assert_eq!(
        overview["tls"].as_str().map(str::len),
        Some(95),
        "{overview}"
    );

    // A client with only the usual roots does not trust the appliance's certificate.
    let stranger = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        stranger
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );

    // Plain HTTP on the TLS port gets no HTTP answer, only a closed connection.
    let mut plain = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );

    // The redirect listener: 308 to the same path and query over HTTPS, nothing served.
    let redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    for (method, path) in [
        ("GET", "/ui/?lang=nl&x=1"),
        ("GET", "/healthz"),
        ("GET", "/api/v1/status?format=text"),
        ("POST", "/api/v1/scan"),
    ] {
        let answer = redirects
            .request(
                method.parse().unwrap(),
                format!("http://127.0.0.1:{redirect_port}{path}"),
            )
            .bearer_auth(DEVICE_TOKEN)
            .body(r#"{"code":"WH-A-02-03"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 308, "{method} {path}");
        assert_eq!(
            answer.headers()["location"],
            format!("https://127.0.0.1:{port}{path}").as_str()
        );
        assert_eq!(answer.text().await.unwrap(), "", "{method} {path}");
    }
    // Followed, the redirect reaches the page over HTTPS.
    let following = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert_pem).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let page = following
        .get(format!("http://127.0.0.1:{redirect_port}/ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.url().scheme(), "https");
    assert_eq!(page.status(), 200);

    // `holdfast status` asks the running appliance over HTTPS and shows the fingerprint.
    let text = cli(&site.config, &["status"]);
    assert!(
        text.contains("https     self-signed, until") && text.contains(&fingerprint(&cert_pem)),
        "{text}"
    );

    // SIGHUP: new files are served to new connections.
    let (new_cert, new_key) = pair(&["127.0.0.1"], 2024, 2040);
    std::fs::write(&cert_path, &new_cert).unwrap();
    std::fs::write(&key_path, &new_key).unwrap();
    let pid = Pid::from_raw(app.pid() as i32);
    kill(pid, Signal::SIGHUP).unwrap();
    let renewed = pinned_client(new_cert.as_bytes());
    wait_ok(&site, &renewed, &format!("{base}/healthz")).await;
    let tls = tls_status(&renewed, &base).await;
    assert_eq!(
        tls["fingerprint_sha256"],
        fingerprint(new_cert.as_bytes()),
        "{tls}"
    );
    assert!(tls["not_after"].as_str().unwrap().starts_with("2040-01-01"));
    // The old certificate is no longer served.
    assert!(
        pinned_client(&cert_pem)
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );

    // A key that does not belong to the certificate: refused, the one in use stays.
    let (_, other_key) = pair(&["127.0.0.1"], 2024, 2040);
    std::fs::write(&key_path, &other_key).unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log_of(&site).contains("https certificate not reloaded") {
        assert!(Instant::now() < deadline, "log: {}", log_of(&site));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(log_of(&site).contains("does not belong to the certificate"));
    let tls = tls_status(&pinned_client(new_cert.as_bytes()), &base).await;
    assert_eq!(tls["fingerprint_sha256"], fingerprint(new_cert.as_bytes()));
    assert!(app.running());
    drop(app);

    // A restart reuses the pair on disk rather than generating a new one.
    std::fs::write(&key_path, &new_key).unwrap();
    let _app = site.start_appliance();
    let renewed = pinned_client(new_cert.as_bytes());
    wait_ok(&site, &renewed, &format!("{base}/healthz")).await;
    assert_eq!(std::fs::read_to_string(&cert_path).unwrap(), new_cert);
}

/// `holdfast run` with `http.tls = "files"`; its exit status and standard error (killed and
/// failed after 30 s if it starts serving instead).
fn run_with_files(dir: &Path, cert: &Path, key: &Path) -> (Option<i32>, String) {
    let config = dir.join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"t\"\n[store]\npath = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{}\"\ntls = \"files\"\n\
             tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            dir.join("holdfast.db").display(),
            free_port(),
            cert.display(),
            key.display(),
        ),
    )
    .unwrap();
    let err = dir.join("stderr");
    let mut child = holdfast()
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after 30 s: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), std::fs::read_to_string(&err).unwrap())
}

#[test]
fn bad_certificate_files_stop_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (good_cert, good_key) = pair(&["127.0.0.1"], 2024, 2040);
    let (expired_cert, expired_key) = pair(&["127.0.0.1"], 2020, 2021);
    let (_, other_key) = pair(&["127.0.0.1"], 2024, 2040);
    let good_cert = write("good.pem", &good_cert);
    let good_key = write("good.key", &good_key);
    let missing = dir.path().join("missing.pem");
    // (certificate file, key file, the file named, what is said)
    let cases = [
        (
            missing.clone(),
            good_key.clone(),
            missing.clone(),
            "cannot read",
        ),
        (
            write("garbage.pem", "not a certificate\n"),
            good_key.clone(),
            dir.path().join("garbage.pem"),
            "holds no certificate",
        ),
        (
            write("expired.pem", &expired_cert),
            write("expired.key", &expired_key),
            dir.path().join("expired.pem"),
            "the certificate expired at 2021-01-01",
        ),
        (
            good_cert.clone(),
            write("other.key", &other_key),
            dir.path().join("other.key"),
            "does not belong to the certificate",
        ),
        (
            good_cert.clone(),
            write("nokey.key", "-----BEGIN NOTHING-----\n"),
            dir.path().join("nokey.key"),
            "holds no usable PEM private key",
        ),
    ];
    for (cert, key, named, said) in cases {
        let (code, stderr) = run_with_files(dir.path(), &cert, &key);
        assert!(code.is_some_and(|c| c != 0), "{code:?}: {stderr}");
        assert!(
            stderr.contains(&named.display().to_string()) && stderr.contains(said),
            "{} / {}: wanted {said:?} naming {}; got: {stderr}",
            cert.display(),
            key.display(),
            named.display()
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The server in this process with `limits`, over TLS with a self-signed pair in `dir`.
async fn serve_in_process(
    dir: &Path,
    limits: holdfast::http::ConnLimits,
    stop: tokio_util::sync::CancellationToken,
) -> (std::net::SocketAddr, PathBuf) {
    let db = dir.join("h.db");
    let store = holdfast::store::Store::open(holdfast::store::StoreOptions::new(&db, "t")).unwrap();
    let tls = holdfast::tls::TlsHandle::load(
        &holdfast::config::TlsSettings::SelfSigned {
            names: vec!["127.0.0.1".into()],
        },
        &db,
    )
    .unwrap()
    .unwrap();
    let cert = tls.cert_path().to_owned();
    let state = holdfast::http::AppState {
        cloud: holdfast::status::CloudStatus { target: None },
        tls: Some(tls),
        ..holdfast::http::AppState::new(
            store.clone(),
            holdfast::floor::Floor::new(store.clone(), Default::default(), None, Vec::new()),
            holdfast::status::SiteStatus {
                id: "t".into(),
                name: "TLS".into(),
            },
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = holdfast::http::ServeOptions {
        limits,
        public_status: false,
    };
    tokio::spawn(holdfast::http::serve_with(listener, state, options, stop));
    (addr, cert)
}

/// One request over a new TLS connection pinned to `cert`; the status code of the answer.
async fn get_over_tls(addr: std::net::SocketAddr, cert: &Path, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        holdfast::tls::pinned_client_config(cert).unwrap(),
    ));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let _ = tls.read_to_end(&mut got).await;
    let head = String::from_utf8_lossy(&got);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_are_counted_against_the_caps_and_timed_out_like_heads() {
    let dir = tempfile::tempdir().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let limits = holdfast::http::ConnLimits {
        max_connections: 2,
        per_client: 2,
        health_connections: 2,
        health_per_client: 2,
        header_timeout: Duration::from_secs(1),
        over_cap_header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
    };
    let (addr, cert) = serve_in_process(dir.path(), limits, stop.clone()).await;

    // Two connections that never start their handshake take both places (the loop admits
    // connections in the order they were accepted)...
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // ...so a third is over the cap: probes only.
    assert_eq!(get_over_tls(addr, &cert, "/ui/").await, 503);
    assert_eq!(get_over_tls(addr, &cert, "/healthz").await, 200);
    // The header time-out closes them (the handshake is inside it)...
    for mut stream in silent {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("closed within the header time-out")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let held = opened.elapsed();
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_secs(3),
        "{held:?}"
    );
    // ...and their places serve again (each is given back just after its socket closes).
    let deadline = Instant::now() + Duration::from_secs(5);
    while get_over_tls(addr, &cert, "/ui/").await != 200 {
        assert!(Instant::now() < deadline, "the places were not given back");
    }

    // What a new connection costs: handshake (ECDSA P-256, TLS 1.3) and one request.
    let n = 50;
    let started = Instant::now();
    for _ in 0..n {
        assert_eq!(get_over_tls(addr, &cert, "/healthz").await, 200);
    }
    eprintln!(
        "a new TLS connection and one request: {:.2} ms on average over {n} (debug build)",
        started.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_s_own_pair_is_served_from_systemd_credentials() {
    let credentials = tempfile::tempdir().unwrap();
    let (cert, key) = pair(&["holdfast.site.lan", "127.0.0.1"], 2024, 2040);
    std::fs::write(credentials.path().join("https-cert"), &cert).unwrap();
    std::fs::write(credentials.path().join("https-key"), &key).unwrap();
    let site = Site::new(DEVICE_TOKEN, |port, dir| {
        format!(
            "[site]\nid = \"t\"\n[store]\npath = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n\
             tls = \"files\"\ntls_cert_file = \"https-cert\"\ntls_key_file = \"https-key\"\n\
             [[devices]]\nid = \"hh1\"\ntoken = \"{DEVICE_TOKEN}\"\n",
            dir.join("holdfast.db").display(),
        )
    });
    let base = site.base.replace("http://", "https://");
    let _app = Appliance::start_with(
        &site.config,
        &site.log(),
        &[(
            "CREDENTIALS_DIRECTORY",
            credentials.path().to_str().unwrap(),
        )],
    );
    let client = pinned_client(cert.as_bytes());
    wait_ok(&site, &client, &format!("{base}/healthz")).await;
    let tls = tls_status(&client, &base).await;
    assert_eq!(tls["mode"], "files", "{tls}");
    assert_eq!(tls["fingerprint_sha256"], fingerprint(cert.as_bytes()));
    assert!(!site.dir.path().join("tls").exists(), "nothing generated");
}
