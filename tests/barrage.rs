//! A hostile LAN, bounded: the real binary with a serial scanner (a pseudo-terminal), a TCP
//! scanner, an MQTT scanner on Mosquitto and the HTTP API, each fed thousands of random frames,
//! oversized messages and slow clients, then started again with its disk cap already reached.
//!
//! What must hold: the process stays up and answers `/healthz`; its log has no panic; the
//! journal holds exactly the entries the valid scans made; its memory comes back to within
//! 10% of where it stood after a warm-up round of the same barrage.
//!
//! `HOLDFAST_BARRAGE_FRAMES` (default 2000) sets the frames per transport and round,
//! `HOLDFAST_BARRAGE_ROUNDS` (default 2) the rounds after the three warm-up rounds.

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;

#[path = "../devices/tests/support/mosquitto.rs"]
mod mosquitto;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use site::{Site, cli, free_port};

/// The allocator settings of `systemd/holdfast.service`.
const MALLOC_ENV: &[(&str, &str)] = &[
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
];

const DEVICE_TOKEN: &str = "barrage-handheld-token-0123";
const MANAGER_TOKEN: &str = "barrage-manager-token-0123";

fn frames() -> usize {
    std::env::var("HOLDFAST_BARRAGE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// One random frame: random bytes, control characters, overlong lines, command barcodes
/// with absurd arguments, GS1 fragments, badge and picking guesses.
fn frame(rng: &mut fastrand::Rng) -> Vec<u8> {
    match rng.u8(..10) {
        0 => (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
        1 => vec![b'A'; rng.usize(400..3000)],
        2 => format!(
            "HF:QTY:{}",
            [
                "1e308",
                "-0",
                "99999999999999999999",
                "NaN",
                "inf",
                "0.0000001",
                "1.005",
                "-5"
            ][rng.usize(..8)]
        )
        .into_bytes(),
        3 => b"HF:VALIDATE:SIDEWAYS".to_vec(),
        4 => format!("]C1010{:013}17991399", rng.u64(..10_000_000_000_000)).into_bytes(),
        5 => format!("OP-{:06}", rng.u32(..1_000_000)).into_bytes(),
        6 => format!("WH/OUT/{:05}", rng.u32(..100_000)).into_bytes(),
        7 => (0..rng.usize(1..40)).map(|_| rng.u8(0x20..0x7f)).collect(),
        8 => "ÿ€\u{0}\u{1d}\u{7f}".as_bytes().to_vec(),
        _ => format!("LOT^XZ~JR{}", rng.u16(..)).into_bytes(),
    }
}

/// Resident memory of a process, in KiB, less the pages of its database file that its readers
/// have mapped (`mmap_size`): those are the kernel's page cache of a file that grows with the
/// journal, shared and reclaimable, not memory the process holds on to.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_db = false;
    let mut db = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            in_db = line.ends_with("holdfast.db");
        } else if in_db && let Some(kb) = line.strip_prefix("Rss:") {
            db += kb
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    rss.saturating_sub(db)
}

/// Writes frames to a scanner's byte stream (serial or TCP), each with its terminator, and
/// reads whatever beeps come back without waiting for them.
fn stream_barrage(out: &mut dyn Write, n: usize, rng: &mut fastrand::Rng) {
    for _ in 0..n {
        let mut f = frame(rng);
        if rng.u8(..20) != 0 {
            // Most frames end; some run on into the next (a partial frame).
            f.push(b'\r');
        }
        if out.write_all(&f).is_err() {
            // A listener may close a connection that sent an overlong line: that is fine.
            return;
        }
    }
    let _ = out.flush();
}

async fn http_barrage(base: &str, n: usize, rng: &mut fastrand::Rng) -> usize {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut answered = 0;
    for i in 0..n {
        let paths = [
            "/api/v1/scan",
            "/api/v1/login",
            "/api/v1/sessions",
            "/api/v1/lookup",
            "/api/v1/print",
            "/api/v1/conflicts/1/resolve",
            "/../../etc/passwd",
            "/console/login",
        ];
        let path = paths[rng.usize(..paths.len())];
        let body: Vec<u8> = match rng.u8(..5) {
            0 => frame(rng),
            1 => json!({"code": String::from_utf8_lossy(&frame(rng))})
                .to_string()
                .into_bytes(),
            2 => json!({"quantity": 1e300, "badge": "OP-X", "pin": "0000", "operator": "alice"})
                .to_string()
                .into_bytes(),
            3 => vec![b'{'; rng.usize(1..100_000)],
            _ => json!({"workflow": "pick", "picking_id": rng.i64(..)})
                .to_string()
                .into_bytes(),
        };
        let mut request = http
            .post(format!("{base}{path}"))
            .header("Idempotency-Key", format!("barrage-{i}"))
            .header("content-type", "application/json")
            .body(body);
        if rng.bool() {
            request = request.bearer_auth(DEVICE_TOKEN);
        }
        if let Ok(r) = request.send().await {
            answered += 1;
            let status = r.status();
            assert!(
                !status.is_server_error() || status.as_u16() == 503 || status.as_u16() == 507,
                "{path}: {status}"
            );
        }
    }
    answered
}

/// Connections that send half a request and then nothing (slowloris), held for `hold`.
fn slow_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            let _ =
                s.write_all(b"POST /api/v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n");
            Some(s)
        })
        .collect()
}

async fn mqtt_barrage(broker: SocketAddr, site_id: &str, n: usize, rng: &mut fastrand::Rng) {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let mut options = MqttOptions::new("barrage", broker.ip().to_string(), broker.port());
    options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 64);
    let pump = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    for i in 0..n {
        let device = match rng.u8(..4) {
            0 => "unlisted-scanner".to_owned(),
            1 => "hh1".to_owned(),
            _ => "mq1".to_owned(),
        };
        let topic = format!("holdfast/{site_id}/scanner/{device}/scan");
        let payload = match i % 500 {
            // Now and then one message far larger than any scan.
            499 => vec![b'X'; 1_500_000],
            _ => frame(rng),
        };
        let retain = rng.u8(..50) == 0;
        let _ = client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await;
    }
    // Let the broker deliver what it holds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
}

/// Waits until the scanners' counters (scans, refusals, errors) stop moving: every frame
/// sent has been handled. Their sum.
async fn settle(site: &Site) -> i64 {
    let mut last = -1;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let devices = site.get_as("/api/v1/devices", MANAGER_TOKEN).await;
        let sum: i64 = devices["devices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                ["scans", "refused", "errors"]
                    .iter()
                    .map(|k| d[*k].as_i64().unwrap_or(0))
                    .sum::<i64>()
            })
            .sum();
        if sum == last {
            return sum;
        }
        assert!(
            Instant::now() < deadline,
            "the scanners never settled: {devices}"
        );
        last = sum;
    }
}

/// The last lines of a log.
fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The appliance answers its health probe.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_lan_leaves_the_appliance_up_its_journal_true_and_its_memory_flat() {
    let Some(broker_bin) = mosquitto::required("barrage") else {
        return;
    };
    let sim = Simulator::start(
        SimConfig::default(),
        &Dataset::generate(&DatasetSpec::demo()),
    )
    .await
    .unwrap();
    let c = sim.config();
    let broker_dir = tempfile::tempdir().unwrap();
    let broker_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _broker = mosquitto::Mosquitto::plain(&broker_bin, broker_dir.path(), broker_addr, true);
    let (master, slave) = serialport::TTYPort::pair().unwrap();
    let slave_path = serialport::SerialPort::name(&slave).unwrap();
    drop(slave);
    let tcp_port = free_port();
    let site = Site::new(DEVICE_TOKEN, |port, dir| {
        let link = dir.join("scanner-tty");
        std::os::unix::fs::symlink(&slave_path, &link).unwrap();
        format!(
            "[site]\nid = \"b\"\n[store]\npath = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmanager_token = \"{MANAGER_TOKEN}\"\n\
             [log]\nlevel = \"info\"\n\
             [odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\n\
             company_id = 1\nwarehouse_id = 1\ntimeout_secs = 2\n\
             [[devices]]\nid = \"hh1\"\ntoken = \"{DEVICE_TOKEN}\"\n\
             [[scanners]]\nid = \"ser1\"\ntransport = \"serial\"\npath = \"{}\"\nterminator = \"cr\"\n\
             [[scanners]]\nid = \"tcp1\"\ntransport = \"tcp-listen\"\naddress = \"127.0.0.1:{tcp_port}\"\nterminator = \"cr\"\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {}\ndevices = [\"mq1\"]\n",
            dir.join("holdfast.db").display(),
            sim.url(),
            c.database,
            c.login,
            c.api_key,
            link.display(),
            broker_addr.port(),
        )
    });
    cli(&site.config, &["sync", "pull", "--full"]);
    cli(
        &site.config,
        &[
            "operator", "add", "alice", "--name", "Alice", "--badge", "OP-ALICE",
        ],
    );
    // As the unit runs it (systemd/holdfast.service): glibc's malloc with two arenas and a
    // fixed mmap threshold. Left to itself, glibc raises the threshold to the size of the
    // largest buffer freed, so after one 1.5 MB message every later one is carved from the
    // heap and kept: RSS steps up by 1.5 MB at a time (measured) without anything leaking.
    let app = site::Appliance::start_with(&site.config, &site.log(), MALLOC_ENV);
    site.wait_until("serving, online", 30, |s| s["mode"] == "online")
        .await;
    let http_addr: SocketAddr = site.base.trim_start_matches("http://").parse().unwrap();

    // Valid work first: these are the only entries the journal may ever hold.
    site.post("/api/v1/login", json!({"badge": "OP-ALICE"}))
        .await;
    let s = site
        .start(json!({"workflow": "pick", "picking_id": 3}))
        .await;
    site.scan("WH-A-02-03").await;
    site.scan("5901230000363").await;
    site.quantity(&s, 5.0).await;
    let valid = site.journal().len();
    assert!(valid >= 1);

    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let n = frames();
    let mut serial: Box<dyn serialport::SerialPort> = Box::new(master);
    let mut tcp = TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    let round =
        async |rng: &mut fastrand::Rng, n: usize, serial: &mut dyn Write, tcp: &mut TcpStream| {
            tokio::task::block_in_place(|| stream_barrage(serial, n, rng));
            tokio::task::block_in_place(|| stream_barrage(tcp, n, rng));
            mqtt_barrage(broker_addr, "b", n, rng).await;
            let slow = tokio::task::block_in_place(|| slow_clients(http_addr, 50));
            http_barrage(&site.base, n, rng).await;
            drop(slow);
        };

    // Three warm-up rounds of the same size set where memory stands once every path has run
    // and the caches (SQLite's pages per connection, buffers) have filled: measured, RSS then
    // stays flat (8 rounds: +5%), so what grows after is the barrage's own doing.
    for _ in 0..3 {
        round(&mut rng, n, serial.as_mut(), &mut tcp).await;
        settle(&site).await;
    }
    let pid = app.pid();
    let warm = rss_kib(pid);
    let started = Instant::now();
    let rounds: usize = std::env::var("HOLDFAST_BARRAGE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    for r in 0..rounds {
        round(&mut rng, n, serial.as_mut(), &mut tcp).await;
        settle(&site).await;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        println!(
            "round {r}: RSS {} KiB (heap and stacks {}, files {})",
            rss_kib(pid),
            field("RssAnon:"),
            field("RssFile:")
        );
    }
    let barrage_secs = started.elapsed().as_secs_f64();
    // Every frame handled, and time-outs closed what the barrage left open.
    let handled = settle(&site).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);

    assert!(app.running(), "the appliance exited during the barrage");
    assert!(healthy(http_addr), "no /healthz after the barrage");
    let log = std::fs::read_to_string(site.log()).unwrap();
    assert!(!log.contains("panicked"), "a panic in the log:\n{log}");
    let journal = site.journal();
    assert_eq!(
        journal.len(),
        valid,
        "entries no valid scan made: {:?}",
        &journal[..journal.len() - valid]
    );
    // The guessing was seen: the scanners' random frames on signed-out devices are sign-in
    // attempts, and status says so for ops.
    let status = site.status().await;
    let sign_in = &status["sign_in"];
    assert!(sign_in["failures"].as_u64().unwrap_or(0) > 0, "{status}");
    assert!(
        sign_in["device_lockouts"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    println!(
        "barrage: {rounds} x {n} frames each on serial, TCP, MQTT and HTTP (+50 slow clients) in {barrage_secs:.1} s, {handled} scanner frames handled in all; RSS {warm} KiB after warm-up, {after} KiB after ({:+.1}%)",
        (after as f64 / warm as f64 - 1.0) * 100.0
    );
    assert!(
        (after as f64) <= warm as f64 * 1.10,
        "RSS grew from {warm} KiB to {after} KiB"
    );
    drop(app);

    // The disk cap reached: scans are refused with a reason, never lost, and the appliance
    // stays up and says it is not ready.
    let db = site.dir.path().join("holdfast.db");
    let config = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        config.replace("[store]\n", "[store]\nmax_size_mb = 16\n"),
    )
    .unwrap();
    // The store has grown past the cap (two years of history, say): 20 MiB of ballast.
    let ballast = rusqlite::Connection::open(&db).unwrap();
    ballast
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS test_ballast (b BLOB); \
             INSERT INTO test_ballast VALUES (zeroblob(20971520)); \
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
    drop(ballast);
    assert!(std::fs::metadata(&db).unwrap().len() > 16 * 1024 * 1024);
    let app = site.start_appliance();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !healthy(http_addr) {
        assert!(
            Instant::now() < deadline,
            "not serving with the cap reached: {}",
            tail(&site.log())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = reqwest::get(format!("{}/readyz", site.base)).await.unwrap();
    assert_eq!(
        ready.status().as_u16(),
        503,
        "ready with the disk cap reached"
    );
    let refused = site
        .http
        .post(format!("{}/api/v1/scan", site.base))
        .bearer_auth(DEVICE_TOKEN)
        .header("Idempotency-Key", "cap-1")
        .json(&json!({"code": "5901230000363"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 507);
    let body: Value = refused.json().await.unwrap();
    assert!(body["message"].is_string(), "{body}");
    tokio::task::block_in_place(|| stream_barrage(serial.as_mut(), n / 10, &mut rng));
    assert!(app.running() && healthy(http_addr));
    drop(app);
    assert_eq!(site.journal().len(), valid);
}
