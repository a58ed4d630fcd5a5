//! Raw scan input, as any transport delivers it (HTTP body, serial line, TCP frame, MQTT
//! payload), checked before anything tries to understand it.
//!
//! A scan is short printable text, optionally with GS1 group separators (0x1D) between
//! element strings. Everything else is refused here with a precise reason, so no transport
//! has to repeat the checks and nothing downstream sees control bytes or invalid UTF-8.

use std::fmt;

/// Longest scan accepted. GS1 DataMatrix carries at most ~2,300 characters; real warehouse
/// labels stay far below. Anything longer is a flood or a stuck trigger.
pub const MAX_SCAN_LEN: usize = 512;

/// ASCII group separator (GS1 FNC1 in data).
pub const GS: u8 = 0x1d;

/// Why a scan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("empty scan")]
    Empty,
    #[error("scan is {len} bytes long, at most {MAX_SCAN_LEN} are accepted")]
    TooLong { len: usize },
    #[error("scan is not valid UTF-8 (at byte {position})")]
    NotUtf8 { position: usize },
    #[error("control byte 0x{byte:02x} at position {position}")]
    ControlByte { byte: u8, position: usize },
}

/// A scan that passed the basic checks: non-empty, bounded, UTF-8, no control bytes other
/// than the group separator. Trailing CR/LF/TAB terminators are removed.
#[derive(Clone, PartialEq, Eq)]
pub struct RawScan(String);

impl RawScan {
    /// Checks bytes from a device.
    pub fn parse(bytes: &[u8]) -> Result<RawScan, ScanError> {
        let mut end = bytes.len();
        while end > 0 && matches!(bytes[end - 1], b'\r' | b'\n' | b'\t') {
            end -= 1;
        }
        let bytes = &bytes[..end];
        if bytes.is_empty() {
            return Err(ScanError::Empty);
        }
        if bytes.len() > MAX_SCAN_LEN {
            return Err(ScanError::TooLong { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| ScanError::NotUtf8 {
            position: e.valid_up_to(),
        })?;
        if let Some((position, byte)) = bytes
            .iter()
            .copied()
            .enumerate()
            .find(|&(_, b)| (b < 0x20 && b != GS) || b == 0x7f)
        {
            return Err(ScanError::ControlByte { byte, position });
        }
        Ok(RawScan(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Show separators visibly in logs.
        write!(f, "RawScan({:?})", self.0.replace(GS as char, "<GS>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_gs1_scans_and_strips_terminators() {
        let cases: &[(&[u8], &str)] = &[
            (b"5901234123457", "5901234123457"),
            (b"WH-A-01-01\r\n", "WH-A-01-01"),
            (
                b"]C10109501234543213\x1d10LOT7\t",
                "]C10109501234543213\x1d10LOT7",
            ),
            ("Élan".as_bytes(), "Élan"),
        ];
        for (input, expected) in cases {
            assert_eq!(RawScan::parse(input).unwrap().as_str(), *expected);
        }
    }

    #[test]
    fn refuses_hostile_input_precisely() {
        let long = vec![b'1'; MAX_SCAN_LEN + 1];
        let cases: &[(&[u8], ScanError)] = &[
            (b"", ScanError::Empty),
            (b"\r\n", ScanError::Empty),
            (
                &long,
                ScanError::TooLong {
                    len: MAX_SCAN_LEN + 1,
                },
            ),
            (b"AB\xff", ScanError::NotUtf8 { position: 2 }),
            (
                b"A\x00B",
                ScanError::ControlByte {
                    byte: 0,
                    position: 1,
                },
            ),
            (
                b"^XA\x1b",
                ScanError::ControlByte {
                    byte: 0x1b,
                    position: 3,
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(RawScan::parse(input).unwrap_err(), *expected, "{input:?}");
        }
    }
}
