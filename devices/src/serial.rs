//! Serial ports: settings as the config names them, and opening a port with them.
//!
//! Scanners and printers on RS-232 or USB-CDC share this. Paths are named in the config
//! (prefer `/dev/serial/by-id/...`, which survives re-plugging into another USB port); no
//! udev enumeration is needed.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

pub use serialport::{DataBits, FlowControl, Parity, StopBits};

/// How to open one serial port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialSettings {
    pub path: PathBuf,
    pub baud: u32,
    pub data_bits: DataBits,
    pub parity: Parity,
    pub stop_bits: StopBits,
    pub flow_control: FlowControl,
}

impl SerialSettings {
    /// 9600 8N1, no flow control: what most scanners ship with.
    pub fn new(path: impl Into<PathBuf>) -> SerialSettings {
        SerialSettings {
            path: path.into(),
            baud: 9600,
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow_control: FlowControl::None,
        }
    }

    /// Opens the port; reads time out after `read_timeout` (so a reader can look up from a
    /// quiet line).
    pub fn open(
        &self,
        read_timeout: Duration,
    ) -> Result<Box<dyn serialport::SerialPort>, serialport::Error> {
        let path = self.path.to_string_lossy();
        serialport::new(path.as_ref(), self.baud)
            .data_bits(self.data_bits)
            .parity(self.parity)
            .stop_bits(self.stop_bits)
            .flow_control(self.flow_control)
            .timeout(read_timeout)
            .open()
    }
}

/// Parses the config's names: `none|odd|even`.
pub fn parse_parity(text: &str) -> Option<Parity> {
    match text {
        "none" => Some(Parity::None),
        "odd" => Some(Parity::Odd),
        "even" => Some(Parity::Even),
        _ => None,
    }
}

/// Parses the config's names: `none|software|hardware`.
pub fn parse_flow_control(text: &str) -> Option<FlowControl> {
    match text {
        "none" => Some(FlowControl::None),
        "software" => Some(FlowControl::Software),
        "hardware" => Some(FlowControl::Hardware),
        _ => None,
    }
}

/// 5 to 8 data bits.
pub fn parse_data_bits(bits: u8) -> Option<DataBits> {
    match bits {
        5 => Some(DataBits::Five),
        6 => Some(DataBits::Six),
        7 => Some(DataBits::Seven),
        8 => Some(DataBits::Eight),
        _ => None,
    }
}

/// 1 or 2 stop bits.
pub fn parse_stop_bits(bits: u8) -> Option<StopBits> {
    match bits {
        1 => Some(StopBits::One),
        2 => Some(StopBits::Two),
        _ => None,
    }
}

/// A scanner on a serial port.
#[derive(Clone, Debug)]
pub struct SerialScanner {
    pub device: String,
    pub settings: SerialSettings,
    pub frame: crate::frame::FrameConfig,
    /// Bytes written back after an accepted scan (a beep command), if any.
    pub good_beep: Vec<u8>,
    /// Bytes written back after a refused scan.
    pub bad_beep: Vec<u8>,
    /// Inter-character time-out: a partial frame quiet this long is dropped
    /// ([`crate::frame::DEFAULT_FRAME_TIMEOUT`] unless configured; `None`: never).
    pub frame_timeout: Option<Duration>,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// How often a quiet port looks up to see whether it should stop.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Zero-byte reads in a row that mean the other end hung up (a pseudo-terminal's master
/// closed, a USB adapter gone).
const HANGUP_READS: u32 = 20;

/// Serves a serial scanner on its own thread (serial I/O is blocking) until `cancel`: opens
/// the port, frames scans, hands each to the hub on `runtime` and beeps its feedback; when the
/// port fails (unplugged) it reopens it with backoff, reporting each outage once.
pub fn spawn_scanner<H: crate::hub::Hub>(
    scanner: SerialScanner,
    hub: H,
    runtime: tokio::runtime::Handle,
    cancel: tokio_util::sync::CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("serial-{}", scanner.device))
        .spawn(move || run_scanner(&scanner, &hub, &runtime, &cancel))
}

fn backoff(min: Duration, max: Duration) -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Sleeps in short steps so a cancel is noticed; false when cancelled.
fn pause(d: Duration, cancel: &tokio_util::sync::CancellationToken) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        if cancel.is_cancelled() {
            return false;
        }
        std::thread::sleep(READ_TIMEOUT.min(until - std::time::Instant::now()));
    }
    !cancel.is_cancelled()
}

fn run_scanner<H: crate::hub::Hub>(
    scanner: &SerialScanner,
    hub: &H,
    runtime: &tokio::runtime::Handle,
    cancel: &tokio_util::sync::CancellationToken,
) {
    use crate::hub::DeviceEvent;
    let device = scanner.device.as_str();
    let path = scanner.settings.path.display().to_string();
    let mut delays = backoff(scanner.retry_min, scanner.retry_max);
    let mut down_reported = false;
    while !cancel.is_cancelled() {
        match scanner.settings.open(READ_TIMEOUT) {
            Err(e) => {
                if !down_reported {
                    down_reported = true;
                    hub.event(
                        device,
                        DeviceEvent::Disconnected {
                            error: Some(format!("cannot open {path}: {e}")),
                        },
                    );
                }
                let delay = delays.next().unwrap_or(scanner.retry_max);
                if !pause(delay, cancel) {
                    return;
                }
            }
            Ok(port) => {
                delays = backoff(scanner.retry_min, scanner.retry_max);
                hub.event(
                    device,
                    DeviceEvent::Connected {
                        address: path.clone(),
                    },
                );
                let error = serve_port(port, scanner, hub, runtime, cancel);
                if cancel.is_cancelled() {
                    return;
                }
                hub.event(device, DeviceEvent::Disconnected { error: Some(error) });
                down_reported = true;
                if !pause(scanner.retry_min, cancel) {
                    return;
                }
            }
        }
    }
}

/// Reads scans until the port fails; says why.
fn serve_port<H: crate::hub::Hub>(
    mut port: Box<dyn serialport::SerialPort>,
    scanner: &SerialScanner,
    hub: &H,
    runtime: &tokio::runtime::Handle,
    cancel: &tokio_util::sync::CancellationToken,
) -> String {
    use crate::frame::Framer;
    let mut framer = Framer::new(scanner.frame.clone());
    let mut buf = [0u8; 1024];
    let mut frames = Vec::new();
    let mut empty_reads = 0;
    // When the last byte came; reads time out every READ_TIMEOUT, so a stale partial frame
    // is found within that much of its time-out.
    let mut last_byte = std::time::Instant::now();
    loop {
        if cancel.is_cancelled() {
            return "stopping".into();
        }
        if let Some(timeout) = scanner.frame_timeout
            && framer.partial()
            && last_byte.elapsed() >= timeout
            && let Some(len) = framer.discard()
        {
            tracing::warn!(device = %scanner.device, len, "stale partial scan dropped");
            crate::frame::report_stale(hub, &scanner.device, len, timeout);
        }
        let n = match port.read(&mut buf) {
            Ok(0) => {
                empty_reads += 1;
                if empty_reads >= HANGUP_READS {
                    return "the port hung up (device unplugged?)".into();
                }
                continue;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return format!("read failed (device unplugged?): {e}"),
        };
        empty_reads = 0;
        // A byte after a long silence: a partial frame before it is stale even if the
        // read loop did not look in between.
        if let Some(timeout) = scanner.frame_timeout
            && framer.partial()
            && last_byte.elapsed() >= timeout
            && let Some(len) = framer.discard()
        {
            tracing::warn!(device = %scanner.device, len, "stale partial scan dropped");
            crate::frame::report_stale(hub, &scanner.device, len, timeout);
        }
        last_byte = std::time::Instant::now();
        framer.push(&buf[..n], &mut frames);
        for frame in frames.drain(..) {
            let good = runtime.block_on(crate::frame::deliver(
                hub,
                &scanner.device,
                crate::hub::Transport::Serial,
                frame,
                &scanner.frame,
            ));
            let beep = if good {
                &scanner.good_beep
            } else {
                &scanner.bad_beep
            };
            if !beep.is_empty()
                && let Err(e) = port.write_all(beep).and_then(|()| port.flush())
            {
                return format!("write failed: {e}");
            }
        }
    }
}
