//! Talking to Zebra-compatible label printers (raw TCP port 9100, or a serial port), and a
//! fake one for the demo, tests and benchmarks.
//!
//! Two exchanges:
//!
//! - **status**: `~HS` is answered with three framed strings (paper out, paused, head open,
//!   ribbon out, buffer full, ...). A printer that is out of media, paused or open may not
//!   answer at all, so no answer within the time-out is [`PrintError::NoAnswer`] — a fault,
//!   never "ready".
//! - **send**: the label's bytes on a fresh connection. What the caller must know is whether
//!   anything may have reached the printer: [`SendError::NotSent`] (could not connect or open:
//!   safe to send again) or [`SendError::Ambiguous`] (the link broke after bytes went out: the
//!   label may have printed; sending it again could print it twice). After the last byte the
//!   connection is half-closed and the printer's close awaited: a reset then means the job
//!   was cut off.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::serial::SerialSettings;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
/// Longest `~HS` answer read (three short strings).
const MAX_STATUS: usize = 512;

/// What `~HS` says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    pub paper_out: bool,
    pub paused: bool,
    pub head_open: bool,
    pub ribbon_out: bool,
    pub buffer_full: bool,
    pub over_temperature: bool,
    pub under_temperature: bool,
    pub corrupt_ram: bool,
    pub formats_in_buffer: u32,
    pub labels_remaining: u32,
}

/// Why a `~HS` answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("status answer has {0} framed strings, 3 expected")]
    Frames(usize),
    #[error("status string {string} has {found} fields, {expected} expected")]
    Fields {
        string: usize,
        found: usize,
        expected: usize,
    },
    #[error("status field {field} of string {string} is not a number: {value:?}")]
    Number {
        string: usize,
        field: usize,
        value: String,
    },
}

impl HostStatus {
    /// Reads the three `STX ... ETX CR LF` strings of a `~HS` answer.
    pub fn parse(bytes: &[u8]) -> Result<HostStatus, StatusError> {
        let mut frames = Vec::new();
        let mut rest = bytes;
        while let Some(start) = rest.iter().position(|&b| b == STX) {
            let after = &rest[start + 1..];
            let Some(end) = after.iter().position(|&b| b == ETX) else {
                break;
            };
            frames.push(&after[..end]);
            rest = &after[end + 1..];
        }
        if frames.len() != 3 {
            return Err(StatusError::Frames(frames.len()));
        }
        let fields = |i: usize, expected: usize| -> Result<Vec<String>, StatusError> {
            let text = String::from_utf8_lossy(frames[i]);
            let f: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
            if f.len() != expected {
                return Err(StatusError::Fields {
                    string: i + 1,
                    found: f.len(),
                    expected,
                });
            }
            Ok(f)
        };
        let number = |s: usize, f: &[String], i: usize| -> Result<u32, StatusError> {
            f[i].parse::<u32>().map_err(|_| StatusError::Number {
                string: s,
                field: i + 1,
                value: f[i].clone(),
            })
        };
        let one = fields(0, 12)?;
        let two = fields(1, 11)?;
        fields(2, 2)?;
        let flag = |s: usize, f: &[String], i: usize| number(s, f, i).map(|n| n != 0);
        Ok(HostStatus {
            paper_out: flag(1, &one, 1)?,
            paused: flag(1, &one, 2)?,
            formats_in_buffer: number(1, &one, 4)?,
            buffer_full: flag(1, &one, 5)?,
            corrupt_ram: flag(1, &one, 9)?,
            under_temperature: flag(1, &one, 10)?,
            over_temperature: flag(1, &one, 11)?,
            head_open: flag(2, &two, 2)?,
            ribbon_out: flag(2, &two, 3)?,
            labels_remaining: number(2, &two, 8)?,
        })
    }

    /// The answer a printer in this state gives (the fake printer's, and tests').
    pub fn encode(&self) -> Vec<u8> {
        let b = |v: bool| u8::from(v);
        let one = format!(
            "030,{},{},1245,{:03},{},0,0,000,{},{},{}",
            b(self.paper_out),
            b(self.paused),
            self.formats_in_buffer.min(999),
            b(self.buffer_full),
            b(self.corrupt_ram),
            b(self.under_temperature),
            b(self.over_temperature)
        );
        let two = format!(
            "001,0,{},{},1,2,6,0,{:08},1,000",
            b(self.head_open),
            b(self.ribbon_out),
            self.labels_remaining.min(99_999_999)
        );
        let mut out = Vec::new();
        for s in [one.as_str(), two.as_str(), "1234,0"] {
            out.push(STX);
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(&[ETX, b'\r', b'\n']);
        }
        out
    }

    /// Ready to print: nothing that stops the printer.
    pub fn ready(&self) -> bool {
        self.faults().is_empty()
    }

    /// What stops the printer, by name.
    pub fn faults(&self) -> Vec<&'static str> {
        [
            (self.paper_out, "paper_out"),
            (self.paused, "paused"),
            (self.head_open, "head_open"),
            (self.ribbon_out, "ribbon_out"),
            (self.buffer_full, "buffer_full"),
            (self.corrupt_ram, "corrupt_ram"),
            (self.over_temperature, "over_temperature"),
            (self.under_temperature, "under_temperature"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// Where a printer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrinterAddress {
    /// `host:port` (raw printing, usually port 9100).
    Tcp(String),
    Serial(SerialSettings),
}

/// A status exchange that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrintError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no status answer within the time-out (paused, out of media, open, or off)")]
    NoAnswer,
    #[error("I/O: {0}")]
    Io(String),
    #[error("unreadable status answer: {0}")]
    Status(#[from] StatusError),
}

/// A send that failed, and whether the printer may have received part of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("not sent: {0}")]
    NotSent(String),
    #[error("interrupted after {written} bytes: {error}")]
    Ambiguous { written: usize, error: String },
}

async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: connect timed out")),
    }
}

/// Whether three ETX have arrived.
fn status_complete(buf: &[u8]) -> bool {
    buf.iter().filter(|&&b| b == ETX).count() >= 3
}

/// Asks `~HS`; a printer that says nothing within `timeout` is [`PrintError::NoAnswer`].
pub async fn query_status(
    addr: &PrinterAddress,
    timeout: Duration,
) -> Result<HostStatus, PrintError> {
    match addr {
        PrinterAddress::Tcp(a) => {
            let mut s = connect(a, timeout).await.map_err(PrintError::Connect)?;
            let exchange = async {
                s.write_all(b"~HS").await?;
                let mut buf = Vec::with_capacity(128);
                let mut chunk = [0u8; 256];
                while !status_complete(&buf) && buf.len() < MAX_STATUS {
                    let n = s.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Ok::<_, std::io::Error>(buf)
            };
            match tokio::time::timeout(timeout, exchange).await {
                Err(_) => Err(PrintError::NoAnswer),
                Ok(Err(e)) => Err(PrintError::Io(e.to_string())),
                Ok(Ok(buf)) if buf.is_empty() => Err(PrintError::NoAnswer),
                Ok(Ok(buf)) => Ok(HostStatus::parse(&buf)?),
            }
        }
        PrinterAddress::Serial(settings) => {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || {
                let mut port = settings
                    .open(Duration::from_millis(100))
                    .map_err(|e| PrintError::Connect(e.to_string()))?;
                port.write_all(b"~HS")
                    .map_err(|e| PrintError::Io(e.to_string()))?;
                let deadline = std::time::Instant::now() + timeout;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 256];
                while !status_complete(&buf) && buf.len() < MAX_STATUS {
                    if std::time::Instant::now() >= deadline {
                        return Err(PrintError::NoAnswer);
                    }
                    match port.read(&mut chunk) {
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(e) => return Err(PrintError::Io(e.to_string())),
                    }
                }
                Ok(HostStatus::parse(&buf)?)
            })
            .await
            .map_err(|e| PrintError::Io(e.to_string()))?
        }
    }
}

/// Sends a job. Bytes written, then the write side closed, then the printer's close awaited
/// (at most `timeout`): a reset on the way is [`SendError::Ambiguous`].
pub async fn send(addr: &PrinterAddress, data: &[u8], timeout: Duration) -> Result<(), SendError> {
    match addr {
        PrinterAddress::Tcp(a) => {
            let mut s = connect(a, timeout).await.map_err(SendError::NotSent)?;
            let mut written = 0;
            let ambiguous = |written: usize, e: &dyn std::fmt::Display| SendError::Ambiguous {
                written,
                error: e.to_string(),
            };
            let write = async {
                while written < data.len() {
                    let n = s.write(&data[written..]).await?;
                    if n == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    }
                    written += n;
                }
                s.flush().await?;
                s.shutdown().await
            };
            match tokio::time::timeout(timeout, write).await {
                Err(_) => return Err(ambiguous(written, &"write timed out")),
                Ok(Err(e)) => return Err(ambiguous(written, &e)),
                Ok(Ok(())) => {}
            }
            // The printer closes once it has read everything; a reset means it did not.
            let mut sink = [0u8; 256];
            let close = async {
                loop {
                    if s.read(&mut sink).await? == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                }
            };
            match tokio::time::timeout(timeout, close).await {
                Ok(Err(e)) => Err(ambiguous(written, &e)),
                // Closed, or still open after the time-out (a printer that keeps the
                // connection): it took every byte.
                Ok(Ok(())) | Err(_) => Ok(()),
            }
        }
        PrinterAddress::Serial(settings) => {
            let settings = settings.clone();
            let data = data.to_vec();
            tokio::task::spawn_blocking(move || {
                let mut port = settings
                    .open(timeout)
                    .map_err(|e| SendError::NotSent(e.to_string()))?;
                port.write_all(&data)
                    .and_then(|()| port.flush())
                    .map_err(|e| SendError::Ambiguous {
                        written: 0,
                        error: e.to_string(),
                    })
            })
            .await
            .map_err(|e| SendError::Ambiguous {
                written: 0,
                error: e.to_string(),
            })?
        }
    }
}

use std::io::{Read as _, Write as _};

/// How the fake printer behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeBehaviour {
    /// Answers `~HS`, keeps every label.
    Normal,
    /// Never answers, keeps nothing (out of media and mute, or a dead print server).
    Silent,
    /// Takes the start of a job, then resets the connection.
    ResetMidJob,
    /// Waits this long before each `~HS` answer and each read.
    Slow(Duration),
    /// Answers `~HS` a few bytes at a time, this long apart: one answer in many TCP
    /// segments, as a busy print server may send it.
    Trickle(Duration),
}

#[derive(Debug)]
struct FakeState {
    behaviour: FakeBehaviour,
    status: HostStatus,
    labels: Vec<String>,
    received: usize,
    save_dir: Option<PathBuf>,
}

/// A Zebra-like printer on a TCP port: answers `~HS`, records `^XA...^XZ` formats.
#[derive(Debug)]
pub struct FakePrinter {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakePrinter {
    pub async fn start(
        listen: SocketAddr,
        behaviour: FakeBehaviour,
    ) -> std::io::Result<FakePrinter> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(FakeState {
            behaviour,
            status: HostStatus::default(),
            labels: Vec::new(),
            received: 0,
            save_dir: None,
        }));
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                // Each write its own segment (the trickling printer relies on it).
                let _ = conn.set_nodelay(true);
                tokio::spawn(serve_fake(conn, s.clone()));
            }
        });
        Ok(FakePrinter { addr, state, task })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Also writes each label to `dir/NNNNNN.zpl`.
    pub fn with_save_dir(self, dir: PathBuf) -> FakePrinter {
        self.lock().save_dir = Some(dir);
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every complete format received, in order.
    pub fn labels(&self) -> Vec<String> {
        self.lock().labels.clone()
    }

    pub fn received_bytes(&self) -> usize {
        self.lock().received
    }

    pub fn set_behaviour(&self, behaviour: FakeBehaviour) {
        self.lock().behaviour = behaviour;
    }

    pub fn set_status(&self, status: HostStatus) {
        self.lock().status = status;
    }

    /// Stops listening (connections in hand end on their own).
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for FakePrinter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn serve_fake(mut conn: TcpStream, state: Arc<Mutex<FakeState>>) {
    let behaviour = || {
        state
            .lock()
            .map(|s| s.behaviour)
            .unwrap_or(FakeBehaviour::Normal)
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let FakeBehaviour::Slow(d) = behaviour() {
            tokio::time::sleep(d).await;
        }
        let n = match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let now = behaviour();
        if let Ok(mut s) = state.lock() {
            s.received += n;
        }
        match now {
            FakeBehaviour::Silent => {
                buf.clear();
                continue;
            }
            FakeBehaviour::ResetMidJob if find(&buf, b"^XA").is_some() => {
                // Cut the job off: a reset, not an orderly close.
                let _ = conn.set_zero_linger();
                return;
            }
            _ => {}
        }
        // Answer every ~HS, wherever it is.
        while let Some(at) = find(&buf, b"~HS") {
            buf.drain(at..at + 3);
            let answer = state.lock().map(|s| s.status.encode()).unwrap_or_default();
            if let FakeBehaviour::Slow(d) = now {
                tokio::time::sleep(d).await;
            }
            let (piece, pause) = match now {
                FakeBehaviour::Trickle(d) => (5, d),
                _ => (answer.len().max(1), Duration::ZERO),
            };
            for part in answer.chunks(piece) {
                if conn.write_all(part).await.is_err() || conn.flush().await.is_err() {
                    return;
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
        // Keep whole formats.
        while let Some(start) = find(&buf, b"^XA") {
            let Some(end) = find(&buf[start..], b"^XZ") else {
                buf.drain(..start);
                break;
            };
            let format: Vec<u8> = buf.drain(..start + end + 3).skip(start).collect();
            let text = String::from_utf8_lossy(&format).into_owned();
            if let Ok(mut s) = state.lock() {
                s.labels.push(text.clone());
                if let Some(dir) = &s.save_dir {
                    let path = dir.join(format!("{:06}.zpl", s.labels.len()));
                    if let Err(e) = std::fs::write(&path, &text) {
                        tracing::warn!(path = %path.display(), error = %e, "fake printer cannot save a label");
                    }
                }
            }
        }
        if buf.len() > 16 * 1024 * 1024 {
            buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_round_trips_and_names_faults() {
        let s = HostStatus {
            paper_out: true,
            head_open: true,
            labels_remaining: 12,
            formats_in_buffer: 3,
            ..Default::default()
        };
        let parsed = HostStatus::parse(&s.encode()).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(parsed.faults(), vec!["paper_out", "head_open"]);
        assert!(!parsed.ready());
        assert!(HostStatus::default().ready());
    }

    #[test]
    fn a_real_printers_answer_parses() {
        let answer = b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n";
        assert!(HostStatus::parse(answer).unwrap().ready());
        assert_eq!(HostStatus::parse(b"\x02a\x03"), Err(StatusError::Frames(1)));
        assert!(matches!(
            HostStatus::parse(b"\x02x,1,0,1,0,0,0,0,0,0,0,0\x03\x02\x03\x02\x03"),
            Err(StatusError::Fields { string: 2, .. })
        ));
    }

    proptest! {
        #[test]
        fn any_status_round_trips(paper in any::<bool>(), paused in any::<bool>(), head in any::<bool>(),
                                  ribbon in any::<bool>(), full in any::<bool>(), n in 0u32..999, left in 0u32..99_999_999) {
            let s = HostStatus { paper_out: paper, paused, head_open: head, ribbon_out: ribbon,
                                 buffer_full: full, formats_in_buffer: n, labels_remaining: left, ..Default::default() };
            prop_assert_eq!(HostStatus::parse(&s.encode()).unwrap(), s);
        }

        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = HostStatus::parse(&bytes);
        }
    }
}
