//! Scanners on TCP: fixed-mount scanners that connect to the appliance (listen mode), and
//! scanners or serial-to-Ethernet converters the appliance connects to (connect mode).
//!
//! One configured device per listen address or target. A scanner that reconnects (after a
//! power cycle, or with its old connection still half-dead) replaces its previous connection.
//! Scans are framed ([`crate::frame`]) and handled one at a time: the next bytes are read only
//! after the hub answered, so a scanner that floods is slowed down by TCP itself, and memory
//! stays bounded by the framer. An idle time-out closes a connection that stopped talking (in
//! connect mode the appliance then reconnects, which also finds dead links); without one, TCP
//! keepalive probes find a peer that vanished (power lost, cable pulled) in about a minute.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::frame::{Frame, FrameConfig, Framer};
use crate::hub::{DeviceEvent, Hub};

/// How the appliance and the scanner find each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpMode {
    /// The scanner connects to this address.
    Listen(SocketAddr),
    /// The appliance connects to the scanner at `host:port`.
    Connect(String),
}

/// A scanner on TCP.
#[derive(Clone, Debug)]
pub struct TcpScanner {
    pub device: String,
    pub mode: TcpMode,
    pub frame: FrameConfig,
    pub idle_timeout: Option<Duration>,
    pub good_beep: Vec<u8>,
    pub bad_beep: Vec<u8>,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Quiet time before the first keepalive probe, and the time between probes (three are
/// missed before the link is declared dead: about a minute in all).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

fn backoff(s: &TcpScanner) -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(s.retry_min)
        .with_max_delay(s.retry_max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Serves the scanner until `cancel`. Fails only when a listen address cannot be bound.
pub async fn run_scanner<H: Hub>(
    scanner: TcpScanner,
    hub: H,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    match scanner.mode.clone() {
        TcpMode::Listen(addr) => {
            let listener = TcpListener::bind(addr).await?;
            let mut current: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(device = %scanner.device, error = %e, "accept failed");
                        tokio::time::sleep(scanner.retry_min).await;
                        continue;
                    }
                };
                // The scanner came back: its old connection is gone or going.
                if let Some((stop, task)) = current.take() {
                    stop.cancel();
                    let _ = task.await;
                }
                let stop = cancel.child_token();
                let (s, h, c) = (scanner.clone(), hub.clone(), stop.clone());
                let task = tokio::spawn(async move {
                    let error = serve(stream, peer.to_string(), &s, &h, &c).await;
                    h.event(&s.device, DeviceEvent::Disconnected { error });
                });
                current = Some((stop, task));
            }
            if let Some((stop, task)) = current {
                stop.cancel();
                let _ = task.await;
            }
            Ok(())
        }
        TcpMode::Connect(target) => {
            let mut delays = backoff(&scanner);
            let mut down_reported = false;
            loop {
                let connected = tokio::select! {
                    _ = cancel.cancelled() => break,
                    c = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.as_str())) => c,
                };
                match connected {
                    Ok(Ok(stream)) => {
                        delays = backoff(&scanner);
                        let error = serve(stream, target.clone(), &scanner, &hub, &cancel).await;
                        if cancel.is_cancelled() {
                            break;
                        }
                        hub.event(&scanner.device, DeviceEvent::Disconnected { error });
                        down_reported = true;
                    }
                    Ok(Err(e)) if !down_reported => {
                        down_reported = true;
                        hub.event(
                            &scanner.device,
                            DeviceEvent::Disconnected {
                                error: Some(format!("cannot connect to {target}: {e}")),
                            },
                        );
                    }
                    Err(_) if !down_reported => {
                        down_reported = true;
                        hub.event(
                            &scanner.device,
                            DeviceEvent::Disconnected {
                                error: Some(format!("connecting to {target} timed out")),
                            },
                        );
                    }
                    _ => {}
                }
                let delay = delays.next().unwrap_or(scanner.retry_max);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Ok(())
        }
    }
}

/// One connection: scans in, beeps out, until it closes, idles out or is replaced. Returns
/// the reason it ended (`None`: an orderly close).
async fn serve<H: Hub>(
    stream: TcpStream,
    peer: String,
    scanner: &TcpScanner,
    hub: &H,
    cancel: &CancellationToken,
) -> Option<String> {
    let _ = stream.set_nodelay(true);
    // A scanner that loses power sends no FIN: without an idle time-out only keepalive
    // probes find the dead link (after about KEEPALIVE_IDLE + 3 × KEEPALIVE_INTERVAL).
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
        tracing::warn!(device = %scanner.device, error = %e, "TCP keepalive not set");
    }
    hub.event(&scanner.device, DeviceEvent::Connected { address: peer });
    let (mut rd, mut wr) = stream.into_split();
    let mut framer = Framer::new(scanner.frame.clone());
    let mut buf = vec![0u8; 4096];
    let mut frames = Vec::new();
    let mut writable = true;
    loop {
        let read = async {
            match scanner.idle_timeout {
                Some(t) => tokio::time::timeout(t, rd.read(&mut buf)).await.ok(),
                None => Some(rd.read(&mut buf).await),
            }
        };
        let read = tokio::select! {
            _ = cancel.cancelled() => return Some("replaced or stopping".into()),
            r = read => r,
        };
        let n = match read {
            None => {
                return Some(format!(
                    "idle for {} s: closed",
                    scanner.idle_timeout.map_or(0, |t| t.as_secs())
                ));
            }
            Some(Err(e)) => return Some(e.to_string()),
            Some(Ok(0)) => {
                // Half-closed: the last scan may lack its terminator.
                if let Some(frame) = framer.finish() {
                    handle(frame, scanner, hub, &mut wr, &mut writable).await;
                }
                return None;
            }
            Some(Ok(n)) => n,
        };
        framer.push(&buf[..n], &mut frames);
        for frame in frames.drain(..) {
            handle(frame, scanner, hub, &mut wr, &mut writable).await;
        }
    }
}

async fn handle<H: Hub>(
    frame: Frame,
    scanner: &TcpScanner,
    hub: &H,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    writable: &mut bool,
) {
    let good = crate::frame::deliver(hub, &scanner.device, frame, &scanner.frame).await;
    let beep = if good {
        &scanner.good_beep
    } else {
        &scanner.bad_beep
    };
    // A scanner that does not read its socket must not stall the scans behind: a beep that
    // cannot be written in a second is dropped, and no more are tried on this connection.
    if *writable && !beep.is_empty() {
        let write = tokio::time::timeout(Duration::from_secs(1), wr.write_all(beep)).await;
        if !matches!(write, Ok(Ok(()))) {
            *writable = false;
        }
    }
}
