//! Where the telemetry goes and how each kind of broker wants it: the profiles.
//!
//! - `generic` (Mosquitto, EMQX, HiveMQ…): the status retained on `{prefix}/{site}/status`,
//!   events on `{prefix}/{site}/events`, the last will on the status topic (retained), so a
//!   new subscriber sees every site's latest status or its death at once. MQTT 3.1.1 or 5.
//! - `azure-iot-hub`: client id = device id, username
//!   `{hub host}/{device}/?api-version=2021-04-12`, password a SAS token made from the
//!   device key ([`sas_token`]) and renewed before it expires (the link reconnects with a
//!   new one at [`SAS_RENEW_AT`] of its life), or an X.509 client certificate. IoT Hub keeps
//!   no retained messages, so the status also goes to the device twin's reported properties
//!   (`$iothub/twin/PATCH/properties/reported/`) where a back end reads the latest. Status,
//!   events and the last will go as device-to-cloud messages on
//!   `devices/{device}/messages/events/` with `holdfast=status|event` in the property bag for
//!   routing. MQTT 3.1.1, QoS 0 or 1.
//! - `azure-event-grid` (an Event Grid namespace's MQTT broker): MQTT 5 with a client
//!   certificate; the username is the client's authentication name. Topics as `generic`
//!   (retained status: Event Grid keeps up to 64 KB per retained message). Each message
//!   says `content-type: application/json`, that it is UTF-8, and carries `schema`, `site`
//!   and `kind` as user properties; events expire after [`EVENT_EXPIRY`]. The last will is
//!   delayed by `will_delay_secs` (a reconnect within it sends none) and the session lasts
//!   as long, within Event Grid's 8-hour cap on session expiry.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holdfast_devices::mqtt::TlsSettings;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};

/// IoT Hub's MQTT API version in the username.
pub const IOT_HUB_API_VERSION: &str = "2021-04-12";
/// Share of a SAS token's life after which the link reconnects with a new one.
pub const SAS_RENEW_AT: f64 = 0.8;
/// Event Grid keeps a session at most this long (its documented maximum session expiry);
/// the will delay is capped to it.
pub const EVENT_GRID_MAX_SESSION: Duration = Duration::from_secs(8 * 3600);
/// MQTT 5 message expiry of events: an event a consumer did not take in a day is stale.
pub const EVENT_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// MQTT protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

/// The broker's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Topics under `prefix` (default `holdfast`).
    Generic { prefix: String },
    /// An IoT Hub device.
    IotHub { device: String },
    /// An Event Grid namespace; topics under `prefix`.
    EventGrid { prefix: String },
}

impl Profile {
    pub fn name(&self) -> &'static str {
        match self {
            Profile::Generic { .. } => "generic",
            Profile::IotHub { .. } => "azure-iot-hub",
            Profile::EventGrid { .. } => "azure-event-grid",
        }
    }
}

/// How the link proves who it is.
#[derive(Clone, Debug)]
pub enum Login {
    /// Nothing beyond the TLS client certificate, if any.
    None,
    Password {
        username: String,
        password: Option<SecretString>,
    },
    /// IoT Hub: a SAS token from the device key, made anew for each connection.
    Sas {
        username: String,
        /// `{hub host}/devices/{device}`.
        resource: String,
        /// The device's symmetric key (base64-decoded).
        key: SecretBytes,
        ttl: Duration,
    },
}

/// Key bytes that never show in `Debug`.
#[derive(Clone)]
pub struct SecretBytes(pub Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes([redacted])")
    }
}

/// The checked `[telemetry.mqtt]` section.
#[derive(Clone, Debug)]
pub struct Broker {
    pub profile: Profile,
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsSettings>,
    pub client_id: String,
    pub login: Login,
    pub protocol: Protocol,
    pub keep_alive: Duration,
    /// QoS 1 (at least once) unless the site asks for 0.
    pub qos1: bool,
    /// MQTT 5: how long the broker waits before sending the last will.
    pub will_delay: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// The telemetry's settings: the broker and what is sent how often.
#[derive(Clone, Debug)]
pub struct Settings {
    pub site: String,
    pub broker: Broker,
    /// A status at least this often.
    pub interval: Duration,
    /// Events kept while the broker is away; older ones are dropped (and counted).
    pub events_buffer: usize,
    /// Headroom under this raises `disk_pressure`.
    pub disk_pressure_bytes: u64,
}

/// Which message a publication carries (for the Azure property bag and MQTT 5 user
/// properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Status,
    Event,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Event => "event",
        }
    }
}

/// One MQTT publication, as the profile wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct Wire {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub kind: Kind,
    /// MQTT 5 only: message expiry.
    pub expiry: Option<Duration>,
    /// MQTT 5 only: user properties.
    pub user: Vec<(String, String)>,
}

/// What quote_plus leaves as it is (and IoT Hub's own SDKs): letters, digits, `-_.~`.
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, URL_ENCODE).to_string()
}

/// An IoT Hub SAS token for `resource` (`{hub host}/devices/{device}`), valid until
/// `expiry` (unix seconds): `SharedAccessSignature sr={url-encoded resource}&sig={url-encoded
/// base64 HMAC-SHA256 of "{url-encoded resource}\n{expiry}" under the key}&se={expiry}`, as
/// IoT Hub's docs define it (device-scoped, so no `skn`).
pub fn sas_token(resource: &str, key: &[u8], expiry: u64) -> String {
    use base64::Engine;
    let sr = url_encode(resource);
    let to_sign = format!("{sr}\n{expiry}");
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        to_sign.as_bytes(),
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.as_ref());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}",
        url_encode(&sig)
    )
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The credentials of one connection, made at `now` (unix seconds), and how long they serve
/// before the link should connect again with fresh ones (`None`: for as long as it lasts).
pub fn credentials(login: &Login, now: u64) -> (Option<(String, String)>, Option<Duration>) {
    match login {
        Login::None => (None, None),
        Login::Password { username, password } => (
            Some((
                username.clone(),
                password
                    .as_ref()
                    .map(|p| p.expose_secret().to_owned())
                    .unwrap_or_default(),
            )),
            None,
        ),
        Login::Sas {
            username,
            resource,
            key,
            ttl,
        } => {
            let token = sas_token(resource, &key.0, now + ttl.as_secs());
            (
                Some((username.clone(), token)),
                Some(ttl.mul_f64(SAS_RENEW_AT)),
            )
        }
    }
}

impl Broker {
    /// IoT Hub's username for `device` on `host`.
    pub fn iot_hub_username(host: &str, device: &str) -> String {
        format!("{host}/{device}/?api-version={IOT_HUB_API_VERSION}")
    }

    fn iot_hub_events(device: &str, kind: Kind) -> String {
        // The property bag: content type and encoding (so routing queries can read the
        // body), and which message this is.
        format!(
            "devices/{device}/messages/events/$.ct=application%2Fjson&$.ce=utf-8&holdfast={}",
            kind.as_str()
        )
    }

    /// The status topic (generic, Event Grid); IoT Hub's device-to-cloud topic for it.
    pub fn status_topic(&self, site: &str) -> String {
        match &self.profile {
            Profile::Generic { prefix } | Profile::EventGrid { prefix } => {
                format!("{prefix}/{site}/status")
            }
            Profile::IotHub { device } => Broker::iot_hub_events(device, Kind::Status),
        }
    }

    /// The events topic.
    pub fn events_topic(&self, site: &str) -> String {
        match &self.profile {
            Profile::Generic { prefix } | Profile::EventGrid { prefix } => {
                format!("{prefix}/{site}/events")
            }
            Profile::IotHub { device } => Broker::iot_hub_events(device, Kind::Event),
        }
    }

    /// Topics the link subscribes to: IoT Hub's answers to twin updates.
    pub fn subscriptions(&self) -> Vec<String> {
        match &self.profile {
            Profile::IotHub { .. } => vec!["$iothub/twin/res/#".to_owned()],
            _ => Vec::new(),
        }
    }

    fn user_properties(&self, site: &str, kind: Kind) -> Vec<(String, String)> {
        if self.protocol != Protocol::V5 {
            return Vec::new();
        }
        vec![
            (
                "schema".into(),
                match kind {
                    Kind::Status => super::message::STATUS_SCHEMA,
                    Kind::Event => super::message::EVENT_SCHEMA,
                }
                .into(),
            ),
            ("site".into(), site.to_owned()),
            ("kind".into(), kind.as_str().to_owned()),
        ]
    }

    /// The publications of one message. `rid` numbers IoT Hub's twin requests.
    pub fn wires(&self, site: &str, kind: Kind, payload: Vec<u8>, rid: u64) -> Vec<Wire> {
        let retain = kind == Kind::Status && !matches!(self.profile, Profile::IotHub { .. });
        let topic = match kind {
            Kind::Status => self.status_topic(site),
            Kind::Event => self.events_topic(site),
        };
        let mut wires = vec![Wire {
            topic,
            payload: payload.clone(),
            retain,
            kind,
            expiry: (kind == Kind::Event && self.protocol == Protocol::V5).then_some(EVENT_EXPIRY),
            user: self.user_properties(site, kind),
        }];
        if let (Profile::IotHub { .. }, Kind::Status) = (&self.profile, kind) {
            // The twin's reported properties keep the latest status for a back end; the
            // whole status under one key (`holdfast`) replaces the last one there.
            let status: serde_json::Value =
                serde_json::from_slice(&payload).unwrap_or(serde_json::Value::Null);
            wires.push(Wire {
                topic: format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}"),
                payload: serde_json::to_vec(&serde_json::json!({ "holdfast": status }))
                    .unwrap_or_default(),
                retain: false,
                kind,
                expiry: None,
                user: Vec::new(),
            });
        }
        wires
    }

    /// The last will: the broker publishes it when the link dies without a goodbye.
    pub fn will(&self, site: &str, payload: Vec<u8>) -> Wire {
        Wire {
            topic: self.status_topic(site),
            payload,
            retain: !matches!(self.profile, Profile::IotHub { .. }),
            kind: Kind::Status,
            expiry: None,
            user: self.user_properties(site, Kind::Status),
        }
    }
}

/// Files the link reads when it connects (named in errors).
pub fn tls_files(tls: &TlsSettings) -> Vec<PathBuf> {
    let mut files = vec![tls.ca_file.clone()];
    if let Some((cert, key)) = &tls.client_cert {
        files.push(cert.clone());
        files.push(key.clone());
    }
    files
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn broker(profile: Profile, protocol: Protocol) -> Broker {
        Broker {
            profile,
            host: "hub-1.azure-devices.net".into(),
            port: 8883,
            tls: None,
            client_id: "site-7".into(),
            login: Login::None,
            protocol,
            keep_alive: Duration::from_secs(30),
            qos1: true,
            will_delay: Duration::ZERO,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }

    /// The known vector was computed independently of this code, with Python's standard
    /// library following Microsoft's published recipe (`generate_sas_token` in "Control
    /// access to IoT Hub with SAS"):
    ///
    /// ```text
    /// python3 -c 'import base64,hmac,hashlib,urllib.parse as u
    /// sr=u.quote_plus("hub-1.azure-devices.net/devices/site-7"); se=1767225600
    /// key=base64.b64decode("aG9sZGZhc3QtdGVzdC1kZXZpY2Uta2V5LTMyYnl0ZXMhIQ==")
    /// sig=base64.b64encode(hmac.new(key,(sr+"\n"+str(se)).encode(),hashlib.sha256).digest())
    /// print("SharedAccessSignature sr="+sr+"&sig="+u.quote_plus(sig)+"&se="+str(se))'
    /// ```
    #[test]
    fn the_sas_token_matches_an_independently_computed_vector() {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD
            .decode("aG9sZGZhc3QtdGVzdC1kZXZpY2Uta2V5LTMyYnl0ZXMhIQ==")
            .unwrap();
        assert_eq!(
            sas_token(
                "hub-1.azure-devices.net/devices/site-7",
                &key,
                1_767_225_600
            ),
            include_str!("sas_vector.txt").trim()
        );
    }

    #[test]
    fn a_sas_token_is_renewed_before_it_expires_by_the_clock_given() {
        let login = Login::Sas {
            username: Broker::iot_hub_username("hub-1.azure-devices.net", "site-7"),
            resource: "hub-1.azure-devices.net/devices/site-7".into(),
            key: SecretBytes(b"k".to_vec()),
            ttl: Duration::from_secs(3600),
        };
        let t0 = 1_767_225_600;
        let (Some((user, token)), Some(serves)) = credentials(&login, t0) else {
            panic!("a SAS login has credentials and a renewal time");
        };
        assert_eq!(
            user,
            "hub-1.azure-devices.net/site-7/?api-version=2021-04-12"
        );
        assert!(token.ends_with(&format!("&se={}", t0 + 3600)), "{token}");
        // Renewed 12 minutes before the hour is up: the next connection's token is new.
        assert_eq!(serves, Duration::from_secs(2880));
        let (Some((_, next)), _) = credentials(&login, t0 + serves.as_secs()) else {
            panic!()
        };
        assert!(
            next.ends_with(&format!("&se={}", t0 + 2880 + 3600)),
            "{next}"
        );
        assert_ne!(token, next);
        // Passwords are never renewed.
        let (_, serves) = credentials(
            &Login::Password {
                username: "u".into(),
                password: None,
            },
            t0,
        );
        assert_eq!(serves, None);
    }

    #[test]
    fn iot_hub_gets_device_topics_a_twin_patch_and_no_retain() {
        let b = broker(
            Profile::IotHub {
                device: "site-7".into(),
            },
            Protocol::V311,
        );
        let wires = b.wires("s7", Kind::Status, br#"{"seq":3}"#.to_vec(), 42);
        assert_eq!(wires.len(), 2);
        assert_eq!(
            wires[0].topic,
            "devices/site-7/messages/events/$.ct=application%2Fjson&$.ce=utf-8&holdfast=status"
        );
        assert!(!wires[0].retain && wires[0].user.is_empty());
        assert_eq!(
            wires[1].topic,
            "$iothub/twin/PATCH/properties/reported/?$rid=42"
        );
        assert_eq!(wires[1].payload, br#"{"holdfast":{"seq":3}}"#);
        let events = b.wires("s7", Kind::Event, b"{}".to_vec(), 43);
        assert_eq!(events.len(), 1);
        assert!(events[0].topic.ends_with("&holdfast=event"));
        assert!(!b.will("s7", b"{}".to_vec()).retain);
        assert_eq!(b.subscriptions(), ["$iothub/twin/res/#"]);
    }

    #[test]
    fn generic_and_event_grid_retain_the_status_and_the_will() {
        let generic = broker(
            Profile::Generic {
                prefix: "holdfast".into(),
            },
            Protocol::V311,
        );
        let status = &generic.wires("s7", Kind::Status, b"{}".to_vec(), 1)[0];
        assert_eq!(
            (status.topic.as_str(), status.retain),
            ("holdfast/s7/status", true)
        );
        let event = &generic.wires("s7", Kind::Event, b"{}".to_vec(), 1)[0];
        assert_eq!(
            (event.topic.as_str(), event.retain, event.expiry),
            ("holdfast/s7/events", false, None)
        );
        let will = generic.will("s7", b"{}".to_vec());
        assert_eq!(
            (will.topic.as_str(), will.retain),
            ("holdfast/s7/status", true)
        );
        let grid = broker(
            Profile::EventGrid {
                prefix: "fleet".into(),
            },
            Protocol::V5,
        );
        let event = &grid.wires("s7", Kind::Event, b"{}".to_vec(), 1)[0];
        assert_eq!(event.topic, "fleet/s7/events");
        assert_eq!(event.expiry, Some(EVENT_EXPIRY));
        assert_eq!(
            event.user,
            [
                ("schema".to_owned(), "holdfast.event".to_owned()),
                ("site".to_owned(), "s7".to_owned()),
                ("kind".to_owned(), "event".to_owned())
            ]
        );
    }
}
