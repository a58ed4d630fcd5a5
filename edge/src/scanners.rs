//! Scanners that are not browsers: serial, TCP and MQTT scanners run the same workflows as
//! the handheld API, through the floor service, one session per device.
//!
//! A scanner has only its trigger, so everything is a scan:
//!
//! - nobody signed in: an operator's badge signs them in;
//! - no task open: a picking's name (or barcode) opens it (receipts receive, others pick);
//! - a task open: scans go to it (bin, product, lot, serial, package);
//! - command barcodes, printed on a sheet at the station: `HF:QTY:<n>` (quantity for the
//!   item in hand), `HF:VALIDATE`, `HF:VALIDATE:BACKORDER`, `HF:VALIDATE:NO-BACKORDER`,
//!   `HF:FINISH`, `HF:CANCEL` (the open task), `HF:LABEL` (a package label for the open
//!   picking), `HF:LOGOUT`.
//!
//! The answer goes back as a good or bad beep (serial, TCP) or a reply message (MQTT) with the
//! next prompt or the reason for refusal.
//!
//! Each device id belongs to one transport ([`crate::config::LanConfig`] refuses an id used
//! twice): a scan that names an id on a transport that does not own it (an MQTT client
//! publishing as a serial scanner or an HTTP handheld) is refused, logged and counted on
//! the link it came over, and never reaches the floor.

use holdfast_devices::hub::{DeviceEvent, Feedback, Hub, Refusal, Transport};
use holdfast_devices::mqtt::DevicePattern;
use holdfast_sync::ops::BackorderChoice;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{LanConfig, ScannerLink};
use crate::floor::{Answer, Caller, Floor, FloorRequest, RawInput, sha256_hex};
use crate::printing::Printing;
use crate::registry::Registry;

/// Prefix of command barcodes.
pub const COMMAND_PREFIX: &str = "HF:";

/// What a scan asks for.
#[derive(Clone, Debug)]
enum Command {
    Floor(FloorRequest),
    CancelTask,
    PackageLabel,
}

/// Reads a scan: a command barcode, or a scan for the session.
fn command(data: &[u8]) -> Result<Command, Feedback> {
    let Some(rest) = data.strip_prefix(COMMAND_PREFIX.as_bytes()) else {
        return Ok(Command::Floor(FloorRequest::Input {
            session: None,
            input: RawInput::Scan(data.to_vec()),
        }));
    };
    let text = std::str::from_utf8(rest)
        .map_err(|_| Feedback::bad("unknown_command", "command barcode is not text"))?
        .trim()
        .to_ascii_uppercase();
    let input = |input| {
        Ok(Command::Floor(FloorRequest::Input {
            session: None,
            input,
        }))
    };
    match text.as_str() {
        "VALIDATE" => input(RawInput::Validate(None)),
        "VALIDATE:BACKORDER" => input(RawInput::Validate(Some(BackorderChoice::Backorder))),
        "VALIDATE:NO-BACKORDER" => input(RawInput::Validate(Some(BackorderChoice::NoBackorder))),
        "FINISH" => input(RawInput::Finish),
        "LOGOUT" => Ok(Command::Floor(FloorRequest::Logout)),
        "CANCEL" => Ok(Command::CancelTask),
        "LABEL" => Ok(Command::PackageLabel),
        other => match other
            .strip_prefix("QTY:")
            .map(crate::workflow::parse_quantity)
        {
            Some(Some(q)) => input(RawInput::Quantity(q)),
            Some(None) => Err(Feedback::bad(
                "invalid_quantity",
                format!(
                    "{other:?}: the quantity must be a plain number, e.g. HF:QTY:12 or HF:QTY:2.5"
                ),
            )),
            None => Err(Feedback::bad(
                "unknown_command",
                format!(
                    "unknown command barcode {COMMAND_PREFIX}{other}; known: QTY:<n>, VALIDATE, VALIDATE:BACKORDER, VALIDATE:NO-BACKORDER, FINISH, CANCEL, LABEL, LOGOUT"
                ),
            )),
        },
    }
}

/// What a device hears of a floor answer.
pub fn feedback(answer: &Answer) -> Feedback {
    let body = &answer.body;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if answer.status < 300 {
        let message = body
            .pointer("/session/prompt")
            .and_then(text)
            .or_else(|| body.get("message").and_then(text))
            .or_else(|| {
                body.pointer("/operator/name")
                    .and_then(text)
                    .map(|n| format!("Signed in: {n}. Scan a picking."))
            })
            .unwrap_or_else(|| "OK".into());
        Feedback::good(message)
    } else {
        Feedback::bad(
            body.get("code")
                .and_then(text)
                .unwrap_or_else(|| format!("http_{}", answer.status)),
            body.get("message")
                .and_then(text)
                .unwrap_or_else(|| "refused".into()),
        )
    }
}

/// Refusals are counted each (the registry), but logged at most
/// [`RefusalLog::PER_MINUTE`] times a minute per device and reason: a flood of bad input
/// writes a few lines, then how many more there were, instead of a line per frame.
/// A device and the reason its input was refused.
type RefusalKey = (String, &'static str);
/// When the window began, and the refusals in it.
type RefusalWindow = (std::time::Instant, u64);

#[derive(Debug, Default)]
struct RefusalLog {
    windows: std::sync::Mutex<std::collections::HashMap<RefusalKey, RefusalWindow>>,
}

impl RefusalLog {
    const PER_MINUTE: u64 = 5;
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    /// Whether to log this refusal, and how many went unlogged in the window that just ended.
    fn admit(&self, device: &str, reason: &'static str, now: std::time::Instant) -> (bool, u64) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= 4096 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Self::WINDOW);
        }
        let entry = windows
            .entry((device.to_owned(), reason))
            .or_insert((now, 0));
        let mut held_back = 0;
        if now.duration_since(entry.0) >= Self::WINDOW {
            held_back = entry.1.saturating_sub(Self::PER_MINUTE);
            *entry = (now, 0);
        }
        entry.1 += 1;
        (entry.1 <= Self::PER_MINUTE, held_back)
    }
}

/// The hub the scanner transports feed: scans to the floor, link events to the registry.
#[derive(Clone, Debug)]
pub struct ScanHub {
    floor: Floor,
    registry: Registry,
    printing: Printing,
    /// Transport name of each configured scanner (others are MQTT).
    transports: std::sync::Arc<std::collections::HashMap<String, &'static str>>,
    /// Who may scan over MQTT.
    mqtt: std::sync::Arc<MqttOwners>,
    /// Ids of the HTTP handhelds: no scanner transport acts as them.
    http_devices: std::sync::Arc<Vec<String>>,
    /// Id of the MQTT broker link in the registry.
    broker: Option<String>,
    /// How many refusals were logged lately, per device and reason.
    refusals: std::sync::Arc<RefusalLog>,
}

/// The ids MQTT owns: listed, or matching the site's pattern.
#[derive(Debug, Default)]
struct MqttOwners {
    devices: Vec<String>,
    pattern: Option<DevicePattern>,
}

impl ScanHub {
    pub fn new(floor: Floor, registry: Registry, printing: Printing, lan: &LanConfig) -> ScanHub {
        let transports = lan
            .scanners
            .iter()
            .map(|s| (s.id.clone(), transport_name(&s.link)))
            .collect();
        ScanHub {
            floor,
            registry,
            printing,
            transports: std::sync::Arc::new(transports),
            mqtt: std::sync::Arc::new(
                lan.mqtt
                    .as_ref()
                    .map(|(m, _)| MqttOwners {
                        devices: m.devices.clone(),
                        pattern: m.device_pattern.clone(),
                    })
                    .unwrap_or_default(),
            ),
            http_devices: std::sync::Arc::new(lan.http_devices.clone()),
            broker: lan.mqtt.as_ref().map(|(m, _)| m.link.clone()),
            refusals: std::sync::Arc::default(),
        }
    }

    fn transport(&self, device: &str) -> &'static str {
        self.transports.get(device).copied().unwrap_or("mqtt")
    }

    /// Why `device` may not scan over `transport`, if it may not.
    fn foreign(&self, device: &str, transport: Transport) -> Option<String> {
        // Handhelds are `[[devices]]` and those issued by `holdfast device issue` (in the
        // store; a store that cannot be read refuses the scan rather than guess).
        let issued = self
            .floor
            .store()
            .read(|r| r.issued_devices())
            .map(|list| list.iter().any(|(id, _, _)| id == device));
        let issued = match issued {
            Ok(issued) => issued,
            Err(e) => return Some(format!("cannot tell whether {device:?} is a handheld: {e}")),
        };
        if issued || self.http_devices.iter().any(|d| d == device) {
            return Some(format!(
                "{device:?} is an HTTP handheld; a {} scan may not act as it",
                transport.as_str()
            ));
        }
        let owner = match self.transports.get(device) {
            Some(&"serial") => Some(Transport::Serial),
            Some(_) => Some(Transport::Tcp),
            None => {
                let mqtt = self.mqtt.devices.iter().any(|d| d == device)
                    || self
                        .mqtt
                        .pattern
                        .as_ref()
                        .is_some_and(|p| p.matches(device));
                mqtt.then_some(Transport::Mqtt)
            }
        };
        match owner {
            Some(owner) if owner == transport => None,
            Some(owner) => Some(format!(
                "{device:?} is a {} scanner; a {} scan may not act as it",
                owner.as_str(),
                transport.as_str()
            )),
            None => Some(format!(
                "{device:?} is not a configured {} scanner",
                transport.as_str()
            )),
        }
    }

    async fn run(&self, device: &str, data: &[u8], key: Option<String>) -> Feedback {
        let command = match command(data) {
            Ok(c) => c,
            Err(refused) => return refused,
        };
        let caller = Caller {
            device: device.to_owned(),
            key: key.clone(),
            fingerprint: sha256_hex(data),
        };
        match command {
            Command::Floor(request) => feedback(&self.floor.handle(&caller, request).await),
            Command::CancelTask => match self.current_session(device) {
                Some((session, _)) => feedback(
                    &self
                        .floor
                        .handle(&caller, FloorRequest::Cancel { session })
                        .await,
                ),
                None => Feedback::bad("no_session", "no task open to cancel"),
            },
            Command::PackageLabel => self.package_label(device, key).await,
        }
    }

    /// The device's open session and its picking.
    fn current_session(&self, device: &str) -> Option<(String, Option<i64>)> {
        let who = self.floor.whoami(device);
        let session = who.body.get("session")?;
        let id = session.get("id")?.as_str()?.to_owned();
        let picking = session.pointer("/picking/id").and_then(Value::as_i64);
        Some((id, picking))
    }

    /// Spools the open picking's package label. Under the scan's idempotency key (an MQTT
    /// message id), a redelivered `HF:LABEL` answers the first job: one label, one SSCC on it.
    async fn package_label(&self, device: &str, key: Option<String>) -> Feedback {
        let Some((_, Some(picking))) = self.current_session(device) else {
            return Feedback::bad("no_session", "open a picking first, then scan HF:LABEL");
        };
        let result = async {
            let printer = self.printing.printer_for(None, Some(device))?;
            let label = self.printing.package_label(picking).await?;
            let id = self
                .printing
                .enqueue_keyed(
                    printer,
                    &label,
                    &format!("device:{device}"),
                    Some(format!("picking:{picking}")),
                    key,
                )
                .await?;
            Ok::<_, crate::printing::PrintError>((id, printer.id.clone()))
        }
        .await;
        match result {
            Ok((id, printer)) => {
                Feedback::good(format!("Package label queued on {printer} (job {id})"))
            }
            Err(e) => Feedback::bad("print_failed", e.to_string()),
        }
    }
}

impl Hub for ScanHub {
    async fn scan(
        &self,
        device: &str,
        transport: Transport,
        data: Vec<u8>,
        key: Option<String>,
    ) -> Feedback {
        let started = std::time::Instant::now();
        if let Some(error) = self.foreign(device, transport) {
            // Counted on the link it came over (for MQTT the broker link): the device it
            // names did nothing.
            let link = match (transport, &self.broker) {
                (Transport::Mqtt, Some(broker)) => broker.as_str(),
                _ => device,
            };
            self.event(
                link,
                DeviceEvent::Refused {
                    reason: Refusal::ForeignDevice,
                    error: error.clone(),
                },
            );
            return Feedback::bad("foreign_device", error);
        }
        let feedback = self.run(device, &data, key).await;
        crate::metrics::scan(transport.as_str(), feedback.good, started.elapsed());
        let error = (!feedback.good).then(|| format!("{}: {}", feedback.code, feedback.message));
        self.registry.scanned(
            device,
            self.transport(device),
            feedback.good,
            error.as_deref(),
        );
        tracing::debug!(%device, good = feedback.good, code = %feedback.code, "scanner scan");
        feedback
    }

    fn event(&self, device: &str, event: DeviceEvent) {
        let kind = if self.broker.as_deref() == Some(device) {
            "broker"
        } else {
            "scanner"
        };
        match &event {
            DeviceEvent::Connected { address } => {
                tracing::info!(%device, %address, "device connected")
            }
            DeviceEvent::Disconnected { error } => {
                tracing::warn!(%device, error = error.as_deref().unwrap_or("closed"), "device disconnected")
            }
            DeviceEvent::Refused { reason, error } => {
                crate::metrics::refused(
                    crate::metrics::transport_label(self.transport(device)),
                    reason.as_str(),
                );
                let (log, held_back) =
                    self.refusals
                        .admit(device, reason.as_str(), std::time::Instant::now());
                if held_back > 0 {
                    tracing::warn!(%device, reason = reason.as_str(), refused = held_back, "more device input refused in the last minute than logged (all are counted)");
                }
                if log {
                    tracing::warn!(%device, reason = reason.as_str(), %error, "device input refused")
                }
            }
        }
        self.registry
            .event(device, kind, self.transport(device), &event);
    }
}

fn transport_name(link: &ScannerLink) -> &'static str {
    match link {
        ScannerLink::Serial(_) => "serial",
        ScannerLink::Tcp(holdfast_devices::tcp::TcpMode::Listen(_)) => "tcp-listen",
        ScannerLink::Tcp(holdfast_devices::tcp::TcpMode::Connect(_)) => "tcp-connect",
    }
}

/// Starts every configured scanner transport; they run until `cancel`.
pub fn spawn(
    hub: &ScanHub,
    lan: &LanConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    use anyhow::Context;
    let mut tasks = Vec::new();
    let retry_min = std::time::Duration::from_millis(250);
    let retry_max = std::time::Duration::from_secs(10);
    for s in &lan.scanners {
        let (transport, address) = match &s.link {
            ScannerLink::Serial(settings) => ("serial", settings.path.display().to_string()),
            ScannerLink::Tcp(holdfast_devices::tcp::TcpMode::Listen(a)) => {
                ("tcp-listen", a.to_string())
            }
            ScannerLink::Tcp(holdfast_devices::tcp::TcpMode::Connect(a)) => {
                ("tcp-connect", a.clone())
            }
        };
        hub.registry
            .configure(&s.id, "scanner", transport, Some(address));
        match &s.link {
            ScannerLink::Serial(settings) => {
                let scanner = holdfast_devices::serial::SerialScanner {
                    device: s.id.clone(),
                    settings: settings.clone(),
                    frame: s.frame.clone(),
                    good_beep: s.good_beep.clone(),
                    bad_beep: s.bad_beep.clone(),
                    frame_timeout: s.frame_timeout,
                    retry_min,
                    retry_max,
                };
                let thread = holdfast_devices::serial::spawn_scanner(
                    scanner,
                    hub.clone(),
                    tokio::runtime::Handle::current(),
                    cancel.clone(),
                )
                .with_context(|| format!("starting serial scanner {}", s.id))?;
                // The thread stops at `cancel`; a task joins it so shutdown waits for it.
                tasks.push(tokio::task::spawn_blocking(move || {
                    let _ = thread.join();
                }));
            }
            ScannerLink::Tcp(mode) => {
                if matches!(mode, holdfast_devices::tcp::TcpMode::Listen(_)) && s.allow.is_empty() {
                    tracing::warn!(device = %s.id, "TCP scanner listener takes connections from any address (set allow)");
                }
                let scanner = holdfast_devices::tcp::TcpScanner {
                    device: s.id.clone(),
                    mode: mode.clone(),
                    frame: s.frame.clone(),
                    idle_timeout: s.idle_timeout,
                    frame_timeout: s.frame_timeout,
                    allow: s.allow.clone(),
                    good_beep: s.good_beep.clone(),
                    bad_beep: s.bad_beep.clone(),
                    retry_min,
                    retry_max,
                };
                let hub = hub.clone();
                let cancel = cancel.clone();
                let id = s.id.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = holdfast_devices::tcp::run_scanner(scanner, hub, cancel).await {
                        tracing::error!(device = %id, error = %e, "TCP scanner cannot start");
                    }
                }));
            }
        }
    }
    if let Some((settings, _)) = &lan.mqtt {
        hub.registry.configure(
            &settings.link,
            "broker",
            "mqtt",
            Some(format!("{}:{}", settings.host, settings.port)),
        );
        for d in &settings.devices {
            hub.registry.configure(d, "scanner", "mqtt", None);
        }
        let settings = settings.clone();
        let hub = hub.clone();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = holdfast_devices::mqtt::run(settings, hub, cancel).await {
                tracing::error!(error = %e, "MQTT scanners cannot start");
            }
        }));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_logs_a_few_lines_a_minute_and_counts_the_rest() {
        let log = RefusalLog::default();
        let t0 = std::time::Instant::now();
        let logged = (0..1000)
            .filter(|_| log.admit("ser1", "bad_scan", t0).0)
            .count();
        assert_eq!(logged, 5);
        // Another device or reason has its own allowance.
        assert!(log.admit("tcp1", "bad_scan", t0).0);
        assert!(log.admit("ser1", "stale_frame", t0).0);
        // The next minute says how many went unlogged, and logs again.
        assert_eq!(
            log.admit("ser1", "bad_scan", t0 + RefusalLog::WINDOW),
            (true, 995)
        );
    }

    #[test]
    fn command_barcodes() {
        assert!(matches!(
            command(b"HF:QTY:12").unwrap(),
            Command::Floor(FloorRequest::Input { input: RawInput::Quantity(q), .. }) if q == 12.0
        ));
        // The prefix is case-sensitive: a product code may start with "hf:".
        assert!(matches!(
            command(b"hf:validate").unwrap(),
            Command::Floor(FloorRequest::Input {
                input: RawInput::Scan(_),
                ..
            })
        ));
        assert!(matches!(
            command(b"HF:label").unwrap(),
            Command::PackageLabel
        ));
        assert!(matches!(
            command(b"HF:CANCEL").unwrap(),
            Command::CancelTask
        ));
        assert!(matches!(
            command(b"HF:VALIDATE:NO-BACKORDER").unwrap(),
            Command::Floor(FloorRequest::Input {
                input: RawInput::Validate(Some(BackorderChoice::NoBackorder)),
                ..
            })
        ));
        assert_eq!(command(b"HF:QTY:-1").unwrap_err().code, "invalid_quantity");
        assert_eq!(command(b"HF:FORMAT").unwrap_err().code, "unknown_command");
        assert!(matches!(
            command(b"5901230000363").unwrap(),
            Command::Floor(FloorRequest::Input {
                input: RawInput::Scan(_),
                ..
            })
        ));
    }
}
