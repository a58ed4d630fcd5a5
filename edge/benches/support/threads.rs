//! CPU time, system calls and context switches of this process's threads, from /proc (shared
//! by the benchmarks).

/// One thread of this process.
pub struct ThreadCpu {
    /// Its name (`comm`).
    pub name: String,
    /// Whether it is the process's main thread.
    pub main: bool,
    /// CPU so far, seconds: the scheduler's own count in nanoseconds (`schedstat`), or user
    /// and system clock ticks of 10 ms where the kernel does not keep it.
    pub secs: f64,
    /// Its wake-ups and system calls so far.
    pub calls: Calls,
}

/// What a thread asked of the kernel: the counters `/proc/<pid>/task/<tid>/{io,status}` keep.
#[derive(Clone, Copy, Debug, Default)]
pub struct Calls {
    /// `read`-family calls (`read`, `pread64`, `readv`): SQLite's page reads, eventfd reads.
    pub reads: u64,
    /// `write`-family calls (`write`, `pwrite64`, `writev`): WAL frames, HTTP answers, wakes.
    pub writes: u64,
    /// Times it gave up its core to wait (a park on a futex, an `epoll_wait` or an fsync
    /// that slept): each one a wake-up later.
    pub sleeps: u64,
    /// Times the kernel took its core away while it was runnable.
    pub preempted: u64,
}

impl Calls {
    pub fn add(&mut self, other: &Calls) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.sleeps += other.sleeps;
        self.preempted += other.preempted;
    }

    pub fn minus(&self, before: &Calls) -> Calls {
        Calls {
            reads: self.reads.saturating_sub(before.reads),
            writes: self.writes.saturating_sub(before.writes),
            sleeps: self.sleeps.saturating_sub(before.sleeps),
            preempted: self.preempted.saturating_sub(before.preempted),
        }
    }
}

/// The value after `key` in a /proc file of `key: value` lines (0 when absent).
fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim_start_matches(':').trim().parse().ok())
        .unwrap_or(0)
}

/// Every thread of this process now; a thread that ends while being read is left out.
pub fn threads() -> Vec<ThreadCpu> {
    let pid = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            // Fields after "(comm)": state is field 3, utime 14, stime 15 (clock ticks,
            // USER_HZ = 100).
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let ticks: f64 = [11, 12]
                .iter()
                .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
                .sum();
            let exact = std::fs::read_to_string(path.join("schedstat"))
                .ok()
                .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok());
            // `io` needs the kernel's task I/O accounting (Debian's has it); without it the
            // counts read 0.
            let io = std::fs::read_to_string(path.join("io")).unwrap_or_default();
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            Some(ThreadCpu {
                name: name.trim().to_owned(),
                main: entry.file_name().to_str() == Some(pid.as_str()),
                secs: exact.map_or(ticks / 100.0, |ns| ns / 1e9),
                calls: Calls {
                    reads: field(&io, "syscr"),
                    writes: field(&io, "syscw"),
                    sleeps: field(&status, "voluntary_ctxt_switches"),
                    preempted: field(&status, "nonvoluntary_ctxt_switches"),
                },
            })
        })
        .collect()
}
