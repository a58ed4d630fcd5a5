//! The MQTT scanner transport against a real broker (rumqttd, in this process): scans in,
//! replies out, duplicate deliveries answered once, bad payloads refused, and a broker
//! restart (a fresh broker with no memory of the session) survived by re-subscribing.

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
use support::{TestHub, eventually};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_broker() -> SocketAddr {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
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
