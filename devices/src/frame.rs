//! Framing a scanner's byte stream into scans.
//!
//! Serial and TCP scanners send each scan followed by a terminator (CR by default, or LF,
//! CRLF, TAB, or any byte the site configured), sometimes wrapped in a prefix and suffix. The
//! framer splits on the terminator, strips what was configured, drops empty frames, and bounds
//! memory: a frame longer than `max_len` is discarded while it streams (the buffer never grows
//! past `max_len`) and reported once, with its length, when its terminator arrives. A stray CR
//! or LF next to a CR or LF terminator (a scanner sending CRLF to a port set for CR) is
//! dropped rather than made into a bad scan. GS (0x1D) inside a frame is data.
//!
//! A scanner sends a frame in one burst. A partial frame whose next byte does not come
//! within the inter-character time-out ([`DEFAULT_FRAME_TIMEOUT`], per scanner) is stale (a
//! scanner reset mid-frame, line noise, a half-sent scan): the transports drop it with
//! [`Framer::discard`] and report it, so it never sticks to the front of the next scan.

use std::fmt;
use std::str::FromStr;

use crate::scan::MAX_SCAN_LEN;

/// Inter-character time-out a scanner gets unless configured. The bytes of one frame come
/// in one burst (a 100-byte scan takes about 0.1 s at 9600 baud, byte gaps are about 1 ms;
/// a serial-to-Ethernet converter or a TCP retransmission on a LAN adds tens to a couple of
/// hundred ms), while the next scan needs a person to aim and pull the trigger again (a
/// second or more): 500 ms sits between the two with room on both sides.
pub const DEFAULT_FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// What ends a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terminator {
    Cr,
    Lf,
    CrLf,
    Tab,
    Byte(u8),
}

impl FromStr for Terminator {
    type Err = String;

    fn from_str(s: &str) -> Result<Terminator, String> {
        let bad =
            || format!("{s:?} is not a terminator; use cr, lf, crlf, tab, or a byte such as 0x03");
        match s.to_ascii_lowercase().as_str() {
            "cr" => Ok(Terminator::Cr),
            "lf" => Ok(Terminator::Lf),
            "crlf" => Ok(Terminator::CrLf),
            "tab" => Ok(Terminator::Tab),
            other => {
                let byte = match other.strip_prefix("0x") {
                    Some(hex) => u8::from_str_radix(hex, 16),
                    None => other.parse::<u8>(),
                };
                byte.map(Terminator::Byte).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for Terminator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Terminator::Cr => f.write_str("cr"),
            Terminator::Lf => f.write_str("lf"),
            Terminator::CrLf => f.write_str("crlf"),
            Terminator::Tab => f.write_str("tab"),
            Terminator::Byte(b) => write!(f, "0x{b:02x}"),
        }
    }
}

/// How a device frames its scans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameConfig {
    pub terminator: Terminator,
    pub max_len: usize,
    pub strip_prefix: Vec<u8>,
    pub strip_suffix: Vec<u8>,
}

impl Default for FrameConfig {
    /// CR: what most scanners send out of the box on serial and TCP.
    fn default() -> FrameConfig {
        FrameConfig {
            terminator: Terminator::Cr,
            max_len: MAX_SCAN_LEN,
            strip_prefix: Vec::new(),
            strip_suffix: Vec::new(),
        }
    }
}

/// A framed scan, or a line that was too long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Scan(Vec<u8>),
    TooLong { len: usize },
}

/// The framing state of one connection or port.
#[derive(Clone, Debug)]
pub struct Framer {
    config: FrameConfig,
    buf: Vec<u8>,
    /// Bytes of the current frame seen, kept or not.
    seen: usize,
    /// The current frame passed `max_len`: its bytes are dropped until its terminator.
    overflow: bool,
    /// CRLF: the last byte was a CR that may start the terminator.
    pending_cr: bool,
}

impl Framer {
    pub fn new(config: FrameConfig) -> Framer {
        Framer {
            buf: Vec::with_capacity(config.max_len.min(1024)),
            config,
            seen: 0,
            overflow: false,
            pending_cr: false,
        }
    }

    fn data_byte(&mut self, b: u8) {
        self.seen += 1;
        if self.overflow {
            return;
        }
        if self.buf.len() >= self.config.max_len {
            self.overflow = true;
            self.buf.clear();
            return;
        }
        self.buf.push(b);
    }

    fn end_frame(&mut self, out: &mut Vec<Frame>) {
        if self.overflow {
            out.push(Frame::TooLong { len: self.seen });
        } else {
            let mut data: &[u8] = &self.buf;
            let c = &self.config;
            if !c.strip_prefix.is_empty() && data.starts_with(&c.strip_prefix) {
                data = &data[c.strip_prefix.len()..];
            }
            if !c.strip_suffix.is_empty() && data.ends_with(&c.strip_suffix) {
                data = &data[..data.len() - c.strip_suffix.len()];
            }
            if !data.is_empty() {
                out.push(Frame::Scan(data.to_vec()));
            }
        }
        self.buf.clear();
        self.seen = 0;
        self.overflow = false;
    }

    /// Feeds bytes; complete frames are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        for &b in bytes {
            match self.config.terminator {
                Terminator::CrLf => {
                    if self.pending_cr {
                        self.pending_cr = false;
                        if b == b'\n' {
                            self.end_frame(out);
                            continue;
                        }
                        self.data_byte(b'\r');
                    }
                    if b == b'\r' {
                        self.pending_cr = true;
                    } else {
                        self.data_byte(b);
                    }
                }
                Terminator::Cr | Terminator::Lf => {
                    // Either line end ends the frame: the other one of a CRLF pair then ends
                    // an empty frame, which is dropped.
                    if b == b'\r' || b == b'\n' {
                        self.end_frame(out);
                    } else {
                        self.data_byte(b);
                    }
                }
                Terminator::Tab => {
                    if b == b'\t' {
                        self.end_frame(out);
                    } else {
                        self.data_byte(b);
                    }
                }
                Terminator::Byte(t) => {
                    if b == t {
                        self.end_frame(out);
                    } else {
                        self.data_byte(b);
                    }
                }
            }
        }
    }

    /// The stream ended: an unterminated tail is a scan too (a scanner that half-closes after
    /// its last scan).
    pub fn finish(&mut self) -> Option<Frame> {
        if self.pending_cr {
            self.pending_cr = false;
            self.data_byte(b'\r');
        }
        if self.seen == 0 {
            return None;
        }
        let mut out = Vec::new();
        self.end_frame(&mut out);
        out.pop()
    }

    /// Bytes held for the frame in progress.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a frame is in progress (bytes seen since the last terminator).
    pub fn partial(&self) -> bool {
        self.seen > 0 || self.pending_cr
    }

    /// Drops the frame in progress (it went stale); says how many bytes it had, if any.
    pub fn discard(&mut self) -> Option<usize> {
        let len = self.seen + usize::from(self.pending_cr);
        self.buf.clear();
        self.seen = 0;
        self.overflow = false;
        self.pending_cr = false;
        (len > 0).then_some(len)
    }
}

/// Reports a stale partial frame that was dropped.
pub fn report_stale<H: crate::hub::Hub>(
    hub: &H,
    device: &str,
    len: usize,
    timeout: std::time::Duration,
) {
    hub.event(
        device,
        crate::hub::DeviceEvent::Refused {
            reason: crate::hub::Refusal::StaleFrame,
            error: format!(
                "a partial scan of {len} bytes got no terminator within {} ms: dropped",
                timeout.as_millis()
            ),
        },
    );
}

/// Hands a frame to the hub: a scan is answered by it, a line that was too long is refused
/// here (and reported). Returns whether the device should hear a good beep.
pub async fn deliver<H: crate::hub::Hub>(
    hub: &H,
    device: &str,
    transport: crate::hub::Transport,
    frame: Frame,
    config: &FrameConfig,
) -> bool {
    match frame {
        Frame::Scan(data) => hub.scan(device, transport, data, None).await.good,
        Frame::TooLong { len } => {
            hub.event(
                device,
                crate::hub::DeviceEvent::Refused {
                    reason: crate::hub::Refusal::TooLong,
                    error: format!(
                        "a line of {len} bytes without terminator ({}), longer than {} bytes: dropped",
                        config.terminator, config.max_len
                    ),
                },
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(config: FrameConfig, input: &[u8]) -> Vec<Frame> {
        let mut f = Framer::new(config);
        let mut out = Vec::new();
        f.push(input, &mut out);
        out.extend(f.finish());
        out
    }

    #[test]
    fn a_discarded_partial_frame_leaves_nothing_behind() {
        let mut f = Framer::new(FrameConfig {
            terminator: Terminator::CrLf,
            ..FrameConfig::default()
        });
        let mut out = Vec::new();
        assert!(!f.partial());
        assert_eq!(f.discard(), None);
        f.push(b"0105901234\r", &mut out);
        assert!(out.is_empty() && f.partial());
        assert_eq!(f.discard(), Some(11));
        assert!(!f.partial());
        f.push(b"WH-A-01\r\n", &mut out);
        assert_eq!(out, vec![Frame::Scan(b"WH-A-01".to_vec())]);
    }

    fn scans(list: &[&str]) -> Vec<Frame> {
        list.iter()
            .map(|s| Frame::Scan(s.as_bytes().to_vec()))
            .collect()
    }

    fn with(t: Terminator) -> FrameConfig {
        FrameConfig {
            terminator: t,
            ..FrameConfig::default()
        }
    }

    #[test]
    fn each_terminator() {
        assert_eq!(
            frames(with(Terminator::Cr), b"A1\rB2\r"),
            scans(&["A1", "B2"])
        );
        assert_eq!(
            frames(with(Terminator::Cr), b"A1\r\nB2\r\n"),
            scans(&["A1", "B2"])
        );
        assert_eq!(
            frames(with(Terminator::Lf), b"A1\nB2\n"),
            scans(&["A1", "B2"])
        );
        assert_eq!(
            frames(with(Terminator::CrLf), b"A\r1\r\nB2\r\n"),
            scans(&["A\r1", "B2"])
        );
        assert_eq!(
            frames(with(Terminator::Tab), b"A1\tB2\t"),
            scans(&["A1", "B2"])
        );
        assert_eq!(
            frames(with(Terminator::Byte(3)), b"A1\x03B\x1d2\x03"),
            scans(&["A1", "B\x1d2"])
        );
    }

    #[test]
    fn prefix_and_suffix_are_stripped() {
        let c = FrameConfig {
            strip_prefix: b"]C1".to_vec(),
            strip_suffix: b"#".to_vec(),
            ..FrameConfig::default()
        };
        assert_eq!(frames(c, b"]C1ABC#\rXYZ\r"), scans(&["ABC", "XYZ"]));
    }

    #[test]
    fn a_flood_without_terminator_is_bounded_and_reported_once() {
        let mut f = Framer::new(FrameConfig::default());
        let mut out = Vec::new();
        let chunk = vec![b'9'; 64 * 1024];
        for _ in 0..16 {
            f.push(&chunk, &mut out);
            assert!(f.buffered() <= MAX_SCAN_LEN);
        }
        assert!(out.is_empty());
        f.push(b"\rOK\r", &mut out);
        assert_eq!(
            out,
            vec![
                Frame::TooLong {
                    len: 16 * 64 * 1024
                },
                Frame::Scan(b"OK".to_vec())
            ]
        );
        assert_eq!("0x03".parse(), Ok(Terminator::Byte(3)));
        assert_eq!("CRLF".parse(), Ok(Terminator::CrLf));
        assert!("nope".parse::<Terminator>().is_err());
    }

    fn terminator() -> impl Strategy<Value = Terminator> {
        prop_oneof![
            Just(Terminator::Cr),
            Just(Terminator::Lf),
            Just(Terminator::CrLf),
            Just(Terminator::Tab),
            any::<u8>().prop_map(Terminator::Byte),
        ]
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_frames(
            t in terminator(),
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let config = FrameConfig { terminator: t, max_len: 64, ..FrameConfig::default() };
            let whole = frames(config.clone(), &data);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            points.sort();
            let mut f = Framer::new(config);
            let mut out = Vec::new();
            let mut from = 0;
            for p in points {
                f.push(&data[from..p], &mut out);
                from = p;
                prop_assert!(f.buffered() <= 64);
            }
            f.push(&data[from..], &mut out);
            out.extend(f.finish());
            prop_assert_eq!(out, whole);
        }
    }
}
