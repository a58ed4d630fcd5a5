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
//!
//! A listener takes connections only from its scanner's addresses when an allow-list is
//! configured ([`AllowedNet`]): a connection from elsewhere is closed at once, reported and
//! counted, and never replaces the scanner's own connection (which would hand the stranger
//! the operator's session). Without one, anybody who reaches the port is the scanner: a
//! listener is only as safe as the network it is on.
//!
//! A partial scan that gets no more bytes within the inter-character time-out is dropped
//! (see [`crate::frame`]).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::frame::{Frame, FrameConfig, Framer};
use crate::hub::{DeviceEvent, Hub, Refusal, Transport};

/// An address or a network a listener takes connections from: `10.0.0.21`, `10.0.5.0/24`,
/// `fd00:1::/64`. IPv4 peers of a dual-stack listener (`::ffff:10.0.0.21`) match IPv4 entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowedNet {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for AllowedNet {
    type Err = String;

    fn from_str(s: &str) -> Result<AllowedNet, String> {
        let bad = || {
            format!("{s:?} is not an address or network (e.g. \"10.0.0.21\" or \"10.0.5.0/24\")")
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?,
        };
        let net = AllowedNet { addr, prefix };
        // `10.0.5.7/24` is most likely a typo for one host or for `10.0.5.0/24`: say so
        // rather than guess.
        if net.masked(addr) != addr {
            return Err(format!(
                "{s:?} has host bits set; write the network (e.g. {}/{prefix}) or one address",
                net.masked(addr)
            ));
        }
        Ok(net)
    }
}

impl std::fmt::Display for AllowedNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl AllowedNet {
    /// `ip` with the bits past this network's prefix cleared.
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

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
    /// Inter-character time-out: a partial frame quiet this long is dropped
    /// ([`crate::frame::DEFAULT_FRAME_TIMEOUT`] unless configured; `None`: never).
    pub frame_timeout: Option<Duration>,
    /// Listen mode: the only peers taken (empty: any peer).
    pub allow: Vec<AllowedNet>,
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
                // A stranger is turned away before it can touch the scanner's connection.
                if !scanner.allow.is_empty() && !scanner.allow.iter().any(|n| n.contains(peer.ip()))
                {
                    drop(stream);
                    tracing::warn!(device = %scanner.device, %peer, "TCP scanner connection from an address not allowed: closed");
                    hub.event(
                        &scanner.device,
                        DeviceEvent::Refused {
                            reason: Refusal::AddressNotAllowed,
                            error: format!("connection from {peer} refused: not in allow"),
                        },
                    );
                    continue;
                }
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
    let mut last_byte = tokio::time::Instant::now();
    // Idle counts from when the connection was last served (the hub's time is not idle).
    let mut idle_from = last_byte;
    loop {
        // Wait for bytes until the idle time-out, or the inter-character time-out while a
        // frame is in progress, whichever comes first.
        let stale_at = scanner
            .frame_timeout
            .filter(|_| framer.partial())
            .map(|t| last_byte + t);
        let idle_at = scanner.idle_timeout.map(|t| idle_from + t);
        let deadline = match (stale_at, idle_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let read = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, rd.read(&mut buf)).await.ok(),
                None => Some(rd.read(&mut buf).await),
            }
        };
        let read = tokio::select! {
            _ = cancel.cancelled() => return Some("replaced or stopping".into()),
            r = read => r,
        };
        if read.is_none()
            && let (Some(at), Some(timeout)) = (stale_at, scanner.frame_timeout)
            && tokio::time::Instant::now() >= at
        {
            if let Some(len) = framer.discard() {
                tracing::warn!(device = %scanner.device, len, "stale partial scan dropped");
                crate::frame::report_stale(hub, &scanner.device, len, timeout);
            }
            if idle_at.is_none_or(|idle| tokio::time::Instant::now() < idle) {
                continue;
            }
        }
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
        last_byte = tokio::time::Instant::now();
        framer.push(&buf[..n], &mut frames);
        for frame in frames.drain(..) {
            handle(frame, scanner, hub, &mut wr, &mut writable).await;
        }
        idle_from = tokio::time::Instant::now();
    }
}

async fn handle<H: Hub>(
    frame: Frame,
    scanner: &TcpScanner,
    hub: &H,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    writable: &mut bool,
) {
    let good =
        crate::frame::deliver(hub, &scanner.device, Transport::Tcp, frame, &scanner.frame).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_nets_match_hosts_and_networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let host: AllowedNet = "10.0.0.21".parse().unwrap();
        assert!(host.contains(ip("10.0.0.21")));
        assert!(!host.contains(ip("10.0.0.22")));
        // A dual-stack listener sees IPv4 peers as mapped IPv6 addresses.
        assert!(host.contains(ip("::ffff:10.0.0.21")));
        let net: AllowedNet = "10.0.5.0/24".parse().unwrap();
        assert!(net.contains(ip("10.0.5.200")));
        assert!(!net.contains(ip("10.0.6.1")));
        assert!(!net.contains(ip("fd00::1")));
        let v6: AllowedNet = "fd00:1::/64".parse().unwrap();
        assert!(v6.contains(ip("fd00:1::9")));
        assert!(!v6.contains(ip("fd00:2::9")));
        let any: AllowedNet = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("192.168.1.1")));
        for bad in [
            "10.0.0",
            "10.0.5.7/24",
            "10.0.0.0/33",
            "host.lan",
            "",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<AllowedNet>().is_err(), "{bad}");
        }
    }
}
