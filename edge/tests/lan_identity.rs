//! Device identity on the LAN, against the real store and floor: an id belongs to one
//! transport. A client on the MQTT broker publishing under an HTTP handheld's id or a TCP
//! scanner's id signs nobody in and is counted on the broker link; a listed MQTT scanner
//! works; the hub itself refuses a scan that names an id on a transport that does not own it.

// The MQTT side uses the demo's broker (a site build without it has no such test).
#![cfg(feature = "demo-broker")]
// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use holdfast::config::{Config, RawConfig};
use holdfast::floor::Floor;
use holdfast::printing::Printing;
use holdfast::registry::Registry;
use holdfast::scanners::ScanHub;
use holdfast::store::{Store, StoreOptions};
use holdfast::workflow::FloorPolicy;
use holdfast_devices::hub::{Hub, Transport};
use holdfast_devices::mqtt::ScannerClient;
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use tokio_util::sync::CancellationToken;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn mqtt_scanner(port: u16, device: &str) -> ScannerClient {
    ScannerClient::connect(
        "127.0.0.1",
        port,
        &format!("client-{device}"),
        &format!("holdfast/t/scanner/{device}/scan"),
        &format!("holdfast/t/scanner/{device}/reply"),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_client_cannot_act_as_a_handheld_or_another_transport_s_scanner() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    holdfast::demo::lan::start_broker(format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
    let text = format!(
        "[site]\nid = \"t\"\n[store]\npath = \"{}\"\n\
         [[devices]]\nid = \"hh-1\"\ntoken = \"0123456789abcdef0123\"\n\
         [[scanners]]\nid = \"tcp-1\"\ntransport = \"tcp-listen\"\naddress = \"127.0.0.1:{}\"\nallow = [\"127.0.0.1\"]\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"appliance\"\ndevices = [\"mq-1\"]\n",
        dir.path().join("h.db").display(),
        free_port()
    );
    let config: Config = RawConfig::from_toml(&text).unwrap().validate().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
    holdfast::demo::load(&store, &Dataset::generate(&DatasetSpec::demo()))
        .await
        .unwrap();
    holdfast::demo::seed_operators(&store).await.unwrap();
    let floor = Floor::new(store.clone(), FloorPolicy::default(), Some('~'), vec![]);
    let registry = Registry::load(&store).unwrap();
    let printing = Printing::new(store.clone(), config.lan.clone());
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let hub = ScanHub::new(floor.clone(), registry.clone(), printing, &config.lan);
    let tasks = holdfast::scanners::spawn(&hub, &config.lan, &cancel).unwrap();
    eventually("broker link", || {
        registry
            .get("mqtt-broker")
            .is_some_and(|r| r.state == "online")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signed_in = |device: &str| !floor.whoami(device).body["operator"].is_null();

    // Anyone on the broker, publishing a badge as the HTTP handheld and as the TCP scanner.
    for device in ["hh-1", "tcp-1"] {
        let forger = mqtt_scanner(port, device).await;
        forger.publish_raw(b"OP-ALICE".to_vec()).await.unwrap();
    }
    eventually("both counted on the broker link", || {
        registry.refusals("mqtt-broker").get("unlisted_device") == Some(&2)
    })
    .await;
    // The listed MQTT scanner signs in (and so shows the forgeries were handled by then).
    let listed = mqtt_scanner(port, "mq-1").await;
    let reply = listed
        .scan("OP-ALICE", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(signed_in("mq-1"));
    assert!(!signed_in("hh-1"), "an MQTT client signed the handheld in");
    assert!(
        !signed_in("tcp-1"),
        "an MQTT client signed the TCP scanner in"
    );

    // The hub refuses a scan naming an id its transport does not own, whoever hands it over;
    // a handheld issued a token at run time (`holdfast device issue`) is one too.
    store
        .floor(holdfast::store::FloorCmd::IssueDevice {
            id: "hh-issued".into(),
            token_sha256: holdfast::floor::sha256_hex(b"0123456789abcdef0123"),
        })
        .await
        .unwrap();
    for (device, transport) in [
        ("hh-issued", Transport::Mqtt),
        ("hh-1", Transport::Mqtt),
        ("hh-1", Transport::Serial),
        ("tcp-1", Transport::Mqtt),
        ("mq-1", Transport::Tcp),
        ("nobody", Transport::Mqtt),
    ] {
        let feedback = hub
            .scan(device, transport, b"OP-ALICE".to_vec(), None)
            .await;
        assert_eq!(
            feedback.code, "foreign_device",
            "{device} over {transport:?}"
        );
    }
    assert!(!signed_in("hh-1") && !signed_in("tcp-1") && !signed_in("nobody"));
    assert_eq!(
        registry.refusals("mqtt-broker").get("foreign_device"),
        Some(&4),
        "MQTT ones counted on the broker link"
    );
    cancel.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
}
