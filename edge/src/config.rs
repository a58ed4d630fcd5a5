//! Configuration: one TOML file plus `HOLDFAST__SECTION__KEY` environment overrides,
//! checked by [`RawConfig::validate`] into a typed [`Config`] or a list of every problem.
//!
//! Secrets (the Odoo API key, device tokens) are read from files, so they can come from
//! systemd credentials: a relative `*_file` path is looked up in `$CREDENTIALS_DIRECTORY`.
//! Inline secrets are accepted for trials but never required, and never printed.

// The push's settings are its own type; the config builds them (one-way: config → push).
pub use crate::push::{LimitConfig, Policies, PushConfig};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod lan;
mod telemetry;

pub use lan::{LanConfig, PrinterConfig, PrintingConfig, ScannerConfig, ScannerLink, parse_hex};
pub use telemetry::{RawTelemetry, TelemetryConfig};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Where `holdfast` looks for its config unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/holdfast/holdfast.toml";

/// The file as written, before validation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub site: RawSite,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub log: RawLog,
    pub odoo: Option<RawOdoo>,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub floor: RawFloor,
    #[serde(default)]
    pub devices: Vec<RawDevice>,
    #[serde(default)]
    pub push: RawPush,
    /// Conflict policy per kind (`picking_cancelled = "manual"`, ...).
    #[serde(default)]
    pub conflicts: std::collections::BTreeMap<String, String>,
    /// Scanners on serial ports and TCP.
    #[serde(default)]
    pub scanners: Vec<lan::RawScanner>,
    /// Scanners on the site's MQTT broker.
    pub mqtt: Option<lan::RawMqtt>,
    /// Label printers.
    #[serde(default)]
    pub printers: Vec<lan::RawPrinter>,
    #[serde(default)]
    pub printing: lan::RawPrinting,
    /// What central ops reads: the `/metrics` token.
    #[serde(default)]
    pub telemetry: RawTelemetry,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    pub concurrency: Option<usize>,
    pub adaptive: Option<bool>,
    pub max_calls_per_sec: Option<f64>,
    pub max_batch: Option<usize>,
    pub retry_min_secs: Option<f64>,
    pub retry_max_secs: Option<f64>,
    pub probe_secs: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFloor {
    pub require_source_location: Option<bool>,
    pub over_pick: Option<String>,
    pub gs1_separator: Option<String>,
    pub sign_in_failures: Option<u32>,
    pub sign_in_lock_secs: Option<u64>,
    pub site_sign_in_failures: Option<u32>,
    pub min_pin_digits: Option<usize>,
    pub max_quantity: Option<u32>,
    pub over_pick_factor: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub id: Option<String>,
    pub name: Option<String>,
    /// The site's degraded-mode procedure (Markdown), shown on the console's runbook page.
    pub runbook_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<PathBuf>,
    pub max_size_mb: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    /// Bearer token of the site manager (conflicts inbox); none: the inbox is CLI-only.
    pub manager_token: Option<SecretString>,
    pub manager_token_file: Option<PathBuf>,
    /// `GET /api/v1/status` without a token answers mode and queue counts (default: off).
    pub public_status: Option<bool>,
    // HTTPS on `listen` (see `tls`): "off" (default), "self-signed" or "files".
    pub tls: Option<String>,
    /// PEM certificate chain, leaf first (`tls = "files"`); relative: a systemd credential.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (`tls = "files"`); relative: a systemd credential.
    pub tls_key_file: Option<PathBuf>,
    /// Host names and IP addresses the self-signed certificate names.
    pub tls_names: Option<Vec<String>>,
    /// A plain-HTTP address that only redirects to the HTTPS one (308).
    pub redirect_listen: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOdoo {
    pub url: Option<String>,
    pub database: Option<String>,
    pub login: Option<String>,
    pub api_key: Option<SecretString>,
    pub api_key_file: Option<PathBuf>,
    pub api: Option<String>,
    pub company_id: Option<i64>,
    pub warehouse_id: Option<i64>,
    pub timeout_secs: Option<u64>,
    /// Time-out of the health probe, shorter than a call's (a silent link is found by
    /// probes, not by calls that wait for their own time-out).
    pub probe_timeout_secs: Option<f64>,
    /// Extra CA certificates (PEM) to trust, e.g. a corporate proxy's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and its key (PEM, one file) for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// Connect to an Odoo major version Holdfast has not been verified with (18 and 19
    /// are); refused otherwise.
    pub allow_unverified_version: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub pull_interval_secs: Option<u64>,
    pub full_pull_hours: Option<u64>,
    /// A mirror older than this makes the mode degraded.
    pub stale_after_secs: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub id: Option<String>,
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
}

/// A secret value (API key, token, password): `Debug` and `Display` never show it, and it is
/// wiped from memory when dropped.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    /// In constant time: a token compared with a guess says nothing about how close it was.
    fn eq(&self, other: &Secret) -> bool {
        use subtle::ConstantTimeEq;
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Which Odoo API to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OdooApi {
    /// JSON-2 on Odoo 19+, JSON-RPC before (decided at connect time).
    Auto,
    JsonRpc,
    Json2,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub site: SiteConfig,
    pub store: StoreConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub odoo: Option<OdooConfig>,
    pub sync: SyncConfig,
    pub floor: FloorConfig,
    pub devices: Vec<DeviceConfig>,
    pub push: PushConfig,
    /// Whether the batches in hand adapt to Odoo's latency (`push.adaptive`).
    pub push_limit: LimitConfig,
    /// Scanners, printers and the MQTT broker on the warehouse LAN.
    pub lan: LanConfig,
    /// Who may scrape `/metrics` from the LAN.
    pub telemetry: TelemetryConfig,
}

/// How the floor works at this site.
#[derive(Clone, Debug)]
pub struct FloorConfig {
    pub policy: crate::workflow::FloorPolicy,
    /// What keyboard-wedge scanners send in place of GS (0x1D).
    pub gs1_separator: Option<char>,
    /// Wrong badges and PINs allowed per device and per site, on every transport.
    pub lockout: crate::floor::LockoutPolicy,
    /// Shortest PIN `holdfast operator add --pin-stdin` accepts (4..=12).
    pub min_pin_digits: usize,
}

#[derive(Clone, Debug)]
pub struct SiteConfig {
    pub id: String,
    pub name: String,
    /// The site's procedure text (Markdown); relative: a systemd credential.
    pub runbook_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub max_size_bytes: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub manager_token: Option<Secret>,
    /// A minimal status (mode, queue counts) is open on the LAN; the rest takes a token.
    pub public_status: bool,
    /// HTTPS on `listen`, or plain HTTP.
    pub tls: TlsSettings,
    /// Plain HTTP here answers only 308 redirects to the HTTPS address.
    pub redirect_listen: Option<SocketAddr>,
}

/// Where the HTTPS certificate comes from (`http.tls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSettings {
    /// Plain HTTP.
    Off,
    /// Generated at the first start, kept beside the database (`<db dir>/tls/`).
    SelfSigned { names: Vec<String> },
    /// Given by the site (its own CA or a public one); files resolved, not yet read.
    Files { cert: PathBuf, key: PathBuf },
}

impl TlsSettings {
    /// The name `http.tls` gives it.
    pub fn mode(&self) -> &'static str {
        match self {
            TlsSettings::Off => "off",
            TlsSettings::SelfSigned { .. } => "self-signed",
            TlsSettings::Files { .. } => "files",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Clone, Debug)]
pub struct OdooConfig {
    pub url: String,
    pub database: String,
    pub login: String,
    pub api_key: Secret,
    pub api: OdooApi,
    pub company_id: i64,
    pub warehouse_id: i64,
    pub timeout: Duration,
    /// Health probe time-out (shorter than `timeout`).
    pub probe_timeout: Duration,
    pub ca_pem: Option<Vec<u8>>,
    /// Certificate and key; never shown.
    pub client_identity_pem: Option<Secret>,
    /// Connect to an unverified Odoo major version instead of refusing it.
    pub allow_unverified_version: bool,
}

#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub pull_interval: Duration,
    pub full_pull_every: Duration,
    /// A mirror older than this makes the mode degraded.
    pub stale_after: Duration,
}

/// `sync.stale_after_secs` by default: this many incremental pull intervals.
pub const STALE_AFTER_PULLS: u64 = 5;

#[derive(Clone, Debug)]
pub struct DeviceConfig {
    pub id: String,
    pub token: Secret,
}

/// A TOML syntax error, told by line and column only: the parser's own message quotes the
/// offending line, which may be `api_key = "…` (and the error goes to the journal).
fn check_syntax(text: &str, origin: &str) -> Result<(), ConfigError> {
    let Err(e) = toml::from_str::<toml::Table>(text) else {
        return Ok(());
    };
    let at = e.span().map(|span| {
        let before = &text.as_bytes()[..span.start.min(text.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        format!(" at line {line}, column {column}")
    });
    // The message names what was expected, never the text that was found.
    let message = e.message().lines().next().unwrap_or("syntax error");
    Err(ConfigError::Parse(format!(
        "{origin}: TOML syntax error{}: {message}",
        at.unwrap_or_default()
    )))
}

/// Keys whose values are never echoed in an error: those naming a secret as a word of the
/// key (`api_key`, `manager_token`, `password`, `pin`), but not a file that holds one (a path
/// is no secret, and naming it helps) nor a setting about one (`min_pin_digits`).
fn is_secret_key(key: &str) -> bool {
    const SECRET_WORDS: [&str; 7] = [
        "key",
        "token",
        "password",
        "secret",
        "pin",
        "credential",
        "credentials",
    ];
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    let words: Vec<&str> = last.split(['_', '-']).collect();
    let names_a_file = matches!(words.last(), Some(&("file" | "path" | "dir")));
    let about_one = matches!(words.first(), Some(&("min" | "max"))) || last.ends_with("_secs");
    !names_a_file && !about_one && words.iter().any(|w| SECRET_WORDS.contains(w))
}

/// A type error at `key`, without the value when the key holds a secret.
fn describe(key: &str, kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    if !is_secret_key(key) {
        return kind.to_string();
    }
    match kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("invalid value (not shown), expected {expected}")
        }
        Kind::InvalidLength(_, expected) => format!("invalid length, expected {expected}"),
        Kind::Message(_) => "invalid value (not shown)".to_owned(),
        other => other.to_string(),
    }
}

/// One problem with the configuration: which key, what is wrong, what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} not found (write an example with: holdfast init {0})")]
    Missing(PathBuf),
    #[error("cannot read config: {0}")]
    Parse(String),
    #[error("invalid config:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

impl RawConfig {
    /// Reads `path` (which must exist unless `optional`) and applies `HOLDFAST__…` overrides
    /// from the environment.
    pub fn load(path: &Path, optional: bool) -> Result<RawConfig, ConfigError> {
        if !optional && !path.exists() {
            return Err(ConfigError::Missing(path.to_owned()));
        }
        match std::fs::read_to_string(path) {
            Ok(text) => check_syntax(&text, &path.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && optional => {}
            Err(e) => {
                return Err(ConfigError::Parse(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        }
        Self::from_figment(Figment::new().merge(Toml::file(path)))
    }

    /// Parses TOML text (and environment overrides).
    pub fn from_toml(text: &str) -> Result<RawConfig, ConfigError> {
        check_syntax(text, "the text")?;
        Self::from_figment(Figment::new().merge(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<RawConfig, ConfigError> {
        figment
            .merge(Env::prefixed("HOLDFAST__").split("__"))
            .extract()
            .map_err(|e| {
                ConfigError::Parse(
                    e.into_iter()
                        .map(|e| {
                            let key = e.path.join(".");
                            let what = describe(&key, &e.kind);
                            if key.is_empty() {
                                what
                            } else {
                                format!("{key}: {what}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
    }

    /// Checks every value and reads secret files; reports all problems at once.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, text: String| {
            problems.push(ConfigProblem {
                key: key.to_owned(),
                problem: text,
            })
        };

        let site_id = self.site.id.clone().unwrap_or_default();
        if site_id.is_empty() {
            problem(
                "site.id",
                "missing; set a short name for this site, e.g. \"ams-dc1\"".into(),
            );
        } else if site_id.len() > 64
            || !site_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problem(
                "site.id",
                format!(
                    "{site_id:?} is not allowed; use 1-64 letters, digits, '-' or '_' (it names MQTT topics and journal entries)"
                ),
            );
        }

        let store_path = self
            .store
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/holdfast/holdfast.db"));
        if store_path.as_os_str().is_empty() || store_path.is_dir() {
            problem(
                "store.path",
                format!(
                    "{} must be a database file path, not a directory",
                    store_path.display()
                ),
            );
        }
        let max_size_bytes = match self.store.max_size_mb {
            Some(0) | None => None,
            Some(mb) if mb < 16 => {
                problem(
                    "store.max_size_mb",
                    format!("{mb} is too small; at least 16 (or 0 for no cap)"),
                );
                None
            }
            Some(mb) => Some(mb * 1024 * 1024),
        };

        let listen_text = self
            .http
            .listen
            .clone()
            .unwrap_or_else(|| "0.0.0.0:8080".into());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problem(
                "http.listen",
                format!("{listen_text:?} is not an address; use IP:PORT, e.g. \"0.0.0.0:8080\""),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        });

        let (tls, redirect_listen) = validate_tls(&self.http, listen, &mut problem);

        let format = match self.log.format.as_deref().unwrap_or("plain") {
            "plain" => LogFormat::Plain,
            "json" => LogFormat::Json,
            other => {
                problem(
                    "log.format",
                    format!("{other:?} is not one of: plain, json"),
                );
                LogFormat::Plain
            }
        };
        let level = self.log.level.clone().unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            problem(
                "log.level",
                format!(
                    "{level:?} is not a level or filter; use error, warn, info, debug, trace or e.g. \"info,holdfast=debug\""
                ),
            );
        }

        let odoo = self
            .odoo
            .as_ref()
            .and_then(|o| validate_odoo(o, &mut problem));

        let pull_interval = self.sync.pull_interval_secs.unwrap_or(60);
        if !(5..=86_400).contains(&pull_interval) {
            problem(
                "sync.pull_interval_secs",
                format!("{pull_interval} is out of range 5..=86400"),
            );
        }
        // A few missed pulls, not one: a pull that fails once is retried at the next tick.
        let stale_after = self
            .sync
            .stale_after_secs
            .unwrap_or(pull_interval.saturating_mul(STALE_AFTER_PULLS));
        let stale_floor = pull_interval.saturating_mul(2);
        if !(stale_floor..=7 * 86_400).contains(&stale_after) {
            problem(
                "sync.stale_after_secs",
                format!(
                    "{stale_after} is out of range {stale_floor}..=604800 (at least two pull intervals)"
                ),
            );
        }
        let full_hours = self.sync.full_pull_hours.unwrap_or(24);
        if !(1..=24 * 30).contains(&full_hours) {
            problem(
                "sync.full_pull_hours",
                format!("{full_hours} is out of range 1..=720"),
            );
        }

        let mut devices = Vec::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |field: &str| format!("devices[{i}].{field}");
            let id = d.id.clone().unwrap_or_default();
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                problem(
                    &key("id"),
                    format!("{id:?} is not allowed; use letters, digits, '-' or '_'"),
                );
            } else if self.devices[..i]
                .iter()
                .any(|o| o.id.as_deref() == Some(&id))
            {
                problem(&key("id"), format!("{id:?} is used by an earlier device"));
            }
            if let Some(token) = secret(
                &key("token"),
                d.token.as_ref().map(ExposeSecret::expose_secret),
                d.token_file.as_deref(),
                &mut problem,
            ) {
                if token.expose().len() < 16 {
                    problem(&key("token"), "too short; use at least 16 characters (holdfast init shows how to make one)".into());
                }
                devices.push(DeviceConfig { id, token });
            }
        }

        let mut policy = crate::workflow::FloorPolicy::default();
        if let Some(v) = self.floor.require_source_location {
            policy.require_source_location = v;
        }
        match self.floor.over_pick.as_deref() {
            None => {}
            Some("refuse") => policy.over_pick = crate::workflow::OverPick::Refuse,
            Some("warn") => policy.over_pick = crate::workflow::OverPick::Warn,
            Some("allow") => policy.over_pick = crate::workflow::OverPick::Allow,
            Some(other) => problem(
                "floor.over_pick",
                format!("{other:?} is not one of: refuse, warn, allow"),
            ),
        }
        if let Some(max) = self.floor.max_quantity {
            if (1..=1_000_000_000).contains(&max) {
                policy.max_quantity = max;
            } else {
                problem(
                    "floor.max_quantity",
                    format!("{max} is out of range 1..=1000000000"),
                );
            }
        }
        if let Some(factor) = self.floor.over_pick_factor {
            if (1..=1_000).contains(&factor) {
                policy.over_pick_factor = factor;
            } else {
                problem(
                    "floor.over_pick_factor",
                    format!("{factor} is out of range 1..=1000"),
                );
            }
        }
        let gs1_separator = match self.floor.gs1_separator.as_deref() {
            None | Some("") => None,
            Some(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_ascii_alphanumeric() && !c.is_control() => Some(c),
                    _ => {
                        problem(
                            "floor.gs1_separator",
                            format!(
                                "{s:?} must be one printable character that is not a letter or digit, e.g. \"~\""
                            ),
                        );
                        None
                    }
                }
            }
        };

        let mut lockout = crate::floor::LockoutPolicy::default();
        let f = &self.floor;
        if let Some(n) = f.sign_in_failures {
            if (1..=100).contains(&n) {
                lockout.device_failures = n;
            } else {
                problem(
                    "floor.sign_in_failures",
                    format!("{n} is out of range 1..=100"),
                );
            }
        }
        if let Some(secs) = f.sign_in_lock_secs {
            if (1..=3_600).contains(&secs) {
                lockout.base_lock = Duration::from_secs(secs);
                lockout.max_lock = lockout.max_lock.max(lockout.base_lock);
            } else {
                problem(
                    "floor.sign_in_lock_secs",
                    format!("{secs} is out of range 1..=3600"),
                );
            }
        }
        if let Some(n) = f.site_sign_in_failures {
            if (1..=100_000).contains(&n) {
                lockout.site_failures = n;
            } else {
                problem(
                    "floor.site_sign_in_failures",
                    format!("{n} is out of range 1..=100000"),
                );
            }
        }
        let min_pin_digits = f.min_pin_digits.unwrap_or(4);
        if !(4..=12).contains(&min_pin_digits) {
            problem(
                "floor.min_pin_digits",
                format!("{min_pin_digits} is out of range 4..=12"),
            );
        }

        let manager_token = match (&self.http.manager_token, &self.http.manager_token_file) {
            (None, None) => None,
            (inline, file) => secret(
                "http.manager_token",
                inline.as_ref().map(ExposeSecret::expose_secret),
                file.as_deref(),
                &mut problem,
            ),
        };
        if manager_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            problem(
                "http.manager_token",
                "too short; use at least 16 characters".into(),
            );
        }
        let p = &self.push;
        let concurrency = p.concurrency.unwrap_or(4);
        if !(1..=64).contains(&concurrency) {
            problem(
                "push.concurrency",
                format!("{concurrency} is out of range 1..=64"),
            );
        }
        let max_calls_per_sec = p.max_calls_per_sec.unwrap_or(20.0);
        if !(max_calls_per_sec.is_finite() && (0.1..=10_000.0).contains(&max_calls_per_sec)) {
            problem(
                "push.max_calls_per_sec",
                format!("{max_calls_per_sec} is out of range 0.1..=10000"),
            );
        }
        let max_batch = p.max_batch.unwrap_or(500);
        if !(1..=5_000).contains(&max_batch) {
            problem(
                "push.max_batch",
                format!("{max_batch} is out of range 1..=5000"),
            );
        }
        let mut secs =
            |key: &str, v: Option<f64>, default: f64, range: std::ops::RangeInclusive<f64>| {
                let v = v.unwrap_or(default);
                if !(v.is_finite() && range.contains(&v)) {
                    problem(
                        key,
                        format!("{v} is out of range {}..={}", range.start(), range.end()),
                    );
                    return Duration::from_secs_f64(default);
                }
                Duration::from_secs_f64(v)
            };
        let retry_min = secs("push.retry_min_secs", p.retry_min_secs, 1.0, 0.01..=600.0);
        let retry_max = secs(
            "push.retry_max_secs",
            p.retry_max_secs,
            300.0,
            0.01..=86_400.0,
        );
        // 5 s keeps a silent outage's detection within 15 s (see `connectivity`).
        let probe = secs("push.probe_secs", p.probe_secs, 5.0, 0.05..=3_600.0);
        let mut policies = Policies::default();
        for (kind, policy) in &self.conflicts {
            if let Err(e) = policies.set(kind, policy) {
                problem(&format!("conflicts.{kind}"), e);
            }
        }

        // The procedure is read at each view; a file that cannot be read now is named at start.
        let runbook_file = match &self.site.runbook_file {
            Some(p) if !p.as_os_str().is_empty() => {
                let path = credential_path(p);
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => {}
                    Ok(_) => problem(
                        "site.runbook_file",
                        format!("{} is not a file", path.display()),
                    ),
                    Err(e) => problem("site.runbook_file", format!("{}: {e}", path.display())),
                }
                Some(path)
            }
            _ => None,
        };

        let http_ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
        let lan = lan::validate(
            &site_id,
            &http_ids,
            &self.scanners,
            self.mqtt.as_ref(),
            &self.printers,
            &self.printing,
            &mut problem,
        );
        let telemetry = telemetry::validate(&self.telemetry, &site_id, &mut problem);

        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Config {
            site: SiteConfig {
                name: self.site.name.clone().unwrap_or_else(|| site_id.clone()),
                id: site_id,
                runbook_file,
            },
            store: StoreConfig {
                path: store_path,
                max_size_bytes,
            },
            http: HttpConfig {
                listen,
                manager_token,
                public_status: self.http.public_status.unwrap_or(false),
                tls,
                redirect_listen,
            },
            log: LogConfig { format, level },
            odoo,
            sync: SyncConfig {
                pull_interval: Duration::from_secs(pull_interval),
                full_pull_every: Duration::from_secs(full_hours * 3600),
                stale_after: Duration::from_secs(stale_after),
            },
            floor: FloorConfig {
                policy,
                gs1_separator,
                lockout,
                min_pin_digits,
            },
            devices,
            push: PushConfig {
                concurrency,
                max_calls_per_sec,
                max_batch,
                retry_min,
                retry_max: retry_max.max(retry_min),
                probe,
                policies,
            },
            push_limit: LimitConfig {
                adaptive: p.adaptive.unwrap_or(true),
            },
            lan,
            telemetry,
        })
    }
}

fn validate_odoo(o: &RawOdoo, problem: &mut impl FnMut(&str, String)) -> Option<OdooConfig> {
    let mut ok = true;
    let mut required =
        |key: &str, value: &Option<String>, example: &str| match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => v.to_owned(),
            _ => {
                problem(key, format!("missing; e.g. {example}"));
                ok = false;
                String::new()
            }
        };
    let url = required("odoo.url", &o.url, "\"https://mycompany.odoo.com\"");
    let database = required("odoo.database", &o.database, "\"mycompany\"");
    let login = required("odoo.login", &o.login, "\"holdfast@mycompany.com\"");
    if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
        problem(
            "odoo.url",
            format!("{url:?} must start with https:// (or http:// on a trusted network)"),
        );
        ok = false;
    }
    let api = match o.api.as_deref().unwrap_or("auto") {
        "auto" => OdooApi::Auto,
        "jsonrpc" => OdooApi::JsonRpc,
        "json2" => OdooApi::Json2,
        other => {
            problem(
                "odoo.api",
                format!("{other:?} is not one of: auto, jsonrpc, json2"),
            );
            ok = false;
            OdooApi::Auto
        }
    };
    let mut positive = |key: &str, v: Option<i64>| match v {
        Some(n) if n > 0 => n,
        Some(n) => {
            problem(key, format!("{n} is not an Odoo record id (must be > 0)"));
            ok = false;
            0
        }
        None => {
            problem(
                key,
                "missing; the id of the Odoo record this site works for".into(),
            );
            ok = false;
            0
        }
    };
    let company_id = positive("odoo.company_id", o.company_id);
    let warehouse_id = positive("odoo.warehouse_id", o.warehouse_id);
    let timeout = o.timeout_secs.unwrap_or(30);
    if !(1..=600).contains(&timeout) {
        problem(
            "odoo.timeout_secs",
            format!("{timeout} is out of range 1..=600"),
        );
        ok = false;
    }
    // 3 s by default, and always shorter than a call's time-out.
    let probe_timeout = o
        .probe_timeout_secs
        .unwrap_or_else(|| (timeout as f64 / 2.0).min(3.0));
    if !(0.05..=60.0).contains(&probe_timeout) || probe_timeout >= timeout as f64 {
        problem(
            "odoo.probe_timeout_secs",
            format!(
                "{probe_timeout} is out of range 0.05..=60 or not shorter than odoo.timeout_secs ({timeout})"
            ),
        );
        ok = false;
    }
    let mut pem = |key: &str, path: &Option<PathBuf>| -> Option<String> {
        let path = path.as_ref()?;
        match std::fs::read_to_string(path) {
            Ok(text) if text.contains("-----BEGIN") => Some(text),
            Ok(_) => {
                problem(key, format!("{} holds no PEM block", path.display()));
                ok = false;
                None
            }
            Err(e) => {
                problem(key, format!("cannot read {}: {e}", path.display()));
                ok = false;
                None
            }
        }
    };
    let ca_pem = pem("odoo.ca_file", &o.ca_file).map(String::into_bytes);
    let client_identity_pem = pem("odoo.client_cert_file", &o.client_cert_file).map(Secret::new);
    let api_key = secret(
        "odoo.api_key",
        o.api_key.as_ref().map(ExposeSecret::expose_secret),
        o.api_key_file.as_deref(),
        problem,
    );
    let api_key = api_key?;
    ok.then_some(OdooConfig {
        url: url.trim_end_matches('/').to_owned(),
        database,
        login,
        api_key,
        api,
        company_id,
        warehouse_id,
        timeout: Duration::from_secs(timeout),
        probe_timeout: Duration::from_secs_f64(probe_timeout.clamp(0.05, 60.0)),
        ca_pem,
        client_identity_pem,
        allow_unverified_version: o.allow_unverified_version.unwrap_or(false),
    })
}

/// The `[http]` HTTPS settings: the mode, its files or names, the redirect listener.
fn validate_tls(
    h: &RawHttp,
    listen: SocketAddr,
    problem: &mut impl FnMut(&str, String),
) -> (TlsSettings, Option<SocketAddr>) {
    let mode = h.tls.as_deref().unwrap_or("off");
    let files = h.tls_cert_file.is_some() || h.tls_key_file.is_some();
    let tls = match mode {
        "off" | "self-signed" if files => {
            problem(
                "http.tls_cert_file",
                format!("only used with tls = \"files\" (tls is {mode:?})"),
            );
            TlsSettings::Off
        }
        "off" => TlsSettings::Off,
        "self-signed" => TlsSettings::SelfSigned {
            names: tls_names(h.tls_names.as_deref(), problem),
        },
        "files" => {
            let mut file = |key: &str, path: &Option<PathBuf>, what: &str, example: &str| match path
            {
                Some(p) if !p.as_os_str().is_empty() => Some(credential_path(p)),
                _ => {
                    problem(
                        key,
                        format!(
                            "missing; tls = \"files\" needs the {what} (PEM), e.g. \"{example}\""
                        ),
                    );
                    None
                }
            };
            let cert = file(
                "http.tls_cert_file",
                &h.tls_cert_file,
                "certificate chain",
                "/etc/holdfast/https.pem",
            );
            let key = file(
                "http.tls_key_file",
                &h.tls_key_file,
                "private key",
                "/etc/holdfast/https.key",
            );
            match (cert, key) {
                (Some(cert), Some(key)) => TlsSettings::Files { cert, key },
                _ => TlsSettings::Off,
            }
        }
        other => {
            problem(
                "http.tls",
                format!("{other:?} is not one of: off, self-signed, files"),
            );
            TlsSettings::Off
        }
    };
    if mode != "self-signed" && h.tls_names.is_some() {
        problem(
            "http.tls_names",
            format!("only used with tls = \"self-signed\" (tls is {mode:?})"),
        );
    }
    let redirect_listen = h.redirect_listen.as_deref().and_then(|text| {
        let Ok(addr) = text.parse::<SocketAddr>() else {
            problem(
                "http.redirect_listen",
                format!("{text:?} is not an address; use IP:PORT, e.g. \"0.0.0.0:80\""),
            );
            return None;
        };
        if mode == "off" {
            problem(
                "http.redirect_listen",
                "redirects to HTTPS, but http.tls is \"off\"; set http.tls or remove it".into(),
            );
        } else if addr.port() != 0 && addr.port() == listen.port() {
            problem(
                "http.redirect_listen",
                format!("{addr} uses the port of http.listen ({listen}); give it another port"),
            );
        }
        Some(addr)
    });
    (tls, redirect_listen)
}

/// The names a self-signed certificate carries: as configured, or this machine's host name,
/// `localhost` and 127.0.0.1 (what a handheld on the LAN or `holdfast status` may use).
fn tls_names(names: Option<&[String]>, problem: &mut impl FnMut(&str, String)) -> Vec<String> {
    let valid = |name: &str| {
        name.parse::<std::net::IpAddr>().is_ok()
            || rustls_pki_types::DnsName::try_from(name).is_ok()
    };
    let Some(names) = names else {
        let mut names = Vec::new();
        // uname(2), not /proc: the unit hides /proc beyond the process's own (ProcSubset=pid).
        if let Some(host) = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
        {
            let host = host.trim();
            if !host.is_empty() && host != "localhost" && valid(host) {
                names.push(host.to_owned());
            }
        }
        names.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
        return names;
    };
    if names.is_empty() {
        problem(
            "http.tls_names",
            "is empty; name at least one host name or IP address handhelds use, e.g. [\"holdfast.site.lan\", \"10.0.0.5\"]".into(),
        );
    }
    for name in names {
        if !valid(name) || name.contains('*') {
            problem(
                "http.tls_names",
                format!("{name:?} is neither a host name nor an IP address"),
            );
        }
    }
    names.to_vec()
}

/// Where the packaged unit's `LoadCredential=` reads its credentials from.
const INSTALLED_CREDENTIALS: &str = "/etc/holdfast/credentials";

/// A file setting's path: relative paths are systemd credentials (`LoadCredential=`) when the
/// unit has any. A command run by hand on an installed appliance has none: a relative file
/// that is not in the working directory is then read from [`INSTALLED_CREDENTIALS`], where
/// the unit loads it from, so `holdfast device issue` works as root without the unit.
fn credential_path(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        return PathBuf::from(dir).join(path);
    }
    let installed = Path::new(INSTALLED_CREDENTIALS).join(path);
    if !path.exists() && installed.exists() {
        return installed;
    }
    path.to_owned()
}

/// A secret given inline or as a file; relative files are systemd credentials.
fn secret(
    key: &str,
    inline: Option<&str>,
    file: Option<&Path>,
    problem: &mut impl FnMut(&str, String),
) -> Option<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            problem(key, format!("give either {key} or {key}_file, not both"));
            None
        }
        (Some(v), None) if v.trim().is_empty() => {
            problem(key, "is empty".into());
            None
        }
        (Some(v), None) => Some(Secret::new(v.trim())),
        (None, Some(path)) => {
            let resolved = credential_path(path);
            match std::fs::read_to_string(&resolved) {
                Ok(text) if !text.trim().is_empty() => Some(Secret::new(text.trim())),
                Ok(_) => {
                    problem(
                        &format!("{key}_file"),
                        format!("{} is empty", resolved.display()),
                    );
                    None
                }
                Err(e) => {
                    problem(
                        &format!("{key}_file"),
                        format!("cannot read {}: {e}", resolved.display()),
                    );
                    None
                }
            }
        }
        (None, None) => {
            problem(
                key,
                format!(
                    "missing; set {key}_file to a file holding it (or a systemd credential name)"
                ),
            );
            None
        }
    }
}

/// The file `holdfast init` writes: every key, commented.
pub const EXAMPLE: &str = r#"# Holdfast configuration.
# Every key can be overridden from the environment as HOLDFAST__SECTION__KEY,
# e.g. HOLDFAST__HTTP__LISTEN=127.0.0.1:9090. Check a file with: holdfast --config FILE status

[site]
# Short id of this site: names journal entries and telemetry topics. Letters, digits, - and _.
id = "site-01"
# Human name shown on the status page.
name = "Main warehouse"
# The site's own degraded-mode procedure (Markdown), shown on the console's runbook page
# beside what the configuration keeps working offline. Raw HTML in it is shown as text.
# runbook_file = "/etc/holdfast/runbook.md"

[store]
# The SQLite database: mirror of Odoo, journal of floor operations. Keep it on persistent storage.
path = "/var/lib/holdfast/holdfast.db"
# Refuse new operations before the database passes this size (MB), so the disk never fills.
# 0 means no cap (the disk is the limit).
max_size_mb = 0

[http]
# Device API, handheld pages and status. Scanners and handhelds on the LAN connect here.
listen = "0.0.0.0:8080"
# The site manager's bearer token for the conflicts inbox over HTTP (16+ characters). Without
# it, conflicts are decided with `holdfast conflicts` on the appliance. `holdfast status`
# uses it to ask the running appliance (the status takes a device or the manager's token).
# manager_token_file = "/etc/holdfast/manager.token"
# Let anyone on the LAN read the mode and queue counts (no URLs, paths or devices).
# public_status = false
# HTTPS on `listen` for everything (device API, handheld pages, status, probes):
#   "off"          plain HTTP (default)
#   "self-signed"  a certificate generated at the first start, kept beside the database
#                  (<db dir>/tls/); pin handhelds to its fingerprint (`holdfast status`)
#   "files"        tls_cert_file (PEM chain, leaf first) and tls_key_file (PEM key); relative
#                  paths are systemd credentials. `systemctl reload holdfast` re-reads them.
# tls = "self-signed"
# tls_names = ["holdfast.site.lan", "10.0.0.5"]   # self-signed; default: hostname, localhost, 127.0.0.1
# tls_cert_file = "/etc/holdfast/https.pem"
# tls_key_file = "/etc/holdfast/https.key"
# Plain HTTP here only answers 308 redirects to the HTTPS address (same path and query).
# redirect_listen = "0.0.0.0:80"

[log]
# plain (for people) or json (for log shippers). Logs go to standard error.
format = "plain"
# error, warn, info, debug, trace, or a filter such as "info,holdfast=debug".
level = "info"

[sync]
# Incremental pull of stock and pickings from Odoo, every N seconds.
pull_interval_secs = 60
# Full reconciliation of the mirror, every N hours.
full_pull_hours = 24
# The mode turns degraded when the mirror is older than this (default: 5 pull intervals).
# stale_after_secs = 300

# The Odoo this site reconciles with. Without this section the appliance runs on its local
# copy alone (holdfast demo brings its own simulated cloud).
# [odoo]
# url = "https://mycompany.odoo.com"
# database = "mycompany"
# login = "holdfast@mycompany.com"
# # A file holding the API key (Odoo: Preferences > Account Security > New API Key).
# # A relative path is read from $CREDENTIALS_DIRECTORY (systemd LoadCredential=).
# api_key_file = "odoo-api-key"
# # auto (JSON-2 on Odoo 19+, JSON-RPC before), jsonrpc, or json2.
# api = "auto"
# company_id = 1
# warehouse_id = 1
# timeout_secs = 30
# # The health probe's time-out, shorter than a call's: a link that dies silently is found
# # by probes within about probe_secs + 2 × this + 1 s.
# probe_timeout_secs = 3
# # Extra CA certificates to trust (PEM), and a client certificate + key (PEM) for mutual TLS.
# ca_file = "/etc/holdfast/odoo-ca.pem"
# client_cert_file = "/etc/holdfast/credentials/odoo-client.pem"
# # Holdfast is verified with Odoo 18 and 19 and refuses other versions unless this is true.
# allow_unverified_version = false

[push]
# How the journal drains to Odoo: causal keys (pickings, bins) at once, at most, and a cap
# on calls per second (a real Odoo 18 on 2 cores takes about 45; leave room for its other
# users). With adaptive = true the keys in hand start at 1 and grow while Odoo answers as
# fast as when quiet, and shrink when it slows down or asks to retry; false keeps
# concurrency keys in hand all the time.
concurrency = 4
adaptive = true
max_calls_per_sec = 20
# Backoff between attempts of a failed batch (jittered, exponential), and the health probe.
retry_min_secs = 1
retry_max_secs = 300
probe_secs = 5

[conflicts]
# manual (the inbox) or cloud_wins (discard the floor's entries with a note).
picking_done_differently = "manual"
picking_cancelled = "manual"
serial_in_use = "manual"
# A count retried after a lost answer, when Odoo meanwhile applied an unmarked count of the
# same size on that bin (someone's "Apply all" of the appliance's pending count, or not).
count_unconfirmed = "manual"
product_archived = "manual"
validation = "manual"
# Applied and flagged: the physical pick is the warehouse's truth.
over_pick = "edge_wins"

[floor]
# Pickers scan the source bin before the product (false: the reserved bin is assumed).
require_source_location = true
# More than a line's demand: refuse, warn (record it and say so), or allow.
over_pick = "warn"
# Where over-picks are warned of or allowed, a line stays within its demand times this.
over_pick_factor = 10
# The most one entered or scanned quantity may be (a slip of extra digits is refused).
# Quantities are also whole multiples of the product's unit rounding, as Odoo keeps them.
max_quantity = 1000000
# Keyboard-wedge scanners often drop the GS1 separator (0x1D); if yours is set to send a
# substitute character instead, name it here, e.g. "~".
# gs1_separator = "~"
# Wrong badges or PINs a device may try in a row (any scan on a signed-out device counts)
# before it is locked for sign_in_lock_secs, doubled at each further lock-out (up to 15 min).
sign_in_failures = 5
sign_in_lock_secs = 30
# Failures across all devices within 5 minutes that pause sign-in on every device (5 min).
site_sign_in_failures = 50
# Shortest operator PIN accepted (4..=12 digits). A 4-digit PIN is only as strong as the
# lock-out above: 10,000 PINs at 5 tries per 30 s and more is days, not seconds.
min_pin_digits = 4

# Devices allowed on the device API. Prefer issuing tokens with
#   holdfast device issue handheld-01
# (the token is shown once; only its digest is stored). A token can also be configured here:
#   head -c 24 /dev/urandom | base64 > /etc/holdfast/devices/handheld-01.token
# [[devices]]
# id = "handheld-01"
# token_file = "/etc/holdfast/devices/handheld-01.token"

# Scanners that are not browsers run the same workflows (badge, picking, bins, products, and
# command barcodes HF:QTY:<n>, HF:VALIDATE, HF:FINISH, HF:LABEL, HF:LOGOUT).
# [[scanners]]
# id = "dock-1"
# transport = "serial"                  # serial | tcp-listen | tcp-connect
# path = "/dev/serial/by-id/usb-Datalogic_Scanner-if00"
# baud = 9600                           # data_bits = 8, parity = "none", stop_bits = 1
# terminator = "cr"                     # cr | lf | crlf | tab | 0x03
# good_beep = ""                        # hex bytes the scanner beeps on, if it takes any
# bad_beep = ""
# printer = "dock-printer"
#
# [[scanners]]
# id = "tunnel-1"
# transport = "tcp-listen"              # the scanner connects here
# address = "0.0.0.0:4001"
# idle_timeout_secs = 600

# MQTT scanners: scans on holdfast/<site>/scanner/<device>/scan, answers on .../reply.
# [mqtt]
# host = "broker.site.lan"
# tls = true
# ca_file = "/etc/holdfast/mqtt-ca.pem"
# username = "holdfast"
# password_file = "mqtt-password"       # a systemd credential
# devices = ["dock-1", "dock-2"]          # the MQTT scanners served (or device_pattern = "dock-*")

# Label printers (ZPL, raw port 9100 or serial) and what prints.
# [[printers]]
# id = "dock-printer"
# address = "10.0.0.50:9100"
# dpi = 203
# width_mm = 100
# height_mm = 50
#
# [printing]
# default_printer = "dock-printer"
# receive_labels = true                 # a lot/serial label per received tracked line
# gs1_company_prefix = "5901230"        # for the SSCCs of package labels
# templates = "/etc/holdfast/labels"    # site ZPL templates replacing built-ins (README)

# Prometheus metrics at GET /metrics on the http listener: always open from the appliance
# itself (loopback); from the LAN only with this bearer token (16+ characters).
# [telemetry]
# metrics_token_file = "/etc/holdfast/metrics.token"
# interval_secs = 60                    # MQTT status at least this often (and on changes)
# events_buffer = 1000                  # events kept while the broker is away
# disk_pressure_mb = 500                # headroom under this raises disk_pressure
#
# Sync health for central ops over MQTT (README "Central ops"): status and events.
# [telemetry.mqtt]
# profile = "generic"                   # or "azure-iot-hub", "azure-event-grid"
# host = "broker.ops.example"
# tls = true
# ca_file = "/etc/holdfast/ops-ca.pem"
# username = "site-1"
# password_file = "/etc/holdfast/telemetry.password"
"#;

#[cfg(test)]
mod secret_key_tests {
    use super::is_secret_key;

    #[test]
    fn secrets_are_named_by_a_word_of_the_key() {
        for key in [
            "odoo.api_key",
            "http.manager_token",
            "mqtt.password",
            "devices.0.token",
            "telemetry.shared_secret",
            "pin",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "odoo.api_key_file",
            "http.tls_key_file",
            "floor.min_pin_digits",
            "mqtt.keepalive_secs",
            "sync.mapping",
            "printing.shipping_label",
            "http.public_status",
            "floor.sign_in_lock_secs",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match RawConfig::from_toml(text).and_then(|raw| raw.validate()) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid(list)) => list.into_iter().map(|p| p.to_string()).collect(),
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn https_settings_are_checked() {
        // ([http] lines, a problem expected; "" for none)
        for (http, expected) in [
            (
                "tls = \"on\"",
                "http.tls: \"on\" is not one of: off, self-signed, files",
            ),
            (
                "tls = \"files\"",
                "http.tls_cert_file: missing; tls = \"files\" needs",
            ),
            (
                "tls = \"files\"\ntls_cert_file = \"/x.pem\"",
                "http.tls_key_file: missing",
            ),
            (
                "tls_cert_file = \"/x.pem\"",
                "http.tls_cert_file: only used with tls = \"files\"",
            ),
            (
                "tls = \"self-signed\"\ntls_names = [\"bad name\"]",
                "http.tls_names: \"bad name\" is neither",
            ),
            (
                "tls = \"self-signed\"\ntls_names = []",
                "http.tls_names: is empty",
            ),
            ("tls_names = [\"hf.lan\"]", "http.tls_names: only used with"),
            (
                "redirect_listen = \"0.0.0.0:80\"",
                "http.redirect_listen: redirects to HTTPS, but http.tls is \"off\"",
            ),
            (
                "tls = \"self-signed\"\nlisten = \"0.0.0.0:8443\"\nredirect_listen = \"0.0.0.0:8443\"",
                "uses the port of http.listen",
            ),
            (
                "tls = \"self-signed\"\nredirect_listen = \"port 80\"",
                "http.redirect_listen: \"port 80\" is not an address",
            ),
            (
                "tls = \"self-signed\"\ntls_names = [\"hf.lan\", \"10.0.0.5\"]\nredirect_listen = \"0.0.0.0:80\"",
                "",
            ),
            (
                "tls = \"files\"\ntls_cert_file = \"/etc/hf/c.pem\"\ntls_key_file = \"/etc/hf/k.pem\"",
                "",
            ),
        ] {
            let found = problems(&format!("[site]\nid = \"s\"\n[http]\n{http}\n"));
            if expected.is_empty() {
                assert!(found.is_empty(), "{http}: {found:?}");
            } else {
                assert!(
                    found.iter().any(|p| p.contains(expected)),
                    "{http}: {found:?}"
                );
            }
        }
        let config = RawConfig::from_toml("[site]\nid = \"s\"\n[http]\ntls = \"self-signed\"\n")
            .unwrap()
            .validate()
            .unwrap();
        let TlsSettings::SelfSigned { names } = config.http.tls else {
            panic!("{:?}", config.http.tls)
        };
        assert!(names.ends_with(&["localhost".to_owned(), "127.0.0.1".to_owned()]));
    }

    const KNOWN: &str = "s3cr3t-XYZZY-42-do-not-print";

    /// A config holding `KNOWN` as every secret there is, with `tail` appended.
    fn with_secrets(tail: &str) -> String {
        format!(
            "[site]\nid = \"s\"\n[http]\nmanager_token = \"{KNOWN}\"\n\
             [odoo]\nurl = \"https://o.example\"\ndatabase = \"d\"\nlogin = \"l\"\n\
             api_key = \"{KNOWN}\"\ncompany_id = 1\nwarehouse_id = 1\n\
             [[devices]]\nid = \"hh1\"\ntoken = \"{KNOWN}\"\n{tail}"
        )
    }

    #[test]
    fn no_error_or_debug_output_shows_a_secret() {
        // A syntax error on the secret's own line: told by line and column, not quoted.
        let broken = with_secrets("").replace(
            &format!("api_key = \"{KNOWN}\""),
            &format!("api_key = \"{KNOWN}"),
        );
        let e = RawConfig::from_toml(&broken).unwrap_err().to_string();
        assert!(e.contains("line 9"), "{e}");
        assert!(!e.contains("XYZZY"), "{e}");
        // A value of the wrong type at a secret key: the value is not shown.
        let e = RawConfig::from_toml("[odoo]\napi_key = 98765432123456789\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("odoo.api_key") && !e.contains("98765432123456789"),
            "{e}"
        );
        let e = RawConfig::from_toml(&format!("[http]\nmanager_token = [\"{KNOWN}\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("XYZZY"), "{e}");
        // Other keys still show what was wrong with them.
        let e = RawConfig::from_toml("[push]\nconcurrency = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("many"), "{e}");
        // Neither the raw nor the checked config prints a secret in Debug.
        let raw = RawConfig::from_toml(&with_secrets("")).unwrap();
        let config = raw.validate().unwrap();
        for shown in [
            format!("{raw:?}"),
            format!("{config:?}"),
            format!("{:#?}", config.odoo),
        ] {
            assert!(!shown.contains("XYZZY"), "{shown}");
        }
        assert_eq!(config.odoo.unwrap().api_key.expose(), KNOWN);
    }

    #[test]
    fn sign_in_lock_out_and_pin_length_are_site_settings() {
        let config = RawConfig::from_toml(
            "[site]\nid = \"s\"\n[floor]\nsign_in_failures = 3\nsign_in_lock_secs = 120\nsite_sign_in_failures = 500\nmin_pin_digits = 6\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(config.floor.lockout.device_failures, 3);
        assert_eq!(config.floor.lockout.base_lock, Duration::from_secs(120));
        assert_eq!(config.floor.lockout.site_failures, 500);
        assert_eq!(config.floor.min_pin_digits, 6);
        let p = problems("[site]\nid = \"s\"\n[floor]\nsign_in_failures = 0\nmin_pin_digits = 3\n");
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn example_config_is_valid() {
        let config = RawConfig::from_toml(EXAMPLE).unwrap().validate().unwrap();
        assert_eq!(config.site.id, "site-01");
        assert_eq!(config.http.listen.port(), 8080);
        assert!(config.odoo.is_none());
        assert_eq!(config.sync.pull_interval, Duration::from_secs(60));
    }

    #[test]
    fn the_package_s_default_config_is_the_init_template() {
        // The Debian package installs packaging/holdfast.toml as /etc/holdfast/holdfast.toml.
        assert!(
            include_str!("../../packaging/holdfast.toml") == EXAMPLE,
            "packaging/holdfast.toml differs from what `holdfast init` writes; write it again: \
             cargo run -p holdfast -- init --force packaging/holdfast.toml"
        );
    }

    #[test]
    fn the_push_adapts_its_concurrency_unless_told_not_to() {
        for (text, adaptive, max) in [
            ("", true, 4),
            ("[push]\nadaptive = false\nconcurrency = 8\n", false, 8),
            ("[push]\nadaptive = true\nconcurrency = 2\n", true, 2),
        ] {
            let config = RawConfig::from_toml(&format!("[site]\nid = \"s\"\n{text}"))
                .unwrap()
                .validate()
                .unwrap();
            assert_eq!(config.push_limit.adaptive, adaptive, "{text}");
            assert_eq!(config.push.concurrency, max, "{text}");
        }
        let example = RawConfig::from_toml(EXAMPLE).unwrap().validate().unwrap();
        assert!(example.push_limit.adaptive);
    }

    #[test]
    fn the_mirror_s_staleness_bound_and_the_probe_time_out() {
        let odoo = "[odoo]\nurl = \"https://o.example\"\ndatabase = \"d\"\nlogin = \"l\"\napi_key = \"k\"\ncompany_id = 1\nwarehouse_id = 1\n";
        // (config after [site], stale_after, probe every, probe time-out or a problem)
        type Want = Result<(u64, f64, Option<f64>), &'static str>;
        let cases: &[(String, Want)] = &[
            (String::new(), Ok((300, 5.0, None))),
            (
                "[sync]\npull_interval_secs = 30\n".into(),
                Ok((150, 5.0, None)),
            ),
            (
                "[sync]\nstale_after_secs = 900\n".into(),
                Ok((900, 5.0, None)),
            ),
            (
                "[sync]\nstale_after_secs = 60\n".into(),
                Err("sync.stale_after_secs: 60 is out of range 120..=604800"),
            ),
            (odoo.to_owned(), Ok((300, 5.0, Some(3.0)))),
            (
                format!("{odoo}timeout_secs = 2\n"),
                Ok((300, 5.0, Some(1.0))),
            ),
            (
                format!("{odoo}probe_timeout_secs = 0.5\n"),
                Ok((300, 5.0, Some(0.5))),
            ),
            (
                format!("{odoo}timeout_secs = 2\nprobe_timeout_secs = 2\n"),
                Err("odoo.probe_timeout_secs: 2 is out of range 0.05..=60 or not shorter"),
            ),
        ];
        for (text, want) in cases {
            let text = format!("[site]\nid = \"s\"\n{text}");
            match want {
                Ok((stale, every, probe_timeout)) => {
                    let c = RawConfig::from_toml(&text).unwrap().validate().unwrap();
                    assert_eq!(c.sync.stale_after, Duration::from_secs(*stale), "{text}");
                    assert_eq!(c.push.probe, Duration::from_secs_f64(*every), "{text}");
                    assert_eq!(
                        c.odoo.map(|o| o.probe_timeout),
                        probe_timeout.map(Duration::from_secs_f64),
                        "{text}"
                    );
                }
                Err(e) => {
                    let got = problems(&text);
                    assert!(got.iter().any(|g| g.contains(e)), "{text}: {got:#?}");
                }
            }
        }
    }

    #[test]
    fn bad_values_are_all_reported_with_key_and_remedy() {
        let cases: &[(&str, &[&str])] = &[
            ("", &["site.id: missing"]),
            ("[site]\nid = \"a b\"", &["site.id: \"a b\" is not allowed"]),
            (
                "[site]\nid = \"s\"\n[http]\nlisten = \"localhost\"\n[log]\nformat = \"xml\"",
                &[
                    "http.listen: \"localhost\" is not an address",
                    "log.format: \"xml\" is not one of: plain, json",
                ],
            ),
            (
                "[site]\nid = \"s\"\n[sync]\npull_interval_secs = 1",
                &["sync.pull_interval_secs: 1 is out of range"],
            ),
            (
                "[site]\nid = \"s\"\n[store]\nmax_size_mb = 3",
                &["store.max_size_mb: 3 is too small"],
            ),
            (
                "[site]\nid = \"s\"\n[odoo]\nurl = \"ftp://x\"\napi = \"soap\"",
                &[
                    "odoo.url: \"ftp://x\" must start with https://",
                    "odoo.database: missing",
                    "odoo.login: missing",
                    "odoo.api: \"soap\" is not one of",
                    "odoo.company_id: missing",
                    "odoo.api_key: missing; set odoo.api_key_file",
                ],
            ),
            (
                "[site]\nid = \"s\"\n[odoo]\nurl = \"https://o.example\"\ndatabase = \"d\"\nlogin = \"l\"\napi_key = \"k\"\ncompany_id = 1\nwarehouse_id = 1\nca_file = \"/nonexistent/ca.pem\"\nclient_cert_file = \"/etc/hostname\"",
                &[
                    "odoo.ca_file: cannot read /nonexistent/ca.pem",
                    "odoo.client_cert_file: /etc/hostname holds no PEM block",
                ],
            ),
            (
                "[site]\nid = \"s\"\n[[devices]]\nid = \"h1\"\ntoken = \"short\"\n[[devices]]\nid = \"h1\"\ntoken_file = \"/nonexistent/token\"",
                &[
                    "devices[0].token: too short",
                    "devices[1].id: \"h1\" is used by an earlier device",
                    "devices[1].token_file: cannot read /nonexistent/token",
                ],
            ),
            (
                "[site]\nid = \"s\"\ncolour = \"red\"",
                &["unknown field: found `colour`"],
            ),
            ("[site\nid = 1", &["cannot read config"]),
            ("[site]\nid = 5", &["site.id: invalid type"]),
        ];
        for (text, expected) in cases {
            let got = problems(text);
            for e in *expected {
                assert!(
                    got.iter().any(|g| g.contains(e)),
                    "{text:?}: wanted {e:?} in {got:#?}"
                );
            }
            assert!(!got.is_empty(), "{text:?} accepted");
        }
    }

    #[test]
    fn secrets_come_from_files_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "s3cret-api-key\n").unwrap();
        let text = format!(
            "[site]\nid = \"s\"\n[odoo]\nurl = \"https://odoo.example/\"\ndatabase = \"db\"\nlogin = \"l\"\ncompany_id = 1\nwarehouse_id = 2\napi_key_file = \"{}\"",
            dir.path().join("key").display()
        );
        let config = RawConfig::from_toml(&text).unwrap().validate().unwrap();
        let odoo = config.odoo.unwrap();
        assert_eq!(odoo.api_key.expose(), "s3cret-api-key");
        assert_eq!(odoo.url, "https://odoo.example");
        assert!(!format!("{odoo:?}").contains("s3cret"));
    }

    #[test]
    fn unverified_odoo_versions_are_refused_unless_allowed() {
        let odoo = |extra: &str| {
            let text = format!(
                "[site]\nid = \"s\"\n[odoo]\nurl = \"https://o.example\"\ndatabase = \"d\"\nlogin = \"l\"\napi_key = \"k\"\ncompany_id = 1\nwarehouse_id = 1\n{extra}"
            );
            RawConfig::from_toml(&text)
                .and_then(|raw| raw.validate())
                .map(|c| c.odoo.unwrap())
        };
        assert!(!odoo("").unwrap().allow_unverified_version);
        assert!(
            odoo("allow_unverified_version = true")
                .unwrap()
                .allow_unverified_version
        );
        assert!(odoo("allow_unverified_version = \"yes\"").is_err());
        let client = crate::pull::client_config(&odoo("allow_unverified_version = true").unwrap());
        assert!(client.allow_unverified_version, "reaches the wire client");
    }
}
