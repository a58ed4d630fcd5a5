//! CPU time of this process's threads, from /proc (shared by the benchmarks).

/// One thread of this process.
pub struct ThreadCpu {
    /// Its name (`comm`).
    pub name: String,
    /// Whether it is the process's main thread.
    pub main: bool,
    /// User and system CPU so far, seconds (clock ticks of 10 ms: read over a phase of a
    /// second or more).
    pub secs: f64,
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
            Some(ThreadCpu {
                name: name.trim().to_owned(),
                main: entry.file_name().to_str() == Some(pid.as_str()),
                secs: ticks / 100.0,
            })
        })
        .collect()
}
