//! `[telemetry]`: what central ops reads from the appliance: who may scrape `GET /metrics`
//! from the LAN (it is always open on loopback, for a Prometheus agent or node exporter on
//! the box itself), and the MQTT telemetry (`[telemetry.mqtt]`, see `crate::telemetry`).
//!
//! ```toml
//! [telemetry]
//! metrics_token_file = "metrics.token"   # or metrics_token; 16+ characters
//! interval_secs = 60                     # a status at least this often
//! events_buffer = 1000                   # events kept while the broker is away
//! disk_pressure_mb = 500                 # headroom under this raises disk_pressure
//!
//! [telemetry.mqtt]
//! profile = "generic"                    # or azure-iot-hub, azure-event-grid
//! host = "broker.ops.example"
//! tls = true
//! ca_file = "/etc/holdfast/ops-ca.pem"
//! username = "site-7"
//! password_file = "/etc/holdfast/telemetry.password"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use holdfast_devices::mqtt::TlsSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Secret;
use crate::telemetry::profile::{
    Broker, EVENT_GRID_MAX_SESSION, Login, Profile, Protocol, SecretBytes, Settings,
};

/// Where TLS finds public CAs when the site names none (Debian's bundle): IoT Hub and Event
/// Grid present certificates from public roots.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// Bearer token a Prometheus on the LAN presents for `/metrics`; none: loopback only.
    pub metrics_token: Option<SecretString>,
    pub metrics_token_file: Option<PathBuf>,
    pub interval_secs: Option<u64>,
    pub events_buffer: Option<usize>,
    pub disk_pressure_mb: Option<u64>,
    pub mqtt: Option<RawTelemetryMqtt>,
}

/// `[telemetry.mqtt]` as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetryMqtt {
    pub profile: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `3.1.1` or `5` (generic only; IoT Hub is 3.1.1, Event Grid 5).
    pub protocol: Option<String>,
    pub tls: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    /// Topics go under `{topic_prefix}/{site}/` (generic, Event Grid).
    pub topic_prefix: Option<String>,
    /// IoT Hub: the device id (default: the site id).
    pub device_id: Option<String>,
    /// IoT Hub: the device's primary key (base64), for SAS tokens.
    pub device_key: Option<SecretString>,
    pub device_key_file: Option<PathBuf>,
    pub sas_ttl_secs: Option<u64>,
    pub keep_alive_secs: Option<u64>,
    pub qos: Option<u8>,
    pub will_delay_secs: Option<u64>,
    pub retry_min_secs: Option<f64>,
    pub retry_max_secs: Option<f64>,
}

/// The checked `[telemetry]` section.
#[derive(Clone, Debug, Default)]
pub struct TelemetryConfig {
    /// `/metrics` from another host needs this bearer token; `None`: refused off loopback.
    pub metrics_token: Option<Secret>,
    /// MQTT telemetry, when `[telemetry.mqtt]` is given.
    pub mqtt: Option<Settings>,
}

pub(super) fn validate(
    raw: &RawTelemetry,
    site: &str,
    problem: &mut impl FnMut(&str, String),
) -> TelemetryConfig {
    let metrics_token = match (&raw.metrics_token, &raw.metrics_token_file) {
        (None, None) => None,
        (inline, file) => super::secret(
            "telemetry.metrics_token",
            inline.as_ref().map(ExposeSecret::expose_secret),
            file.as_deref(),
            problem,
        ),
    };
    if metrics_token
        .as_ref()
        .is_some_and(|t| t.expose().len() < 16)
    {
        problem(
            "telemetry.metrics_token",
            "too short; use at least 16 characters".into(),
        );
    }
    let interval = raw.interval_secs.unwrap_or(60);
    if !(5..=3600).contains(&interval) {
        problem(
            "telemetry.interval_secs",
            format!("{interval} is out of range; use 5 to 3600 seconds"),
        );
    }
    let events_buffer = raw.events_buffer.unwrap_or(1000);
    if !(1..=100_000).contains(&events_buffer) {
        problem(
            "telemetry.events_buffer",
            format!("{events_buffer} is out of range; use 1 to 100000 events"),
        );
    }
    let mqtt = raw.mqtt.as_ref().and_then(|m| {
        broker(m, site, problem).map(|broker| Settings {
            site: site.to_owned(),
            broker,
            interval: Duration::from_secs(interval),
            events_buffer,
            disk_pressure_bytes: raw.disk_pressure_mb.unwrap_or(500) * 1_000_000,
        })
    });
    TelemetryConfig {
        metrics_token,
        mqtt,
    }
}

fn secs(
    key: &str,
    value: Option<f64>,
    default: f64,
    problem: &mut impl FnMut(&str, String),
) -> Duration {
    let v = value.unwrap_or(default);
    Duration::try_from_secs_f64(v).unwrap_or_else(|_| {
        problem(key, format!("{v} is not a number of seconds"));
        Duration::from_secs_f64(default)
    })
}

/// `[telemetry.mqtt]` checked into the link's settings; every problem named.
fn broker(
    m: &RawTelemetryMqtt,
    site: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<Broker> {
    let before = std::cell::Cell::new(0usize);
    let mut problem = |key: &str, why: String| {
        before.set(before.get() + 1);
        problem(key, why)
    };
    let prefix = m.topic_prefix.clone().unwrap_or_else(|| "holdfast".into());
    if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.ends_with('/') {
        problem(
            "telemetry.mqtt.topic_prefix",
            format!("{prefix:?} is not a topic prefix (no wildcards, no trailing /)"),
        );
    }
    let device = m.device_id.clone().unwrap_or_else(|| site.to_owned());
    let profile = match m.profile.as_deref().unwrap_or("generic") {
        "generic" => Profile::Generic { prefix },
        "azure-iot-hub" => Profile::IotHub {
            device: device.clone(),
        },
        "azure-event-grid" => Profile::EventGrid { prefix },
        other => {
            problem(
                "telemetry.mqtt.profile",
                format!("{other:?} is not one of: generic, azure-iot-hub, azure-event-grid"),
            );
            return None;
        }
    };
    let azure = !matches!(profile, Profile::Generic { .. });
    let host = m.host.clone().unwrap_or_default();
    if host.is_empty() {
        problem(
            "telemetry.mqtt.host",
            "missing; the broker's host name (IoT Hub: {hub}.azure-devices.net)".into(),
        );
    }
    let protocol = match (&profile, m.protocol.as_deref()) {
        (Profile::IotHub { .. }, None | Some("3.1.1")) => Protocol::V311,
        (Profile::EventGrid { .. }, None | Some("5")) => Protocol::V5,
        (Profile::Generic { .. }, None | Some("3.1.1")) => Protocol::V311,
        (Profile::Generic { .. }, Some("5")) => Protocol::V5,
        (_, Some(other)) => {
            problem(
                "telemetry.mqtt.protocol",
                format!(
                    "{other:?} does not go with profile {}: generic takes \"3.1.1\" or \"5\", azure-iot-hub \"3.1.1\", azure-event-grid \"5\"",
                    profile.name()
                ),
            );
            Protocol::V311
        }
    };
    let tls = m.tls.unwrap_or(azure);
    if azure && !tls {
        problem(
            "telemetry.mqtt.tls",
            format!("{} takes TLS only", profile.name()),
        );
    }
    let client_cert = match (&m.client_cert_file, &m.client_key_file) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => {
            problem(
                "telemetry.mqtt.client_cert_file",
                "give both client_cert_file and client_key_file, or neither".into(),
            );
            None
        }
    };
    let tls_settings = if tls {
        Some(TlsSettings {
            ca_file: m
                .ca_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE)),
            client_cert: client_cert.clone(),
        })
    } else {
        if m.ca_file.is_some() || client_cert.is_some() {
            problem(
                "telemetry.mqtt.tls",
                "certificate files are given but tls = false".into(),
            );
        }
        None
    };
    let password = match (&m.password, &m.password_file) {
        (None, None) => None,
        (inline, file) => super::secret(
            "telemetry.mqtt.password",
            inline.as_ref().map(ExposeSecret::expose_secret),
            file.as_deref(),
            &mut problem,
        ),
    };
    let device_key = match (&m.device_key, &m.device_key_file) {
        (None, None) => None,
        (inline, file) => super::secret(
            "telemetry.mqtt.device_key",
            inline.as_ref().map(ExposeSecret::expose_secret),
            file.as_deref(),
            &mut problem,
        ),
    };
    let sas_ttl = Duration::from_secs(m.sas_ttl_secs.unwrap_or(3600));
    if !(300..=86_400).contains(&sas_ttl.as_secs()) {
        problem(
            "telemetry.mqtt.sas_ttl_secs",
            format!(
                "{} is out of range; use 300 to 86400 seconds",
                sas_ttl.as_secs()
            ),
        );
    }
    let client_id = m.client_id.clone().unwrap_or_else(|| match &profile {
        Profile::IotHub { device } => device.clone(),
        _ => format!("holdfast-{site}"),
    });
    let login = match &profile {
        Profile::IotHub { device } => {
            if m.client_id.as_ref().is_some_and(|c| c != device) {
                problem(
                    "telemetry.mqtt.client_id",
                    "IoT Hub takes the device id as client id; leave client_id out".into(),
                );
            }
            if m.username.is_some() || password.is_some() {
                problem(
                    "telemetry.mqtt.username",
                    "IoT Hub's username and password are made from host, device_id and device_key; leave them out".into(),
                );
            }
            let username = Broker::iot_hub_username(&host, device);
            match (device_key, &client_cert) {
                (Some(key), None) => {
                    use base64::Engine;
                    match base64::engine::general_purpose::STANDARD.decode(key.expose().trim()) {
                        Ok(bytes) if !bytes.is_empty() => Login::Sas {
                            username,
                            resource: format!("{host}/devices/{device}"),
                            key: SecretBytes(bytes),
                            ttl: sas_ttl,
                        },
                        _ => {
                            problem(
                                "telemetry.mqtt.device_key",
                                "not a base64 key (copy the device's primary key from the hub)"
                                    .into(),
                            );
                            Login::None
                        }
                    }
                }
                // X.509: the certificate proves the device; the username still names it.
                (None, Some(_)) => Login::Password {
                    username,
                    password: None,
                },
                (Some(_), Some(_)) => {
                    problem(
                        "telemetry.mqtt.device_key",
                        "give a device key (SAS) or a client certificate (X.509), not both".into(),
                    );
                    Login::None
                }
                (None, None) => {
                    problem(
                        "telemetry.mqtt.device_key",
                        "IoT Hub needs the device's key (device_key_file) or a client certificate (client_cert_file, client_key_file)".into(),
                    );
                    Login::None
                }
            }
        }
        Profile::EventGrid { .. } => {
            if client_cert.is_none() {
                problem(
                    "telemetry.mqtt.client_cert_file",
                    "Event Grid authenticates this client by its certificate: give client_cert_file and client_key_file".into(),
                );
            }
            if password.is_some() || device_key.is_some() {
                problem(
                    "telemetry.mqtt.password",
                    "Event Grid takes a client certificate, not a password".into(),
                );
            }
            Login::Password {
                // The client's authentication name, as registered in the namespace.
                username: m.username.clone().unwrap_or_else(|| client_id.clone()),
                password: None,
            }
        }
        Profile::Generic { .. } => {
            if device_key.is_some() {
                problem(
                    "telemetry.mqtt.device_key",
                    "a device key is for profile azure-iot-hub".into(),
                );
            }
            match (&m.username, password) {
                (Some(u), p) => Login::Password {
                    username: u.clone(),
                    password: p.map(|p| SecretString::from(p.expose().to_owned())),
                },
                (None, Some(_)) => {
                    problem(
                        "telemetry.mqtt.username",
                        "a password is given without a username".into(),
                    );
                    Login::None
                }
                (None, None) => Login::None,
            }
        }
    };
    let qos1 = match m.qos.unwrap_or(1) {
        0 => false,
        1 => true,
        other => {
            problem(
                "telemetry.mqtt.qos",
                format!("{other} is not 0 or 1 (IoT Hub and Event Grid take no QoS 2)"),
            );
            true
        }
    };
    let keep_alive = m.keep_alive_secs.unwrap_or(30);
    if !(5..=1160).contains(&keep_alive) {
        problem(
            "telemetry.mqtt.keep_alive_secs",
            format!("{keep_alive} is out of range; use 5 to 1160 seconds (Event Grid's maximum)"),
        );
    }
    let will_delay = Duration::from_secs(m.will_delay_secs.unwrap_or(match profile {
        Profile::EventGrid { .. } => 30,
        _ => 0,
    }));
    if will_delay > Duration::ZERO && protocol != Protocol::V5 {
        problem(
            "telemetry.mqtt.will_delay_secs",
            "a delayed last will needs MQTT 5 (protocol = \"5\")".into(),
        );
    }
    if will_delay > EVENT_GRID_MAX_SESSION {
        problem(
            "telemetry.mqtt.will_delay_secs",
            format!(
                "{} s is longer than a session may last ({} s, Event Grid's cap)",
                will_delay.as_secs(),
                EVENT_GRID_MAX_SESSION.as_secs()
            ),
        );
    }
    let retry_min = secs(
        "telemetry.mqtt.retry_min_secs",
        m.retry_min_secs,
        1.0,
        &mut problem,
    );
    let retry_max = secs(
        "telemetry.mqtt.retry_max_secs",
        m.retry_max_secs,
        60.0,
        &mut problem,
    );
    if retry_min > retry_max || retry_min.is_zero() {
        problem(
            "telemetry.mqtt.retry_min_secs",
            "must be above 0 and at most retry_max_secs".into(),
        );
    }
    if before.get() > 0 {
        return None;
    }
    Some(Broker {
        port: m.port.unwrap_or(if tls { 8883 } else { 1883 }),
        profile,
        host,
        tls: tls_settings,
        client_id,
        login,
        protocol,
        keep_alive: Duration::from_secs(keep_alive),
        qos1,
        will_delay,
        retry_min,
        retry_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: RawTelemetry) -> (TelemetryConfig, Vec<String>) {
        let mut problems = Vec::new();
        let config = validate(&raw, "s1", &mut |key: &str, why: String| {
            problems.push(format!("{key}: {why}"))
        });
        (config, problems)
    }

    #[test]
    fn the_metrics_token_is_optional_long_and_given_once() {
        let (config, problems) = check(RawTelemetry::default());
        assert!(config.metrics_token.is_none() && problems.is_empty());
        let (config, problems) = check(RawTelemetry {
            metrics_token: Some("a-scrape-token-of-sixteen+".into()),
            metrics_token_file: None,
            ..RawTelemetry::default()
        });
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            config.metrics_token.map(|t| t.expose().to_owned()),
            Some("a-scrape-token-of-sixteen+".to_owned())
        );
        let (_, problems) = check(RawTelemetry {
            metrics_token: Some("short".into()),
            metrics_token_file: None,
            ..RawTelemetry::default()
        });
        assert_eq!(
            problems,
            ["telemetry.metrics_token: too short; use at least 16 characters"]
        );
        let (_, problems) = check(RawTelemetry {
            metrics_token: Some("a-scrape-token-of-sixteen+".into()),
            metrics_token_file: Some("metrics.token".into()),
            ..RawTelemetry::default()
        });
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    fn mqtt(m: RawTelemetryMqtt) -> (Option<Settings>, Vec<String>) {
        let (config, problems) = check(RawTelemetry {
            mqtt: Some(m),
            ..RawTelemetry::default()
        });
        (config.mqtt, problems)
    }

    /// The key each problem names (`key: why`).
    fn keys(problems: &[String]) -> Vec<&str> {
        problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect()
    }

    #[test]
    fn a_generic_broker_needs_only_a_host() {
        let (settings, problems) = mqtt(RawTelemetryMqtt {
            host: Some("broker".into()),
            ..RawTelemetryMqtt::default()
        });
        assert!(problems.is_empty(), "{problems:?}");
        let s = settings.unwrap();
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(s.events_buffer, 1000);
        assert_eq!(s.disk_pressure_bytes, 500_000_000);
        let b = s.broker;
        assert_eq!((b.port, b.protocol, b.qos1), (1883, Protocol::V311, true));
        assert_eq!(b.client_id, "holdfast-s1");
        assert_eq!(b.status_topic("s1"), "holdfast/s1/status");
        assert!(matches!(b.login, Login::None));
    }

    #[test]
    fn iot_hub_takes_a_device_key_or_a_certificate_and_tls() {
        let (settings, problems) = mqtt(RawTelemetryMqtt {
            profile: Some("azure-iot-hub".into()),
            host: Some("hub-1.azure-devices.net".into()),
            device_id: Some("site-7".into()),
            device_key: Some("aG9sZGZhc3Q=".into()),
            ..RawTelemetryMqtt::default()
        });
        assert!(problems.is_empty(), "{problems:?}");
        let b = settings.unwrap().broker;
        assert_eq!(
            (b.port, b.protocol, &b.client_id[..]),
            (8883, Protocol::V311, "site-7")
        );
        assert_eq!(
            b.tls.unwrap().ca_file,
            PathBuf::from("/etc/ssl/certs/ca-certificates.crt")
        );
        let Login::Sas {
            username, resource, ..
        } = b.login
        else {
            panic!("SAS login expected")
        };
        assert_eq!(
            username,
            "hub-1.azure-devices.net/site-7/?api-version=2021-04-12"
        );
        assert_eq!(resource, "hub-1.azure-devices.net/devices/site-7");

        let (_, problems) = mqtt(RawTelemetryMqtt {
            profile: Some("azure-iot-hub".into()),
            host: Some("hub-1.azure-devices.net".into()),
            tls: Some(false),
            protocol: Some("5".into()),
            qos: Some(2),
            device_key: Some("not base64!".into()),
            ..RawTelemetryMqtt::default()
        });
        assert_eq!(
            keys(&problems),
            [
                "telemetry.mqtt.protocol",
                "telemetry.mqtt.tls",
                "telemetry.mqtt.device_key",
                "telemetry.mqtt.qos"
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn event_grid_is_mqtt_5_with_a_client_certificate_and_a_bounded_will_delay() {
        let (settings, problems) = mqtt(RawTelemetryMqtt {
            profile: Some("azure-event-grid".into()),
            host: Some("ns.westeurope-1.ts.eventgrid.azure.net".into()),
            client_cert_file: Some("site.pem".into()),
            client_key_file: Some("site.key".into()),
            username: Some("site-7".into()),
            ..RawTelemetryMqtt::default()
        });
        assert!(problems.is_empty(), "{problems:?}");
        let b = settings.unwrap().broker;
        assert_eq!(b.protocol, Protocol::V5);
        assert_eq!(b.will_delay, Duration::from_secs(30));
        assert!(
            matches!(&b.login, Login::Password { username, password: None } if username == "site-7")
        );
        let (_, problems) = mqtt(RawTelemetryMqtt {
            profile: Some("azure-event-grid".into()),
            host: Some("ns".into()),
            will_delay_secs: Some(9 * 3600),
            ..RawTelemetryMqtt::default()
        });
        assert_eq!(
            keys(&problems),
            [
                "telemetry.mqtt.client_cert_file",
                "telemetry.mqtt.will_delay_secs"
            ],
            "{problems:?}"
        );
    }
}
