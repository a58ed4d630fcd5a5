//! A real Prometheus (Debian's package `prometheus`, `/usr/bin/prometheus`; `scripts/test.sh`
//! installs it) started as a child process on a loopback port for one test, scraping
//! appliances every second, and read through its HTTP query API. Compiled into the metrics
//! tests (`#[path]`).

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where Debian installs the server.
pub const BINARY: &str = "/usr/bin/prometheus";

/// Whether a test may skip for want of a tool: not under CI.
pub fn may_skip(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required under CI=true (scripts/test.sh installs Debian's prometheus)");
    }
    eprintln!("SKIPPED: {what} not installed (apt-get install prometheus)");
    true
}

/// The server for a test: `None` (after saying why) when it is not installed, except under
/// `CI=true`, where a missing server fails the test.
pub fn required() -> Option<PathBuf> {
    let binary = PathBuf::from(BINARY);
    if !binary.exists() && may_skip("prometheus") {
        return None;
    }
    Some(binary)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// One Prometheus process with its data in a temporary directory. Killed when dropped.
pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `binary` scraping `target`'s `/metrics` every second (job `holdfast`), with
    /// `rules` loaded and evaluated every second when given.
    pub fn start(binary: &Path, target: SocketAddr, rules: Option<&Path>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let rule_files = rules
            .map(|r| format!("rule_files:\n  - {}\n", r.display()))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}\
                 scrape_configs:\n  - job_name: holdfast\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/v1/{path}", self.port)
    }

    /// An instant query's result (`data.result`: one object per series, its value as
    /// `[time, "text"]`); an error says what went wrong (not up yet, a bad query).
    pub async fn query(&self, query: &str) -> Result<Vec<Value>, String> {
        let answer = client()
            .get(self.api("query"))
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let body: Value = answer.json().await.map_err(|e| format!("{status}: {e}"))?;
        match body["data"]["result"].as_array() {
            Some(result) if body["status"] == "success" => Ok(result.clone()),
            _ => Err(format!("{status}: {body}")),
        }
    }

    /// Queries every 100 ms until `done` accepts the result, for at most `limit`: the
    /// accepted result and how long it took; past `limit` the failure names the query and its
    /// last answer.
    pub async fn until(
        &self,
        query: &str,
        limit: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> (Vec<Value>, Duration) {
        let started = Instant::now();
        loop {
            let answer = self.query(query).await;
            if let Ok(result) = &answer
                && done(result)
            {
                return (result.clone(), started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "Prometheus: `{query}` not as expected after {limit:?}; last answer: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The rules API's answer.
    pub async fn rules(&self) -> Value {
        client()
            .get(self.api("rules"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a result with exactly one series.
pub fn single(result: &[Value]) -> Option<f64> {
    match result {
        [series] => series["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}
