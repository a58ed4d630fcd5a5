//! Serial ports: settings as the config names them, and opening a port with them.
//!
//! Scanners and printers on RS-232 or USB-CDC share this. Paths are named in the config
//! (prefer `/dev/serial/by-id/...`, which survives re-plugging into another USB port); no
//! udev enumeration is needed.

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
