//! Floor benchmark: handhelds scanning through the real device API (axum over TCP on
//! 127.0.0.1, bearer tokens, idempotency keys, one durable journal entry per scan), against
//! what the same scan costs when a scanner app asks the cloud directly, measured in the same
//! run.
//!
//! ```text
//! cargo bench -p holdfast --bench floor                            # full: 10 s per local run
//! HOLDFAST_BENCH_SCALE=0.2 cargo bench -p holdfast --bench floor   # a quick look (< 60 s)
//! ```
//!
//! 1. Local, closed loop: 1, 50 and 200 devices, each scanning again as soon as it has its
//!    answer (the saturation throughput; by Little's law the latency of a saturated closed
//!    loop is devices / throughput).
//! 2. Local, paced: 200 devices at 5,000 scans/s together (the target load), then at 1,000,
//!    then at 200 (one scan per device per second: a busy floor at human pace).
//! 3. Cloud only: the Odoo simulator with 30 ms added per call, then with a real Odoo
//!    profile (per-call processing measured on Odoo 18 plus WAN); a scan is what a cloud-only
//!    scanner app does: `search_read` the product by barcode, `write` the move line.
//! 4. Telemetry's cost: the 200 paced devices, closed loop and paced at 1,000 scans/s, with
//!    the MQTT telemetry off, on (to Mosquitto, status every 5 s, the snapshot read every
//!    2 s), and on with the broker black-holed (the link stalls behind a fault proxy).
//!    Needs Debian's `mosquitto`; skipped without it.
//! 5. The disk alone: one commit's WAL frames written and fsynced, paced at 200 and 1,000 per
//!    second and back to back, on the store's file system: the floor under any durable answer
//!    on this machine.
//! 6. The hand-offs alone: a task on a runtime like the server's hands a reply channel to a
//!    thread waiting like the store's writer and waits for its answer, paced at 200 and 1,000
//!    per second: the CPU a scan's wake-ups cost before any work (compare the server's CPU per
//!    scan, and the sleeps per scan in the system-call table).
//! 7. Cores kept awake: the 200 scans/s run again while a busy loop at `SCHED_IDLE` priority
//!    (util-linux's `chrt`) holds each core out of its idle state: the difference in CPU per
//!    scan is what waking idle cores costs this machine (skipped without `chrt`).
//!
//! Every device signs in by badge, opens a pick session on its own picking (one session per
//! picking), then scans products of that picking again and again (over-pick allowed, no bin
//! scan required): every answer must be 200 with one journal entry, or the benchmark stops.
//! Figures are printed with the targets of DESIGN.md beside them; nothing is asserted on
//! timing. CPU time, system calls and context switches are read per thread from /proc: the
//! server's runtime workers (`srv`), the store writer, and the load generator (the main thread).

// Benchmark code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast::floor::{Floor, sha256_hex};
use holdfast::http::AppState;
use holdfast::status::SiteStatus;
use holdfast::store::{FloorCmd, OperatorRow, Store, StoreOptions};
use holdfast::workflow::{FloorPolicy, OverPick};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::odoo::{ClientConfig, OdooClient};
use holdfast_sync::records::{MoveState, PickingCode, PickingState, Tracking};
use holdfast_sync::sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

#[path = "../../devices/tests/support/mosquitto.rs"]
mod mosquitto;
#[path = "support/threads.rs"]
mod threads;

/// What a cloud-only scanner waits for on top of the simulator's own answer, per call.
#[derive(Clone, Copy, Debug)]
struct CloudProfile {
    /// Odoo's processing of a `search_read` of a product by barcode.
    search_read: Duration,
    /// Odoo's processing of a `write` on a move line.
    write: Duration,
    /// The WAN round trip, added to every call.
    wan: Duration,
}

impl CloudProfile {
    /// The flat profile: 30 ms per call, the simulator's processing only.
    const FLAT: CloudProfile = CloudProfile {
        search_read: Duration::ZERO,
        write: Duration::ZERO,
        wan: Duration::from_millis(30),
    };

    /// What a real Odoo 18 took on this machine (ODOO.md: search_read ~31 ms, move-line
    /// write ~62 ms) plus 20 ms of WAN per call; each figure can be set in milliseconds with
    /// `HOLDFAST_BENCH_ODOO_SEARCH_MS`, `HOLDFAST_BENCH_ODOO_WRITE_MS`, `HOLDFAST_BENCH_WAN_MS`.
    fn real_odoo() -> CloudProfile {
        let ms = |name: &str, default: u64| {
            Duration::from_millis(
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default),
            )
        };
        CloudProfile {
            search_read: ms("HOLDFAST_BENCH_ODOO_SEARCH_MS", 31),
            write: ms("HOLDFAST_BENCH_ODOO_WRITE_MS", 62),
            wan: ms("HOLDFAST_BENCH_WAN_MS", 20),
        }
    }

    fn describe(&self) -> String {
        format!(
            "search_read +{} ms, write +{} ms, WAN +{} ms per call",
            self.search_read.as_millis(),
            self.write.as_millis(),
            self.wan.as_millis()
        )
    }
}

/// Targets of the floor (issue "floor speed"; DESIGN.md "Performance targets").
const TARGET_P99_HUMAN: Duration = Duration::from_millis(2);
const TARGET_P999_HUMAN: Duration = Duration::from_millis(5);
const TARGET_P99_1000: Duration = Duration::from_millis(3);
const TARGET_CLOSED_RATE: f64 = 10_000.0;
const PEAK_RATE: f64 = 5_000.0;
const TARGET_RATIO: f64 = 50.0;
const TARGET_CPU_LOW_US: f64 = 300.0;
/// Scans on one move for the unfolded-history run (times the scale).
const ONE_MOVE_SCANS: f64 = 10_000.0;
/// WAL frames (a page of the store's new-database size and its 24-byte header) one
/// single-scan commit writes: the journal entry, its effects, the running totals, the session
/// and the stored answer with their index pages (counted with strace over one-scan commits:
/// 18 to 22 with 1 KiB pages, where 4 KiB ones took 18).
const FRAMES_PER_SCAN_COMMIT: usize = 20;
const FRAME_BYTES: usize = holdfast::store::PAGE_SIZE as usize + 24;

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client: one connection per device, one request at a time, as
// a handheld does. Hand-written so that the load generator, which shares the machine's cores
// with the server, costs as little CPU as possible (its share is printed).

struct Conn {
    stream: TcpStream,
    host: String,
    out: Vec<u8>,
    buf: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            host: addr.to_string(),
            out: Vec::with_capacity(512),
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// POSTs a JSON body and returns the status and body of the answer.
    async fn post(&mut self, path: &str, token: &str, key: &str, body: &str) -> (u16, Vec<u8>) {
        use std::io::Write;
        self.out.clear();
        write!(
            self.out,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Idempotency-Key: {key}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .unwrap();
        self.stream.write_all(&self.out).await.unwrap();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap();
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line: {head}"));
                let mut length = None;
                for line in head.split("\r\n").skip(1) {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse::<usize>().ok();
                    }
                    assert!(
                        !name.eq_ignore_ascii_case("transfer-encoding"),
                        "this client reads only answers with a Content-Length: {head}"
                    );
                }
                let length =
                    length.unwrap_or_else(|| panic!("answer without Content-Length: {head}"));
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.fill().await;
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return (status, body);
            }
            self.fill().await;
        }
    }

    async fn fill(&mut self) {
        self.buf.reserve(16 * 1024);
        let n = self.stream.read_buf(&mut self.buf).await.unwrap();
        assert!(n > 0, "the server closed the connection");
    }
}

// ---------------------------------------------------------------------------------------
// Handhelds.

#[derive(Clone, Debug)]
struct Device {
    id: String,
    token: String,
    badge: String,
    picking: i64,
    /// Barcodes (else internal references) of the picking's products, scanned in turn.
    codes: Vec<String>,
}

/// A device signed in with its session open.
struct Handheld {
    conn: Conn,
    device: Device,
    /// Scans sent so far (names the idempotency keys).
    n: u64,
}

/// What one device saw during a run.
#[derive(Default)]
struct Seen {
    /// Round trips of the measured scans, in order.
    latencies: Vec<Duration>,
    failures: u64,
    first_failure: Option<String>,
    /// Paced runs: sends more than 5 ms behind their schedule.
    behind: u64,
}

impl Seen {
    fn failed(&mut self, message: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(message);
    }
}

impl Handheld {
    /// Signs the operator in by badge and opens a pick session on the device's picking.
    async fn sign_in(addr: SocketAddr, device: Device) -> Handheld {
        let mut conn = Conn::open(addr).await;
        let d = &device;
        let (status, body) = conn
            .post(
                "/api/v1/login",
                &d.token,
                &format!("{}-login", d.id),
                &json!({"badge": d.badge}).to_string(),
            )
            .await;
        assert_eq!(
            status,
            200,
            "sign-in on {}: {}",
            d.id,
            String::from_utf8_lossy(&body)
        );
        let (status, body) = conn
            .post(
                "/api/v1/sessions",
                &d.token,
                &format!("{}-start", d.id),
                &json!({"workflow": "pick", "picking_id": d.picking}).to_string(),
            )
            .await;
        assert_eq!(
            status,
            201,
            "pick session on picking {} from {}: {}",
            d.picking,
            d.id,
            String::from_utf8_lossy(&body)
        );
        Handheld { conn, device, n: 0 }
    }

    /// One scan: the next product code of the picking, under a new idempotency key.
    async fn scan(&mut self) -> Result<(), String> {
        let d = &self.device;
        let code = &d.codes[self.n as usize % d.codes.len()];
        let key = format!("{}-{}", d.id, self.n);
        self.n += 1;
        let body = format!(r#"{{"code":"{code}"}}"#);
        let (status, answer) = self.conn.post("/api/v1/scan", &d.token, &key, &body).await;
        let answer: Value = serde_json::from_slice(&answer).map_err(|e| {
            format!(
                "{}: answer is not JSON ({e}): {}",
                d.id,
                String::from_utf8_lossy(&answer)
            )
        })?;
        let ok = status == 200
            && matches!(answer["status"].as_str(), Some("ok" | "warning"))
            && answer["entries"].as_array().is_some_and(|e| e.len() == 1);
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} scanning {code} on picking {}: HTTP {status} {answer}",
                d.id, d.picking
            ))
        }
    }

    async fn warm_up(&mut self, scans: u64, seen: &mut Seen) {
        for _ in 0..scans {
            if let Err(e) = self.scan().await {
                seen.failed(e);
            }
        }
    }

    /// Scans back to back until `duration` after the start.
    async fn closed(mut self, warmup: u64, start: Arc<Barrier>, duration: Duration) -> Outcome {
        let mut seen = Seen::default();
        self.warm_up(warmup, &mut seen).await;
        start.wait().await;
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.timed_scan(&mut seen).await;
        }
        (self, seen)
    }

    /// Scans `scans` times back to back.
    async fn count(mut self, scans: u64) -> Outcome {
        let mut seen = Seen::default();
        for _ in 0..scans {
            self.timed_scan(&mut seen).await;
        }
        (self, seen)
    }

    /// One measured scan: its round trip, and its failure if any.
    async fn timed_scan(&mut self, seen: &mut Seen) {
        let t = Instant::now();
        let result = self.scan().await;
        seen.latencies.push(t.elapsed());
        if let Err(e) = result {
            seen.failed(e);
        }
    }

    /// Scans every `interval` (from `phase` after the start) for `duration`.
    async fn paced(
        mut self,
        warmup: u64,
        start: Arc<Barrier>,
        duration: Duration,
        interval: Duration,
        phase: Duration,
    ) -> Outcome {
        let mut seen = Seen::default();
        self.warm_up(warmup, &mut seen).await;
        start.wait().await;
        let begin = tokio::time::Instant::now();
        let mut due = begin + phase;
        while due < begin + duration {
            tokio::time::sleep_until(due).await;
            if due.elapsed() > Duration::from_millis(5) {
                seen.behind += 1;
            }
            self.timed_scan(&mut seen).await;
            due += interval;
        }
        (self, seen)
    }
}

type Outcome = (Handheld, Seen);

// ---------------------------------------------------------------------------------------
// What a run cost: writer counters, CPU per thread group, the whole machine.

#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    /// Seconds of CPU of the server's runtime threads (HTTP, floor logic, reads).
    server: f64,
    /// The store writer thread (transactions, fsync waits are not CPU).
    writer: f64,
    /// The load generator (the main thread drives its runtime).
    generator: f64,
    /// Other threads of this process.
    other: f64,
    /// What the server's runtime threads and the writer asked of the kernel.
    server_calls: threads::Calls,
    writer_calls: threads::Calls,
}

impl Cpu {
    fn read() -> Cpu {
        let mut cpu = Cpu::default();
        for thread in threads::threads() {
            if thread.name.starts_with("srv") {
                cpu.server += thread.secs;
                cpu.server_calls.add(&thread.calls);
            } else if thread.name == "store-writer" {
                cpu.writer += thread.secs;
                cpu.writer_calls.add(&thread.calls);
            } else if thread.main {
                cpu.generator += thread.secs;
            } else {
                cpu.other += thread.secs;
            }
        }
        cpu
    }

    fn total(&self) -> f64 {
        self.server + self.writer + self.generator + self.other
    }

    fn minus(&self, before: &Cpu) -> Cpu {
        Cpu {
            server: self.server - before.server,
            writer: self.writer - before.writer,
            generator: self.generator - before.generator,
            other: self.other - before.other,
            server_calls: self.server_calls.minus(&before.server_calls),
            writer_calls: self.writer_calls.minus(&before.writer_calls),
        }
    }
}

/// The whole machine from /proc/stat: (busy, total) in ticks over all cores.
fn machine_ticks() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

#[derive(Clone, Copy)]
struct Snapshot {
    commits: u64,
    commands: u64,
    cpu: Cpu,
    machine: (f64, f64),
}

impl Snapshot {
    fn take(store: &Store) -> Snapshot {
        use std::sync::atomic::Ordering::Relaxed;
        Snapshot {
            commits: store.stats().commits.load(Relaxed),
            commands: store.stats().commands.load(Relaxed),
            cpu: Cpu::read(),
            machine: machine_ticks(),
        }
    }
}

/// The disk's own floor under a durable answer: one commit's WAL frames written and made
/// durable with fsync (what SQLite does per commit with `synchronous=FULL`), at `rate` per
/// second (0: back to back) for `duration`, in `dir` (the store's file system). Sorted.
fn fsync_floor(dir: &std::path::Path, rate: f64, duration: Duration) -> Vec<Duration> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-floor.wal");
    let file = std::fs::File::create(&path).unwrap();
    let frames = vec![0x5a_u8; FRAMES_PER_SCAN_COMMIT * FRAME_BYTES];
    // Like a WAL after its first restart: the file is there, commits overwrite it from the
    // start.
    let span = 4 << 20;
    for offset in (0..span).step_by(frames.len()) {
        file.write_all_at(&frames, offset as u64).unwrap();
    }
    file.sync_all().unwrap();
    let mut latencies = Vec::new();
    let (start, mut offset) = (Instant::now(), 0);
    let mut due = start;
    while start.elapsed() < duration {
        if rate > 0.0 {
            due += Duration::from_secs_f64(1.0 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        file.write_all_at(&frames, offset as u64).unwrap();
        offset = (offset + frames.len()) % span;
        let t = Instant::now();
        file.sync_all().unwrap();
        latencies.push(t.elapsed());
    }
    drop(file);
    std::fs::remove_file(path).unwrap();
    latencies.sort();
    latencies
}

/// The hand-offs under every scan, without its work: a task on a runtime built as the
/// server's (threads `hop-srv`) hands a reply channel to a thread that waits on a tokio
/// channel as the store's writer does (`hop-writer`), which answers at once; the task waits
/// for the answer. Paced at `rate` per second for `duration`: what a scan's wake-ups cost in
/// CPU on this machine before any parsing, reading or committing.
fn handoff_floor(rate: f64, duration: Duration) -> Handoffs {
    use tokio::sync::{mpsc, oneshot};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("hop-srv")
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<()>>(64);
    let thread = std::thread::Builder::new()
        .name("hop-writer".into())
        .spawn(move || {
            let waiter = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            while let Some(reply) = waiter.block_on(rx.recv()) {
                let _ = reply.send(());
            }
        })
        .unwrap();
    let sum = |name: &str| {
        threads::threads().iter().filter(|t| t.name == name).fold(
            (0.0, threads::Calls::default()),
            |(secs, mut calls), t| {
                calls.add(&t.calls);
                (secs + t.secs, calls)
            },
        )
    };
    let before = (sum("hop-srv"), sum("hop-writer"));
    // The thread ends once every sender is gone: keep one until it has been read.
    let keep = tx.clone();
    let mut sorted = rt
        .block_on(rt.spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (start, mut out) = (Instant::now(), Vec::new());
            while start.elapsed() < duration {
                ticks.tick().await;
                let t = Instant::now();
                let (reply, answer) = oneshot::channel();
                tx.send(reply).await.unwrap();
                answer.await.unwrap();
                out.push(t.elapsed());
            }
            out
        }))
        .unwrap();
    let after = (sum("hop-srv"), sum("hop-writer"));
    drop(keep);
    thread.join().unwrap();
    drop(rt);
    sorted.sort();
    Handoffs {
        rate,
        server_secs: after.0.0 - before.0.0,
        server_calls: after.0.1.minus(&before.0.1),
        thread_secs: after.1.0 - before.1.0,
        sorted,
    }
}

/// What [`handoff_floor`] measured.
struct Handoffs {
    rate: f64,
    sorted: Vec<Duration>,
    server_secs: f64,
    server_calls: threads::Calls,
    thread_secs: f64,
}

impl Handoffs {
    fn row(&self) {
        let n = self.sorted.len().max(1) as f64;
        println!(
            "{:<26} {:>8} {:>9.3} {:>9.3} {:>12.0} {:>12.0} {:>14}",
            format!("paced {:.0}/s", self.rate),
            self.sorted.len(),
            ms(percentile(&self.sorted, 0.5)),
            ms(percentile(&self.sorted, 0.99)),
            self.server_secs / n * 1e6,
            self.thread_secs / n * 1e6,
            format!(
                "{:.1} (+{:.1})",
                self.server_calls.sleeps as f64 / n,
                self.server_calls.preempted as f64 / n
            ),
        );
    }
}

/// Busy loops at the lowest priority Linux has (`SCHED_IDLE`, through util-linux's `chrt`),
/// one per core, so no core halts while they run: any runnable thread takes the core from
/// them at once. A scan at human pace otherwise finds the cores idle and pays for waking
/// them (on a VM a halt is an exit to the hypervisor) and for caches others have cooled.
/// The loops are other processes: they show in the CPU table's "others" column, and they are
/// stopped (and reaped) when this is dropped.
struct Awake(Vec<std::process::Child>);

impl Awake {
    fn start() -> Result<Awake, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut spinners = Awake(Vec::with_capacity(cores));
        for _ in 0..cores {
            let child = std::process::Command::new("chrt")
                .args(["--idle", "0", "sh", "-c", "while :; do :; done"])
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run chrt: {e}"))?;
            spinners.0.push(child);
        }
        // chrt ends at once when the policy cannot be set.
        std::thread::sleep(Duration::from_millis(100));
        for child in &mut spinners.0 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("chrt --idle ended at once ({status})"));
            }
        }
        Ok(spinners)
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A run's figures.
struct Run {
    label: String,
    devices: usize,
    scans: usize,
    elapsed: Duration,
    sorted: Vec<Duration>,
    /// p50 of the first and the last tenth of each device's scans.
    p50_first: Duration,
    p50_last: Duration,
    /// p50 of each tenth, first to last.
    tenths: Vec<Duration>,
    commits: u64,
    commands: u64,
    cpu: Cpu,
    /// Busy fraction of all cores, and the part of it not spent by this process.
    machine_busy: f64,
    others_busy: f64,
    behind: u64,
    cores: f64,
}

impl Run {
    fn new(
        label: String,
        seen: Vec<Seen>,
        elapsed: Duration,
        before: Snapshot,
        after: Snapshot,
    ) -> Run {
        let failures: u64 = seen.iter().map(|s| s.failures).sum();
        if failures > 0 {
            let first = seen.iter().find_map(|s| s.first_failure.clone());
            panic!(
                "{label}: {failures} scans failed (a local scan must be answered 200, ok or warning, with one journal entry); first: {}",
                first.unwrap_or_default()
            );
        }
        // p50 of each tenth of every device's scans, in the order they were made.
        let tenths: Vec<Duration> = (0..10)
            .map(|k| {
                let mut part: Vec<Duration> = seen
                    .iter()
                    .flat_map(|s| {
                        let n = s.latencies.len();
                        let (from, to) = if n < 10 {
                            (0, n)
                        } else {
                            (n * k / 10, n * (k + 1) / 10)
                        };
                        s.latencies[from..to].iter().copied()
                    })
                    .collect();
                part.sort();
                percentile(&part, 0.5)
            })
            .collect();
        let (p50_first, p50_last) = (tenths[0], tenths[9]);
        let behind = seen.iter().map(|s| s.behind).sum();
        let devices = seen.len();
        let mut sorted: Vec<Duration> = seen.into_iter().flat_map(|s| s.latencies).collect();
        sorted.sort();
        let cpu = after.cpu.minus(&before.cpu);
        let busy = after.machine.0 - before.machine.0;
        let total = (after.machine.1 - before.machine.1).max(1.0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Run {
            label,
            devices,
            scans: sorted.len(),
            elapsed,
            sorted,
            p50_first,
            p50_last,
            tenths,
            commits: after.commits - before.commits,
            commands: after.commands - before.commands,
            cpu,
            machine_busy: busy / total,
            others_busy: ((busy / 100.0 - cpu.total()) / (total / 100.0)).max(0.0),
            behind,
            cores,
        }
    }

    fn rate(&self) -> f64 {
        self.scans as f64 / self.elapsed.as_secs_f64()
    }

    fn p(&self, p: f64) -> Duration {
        percentile(&self.sorted, p)
    }

    fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }

    fn header() {
        println!(
            "{:<26} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>21}",
            "run",
            "devices",
            "scans",
            "scans/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "cmds/txn",
            "p50 first->last 10%"
        );
    }

    fn row(&self) {
        println!(
            "{:<26} {:>7} {:>8} {:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>8.2} {:>9.1} {:>9.3} -> {:<8.3}",
            self.label,
            self.devices,
            self.scans,
            self.rate(),
            ms(self.p(0.5)),
            ms(self.p(0.99)),
            ms(self.p(0.999)),
            ms(self.max()),
            self.commands as f64 / self.commits.max(1) as f64,
            ms(self.p50_first),
            ms(self.p50_last),
        );
    }

    fn calls_row(&self) {
        let per = |n: u64| n as f64 / self.scans.max(1) as f64;
        let (server, writer) = (&self.cpu.server_calls, &self.cpu.writer_calls);
        println!(
            "{:<26} {:>7} {:>12.1} {:>13.1} {:>13} {:>12.1} {:>13.1} {:>14.1}",
            self.label,
            self.devices,
            per(server.reads),
            per(server.writes),
            format!("{:.1} (+{:.1})", per(server.sleeps), per(server.preempted)),
            per(writer.reads),
            per(writer.writes),
            per(writer.sleeps),
        );
    }

    fn cpu_row(&self) {
        let per = |s: f64| s / self.scans.max(1) as f64 * 1e6;
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{:<26} {:>7} {:>10.0} {:>10.0} {:>10.0} {:>12.0}% {:>11.0}% {:>11.0}% {:>8}",
            self.label,
            self.devices,
            per(self.cpu.server),
            per(self.cpu.writer),
            per(self.cpu.generator),
            self.cpu.server / secs * 100.0,
            self.cpu.generator / secs * 100.0,
            self.others_busy * self.cores * 100.0,
            format!("{:.0}%", self.machine_busy * 100.0),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Local runs.

/// Signs `devices` in, warms them up, then runs them all at once; returns the figures and the
/// handhelds (still signed in, sessions open) for a later run.
async fn local_closed(
    store: &Store,
    handhelds: Vec<Handheld>,
    warmup: u64,
    duration: Duration,
    label: String,
) -> (Run, Vec<Handheld>) {
    let start = Arc::new(Barrier::new(handhelds.len() + 1));
    let tasks: Vec<_> = handhelds
        .into_iter()
        .map(|h| tokio::spawn(h.closed(warmup, start.clone(), duration)))
        .collect();
    finish(store, start, tasks, label).await
}

async fn local_paced(
    store: &Store,
    handhelds: Vec<Handheld>,
    warmup: u64,
    duration: Duration,
    rate: f64,
    label: String,
) -> (Run, Vec<Handheld>) {
    let n = handhelds.len();
    let interval = Duration::from_secs_f64(n as f64 / rate);
    let start = Arc::new(Barrier::new(n + 1));
    let tasks: Vec<_> = handhelds
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let phase = interval.mul_f64(i as f64 / n as f64);
            tokio::spawn(h.paced(warmup, start.clone(), duration, interval, phase))
        })
        .collect();
    finish(store, start, tasks, label).await
}

async fn finish(
    store: &Store,
    start: Arc<Barrier>,
    tasks: Vec<tokio::task::JoinHandle<Outcome>>,
    label: String,
) -> (Run, Vec<Handheld>) {
    start.wait().await;
    let before = Snapshot::take(store);
    let started = Instant::now();
    let mut handhelds = Vec::with_capacity(tasks.len());
    let mut seen = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (h, s) = task.await.unwrap();
        handhelds.push(h);
        seen.push(s);
    }
    let elapsed = started.elapsed();
    let after = Snapshot::take(store);
    (Run::new(label, seen, elapsed, before, after), handhelds)
}

async fn sign_in_all(addr: SocketAddr, devices: &[Device]) -> Vec<Handheld> {
    let tasks: Vec<_> = devices
        .iter()
        .cloned()
        .map(|d| tokio::spawn(Handheld::sign_in(addr, d)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

// ---------------------------------------------------------------------------------------
// The cloud-only scanner app.

struct CloudScanner {
    client: OdooClient,
    /// `barcode` or `default_code`.
    field: &'static str,
    code: String,
    product_id: i64,
    line_id: i64,
    quantity: f64,
    profile: CloudProfile,
}

impl CloudScanner {
    /// Resolves the barcode, then records the pick on the move line.
    async fn scan(&mut self) -> Result<(), String> {
        let found = self
            .client
            .search_read(
                "product.product",
                json!([[self.field, "=", self.code]]),
                &["id"],
                "id",
                Some(1),
            )
            .await
            .map_err(|e| format!("search_read {}: {e}", self.code))?;
        tokio::time::sleep(self.profile.search_read + self.profile.wan).await;
        let id = found
            .first()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_i64);
        if id != Some(self.product_id) {
            return Err(format!(
                "{} resolved to {id:?}, not {}",
                self.code, self.product_id
            ));
        }
        self.quantity += 1.0;
        self.client
            .write(
                "stock.move.line",
                &[self.line_id],
                json!({"quantity": self.quantity, "picked": true}),
            )
            .await
            .map_err(|e| format!("write stock.move.line {}: {e}", self.line_id))?;
        tokio::time::sleep(self.profile.write + self.profile.wan).await;
        Ok(())
    }

    async fn run(mut self, warmup: u64, start: Arc<Barrier>, scans: u64) -> Seen {
        let mut seen = Seen::default();
        for _ in 0..warmup {
            if let Err(e) = self.scan().await {
                seen.failed(e);
            }
        }
        start.wait().await;
        for _ in 0..scans {
            let t = Instant::now();
            let result = self.scan().await;
            seen.latencies.push(t.elapsed());
            if let Err(e) = result {
                seen.failed(e);
            }
        }
        seen
    }
}

async fn cloud_run(
    store: &Store,
    scanners: Vec<CloudScanner>,
    warmup: u64,
    scans: u64,
    label: String,
) -> Run {
    let start = Arc::new(Barrier::new(scanners.len() + 1));
    let tasks: Vec<_> = scanners
        .into_iter()
        .map(|s| tokio::spawn(s.run(warmup, start.clone(), scans)))
        .collect();
    start.wait().await;
    let before = Snapshot::take(store);
    let started = Instant::now();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    Run::new(label, seen, elapsed, before, Snapshot::take(store))
}

// ---------------------------------------------------------------------------------------

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// What runs now, on stderr (the figures come at the end, on stdout).
/// Telemetry to the broker behind `addr`, every 5 s (the shortest interval allowed).
fn telemetry_settings(addr: SocketAddr) -> holdfast::telemetry::Settings {
    use holdfast::telemetry::profile::{Broker, Login, Profile, Protocol};
    holdfast::telemetry::Settings {
        site: "bench".into(),
        broker: Broker {
            profile: Profile::Generic {
                prefix: "holdfast".into(),
            },
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: None,
            client_id: "holdfast-bench".into(),
            login: Login::None,
            protocol: Protocol::V311,
            keep_alive: Duration::from_secs(5),
            qos1: true,
            will_delay: Duration::ZERO,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
        },
        interval: Duration::from_secs(5),
        events_buffer: 1000,
        disk_pressure_bytes: 500_000_000,
    }
}

fn progress(what: &str) {
    eprintln!("floor bench: {what}");
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn main() {
    let scale: f64 = std::env::var("HOLDFAST_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let run_time = Duration::from_secs_f64((10.0 * scale).max(1.0));
    let warmup = 10;
    let cloud_scans_one = ((100.0 * scale) as u64).max(20);
    let cloud_scans_many = ((40.0 * scale) as u64).max(8);

    // 1 + 50 + 200 devices in closed loop, 200 paced: each on its own picking.
    let closed_sizes = [1usize, 50, 200];
    let paced_devices = 200;
    // One more for the run on a single move.
    let needed = closed_sizes.iter().sum::<usize>() + paced_devices + 1;
    let spec = DatasetSpec {
        seed: 1,
        products: 2_000,
        quants: 10_000,
        pickings: 1_500,
    };
    let data = Dataset::generate(&spec);

    // Open deliveries and internal transfers, and the codes of their untracked products.
    let product = |id: i64| &data.products[id as usize - 1];
    let mut eligible: Vec<(i64, Vec<String>)> = Vec::new();
    for p in &data.pickings {
        let kind = data
            .picking_types
            .iter()
            .find(|t| t.id == p.picking_type_id)
            .map_or(PickingCode::Internal, |t| t.code);
        let open = matches!(
            p.state,
            PickingState::Assigned | PickingState::Confirmed | PickingState::Waiting
        );
        if !open || kind == PickingCode::Incoming {
            continue;
        }
        let mut codes = Vec::new();
        for m in data
            .moves
            .iter()
            .filter(|m| m.picking_id == Some(p.id) && m.state != MoveState::Cancel)
        {
            let pr = product(m.product_id.0);
            if pr.active && pr.tracking == Tracking::None {
                let code = pr.barcode.clone().or_else(|| pr.default_code.clone());
                if let Some(code) = code.filter(|c| !codes.contains(c)) {
                    codes.push(code);
                }
            }
        }
        if !codes.is_empty() {
            eligible.push((p.id.0, codes));
        }
    }
    assert!(
        eligible.len() >= needed,
        "the data set has {} open outgoing/internal pickings with untracked products; {needed} needed",
        eligible.len()
    );
    let devices: Vec<Device> = eligible
        .iter()
        .take(needed)
        .enumerate()
        .map(|(i, (picking, codes))| Device {
            id: format!("hh-{i:03}"),
            token: format!("bench-token-{i:03}-{}", sha256_hex(&i.to_le_bytes())),
            badge: format!("BADGE-{i:03}"),
            picking: *picking,
            codes: codes.clone(),
        })
        .collect();

    // The server: its own multi-thread runtime (threads named `srv`), as the appliance runs.
    let srv = tokio::runtime::Builder::new_multi_thread()
        .thread_name("srv")
        .enable_all()
        .build()
        .unwrap();
    // The load generator: a current-thread runtime on the main thread.
    let generator = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // On the build's own disk (not a tmpfs), so fsync costs what it costs on the appliance.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = dir.path().join("floor.db");
    let store = Store::open(StoreOptions::new(&db, "bench")).unwrap();
    let loaded = srv.block_on(holdfast::demo::load(&store, &data)).unwrap();
    srv.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, d) in devices.iter().enumerate() {
            let (store, d) = (store.clone(), d.clone());
            tasks.spawn(async move {
                store
                    .floor(FloorCmd::IssueDevice {
                        id: d.id.clone(),
                        token_sha256: sha256_hex(d.token.as_bytes()),
                    })
                    .await
                    .unwrap();
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
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    });
    let floor = Floor::new(
        store.clone(),
        FloorPolicy {
            require_source_location: false,
            over_pick: OverPick::Allow,
            // Every device scans its line thousands of times: no ceiling on over-picks.
            over_pick_factor: u32::MAX,
            ..FloorPolicy::default()
        },
        None,
        vec![],
    );
    let state = AppState {
        ..AppState::new(
            store.clone(),
            floor,
            SiteStatus {
                id: "bench".into(),
                name: "Floor benchmark".into(),
            },
        )
    };
    let state_for_telemetry = state.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = srv
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // Every device of the benchmark connects from 127.0.0.1: no per-address cap here (a site
    // has one address per handheld).
    let options = holdfast::http::ServeOptions {
        limits: holdfast::http::ConnLimits {
            max_connections: 4096,
            per_client: 4096,
            ..holdfast::http::ConnLimits::default()
        },
        ..holdfast::http::ServeOptions::default()
    };
    let server = srv.spawn(holdfast::http::serve_with(
        listener,
        state,
        options,
        shutdown.clone(),
    ));

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("holdfast floor benchmark (scale {scale})");
    println!(
        "device API over HTTP/1.1 keep-alive on {addr}; every scan = 1 durable journal entry (synchronous=FULL, {})",
        dir.path().display()
    );
    println!(
        "mirror: {} products, {} quants, {} pickings ({loaded} records; {} open outgoing/internal pickings usable, {needed} used); {cores} cores",
        spec.products,
        spec.quants,
        spec.pickings,
        eligible.len()
    );

    // 1. Local, closed loop.
    let db_before = file_size(&db) + file_size(&db.with_extension("db-wal"));
    let mut runs = Vec::new();
    let mut rest = &devices[..];
    for &n in &closed_sizes {
        let (mine, others) = rest.split_at(n);
        rest = others;
        progress(&format!("local, closed loop, {n} devices"));
        let handhelds = generator.block_on(sign_in_all(addr, mine));
        let (run, _) = generator.block_on(local_closed(
            &store,
            handhelds,
            warmup,
            run_time,
            "local, closed loop".into(),
        ));
        runs.push(run);
    }
    // 1b. One device on one move: does a scan get slower as unfolded effects pile up on it?
    let one_move_scans = ((ONE_MOVE_SCANS * scale) as u64).max(1_000);
    let (mine, others) = rest.split_at(1);
    rest = others;
    let one = Device {
        codes: mine[0].codes[..1].to_vec(),
        ..mine[0].clone()
    };
    progress(&format!(
        "local, one device on one move, {one_move_scans} scans"
    ));
    let one_move = generator.block_on(async {
        let h = Handheld::sign_in(addr, one).await;
        let before = Snapshot::take(&store);
        let started = Instant::now();
        let (_, seen) = h.count(one_move_scans).await;
        let elapsed = started.elapsed();
        Run::new(
            format!("local, one move, {one_move_scans}"),
            vec![seen],
            elapsed,
            before,
            Snapshot::take(&store),
        )
    });
    // 2. Local, paced.
    let mut handhelds = generator.block_on(sign_in_all(addr, &rest[..paced_devices]));
    let mut paced = Vec::new();
    for rate in [PEAK_RATE, 1_000.0, 200.0] {
        progress(&format!(
            "local, {paced_devices} devices paced at {rate:.0} scans/s"
        ));
        let (run, back) = generator.block_on(local_paced(
            &store,
            handhelds,
            warmup.min(3),
            run_time,
            rate,
            format!("local, paced {rate:.0}/s"),
        ));
        handhelds = back;
        paced.push(run);
    }
    // 2b. 200/s again with every core kept out of idle: what waking an idle core costs.
    let awake = match Awake::start() {
        Err(why) => {
            println!("(the cores-awake run skipped: {why})");
            None
        }
        Ok(spinners) => {
            progress(&format!(
                "local, {paced_devices} devices paced at 200 scans/s, cores kept awake"
            ));
            let (run, back) = generator.block_on(local_paced(
                &store,
                handhelds,
                warmup.min(3),
                run_time,
                200.0,
                "local, 200/s, cores awake".into(),
            ));
            drop(spinners);
            handhelds = back;
            Some(run)
        }
    };
    // 4. Telemetry off, on, and on with its broker black-holed.
    let mut telemetry_runs = Vec::new();
    match mosquitto::binary() {
        None => println!("(telemetry runs skipped: mosquitto is not installed)"),
        Some(bin) => {
            let mdir = tempfile::tempdir().unwrap();
            let addr: SocketAddr = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let _broker = mosquitto::Mosquitto::plain(&bin, mdir.path(), addr, true);
            let proxy = srv
                .block_on(holdfast_sync::sim::proxy::FaultProxy::start(addr))
                .unwrap();
            let settings = telemetry_settings(proxy.addr());
            let telemetry = holdfast::telemetry::Telemetry::new(&settings);
            let cancel = tokio_util::sync::CancellationToken::new();
            let mut on = state_for_telemetry.clone();
            on.telemetry = Some(telemetry.clone());
            // What the sampler reads every 2 s: the status snapshot, on this store.
            let mut reads: Vec<Duration> = (0..9)
                .map(|_| {
                    let t = Instant::now();
                    holdfast::http::full_status(&on).unwrap();
                    t.elapsed()
                })
                .collect();
            reads.sort();
            println!(
                "\nthe status snapshot telemetry reads every 2 s: {:.2} ms (median of 9, journal of {} entries)",
                ms(reads[4]),
                store
                    .read(|r| r.queue_stats())
                    .unwrap()
                    .by_state
                    .values()
                    .sum::<i64>()
            );
            // Off before and after the telemetry runs: the store grows during the runs, so
            // the two "off" runs bound what the growth alone does.
            for (label, setup) in [
                ("off", None),
                ("on", Some(holdfast_sync::sim::proxy::Link::Up)),
                (
                    "on, broker black-holed",
                    Some(holdfast_sync::sim::proxy::Link::Stall),
                ),
                ("off again", Some(holdfast_sync::sim::proxy::Link::Refuse)),
            ] {
                match setup {
                    None => {}
                    Some(holdfast_sync::sim::proxy::Link::Refuse) => cancel.cancel(),
                    Some(holdfast_sync::sim::proxy::Link::Up) => {
                        srv.spawn(holdfast::telemetry::run(
                            on.clone(),
                            settings.clone(),
                            telemetry.clone(),
                            cancel.clone(),
                        ));
                        // Connected, and the first status sent.
                        let start = Instant::now();
                        while !telemetry.health().connected
                            && start.elapsed() < Duration::from_secs(10)
                        {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Some(link) => proxy.set(link),
                }
                progress(&format!("telemetry {label}: closed loop and paced 1000/s"));
                let (run, back) = generator.block_on(local_closed(
                    &store,
                    handhelds,
                    warmup.min(3),
                    run_time,
                    format!("telemetry {label}, closed"),
                ));
                telemetry_runs.push(run);
                let (run, back) = generator.block_on(local_paced(
                    &store,
                    back,
                    warmup.min(3),
                    run_time,
                    1_000.0,
                    format!("telemetry {label}, 1000/s"),
                ));
                telemetry_runs.push(run);
                handhelds = back;
            }
            let health = telemetry.health();
            println!(
                "\n## telemetry's cost on the floor ({paced_devices} devices; link at the end: connected {}, {} events buffered, {} dropped)",
                health.connected, health.buffered_events, health.dropped_events
            );
            Run::header();
            for r in &telemetry_runs {
                r.row();
            }
            // The baseline: the mean of the two "off" runs around the others.
            let (off, again) = (&telemetry_runs[0..2], &telemetry_runs[6..8]);
            let base_rate = (off[0].rate() + again[0].rate()) / 2.0;
            let base_p99 = (ms(off[1].p(0.99)) + ms(again[1].p(0.99))) / 2.0;
            for pair in telemetry_runs.chunks(2) {
                println!(
                    "{}: closed-loop scans/s {:.2}x of off, paced p99 {:.2}x of off",
                    pair[0].label,
                    pair[0].rate() / base_rate,
                    ms(pair[1].p(0.99)) / base_p99,
                );
            }
        }
    }
    drop(handhelds);
    // The disk alone, at the paced runs' rates and back to back, nothing else running (after
    // the handhelds are done: their idle connections would outlive the server's time-out).
    progress("the disk's floor: a commit's WAL write + fsync");
    let floor_rates = [200.0, 1_000.0, 0.0];
    let disk: Vec<Vec<Duration>> = floor_rates
        .iter()
        .map(|&rate| fsync_floor(dir.path(), rate, run_time))
        .collect();
    progress("the hand-offs' floor: a task to a waiting thread and back");
    let handoffs: Vec<Handoffs> = [200.0, 1_000.0]
        .iter()
        .map(|&rate| handoff_floor(rate, run_time))
        .collect();
    // Every measured local scan since `db_before` (the telemetry runs' too; warm-ups aside).
    let local_scans: u64 = runs
        .iter()
        .chain(std::iter::once(&one_move))
        .chain(&paced)
        .chain(&awake)
        .chain(&telemetry_runs)
        .map(|r| r.scans as u64)
        .sum();
    let wal = file_size(&db.with_extension("db-wal"));
    let db_after = file_size(&db) + wal;

    // 3. The cloud only: the same data set in the simulator, 30 ms added per call.
    let sim = srv
        .block_on(Simulator::start(SimConfig::default(), &data))
        .unwrap();
    let sim_config = sim.config().clone();
    let mut lines = data.move_lines.iter().filter(|l| {
        let Some(picking) = l.picking_id else {
            return false;
        };
        let p = &data.pickings[picking.0 as usize - 1];
        let kind = data
            .picking_types
            .iter()
            .find(|t| t.id == p.picking_type_id)
            .map_or(PickingCode::Internal, |t| t.code);
        let pr = product(l.product_id.0);
        p.state == PickingState::Assigned
            && kind != PickingCode::Incoming
            && pr.active
            && pr.tracking == Tracking::None
            && pr.barcode.is_some()
    });
    let mut seen_pickings = HashSet::new();
    let mut scanners = Vec::new();
    // The flat profile with 1 and 50 devices, the real Odoo profile with 1.
    let real_odoo = CloudProfile::real_odoo();
    let cloud_runs = [
        (1usize, CloudProfile::FLAT, cloud_scans_one),
        (50, CloudProfile::FLAT, cloud_scans_many),
        (1, real_odoo, cloud_scans_one),
    ];
    let cloud_sizes: Vec<usize> = cloud_runs.iter().map(|r| r.0).collect();
    for _ in 0..cloud_sizes.iter().sum::<usize>() {
        let line = lines
            .by_ref()
            .find(|l| seen_pickings.insert(l.picking_id))
            .expect("enough assigned pickings with move lines");
        let config = ClientConfig::new(
            &sim.url(),
            &sim_config.database,
            &sim_config.login,
            &sim_config.api_key,
            1,
        );
        let client = generator.block_on(OdooClient::connect(config)).unwrap();
        scanners.push(CloudScanner {
            client,
            field: "barcode",
            code: product(line.product_id.0).barcode.clone().unwrap(),
            product_id: line.product_id.0,
            line_id: line.id.0,
            quantity: line.quantity,
            profile: CloudProfile::FLAT,
        });
    }
    let mut cloud = Vec::new();
    for (n, profile, scans) in cloud_runs {
        progress(&format!("cloud only, {n} devices, {}", profile.describe()));
        let mine: Vec<_> = scanners
            .drain(..n)
            .map(|s| CloudScanner { profile, ..s })
            .collect();
        let label = if profile.wan == CloudProfile::FLAT.wan && profile.write.is_zero() {
            "cloud only, 30 ms per call"
        } else {
            "cloud only, real Odoo"
        };
        cloud.push(generator.block_on(cloud_run(&store, mine, 2, scans, label.into())));
    }

    // The report.
    println!(
        "\n## local: device API, closed loop ({:.0} s per run after {warmup} warm-up scans per device; each device scans again as soon as answered)",
        run_time.as_secs_f64()
    );
    Run::header();
    for r in &runs {
        r.row();
    }
    one_move.row();
    println!(
        "\n## local: 200 devices paced (open loop; {:.0} s per run), each at rate/200",
        run_time.as_secs_f64()
    );
    Run::header();
    for r in paced.iter().chain(&awake) {
        r.row();
    }
    for r in &paced {
        println!(
            "  {}: {} of {} sends were more than 5 ms behind schedule",
            r.label, r.behind, r.scans
        );
    }
    println!(
        "\n## the disk's floor: one commit's WAL write ({FRAMES_PER_SCAN_COMMIT} frames, {} KiB) + fsync, alone ({:.0} s each)",
        FRAMES_PER_SCAN_COMMIT * FRAME_BYTES / 1024,
        run_time.as_secs_f64()
    );
    println!(
        "{:<26} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "rate", "commits", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for (rate, sorted) in floor_rates.iter().zip(&disk) {
        let label = if *rate > 0.0 {
            format!("paced {rate:.0}/s")
        } else {
            "back to back".into()
        };
        println!(
            "{:<26} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            label,
            sorted.len(),
            ms(percentile(sorted, 0.5)),
            ms(percentile(sorted, 0.99)),
            ms(percentile(sorted, 0.999)),
            ms(*sorted.last().unwrap_or(&Duration::ZERO)),
        );
    }
    println!(
        "\n## the hand-offs' floor: a task on a runtime like the server's hands a reply channel to a thread waiting like the store's writer, which answers at once (no HTTP, no SQLite; {:.0} s each)",
        run_time.as_secs_f64()
    );
    println!(
        "{:<26} {:>8} {:>9} {:>9} {:>12} {:>12} {:>14}",
        "rate", "trips", "p50 ms", "p99 ms", "runtime us", "thread us", "runtime sleeps"
    );
    for h in &handoffs {
        h.row();
    }
    println!(
        "\n## cloud only: Odoo simulator; a scan = search_read product by barcode + write stock.move.line; 30 ms per call, or the real Odoo profile ({})",
        real_odoo.describe()
    );
    Run::header();
    for r in &cloud {
        r.row();
    }
    println!(
        "\n## CPU (per scan, from /proc per thread; {cores} cores; busy = whole machine, others = not this process, in % of one core)"
    );
    println!(
        "(server = the runtime threads: the device API in local runs, the Odoo simulator in cloud runs)"
    );
    println!(
        "{:<26} {:>7} {:>10} {:>10} {:>10} {:>13} {:>12} {:>12} {:>8}",
        "run",
        "devices",
        "server us",
        "writer us",
        "loadgen us",
        "server core",
        "loadgen core",
        "others core",
        "busy"
    );
    for r in runs
        .iter()
        .chain(std::iter::once(&one_move))
        .chain(&paced)
        .chain(&awake)
        .chain(&cloud)
    {
        r.cpu_row();
    }
    println!(
        "\n## what a scan asks of the kernel (per scan, from /proc/<tid>/io and status): reads = read/pread calls (SQLite's page reads: a reader's cache starts empty after every commit), writes = write/pwrite/writev calls, sleeps = waits that gave up the core (each a wake-up later), in brackets the times a runnable server thread lost its core"
    );
    println!(
        "{:<26} {:>7} {:>12} {:>13} {:>13} {:>12} {:>13} {:>14}",
        "run",
        "devices",
        "server reads",
        "server writes",
        "server sleeps",
        "writer reads",
        "writer writes",
        "writer sleeps"
    );
    for r in runs
        .iter()
        .chain(std::iter::once(&one_move))
        .chain(&paced)
        .chain(&awake)
    {
        r.calls_row();
    }
    let grown = db_after.saturating_sub(db_before);
    println!(
        "\nstore grew by {:.1} MB (database + WAL; WAL now {:.1} MB) for {local_scans} scans: {:.0} bytes per scan; commits: {}, commands: {}",
        grown as f64 / 1e6,
        wal as f64 / 1e6,
        grown as f64 / local_scans.max(1) as f64,
        store
            .stats()
            .commits
            .load(std::sync::atomic::Ordering::Relaxed),
        store
            .stats()
            .commands
            .load(std::sync::atomic::Ordering::Relaxed),
    );

    // Against the targets.
    let peak = &paced[0];
    let at1000 = &paced[1];
    let human = &paced[2];
    let closed200 = &runs[2];
    let ratio = |c: &Run, l: &Run| ms(c.p(0.99)) / ms(l.p(0.99));
    let server_us = |r: &Run| r.cpu.server / r.scans.max(1) as f64 * 1e6;
    println!("\n## against the targets (reported, not asserted)");
    println!(
        "p99, 200 devices x 1 scan/s                    : {:>8.3} ms (target <= {} ms): {}",
        ms(human.p(0.99)),
        TARGET_P99_HUMAN.as_millis(),
        verdict(human.p(0.99) <= TARGET_P99_HUMAN)
    );
    println!(
        "p99.9, 200 devices x 1 scan/s                  : {:>8.3} ms (target <= {} ms): {}",
        ms(human.p(0.999)),
        TARGET_P999_HUMAN.as_millis(),
        verdict(human.p(0.999) <= TARGET_P999_HUMAN)
    );
    let disk200 = &disk[0];
    println!(
        "  the disk alone at 200 commits/s              : p99 {:>6.3} ms, p99.9 {:.3} ms (fsync alone; the scan's p99 is {:.3} ms above it)",
        ms(percentile(disk200, 0.99)),
        ms(percentile(disk200, 0.999)),
        ms(human.p(0.99)) - ms(percentile(disk200, 0.99)),
    );
    println!(
        "p99 at 1,000 scans/s paced                     : {:>8.3} ms (target <= {} ms): {}",
        ms(at1000.p(0.99)),
        TARGET_P99_1000.as_millis(),
        verdict(at1000.p(0.99) <= TARGET_P99_1000)
    );
    println!(
        "scans/s, 200 devices closed loop (durable)     : {:>8.0} (target >= {TARGET_CLOSED_RATE:.0}): {}",
        closed200.rate(),
        verdict(closed200.rate() >= TARGET_CLOSED_RATE)
    );
    println!(
        "p99 at {PEAK_RATE:.0} scans/s paced (achieved {:>5.0}/s)  : {:>8.3} ms (for reference)",
        peak.rate(),
        ms(peak.p(0.99))
    );
    let growth = one_move.p50_last.as_secs_f64() / one_move.p50_first.as_secs_f64().max(1e-9);
    println!(
        "p50 on one move, last / first tenth of {one_move_scans} : {:>8.2} x ({:.3} -> {:.3} ms; target <= 1.10x): {}",
        growth,
        ms(one_move.p50_first),
        ms(one_move.p50_last),
        verdict(growth <= 1.10)
    );
    println!(
        "  p50 of each tenth, first to last (ms)        : {}",
        one_move
            .tenths
            .iter()
            .map(|d| format!("{:.3}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "server CPU per scan, 200 devices x 1 scan/s    : {:>8.0} us (target <= {TARGET_CPU_LOW_US:.0} us; + {:.0} us in the writer): {}",
        server_us(human),
        human.cpu.writer / human.scans.max(1) as f64 * 1e6,
        verdict(server_us(human) <= TARGET_CPU_LOW_US)
    );
    if let Some(awake) = &awake {
        println!(
            "  the same with the cores kept awake           : {:>8.0} us (+ {:.0} us in the writer; p50 {:.3} ms against {:.3}): what waking idle cores adds",
            server_us(awake),
            awake.cpu.writer / awake.scans.max(1) as f64 * 1e6,
            ms(awake.p(0.5)),
            ms(human.p(0.5)),
        );
    }
    println!(
        "cloud p99 / local p99, 1 device, 30 ms per call: {:>8.1} x (for reference)",
        ratio(&cloud[0], &runs[0]),
    );
    println!(
        "cloud p99 / local p99, 1 device, real Odoo     : {:>8.1} x (target >= {TARGET_RATIO:.0}x): {}",
        ratio(&cloud[2], &runs[0]),
        verdict(ratio(&cloud[2], &runs[0]) >= TARGET_RATIO)
    );
    println!(
        "cloud p99 (50 devices) / local p99 (200 paced at 1,000/s): {:>5.1} x (for reference)",
        ratio(&cloud[1], at1000),
    );

    shutdown.cancel();
    srv.block_on(async {
        let _ = server.await;
        store.shutdown().await.unwrap();
    });
    drop(sim);
}
