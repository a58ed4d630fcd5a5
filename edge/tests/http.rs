//! The HTTP server over real loopback sockets.
//!
//! Under slow and flooding clients: clients that trickle headers or bodies are cut off within
//! the time-outs, a client over the caps is refused at once instead of being held, and
//! `/healthz` and `/readyz` still answer while the caps are reached, as do clients from other
//! addresses. And what it tells whom: probes are open and say nothing of the site, the
//! status, devices and printers take a token, the handheld page cannot be framed.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use holdfast::http::{AppState, ConnLimits, ServeOptions};
use holdfast::status::SiteStatus;
use holdfast::store::{Store, StoreOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "manager-token-for-the-connection-tests";
const DEVICE: &str = "device-token-for-the-connection-tests";

struct Server {
    addr: SocketAddr,
    store: Store,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(limits: ConnLimits) -> Server {
        Server::start_with(ServeOptions {
            limits,
            public_status: false,
        })
        .await
    }

    async fn start_with(options: ServeOptions) -> Server {
        Server::start_capped(options, None).await
    }

    /// A server on a store capped at `max_size_bytes`.
    async fn start_capped(options: ServeOptions, max_size_bytes: Option<u64>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = config();
        let mut store_options = StoreOptions::new(dir.path().join("h.db"), "t");
        store_options.max_size_bytes = max_size_bytes;
        let store = Store::open(store_options).unwrap();
        let floor = holdfast::floor::Floor::new(
            store.clone(),
            Default::default(),
            None,
            config.devices.clone(),
        );
        let server_store = store.clone();
        let state = AppState {
            manager_token: config.http.manager_token.clone(),
            ..AppState::new(
                store.clone(),
                floor,
                SiteStatus {
                    id: "t".into(),
                    name: "Connection tests".into(),
                },
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(holdfast::http::serve_with(
            listener,
            state,
            options,
            stop.clone(),
        ));
        Server {
            addr,
            store: server_store,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

/// A config with the manager's token and one handheld.
fn config() -> holdfast::config::Config {
    let text = format!(
        "[site]\nid = \"t\"\n[http]\nmanager_token = \"{MANAGER}\"\n[[devices]]\nid = \"h1\"\ntoken = \"{DEVICE}\"\n"
    );
    holdfast::config::RawConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap()
}

/// A connection from `from` (any loopback address: 127.0.0.0/8 is all ours).
async fn connect(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends one request and reads one answer: (status, the whole head and body read).
async fn exchange(stream: &mut TcpStream, request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n: usize = stream.read(&mut buf).await.unwrap_or_default();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// One request on a new connection from `from`, within `within`.
async fn get(from: [u8; 4], to: SocketAddr, path: &str, within: Duration) -> (u16, String) {
    let started = Instant::now();
    let answer = tokio::time::timeout(within, async {
        let mut stream = connect(from, to).await;
        exchange(
            &mut stream,
            &format!("GET {path} HTTP/1.1\r\nHost: holdfast\r\nConnection: close\r\n\r\n"),
        )
        .await
    })
    .await;
    match answer {
        Ok(answer) => answer,
        Err(_) => panic!(
            "GET {path} from {from:?} got no answer within {within:?} ({:?})",
            started.elapsed()
        ),
    }
}

/// A keep-alive connection served once by the full router (not the probes' one), kept open.
async fn hold(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let mut stream = connect(from, to).await;
    let (status, answer) = exchange(
        &mut stream,
        "GET /ui/app.css HTTP/1.1\r\nHost: holdfast\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    stream
}

/// Waits until the server closes `stream` (a read returns 0 or fails); `None` if it is
/// still open after `max`.
async fn closed_within(stream: &mut TcpStream, max: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(max, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_and_idle_keep_alive_are_closed_and_health_answers() {
    let server = Server::start(ConnLimits {
        max_connections: 1000,
        per_client: 1000,
        header_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let addr = server.addr;
    // 300 clients sending a header line every 200 ms, never the blank line that ends it.
    let started = Instant::now();
    let mut trickles = Vec::new();
    for i in 0..300u32 {
        trickles.push(tokio::spawn(async move {
            let mut stream = connect([127, 0, 1, (i % 200) as u8 + 1], addr).await;
            stream
                .write_all(b"GET /ui/ HTTP/1.1\r\nHost: holdfast\r\n")
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut buf = [0u8; 256];
            while Instant::now() < deadline {
                if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return Some(Instant::now());
                }
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
                {
                    return Some(Instant::now());
                }
            }
            None
        }));
    }
    // Meanwhile the probe answers at once.
    let probe = Instant::now();
    let (status, _) = get([127, 0, 0, 1], addr, "/healthz", Duration::from_secs(2)).await;
    assert_eq!(status, 200);
    let probe = probe.elapsed();
    let mut last = Duration::ZERO;
    for t in trickles {
        let closed = t
            .await
            .unwrap()
            .expect("a slow header kept its connection for 8 s");
        last = last.max(closed - started);
    }
    assert!(
        last < Duration::from_secs(4),
        "last slow header closed after {last:?}"
    );
    eprintln!("300 slow headers: all closed {last:?} after they began; /healthz took {probe:?}");

    // A keep-alive connection left idle after its answer is closed too.
    let mut stream = connect([127, 0, 0, 1], addr).await;
    let (status, _) = exchange(
        &mut stream,
        "GET /healthz HTTP/1.1\r\nHost: holdfast\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let idle = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        idle.is_some_and(|d| d < Duration::from_secs(3)),
        "idle keep-alive closed after {idle:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_answered_408_within_the_body_timeout() {
    let server = Server::start(ConnLimits {
        body_timeout: Duration::from_secs(1),
        max_connections: 1000,
        per_client: 1000,
        ..Default::default()
    })
    .await;
    let addr = server.addr;
    // 100 clients announcing 1,000 bytes and sending one every 200 ms, to an endpoint that
    // reads its body (the manager's resolve).
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..100u32 {
        slow.push(tokio::spawn(async move {
            let mut stream = connect([127, 0, 2, (i % 100) as u8 + 1], addr).await;
            stream
                .write_all(
                    format!(
                        "POST /api/v1/conflicts/1/resolve HTTP/1.1\r\nHost: holdfast\r\nAuthorization: Bearer {MANAGER}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while Instant::now() < deadline {
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
                {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
            (Instant::now(), String::from_utf8_lossy(&got).into_owned())
        }));
    }
    let mut last = Duration::ZERO;
    for t in slow {
        let (at, answer) = t.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(answer.contains("body_timeout"), "{answer}");
        last = last.max(at - started);
    }
    assert!(
        last < Duration::from_secs(4),
        "last slow body cut off after {last:?}"
    );
    eprintln!("100 slow bodies: all answered 408 and closed {last:?} after they began");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_caps_only_probes_are_served_and_other_clients_are_not_starved() {
    let server = Server::start(ConnLimits {
        max_connections: 40,
        per_client: 20,
        health_connections: 8,
        health_per_client: 4,
        header_timeout: Duration::from_secs(30),
        over_cap_header_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let addr = server.addr;
    // 20 keep-alive connections from one client, each served once and then held open.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(hold([127, 0, 3, 1], addr).await);
    }
    // The same client's 21st connection is refused fast, but a probe from it answers.
    let started = Instant::now();
    let (status, answer) = get([127, 0, 3, 1], addr, "/ui/", Duration::from_secs(2)).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer.contains("\"busy\"") && answer.contains("retry-after: 1"),
        "{answer}"
    );
    let (status, _) = get([127, 0, 3, 1], addr, "/healthz", Duration::from_secs(2)).await;
    assert_eq!(status, 200);
    let (status, answer) = get([127, 0, 3, 1], addr, "/readyz", Duration::from_secs(2)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Another handheld is served as usual; it and a third client take the global cap.
    held.push(hold([127, 0, 3, 2], addr).await);
    for _ in 0..19 {
        held.push(hold([127, 0, 3, 5], addr).await);
    }
    // A fourth client: only probes, fast.
    let probe = Instant::now();
    let (status, _) = get([127, 0, 3, 3], addr, "/healthz", Duration::from_secs(1)).await;
    assert_eq!(status, 200);
    let probe = probe.elapsed();
    let (status, _) = get([127, 0, 3, 3], addr, "/ui/", Duration::from_secs(1)).await;
    assert_eq!(status, 503);

    // Silent connections from two clients fill the probes' budget (four each): the next is
    // closed at once, not held...
    let mut silent = Vec::new();
    for client in [4, 6] {
        for _ in 0..4 {
            silent.push(connect([127, 0, 3, client], addr).await);
        }
    }
    for from in [[127, 0, 3, 9], [127, 0, 3, 4]] {
        let mut refused = connect(from, addr).await;
        let closed = closed_within(&mut refused, Duration::from_secs(1)).await;
        assert!(closed.is_some(), "a connection over every budget was held");
    }
    // ...and the silent ones time out after a second, freeing the budget for a probe.
    for mut s in silent {
        let closed = closed_within(&mut s, Duration::from_secs(3)).await;
        assert!(closed.is_some(), "a silent over-cap connection was held");
    }
    let (status, _) = get([127, 0, 3, 3], addr, "/healthz", Duration::from_secs(1)).await;
    assert_eq!(status, 200);

    // Once the held connections close, everyone is served again.
    drop(held);
    let (status, _) = get([127, 0, 3, 1], addr, "/ui/", Duration::from_secs(2)).await;
    let mut tries = 0;
    let mut status = status;
    while status != 200 && tries < 50 {
        // The server sees the closes asynchronously: ask again until it has.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = get([127, 0, 3, 1], addr, "/ui/", Duration::from_secs(2))
            .await
            .0;
        tries += 1;
    }
    assert_eq!(status, 200);
    eprintln!("at the global cap: /healthz answered in {probe:?}");
    server.stop().await;
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // Not below what the other tests of this file hold at once (about 700 descriptors).
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(4096), hard).unwrap();
    let raised = holdfast::runtime::raise_fd_limit();
    let (now, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert_eq!(raised, now);
    assert_eq!(now, hard.min(1 << 20).max(soft.min(4096)));
    // Leave the process as it was for the other tests.
    setrlimit(Resource::RLIMIT_NOFILE, soft.max(now), hard).unwrap();
}

/// `GET path` with an `Authorization: Bearer` header (or none).
async fn get_with(to: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = connect([127, 0, 0, 1], to).await;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    tokio::time::timeout(
        Duration::from_secs(5),
        exchange(
            &mut stream,
            &format!("GET {path} HTTP/1.1\r\nHost: holdfast\r\n{auth}Connection: close\r\n\r\n"),
        ),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_devices_and_printers_take_a_token_and_probes_name_nothing() {
    let server = Server::start(ConnLimits::default()).await;
    let addr = server.addr;
    for path in ["/api/v1/status", "/api/v1/devices", "/api/v1/printers"] {
        let (status, answer) = get_with(addr, path, None).await;
        assert_eq!(status, 401, "{path}: {answer}");
        assert!(!answer.contains("h.db"), "{answer}");
        let (status, _) = get_with(addr, path, Some("not-a-token-of-this-site")).await;
        assert_eq!(status, 401, "{path}");
        for token in [MANAGER, DEVICE] {
            let (status, answer) = get_with(addr, path, Some(token)).await;
            assert_eq!(status, 200, "{path}: {answer}");
        }
    }
    let (_, answer) = get_with(addr, "/api/v1/status", Some(DEVICE)).await;
    assert!(answer.contains("h.db"), "staff see the database: {answer}");
    // The probes: open, and nothing about the site in them.
    let (status, answer) = get_with(addr, "/healthz", None).await;
    assert_eq!(status, 200);
    assert!(answer.ends_with("\r\n\r\nok\n"), "{answer:?}");
    let (status, answer) = get_with(addr, "/readyz", None).await;
    assert_eq!(status, 200);
    assert!(answer.ends_with(r#"{"ready":true}"#), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_status_shows_the_mode_and_queue_counts_only() {
    let server = Server::start_with(ServeOptions {
        limits: ConnLimits::default(),
        public_status: true,
    })
    .await;
    let (status, answer) = get_with(server.addr, "/api/v1/status", None).await;
    assert_eq!(status, 200, "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["mode", "mode_since", "queue"], "{json}");
    assert_eq!(json["queue"]["pending"], 0);
    // A token still sees everything.
    let (_, answer) = get_with(server.addr, "/api/v1/status", Some(MANAGER)).await;
    assert!(answer.contains("\"database\""), "{answer}");
    // Devices and printers stay behind a token.
    assert_eq!(get_with(server.addr, "/api/v1/devices", None).await.0, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handheld_page_cannot_be_framed() {
    let server = Server::start(ConnLimits::default()).await;
    let (status, answer) = get_with(server.addr, "/ui/", None).await;
    assert_eq!(status, 200);
    let head = answer
        .split_once("\r\n\r\n")
        .unwrap()
        .0
        .to_ascii_lowercase();
    assert!(head.contains("x-frame-options: deny"), "{head}");
    let csp = head
        .lines()
        .find(|l| l.starts_with("content-security-policy:"))
        .unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{head}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_with_the_reason_while_the_store_cannot_take_writes() {
    let server = Server::start_capped(ServeOptions::default(), Some(1024 * 1024)).await;
    let (status, _) = get_with(server.addr, "/readyz", None).await;
    assert_eq!(status, 200);
    // Fill the store to its cap, as scans would.
    let entry = || holdfast::store::NewEntry {
        id: None,
        device: "h1".into(),
        operator: Some("op-1".into()),
        op: holdfast_sync::ops::Operation::Pick(holdfast_sync::ops::PickOp {
            picking_id: 1,
            move_id: 1,
            product_id: 1,
            location_id: 10,
            lot_name: None,
            package_id: None,
            quantity: 1.0,
            view_quantity: 0.0,
        }),
    };
    let mut n = 0;
    let err = loop {
        match server
            .store
            .append(holdfast::store::Lane::Device, entry())
            .await
        {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 100_000, "the cap never bit");
    };
    assert!(matches!(err, holdfast::store::StoreError::Full), "{err}");
    let (status, answer) = get_with(server.addr, "/readyz", None).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains(r#""ready":false"#), "{answer}");
    assert!(answer.contains("the database is full"), "{answer}");
    assert!(!answer.contains("h.db"), "{answer}");
    // Alive all the same.
    assert_eq!(get_with(server.addr, "/healthz", None).await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_is_refused_not_buffered() {
    let server = Server::start(ConnLimits::default()).await;
    let mut stream = connect([127, 0, 0, 1], server.addr).await;
    let big = "x".repeat(200 * 1024);
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(5),
        exchange(
            &mut stream,
            &format!("GET /healthz HTTP/1.1\r\nHost: holdfast\r\nX-Big: {big}\r\n\r\n"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 431);
    server.stop().await;
}

/// The access rules are the routes: every route the router has is listed as public, device,
/// manager or console page (an unlisted one answers 500, see `http::has_rule`), and every
/// listed route exists (none answers the fallback's 404). Anonymous clients are refused on
/// every device and manager route and redirected from every page; the public ones answer.
#[tokio::test]
async fn every_route_has_an_access_rule_and_only_public_ones_answer_anonymous_clients() {
    use holdfast::http::{
        CONSOLE_PAGES, DEVICE_ROUTES, MANAGER_ROUTES, METRICS_ROUTES, PUBLIC_ROUTES, has_rule,
    };
    assert!(!has_rule(&axum::http::Method::GET, "/api/v1/new-route"));
    assert!(!has_rule(&axum::http::Method::DELETE, "/api/v1/me"));
    assert!(has_rule(&axum::http::Method::HEAD, "/healthz"));
    let server = Server::start(ConnLimits::default()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", server.addr);
    let ask = |method: &str, path: &str| {
        let url = format!(
            "{base}{}",
            path.replace("{id}", "1").replace("{action}", "cancel")
        );
        http.request(method.parse().unwrap(), url)
    };
    for (method, path) in DEVICE_ROUTES.iter().chain(MANAGER_ROUTES) {
        let answer = ask(method, path).send().await.unwrap();
        assert_eq!(answer.status(), 401, "anonymous {method} {path}");
    }
    for path in CONSOLE_PAGES {
        let answer = ask("GET", path).send().await.unwrap();
        assert_eq!(answer.status(), 303, "anonymous GET {path}");
        assert_eq!(answer.headers()["location"], "/console/login", "{path}");
    }
    for (method, path) in PUBLIC_ROUTES {
        let answer = ask(method, path).send().await.unwrap();
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap();
        assert!(
            status != 404 && status != 500 && status != 401,
            "public {method} {path}: {status} {body}"
        );
    }
    // Scrapers' routes answer this client because it is on loopback; from the LAN they take
    // the metrics token (edge/tests/metrics.rs). No route is in two lists.
    for (method, path) in METRICS_ROUTES {
        let answer = ask(method, path).send().await.unwrap();
        assert_eq!(answer.status(), 200, "loopback {method} {path}");
        let others = PUBLIC_ROUTES
            .iter()
            .chain(DEVICE_ROUTES)
            .chain(MANAGER_ROUTES);
        assert!(
            !others.into_iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is listed twice"
        );
    }
    server.stop().await;
}
