//! The demo's warehouse LAN: a serial scanner on a pseudo-terminal, an MQTT broker with an
//! MQTT scanner, and a label printer — all real transports, played by the demo process, so a
//! new user can run a pick from "scanners" and get labels without any hardware.
//!
//! - The serial scanner's port is the slave side of a pseudo-terminal (linked at
//!   `<data dir>/scanner-tty`); the appliance opens it like a USB scanner. The demo holds the
//!   master side: `holdfast demo-scan --via serial CODE` writes `CODE\r` into it, and the
//!   appliance's beep bytes come back (ACK for good, NAK for bad).
//! - The MQTT broker runs in this process (rumqttd, loopback only: it has no logins, so
//!   [`start_broker`] refuses any other address); `holdfast demo-scan --via mqtt CODE`
//!   publishes the scan as scanner `demo-mqtt`, the one MQTT id the demo serves, and waits for
//!   its reply. A build without the `demo-broker` feature (site images) has no broker and no
//!   MQTT scanner.
//! - The printer is a fake Zebra on loopback that answers `~HS` and writes every label it
//!   receives to `<data dir>/labels/NNNNNN.zpl`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use holdfast_devices::mqtt::ScannerClient;
use holdfast_devices::printer::{FakeBehaviour, FakePrinter};
use serde_json::{Value, json};

/// The demo's scanner ids.
pub const SERIAL_SCANNER: &str = "demo-serial";
pub const MQTT_SCANNER: &str = "demo-mqtt";
pub const PRINTER: &str = "demo-printer";
/// Beep bytes the demo's serial scanner is configured with.
const GOOD: u8 = 0x06;
const BAD: u8 = 0x15;

/// A free loopback port (bound and released; the broker binds it right after).
#[cfg(feature = "demo-broker")]
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts an MQTT broker on `addr` in its own thread (it runs until the process exits).
/// Loopback addresses only: the demo's broker takes anyone, so it must not be on the LAN.
#[cfg(feature = "demo-broker")]
pub fn start_broker(addr: SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the demo MQTT broker listens on loopback only (it has no logins), not on {addr}"
    );
    let config: rumqttd::Config = serde_json::from_value(json!({
        "id": 0,
        "router": {
            "id": 0,
            "max_connections": 1000,
            "max_outgoing_packet_count": 200,
            "max_segment_size": 10_485_760,
            "max_segment_count": 10,
        },
        "v4": {"1": {
            "name": "v4-1",
            "listen": addr.to_string(),
            "next_connection_delay_ms": 1,
            "connections": {
                "connection_timeout_ms": 60000,
                "max_payload_size": 20480,
                "max_inflight_count": 100,
                "dynamic_filters": true,
            },
        }},
    }))
    .context("broker config")?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "demo MQTT broker stopped");
            }
        })
        .context("starting the demo MQTT broker")?;
    Ok(())
}

/// The demo's broker and its MQTT scanner.
#[cfg(feature = "demo-broker")]
async fn start_mqtt() -> anyhow::Result<Option<(SocketAddr, ScannerClient)>> {
    let broker: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    start_broker(broker)?;
    let scanner = ScannerClient::connect(
        "127.0.0.1",
        broker.port(),
        "demo-mqtt-scanner",
        &format!("holdfast/demo/scanner/{MQTT_SCANNER}/scan"),
        &format!("holdfast/demo/scanner/{MQTT_SCANNER}/reply"),
        Duration::from_secs(10),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    Ok(Some((broker, scanner)))
}

/// Without the `demo-broker` feature the demo has no MQTT scanner.
#[cfg(not(feature = "demo-broker"))]
async fn start_mqtt() -> anyhow::Result<Option<(SocketAddr, ScannerClient)>> {
    tracing::info!("built without the demo-broker feature: the demo has no MQTT scanner");
    Ok(None)
}

/// The demo's devices.
pub struct DemoLan {
    printer: FakePrinter,
    scanner_path: PathBuf,
    /// Master side of the serial scanner's pseudo-terminal.
    tty: Mutex<Box<dyn serialport::SerialPort>>,
    /// The broker and the MQTT scanner on it (none in a build without `demo-broker`).
    mqtt: Option<(SocketAddr, ScannerClient)>,
}

impl std::fmt::Debug for DemoLan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoLan")
            .field("printer", &self.printer.addr())
            .field("broker", &self.mqtt.as_ref().map(|(addr, _)| addr))
            .field("scanner_path", &self.scanner_path)
            .finish()
    }
}

impl DemoLan {
    /// Starts the printer, the broker and the scanner's pseudo-terminal.
    pub async fn start(dir: &Path) -> anyhow::Result<DemoLan> {
        let labels = dir.join("labels");
        std::fs::create_dir_all(&labels)
            .with_context(|| format!("cannot create {}", labels.display()))?;
        let printer = FakePrinter::start("127.0.0.1:0".parse()?, FakeBehaviour::Normal)
            .await
            .context("starting the demo printer")?
            .with_save_dir(labels);
        let (master, slave) =
            serialport::TTYPort::pair().context("creating the demo scanner's pseudo-terminal")?;
        let slave_name =
            serialport::SerialPort::name(&slave).context("the pseudo-terminal has no name")?;
        // The appliance opens the port by path, as it would a USB scanner.
        drop(slave);
        let scanner_path = dir.join("scanner-tty");
        let _ = std::fs::remove_file(&scanner_path);
        std::os::unix::fs::symlink(&slave_name, &scanner_path)
            .with_context(|| format!("cannot link {}", scanner_path.display()))?;
        let mqtt = start_mqtt().await?;
        Ok(DemoLan {
            printer,
            scanner_path,
            tty: Mutex::new(Box::new(master)),
            mqtt,
        })
    }

    /// The config sections of the demo's devices.
    pub fn config(&self) -> String {
        // The MQTT scanner, and the telemetry central ops would watch (`holdfast fleet`),
        // both on the demo's broker.
        let mqtt = match &self.mqtt {
            Some((broker, _)) => format!(
                "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"holdfast-demo\"\ndevices = [\"{MQTT_SCANNER}\"]\n\n\
                 [telemetry]\ninterval_secs = 15\n\n\
                 [telemetry.mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"holdfast-demo-telemetry\"\nretry_max_secs = 5\n\n",
                port = broker.port()
            ),
            None => String::new(),
        };
        format!(
            "[[scanners]]\nid = \"{SERIAL_SCANNER}\"\ntransport = \"serial\"\npath = \"{}\"\nbaud = 9600\nterminator = \"cr\"\ngood_beep = \"{GOOD:02x}\"\nbad_beep = \"{BAD:02x}\"\nprinter = \"{PRINTER}\"\n\n\
             {mqtt}[[printers]]\nid = \"{PRINTER}\"\ntransport = \"tcp\"\naddress = \"{}\"\ndpi = 203\nwidth_mm = 100\nheight_mm = 60\npoll_secs = 2\n\n\
             [printing]\ndefault_printer = \"{PRINTER}\"\nreceive_labels = true\ngs1_company_prefix = \"5901230\"\n",
            self.scanner_path.display(),
            self.printer.addr(),
        )
    }

    /// Where the demo's MQTT broker listens, if this build has one.
    pub fn broker(&self) -> Option<SocketAddr> {
        self.mqtt.as_ref().map(|(addr, _)| *addr)
    }

    /// Where labels are written.
    pub fn printer(&self) -> &FakePrinter {
        &self.printer
    }

    /// Plays a scan on a scanner and says what the scanner heard back.
    pub async fn scan(&self, via: &str, scan: &str) -> anyhow::Result<Value> {
        match via {
            "serial" => {
                let beep = self.serial_scan(scan.as_bytes()).await?;
                Ok(json!({
                    "via": "serial",
                    "device": SERIAL_SCANNER,
                    "ok": beep == Some(GOOD),
                    "beep": match beep { Some(GOOD) => "good", Some(BAD) => "bad", Some(_) => "other", None => "none" },
                }))
            }
            "mqtt" => {
                let Some((_, scanner)) = &self.mqtt else {
                    anyhow::bail!(
                        "this build has no demo MQTT broker (built without the demo-broker feature)"
                    );
                };
                let mut reply = scanner
                    .scan(scan, Duration::from_secs(10))
                    .await
                    .map_err(anyhow::Error::msg)?;
                reply["via"] = json!("mqtt");
                reply["device"] = json!(MQTT_SCANNER);
                Ok(reply)
            }
            other => anyhow::bail!("via {other:?} is not one of: serial, mqtt"),
        }
    }

    /// Writes `scan\r` into the pseudo-terminal and waits for the beep byte.
    async fn serial_scan(&self, scan: &[u8]) -> anyhow::Result<Option<u8>> {
        let mut frame = scan.to_vec();
        frame.push(b'\r');
        let tty = &self.tty;
        tokio::task::block_in_place(|| {
            let mut tty = tty.lock().unwrap_or_else(|e| e.into_inner());
            // Forget beeps of earlier scans nobody waited for.
            let _ = tty.clear(serialport::ClearBuffer::Input);
            tty.write_all(&frame)
                .context("writing to the scanner's port")?;
            tty.set_timeout(Duration::from_secs(5))?;
            let mut byte = [0u8; 1];
            match tty.read(&mut byte) {
                Ok(1) => Ok(Some(byte[0])),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(None),
                Err(e) => Err(anyhow::Error::new(e).context("reading the scanner's beep")),
            }
        })
    }
}

#[cfg(all(test, feature = "demo-broker"))]
mod tests {
    use super::*;

    /// A non-loopback address of this machine, if it has one (found by asking the kernel
    /// which source address a datagram to a LAN address would use; nothing is sent).
    fn lan_ip() -> Option<std::net::IpAddr> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect("10.255.255.1:9").ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_broker_is_on_loopback_only() {
        assert!(start_broker("0.0.0.0:1883".parse().unwrap()).is_err());
        assert!(start_broker("[::]:1883".parse().unwrap()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let lan = DemoLan::start(dir.path()).await.unwrap();
        let broker = lan.broker().unwrap();
        assert!(broker.ip().is_loopback(), "{broker}");
        // From the LAN side of this machine the port is closed.
        if let Some(ip) = lan_ip() {
            let outside = SocketAddr::new(ip, broker.port());
            assert!(
                std::net::TcpStream::connect_timeout(&outside, Duration::from_secs(2)).is_err(),
                "the demo broker answers on {outside}"
            );
        }
        assert!(
            lan.config()
                .contains(&format!("devices = [\"{MQTT_SCANNER}\"]"))
        );
    }
}
