//! Devices on the LAN against the demo warehouse, with real parts: an MQTT broker in this
//! process (rumqttd), a serial scanner on a pseudo-terminal, fake Zebra printers on loopback
//! TCP, the real store and floor. Scanners run whole workflows; the print spool survives
//! restarts, never prints twice on its own after an interrupted send, and notices a mute
//! printer.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use holdfast::config::{Config, RawConfig};
use holdfast::floor::Floor;
use holdfast::printing::Printing;
use holdfast::registry::Registry;
use holdfast::scanners::ScanHub;
use holdfast::store::{DeviceCmd, JournalFilter, PrintJobFilter, Store, StoreOptions};
use holdfast::workflow::FloorPolicy;
use holdfast_devices::label::Label;
use holdfast_devices::mqtt::ScannerClient;
use holdfast_devices::printer::{FakeBehaviour, FakePrinter};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const P37: &str = "5901230000363";
const P4: &str = "5901230000035";
const P11: &str = "5901230000103";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &std::path::Path, lan: &str) -> Config {
    let text = format!(
        "[site]\nid = \"t\"\n[store]\npath = \"{}\"\n{lan}",
        dir.join("h.db").display()
    );
    RawConfig::from_toml(&text).unwrap().validate().unwrap()
}

/// The appliance's LAN side on a seeded store: floor, registry, printing, scanners, printers.
struct Site {
    store: Store,
    registry: Registry,
    printing: Printing,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Stops the device threads if a test fails before `stop` (else the runtime waits on them).
    _stop_on_drop: tokio_util::sync::DropGuard,
}

async fn seeded(path: &std::path::Path) -> Store {
    let store = Store::open(StoreOptions::new(path, "t")).unwrap();
    holdfast::demo::load(&store, &Dataset::generate(&DatasetSpec::demo()))
        .await
        .unwrap();
    holdfast::demo::seed_operators(&store).await.unwrap();
    store
}

async fn start(store: Store, config: &Config) -> Site {
    let floor = Floor::new(store.clone(), FloorPolicy::default(), Some('~'), vec![]);
    let registry = Registry::load(&store).unwrap();
    let printing = Printing::new(store.clone(), config.lan.clone());
    floor.set_printing(printing.clone());
    store.devices(DeviceCmd::Recover).await.unwrap();
    let cancel = CancellationToken::new();
    let hub = ScanHub::new(
        floor.clone(),
        registry.clone(),
        printing.clone(),
        &config.lan,
    );
    let mut tasks = holdfast::scanners::spawn(&hub, &config.lan, &cancel).unwrap();
    tasks.extend(printing.spawn_workers(&registry, &cancel));
    Site {
        store,
        registry,
        printing,
        _stop_on_drop: cancel.clone().drop_guard(),
        cancel,
        tasks,
    }
}

impl Site {
    async fn stop(self) -> Store {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.registry.flush(&self.store).await.unwrap();
        self.store
    }

    fn journal_kinds(&self) -> Vec<String> {
        self.store
            .read(|r| {
                r.journal(&JournalFilter {
                    limit: 10_000,
                    ..Default::default()
                })
            })
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| e.kind)
            .collect()
    }

    fn jobs(&self) -> Vec<holdfast::store::PrintJobRow> {
        let mut jobs = self
            .store
            .read(|r| {
                r.print_jobs(&PrintJobFilter {
                    limit: 1000,
                    ..Default::default()
                })
            })
            .unwrap();
        jobs.reverse();
        jobs
    }
}

/// Waits for a condition, polling; panics with `what` after `limit`.
async fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A scanner on MQTT, as a scanner would be.
async fn mqtt_scanner(port: u16, device: &str) -> ScannerClient {
    ScannerClient::connect(
        "127.0.0.1",
        port,
        &format!("test-{device}"),
        &format!("holdfast/t/scanner/{device}/scan"),
        &format!("holdfast/t/scanner/{device}/reply"),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

async fn scan(scanner: &ScannerClient, id: &str, code: &str) -> Value {
    scanner
        .scan_with_id(id, code, Duration::from_secs(10))
        .await
        .unwrap()
}

#[track_caller]
fn good(reply: &Value) {
    assert_eq!(reply["ok"], true, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_scanner_runs_a_pick_and_a_duplicate_is_acted_on_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    holdfast::demo::lan::start_broker(format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
    let config = config(
        dir.path(),
        &format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"appliance\"\ndevices = [\"dock-7\"]\n\
             [[printers]]\nid = \"dock\"\naddress = \"127.0.0.1:{}\"\n\
             [printing]\ndefault_printer = \"dock\"\ngs1_company_prefix = \"5901230\"\n",
            free_port()
        ),
    );
    let site = start(seeded(&dir.path().join("h.db")).await, &config).await;
    let registry = site.registry.clone();
    eventually(Duration::from_secs(10), "broker link", || {
        registry
            .get("mqtt-broker")
            .is_some_and(|r| r.state == "online")
    })
    .await;
    let scanner = mqtt_scanner(port, "dock-7").await;

    // Before anyone signs in, a product scan is refused and says why.
    let r = scan(&scanner, "m0", P37).await;
    assert_eq!(r["ok"], false, "{r}");
    good(&scan(&scanner, "m1", "OP-ALICE").await);
    let r = scan(&scanner, "m2", "WH/INT/00001").await;
    good(&r);
    for (i, code) in [
        "WH-A-02-03",
        P37,
        "HF:QTY:19",
        "WH-A-03-02",
        P4,
        "]C110LOT-00004-A",
        "HF:QTY:12",
        "WH-A-03-03",
        P11,
        "HF:QTY:4",
    ]
    .iter()
    .enumerate()
    {
        let r = scan(&scanner, &format!("p{i}"), code).await;
        good(&r);
    }
    let picks_before = site.journal_kinds().len();
    // QoS 1 may deliver a scan twice: the same message id is answered again, not re-done.
    let first = scan(&scanner, "dup", P11).await;
    let again = scan(&scanner, "dup", P11).await;
    assert_eq!(first, again);
    assert_eq!(
        site.journal_kinds().len(),
        picks_before + 1,
        "one pick for two deliveries"
    );

    // Garbage on the topic is refused with a reason; the scanner keeps working.
    scanner.publish_raw(b"{not json".to_vec()).await.unwrap();
    let r = scan(&scanner, "bad-qty", "HF:QTY:lots").await;
    assert_eq!(
        (r["ok"].clone(), r["code"].clone()),
        (json!(false), json!("invalid_quantity"))
    );
    // A package label asked twice under one message id: one job, one SSCC.
    let first = scan(&scanner, "label", "HF:LABEL").await;
    good(&first);
    assert_eq!(scan(&scanner, "label", "HF:LABEL").await, first);
    assert_eq!(site.jobs().len(), 1, "{:?}", site.jobs());
    let r = scan(&scanner, "v", "HF:VALIDATE:BACKORDER").await;
    good(&r);
    let kinds = site.journal_kinds();
    assert_eq!(kinds.last().map(String::as_str), Some("validate"));
    assert_eq!(
        kinds.iter().filter(|k| *k == "pick").count(),
        picks_before + 1
    );

    let row = site.registry.get("dock-7").unwrap();
    assert_eq!(
        (row.kind.as_str(), row.transport.as_str()),
        ("scanner", "mqtt")
    );
    assert!(row.scans >= 16 && row.refused >= 2, "{row:?}");
    let store = site.stop().await;
    // The registry is in the store for `holdfast devices list`.
    let saved = store.read(|r| r.registry()).unwrap();
    assert!(
        saved
            .iter()
            .any(|d| d.id == "dock-7" && d.scans == row.scans)
    );
    store.shutdown().await.unwrap();
}

/// Writes a scan into the pty master and reads the beep byte.
fn serial_scan(master: &mut dyn serialport::SerialPort, scan: &[u8]) -> u8 {
    let mut frame = scan.to_vec();
    frame.push(b'\r');
    master.write_all(&frame).unwrap();
    master.set_timeout(Duration::from_secs(10)).unwrap();
    let mut byte = [0u8; 1];
    master.read_exact(&mut byte).unwrap();
    byte[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_scanner_runs_a_receipt_and_its_lot_labels_print() {
    let dir = tempfile::tempdir().unwrap();
    let printer = FakePrinter::start("127.0.0.1:0".parse().unwrap(), FakeBehaviour::Normal)
        .await
        .unwrap();
    let (master, slave) = serialport::TTYPort::pair().unwrap();
    let slave_path = serialport::SerialPort::name(&slave).unwrap();
    drop(slave);
    let link = dir.path().join("scanner");
    std::os::unix::fs::symlink(&slave_path, &link).unwrap();
    let config = config(
        dir.path(),
        &format!(
            "[[scanners]]\nid = \"recv-1\"\ntransport = \"serial\"\npath = \"{}\"\nterminator = \"cr\"\ngood_beep = \"06\"\nbad_beep = \"15\"\n\
             [[printers]]\nid = \"dock\"\naddress = \"{}\"\npoll_secs = 0.2\n\
             [printing]\nreceive_labels = true\ngs1_company_prefix = \"5901230\"\n",
            link.display(),
            printer.addr()
        ),
    );
    let site = start(seeded(&dir.path().join("h.db")).await, &config).await;
    let registry = site.registry.clone();
    eventually(
        Duration::from_secs(10),
        "the serial scanner's port open",
        || registry.get("recv-1").is_some_and(|r| r.state == "online"),
    )
    .await;
    let mut master: Box<dyn serialport::SerialPort> = Box::new(master);
    let scans: Vec<(&str, u8)> = vec![
        ("OP-BOB", 0x06),
        ("WH/IN/00003", 0x06),
        // GS1-128: GTIN, expiry, lot and count, with the group separator as a real 0x1D.
        ("]C101059012300000351727020010LOT-NEW\u{1d}3020", 0x06),
        // Fewer came, then a few more: the line changes, its label is not printed again.
        ("HF:QTY:15", 0x06),
        ("HF:QTY:18", 0x06),
        // A put-away bin moves the line: no second label.
        ("WH-A-01-01", 0x06),
        ("NOT-A-BARCODE", 0x15),
        // A lot typed with a label printer's control character: refused, not received
        // without its label.
        ("5901230000035", 0x06),
        ("LOT^XZ^FDX", 0x15),
    ];
    for (scan, beep) in scans {
        let heard = tokio::task::block_in_place(|| serial_scan(master.as_mut(), scan.as_bytes()));
        assert_eq!(heard, beep, "beep for {scan}");
    }
    // The lot label was spooled with the receipt and reached the printer.
    eventually(Duration::from_secs(10), "the lot label printed", || {
        printer.labels().len() == 1
    })
    .await;
    let label = &printer.labels()[0];
    assert!(
        label.starts_with("^XA") && label.contains("LOT-NEW"),
        "{label}"
    );
    // The printer has the bytes; the job turns `sent` once the printer closed the connection.
    eventually(Duration::from_secs(10), "the job sent", || {
        site.jobs().first().is_some_and(|j| j.state == "sent")
    })
    .await;
    let jobs = site.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].template, "lot");
    assert!(jobs[0].requested_by.starts_with("operator:bob"));
    site.stop().await.shutdown().await.unwrap();
}

fn label(n: usize) -> Label {
    Label::Product {
        name: format!("Label {n} ^XZ~JR injected"),
        code: Some(format!("HF-{n:05}")),
        barcode: Some("5901230000363".into()),
    }
}

async fn enqueue(site: &Site, printer: &str, n: usize) -> i64 {
    let target = site.printing.printer_for(Some(printer), None).unwrap();
    site.printing
        .enqueue(target, &label(n), "test", None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_survives_a_restart_and_prints_each_job_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config(
        dir.path(),
        &format!(
            "[[printers]]\nid = \"p1\"\naddress = \"127.0.0.1:{port}\"\npoll_secs = 0.1\noffline_after = 3\ntimeout_secs = 0.5\n"
        ),
    );
    let path = dir.path().join("h.db");
    let site = start(seeded(&path).await, &config).await;
    for n in 0..3 {
        enqueue(&site, "p1", n).await;
    }
    // Nobody listens: the printer goes offline, the jobs wait.
    let registry = site.registry.clone();
    eventually(Duration::from_secs(10), "printer offline", || {
        registry.get("p1").is_some_and(|r| r.state == "offline")
    })
    .await;
    assert!(site.jobs().iter().all(|j| j.state == "queued"));
    // Restart: the jobs are on disk.
    let store = site.stop().await;
    store.shutdown().await.unwrap();
    drop(store);
    let store = Store::open(StoreOptions::new(&path, "t")).unwrap();
    let printer = FakePrinter::start(
        format!("127.0.0.1:{port}").parse().unwrap(),
        FakeBehaviour::Normal,
    )
    .await
    .unwrap();
    let site = start(store, &config).await;
    eventually(Duration::from_secs(10), "three labels", || {
        printer.labels().len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let labels = printer.labels();
    assert_eq!(labels.len(), 3, "each job once");
    for (n, l) in labels.iter().enumerate() {
        assert!(l.contains(&format!("HF-{n:05}")), "in order: {l}");
        // The product name's ^ and ~ reached the printer hex-escaped, never as commands.
        assert!(l.contains("_5EXZ_7EJR"), "{l}");
        assert_eq!(l.matches("^XZ").count(), 1, "{l}");
    }
    eventually(Duration::from_secs(10), "every job sent", || {
        site.jobs().iter().all(|j| j.state == "sent")
    })
    .await;
    site.stop().await.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_send_is_held_until_a_person_reprints_it() {
    let dir = tempfile::tempdir().unwrap();
    let printer = FakePrinter::start("127.0.0.1:0".parse().unwrap(), FakeBehaviour::ResetMidJob)
        .await
        .unwrap();
    let config = config(
        dir.path(),
        &format!(
            "[[printers]]\nid = \"p1\"\naddress = \"{}\"\npoll_secs = 0.1\ntimeout_secs = 1\n",
            printer.addr()
        ),
    );
    let site = start(seeded(&dir.path().join("h.db")).await, &config).await;
    let id = enqueue(&site, "p1", 1).await;
    let store = site.store.clone();
    eventually(Duration::from_secs(10), "job unknown", || {
        store.read(|r| r.print_job(id)).unwrap().unwrap().state == "unknown"
    })
    .await;
    // Several polls later it is still held: no automatic second send.
    printer.set_behaviour(FakeBehaviour::Normal);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(printer.labels().len(), 0);
    assert_eq!(site.jobs().len(), 1);
    // A person reprints: a new job, linked to the first, prints once.
    let new = store
        .devices(DeviceCmd::Reprint {
            id,
            by: "manager".into(),
        })
        .await
        .unwrap();
    site.printing.wake("p1");
    eventually(Duration::from_secs(10), "the reprint", || {
        printer.labels().len() == 1
    })
    .await;
    let jobs = site.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].id, new);
    assert_eq!(jobs[1].reprint_of, Some(id));
    assert_eq!(jobs[0].state, "cancelled");
    site.stop().await.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_printer_is_offline_after_missed_polls_and_a_slow_one_still_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mute = FakePrinter::start("127.0.0.1:0".parse().unwrap(), FakeBehaviour::Silent)
        .await
        .unwrap();
    let slow = FakePrinter::start(
        "127.0.0.1:0".parse().unwrap(),
        FakeBehaviour::Slow(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let config = config(
        dir.path(),
        &format!(
            "[[printers]]\nid = \"mute\"\naddress = \"{}\"\npoll_secs = 0.1\noffline_after = 3\ntimeout_secs = 0.2\n\
             [[printers]]\nid = \"slow\"\naddress = \"{}\"\npoll_secs = 0.1\ntimeout_secs = 2\n",
            mute.addr(),
            slow.addr()
        ),
    );
    let site = start(seeded(&dir.path().join("h.db")).await, &config).await;
    let queued = enqueue(&site, "mute", 1).await;
    enqueue(&site, "slow", 2).await;
    let registry = site.registry.clone();
    // A printer that says nothing is not ready: after a first missed poll it is at fault, after
    // three it is offline; its job is never sent.
    eventually(Duration::from_secs(10), "mute printer offline", || {
        registry.get("mute").is_some_and(|r| r.state == "offline")
    })
    .await;
    eventually(Duration::from_secs(10), "slow printer prints", || {
        slow.labels().len() == 1
    })
    .await;
    assert_eq!(mute.labels().len(), 0);
    let job = site.store.read(|r| r.print_job(queued)).unwrap().unwrap();
    assert_eq!(job.state, "queued");
    assert!(registry.get("slow").unwrap().state == "online");
    site.stop().await.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_template_prints_in_place_of_its_built_in() {
    let dir = tempfile::tempdir().unwrap();
    let labels_dir = dir.path().join("labels");
    std::fs::create_dir(&labels_dir).unwrap();
    std::fs::write(
        labels_dir.join("product.zpl"),
        "^XA^CI28^PW{{ width_dots }}\n\
         ^FO20,20^A0N,30,30^FH_^FDSITE {{ name }}^FS\n\
         {% if ean13 %}^FO20,60^BY3^BEN,80,Y,N^FH_^FD{{ ean13 }}^FS{% endif %}\n^XZ\n",
    )
    .unwrap();
    let port = free_port();
    let config = config(
        dir.path(),
        &format!(
            "[[printers]]\nid = \"p1\"\naddress = \"127.0.0.1:{port}\"\npoll_secs = 0.1\ntimeout_secs = 0.5\n\
             [printing]\ntemplates = \"{}\"\n",
            labels_dir.display()
        ),
    );
    let printer = FakePrinter::start(
        format!("127.0.0.1:{port}").parse().unwrap(),
        FakeBehaviour::Normal,
    )
    .await
    .unwrap();
    let site = start(seeded(&dir.path().join("h.db")).await, &config).await;
    enqueue(&site, "p1", 7).await;
    let bin = Label::Location {
        name: "WH/Stock/A-01-01".into(),
        barcode: "WH-A-01-01".into(),
    };
    let target = site.printing.printer_for(Some("p1"), None).unwrap();
    site.printing
        .enqueue(target, &bin, "test", None)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "two labels", || {
        printer.labels().len() == 2
    })
    .await;
    let labels = printer.labels();
    // The site's product layout, its values escaped; the location keeps the built-in one.
    assert_eq!(
        labels[0],
        "^XA^CI28^PW800\n^FO20,20^A0N,30,30^FH_^FDSITE Label 7 _5EXZ_7EJR injected^FS\n\
         ^FO20,60^BY3^BEN,80,Y,N^FH_^FD590123000036^FS\n^XZ"
    );
    assert!(labels[1].contains("WH-A-01-01") && !labels[1].contains("SITE"));
    site.stop().await.shutdown().await.unwrap();
}
