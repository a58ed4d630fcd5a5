//! The real `holdfast demo` binary for browser tests: started on a free loopback port with
//! its own data directory, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo appliance, killed on drop.
#[derive(Debug)]
pub struct Demo {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// Starts the demo and waits until `/healthz` answers (at most `timeout`).
    pub async fn start(timeout: Duration) -> Demo {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["demo", "--listen", &addr, "--data-dir"])
            .arg(dir.path())
            .env_remove("HOLDFAST_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("holdfast demo starts");
        let demo = Demo { child, addr, dir };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let url = format!("http://{}/healthz", demo.addr);
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return demo;
            }
            assert!(started.elapsed() < timeout, "the demo did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The demo's data directory (its config, database and runbook file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("holdfast.toml")
    }

    /// Runs `holdfast --config <the demo's> ARGS` with `stdin`; (success, stdout).
    pub fn cli(&self, args: &[&str], stdin: &str) -> (bool, String) {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("holdfast runs");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("holdfast ends");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}
