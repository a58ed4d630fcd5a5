//! Config of the devices on the warehouse LAN: `[[scanners]]`, `[mqtt]`, `[[printers]]` and
//! `[printing]`, checked into the transports' own settings.
//!
//! ```toml
//! [[scanners]]
//! id = "dock-1"
//! transport = "serial"          # serial | tcp-listen | tcp-connect
//! path = "/dev/serial/by-id/usb-Datalogic_QD2430-if00"
//! baud = 9600                   # data_bits = 8, parity = "none", stop_bits = 1, flow_control = "none"
//! terminator = "cr"             # cr | lf | crlf | tab | 0x03
//! good_beep = ""                # bytes in hex the scanner beeps on, e.g. "07"
//! bad_beep = ""
//! printer = "dock-printer"      # where labels of this scanner's workflows go
//! frame_timeout_ms = 500        # a partial scan quiet this long is dropped (0: never)
//!
//! [[scanners]]
//! id = "dock-2"
//! transport = "tcp-listen"
//! address = "0.0.0.0:4001"
//! allow = ["10.0.0.21", "10.0.5.0/24"]   # only these peers (default: anyone who reaches it)
//!
//! [mqtt]
//! host = "broker.site.lan"      # port = 1883, tls = false, ca_file, client_cert_file, client_key_file
//! username = "holdfast"         # password or password_file
//! scan_topic = "holdfast/{site}/scanner/{device}/scan"
//! reply_topic = "holdfast/{site}/scanner/{device}/reply"
//! devices = ["mqtt-1", "mqtt-2"]   # the MQTT scanners; any other id is refused
//! device_pattern = "scanner-*"  # or/and ids matching this (never one of another transport)
//!
//! [[printers]]
//! id = "dock-printer"
//! transport = "tcp"             # tcp (raw port 9100) | serial
//! address = "10.0.0.50:9100"
//! dpi = 203                     # 203 | 300 | 600; width_mm = 100, height_mm = 50
//!
//! [printing]
//! default_printer = "dock-printer"
//! receive_labels = true         # lot/serial labels when receiving tracked products
//! gs1_company_prefix = "0590123"
//! templates = "/etc/holdfast/labels"   # site ZPL templates (product.zpl, lot.zpl, ...)
//! ```
//!
//! Device ids are one namespace: an id belongs to exactly one of `[[devices]]` (HTTP
//! handhelds), `[[scanners]]` (serial, TCP), `mqtt.devices` / `mqtt.device_pattern` and
//! `[[printers]]`. A scan is acted on in the session of the id it names, so an id on two
//! transports would let one device act as the other; the config refuses it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use holdfast_devices::frame::{FrameConfig, Terminator};
use holdfast_devices::mqtt::{DevicePattern, MqttSettings, TlsSettings, TopicPattern};
use holdfast_devices::printer::PrinterAddress;
use holdfast_devices::serial::{self, SerialSettings};
use holdfast_devices::tcp::{AllowedNet, TcpMode};
use holdfast_devices::template::Templates;
use holdfast_devices::zpl::{Dpi, LabelSize};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Secret, secret};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScanner {
    pub id: Option<String>,
    pub transport: Option<String>,
    pub path: Option<PathBuf>,
    pub baud: Option<u32>,
    pub data_bits: Option<u8>,
    pub parity: Option<String>,
    pub stop_bits: Option<u8>,
    pub flow_control: Option<String>,
    pub address: Option<String>,
    pub terminator: Option<String>,
    pub strip_prefix: Option<String>,
    pub strip_suffix: Option<String>,
    pub good_beep: Option<String>,
    pub bad_beep: Option<String>,
    pub idle_timeout_secs: Option<u64>,
    /// Inter-character time-out in ms (0: never).
    pub frame_timeout_ms: Option<u64>,
    /// `tcp-listen`: the peers taken, addresses or networks.
    pub allow: Option<Vec<String>>,
    pub printer: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// Held as a secret from the moment it is read: `Debug` of the raw config never shows it.
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    pub tls: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub scan_topic: Option<String>,
    pub reply_topic: Option<String>,
    pub keep_alive_secs: Option<u64>,
    pub devices: Option<Vec<String>>,
    pub device_pattern: Option<String>,
    pub printer: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrinter {
    pub id: Option<String>,
    pub transport: Option<String>,
    pub address: Option<String>,
    pub path: Option<PathBuf>,
    pub baud: Option<u32>,
    pub data_bits: Option<u8>,
    pub parity: Option<String>,
    pub stop_bits: Option<u8>,
    pub flow_control: Option<String>,
    pub dpi: Option<u32>,
    pub width_mm: Option<f32>,
    pub height_mm: Option<f32>,
    pub poll_secs: Option<f64>,
    pub offline_after: Option<u32>,
    pub timeout_secs: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrinting {
    pub default_printer: Option<String>,
    pub receive_labels: Option<bool>,
    pub gs1_company_prefix: Option<String>,
    pub sscc_extension: Option<u8>,
    pub templates: Option<PathBuf>,
}

/// How a scanner reaches the appliance.
#[derive(Clone, Debug)]
pub enum ScannerLink {
    Serial(SerialSettings),
    Tcp(TcpMode),
}

#[derive(Clone, Debug)]
pub struct ScannerConfig {
    pub id: String,
    pub link: ScannerLink,
    pub frame: FrameConfig,
    pub good_beep: Vec<u8>,
    pub bad_beep: Vec<u8>,
    pub idle_timeout: Option<Duration>,
    /// Inter-character time-out (`None`: never).
    pub frame_timeout: Option<Duration>,
    /// `tcp-listen`: the peers taken (empty: any).
    pub allow: Vec<AllowedNet>,
    pub printer: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PrinterConfig {
    pub id: String,
    pub address: PrinterAddress,
    pub size: LabelSize,
    /// Status poll period (`~HS`).
    pub poll: Duration,
    /// Missed polls before the printer counts as offline.
    pub offline_after: u32,
    /// Time-out of one exchange (connect, status answer, send).
    pub timeout: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct PrintingConfig {
    pub default_printer: Option<String>,
    pub receive_labels: bool,
    /// GS1 company prefix and extension digit for SSCCs (package labels).
    pub sscc: Option<(String, u8)>,
    /// The site's label templates (none: the built-in layouts).
    pub templates: Templates,
    /// Where they were read from (`printing.templates`), to read them again on SIGHUP.
    pub templates_dir: Option<PathBuf>,
}

/// Everything on the LAN, validated.
#[derive(Clone, Debug, Default)]
pub struct LanConfig {
    pub scanners: Vec<ScannerConfig>,
    /// Ids of the HTTP handhelds (`[[devices]]`): no scanner transport may act as them.
    pub http_devices: Vec<String>,
    pub mqtt: Option<(MqttSettings, Option<String>)>,
    pub printers: Vec<PrinterConfig>,
    pub printing: PrintingConfig,
}

impl LanConfig {
    pub fn printer(&self, id: &str) -> Option<&PrinterConfig> {
        self.printers.iter().find(|p| p.id == id)
    }

    /// The LAN transport that owns `id` (a serial or TCP scanner, a listed or matching MQTT
    /// scanner, a printer), if one does: such an id is never a handheld's.
    pub fn owner_of(&self, id: &str) -> Option<&'static str> {
        if self.scanners.iter().any(|s| s.id == id) {
            return Some("a [[scanners]] entry");
        }
        if let Some((mqtt, _)) = &self.mqtt
            && (mqtt.devices.iter().any(|d| d == id)
                || mqtt.device_pattern.as_ref().is_some_and(|p| p.matches(id)))
        {
            return Some("an MQTT scanner (mqtt.devices or mqtt.device_pattern)");
        }
        self.printer(id).map(|_| "a [[printers]] entry")
    }
}

/// Hex bytes as written in the config: `"1b 07"`, `"1B07"`, or empty.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .unwrap_or(&digits);
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{text:?} is not hex bytes (e.g. \"1b 07\")"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("{text:?} is not hex bytes (e.g. \"1b 07\")"))
        })
        .collect()
}

fn valid_id(id: &str) -> bool {
    holdfast_devices::mqtt::valid_device(id)
}

struct SerialFields<'a> {
    path: &'a Option<PathBuf>,
    baud: Option<u32>,
    data_bits: Option<u8>,
    parity: &'a Option<String>,
    stop_bits: Option<u8>,
    flow_control: &'a Option<String>,
}

fn serial_settings(
    f: SerialFields<'_>,
    key: &dyn Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) -> Option<SerialSettings> {
    let Some(path) = f.path.clone().filter(|p| !p.as_os_str().is_empty()) else {
        problem(
            &key("path"),
            "missing; the serial port, preferably /dev/serial/by-id/...".into(),
        );
        return None;
    };
    let mut s = SerialSettings::new(path);
    s.baud = f.baud.unwrap_or(9600);
    if !(300..=4_000_000).contains(&s.baud) {
        problem(
            &key("baud"),
            format!("{} is out of range 300..=4000000", s.baud),
        );
    }
    match serial::parse_data_bits(f.data_bits.unwrap_or(8)) {
        Some(bits) => s.data_bits = bits,
        None => problem(&key("data_bits"), "must be 5, 6, 7 or 8".into()),
    }
    match serial::parse_parity(f.parity.as_deref().unwrap_or("none")) {
        Some(p) => s.parity = p,
        None => problem(&key("parity"), "must be none, odd or even".into()),
    }
    match serial::parse_stop_bits(f.stop_bits.unwrap_or(1)) {
        Some(b) => s.stop_bits = b,
        None => problem(&key("stop_bits"), "must be 1 or 2".into()),
    }
    match serial::parse_flow_control(f.flow_control.as_deref().unwrap_or("none")) {
        Some(fc) => s.flow_control = fc,
        None => problem(
            &key("flow_control"),
            "must be none, software or hardware".into(),
        ),
    }
    Some(s)
}

fn secs(
    key: &str,
    value: Option<f64>,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
    problem: &mut impl FnMut(&str, String),
) -> Duration {
    let v = value.unwrap_or(default);
    if !v.is_finite() || !range.contains(&v) {
        problem(
            key,
            format!("{v} is out of range {}..={}", range.start(), range.end()),
        );
        return Duration::from_secs_f64(default);
    }
    Duration::from_secs_f64(v)
}

/// Checks the LAN sections; problems go to `problem` under their keys. `http_devices` are
/// the ids of `[[devices]]`, which no LAN device may reuse.
pub fn validate(
    site: &str,
    http_devices: &[String],
    scanners: &[RawScanner],
    mqtt: Option<&RawMqtt>,
    printers: &[RawPrinter],
    printing: &RawPrinting,
    problem: &mut impl FnMut(&str, String),
) -> LanConfig {
    let mut lan = LanConfig {
        http_devices: http_devices.to_vec(),
        ..LanConfig::default()
    };
    let mut ids: Vec<String> = Vec::new();
    let http_owned = |id: &str| http_devices.iter().any(|d| d == id);

    for (i, p) in printers.iter().enumerate() {
        let key = |field: &str| format!("printers[{i}].{field}");
        let id = p.id.clone().unwrap_or_default();
        if !valid_id(&id) {
            problem(
                &key("id"),
                format!("{id:?}: use 1-64 letters, digits, '.', '_' or '-'"),
            );
            continue;
        }
        if ids.contains(&id) {
            problem(&key("id"), format!("{id:?} is used twice"));
            continue;
        }
        if http_owned(&id) {
            problem(
                &key("id"),
                format!("{id:?} is also a [[devices]] id; each device id belongs to one device"),
            );
            continue;
        }
        ids.push(id.clone());
        let address = match p.transport.as_deref().unwrap_or("tcp") {
            "tcp" => match p.address.as_deref() {
                Some(a) if !a.is_empty() => {
                    let a = if a.contains(':') {
                        a.to_owned()
                    } else {
                        format!("{a}:9100")
                    };
                    Some(PrinterAddress::Tcp(a))
                }
                _ => {
                    problem(
                        &key("address"),
                        "missing; the printer's host:port (raw port 9100)".into(),
                    );
                    None
                }
            },
            "serial" => serial_settings(
                SerialFields {
                    path: &p.path,
                    baud: p.baud,
                    data_bits: p.data_bits,
                    parity: &p.parity,
                    stop_bits: p.stop_bits,
                    flow_control: &p.flow_control,
                },
                &key,
                problem,
            )
            .map(PrinterAddress::Serial),
            other => {
                problem(
                    &key("transport"),
                    format!("{other:?} is not one of: tcp, serial"),
                );
                None
            }
        };
        let dpi = match Dpi::from_dpi(p.dpi.unwrap_or(203)) {
            Some(d) => d,
            None => {
                problem(&key("dpi"), "must be 203, 300 or 600".into());
                Dpi::D203
            }
        };
        let width_mm = p.width_mm.unwrap_or(100.0);
        let height_mm = p.height_mm.unwrap_or(50.0);
        for (field, v) in [("width_mm", width_mm), ("height_mm", height_mm)] {
            if !v.is_finite() || !(10.0..=300.0).contains(&v) {
                problem(&key(field), format!("{v} is out of range 10..=300"));
            }
        }
        let poll = secs(&key("poll_secs"), p.poll_secs, 10.0, 0.05..=3600.0, problem);
        let timeout = secs(
            &key("timeout_secs"),
            p.timeout_secs,
            3.0,
            0.05..=120.0,
            problem,
        );
        let offline_after = p.offline_after.unwrap_or(3);
        if !(1..=100).contains(&offline_after) {
            problem(
                &key("offline_after"),
                format!("{offline_after} is out of range 1..=100"),
            );
        }
        if let Some(address) = address {
            lan.printers.push(PrinterConfig {
                id,
                address,
                size: LabelSize {
                    width_mm,
                    height_mm,
                    dpi,
                },
                poll,
                offline_after: offline_after.clamp(1, 100),
                timeout,
            });
        }
    }

    let printer_ref =
        |key: &str, printer: &Option<String>, problem: &mut dyn FnMut(&str, String)| {
            if let Some(p) = printer
                && !printers.iter().any(|x| x.id.as_deref() == Some(p.as_str()))
            {
                problem(key, format!("{p:?} is not one of the [[printers]]"));
            }
        };

    for (i, s) in scanners.iter().enumerate() {
        let key = |field: &str| format!("scanners[{i}].{field}");
        let id = s.id.clone().unwrap_or_default();
        if !valid_id(&id) {
            problem(
                &key("id"),
                format!("{id:?}: use 1-64 letters, digits, '.', '_' or '-'"),
            );
            continue;
        }
        if ids.contains(&id) {
            problem(
                &key("id"),
                format!("{id:?} is used twice (scanner and printer ids share one namespace)"),
            );
            continue;
        }
        if http_owned(&id) {
            problem(
                &key("id"),
                format!(
                    "{id:?} is also an HTTP handheld ([[devices]]); each device id belongs to exactly one transport"
                ),
            );
            continue;
        }
        ids.push(id.clone());
        let link = match s.transport.as_deref().unwrap_or("") {
            "serial" => serial_settings(
                SerialFields {
                    path: &s.path,
                    baud: s.baud,
                    data_bits: s.data_bits,
                    parity: &s.parity,
                    stop_bits: s.stop_bits,
                    flow_control: &s.flow_control,
                },
                &key,
                problem,
            )
            .map(ScannerLink::Serial),
            "tcp-listen" => match s.address.as_deref().map(str::parse::<SocketAddr>) {
                Some(Ok(addr)) => Some(ScannerLink::Tcp(TcpMode::Listen(addr))),
                _ => {
                    problem(
                        &key("address"),
                        "the address to listen on, IP:PORT (e.g. \"0.0.0.0:4001\")".into(),
                    );
                    None
                }
            },
            "tcp-connect" => match s.address.as_deref() {
                Some(a) if a.contains(':') => {
                    Some(ScannerLink::Tcp(TcpMode::Connect(a.to_owned())))
                }
                _ => {
                    problem(&key("address"), "the scanner's HOST:PORT".into());
                    None
                }
            },
            other => {
                problem(
                    &key("transport"),
                    format!(
                        "{other:?} is not one of: serial, tcp-listen, tcp-connect (MQTT scanners are served by [mqtt])"
                    ),
                );
                None
            }
        };
        let mut frame = FrameConfig::default();
        if let Some(t) = &s.terminator {
            match t.parse::<Terminator>() {
                Ok(t) => frame.terminator = t,
                Err(e) => problem(&key("terminator"), e.to_string()),
            }
        }
        let mut bytes = |field: &str, v: &Option<String>| -> Vec<u8> {
            match v.as_deref().map(parse_hex) {
                None => Vec::new(),
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    problem(&key(field), e);
                    Vec::new()
                }
            }
        };
        frame.strip_prefix = s
            .strip_prefix
            .clone()
            .map(String::into_bytes)
            .unwrap_or_default();
        frame.strip_suffix = s
            .strip_suffix
            .clone()
            .map(String::into_bytes)
            .unwrap_or_default();
        let good_beep = bytes("good_beep", &s.good_beep);
        let bad_beep = bytes("bad_beep", &s.bad_beep);
        printer_ref(&key("printer"), &s.printer, problem);
        let frame_timeout = match s.frame_timeout_ms {
            None => Some(holdfast_devices::frame::DEFAULT_FRAME_TIMEOUT),
            Some(0) => None,
            Some(ms) if ms <= 60_000 => Some(Duration::from_millis(ms)),
            Some(ms) => {
                problem(
                    &key("frame_timeout_ms"),
                    format!("{ms} is out of range 0..=60000 (0: never)"),
                );
                None
            }
        };
        let mut allow = Vec::new();
        if let Some(list) = &s.allow {
            if !matches!(link, Some(ScannerLink::Tcp(TcpMode::Listen(_)))) {
                problem(
                    &key("allow"),
                    "only a tcp-listen scanner takes connections; allow is for those".into(),
                );
            }
            if list.is_empty() {
                problem(
                    &key("allow"),
                    "is empty, which would refuse every connection; list the scanner's addresses or leave allow out".into(),
                );
            }
            for entry in list {
                match entry.parse::<AllowedNet>() {
                    Ok(net) => allow.push(net),
                    Err(e) => problem(&key("allow"), e),
                }
            }
        }
        if let Some(link) = link {
            lan.scanners.push(ScannerConfig {
                id,
                link,
                frame,
                good_beep,
                bad_beep,
                idle_timeout: s
                    .idle_timeout_secs
                    .filter(|&t| t > 0)
                    .map(Duration::from_secs),
                frame_timeout,
                allow,
                printer: s.printer.clone(),
            });
        }
    }

    if let Some(m) = mqtt {
        let host = m.host.clone().unwrap_or_default();
        if host.is_empty() {
            problem(
                "mqtt.host",
                "missing; the broker's host name or address".into(),
            );
        }
        let tls = m.tls.unwrap_or(false);
        let port = m.port.unwrap_or(if tls { 8883 } else { 1883 });
        let fill = |t: &str| t.replace("{site}", site);
        let scan_topic = fill(
            m.scan_topic
                .as_deref()
                .unwrap_or("holdfast/{site}/scanner/{device}/scan"),
        );
        let reply_topic = fill(
            m.reply_topic
                .as_deref()
                .unwrap_or("holdfast/{site}/scanner/{device}/reply"),
        );
        for (k, t) in [
            ("mqtt.scan_topic", &scan_topic),
            ("mqtt.reply_topic", &reply_topic),
        ] {
            if let Err(e) = TopicPattern::parse(t) {
                problem(k, e.to_string());
            }
        }
        let tls_settings = if tls {
            match (&m.ca_file, &m.client_cert_file, &m.client_key_file) {
                (None, _, _) => {
                    problem(
                        "mqtt.ca_file",
                        "TLS needs the CA certificate (PEM) the broker's certificate chains to"
                            .into(),
                    );
                    None
                }
                (Some(ca), None, None) => Some(TlsSettings {
                    ca_file: ca.clone(),
                    client_cert: None,
                }),
                (Some(ca), Some(c), Some(k)) => Some(TlsSettings {
                    ca_file: ca.clone(),
                    client_cert: Some((c.clone(), k.clone())),
                }),
                _ => {
                    problem(
                        "mqtt.client_cert_file",
                        "give both client_cert_file and client_key_file, or neither".into(),
                    );
                    None
                }
            }
        } else {
            if m.ca_file.is_some() || m.client_cert_file.is_some() {
                problem(
                    "mqtt.tls",
                    "certificate files are given but tls = false".into(),
                );
            }
            None
        };
        let password: Option<Secret> = if m.password.is_some() || m.password_file.is_some() {
            if m.username.is_none() {
                problem(
                    "mqtt.username",
                    "a password is given without a username".into(),
                );
            }
            secret(
                "mqtt.password",
                m.password.as_ref().map(|p| p.expose_secret()),
                m.password_file.as_deref(),
                problem,
            )
        } else {
            None
        };
        let devices = m.devices.clone().unwrap_or_default();
        for (i, d) in devices.iter().enumerate() {
            if !valid_id(d) {
                problem(
                    "mqtt.devices",
                    format!("{d:?}: use 1-64 letters, digits, '.', '_' or '-'"),
                );
            } else if devices[..i].contains(d) {
                problem("mqtt.devices", format!("{d:?} is listed twice"));
            } else if http_owned(d) {
                problem(
                    "mqtt.devices",
                    format!(
                        "{d:?} is also an HTTP handheld ([[devices]]); each device id belongs to exactly one transport"
                    ),
                );
            } else if ids.contains(d) {
                problem(
                    "mqtt.devices",
                    format!(
                        "{d:?} is also a [[scanners]] or [[printers]] id; each device id belongs to exactly one transport"
                    ),
                );
            }
        }
        let device_pattern = match m.device_pattern.as_deref().map(str::parse::<DevicePattern>) {
            None => None,
            Some(Err(e)) => {
                problem("mqtt.device_pattern", e);
                None
            }
            Some(Ok(pattern)) => {
                let taken: Vec<&String> = http_devices
                    .iter()
                    .chain(&ids)
                    .filter(|id| pattern.matches(id))
                    .collect();
                if taken.is_empty() {
                    Some(pattern)
                } else {
                    problem(
                        "mqtt.device_pattern",
                        format!(
                            "{pattern:?} matches {taken:?}, owned by another transport; narrow it (e.g. \"scanner-*\")"
                        ),
                    );
                    None
                }
            }
        };
        if devices.is_empty() && m.device_pattern.is_none() {
            problem(
                "mqtt.devices",
                "no MQTT scanner is listed: name them (devices = [\"mqtt-1\"]) or opt into a pattern (device_pattern = \"scanner-*\"); a scan under any other id is refused".into(),
            );
        }
        printer_ref("mqtt.printer", &m.printer, problem);
        let keep_alive = m.keep_alive_secs.unwrap_or(30).clamp(5, 3600);
        lan.mqtt = Some((
            MqttSettings {
                link: "mqtt-broker".into(),
                host,
                port,
                client_id: m
                    .client_id
                    .clone()
                    .unwrap_or_else(|| format!("holdfast-{site}")),
                username: m.username.clone(),
                password: password.map(|p| SecretString::from(p.expose())),
                tls: tls_settings,
                scan_topic,
                reply_topic,
                keep_alive: Duration::from_secs(keep_alive),
                devices,
                device_pattern,
                retry_min: Duration::from_millis(500),
                retry_max: Duration::from_secs(30),
            },
            m.printer.clone(),
        ));
    }

    printer_ref(
        "printing.default_printer",
        &printing.default_printer,
        problem,
    );
    lan.printing.default_printer = printing
        .default_printer
        .clone()
        .or_else(|| (lan.printers.len() == 1).then(|| lan.printers[0].id.clone()));
    lan.printing.receive_labels = printing.receive_labels.unwrap_or(false);
    if lan.printing.receive_labels
        && lan.printing.default_printer.is_none()
        && lan.scanners.iter().all(|s| s.printer.is_none())
    {
        problem(
            "printing.receive_labels",
            "labels need a printer: set printing.default_printer (or a scanner's printer)".into(),
        );
    }
    if let Some(prefix) = &printing.gs1_company_prefix {
        if !(7..=10).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            problem(
                "printing.gs1_company_prefix",
                format!("{prefix:?} must be 7 to 10 digits"),
            );
        } else {
            let ext = printing.sscc_extension.unwrap_or(0);
            if ext > 9 {
                problem("printing.sscc_extension", "must be one digit 0-9".into());
            }
            lan.printing.sscc = Some((prefix.clone(), ext.min(9)));
        }
    }
    if let Some(dir) = &printing.templates {
        lan.printing.templates_dir = Some(dir.clone());
        match Templates::load(dir) {
            Ok(t) => lan.printing.templates = t,
            Err(e) => problem("printing.templates", e.to_string()),
        }
    }
    lan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(lan: &str) -> Result<crate::config::Config, Vec<String>> {
        let text = format!("[site]\nid = \"s1\"\n{lan}");
        match crate::config::RawConfig::from_toml(&text).and_then(|r| r.validate()) {
            Ok(c) => Ok(c),
            Err(crate::config::ConfigError::Invalid(list)) => {
                Err(list.into_iter().map(|p| p.to_string()).collect())
            }
            Err(e) => Err(vec![e.to_string()]),
        }
    }

    #[test]
    fn a_site_with_every_kind_of_device_validates() {
        let c = check(
            "[[scanners]]\nid = \"dock-1\"\ntransport = \"serial\"\npath = \"/dev/serial/by-id/x\"\nbaud = 115200\nparity = \"even\"\nterminator = \"0x03\"\ngood_beep = \"07\"\nprinter = \"p1\"\n\
             [[scanners]]\nid = \"tun\"\ntransport = \"tcp-listen\"\naddress = \"0.0.0.0:4001\"\n\
             [[scanners]]\nid = \"box\"\ntransport = \"tcp-connect\"\naddress = \"10.0.0.9:51236\"\n\
             [mqtt]\nhost = \"broker\"\nusername = \"u\"\npassword = \"secret-pass\"\ndevices = [\"mq-1\"]\n\
             [[printers]]\nid = \"p1\"\naddress = \"10.0.0.50\"\ndpi = 300\n\
             [printing]\ngs1_company_prefix = \"5901230\"\n",
        )
        .unwrap();
        assert_eq!(c.lan.scanners.len(), 3);
        assert_eq!(c.lan.scanners[0].frame.terminator, Terminator::Byte(3));
        assert_eq!(c.lan.scanners[0].good_beep, vec![7]);
        let (mqtt, _) = c.lan.mqtt.unwrap();
        assert_eq!(mqtt.scan_topic, "holdfast/s1/scanner/{device}/scan");
        assert_eq!(mqtt.client_id, "holdfast-s1");
        assert_eq!(
            c.lan.printers[0].address,
            PrinterAddress::Tcp("10.0.0.50:9100".into())
        );
        assert_eq!(c.lan.printing.default_printer.as_deref(), Some("p1"));
        assert_eq!(c.lan.printing.sscc, Some(("5901230".into(), 0)));
    }

    #[test]
    fn site_templates_are_loaded_and_their_mistakes_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sscc.zpl"),
            "^XA^FO9,9^FH_^FD{{ sscc }}^FS^XZ",
        )
        .unwrap();
        let lan = format!(
            "[[printers]]\nid = \"p\"\naddress = \"h\"\n[printing]\ntemplates = \"{}\"\n",
            dir.path().display()
        );
        let c = check(&lan).unwrap();
        assert_eq!(
            c.lan
                .printing
                .templates
                .files()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec!["sscc"]
        );
        std::fs::write(dir.path().join("lot.zpl"), "^XA^FH_^FD{{ lott }}^FS^XZ").unwrap();
        let problems = check(&lan).unwrap_err().join("\n");
        assert!(
            problems.contains("printing.templates") && problems.contains("lot.zpl"),
            "{problems}"
        );
    }

    #[test]
    fn device_config_problems_are_all_named() {
        let problems = check(
            "[[scanners]]\nid = \"a\"\ntransport = \"usb\"\n\
             [[scanners]]\nid = \"b\"\ntransport = \"serial\"\npath = \"/dev/x\"\nterminator = \"semicolon\"\nbad_beep = \"zz\"\nprinter = \"nope\"\n\
             [[scanners]]\nid = \"b\"\ntransport = \"tcp-listen\"\naddress = \"x\"\n\
             [mqtt]\nhost = \"\"\nscan_topic = \"scans/+\"\ntls = true\n\
             [[printers]]\nid = \"p\"\ndpi = 250\naddress = \"h\"\nwidth_mm = 5\n\
             [printing]\ngs1_company_prefix = \"12\"\n",
        )
        .unwrap_err()
        .join("\n");
        for expected in [
            "scanners[0].transport",
            "scanners[1].terminator",
            "scanners[1].bad_beep",
            "scanners[1].printer",
            "scanners[2].id: \"b\" is used twice",
            "mqtt.host",
            "mqtt.scan_topic",
            "mqtt.ca_file",
            "printers[0].dpi",
            "printers[0].width_mm",
            "printing.gs1_company_prefix",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing in:\n{problems}"
            );
        }
    }

    #[test]
    fn each_device_id_belongs_to_one_transport() {
        let handheld = "[[devices]]\nid = \"hh-1\"\ntoken = \"0123456789abcdef0123\"\n";
        let problems = check(&format!(
            "{handheld}\
             [[scanners]]\nid = \"hh-1\"\ntransport = \"serial\"\npath = \"/dev/x\"\n\
             [[scanners]]\nid = \"dock-1\"\ntransport = \"tcp-listen\"\naddress = \"0.0.0.0:4001\"\n\
             [mqtt]\nhost = \"b\"\ndevices = [\"hh-1\", \"dock-1\", \"mq-1\", \"mq-1\"]\ndevice_pattern = \"*-1\"\n"
        ))
        .unwrap_err()
        .join("\n");
        for expected in [
            "scanners[0].id: \"hh-1\" is also an HTTP handheld",
            "mqtt.devices: \"hh-1\" is also an HTTP handheld",
            "mqtt.devices: \"dock-1\" is also a [[scanners]] or [[printers]] id",
            "mqtt.devices: \"mq-1\" is listed twice",
            "mqtt.device_pattern: ",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing in:\n{problems}"
            );
        }
        // MQTT scanners must be named, by list or by a pattern the site opts into.
        let problems = check("[mqtt]\nhost = \"b\"\n").unwrap_err().join("\n");
        assert!(
            problems.contains("mqtt.devices: no MQTT scanner is listed"),
            "{problems}"
        );
        let c = check(&format!(
            "{handheld}[mqtt]\nhost = \"b\"\ndevice_pattern = \"scanner-*\"\n"
        ))
        .unwrap();
        assert_eq!(c.lan.http_devices, vec!["hh-1".to_owned()]);
        // `holdfast device issue` asks this before issuing a handheld id.
        assert!(c.lan.owner_of("scanner-9").is_some());
        assert_eq!(c.lan.owner_of("hh-2"), None);
        let (mqtt, _) = c.lan.mqtt.unwrap();
        assert!(mqtt.device_pattern.unwrap().matches("scanner-9"));
    }

    #[test]
    fn listeners_take_allowed_peers_and_partial_scans_time_out() {
        let c = check(
            "[[scanners]]\nid = \"t\"\ntransport = \"tcp-listen\"\naddress = \"0.0.0.0:4001\"\nallow = [\"10.0.0.21\", \"10.0.5.0/24\"]\n\
             [[scanners]]\nid = \"s\"\ntransport = \"serial\"\npath = \"/dev/x\"\nframe_timeout_ms = 0\n",
        )
        .unwrap();
        let t = &c.lan.scanners[0];
        assert_eq!(t.allow.len(), 2);
        assert!(t.allow[1].contains("10.0.5.9".parse().unwrap()));
        assert_eq!(
            t.frame_timeout,
            Some(holdfast_devices::frame::DEFAULT_FRAME_TIMEOUT)
        );
        assert_eq!(c.lan.scanners[1].frame_timeout, None);
        let problems = check(
            "[[scanners]]\nid = \"t\"\ntransport = \"tcp-listen\"\naddress = \"0.0.0.0:4001\"\nallow = [\"10.0.0.300\"]\n\
             [[scanners]]\nid = \"u\"\ntransport = \"tcp-listen\"\naddress = \"0.0.0.0:4002\"\nallow = []\n\
             [[scanners]]\nid = \"s\"\ntransport = \"serial\"\npath = \"/dev/x\"\nallow = [\"10.0.0.1\"]\nframe_timeout_ms = 999999\n",
        )
        .unwrap_err()
        .join("\n");
        for expected in [
            "scanners[0].allow",
            "scanners[1].allow: is empty",
            "scanners[2].allow: only a tcp-listen scanner",
            "scanners[2].frame_timeout_ms",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing in:\n{problems}"
            );
        }
    }

    #[test]
    fn debug_of_the_config_never_shows_the_mqtt_password() {
        let text = "[site]\nid = \"s1\"\n[mqtt]\nhost = \"b\"\nusername = \"holdfast\"\npassword = \"hunter2-mqtt-pw\"\ndevices = [\"mq-1\"]\n";
        let raw = crate::config::RawConfig::from_toml(text).unwrap();
        assert!(!format!("{raw:?}").contains("hunter2"), "{raw:?}");
        let config = raw.validate().unwrap();
        assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
        let (mqtt, _) = config.lan.mqtt.unwrap();
        assert!(!format!("{mqtt:?}").contains("hunter2"));
        assert_eq!(
            mqtt.password.as_ref().map(|p| p.expose_secret().to_owned()),
            Some("hunter2-mqtt-pw".to_owned()),
            "the link still gets it"
        );
    }

    #[test]
    fn hex_bytes() {
        assert_eq!(parse_hex("1b 07").unwrap(), vec![0x1b, 0x07]);
        assert_eq!(parse_hex("0x0D0a").unwrap(), vec![0x0d, 0x0a]);
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert!(parse_hex("7").is_err());
        assert!(parse_hex("zz").is_err());
    }
}
