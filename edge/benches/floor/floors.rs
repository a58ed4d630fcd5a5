//! The floors under a scan, measured alone in the same run: the disk (a commit's WAL write
//! and fsync), the hand-offs (a task to a waiting thread and back), and the cores kept out
//! of idle for the run that measures what waking them costs.

use std::time::{Duration, Instant};

use crate::run::{ms, percentile};
use crate::threads;

/// WAL frames (a page of the store's new-database size and its 24-byte header) one
/// single-scan commit writes: the journal entry, its effects, the running totals, the session
/// and the stored answer with their index pages (counted with strace over one-scan commits:
/// 18 to 22 with 1 KiB pages, where 4 KiB ones took 18).
pub const FRAMES_PER_SCAN_COMMIT: usize = 20;
pub const FRAME_BYTES: usize = holdfast::store::PAGE_SIZE as usize + 24;

/// The disk's own floor under a durable answer: one commit's WAL frames written and made
/// durable with fsync (what SQLite does per commit with `synchronous=FULL`), at `rate` per
/// second (0: back to back) for `duration`, in `dir` (the store's file system). Sorted.
pub fn fsync_floor(dir: &std::path::Path, rate: f64, duration: Duration) -> Vec<Duration> {
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
pub fn handoff_floor(rate: f64, duration: Duration) -> Handoffs {
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
pub struct Handoffs {
    pub rate: f64,
    pub sorted: Vec<Duration>,
    pub server_secs: f64,
    pub server_calls: threads::Calls,
    pub thread_secs: f64,
}

impl Handoffs {
    pub fn row(&self) {
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
pub struct Awake(Vec<std::process::Child>);

impl Awake {
    pub fn start() -> Result<Awake, String> {
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
