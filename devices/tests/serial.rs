//! Serial scanners through pseudo-terminal pairs (`openpty`): the appliance's serial thread
//! opens the slave by path (a symlink, like `/dev/serial/by-id/...`), the test plays the
//! scanner on the master. Each terminator, GS1 data with 0x1D, beeps, garbage, an over-long
//! line, and unplug/replug (the master closed, a new pty behind the same path).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use holdfast_devices::frame::{FrameConfig, Terminator};
use holdfast_devices::serial::{SerialScanner, SerialSettings, spawn_scanner};
use tokio_util::sync::CancellationToken;

mod support;
use support::{TestHub, eventually};

/// A pty pair; the slave's path linked at `link`. Returns the master as a file.
fn plug(link: &Path) -> std::fs::File {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
    ))
    .unwrap();
    // The appliance opens the slave itself; the test keeps only the master.
    drop::<OwnedFd>(pty.slave);
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(slave, link).unwrap();
    std::fs::File::from(pty.master)
}

fn scanner(path: PathBuf, terminator: Terminator) -> SerialScanner {
    SerialScanner {
        device: "ser-1".into(),
        settings: SerialSettings::new(path),
        frame: FrameConfig {
            terminator,
            ..FrameConfig::default()
        },
        good_beep: vec![0x06],
        bad_beep: vec![0x15],
        frame_timeout: None,
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
    }
}

/// Reads one beep byte from the master (blocking, on a helper thread).
async fn beep(master: &std::fs::File) -> u8 {
    let mut m = master.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut b = [0u8; 1];
        m.read_exact(&mut b).unwrap();
        b[0]
    })
    .await
    .unwrap()
}

async fn start(
    hub: &TestHub,
    s: SerialScanner,
) -> (CancellationToken, std::thread::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let t = spawn_scanner(
        s,
        hub.clone(),
        tokio::runtime::Handle::current(),
        cancel.clone(),
    )
    .unwrap();
    (cancel, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_terminator_frames_scans_and_beeps() {
    let dir = tempfile::tempdir().unwrap();
    for (t, end) in [
        (Terminator::Cr, &b"\r"[..]),
        (Terminator::Lf, b"\n"),
        (Terminator::CrLf, b"\r\n"),
        (Terminator::Tab, b"\t"),
        (Terminator::Byte(0x03), b"\x03"),
    ] {
        let link = dir.path().join(format!("scanner-{t}"));
        let mut master = plug(&link);
        let hub = TestHub::default();
        let (cancel, thread) = start(&hub, scanner(link, t)).await;
        eventually("port open", || hub.connects() == 1).await;
        // A GS1 scan with a real group separator, then a refused one.
        let mut bytes = b"]C10105901234123457\x1d10LOT-1".to_vec();
        bytes.extend_from_slice(end);
        bytes.extend_from_slice(b"BAD");
        bytes.extend_from_slice(end);
        master.write_all(&bytes).unwrap();
        assert_eq!(beep(&master).await, 0x06, "{t}");
        assert_eq!(beep(&master).await, 0x15, "{t}");
        assert_eq!(
            hub.data(),
            vec![b"]C10105901234123457\x1d10LOT-1".to_vec(), b"BAD".to_vec()],
            "{t}"
        );
        cancel.cancel();
        thread.join().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_long_lines_do_not_stop_the_scanner() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scanner");
    let mut master = plug(&link);
    let hub = TestHub::default();
    let (cancel, thread) = start(&hub, scanner(link, Terminator::Cr)).await;
    eventually("port open", || hub.connects() == 1).await;
    // Invalid UTF-8 and control bytes are the hub's to refuse (it gets the bytes as sent);
    // a 2 KB line never reaches it.
    master.write_all(b"\xff\xfe\x00\x1b[2J\r").unwrap();
    assert_eq!(beep(&master).await, 0x06);
    let long = vec![b'7'; 2048];
    master.write_all(&long).unwrap();
    master.write_all(b"\rOK-1\r").unwrap();
    assert_eq!(beep(&master).await, 0x15, "the long line is refused");
    assert_eq!(beep(&master).await, 0x06);
    assert_eq!(
        hub.data(),
        vec![b"\xff\xfe\x00\x1b[2J".to_vec(), b"OK-1".to_vec()]
    );
    assert_eq!(hub.refusals(), 1);
    cancel.cancel();
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_scanner_is_found_again_when_replugged() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("by-id-scanner");
    let mut master = plug(&link);
    let hub = TestHub::default();
    let (cancel, thread) = start(&hub, scanner(link.clone(), Terminator::Cr)).await;
    eventually("port open", || hub.connects() == 1).await;
    master.write_all(b"BEFORE\r").unwrap();
    assert_eq!(beep(&master).await, 0x06);
    // Unplug: the device side goes away, and its path with it.
    drop(master);
    std::fs::remove_file(&link).unwrap();
    eventually("unplug noticed", || hub.disconnects() >= 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Replug (another pty behind the same by-id path).
    let mut master = plug(&link);
    eventually("port reopened", || hub.connects() == 2).await;
    master.write_all(b"AFTER\r").unwrap();
    assert_eq!(beep(&master).await, 0x06);
    assert_eq!(hub.data(), vec![b"BEFORE".to_vec(), b"AFTER".to_vec()]);
    // While unplugged the failed reopens were reported once, not once per retry.
    assert!(hub.disconnects() <= 2, "{}", hub.disconnects());
    cancel.cancel();
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_partial_scan_is_dropped_and_never_sticks_to_the_next() {
    use holdfast_devices::hub::{DeviceEvent, Refusal};
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scanner-stale");
    let mut master = plug(&link);
    let hub = TestHub::default();
    let mut s = scanner(link, Terminator::Cr);
    s.frame_timeout = Some(Duration::from_millis(300));
    let (cancel, thread) = start(&hub, s).await;
    eventually("port open", || hub.connects() == 1).await;

    // A scan cut short (the scanner reset mid-frame), then, a person's while later, a scan.
    master.write_all(b"0105901234").unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    master.write_all(b"WH-A-01\r").unwrap();
    assert_eq!(beep(&master).await, 0x06);
    // A scan whose bytes come in pieces well inside the time-out is one scan.
    master.write_all(b"WH-").unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    master.write_all(b"B-02\r").unwrap();
    assert_eq!(beep(&master).await, 0x06);
    assert_eq!(hub.data(), vec![b"WH-A-01".to_vec(), b"WH-B-02".to_vec()]);
    assert_eq!(
        hub.count(|e| matches!(
            e,
            DeviceEvent::Refused {
                reason: Refusal::StaleFrame,
                ..
            }
        )),
        1
    );
    cancel.cancel();
    thread.join().unwrap();
}
