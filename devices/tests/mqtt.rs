//! The MQTT scanner transport against a real broker (rumqttd, in this process): scans in,
//! replies out, duplicate deliveries answered once, bad payloads refused, and a broker
//! restart (a fresh broker with no memory of the session) survived by re-subscribing, and
//! TLS with the site CA, a client certificate and a login (certificates made per run). The
//! same against Mosquitto, the broker sites run, at the end.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_devices::hub::DeviceEvent;
use holdfast_devices::mqtt::{self, MqttSettings, ScannerClient};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

mod support;
use support::pki::Pki;
use support::{TestHub, eventually, free_addr};

fn start_broker() -> SocketAddr {
    let addr: SocketAddr = free_addr();
    let config: rumqttd::Config = serde_json::from_value(json!({
        "id": 0,
        "router": {"id": 0, "max_connections": 100, "max_outgoing_packet_count": 200,
                   "max_segment_size": 1_048_576, "max_segment_count": 10},
        "v4": {"1": {"name": "v4", "listen": addr.to_string(), "next_connection_delay_ms": 1,
                     "connections": {"connection_timeout_ms": 5000, "max_payload_size": 20480,
                                     "max_inflight_count": 100, "dynamic_filters": true}}},
    }))
    .unwrap();
    let mut broker = rumqttd::Broker::new(config);
    std::thread::spawn(move || {
        let _ = broker.start();
    });
    addr
}

/// A TCP relay in front of the broker; `restart` drops every connection and points it at a
/// new broker (what a broker restart looks like from the appliance: the link breaks, the
/// broker that answers next knows nothing of the old session).
#[derive(Clone)]
struct Relay {
    upstream: Arc<Mutex<SocketAddr>>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> (Relay, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            upstream: Arc::new(Mutex::new(upstream)),
            generation: Arc::new(tokio::sync::watch::channel(0).0),
        };
        let r = relay.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = *r.upstream.lock().unwrap();
                let mut generation = r.generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = generation.changed() => {
                            let _ = client.shutdown().await;
                        }
                    }
                });
            }
        });
        (relay, port)
    }

    fn restart(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
        self.generation.send_modify(|g| *g += 1);
    }
}

fn settings(port: u16) -> MqttSettings {
    MqttSettings {
        link: "broker".into(),
        host: "127.0.0.1".into(),
        port,
        client_id: "appliance".into(),
        username: None,
        password: None,
        tls: None,
        scan_topic: "site/scanner/{device}/scan".into(),
        reply_topic: "site/scanner/{device}/reply".into(),
        keep_alive: Duration::from_secs(5),
        devices: vec![],
        // These tests scan under many ids; what is served is tested on its own below.
        device_pattern: Some("*".parse().unwrap()),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(300),
    }
}

/// A scanner (the crate's own scanner client), publishing on `topic`.
async fn scanner_on(port: u16, name: &str, topic: &str, reply: &str) -> ScannerClient {
    ScannerClient::connect(
        "127.0.0.1",
        port,
        name,
        topic,
        reply,
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

async fn scanner(port: u16, device: &str) -> ScannerClient {
    scanner_on(
        port,
        &format!("scanner-{device}"),
        &format!("site/scanner/{device}/scan"),
        &format!("site/scanner/{device}/reply"),
    )
    .await
}

async fn wait_replies(s: &ScannerClient, n: usize) -> Vec<Value> {
    eventually(&format!("{n} replies"), || s.replies().len() >= n).await;
    s.replies()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_in_replies_out_bad_payloads_refused() {
    let broker = start_broker();
    let hub = TestHub::default();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(mqtt::run(
        settings(broker.port()),
        hub.clone(),
        cancel.clone(),
    ));
    let events = hub.events.clone();
    eventually("connected", || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|(d, e)| d == "broker" && matches!(e, DeviceEvent::Connected { .. }))
    })
    .await;
    // The appliance subscribes right after CONNACK; give the SUBSCRIBE a moment to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = scanner(broker.port(), "dock-1").await;
    // Raw payload with a GS1 separator, JSON with an id, a refused scan, garbage JSON.
    s.publish_raw(b"0105901234123457\x1d10LOT".to_vec())
        .await
        .unwrap();
    s.publish_raw(Vec::from(
        json!({"id": "a1", "scan": "WH-A-01"}).to_string(),
    ))
    .await
    .unwrap();
    s.publish_raw(b"BAD".to_vec()).await.unwrap();
    s.publish_raw(b"{\"scan\": 5}".to_vec()).await.unwrap();
    let replies = wait_replies(&s, 4).await;
    assert_eq!(replies[0]["ok"], true);
    assert_eq!(replies[0]["scan"], "0105901234123457\u{1d}10LOT");
    assert_eq!(
        (replies[1]["id"].clone(), replies[1]["ok"].clone()),
        (json!("a1"), json!(true))
    );
    assert_eq!(
        (replies[2]["ok"].clone(), replies[2]["code"].clone()),
        (json!(false), json!("refused"))
    );
    assert_eq!(
        (replies[3]["ok"].clone(), replies[3]["code"].clone()),
        (json!(false), json!("bad_payload"))
    );
    let scans = hub.scans.lock().unwrap().clone();
    assert_eq!(scans.len(), 3, "garbage never reaches the hub");
    assert_eq!(
        scans[1].2.as_deref(),
        Some("mqtt:a1"),
        "the message id is the idempotency key"
    );
    // A topic level that is no device id is refused, not served.
    let stray = scanner_on(
        broker.port(),
        "stray",
        "site/scanner/bad id!/scan",
        "stray/reply",
    )
    .await;
    stray.publish_raw(b"X".to_vec()).await.unwrap();
    eventually("refusal recorded", || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|(_, e)| matches!(e, DeviceEvent::Refused { .. }))
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_is_survived_and_duplicates_keep_their_key() {
    let first = start_broker();
    let (relay, port) = Relay::start(first).await;
    let hub = TestHub::default();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(mqtt::run(settings(port), hub.clone(), cancel.clone()));
    let events = hub.events.clone();
    let connects = move || {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|(d, e)| d == "broker" && matches!(e, DeviceEvent::Connected { .. }))
            .count()
    };
    eventually("connected", || connects() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = scanner(first.port(), "dock-2").await;
    s.publish_raw(json!({"id": "x1", "scan": "ONE"}).to_string().into_bytes())
        .await
        .unwrap();
    wait_replies(&s, 1).await;

    // The broker goes away and another one (no sessions, no subscriptions) takes its place.
    let second = start_broker();
    relay.restart(second);
    eventually("reconnected", || connects() == 2).await;
    let events = hub.events.clone();
    assert!(
        events.lock().unwrap().iter().any(
            |(d, e)| d == "broker" && matches!(e, DeviceEvent::Disconnected { error: Some(_) })
        ),
        "the outage is reported"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s2 = scanner(second.port(), "dock-2").await;
    // The same message delivered twice (a QoS 1 redelivery): both carry the same key, so the
    // appliance acts once (the floor's idempotency) and both get an answer.
    s2.publish_raw(json!({"id": "x2", "scan": "TWO"}).to_string().into_bytes())
        .await
        .unwrap();
    s2.publish_raw(json!({"id": "x2", "scan": "TWO"}).to_string().into_bytes())
        .await
        .unwrap();
    let replies = wait_replies(&s2, 2).await;
    assert!(replies.iter().all(|r| r["id"] == "x2" && r["ok"] == true));
    let keys: Vec<Option<String>> = hub
        .scans
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.2.clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            Some("mqtt:x1".into()),
            Some("mqtt:x2".into()),
            Some("mqtt:x2".into())
        ]
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// A broker that wants credentials on one listener (the appliance's) and none on another
/// (the test's scanners), so the scanners need no credentials of their own.
fn start_broker_with_login(user: &str, password: &str) -> (SocketAddr, SocketAddr) {
    let secured: SocketAddr = free_addr();
    let open: SocketAddr = free_addr();
    let connections = |auth: Value| {
        json!({"connection_timeout_ms": 5000, "max_payload_size": 20480,
               "max_inflight_count": 100, "dynamic_filters": true, "auth": auth})
    };
    let config: rumqttd::Config = serde_json::from_value(json!({
        "id": 0,
        "router": {"id": 0, "max_connections": 100, "max_outgoing_packet_count": 200,
                   "max_segment_size": 1_048_576, "max_segment_count": 10},
        "v4": {
            "1": {"name": "secured", "listen": secured.to_string(), "next_connection_delay_ms": 1,
                  "connections": connections(json!({user: password}))},
            "2": {"name": "open", "listen": open.to_string(), "next_connection_delay_ms": 1,
                  "connections": connections(Value::Null)},
        },
    }))
    .unwrap();
    let mut broker = rumqttd::Broker::new(config);
    std::thread::spawn(move || {
        let _ = broker.start();
    });
    (secured, open)
}

/// TLS in front of the broker (as a TLS-terminating listener or a broker's own TLS port
/// would be): handshakes, then relays MQTT to the broker. Records refused handshakes.
async fn tls_front(
    upstream: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let log = refused.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        if let Ok(mut broker) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                        }
                    }
                    Err(e) => log.lock().unwrap().push(e.to_string()),
                }
            });
        }
    });
    (port, refused)
}

fn link_events(hub: &TestHub) -> Vec<DeviceEvent> {
    hub.events
        .lock()
        .unwrap()
        .iter()
        .filter(|(d, _)| d == "broker")
        .map(|(_, e)| e.clone())
        .collect()
}

/// Runs the appliance's link with `settings` until its first connect or outage report.
async fn first_report(settings: MqttSettings) -> (TestHub, DeviceEvent) {
    let hub = TestHub::default();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(mqtt::run(settings, hub.clone(), cancel.clone()));
    eventually("a link report", || !link_events(&hub).is_empty()).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    let first = link_events(&hub).remove(0);
    (hub, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_and_a_login() {
    let (secured, open) = start_broker_with_login("holdfast", "s3cret");
    let pki = Pki::new();
    let (port, refused) = tls_front(secured, pki.server_config()).await;
    let (cert, key) = pki.client("appliance");
    let tls = |ca: &str, client: Option<(std::path::PathBuf, std::path::PathBuf)>| {
        let mut s = settings(port);
        s.tls = Some(mqtt::TlsSettings {
            ca_file: pki.path(ca),
            client_cert: client,
        });
        s.username = Some("holdfast".into());
        s.password = Some(secrecy::SecretString::from("s3cret"));
        s
    };

    // The whole way: TLS with the site CA, a client certificate, a login; a scan comes in
    // through the open listener and its reply goes back.
    let hub = TestHub::default();
    let cancel = CancellationToken::new();
    let good = tls("ca.pem", Some((cert.clone(), key.clone())));
    let task = tokio::spawn(mqtt::run(good.clone(), hub.clone(), cancel.clone()));
    eventually("connected over TLS", || {
        link_events(&hub)
            .iter()
            .any(|e| matches!(e, DeviceEvent::Connected { .. }))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = scanner(open.port(), "dock-tls").await;
    s.publish_raw(b"WH-A-01".to_vec()).await.unwrap();
    let replies = wait_replies(&s, 1).await;
    assert_eq!(replies[0]["ok"], true);
    assert_eq!(hub.data(), vec![b"WH-A-01".to_vec()]);
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert!(refused.lock().unwrap().is_empty(), "{refused:?}");

    // A broker whose certificate the configured CA did not sign: no connection, and the
    // report names the certificate.
    let (_, report) = first_report(tls("other-ca.pem", Some((cert.clone(), key.clone())))).await;
    let DeviceEvent::Disconnected { error: Some(error) } = report else {
        panic!("expected an outage, got {report:?}");
    };
    assert!(error.contains("certificate"), "{error}");

    // Without a client certificate the broker refuses the handshake.
    let (_, report) = first_report(tls("ca.pem", None)).await;
    let DeviceEvent::Disconnected { error: Some(error) } = report else {
        panic!("expected an outage, got {report:?}");
    };
    assert!(error.contains("CertificateRequired"), "{error}");
    eventually("the broker refused the handshake", || {
        refused
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("certificate"))
    })
    .await;

    // A wrong password (all else as in the first run): TLS works, the broker drops the
    // login.
    let mut wrong = good.clone();
    wrong.password = Some(secrecy::SecretString::from("guess"));
    let (_, report) = first_report(wrong).await;
    assert!(
        matches!(report, DeviceEvent::Disconnected { error: Some(_) }),
        "{report:?}"
    );

    // Unusable TLS files are a settings error at start, not a retry loop.
    let mut missing = good;
    missing.tls.as_mut().unwrap().ca_file = pki.path("absent.pem");
    let err = mqtt::run(missing, TestHub::default(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("absent.pem"), "{err}");
}

// Mosquitto, the broker sites run (a child process; scripts/test.sh installs it): what an
// in-process broker cannot show, a persistent session holding scans for the appliance, a
// broker process killed and started again, and the broker's own TLS (OpenSSL) against the
// appliance's rustls.

use support::mosquitto::{self, Mosquitto};

/// Starts the appliance's link; returns once it reported a new connection and its
/// subscription had a moment to land.
async fn start_link(
    settings: MqttSettings,
    hub: &TestHub,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), mqtt::MqttError>>,
) {
    let connected = |hub: &TestHub| {
        link_events(hub)
            .iter()
            .filter(|e| matches!(e, DeviceEvent::Connected { .. }))
            .count()
    };
    let before = connected(hub);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(mqtt::run(settings, hub.clone(), cancel.clone()));
    eventually("the link connected", || connected(hub) > before).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (cancel, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_holds_scans_while_the_appliance_restarts_and_none_is_done_twice() {
    let Some(bin) = mosquitto::required("mosquitto_holds_scans") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::plain(&bin, dir.path(), free_addr(), true);
    let port = broker.addr().port();
    let hub = TestHub::default();
    let (cancel, task) = start_link(settings(port), &hub).await;
    let s = scanner(port, "dock-m").await;

    // A raw scan (no id, so nothing but the PUBACK keeps it from being done twice) is in
    // hand when the appliance stops: the stop answers and acknowledges it first.
    *hub.delay.lock().unwrap() = Duration::from_millis(600);
    s.publish_raw(b"RAW-1".to_vec()).await.unwrap();
    let arrived = hub.arrived.clone();
    eventually("the scan is in hand", || *arrived.lock().unwrap() == 1).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(hub.data(), vec![b"RAW-1".to_vec()]);
    let replies = wait_replies(&s, 1).await;
    assert_eq!(
        (replies[0]["scan"].clone(), replies[0]["ok"].clone()),
        (json!("RAW-1"), json!(true)),
        "the scan in hand was answered before the link closed"
    );

    // While the appliance is away its session on the broker keeps the scans (QoS 1).
    *hub.delay.lock().unwrap() = Duration::ZERO;
    s.publish_raw(
        json!({"id": "away-2", "scan": "TWO"})
            .to_string()
            .into_bytes(),
    )
    .await
    .unwrap();
    s.publish_raw(b"RAW-3".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cancel, task) = start_link(settings(port), &hub).await;
    eventually("the held scans are served", || hub.data().len() >= 3).await;
    let replies = wait_replies(&s, 3).await;
    // Anything delivered again would show up by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hub.data(),
        vec![b"RAW-1".to_vec(), b"TWO".to_vec(), b"RAW-3".to_vec()],
        "each scan done once; broker log: {}",
        broker.log_text()
    );
    assert_eq!(s.replies().len(), 3);
    assert_eq!(replies[1]["id"], "away-2");
    assert_eq!(replies[2]["scan"], "RAW-3");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_killed_and_started_again_on_the_same_port() {
    let Some(bin) = mosquitto::required("mosquitto_killed") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::plain(&bin, dir.path(), free_addr(), true);
    let port = broker.addr().port();
    let hub = TestHub::default();
    let (cancel, task) = start_link(settings(port), &hub).await;
    let s = scanner(port, "dock-k").await;
    s.publish_raw(json!({"id": "k1", "scan": "ONE"}).to_string().into_bytes())
        .await
        .unwrap();
    wait_replies(&s, 1).await;

    // SIGKILL: no persistence, so the new process knows no session and no subscription.
    broker.restart();
    eventually("the outage is reported", || {
        link_events(&hub)
            .iter()
            .any(|e| matches!(e, DeviceEvent::Disconnected { error: Some(_) }))
    })
    .await;
    eventually("reconnected", || {
        link_events(&hub)
            .iter()
            .filter(|e| matches!(e, DeviceEvent::Connected { .. }))
            .count()
            == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A scanner connecting to the new process is served.
    let s = scanner_on(
        port,
        "scanner-dock-k-again",
        "site/scanner/dock-k/scan",
        "site/scanner/dock-k/reply",
    )
    .await;
    let reply = s
        .scan_with_id("k2", "TWO", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(hub.data(), vec![b"ONE".to_vec(), b"TWO".to_vec()]);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_tls_with_a_client_certificate_and_a_password_file() {
    let Some(bin) = mosquitto::required("mosquitto_tls") else {
        return;
    };
    let pki = Pki::new();
    let (cert, key) = pki.broker_files();
    mosquitto::password_file(&pki.path("passwd"), "holdfast", "s3cret");
    let (open, secured) = (free_addr(), free_addr());
    // Scanners on a plain listener; the appliance on TLS with a certificate and a login.
    let config = format!(
        "per_listener_settings true\n\
         listener {} 127.0.0.1\nallow_anonymous true\n\
         listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
         cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        open.port(),
        secured.port(),
        pki.path("passwd").display(),
        pki.path("ca.pem").display(),
        cert.display(),
        key.display(),
    );
    let broker = Mosquitto::start(&bin, pki.dir.path(), open, &config);
    let (client_cert, client_key) = pki.client("appliance");
    let tls = |password: &str, client: Option<(std::path::PathBuf, std::path::PathBuf)>| {
        let mut s = settings(secured.port());
        s.tls = Some(mqtt::TlsSettings {
            ca_file: pki.path("ca.pem"),
            client_cert: client,
        });
        s.username = Some("holdfast".into());
        s.password = Some(secrecy::SecretString::from(password));
        s
    };
    let both = Some((client_cert, client_key));

    let hub = TestHub::default();
    let (cancel, task) = start_link(tls("s3cret", both.clone()), &hub).await;
    let s = scanner(open.port(), "dock-tls").await;
    s.publish_raw(b"WH-A-01".to_vec()).await.unwrap();
    let replies = wait_replies(&s, 1).await;
    assert_eq!(replies[0]["ok"], true, "broker log: {}", broker.log_text());
    cancel.cancel();
    task.await.unwrap().unwrap();

    // A wrong password: TLS works, the broker refuses the login, and the report says so.
    let (_, report) = first_report(tls("guess", both)).await;
    let DeviceEvent::Disconnected { error: Some(error) } = report else {
        panic!("expected an outage, got {report:?}");
    };
    assert!(
        error.contains("NotAuthorized") || error.contains("BadUserNamePassword"),
        "{error}"
    );

    // No client certificate: Mosquitto (OpenSSL) ends the handshake.
    let (_, report) = first_report(tls("s3cret", None)).await;
    assert!(
        matches!(report, DeviceEvent::Disconnected { error: Some(_) }),
        "{report:?}"
    );
}

/// A bare MQTT client for what the scanner client never sends (big or retained messages);
/// its event loop runs in the background.
async fn raw_client(port: u16, id: &str) -> rumqttc::AsyncClient {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_scan_is_refused_without_breaking_the_link_and_a_flood_hears_busy() {
    let broker = start_broker();
    let hub = TestHub::default();
    let (cancel, task) = start_link(settings(broker.port()), &hub).await;
    let s = scanner(broker.port(), "dock-big").await;

    // 18 KB: more than a scan may be, less than a packet the link reads. Refused with a
    // reason, acknowledged, and the link stays up.
    let big = raw_client(broker.port(), "big-sender").await;
    big.publish(
        "site/scanner/dock-big/scan",
        rumqttc::QoS::AtLeastOnce,
        false,
        vec![b'7'; 18 * 1024],
    )
    .await
    .unwrap();
    let replies = wait_replies(&s, 1).await;
    assert_eq!(replies[0]["code"], "bad_payload", "{}", replies[0]);
    let reply = s
        .scan_with_id("after", "WH-A-01", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reply["ok"], true);
    // (The broker thread may not listen yet at the very first try: count from the connect.)
    let events = link_events(&hub);
    let connected = events
        .iter()
        .position(|e| matches!(e, DeviceEvent::Connected { .. }))
        .unwrap();
    assert!(
        !events[connected..]
            .iter()
            .any(|e| matches!(e, DeviceEvent::Disconnected { .. })),
        "{events:?}"
    );

    // A device that floods faster than it is answered: what does not fit its queue is
    // answered "busy" (and acknowledged); every scan gets an answer of one kind or the other.
    *hub.delay.lock().unwrap() = Duration::from_millis(50);
    let flood = scanner(broker.port(), "dock-flood").await;
    for i in 0..90 {
        flood
            .publish_raw(
                json!({"id": format!("f{i}"), "scan": "X"})
                    .to_string()
                    .into_bytes(),
            )
            .await
            .unwrap();
    }
    let replies = wait_replies(&flood, 90).await;
    let busy = replies.iter().filter(|r| r["code"] == "busy").count();
    assert!(busy >= 1, "{replies:?}");
    assert!(
        replies
            .iter()
            .filter(|r| r["code"] == "busy")
            .all(|r| r["id"].as_str().is_some_and(|id| id.starts_with('f'))),
        "a busy answer names its message"
    );
    assert_eq!(hub.data().len() - 1, 90 - busy, "the rest were served");
    *hub.delay.lock().unwrap() = Duration::ZERO;
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_scan_is_never_acted_on() {
    let Some(bin) = mosquitto::required("a_retained_scan") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::plain(&bin, dir.path(), free_addr(), true);
    let port = broker.addr().port();
    // A scanner misconfigured to retain: the broker would hand this scan to the appliance
    // on every (re)subscription.
    let sender = raw_client(port, "retaining-scanner").await;
    sender
        .publish(
            "site/scanner/dock-r/scan",
            rumqttc::QoS::AtLeastOnce,
            true,
            b"OLD-SCAN".to_vec(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hub = TestHub::default();
    let (cancel, task) = start_link(settings(port), &hub).await;
    eventually("the retained scan is refused", || hub.refusals() == 1).await;
    assert_eq!(
        refusals_of(&hub, holdfast_devices::hub::Refusal::Retained),
        1,
        "counted as retained"
    );
    let s = scanner(port, "dock-r").await;
    let reply = s
        .scan_with_id("r1", "NEW-SCAN", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reply["ok"], true);
    assert_eq!(hub.data(), vec![b"NEW-SCAN".to_vec()]);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// A message as a bare client received it: topic, payload.
type Received = (String, Vec<u8>);

/// What a bare client saw: publishes received and how its subscriptions were answered.
#[derive(Clone, Default)]
struct Seen {
    publishes: Arc<Mutex<Vec<Received>>>,
    sub_acks: Arc<Mutex<Vec<rumqttc::SubAck>>>,
    disconnects: Arc<Mutex<usize>>,
}

/// A bare MQTT client with a login, recording what it receives, once the broker took it.
/// It does not reconnect: its event loop stops (counted) at the first error.
async fn client_as(
    port: u16,
    id: &str,
    login: Option<(&str, &str)>,
) -> (rumqttc::AsyncClient, Seen) {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
    let seen = Seen::default();
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    let mut connected_tx = Some(connected_tx);
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => s
                    .publishes
                    .lock()
                    .unwrap()
                    .push((p.topic.clone(), p.payload.to_vec())),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(a))) => {
                    s.sub_acks.lock().unwrap().push(a)
                }
                Ok(_) => {}
                Err(_) => {
                    *s.disconnects.lock().unwrap() += 1;
                    return;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), connected_rx)
        .await
        .unwrap()
        .unwrap();
    (client, seen)
}

fn refusals_of(hub: &TestHub, reason: holdfast_devices::hub::Refusal) -> usize {
    hub.count(|e| matches!(e, DeviceEvent::Refused { reason: r, .. } if *r == reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_device_id_is_refused_counted_and_never_served() {
    use holdfast_devices::hub::Refusal;
    let broker = start_broker();
    let hub = TestHub::default();
    let mut listed = settings(broker.port());
    listed.devices = vec!["dock-1".into()];
    listed.device_pattern = Some("gun-*".parse().unwrap());
    let (cancel, task) = start_link(listed, &hub).await;

    // Anyone on the broker publishing as a handheld the appliance knows from HTTP, or as
    // any id nobody listed: refused, counted on the link, no reply, nothing reaches the hub.
    let stranger = scanner(broker.port(), "demo-handheld").await;
    stranger.publish_raw(b"OP-ALICE".to_vec()).await.unwrap();
    let other = scanner(broker.port(), "gun").await;
    other.publish_raw(b"OP-ALICE".to_vec()).await.unwrap();
    eventually("both refused", || {
        refusals_of(&hub, Refusal::UnlistedDevice) == 2
    })
    .await;

    // The listed id and an id matching the pattern are served.
    let listed = scanner(broker.port(), "dock-1").await;
    let r = listed
        .scan_with_id("l1", "WH-A-01", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "{r}");
    let matched = scanner(broker.port(), "gun-7").await;
    let r = matched
        .scan_with_id("g1", "WH-A-02", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "{r}");

    let served: Vec<String> = hub
        .scans
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0.clone())
        .collect();
    assert_eq!(served, vec!["dock-1".to_owned(), "gun-7".to_owned()]);
    assert!(stranger.replies().is_empty() && other.replies().is_empty());
    let on_link = hub
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|(d, e)| {
            d == "broker"
                && matches!(
                    e,
                    DeviceEvent::Refused {
                        reason: Refusal::UnlistedDevice,
                        ..
                    }
                )
        })
        .count();
    assert_eq!(on_link, 2, "counted on the broker link");
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_huge_message_is_refused_once_and_silences_no_scanner_across_restarts() {
    let Some(bin) = mosquitto::required("one_huge_message") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Mosquitto at its defaults: it takes publishes up to 256 MiB.
    let broker = Mosquitto::plain(&bin, dir.path(), free_addr(), true);
    let port = broker.addr().port();
    let hub = TestHub::default();
    let (cancel, task) = start_link(settings(port), &hub).await;
    let victim = scanner(port, "dock-a").await;
    let other = scanner(port, "dock-b").await;

    let (big, _) = client_as(port, "big-sender", None).await;
    big.publish(
        "site/scanner/dock-a/scan",
        rumqttc::QoS::AtLeastOnce,
        false,
        vec![b'7'; 1536 * 1024],
    )
    .await
    .unwrap();
    let replies = wait_replies(&victim, 1).await;
    assert_eq!(replies[0]["code"], "bad_payload", "{}", replies[0]);

    // Another scanner is answered at once: the link did not break over it.
    let started = std::time::Instant::now();
    let r = other
        .scan_with_id("b1", "WH-A-01", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    let took = started.elapsed();
    eprintln!("after a 1.5 MB publish, another scanner was answered in {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(
        hub.disconnects(),
        0,
        "the link stayed up: {:?}; broker log: {}",
        link_events(&hub),
        broker.log_text()
    );

    // The appliance restarts: the huge message was acknowledged, so its session does not
    // hold it; no redelivery, no loop, scanners served.
    cancel.cancel();
    task.await.unwrap().unwrap();
    let (cancel, task) = start_link(settings(port), &hub).await;
    let r = other
        .scan_with_id("b2", "WH-A-02", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        victim.replies().len(),
        1,
        "answered once: {:?}",
        victim.replies()
    );
    assert_eq!(hub.disconnects(), 0, "{:?}", link_events(&hub));
    assert_eq!(hub.data(), vec![b"WH-A-01".to_vec(), b"WH-A-02".to_vec()]);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_mosquitto_config_holds_each_scanner_to_its_own_topics() {
    let Some(bin) = mosquitto::required("the_shipped_mosquitto_config") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("holdfast.passwd");
    mosquitto::password_file_with(
        &passwd,
        &[
            ("holdfast", "appliance-pw"),
            ("dock-a", "a-pw"),
            ("dock-b", "b-pw"),
        ],
    );
    let addr = free_addr();
    let broker = Mosquitto::start(
        &bin,
        dir.path(),
        addr,
        &mosquitto::shipped_config(addr, &passwd),
    );
    let port = addr.port();
    let topic = |device: &str, kind: &str| format!("holdfast/s1/scanner/{device}/{kind}");

    let hub = TestHub::default();
    let mut link = settings(port);
    link.scan_topic = topic("{device}", "scan");
    link.reply_topic = topic("{device}", "reply");
    link.username = Some("holdfast".into());
    link.password = Some(secrecy::SecretString::from("appliance-pw"));
    link.devices = vec!["dock-a".into(), "dock-b".into()];
    link.device_pattern = None;
    let (cancel, task) = start_link(link, &hub).await;

    // Nobody gets in without a login.
    let anonymous = rumqttc::MqttOptions::new("anon", "127.0.0.1", port);
    let (_anon, mut anon_loop) = rumqttc::AsyncClient::new(anonymous, 8);
    let refused = tokio::time::timeout(Duration::from_secs(5), anon_loop.poll())
        .await
        .unwrap();
    assert!(refused.is_err(), "{refused:?}");

    let login = |user: &'static str, pw: &'static str| Some((user, pw));
    let a = ScannerClient::connect_with_login(
        "127.0.0.1",
        port,
        "dock-a",
        login("dock-a", "a-pw"),
        &topic("dock-a", "scan"),
        &topic("dock-a", "reply"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let b = ScannerClient::connect_with_login(
        "127.0.0.1",
        port,
        "dock-b",
        login("dock-b", "b-pw"),
        &topic("dock-b", "scan"),
        &topic("dock-b", "reply"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let r = a
        .scan_with_id("a1", "A-OWN", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "{r}; broker log: {}", broker.log_text());

    // dock-a, logged in as itself, publishes on dock-b's scan topic and listens on dock-b's
    // reply topic.
    let (forger, forger_seen) = client_as(port, "dock-a-forger", login("dock-a", "a-pw")).await;
    forger
        .subscribe(topic("dock-b", "reply"), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    forger
        .publish(
            topic("dock-b", "scan"),
            rumqttc::QoS::AtLeastOnce,
            false,
            b"FORGED".to_vec(),
        )
        .await
        .unwrap();
    eventually("the snooping subscription was answered", || {
        !forger_seen.sub_acks.lock().unwrap().is_empty()
    })
    .await;
    // dock-b scans; dock-a scans after the forgery (the broker handles one client's packets
    // in order, so the forgery would have reached the appliance first).
    let r = b
        .scan_with_id("b1", "B-OWN", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    let r = a
        .scan_with_id("a2", "A-AFTER", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hub.data(),
        vec![b"A-OWN".to_vec(), b"B-OWN".to_vec(), b"A-AFTER".to_vec()],
        "the forged scan never reached the appliance; broker log: {}",
        broker.log_text()
    );
    assert!(
        forger_seen.publishes.lock().unwrap().is_empty(),
        "dock-a read dock-b's reply: {:?}",
        forger_seen.publishes.lock().unwrap()
    );
    assert_eq!(b.replies().len(), 1, "dock-b got its own reply");
    eprintln!(
        "the broker answered the snooping subscription with {:?}",
        forger_seen.sub_acks.lock().unwrap()
    );

    // A retained scan, published while the appliance is connected: the broker does not take
    // it (and under MQTT 3.1.1 the appliance could not tell it from a live one).
    let (retainer, retainer_seen) = client_as(port, "dock-b-retain", login("dock-b", "b-pw")).await;
    let _ = retainer
        .publish(
            topic("dock-b", "scan"),
            rumqttc::QoS::AtLeastOnce,
            true,
            b"RETAINED".to_vec(),
        )
        .await;
    eventually("the retaining client is dropped", || {
        *retainer_seen.disconnects.lock().unwrap() == 1
    })
    .await;

    // A huge publish is dropped by the broker and the sender disconnected; the appliance
    // and the other scanners carry on.
    let (big, big_seen) = client_as(port, "dock-b-big", login("dock-b", "b-pw")).await;
    let _ = big
        .publish(
            topic("dock-b", "scan"),
            rumqttc::QoS::AtLeastOnce,
            false,
            vec![b'7'; 1536 * 1024],
        )
        .await;
    eventually("the huge publisher is dropped", || {
        *big_seen.disconnects.lock().unwrap() == 1
    })
    .await;
    let r = a
        .scan_with_id("a3", "A-LAST", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(r["ok"], true);

    // The appliance restarts: nothing retained or queued comes back to be acted on.
    cancel.cancel();
    task.await.unwrap().unwrap();
    let mut link = settings(port);
    link.scan_topic = topic("{device}", "scan");
    link.reply_topic = topic("{device}", "reply");
    link.username = Some("holdfast".into());
    link.password = Some(secrecy::SecretString::from("appliance-pw"));
    link.devices = vec!["dock-a".into(), "dock-b".into()];
    link.device_pattern = None;
    let (cancel, task) = start_link(link, &hub).await;
    let r = b
        .scan_with_id("b2", "B-LAST", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hub.data(),
        vec![
            b"A-OWN".to_vec(),
            b"B-OWN".to_vec(),
            b"A-AFTER".to_vec(),
            b"A-LAST".to_vec(),
            b"B-LAST".to_vec()
        ],
        "broker log: {}",
        broker.log_text()
    );
    assert_eq!(hub.disconnects(), 0, "{:?}", link_events(&hub));
    cancel.cancel();
    task.await.unwrap().unwrap();
}
