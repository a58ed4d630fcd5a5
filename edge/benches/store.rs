//! Store benchmark: prints figures, with ratios against baselines measured in the same run.
//!
//! ```text
//! cargo bench -p holdfast --bench store                     # full size: 100k products, 500k quants
//! HOLDFAST_BENCH_SCALE=0.1 cargo bench -p holdfast --bench store   # a tenth, for a quick look
//! ```
//!
//! 1. Durable journal appends per second, 1 and 64 concurrent writers, against the baseline
//!    of plain SQLite with one fsynced commit per row (same pragmas and page size, same disk), and plain
//!    SQLite with 64 rows per commit beside them: what group commit alone would allow. With
//!    each store run, what the writer did per append: its thread's CPU, the bytes written
//!    (WAL frames and checkpoints), and the mean batch.
//! 2. Barcode lookup and view-quantity latency (p50/p99) with the large mirror loaded.
//! 3. The real binary on that database: startup time to a healthy `/healthz`, and resident
//!    memory after serving status requests.

// Test and benchmark code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use holdfast::store::{Lane, NewEntry, Store, StoreOptions};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::ops::{Operation, PickOp};

// Shared with the floor bench, which reads every field.
#[allow(dead_code)]
#[path = "support/threads.rs"]
mod threads;

fn entry(n: u64) -> NewEntry {
    NewEntry {
        id: None,
        device: format!("scanner-{}", n % 200),
        operator: Some("bench".into()),
        op: Operation::Pick(PickOp {
            picking_id: (n % 500) as i64 + 1,
            move_id: (n % 5000) as i64 + 1,
            product_id: (n % 1000) as i64 + 1,
            location_id: 100,
            lot_name: None,
            package_id: None,
            quantity: 1.0,
            view_quantity: 10.0,
        }),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Baseline: `per_commit` rows per fsynced commit with plain rusqlite (1: the baseline the
/// targets are ratios of; 64: what one fsync per 64 writers' rows would allow, a ceiling).
fn baseline_rows_per_sec(dir: &Path, n: usize, per_commit: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join(format!("baseline-{per_commit}.db"))).unwrap();
    conn.pragma_update(None, "page_size", holdfast::store::PAGE_SIZE)
        .unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        .unwrap();
    let payload = entry(1).op.to_payload();
    let start = Instant::now();
    for _ in 0..n / per_commit {
        let tx = conn.unchecked_transaction().unwrap();
        for _ in 0..per_commit {
            tx.execute("INSERT INTO t (payload) VALUES (?1)", [&payload])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    (n / per_commit * per_commit) as f64 / start.elapsed().as_secs_f64()
}

/// Seconds of CPU the store's writer threads have used so far.
fn writer_cpu_secs() -> f64 {
    threads::threads()
        .iter()
        .filter(|t| t.name == "store-writer")
        .map(|t| t.secs)
        .sum()
}

/// Bytes this process has written with write calls so far (`wchar` of /proc/self/io): in an
/// append phase, the WAL's frames and the checkpoints' copies of them.
fn written_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One append phase: the rate, and what the writer did for it.
struct Appends {
    per_sec: f64,
    /// Commands per committed transaction.
    batch: f64,
    /// Writer thread CPU per append, microseconds.
    writer_us: f64,
    /// Bytes written (WAL and checkpoints) per append.
    bytes: f64,
}

async fn appends(store: &Store, writers: u64, per_writer: u64) -> Appends {
    let stats = store.stats();
    let (commits, commands) = (
        stats.commits.load(Ordering::Relaxed),
        stats.commands.load(Ordering::Relaxed),
    );
    let cpu = writer_cpu_secs();
    let written = written_bytes();
    let per_sec = appends_per_sec(store, writers, per_writer).await;
    let n = (writers * per_writer) as f64;
    Appends {
        per_sec,
        batch: (stats.commands.load(Ordering::Relaxed) - commands) as f64
            / (stats.commits.load(Ordering::Relaxed) - commits).max(1) as f64,
        writer_us: (writer_cpu_secs() - cpu) * 1e6 / n,
        bytes: (written_bytes() - written) / n,
    }
}

async fn appends_per_sec(store: &Store, writers: u64, per_writer: u64) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..per_writer {
                store
                    .append(Lane::Device, entry(w * per_writer + n))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (writers * per_writer) as f64 / start.elapsed().as_secs_f64()
}

fn http_get(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.get(9..12)?.parse().ok()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let scale: f64 = std::env::var("HOLDFAST_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    // On the build's own disk (not a tmpfs), so fsync costs what it costs on the appliance.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("holdfast store benchmark (scale {scale})");

    // 1. Appends.
    let baseline = baseline_rows_per_sec(dir.path(), 2_000, 1);
    let ceiling = baseline_rows_per_sec(dir.path(), 64 * 400, 64);
    let store = Store::open(StoreOptions::new(dir.path().join("appends.db"), "bench")).unwrap();
    let one = rt.block_on(appends(&store, 1, 2_000));
    let many_run = rt.block_on(appends(&store, 64, 400));
    let many = many_run.per_sec;
    rt.block_on(store.shutdown()).unwrap();
    println!("\n## durable journal appends (acknowledged after fsync)");
    println!("baseline, plain SQLite, 1 row per commit : {baseline:>9.0} /s");
    println!(
        "store, 1 writer                          : {:>9.0} /s  ({:.2}x baseline; writer CPU {:.0} us, {:.0} bytes written per append)",
        one.per_sec,
        one.per_sec / baseline,
        one.writer_us,
        one.bytes
    );
    let met = many >= 50_000.0 && many / baseline >= 10.0;
    println!(
        "store, 64 concurrent writers             : {many:>9.0} /s  ({:.2}x baseline; target >= 50000 /s and >= 10x: {})",
        many / baseline,
        if met { "met" } else { "NOT met" }
    );
    println!(
        "plain SQLite, 64 rows per commit         : {ceiling:>9.0} /s  ({:.2}x baseline; the store reaches {:.0}% of it)",
        ceiling / baseline,
        100.0 * many / ceiling
    );
    println!(
        "  64 writers: {:.1} appends per commit, writer CPU {:.0} us, {:.0} bytes written per append",
        many_run.batch, many_run.writer_us, many_run.bytes
    );

    // 2. The large mirror.
    let spec = DatasetSpec {
        seed: 1,
        products: (100_000.0 * scale) as usize,
        quants: (500_000.0 * scale) as usize,
        pickings: (2_000.0 * scale) as usize,
    };
    let data = Dataset::generate(&spec);
    let db = dir.path().join("large.db");
    let store = Store::open(StoreOptions::new(&db, "bench")).unwrap();
    let start = Instant::now();
    let n = rt.block_on(holdfast::demo::load(&store, &data)).unwrap();
    let load = start.elapsed();
    println!(
        "\n## mirror of {} products, {} quants, {} pickings",
        spec.products, spec.quants, spec.pickings
    );
    println!(
        "load {n} records                       : {:>9.2} s ({:.0} records/s)",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64()
    );

    let mut rng = fastrand::Rng::with_seed(9);
    let codes: Vec<String> = (0..20_000)
        .map(|i| match i % 4 {
            0 | 1 => data.products[rng.usize(..data.products.len())]
                .barcode
                .clone()
                .unwrap_or_else(|| "MISSING".into()),
            2 => data.locations[rng.usize(..data.locations.len())]
                .barcode
                .clone()
                .unwrap_or_else(|| "WHSTOCK".into()),
            _ => format!("UNKNOWN{i}"),
        })
        .collect();
    let mut times = Vec::with_capacity(codes.len());
    for code in &codes {
        let t = Instant::now();
        let hits = store.read(|r| r.lookup_barcode(code)).unwrap();
        times.push(t.elapsed());
        std::hint::black_box(hits);
    }
    times.sort();
    let (b50, b99) = (percentile(&times, 0.5), percentile(&times, 0.99));

    let keys: Vec<_> = (0..20_000)
        .map(|_| {
            let q = &data.quants[rng.usize(..data.quants.len())];
            (
                q.product_id.0,
                q.location_id.0,
                q.lot_name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut times = Vec::with_capacity(keys.len());
    for (p, l, lot) in &keys {
        let t = Instant::now();
        let q = store.read(|r| r.on_hand(*p, *l, lot)).unwrap();
        times.push(t.elapsed());
        std::hint::black_box(q);
    }
    times.sort();
    let (q50, q99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    println!(
        "barcode lookup (7 kinds, one statement)   : p50 {:>6.1} us  p99 {:>6.1} us  (target p99 < 200 us)",
        micros(b50),
        micros(b99)
    );
    println!(
        "view on-hand quantity (mirror + journal)  : p50 {:>6.1} us  p99 {:>6.1} us  (target p99 < 200 us)",
        micros(q50),
        micros(q99)
    );
    rt.block_on(store.shutdown()).unwrap();
    drop(store);

    // 3. The real binary on the large database.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"bench\"\n[store]\npath = \"{}\"\n[http]\nlisten = \"{addr}\"\npublic_status = true\n[log]\nlevel = \"warn\"\n",
            db.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while http_get(&addr, "/healthz") != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(30), "no /healthz");
        std::thread::sleep(Duration::from_millis(1));
    }
    let startup = start.elapsed();
    for _ in 0..20 {
        assert_eq!(http_get(&addr, "/api/v1/status"), Some(200));
    }
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    println!("\n## the appliance on that database");
    println!(
        "startup to healthy /healthz              : {:>9.1} ms (target <= 300 ms)",
        startup.as_secs_f64() * 1e3
    );
    println!(
        "resident memory after 20 status requests : {:>9.1} MB (target <= 64 MB)",
        rss as f64 / 1024.0
    );
}
