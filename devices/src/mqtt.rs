//! Scanners on MQTT: the appliance subscribes to the scanners' topic on the site's broker and
//! answers each scan on a reply topic.
//!
//! Topics are patterns with a `{device}` placeholder, e.g. scans on
//! `holdfast/site-1/scanner/{device}/scan` (subscribed as `.../scanner/+/scan`) and answers
//! on `holdfast/site-1/scanner/{device}/reply`. A scan payload is either the scan itself (raw
//! bytes, GS1 separators included) or JSON `{"id": "...", "scan": "..."}`.
//!
//! Delivery is QoS 1 (at least once), so a scan may arrive twice. Duplicates are suppressed
//! twice over: a JSON `id` becomes the idempotency key of the step (the floor answers a key
//! once, durably, across restarts); a raw payload redelivered with the DUP flag and a packet
//! id seen moments ago gets the same answer again without a second step. A scan is
//! acknowledged (PUBACK) only after the appliance has answered it, so one lost while the
//! appliance restarts is delivered again by the broker (persistent session, clean session
//! off), never dropped. Acknowledgements go out in arrival order, as MQTT requires, while
//! devices are answered in parallel (each device's scans in order).
//!
//! Who may scan: only the device ids the site lists (`mqtt.devices`) or that match the
//! pattern it opted into (`mqtt.device_pattern`, e.g. `scanner-*`, which the config checks
//! against every id of another transport); a scan under any other id is refused, counted
//! and never reaches the floor. A topic is only a claim, though: which client may publish
//! on which device's topic is the broker's to enforce, with a login per scanner and an ACL
//! (`systemd/mosquitto/` ships one for Mosquitto: each scanner writes only its own scan topic
//! and reads only its own reply topic).
//!
//! A retained message on the scan topic is an old scan the broker hands out on every
//! subscription: anything arriving with the retain flag is refused and counted, never acted
//! on. (Under MQTT 3.1.1 a broker clears the flag when it forwards a retained publish live;
//! the shipped Mosquitto config therefore turns retained messages off at the broker.) A
//! device that sends faster than it is answered has its excess answered `busy`.
//!
//! An oversized or malformed message is answered with an error once and acknowledged, so the
//! broker forgets it. The link reads packets up to [`MAX_PACKET`] to be able to do that: a
//! packet the client cannot read breaks the link before it can be acknowledged, and a
//! persistent session hands it over again on every reconnect, silencing every scanner. The
//! broker should refuse anything bigger first (Mosquitto: `message_size_limit`, as shipped).
//!
//! TLS is rustls with the ring provider (the stack the Odoo client uses), with the site's CA
//! and optionally a client certificate; or username and password, or both.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, Transport};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use secrecy::{ExposeSecret, SecretString};

use crate::hub::{DeviceEvent, Feedback, Hub, Refusal};

/// Placeholder for the device id in topic patterns.
pub const DEVICE: &str = "{device}";
/// Longest device id taken from a topic.
const MAX_DEVICE_LEN: usize = 64;
/// Largest payload looked at (a scan is at most a few hundred bytes).
const MAX_PAYLOAD: usize = 4096;
/// Largest packet taken from the broker. A bigger one breaks the link (the client cannot
/// read past it), and the broker offers it again on every reconnect: this is generous so
/// that an oversized scan is read, refused and acknowledged instead (a packet is held in
/// memory once, so 16 MiB costs at most that, briefly). Brokers at defaults accept up to
/// 256 MiB, so sites should cap messages at the broker well below this (Mosquitto:
/// `message_size_limit`, as the shipped config does).
pub const MAX_PACKET: usize = 16 * 1024 * 1024;
/// Most of a scan echoed in its reply (a valid scan is far shorter).
const MAX_ECHO: usize = 512;
/// Recent packet ids remembered per device, to answer a redelivery without acting twice
/// (more than a broker keeps in flight to one client).
const RECENT: usize = 32;
/// A link that stayed up this long starts its reconnect delays from the minimum again; one
/// that keeps dropping right after connecting backs off.
const STABLE: Duration = Duration::from_secs(30);
/// Scans waiting per device before the link stops handing more over.
const DEVICE_QUEUE: usize = 64;
/// Devices served at most (each has a task); beyond, scans from new ids are refused.
const MAX_DEVICES: usize = 1024;
/// How long a stop waits for the scans in hand to be answered and acknowledged.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// TLS to the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with the CA certificate(s) the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM files of a client certificate (chain) and its private key, for brokers that
    /// authenticate clients by certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// How to reach the broker and which topics scanners use. `Debug` never shows the password.
#[derive(Clone, Debug)]
pub struct MqttSettings {
    /// Name of the broker link in the device registry (e.g. `mqtt-broker`).
    pub link: String,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub tls: Option<TlsSettings>,
    /// Scan topic pattern, with `{device}` as one whole topic level.
    pub scan_topic: String,
    /// Reply topic pattern, with `{device}`.
    pub reply_topic: String,
    pub keep_alive: Duration,
    /// The devices served: these ids, and those matching `device_pattern`. Any other id
    /// is refused.
    pub devices: Vec<String>,
    /// Ids the site opted to serve without listing them (e.g. `scanner-*`).
    pub device_pattern: Option<DevicePattern>,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Why the MQTT settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(
        "topic pattern {0:?} must contain {DEVICE} as one whole level (e.g. site/scanner/{DEVICE}/scan)"
    )]
    Pattern(String),
    #[error("TLS: {0}")]
    Tls(String),
}

/// A topic pattern split around its `{device}` level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPattern {
    prefix: String,
    suffix: String,
}

impl TopicPattern {
    pub fn parse(pattern: &str) -> Result<TopicPattern, MqttError> {
        let bad = || MqttError::Pattern(pattern.to_owned());
        let (prefix, suffix) = pattern.split_once(DEVICE).ok_or_else(bad)?;
        let whole_level = (prefix.is_empty() || prefix.ends_with('/'))
            && (suffix.is_empty() || suffix.starts_with('/'));
        let wild = |s: &str| s.contains(['+', '#']) || s.contains(DEVICE);
        if !whole_level || wild(prefix) || wild(suffix) {
            return Err(bad());
        }
        Ok(TopicPattern {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }

    /// The subscription filter (`{device}` → `+`).
    pub fn filter(&self) -> String {
        format!("{}+{}", self.prefix, self.suffix)
    }

    /// The topic of one device.
    pub fn topic(&self, device: &str) -> String {
        format!("{}{device}{}", self.prefix, self.suffix)
    }

    /// The device a topic names, if it matches and the id is acceptable.
    pub fn device<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let id = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_suffix(self.suffix.as_str())?;
        valid_device(id).then_some(id)
    }
}

/// A pattern of device ids: letters, digits, `.`, `_`, `-` and `*` (any run of them, maybe
/// none), e.g. `scanner-*` or `dock-*-mqtt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePattern(String);

impl std::str::FromStr for DevicePattern {
    type Err = String;

    fn from_str(s: &str) -> Result<DevicePattern, String> {
        let literal = s.replace('*', "");
        let ok = !s.is_empty()
            && s.len() <= MAX_DEVICE_LEN
            && (literal.is_empty() || valid_device(&literal));
        if !ok {
            return Err(format!(
                "{s:?}: a pattern of 1-64 letters, digits, '.', '_', '-' and '*' (e.g. \"scanner-*\")"
            ));
        }
        Ok(DevicePattern(s.to_owned()))
    }
}

impl std::fmt::Display for DevicePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl DevicePattern {
    /// Whether `id` matches (`*` matches any run of characters, the rest literally).
    pub fn matches(&self, id: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = id.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            // No `*`: the whole id.
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// A device id from the outside: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_device(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_DEVICE_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A scan message, as a scanner publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanMessage {
    /// The scanner's message id, when it sends one (JSON form).
    pub id: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonScan {
    id: Option<serde_json::Value>,
    #[serde(alias = "data")]
    scan: String,
}

/// Reads a scan payload: JSON `{"id", "scan"}` when it starts with `{`, else the raw scan.
pub fn parse_payload(payload: &[u8]) -> Result<ScanMessage, String> {
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "payload is {} bytes, at most {MAX_PAYLOAD} are accepted",
            payload.len()
        ));
    }
    if payload.first() != Some(&b'{') {
        return Ok(ScanMessage {
            id: None,
            data: payload.to_vec(),
        });
    }
    let json: JsonScan = serde_json::from_slice(payload)
        .map_err(|e| format!("payload is not a scan message {{\"id\", \"scan\"}}: {e}"))?;
    let id = match json.id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 128 => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err("\"id\" must be a string of 1 to 128 characters or a number".into()),
    };
    Ok(ScanMessage {
        id,
        data: json.scan.into_bytes(),
    })
}

/// The reply to one scan, as published on the reply topic.
pub fn reply_payload(id: Option<&str>, scan: &[u8], feedback: &Feedback) -> Vec<u8> {
    serde_json::json!({
        "id": id,
        "scan": String::from_utf8_lossy(&scan[..scan.len().min(MAX_ECHO)]),
        "ok": feedback.good,
        "code": feedback.code,
        "message": feedback.message,
    })
    .to_string()
    .into_bytes()
}

/// The rustls client configuration for a broker (scanners' and telemetry's).
pub fn tls_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, MqttError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let err = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
        MqttError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&tls.ca_file)
        .map_err(|e| err("CA file", &tls.ca_file, &e))?;
    for ca in cas {
        let ca = ca.map_err(|e| err("CA file", &tls.ca_file, &e))?;
        roots
            .add(ca)
            .map_err(|e| err("CA certificate in", &tls.ca_file, &e))?;
    }
    if roots.is_empty() {
        return Err(MqttError::Tls(format!(
            "no certificate in CA file {}",
            tls.ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match &tls.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| err("client certificate", cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err("client certificate", cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err("client key", key, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| MqttError::Tls(e.to_string()))
        }
    }
}

/// Client options from the settings (checks the patterns and TLS files).
fn options(settings: &MqttSettings) -> Result<MqttOptions, MqttError> {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_keep_alive(settings.keep_alive)
        // The broker keeps the subscription and queues QoS 1 scans while we are away.
        .set_clean_session(false)
        // PUBACK only after the appliance answered the scan.
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET, MAX_PAYLOAD * 4);
    if let Some(user) = &settings.username {
        let password = settings
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned())
            .unwrap_or_default();
        options.set_credentials(user, password);
    }
    if let Some(tls) = &settings.tls {
        let config = tls_config(tls)?;
        options.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
        ));
    }
    Ok(options)
}

/// Scans and replies are small packets answered one by one: Nagle's algorithm would hold
/// each for the peer's delayed ACK (tens of milliseconds).
fn no_delay(eventloop: &mut rumqttc::EventLoop) {
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
}

/// One scan handed to a device's worker; `done` says it was answered (then it may be
/// acknowledged).
struct Job {
    publish: Publish,
    done: oneshot::Sender<()>,
}

/// Acknowledges scans in the order they arrived, each once its answer is out. MQTT wants
/// PUBACKs in arrival order (3.1.1 §4.6), while devices answer at their own pace.
async fn ack_in_order(
    client: AsyncClient,
    mut arrived: mpsc::UnboundedReceiver<(Publish, oneshot::Receiver<()>)>,
) {
    while let Some((publish, done)) = arrived.recv().await {
        // A worker that stopped drops its sender: acknowledge anyway, or every later scan waits.
        let _ = done.await;
        if let Err(e) = client.ack(&publish).await {
            tracing::warn!(error = %e, "MQTT ack not sent");
        }
    }
}

/// Serves scanners on the broker until `cancel`. Errors only on unusable settings (bad
/// pattern, unreadable TLS files); a broker that is down is retried with backoff forever.
pub async fn run<H: Hub>(
    settings: MqttSettings,
    hub: H,
    cancel: CancellationToken,
) -> Result<(), MqttError> {
    let scans = TopicPattern::parse(&settings.scan_topic)?;
    let replies = TopicPattern::parse(&settings.reply_topic)?;
    let options = options(&settings)?;
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    no_delay(&mut eventloop);
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let acks = tokio::spawn(ack_in_order(client.clone(), arrivals));
    // Queues a scan for acknowledgement in arrival order; the returned sender releases it.
    let queue_ack = |publish: &Publish| {
        let (done, wait) = oneshot::channel();
        let _ = arrived.send((publish.clone(), wait));
        done
    };
    let address = format!("{}:{}", settings.host, settings.port);
    let mut workers: HashMap<String, mpsc::Sender<Job>> = HashMap::new();
    let mut delays = backoff(&settings);
    let mut down = false;
    let mut up_since: Option<std::time::Instant> = None;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                up_since = Some(std::time::Instant::now());
                down = false;
                hub.event(
                    &settings.link,
                    DeviceEvent::Connected {
                        address: address.clone(),
                    },
                );
                tracing::info!(broker = %address, session_present = ack.session_present, "MQTT connected");
                // Subscribe on every connection: cheap, and right after a broker lost its state.
                if let Err(e) = client.subscribe(scans.filter(), QoS::AtLeastOnce).await {
                    tracing::error!(error = %e, "MQTT subscribe failed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let done = queue_ack(&publish);
                let device = match admit(&publish, &scans, &settings, &workers) {
                    Ok(device) => device,
                    // Acknowledged (the broker forgets it) but never answered: a reply would
                    // go to a topic nobody is known to own.
                    Err((reason, error)) => {
                        hub.event(&settings.link, DeviceEvent::Refused { reason, error });
                        let _ = done.send(());
                        continue;
                    }
                };
                let worker = workers.entry(device.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(DEVICE_QUEUE);
                    tokio::spawn(serve_device(
                        device.clone(),
                        rx,
                        hub.clone(),
                        client.clone(),
                        replies.clone(),
                    ));
                    hub.event(
                        &device,
                        DeviceEvent::Connected {
                            address: format!("mqtt://{address}"),
                        },
                    );
                    tx
                });
                // Never block the link (pings, acks) on a device that floods faster than it
                // is answered: the excess is refused (and acknowledged, so the rest flows).
                if let Err(e) = worker.try_send(Job { publish, done }) {
                    let (error, job) = match e {
                        mpsc::error::TrySendError::Full(job) => (
                            format!("more than {DEVICE_QUEUE} scans waiting: dropped, scan again"),
                            job,
                        ),
                        mpsc::error::TrySendError::Closed(job) => {
                            ("device worker stopped".to_owned(), job)
                        }
                    };
                    // Tell the scanner, or it only learns by waiting for a reply.
                    let id = parse_payload(&job.publish.payload).ok().and_then(|m| m.id);
                    let reply =
                        reply_payload(id.as_deref(), b"", &Feedback::bad("busy", error.clone()));
                    if client
                        .try_publish(replies.topic(&device), QoS::AtLeastOnce, false, reply)
                        .is_err()
                    {
                        tracing::warn!(%device, "MQTT busy reply not sent");
                    }
                    hub.event(
                        &device,
                        DeviceEvent::Refused {
                            reason: Refusal::Busy,
                            error,
                        },
                    );
                    let _ = job.done.send(());
                }
            }
            Ok(_) => {}
            Err(e) => {
                if up_since.take().is_some_and(|t| t.elapsed() >= STABLE) {
                    delays = backoff(&settings);
                }
                // A message bigger than MAX_PACKET cannot be read, so it cannot be
                // acknowledged: the broker offers it again on every reconnect until a person
                // removes it or caps messages at the broker.
                if let rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
                    rumqttc::Error::PayloadSizeLimitExceeded(size),
                )) = &e
                {
                    tracing::error!(broker = %address, size, max = MAX_PACKET, "MQTT message too big to read blocks the link; cap messages at the broker (Mosquitto: message_size_limit, see systemd/mosquitto/holdfast.conf)");
                }
                if !down {
                    down = true;
                    tracing::warn!(broker = %address, error = %e, "MQTT link down; retrying");
                    hub.event(
                        &settings.link,
                        DeviceEvent::Disconnected {
                            error: Some(e.to_string()),
                        },
                    );
                }
                let delay = delays.next().unwrap_or(settings.retry_max);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    // An orderly stop: the scans in hand are answered and acknowledged before the link
    // closes, or a raw scan (no id) already acted on would be delivered again after the
    // restart and acted on twice. The event loop must keep running for replies, PUBACKs and
    // the DISCONNECT to leave; scans arriving meanwhile are not acknowledged (the broker
    // keeps them for the next session).
    drop(workers);
    drop(arrived);
    let drain = async {
        let mut acks = acks;
        loop {
            tokio::select! {
                _ = &mut acks => break,
                event = eventloop.poll() => if event.is_err() { return },
            }
        }
        if client.try_disconnect().is_err() {
            return;
        }
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    };
    if tokio::time::timeout(STOP_GRACE, drain).await.is_err() {
        tracing::warn!(broker = %address, "MQTT stop: scans still in hand after {STOP_GRACE:?}; the broker will deliver them again");
    }
    Ok(())
}

/// The device a scan is from, or why it is not served.
fn admit(
    publish: &Publish,
    scans: &TopicPattern,
    settings: &MqttSettings,
    workers: &HashMap<String, mpsc::Sender<Job>>,
) -> Result<String, (Refusal, String)> {
    // A retained message is an old scan the broker hands every new subscriber: acting on it
    // would repeat it after each reconnect.
    if publish.retain {
        return Err((
            Refusal::Retained,
            format!(
                "retained scan on {:?} ignored: scanners must publish with retain off (clear it with an empty retained message)",
                publish.topic
            ),
        ));
    }
    let Some(device) = scans.device(&publish.topic) else {
        return Err((
            Refusal::BadTopic,
            format!(
                "scan on a topic with no valid device id: {:?}",
                publish.topic
            ),
        ));
    };
    let listed = settings.devices.iter().any(|d| d == device)
        || settings
            .device_pattern
            .as_ref()
            .is_some_and(|p| p.matches(device));
    if !listed {
        return Err((
            Refusal::UnlistedDevice,
            format!(
                "scan from unlisted device {device:?} refused (not in mqtt.devices nor mqtt.device_pattern)"
            ),
        ));
    }
    if workers.len() >= MAX_DEVICES && !workers.contains_key(device) {
        return Err((
            Refusal::TooManyDevices,
            format!(
                "scan from {device:?}: already serving {MAX_DEVICES} devices (list them in mqtt.devices)"
            ),
        ));
    }
    Ok(device.to_owned())
}

fn backoff(settings: &MqttSettings) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(settings.retry_min)
        .with_max_delay(settings.retry_max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// One device's scans, in order: parse, skip redeliveries, ask the hub, reply, acknowledge.
async fn serve_device<H: Hub>(
    device: String,
    mut jobs: mpsc::Receiver<Job>,
    hub: H,
    client: AsyncClient,
    replies: TopicPattern,
) {
    let reply_topic = replies.topic(&device);
    // (packet id, digest of the payload, reply): a few KB at most per device.
    let mut recent: VecDeque<(u16, u64, Vec<u8>)> = VecDeque::with_capacity(RECENT);
    while let Some(Job { publish, done }) = jobs.recv().await {
        let payload = &publish.payload[..];
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            payload.hash(&mut h);
            h.finish()
        };
        let known = (publish.dup && publish.pkid != 0)
            .then(|| {
                recent
                    .iter()
                    .find(|(pkid, d, _)| *pkid == publish.pkid && *d == digest)
                    .map(|(_, _, reply)| reply.clone())
            })
            .flatten();
        let reply = match known {
            Some(reply) => {
                tracing::debug!(%device, pkid = publish.pkid, "MQTT redelivery answered again");
                reply
            }
            None => {
                let reply = match parse_payload(payload) {
                    Ok(message) => {
                        let key = message.id.as_ref().map(|id| format!("mqtt:{id}"));
                        let feedback = hub
                            .scan(
                                &device,
                                crate::hub::Transport::Mqtt,
                                message.data.clone(),
                                key,
                            )
                            .await;
                        reply_payload(message.id.as_deref(), &message.data, &feedback)
                    }
                    Err(error) => {
                        hub.event(
                            &device,
                            DeviceEvent::Refused {
                                reason: Refusal::BadPayload,
                                error: error.clone(),
                            },
                        );
                        reply_payload(None, b"", &Feedback::bad("bad_payload", error))
                    }
                };
                if recent.len() == RECENT {
                    recent.pop_front();
                }
                recent.push_back((publish.pkid, digest, reply.clone()));
                reply
            }
        };
        if let Err(e) = client
            .publish(reply_topic.as_str(), QoS::AtLeastOnce, false, reply)
            .await
        {
            tracing::warn!(%device, error = %e, "MQTT reply not sent");
        }
        let _ = done.send(());
    }
}

/// A scanner's side of the protocol: publishes scans (JSON with an id) on its scan topic and
/// collects the appliance's replies. The demo plays its MQTT scanner with it; tests and the
/// benchmark use it as scanners would.
#[derive(Clone, Debug)]
pub struct ScannerClient {
    client: AsyncClient,
    scan_topic: String,
    waiting: Arc<std::sync::Mutex<HashMap<String, oneshot::Sender<serde_json::Value>>>>,
    replies: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl ScannerClient {
    /// Connects as `client_id` and subscribes to `reply_topic`; ready once the broker
    /// confirmed the subscription (or an error after `timeout`).
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: &str,
        scan_topic: &str,
        reply_topic: &str,
        timeout: Duration,
    ) -> Result<ScannerClient, String> {
        Self::connect_with_login(
            host,
            port,
            client_id,
            None,
            scan_topic,
            reply_topic,
            timeout,
        )
        .await
    }

    /// [`ScannerClient::connect`] with a login (username, password), as a scanner on a
    /// broker with per-device credentials.
    pub async fn connect_with_login(
        host: &str,
        port: u16,
        client_id: &str,
        login: Option<(&str, &str)>,
        scan_topic: &str,
        reply_topic: &str,
        timeout: Duration,
    ) -> Result<ScannerClient, String> {
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(30));
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        no_delay(&mut eventloop);
        let me = ScannerClient {
            client: client.clone(),
            scan_topic: scan_topic.to_owned(),
            waiting: Arc::default(),
            replies: Arc::default(),
            next: Arc::default(),
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let (waiting, replies) = (me.waiting.clone(), me.replies.clone());
        let reply_topic = reply_topic.to_owned();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client
                            .subscribe(reply_topic.as_str(), QoS::AtLeastOnce)
                            .await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok(reply) = serde_json::from_slice::<serde_json::Value>(&p.payload)
                        else {
                            continue;
                        };
                        let waiter = reply.get("id").and_then(|v| v.as_str()).and_then(|id| {
                            waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(id)
                        });
                        replies
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(reply.clone());
                        if let Some(tx) = waiter {
                            let _ = tx.send(reply);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        match tokio::time::timeout(timeout, ready_rx).await {
            Ok(Ok(())) => Ok(me),
            _ => Err(format!("no MQTT broker answering at {host}:{port}")),
        }
    }

    /// Scans with a fresh message id and waits for the reply to it.
    pub async fn scan(&self, scan: &str, timeout: Duration) -> Result<serde_json::Value, String> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Unique across restarts of the scanner: the appliance remembers ids for a day.
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("{at:x}-{n}");
        self.scan_with_id(&id, scan, timeout).await
    }

    /// Scans with a given message id (a redelivery uses the same one) and waits for the reply.
    pub async fn scan_with_id(
        &self,
        id: &str,
        scan: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), tx);
        let payload = serde_json::json!({"id": id, "scan": scan}).to_string();
        self.publish_raw(payload.into_bytes()).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => {
                self.waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
                Err(format!("no reply to {scan:?} within {timeout:?}"))
            }
        }
    }

    /// Publishes any payload on the scan topic (raw scans, garbage).
    pub async fn publish_raw(&self, payload: Vec<u8>) -> Result<(), String> {
        self.client
            .publish(self.scan_topic.as_str(), QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| e.to_string())
    }

    /// Every reply received so far, in order.
    pub fn replies(&self) -> Vec<serde_json::Value> {
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_name_one_whole_level() {
        let p = TopicPattern::parse("holdfast/s1/scanner/{device}/scan").unwrap();
        assert_eq!(p.filter(), "holdfast/s1/scanner/+/scan");
        assert_eq!(p.device("holdfast/s1/scanner/dock-3/scan"), Some("dock-3"));
        assert_eq!(p.device("holdfast/s1/scanner/a/b/scan"), None);
        assert_eq!(p.device("holdfast/s1/scanner//scan"), None);
        assert_eq!(p.device("other/dock-3/scan"), None);
        assert_eq!(p.topic("dock-3"), "holdfast/s1/scanner/dock-3/scan");
        for bad in [
            "a/b{device}/c",
            "a/{device}x",
            "a/+/{device}",
            "no-device",
            "#/{device}",
        ] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payloads_are_raw_or_json() {
        assert_eq!(
            parse_payload(b"0105901234123457\x1d10L1").unwrap(),
            ScanMessage {
                id: None,
                data: b"0105901234123457\x1d10L1".to_vec()
            }
        );
        let m = parse_payload(br#"{"id":"m-1","scan":"WH-A-01"}"#).unwrap();
        assert_eq!(m.id.as_deref(), Some("m-1"));
        assert_eq!(m.data, b"WH-A-01");
        assert_eq!(
            parse_payload(br#"{"id":42,"data":"X"}"#)
                .unwrap()
                .id
                .as_deref(),
            Some("42")
        );
        for bad in [
            &br#"{"scan":5}"#[..],
            br#"{"id":[],"scan":"x"}"#,
            br#"{"scan":"x","extra":1}"#,
            b"{not json",
        ] {
            assert!(parse_payload(bad).is_err());
        }
        assert!(parse_payload(&vec![b'1'; MAX_PAYLOAD + 1]).is_err());
    }

    #[test]
    fn device_patterns_match_only_what_they_say() {
        let p = |s: &str| s.parse::<DevicePattern>().unwrap();
        for (pattern, id, expected) in [
            ("scanner-*", "scanner-07", true),
            ("scanner-*", "scanner-", true),
            ("scanner-*", "scanner", false),
            ("scanner-*", "demo-handheld", false),
            ("scanner-*", "xscanner-1", false),
            ("dock-*-mqtt", "dock-3-mqtt", true),
            ("dock-*-mqtt", "dock-mqtt", false),
            ("*-mqtt", "a-mqtt", true),
            ("*", "anything", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
        ] {
            assert_eq!(p(pattern).matches(id), expected, "{pattern} ~ {id}");
        }
        for bad in ["", "scan ner*", "a/+", "#", &"x".repeat(65)] {
            assert!(bad.parse::<DevicePattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_of_the_settings_never_shows_the_password() {
        let settings = MqttSettings {
            link: "b".into(),
            host: "h".into(),
            port: 1,
            client_id: "c".into(),
            username: Some("u".into()),
            password: Some(SecretString::from("hunter2-broker")),
            tls: None,
            scan_topic: "s/{device}".into(),
            reply_topic: "r/{device}".into(),
            keep_alive: Duration::from_secs(5),
            devices: vec![],
            device_pattern: None,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(1),
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn device_ids_are_bounded_and_plain() {
        assert!(valid_device("scanner-07.dock_2"));
        assert!(!valid_device(""));
        assert!(!valid_device("a b"));
        assert!(!valid_device(&"x".repeat(65)));
    }
}
