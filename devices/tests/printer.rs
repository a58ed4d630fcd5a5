//! Printer I/O against fake Zebra printers on loopback: status and labels, a printer that
//! never answers, one that resets mid-job, a slow one, one that sends its status in pieces,
//! one that is not there, one out of paper.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use holdfast_devices::printer::{
    FakeBehaviour, FakePrinter, HostStatus, PrintError, PrinterAddress, SendError, query_status,
    send,
};

async fn fake(behaviour: FakeBehaviour) -> (FakePrinter, PrinterAddress) {
    let p = FakePrinter::start("127.0.0.1:0".parse().unwrap(), behaviour)
        .await
        .unwrap();
    let a = PrinterAddress::Tcp(p.addr().to_string());
    (p, a)
}

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_label_arrives_byte_exact_and_status_is_read() {
    let (p, a) = fake(FakeBehaviour::Normal).await;
    assert!(query_status(&a, T).await.unwrap().ready());
    let label = "^XA^CI28^FO10,10^A0N,30,30^FH_^FDCaf\u{e9} _5E^FS^XZ";
    send(&a, label.as_bytes(), T).await.unwrap();
    send(&a, b"^XA^FDtwo^FS^XZ", T).await.unwrap();
    assert_eq!(
        p.labels(),
        vec![label.to_owned(), "^XA^FDtwo^FS^XZ".to_owned()]
    );
    p.set_status(HostStatus {
        paper_out: true,
        ..Default::default()
    });
    let s = query_status(&a, T).await.unwrap();
    assert_eq!(s.faults(), vec!["paper_out"]);
}

#[tokio::test]
async fn a_status_answer_in_many_segments_is_read_whole() {
    // 5 bytes every 15 ms: the ~100-byte answer arrives in about 20 reads.
    let (p, a) = fake(FakeBehaviour::Trickle(Duration::from_millis(15))).await;
    p.set_status(HostStatus {
        paused: true,
        head_open: true,
        labels_remaining: 12,
        ..Default::default()
    });
    let s = query_status(&a, T).await.unwrap();
    assert_eq!(s.faults(), vec!["paused", "head_open"]);
    assert_eq!(s.labels_remaining, 12);
    // Cut short by the time-out halfway through, it is no answer, not a half-read status.
    let e = query_status(&a, Duration::from_millis(150))
        .await
        .unwrap_err();
    assert_eq!(e, PrintError::NoAnswer);
}

#[tokio::test]
async fn a_mute_printer_is_a_fault_not_ready() {
    let (p, a) = fake(FakeBehaviour::Silent).await;
    let t = Instant::now();
    let e = query_status(&a, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(e, PrintError::NoAnswer);
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(p);
}

#[tokio::test]
async fn a_reset_mid_job_is_ambiguous_and_nothing_printed() {
    let (p, a) = fake(FakeBehaviour::ResetMidJob).await;
    let big = format!("^XA^FO1,1^FH_^FD{}^FS^XZ", "x".repeat(1 << 20));
    match send(&a, big.as_bytes(), T).await {
        Err(SendError::Ambiguous { written, .. }) => assert!(written > 0),
        other => panic!("expected ambiguous, got {other:?}"),
    }
    // A small job is cut off too: the reset comes after the bytes left.
    assert!(matches!(
        send(&a, b"^XA^FDsmall^FS^XZ", T).await,
        Err(SendError::Ambiguous { .. })
    ));
    assert!(p.labels().is_empty());
}

#[tokio::test]
async fn a_slow_printer_answers_within_a_longer_time_out() {
    let (p, a) = fake(FakeBehaviour::Slow(Duration::from_millis(200))).await;
    assert_eq!(
        query_status(&a, Duration::from_millis(100))
            .await
            .unwrap_err(),
        PrintError::NoAnswer
    );
    assert!(query_status(&a, T).await.unwrap().ready());
    send(&a, b"^XA^FDslow^FS^XZ", T).await.unwrap();
    assert_eq!(p.labels().len(), 1);
}

#[tokio::test]
async fn nobody_listening_is_not_sent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = PrinterAddress::Tcp(port.to_string());
    assert!(matches!(
        send(&a, b"^XA^XZ", T).await,
        Err(SendError::NotSent(_))
    ));
    assert!(matches!(
        query_status(&a, T).await,
        Err(PrintError::Connect(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_printer_answers_status_and_takes_labels() {
    use std::io::{Read, Write};
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
    ))
    .unwrap();
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let a = PrinterAddress::Serial(holdfast_devices::serial::SerialSettings::new(slave));
    // The printer side: answers ~HS, collects the rest.
    let printer = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut b = [0u8; 256];
        while !String::from_utf8_lossy(&got).contains("^XZ") {
            // Between exchanges nobody holds the port open: the master reads EIO then.
            let n = match master.read(&mut b) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(5) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            got.extend_from_slice(&b[..n]);
            if String::from_utf8_lossy(&got).ends_with("~HS") {
                master.write_all(&HostStatus::default().encode()).unwrap();
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    assert!(query_status(&a, T).await.unwrap().ready());
    send(&a, b"^XA^FDserial^FS^XZ", T).await.unwrap();
    let got = tokio::task::spawn_blocking(move || printer.join().unwrap())
        .await
        .unwrap();
    assert_eq!(got, "~HS^XA^FDserial^FS^XZ");
}
