//! TCP scanners in both modes, on loopback: scans and beeps, a reconnect that replaces the old
//! connection, a flood, a 1 MB line, a half-close, an idle time-out, and a scanner the
//! appliance connects to going away and coming back.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use holdfast_devices::frame::FrameConfig;
use holdfast_devices::tcp::{TcpMode, TcpScanner, run_scanner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

mod support;
use support::{TestHub, eventually, free_addr};

fn scanner(mode: TcpMode, idle: Option<Duration>) -> TcpScanner {
    TcpScanner {
        device: "tcp-1".into(),
        mode,
        frame: FrameConfig::default(),
        idle_timeout: idle,
        frame_timeout: None,
        allow: vec![],
        good_beep: vec![0x06],
        bad_beep: vec![0x15],
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
    }
}

enum Mode {
    Listen,
    Connect,
}

/// A TCP scanner link on a free loopback address, served until the token is cancelled.
fn start(
    mode: Mode,
    idle: Option<Duration>,
) -> (
    SocketAddr,
    TestHub,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let addr = free_addr();
    let mode = match mode {
        Mode::Listen => TcpMode::Listen(addr),
        Mode::Connect => TcpMode::Connect(addr.to_string()),
    };
    let hub = TestHub::default();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_scanner(
        scanner(mode, idle),
        hub.clone(),
        cancel.clone(),
    ));
    (addr, hub, cancel, task)
}

async fn connect(addr: SocketAddr) -> TcpStream {
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("cannot connect to {addr}");
}

async fn beeps(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_mode_scans_beeps_and_a_reconnect_replaces_the_old_connection() {
    let (addr, hub, cancel, task) = start(Mode::Listen, None);
    let mut first = connect(addr).await;
    first.write_all(b"A1\rBAD\r").await.unwrap();
    assert_eq!(beeps(&mut first, 2).await, vec![0x06, 0x15]);
    // The scanner power-cycles and connects again: the new connection is served, the old one closed.
    let mut second = connect(addr).await;
    second.write_all(b"A2\r").await.unwrap();
    assert_eq!(beeps(&mut second, 1).await, vec![0x06]);
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "old connection closed");
    assert_eq!(
        hub.data(),
        vec![b"A1".to_vec(), b"BAD".to_vec(), b"A2".to_vec()]
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_served_in_order_and_a_1mb_line_is_refused_once() {
    let (addr, hub, cancel, task) = start(Mode::Listen, None);
    let s = connect(addr).await;
    let (mut rd, mut wr) = s.into_split();
    // The scanner reads its beeps on the side, as a device would.
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        let mut b = [0u8; 4096];
        loop {
            match rd.read(&mut b).await {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&b[..n]),
            }
        }
    });
    let n = 20_000;
    let mut flood = Vec::new();
    for i in 0..n {
        flood.extend_from_slice(format!("S{i}\r").as_bytes());
    }
    wr.write_all(&flood).await.unwrap();
    // A megabyte without a terminator, then a good scan.
    wr.write_all(&vec![b'x'; 1 << 20]).await.unwrap();
    wr.write_all(b"\rLAST\r").await.unwrap();
    let h = hub.clone();
    eventually("all scans", || h.data().len() == n + 1).await;
    let data = hub.data();
    assert!(
        data[..n]
            .iter()
            .enumerate()
            .all(|(i, d)| *d == format!("S{i}").into_bytes()),
        "in order"
    );
    assert_eq!(data[n], b"LAST");
    assert_eq!(hub.refusals(), 1, "the 1 MB line, once");
    wr.shutdown().await.unwrap();
    let heard = reader.await.unwrap();
    assert_eq!(
        heard.len(),
        n + 2,
        "a beep per scan and one for the refused line"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_delivers_the_last_scan_and_idle_connections_are_closed() {
    let (addr, hub, cancel, task) = start(Mode::Listen, Some(Duration::from_millis(300)));
    let mut s = connect(addr).await;
    // No terminator, then the write side closed: the tail is a scan, and its beep still comes.
    s.write_all(b"TAIL").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(beeps(&mut s, 1).await, vec![0x06]);
    assert_eq!(hub.data(), vec![b"TAIL".to_vec()]);
    // A connection that says nothing is closed after the idle time-out.
    let mut idle = connect(addr).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "idle connection closed by the appliance");
    let h = hub.clone();
    eventually("idle reported", || {
        h.events.lock().unwrap().iter().any(|(_, e)| {
            matches!(e, holdfast_devices::hub::DeviceEvent::Disconnected { error: Some(m) } if m.contains("idle"))
        })
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_mode_reconnects_when_the_scanner_comes_back() {
    // The appliance starts first: the scanner is not there yet (one report, then retries).
    let (addr, hub, cancel, task) = start(Mode::Connect, None);
    let h = hub.clone();
    eventually("the outage reported", || h.disconnects() >= 1).await;
    // Retries go on every 20-200 ms; the outage stays one report.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.disconnects(), 1, "an outage is reported once");
    // The scanner (a serial-to-Ethernet box) appears.
    let listener = TcpListener::bind(addr).await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    s.write_all(b"ONE\r").await.unwrap();
    assert_eq!(beeps(&mut s, 1).await, vec![0x06]);
    // It reboots: the connection drops, the appliance connects again.
    drop(s);
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    s.write_all(b"TWO\r").await.unwrap();
    assert_eq!(beeps(&mut s, 1).await, vec![0x06]);
    assert_eq!(hub.data(), vec![b"ONE".to_vec(), b"TWO".to_vec()]);
    assert_eq!(hub.connects(), 2);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// The kernel's timer on a loopback TCP socket from `local` to `remote` (`/proc/net/tcp`
/// column `tr`: 0 none, 1 retransmit, 2 keepalive, ...).
fn tcp_timer(local: SocketAddr, remote: SocketAddr) -> Option<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let matches = f.len() > 5
            && port(f[1]) == Some(local.port())
            && port(f[2]) == Some(remote.port())
            && f[3] == "01";
        matches
            .then(|| u8::from_str_radix(f[5].split(':').next()?, 16).ok())
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanner_connection_without_idle_time_out_is_watched_by_keepalive() {
    let (addr, _hub, cancel, task) = start(Mode::Listen, None);
    let mut s = connect(addr).await;
    s.write_all(b"K1\r").await.unwrap();
    assert_eq!(beeps(&mut s, 1).await, vec![0x06]);
    // The appliance's end of the connection (local = the listen port) has its keepalive
    // timer armed: a scanner that loses power is found without any traffic.
    let ours = tcp_timer(addr, s.local_addr().unwrap());
    assert_eq!(ours, Some(2), "keepalive timer on the appliance's socket");
    // The scanner's end has no keepalive: the check tells them apart.
    assert_eq!(tcp_timer(s.local_addr().unwrap(), addr), Some(0));
    cancel.cancel();
    task.await.unwrap().unwrap();
}

/// Connects to `addr` from the loopback address `from` (Linux routes all of 127/8 to lo).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_turned_away_and_never_replaces_the_scanner() {
    use holdfast_devices::hub::{DeviceEvent, Refusal};
    let addr = free_addr();
    let mut s = scanner(TcpMode::Listen(addr), None);
    s.allow = vec!["127.0.0.1".parse().unwrap(), "10.0.5.0/24".parse().unwrap()];
    let hub = TestHub::default();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_scanner(s, hub.clone(), cancel.clone()));
    let mut real = connect(addr).await;
    real.write_all(b"OP-ALICE\r").await.unwrap();
    assert_eq!(beeps(&mut real, 1).await, vec![0x06]);

    // Someone else on the network connects and scans: closed at once, counted, and the
    // scanner's own connection goes on as before.
    let mut stranger = connect_from("127.0.0.2", addr).await;
    let _ = stranger.write_all(b"HF:LOGOUT\r").await;
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(5), stranger.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert!(rest.is_empty(), "the stranger heard a beep");
    eventually("the stranger counted", || {
        hub.count(|e| {
            matches!(
                e,
                DeviceEvent::Refused {
                    reason: Refusal::AddressNotAllowed,
                    ..
                }
            )
        }) == 1
    })
    .await;
    real.write_all(b"WH-A-01\r").await.unwrap();
    assert_eq!(beeps(&mut real, 1).await, vec![0x06]);
    assert_eq!(hub.data(), vec![b"OP-ALICE".to_vec(), b"WH-A-01".to_vec()]);
    assert_eq!(
        hub.connects(),
        1,
        "the scanner's connection was never replaced"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_partial_scan_is_dropped_on_tcp() {
    use holdfast_devices::hub::{DeviceEvent, Refusal};
    let addr = free_addr();
    let mut s = scanner(TcpMode::Listen(addr), Some(Duration::from_secs(30)));
    s.frame_timeout = Some(Duration::from_millis(200));
    let hub = TestHub::default();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_scanner(s, hub.clone(), cancel.clone()));
    let mut c = connect(addr).await;
    c.write_all(b"0105901234").await.unwrap();
    eventually("the stale part dropped", || {
        hub.count(|e| {
            matches!(
                e,
                DeviceEvent::Refused {
                    reason: Refusal::StaleFrame,
                    ..
                }
            )
        }) == 1
    })
    .await;
    c.write_all(b"WH-").await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    c.write_all(b"A-01\r").await.unwrap();
    assert_eq!(beeps(&mut c, 1).await, vec![0x06]);
    assert_eq!(hub.data(), vec![b"WH-A-01".to_vec()]);
    assert_eq!(hub.disconnects(), 0, "the connection stays up");
    cancel.cancel();
    task.await.unwrap().unwrap();
}
