//! A site for tests that run the real `holdfast` binary: its config and data directory, the
//! appliance process, the CLI, and the device API as a handheld speaks it.

// Each test binary that includes this uses its own subset.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// An environment variable that is set and not empty.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The real Odoo named by `HOLDFAST_ODOO_URL`, `_DB`, `_LOGIN`, `_KEY` (`../shared/odoo-lab/`
/// writes them to `WORK_DIR/odoo.env`), writable only with `HOLDFAST_ODOO_ALLOW_WRITES=1`;
/// or why a run against it is skipped.
pub fn real_odoo() -> Result<holdfast_sync::odoo::ClientConfig, String> {
    let (Some(url), Some(db), Some(login), Some(key)) = (
        env("HOLDFAST_ODOO_URL"),
        env("HOLDFAST_ODOO_DB"),
        env("HOLDFAST_ODOO_LOGIN"),
        env("HOLDFAST_ODOO_KEY"),
    ) else {
        return Err("HOLDFAST_ODOO_URL, _DB, _LOGIN and _KEY are not all set".into());
    };
    if env("HOLDFAST_ODOO_ALLOW_WRITES").as_deref() != Some("1") {
        return Err(format!(
            "it writes to {db} at {url}; set HOLDFAST_ODOO_ALLOW_WRITES=1 to allow that"
        ));
    }
    Ok(holdfast_sync::odoo::ClientConfig::new(
        &url, &db, &login, &key, 1,
    ))
}

/// The `holdfast` binary, with none of the caller's Holdfast settings leaking in.
pub fn holdfast() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    cmd.env_remove("HOLDFAST_CONFIG");
    for (key, _) in std::env::vars() {
        if key.starts_with("HOLDFAST__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The appliance process; killed when dropped, whatever happened.
pub struct Appliance(Child);

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Appliance {
    /// `holdfast run` on `config`, its log appended to `log` (read back when a wait fails).
    pub fn start(config: &Path, log: &Path) -> Appliance {
        Appliance::start_with(config, log, &[])
    }

    /// [`Appliance::start`] with environment variables set for the process.
    pub fn start_with(config: &Path, log: &Path, env: &[(&str, &str)]) -> Appliance {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Appliance(
            holdfast()
                .args(["--config", config.to_str().unwrap(), "run"])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Still running: not exited, not a zombie waiting to be reaped.
    #[allow(dead_code)]
    pub fn running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.0.id()))
            .ok()
            .and_then(|stat| {
                let after_name = &stat[stat.rfind(')')? + 1..];
                after_name.split_whitespace().next().map(|s| s != "Z")
            })
            .unwrap_or(false)
    }

    /// A clean stop (what systemd does); waits for the exit.
    #[allow(dead_code)]
    pub fn sigterm(mut self) -> std::process::ExitStatus {
        kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM).unwrap();
        self.0.wait().unwrap()
    }

    /// The power goes.
    pub fn sigkill(mut self) {
        kill(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL).unwrap();
        let _ = self.0.wait();
    }
}

/// A CLI command on `config` that must succeed; its standard output.
pub fn cli(config: &Path, args: &[&str]) -> String {
    let out = holdfast()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "holdfast {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh idempotency key (UUID-shaped).
pub fn idempotency_key() -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        fastrand::u32(..),
        fastrand::u64(..) & 0xffff_ffff_ffff
    )
}

/// Nothing left to send and the link not down.
pub fn drained(s: &Value) -> bool {
    s["queue"]["pending"] == 0
        && s["queue"]["in_flight"].as_i64().unwrap_or(0) == 0
        && s["mode"] != "offline"
}

/// The site: its config, data directory and device API.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub base: String,
    pub http: reqwest::Client,
    device_token: String,
}

impl Site {
    /// A site in a new directory; `config` writes the TOML given the HTTP port and the
    /// directory (the database goes in it).
    pub fn new(device_token: &str, config: impl FnOnce(u16, &Path) -> String) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path().join("holdfast.toml");
        std::fs::write(&path, config(port, dir.path())).unwrap();
        Site {
            dir,
            config: path,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            device_token: device_token.to_owned(),
        }
    }

    /// Where the appliance's log goes.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("holdfast.log")
    }

    pub fn start_appliance(&self) -> Appliance {
        Appliance::start(&self.config, &self.log())
    }

    pub async fn status(&self) -> Value {
        match self
            .http
            .get(format!("{}/api/v1/status", self.base))
            .bearer_auth(&self.device_token)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// A GET with a bearer token (the manager's, a device's); the JSON answer.
    #[allow(dead_code)]
    pub async fn get_as(&self, path: &str, token: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls the status until `ok`; fails with the last status and the log after `secs`.
    pub async fn wait_until(&self, what: &str, secs: u64, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status().await;
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never happened; last status {s}\nlog: {}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A device write with a fresh idempotency key; the floor must accept it.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.device_token)
            .header("Idempotency-Key", idempotency_key())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(
            status.is_success() && v["status"] != "error",
            "POST {path} {body}: {status} {v}"
        );
        v
    }

    pub async fn scan(&self, code: &str) -> Value {
        self.post("/api/v1/scan", serde_json::json!({ "code": code }))
            .await
    }

    pub async fn quantity(&self, session: &str, q: f64) -> Value {
        self.post(
            &format!("/api/v1/sessions/{session}/quantity"),
            serde_json::json!({ "quantity": q }),
        )
        .await
    }

    /// Starts a session; its id.
    pub async fn start(&self, body: Value) -> String {
        let v = self.post("/api/v1/sessions", body).await;
        v["session"]["id"].as_str().unwrap().to_owned()
    }

    /// Every journal entry, through the CLI.
    pub fn journal(&self) -> Vec<Value> {
        cli(
            &self.config,
            &["journal", "list", "--json", "--limit", "10000"],
        )
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
    }
}
