//! MQTT telemetry end to end: the real `holdfast` binary publishing to Eclipse Mosquitto
//! (Debian's package, installed by `scripts/test.sh`), watched by a subscriber as central
//! ops would, every message checked against the published JSON Schemas (`ops/schemas/`).
//!
//! - the status is retained for a new subscriber and follows the mode when the Odoo link is
//!   cut; a silent (frozen) appliance's last will marks it dark within the keep-alive bound;
//! - telemetry resumes after the broker is killed and restarted, with increasing sequence
//!   numbers, and the reconnect shows in the link's own health; a clean stop says
//!   `stopping` and leaves an offline status;
//! - TLS with a client certificate, on the Event Grid profile: MQTT 5 properties (content
//!   type, UTF-8, user properties, event expiry) and a delayed last will;
//! - the IoT Hub profile's wire: client id, username, device-to-cloud topics with the
//!   property bag, and twin patches;
//! - `holdfast fleet` with three sites, one killed: the dark site flagged.

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;

#[path = "../devices/tests/support/mosquitto.rs"]
mod mosquitto;

#[path = "../devices/tests/support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::sim::proxy::{FaultProxy, Link};
use holdfast_sync::sim::{SimConfig, Simulator};
use mosquitto::Mosquitto;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use site::{Site, holdfast};

const TOKEN: &str = "telemetry-handheld-token";
const MANAGER_TOKEN: &str = "telemetry-manager-token";

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", site::free_port()).parse().unwrap()
}

/// A site publishing to the broker at `port`: `telemetry` is added to `[telemetry.mqtt]`,
/// `extra` to the file (an `[odoo]` section, say).
fn new_site(id: &str, port: u16, telemetry: &str, extra: &str) -> Site {
    Site::new(TOKEN, |http, dir| {
        format!(
            "[site]\nid = \"{id}\"\n[store]\npath = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\nmanager_token = \"{MANAGER_TOKEN}\"\n\
             [log]\nlevel = \"info\"\n\
             [telemetry]\ninterval_secs = 5\n\
             [telemetry.mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nkeep_alive_secs = 5\nretry_min_secs = 0.2\nretry_max_secs = 1\n{telemetry}\n\
             {extra}\n\
             [[devices]]\nid = \"hh1\"\ntoken = \"{TOKEN}\"\n",
            dir.join("holdfast.db").display(),
        )
    })
}

/// One message as a subscriber saw it.
#[derive(Clone, Debug)]
struct Msg {
    topic: String,
    json: Value,
    retain: bool,
    props: Option<PublishProperties>,
}

/// A subscriber, as central ops' consumer would be (MQTT 5, so it also sees properties).
struct Watcher {
    seen: Arc<Mutex<Vec<Msg>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    async fn start(port: u16, filters: &[&str]) -> Watcher {
        let mut options =
            MqttOptions::new(format!("watcher-{}", fastrand::u64(..)), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (into, filters) = (
            seen.clone(),
            filters.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        );
        // Events are not retained: the watcher is only ready once the broker acknowledged
        // every subscription, or what the appliance sends first may pass unseen.
        let (subscribed, mut ready) = tokio::sync::watch::channel(0usize);
        let wanted = filters.len();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            client.subscribe(f.clone(), QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subscribed.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        into.lock().unwrap().push(Msg {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            json: serde_json::from_slice(&p.payload).unwrap_or(Value::Null),
                            retain: p.retain,
                            props: p.properties,
                        });
                    }
                    Ok(_) => {}
                    // The broker restarts in one test: try again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), ready.wait_for(|n| *n >= wanted))
            .await
            .expect("the watcher's subscriptions acknowledged within 20 s")
            .expect("the watcher's task runs");
        Watcher { seen, task }
    }

    fn all(&self) -> Vec<Msg> {
        self.seen.lock().unwrap().clone()
    }

    /// The first message (in arrival order) that `ok` accepts, within `secs`.
    async fn wait(&self, what: &str, secs: u64, ok: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(m) = self.all().into_iter().find(|m| ok(m)) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {secs} s; seen: {:#?}",
                self.all()
                    .iter()
                    .map(|m| (&m.topic, m.json.to_string()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn is_status(m: &Msg, site: &str) -> bool {
    m.json["schema"] == "holdfast.status" && m.json["site"] == site
}

fn is_event(m: &Msg, site: &str, kind: &str) -> bool {
    m.json["schema"] == "holdfast.event" && m.json["site"] == site && m.json["kind"] == kind
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ops/schemas")
        .join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// Every Holdfast message seen is valid against its schema; returns how many were checked.
fn check_schemas(messages: &[Msg]) -> usize {
    let (status, event) = (schema("status.schema.json"), schema("event.schema.json"));
    let mut checked = 0;
    for m in messages {
        let validator = match m.json["schema"].as_str() {
            Some("holdfast.status") => &status,
            Some("holdfast.event") => &event,
            _ => continue,
        };
        let errors: Vec<String> = validator
            .iter_errors(&m.json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{} on {}: {errors:#?}", m.json, m.topic);
        checked += 1;
    }
    checked
}

fn broker_or_skip(test: &str) -> Option<std::path::PathBuf> {
    mosquitto::required(test)
}

fn log_of(site: &Site) -> String {
    std::fs::read_to_string(site.log()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_is_retained_follows_the_mode_and_a_silent_site_goes_dark_by_its_will() {
    let Some(bin) = broker_or_skip("telemetry_status") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::plain(&bin, dir.path(), free_addr(), true);
    let port = broker.addr().port();
    let sim = Simulator::start(
        SimConfig::default(),
        &Dataset::generate(&DatasetSpec::demo()),
    )
    .await
    .unwrap();
    let upstream = sim.url().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let c = sim.config();
    let odoo = format!(
        "[odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\ntimeout_secs = 2\n\
         [push]\nretry_min_secs = 0.1\nretry_max_secs = 1\nprobe_secs = 0.2\n",
        proxy.url(),
        c.database,
        c.login,
        c.api_key
    );
    let site = new_site("t-status", port, "", &odoo);
    let watcher = Watcher::start(port, &["holdfast/+/status", "holdfast/+/events"]).await;
    let appliance = site.start_appliance();

    watcher
        .wait("an online status", 20, |m| {
            is_status(m, "t-status") && m.json["mode"] == "online"
        })
        .await;
    watcher
        .wait("the started event", 5, |m| {
            is_event(m, "t-status", "started")
        })
        .await;

    // Cut the link: the mode goes offline, and both the event and a status say so at once
    // (not at the next interval).
    let cut = Instant::now();
    proxy.set(Link::Refuse);
    let event = watcher
        .wait("mode_changed to offline", 20, |m| {
            is_event(m, "t-status", "mode_changed") && m.json["detail"]["to"] == "offline"
        })
        .await;
    let offline = watcher
        .wait("an offline status", 5, |m| {
            is_status(m, "t-status") && m.json["mode"] == "offline"
        })
        .await;
    println!(
        "cut link to offline status: {:.1} s (reason: {})",
        cut.elapsed().as_secs_f64(),
        offline.json["reason"]
    );
    assert!(event.json["detail"]["reason"].is_string(), "{}", event.json);
    assert_eq!(offline.json["odoo"]["reachable"], false);

    // A subscriber arriving now gets the retained status at once: offline.
    let late = Watcher::start(port, &["holdfast/t-status/status"]).await;
    let retained = late
        .wait("the retained status", 5, |m| is_status(m, "t-status"))
        .await;
    assert!(retained.retain, "delivered as retained");
    assert_eq!(retained.json["mode"], "offline", "{}", retained.json);

    // The appliance goes silent without closing its connection (frozen, or its network
    // gone): the broker gives up after 1.5 keep-alives and sends the last will.
    let frozen = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(appliance.pid() as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let will = watcher
        .wait("the last will", 20, |m| {
            is_status(m, "t-status") && m.json["online"] == false
        })
        .await;
    let took = frozen.elapsed();
    println!(
        "silent appliance to last will (keep-alive 5 s): {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(will.json["cause"], "last_will", "{}", will.json);
    // Keep-alive 5 s: a broker declares a silent client dead 1.5 times that after the last
    // packet it had from it (7.5 s), found on its own housekeeping pass; 7.4 s on a quiet
    // machine, 9.7 and 13.0 s seen on loaded ones (CI, 2026-12-07). The bound allows up to
    // twice the broker's 7.5 s and no more: on the default keep-alive (30 s) the appliance
    // would go dark 15 to 45 s after it froze.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_millis(2 * 7_500),
        "{took:?}"
    );
    appliance.sigkill();
    let retained = Watcher::start(port, &["holdfast/t-status/status"]).await;
    let now = retained
        .wait("the retained will", 5, |m| is_status(m, "t-status"))
        .await;
    assert_eq!(now.json["cause"], "last_will");

    let checked = check_schemas(&watcher.all());
    assert!(checked >= 4, "{checked} messages checked");
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_resumes_after_the_broker_restarts_and_a_clean_stop_says_goodbye() {
    let Some(bin) = broker_or_skip("telemetry_resume") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::plain(&bin, dir.path(), free_addr(), true);
    let port = broker.addr().port();
    let site = new_site("t-resume", port, "", "");
    let watcher = Watcher::start(port, &["holdfast/+/status", "holdfast/+/events"]).await;
    let appliance = site.start_appliance();
    let first = watcher
        .wait("a status", 20, |m| is_status(m, "t-resume"))
        .await;
    let boot = first.json["boot"].clone();

    broker.restart();
    let before = watcher
        .all()
        .iter()
        .filter_map(|m| m.json["seq"].as_u64())
        .max()
        .unwrap();
    // A status from after the restart (statuses come at least every 5 s), saying the link
    // came back.
    let after = watcher
        .wait("a status after the broker restarted", 20, |m| {
            is_status(m, "t-resume")
                && m.json["seq"].as_u64() > Some(before)
                && m.json["telemetry"]["reconnects"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(after.json["boot"], boot, "same boot, later sequence");
    // On each topic the sequence only increases, across the broker's restart (the newest
    // status goes before waiting events, so the two topics interleave by priority).
    for topic in ["holdfast/t-resume/status", "holdfast/t-resume/events"] {
        let seqs: Vec<u64> = watcher
            .all()
            .iter()
            .filter(|m| m.topic == topic)
            .filter_map(|m| m.json["seq"].as_u64())
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(seqs, sorted, "{topic}: sequence numbers only increase");
    }
    println!(
        "sequence before the restart {before}, first after {}",
        after.json["seq"]
    );

    // The reconnect also shows in the site's own status and /metrics.
    let status = site.status().await;
    assert!(
        status["telemetry"]["reconnects"].as_u64() >= Some(1),
        "{status}"
    );
    let text = site::cli(&site.config, &["status"]);
    assert!(text.contains("telemetry connected\n"), "{text}");

    // A clean stop: `stopping`, then the status says stopped (and no last will follows).
    let exit = appliance.sigterm();
    assert!(exit.success(), "{exit:?}\n{}", log_of(&site));
    watcher
        .wait("the stopping event", 5, |m| {
            is_event(m, "t-resume", "stopping")
        })
        .await;
    watcher
        .wait("the stopped status", 5, |m| {
            is_status(m, "t-resume") && m.json["cause"] == "stopped"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !watcher.all().iter().any(|m| m.json["cause"] == "last_will"),
        "a goodbye cancels the will"
    );
    check_schemas(&watcher.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_grid_profile_speaks_mqtt_5_over_tls_with_a_client_certificate() {
    let Some(bin) = broker_or_skip("telemetry_event_grid") else {
        return;
    };
    let pki = pki::Pki::new();
    let (cert, key) = pki.broker_files();
    let (client_cert, client_key) = pki.client("site-eg");
    let (open, secured) = (free_addr(), free_addr());
    // The watcher on a plain listener; the appliance only over TLS with its certificate.
    let config = format!(
        "per_listener_settings true\n\
         listener {} 127.0.0.1\nallow_anonymous true\n\
         listener {} 127.0.0.1\nallow_anonymous true\n\
         cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        open.port(),
        secured.port(),
        pki.path("ca.pem").display(),
        cert.display(),
        key.display(),
    );
    let _broker = Mosquitto::start(&bin, pki.dir.path(), open, &config);
    let site = new_site(
        "t-grid",
        secured.port(),
        &format!(
            "profile = \"azure-event-grid\"\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\nusername = \"site-eg\"\nwill_delay_secs = 2\n",
            pki.path("ca.pem").display(),
            client_cert.display(),
            client_key.display()
        ),
        "",
    );
    let watcher = Watcher::start(open.port(), &["holdfast/+/status", "holdfast/+/events"]).await;
    let appliance = site.start_appliance();
    let status = watcher
        .wait("a status over TLS", 20, |m| is_status(m, "t-grid"))
        .await;
    let props = status.props.clone().expect("MQTT 5 properties");
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    assert_eq!(props.payload_format_indicator, Some(1));
    assert_eq!(
        props.user_properties,
        [
            ("schema".to_owned(), "holdfast.status".to_owned()),
            ("site".to_owned(), "t-grid".to_owned()),
            ("kind".to_owned(), "status".to_owned())
        ]
    );
    let started = watcher
        .wait("the started event", 5, |m| is_event(m, "t-grid", "started"))
        .await;
    let expiry = started
        .props
        .as_ref()
        .and_then(|p| p.message_expiry_interval)
        .expect("events expire");
    assert!((86_000..=86_400).contains(&expiry), "{expiry}");

    // The will waits its delay: a reconnect within 2 s would have cancelled it.
    let killed = Instant::now();
    appliance.sigkill();
    let will = watcher
        .wait("the delayed last will", 15, |m| {
            is_status(m, "t-grid") && m.json["online"] == false
        })
        .await;
    let took = killed.elapsed();
    println!(
        "SIGKILL to delayed will (delay 2 s): {:.2} s",
        took.as_secs_f64()
    );
    assert!(took >= Duration::from_millis(1_800), "{took:?}");
    assert_eq!(
        will.props.and_then(|p| p.content_type).as_deref(),
        Some("application/json")
    );
    check_schemas(&watcher.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iot_hub_profile_sends_device_messages_and_twin_patches() {
    let Some(bin) = broker_or_skip("telemetry_iot_hub") else {
        return;
    };
    let pki = pki::Pki::new();
    let (cert, key) = pki.broker_files();
    let (open, secured) = (free_addr(), free_addr());
    // Mosquitto stands in for the hub (it checks no SAS token; the log shows the login).
    let config = format!(
        "per_listener_settings true\nlog_type all\n\
         listener {} 127.0.0.1\nallow_anonymous true\n\
         listener {} 127.0.0.1\nallow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\n",
        open.port(),
        secured.port(),
        pki.path("ca.pem").display(),
        cert.display(),
        key.display(),
    );
    let broker = Mosquitto::start(&bin, pki.dir.path(), open, &config);
    let site = new_site(
        "t-hub",
        secured.port(),
        &format!(
            "profile = \"azure-iot-hub\"\ndevice_id = \"site-7\"\ndevice_key = \"aG9sZGZhc3QtdGVzdC1kZXZpY2Uta2V5LTMyYnl0ZXMhIQ==\"\nca_file = \"{}\"\n",
            pki.path("ca.pem").display(),
        ),
        "",
    );
    let watcher = Watcher::start(
        open.port(),
        &[
            "devices/site-7/messages/events/#",
            "$iothub/twin/PATCH/properties/reported/#",
        ],
    )
    .await;
    let _appliance = site.start_appliance();
    let status = watcher
        .wait("a status as a device-to-cloud message", 20, |m| {
            is_status(m, "t-hub")
        })
        .await;
    assert_eq!(
        status.topic,
        "devices/site-7/messages/events/$.ct=application%2Fjson&$.ce=utf-8&holdfast=status"
    );
    let twin = watcher
        .wait("a twin patch", 5, |m| m.topic.starts_with("$iothub/twin/"))
        .await;
    assert!(
        twin.topic
            .starts_with("$iothub/twin/PATCH/properties/reported/?$rid="),
        "{}",
        twin.topic
    );
    assert_eq!(twin.json["holdfast"]["site"], "t-hub");
    watcher
        .wait("an event", 5, |m| {
            m.topic.ends_with("&holdfast=event") && is_event(m, "t-hub", "started")
        })
        .await;
    // On the wire: client id = device id, IoT Hub's username with the API version.
    let log = broker.log_text();
    assert!(
        log.contains("as site-7 (p2, c1, k5, u'127.0.0.1/site-7/?api-version=2021-04-12')"),
        "{log}"
    );
    let reported: Vec<Msg> = watcher
        .all()
        .into_iter()
        .filter(|m| m.topic.starts_with("$iothub/"))
        .map(|m| Msg {
            json: m.json["holdfast"].clone(),
            ..m
        })
        .collect();
    check_schemas(&watcher.all());
    assert!(check_schemas(&reported) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_flags_the_dark_site_among_three() {
    let Some(bin) = broker_or_skip("telemetry_fleet") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::plain(&bin, dir.path(), free_addr(), true);
    let port = broker.addr().port();
    let watcher = Watcher::start(port, &["holdfast/+/status"]).await;
    let sites: Vec<Site> = ["fleet-1", "fleet-2", "fleet-3"]
        .iter()
        .map(|id| new_site(id, port, "", ""))
        .collect();
    let mut appliances: Vec<_> = sites.iter().map(Site::start_appliance).collect();
    for id in ["fleet-1", "fleet-2", "fleet-3"] {
        watcher
            .wait(&format!("{id}'s status"), 20, |m| is_status(m, id))
            .await;
    }
    appliances.remove(1).sigkill();
    watcher
        .wait("fleet-2's will", 15, |m| {
            is_status(m, "fleet-2") && m.json["online"] == false
        })
        .await;

    let fleet = |args: &[&str]| {
        let out = holdfast()
            .args(["fleet", "--broker", &format!("127.0.0.1:{port}")])
            .args(["--wait-secs", "1.5"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let rows: Vec<Value> = serde_json::from_str(&fleet(&["--json"])).unwrap();
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["site"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("fleet-1", "ok"), ("fleet-2", "dark"), ("fleet-3", "ok")]
    );
    let text = fleet(&[]);
    println!("{text}");
    assert!(text.contains("! fleet-2          DARK"), "{text}");
    assert!(text.contains("3 sites, 1 flagged"), "{text}");

    // No broker: a clear error, not a hang.
    let out = holdfast()
        .args([
            "fleet",
            "--broker",
            &format!("127.0.0.1:{}", site::free_port()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the broker"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
