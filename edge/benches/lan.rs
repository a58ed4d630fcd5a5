//! LAN devices benchmark: scanners through their real transports into the floor, and the
//! print spool into a fake Zebra printer.
//!
//! ```text
//! cargo bench -p holdfast --bench lan                            # full: 10 s per run
//! HOLDFAST_BENCH_SCALE=0.2 cargo bench -p holdfast --bench lan   # a quick look
//! ```
//!
//! 1. Scanners, closed loop, 50 devices each: serial (each device a pseudo-terminal pair, the
//!    appliance's serial thread reading the slave, the bench writing `scan\r` into the master
//!    and waiting for the beep byte) and MQTT (each device its own MQTT client, JSON scans
//!    with ids, waiting for the reply) on the demo's rumqttd broker in this process, then on
//!    Mosquitto (the sites' broker, when installed) as shipped and with `set_tcp_nodelay
//!    true`. Baseline in the same run: the same scans handed to the floor service directly
//!    (no transport).
//! 2. Print spool: jobs spooled, then drained into a fake printer over loopback TCP (status
//!    poll, one connection per job, two commits per job). Baseline: the same labels written
//!    to the printer with no spool (one connection per label).
//! 3. Offline detection: a printer stops answering `~HS`; time until the registry says offline
//!    (poll 0.5 s, offline after 3 missed polls, 0.5 s time-out).
//!
//! Every device signs in by badge, opens its own picking by scanning its name, then scans
//! products of it again and again (over-pick allowed, no bin scan required): every answer
//! must be good, or the benchmark stops. Nothing is asserted on timing.

// Benchmark code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast::config::{Config, RawConfig};
use holdfast::floor::{Caller, Floor, FloorRequest, RawInput};
use holdfast::printing::Printing;
use holdfast::registry::Registry;
use holdfast::scanners::ScanHub;
use holdfast::store::{FloorCmd, OperatorRow, Store, StoreOptions};
use holdfast::workflow::{FloorPolicy, OverPick};
use holdfast_devices::label::Label;
use holdfast_devices::mqtt::ScannerClient;
use holdfast_devices::printer::{FakeBehaviour, FakePrinter, PrinterAddress};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use tokio_util::sync::CancellationToken;

const DEVICES: usize = 50;

// The Mosquitto launcher the MQTT tests use.
#[path = "../../devices/tests/support/mosquitto.rs"]
mod mosquitto;

#[derive(Clone, Debug)]
struct Device {
    badge: String,
    picking: String,
    codes: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Run {
    name: &'static str,
    scans: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.scans as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        let mut l = self.latencies.clone();
        l.sort();
        println!(
            "  {:<28} {:>7} scans in {:>5.1} s = {:>7.0} scans/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>6.1} ms",
            self.name,
            self.scans,
            self.elapsed.as_secs_f64(),
            self.rate(),
            ms(percentile(&l, 0.5)),
            ms(percentile(&l, 0.99)),
            ms(l.last().copied().unwrap_or_default()),
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Open pickings with untracked products, one per device and transport.
fn devices(data: &Dataset, n: usize) -> Vec<Device> {
    let out: Vec<Device> = data
        .scannable_pickings()
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, (p, codes))| Device {
            badge: format!("BADGE-{i:03}"),
            picking: p.name.clone(),
            codes,
        })
        .collect();
    assert_eq!(out.len(), n, "not enough open pickings in the data set");
    out
}

fn lan_config(dir: &std::path::Path, lan: &str) -> Config {
    let text = format!(
        "[site]\nid = \"t\"\n[store]\npath = \"{}\"\n{lan}",
        dir.join("lan.db").display()
    );
    RawConfig::from_toml(&text).unwrap().validate().unwrap()
}

/// The scanners of one transport in a closed loop for `duration`.
fn serial_run(masters: Vec<(Box<dyn serialport::SerialPort>, Device)>, duration: Duration) -> Run {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = masters
        .into_iter()
        .map(|(mut tty, d)| {
            let latencies = latencies.clone();
            std::thread::spawn(move || {
                tty.set_timeout(Duration::from_secs(10)).unwrap();
                let mut mine = Vec::new();
                let mut i = 0;
                while start.elapsed() < duration {
                    let code = &d.codes[i % d.codes.len()];
                    i += 1;
                    let t = Instant::now();
                    tty.write_all(format!("{code}\r").as_bytes()).unwrap();
                    let mut beep = [0u8; 1];
                    tty.read_exact(&mut beep).unwrap();
                    assert_eq!(beep[0], 0x06, "bad beep for {code}");
                    mine.push(t.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    Run {
        name: "serial (pty), 50 devices",
        scans: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

/// Plays one setup scan on a serial scanner; it must beep good.
fn serial_setup(tty: &mut dyn serialport::SerialPort, scan: &str) {
    tty.set_timeout(Duration::from_secs(10)).unwrap();
    tty.write_all(format!("{scan}\r").as_bytes()).unwrap();
    let mut beep = [0u8; 1];
    tty.read_exact(&mut beep).unwrap();
    assert_eq!(beep[0], 0x06, "setup scan {scan} refused");
}

/// An MQTT scanner: its own client on the broker; a scan waits for its reply.
async fn mqtt_device(port: u16, id: &str) -> ScannerClient {
    ScannerClient::connect(
        "127.0.0.1",
        port,
        &format!("bench-{id}"),
        &format!("holdfast/t/scanner/{id}/scan"),
        &format!("holdfast/t/scanner/{id}/reply"),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

/// The MQTT scanners of one broker in a closed loop for `duration`.
async fn mqtt_run(
    name: &'static str,
    port: u16,
    prefix: &str,
    devices: &[Device],
    duration: Duration,
) -> Run {
    let mut devs = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let m = mqtt_device(port, &format!("{prefix}-{i:02}")).await;
        mqtt_scan(&m, &d.badge).await;
        mqtt_scan(&m, &d.picking).await;
        devs.push((m, d.clone()));
    }
    let start = Instant::now();
    let tasks: Vec<_> = devs
        .into_iter()
        .map(|(m, d)| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0;
                while start.elapsed() < duration {
                    lat.push(mqtt_scan(&m, &d.codes[i % d.codes.len()]).await);
                    i += 1;
                }
                // Replies beyond one per scan: redeliveries, answered again, not re-done.
                let extra = m.replies().len().saturating_sub(lat.len() + 2);
                (lat, extra)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut duplicates = 0;
    for t in tasks {
        let (lat, dup) = t.await.unwrap();
        latencies.extend(lat);
        duplicates += dup;
    }
    println!("  ({name}: {duplicates} replies to redelivered scans, answered again, not re-done)");
    Run {
        name,
        scans: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

async fn mqtt_scan(m: &ScannerClient, code: &str) -> Duration {
    let t = Instant::now();
    let reply = m.scan(code, Duration::from_secs(30)).await.unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    t.elapsed()
}

fn main() {
    let scale: f64 = std::env::var("HOLDFAST_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let duration = Duration::from_secs_f64((10.0 * scale).max(1.0));
    let spec = DatasetSpec {
        seed: 1,
        products: 2_000,
        quants: 10_000,
        pickings: 1_500,
    };
    let data = Dataset::generate(&spec);
    let all = devices(&data, DEVICES * 5);
    let (serial_devs, rest) = all.split_at(DEVICES);
    let (mqtt_devs, rest) = rest.split_at(DEVICES);
    let (direct_devs, mosquitto_devs) = rest.split_at(DEVICES);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let broker = free_port();
    holdfast::demo::lan::start_broker(format!("127.0.0.1:{broker}").parse().unwrap()).unwrap();

    // 50 pseudo-terminals, linked like /dev/serial/by-id.
    let mut masters = Vec::new();
    let mut lan = String::new();
    for (i, d) in serial_devs.iter().enumerate() {
        let (master, slave) = serialport::TTYPort::pair().unwrap();
        let name = serialport::SerialPort::name(&slave).unwrap();
        drop(slave);
        let link = dir.path().join(format!("scanner-{i:02}"));
        std::os::unix::fs::symlink(name, &link).unwrap();
        lan.push_str(&format!(
            "[[scanners]]\nid = \"ser-{i:02}\"\ntransport = \"serial\"\npath = \"{}\"\ngood_beep = \"06\"\nbad_beep = \"15\"\n",
            link.display()
        ));
        masters.push((
            Box::new(master) as Box<dyn serialport::SerialPort>,
            d.clone(),
        ));
    }
    lan.push_str(&format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {broker}\nclient_id = \"bench-appliance\"\ndevice_pattern = \"m*\"\n"
    ));
    let config = lan_config(dir.path(), &lan);

    let store = Store::open(StoreOptions::new(dir.path().join("lan.db"), "bench")).unwrap();
    rt.block_on(async {
        holdfast::demo::load(&store, &data).await.unwrap();
        for (i, d) in all.iter().enumerate() {
            store
                .floor(FloorCmd::AddOperator(OperatorRow {
                    id: format!("op-{i:03}"),
                    name: format!("Picker {i}"),
                    badge: Some(d.badge.clone()),
                    pin_hash: None,
                    active: true,
                    language: None,
                }))
                .await
                .unwrap();
        }
    });
    let policy = FloorPolicy {
        require_source_location: false,
        over_pick: OverPick::Allow,
        ..FloorPolicy::default()
    };
    let floor = Floor::new(store.clone(), policy, None, vec![]);
    let registry = Registry::default();
    let printing = Printing::new(store.clone(), config.lan.clone());
    let cancel = CancellationToken::new();
    let hub = ScanHub::new(floor.clone(), registry.clone(), printing, &config.lan);
    let _tasks =
        rt.block_on(async { holdfast::scanners::spawn(&hub, &config.lan, &cancel).unwrap() });

    println!(
        "LAN devices benchmark ({DEVICES} devices per transport, closed loop, {duration:?} per run)"
    );
    // Serial: wait for every port to open, sign in, open the picking.
    let start = Instant::now();
    while (0..DEVICES).any(|i| {
        registry
            .get(&format!("ser-{i:02}"))
            .is_none_or(|r| r.state != "online")
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serial ports did not open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for (tty, d) in masters.iter_mut() {
        serial_setup(tty.as_mut(), &d.badge);
        serial_setup(tty.as_mut(), &d.picking);
    }
    let serial = serial_run(masters, duration);

    // MQTT: the demo's broker, then Mosquitto (what sites run) with Nagle's algorithm on its
    // sockets as shipped and turned off.
    let mut mqtt = vec![rt.block_on(mqtt_run(
        "MQTT (rumqttd)",
        broker,
        "mq",
        mqtt_devs,
        duration,
    ))];
    match mosquitto::binary() {
        None => println!(
            "  (Mosquitto not installed: its runs are skipped; scripts/test.sh installs it)"
        ),
        Some(bin) => {
            for (i, (name, nodelay)) in [
                ("MQTT (Mosquitto, default)", false),
                ("MQTT (Mosquitto, nodelay)", true),
            ]
            .into_iter()
            .enumerate()
            {
                let mdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
                let addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
                let _broker = mosquitto::Mosquitto::plain(&bin, mdir.path(), addr, nodelay);
                let link = lan_config(
                    mdir.path(),
                    &format!(
                        "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"bench-appliance-{i}\"\ndevice_pattern = \"m*\"\n",
                        addr.port()
                    ),
                );
                let (settings, _) = link.lan.mqtt.clone().unwrap();
                let devs = &mosquitto_devs[i * DEVICES..(i + 1) * DEVICES];
                let stop = CancellationToken::new();
                let run = rt.block_on(async {
                    let task = tokio::spawn(holdfast_devices::mqtt::run(
                        settings,
                        hub.clone(),
                        stop.clone(),
                    ));
                    // The appliance subscribes right after it connects.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let run =
                        mqtt_run(name, addr.port(), &format!("mosq{i}"), devs, duration).await;
                    stop.cancel();
                    task.await.unwrap().unwrap();
                    run
                });
                mqtt.push(run);
            }
        }
    }

    // Baseline: the floor service called directly.
    let direct = rt.block_on(async {
        let caller = |i: usize| Caller {
            device: format!("direct-{i:02}"),
            key: None,
            fingerprint: String::new(),
        };
        let scan = |code: &str| FloorRequest::Input {
            session: None,
            input: RawInput::Scan(code.as_bytes().to_vec()),
        };
        for (i, d) in direct_devs.iter().enumerate() {
            for setup in [&d.badge, &d.picking] {
                let a = floor.handle(&caller(i), scan(setup)).await;
                assert!(a.status < 300, "{}", a.body);
            }
        }
        let start = Instant::now();
        let tasks: Vec<_> = direct_devs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (floor, d, c) = (floor.clone(), d.clone(), caller(i));
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut n = 0;
                    while start.elapsed() < duration {
                        let t = Instant::now();
                        let a = floor.handle(&c, scan(&d.codes[n % d.codes.len()])).await;
                        assert!(a.status < 300, "{}", a.body);
                        lat.push(t.elapsed());
                        n += 1;
                    }
                    lat
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        Run {
            name: "floor direct (baseline)",
            scans: latencies.len(),
            elapsed: start.elapsed(),
            latencies,
        }
    });
    serial.print();
    for run in &mqtt {
        run.print();
    }
    direct.print();
    print!(
        "  throughput against the baseline: serial {:.2}x",
        serial.rate() / direct.rate()
    );
    for run in &mqtt {
        print!(", {} {:.2}x", run.name, run.rate() / direct.rate());
    }
    println!();
    cancel.cancel();

    // Print spool.
    let jobs = ((500.0 * scale) as usize).max(50);
    rt.block_on(async {
        let printer = FakePrinter::start("127.0.0.1:0".parse().unwrap(), FakeBehaviour::Normal)
            .await
            .unwrap();
        let pdir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let config = lan_config(
            pdir.path(),
            &format!(
                "[[printers]]\nid = \"p\"\naddress = \"{}\"\npoll_secs = 5\n",
                printer.addr()
            ),
        );
        let store = Store::open(StoreOptions::new(pdir.path().join("lan.db"), "bench")).unwrap();
        let printing = Printing::new(store.clone(), config.lan.clone());
        let target = config.lan.printer("p").unwrap().clone();
        let label = |n: usize| Label::Product {
            name: format!("Bench product {n} with a longer name to wrap"),
            code: Some(format!("HF-{n:05}")),
            barcode: Some("5901230000363".into()),
        };
        let t = Instant::now();
        for n in 0..jobs {
            printing.enqueue(&target, &label(n), "bench", None).await.unwrap();
        }
        let spooled = t.elapsed();
        let registry = Registry::default();
        let cancel = CancellationToken::new();
        let t = Instant::now();
        let workers = printing.spawn_workers(&registry, &cancel);
        while printer.labels().len() < jobs {
            assert!(t.elapsed() < Duration::from_secs(300), "spool stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let drained = t.elapsed();
        cancel.cancel();
        for w in workers {
            w.await.unwrap();
        }
        // Baseline: the same labels straight to the printer, no spool.
        let zpl: Vec<String> = (0..jobs)
            .map(|n| label(n).render(&target.size, 1).unwrap())
            .collect();
        let address = PrinterAddress::Tcp(printer.addr().to_string());
        let t = Instant::now();
        for z in &zpl {
            holdfast_devices::printer::send(&address, z.as_bytes(), Duration::from_secs(2))
                .await
                .unwrap();
        }
        let raw = t.elapsed();
        println!("Print spool ({jobs} product labels, ~{} bytes each)", zpl[0].len());
        println!(
            "  spooled {jobs} in {:.2} s = {:.0} jobs/s (one commit each)",
            spooled.as_secs_f64(),
            jobs as f64 / spooled.as_secs_f64()
        );
        println!(
            "  drained {jobs} in {:.2} s = {:.0} jobs/s to the printer; baseline without spool {:.0} labels/s ({:.2}x)",
            drained.as_secs_f64(),
            jobs as f64 / drained.as_secs_f64(),
            jobs as f64 / raw.as_secs_f64(),
            raw.as_secs_f64() / drained.as_secs_f64()
        );

        // Offline detection.
        let config = config_offline(pdir.path(), printer.addr());
        let printing = Printing::new(store.clone(), config.lan.clone());
        let registry = Registry::default();
        let cancel = CancellationToken::new();
        let workers = printing.spawn_workers(&registry, &cancel);
        while registry.get("q").is_none_or(|r| r.state != "online") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        printer.set_behaviour(FakeBehaviour::Silent);
        let t = Instant::now();
        while registry.get("q").is_none_or(|r| r.state != "offline") {
            assert!(t.elapsed() < Duration::from_secs(30), "never offline");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!(
            "Offline detection: printer mute -> registry offline in {:.2} s (poll every 0.5 s, 0.5 s time-out, offline after 3 missed: bound 1.5 s + one period)",
            t.elapsed().as_secs_f64()
        );
        cancel.cancel();
        for w in workers {
            w.await.unwrap();
        }
        store.shutdown().await.unwrap();
    });
    rt.block_on(store.shutdown()).unwrap();
}

fn config_offline(dir: &std::path::Path, addr: std::net::SocketAddr) -> Config {
    lan_config(
        dir,
        &format!(
            "[[printers]]\nid = \"q\"\naddress = \"{addr}\"\npoll_secs = 0.5\noffline_after = 3\ntimeout_secs = 0.5\n"
        ),
    )
}
