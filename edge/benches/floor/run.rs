//! What a run measured: latencies, the writer's counters, CPU and system calls per thread
//! group (from /proc), the whole machine's busy share; and the local runs that fill it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast::store::Store;
use tokio::sync::Barrier;

use crate::client::{Handheld, Outcome, Seen};
use crate::threads;

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// Seconds of CPU of the server's runtime threads (HTTP, floor logic, reads).
    pub server: f64,
    /// The store writer thread (transactions, fsync waits are not CPU).
    pub writer: f64,
    /// The load generator (the main thread drives its runtime).
    pub generator: f64,
    /// Other threads of this process.
    pub other: f64,
    /// What the server's runtime threads and the writer asked of the kernel.
    pub server_calls: threads::Calls,
    pub writer_calls: threads::Calls,
}

impl Cpu {
    pub fn read() -> Cpu {
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

    pub fn total(&self) -> f64 {
        self.server + self.writer + self.generator + self.other
    }

    pub fn minus(&self, before: &Cpu) -> Cpu {
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
pub fn machine_ticks() -> (f64, f64) {
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
pub struct Snapshot {
    pub commits: u64,
    pub commands: u64,
    pub cpu: Cpu,
    pub machine: (f64, f64),
}

impl Snapshot {
    pub fn take(store: &Store) -> Snapshot {
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
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A run's figures.
pub struct Run {
    pub label: String,
    pub devices: usize,
    pub scans: usize,
    pub elapsed: Duration,
    pub sorted: Vec<Duration>,
    /// p50 of the first and the last tenth of each device's scans.
    pub p50_first: Duration,
    pub p50_last: Duration,
    /// p50 of each tenth, first to last.
    pub tenths: Vec<Duration>,
    pub commits: u64,
    pub commands: u64,
    pub cpu: Cpu,
    /// Busy fraction of all cores, and the part of it not spent by this process.
    pub machine_busy: f64,
    pub others_busy: f64,
    pub behind: u64,
    pub cores: f64,
}

impl Run {
    pub fn new(
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

    pub fn rate(&self) -> f64 {
        self.scans as f64 / self.elapsed.as_secs_f64()
    }

    pub fn p(&self, p: f64) -> Duration {
        percentile(&self.sorted, p)
    }

    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }

    pub fn header() {
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

    pub fn row(&self) {
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

    pub fn calls_row(&self) {
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

    pub fn cpu_row(&self) {
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

/// Signs `devices` in, warms them up, then runs them all at once; returns the figures and the
/// handhelds (still signed in, sessions open) for a later run.
pub async fn local_closed(
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

pub async fn local_paced(
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

pub async fn finish(
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
