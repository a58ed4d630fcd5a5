//! The real `holdfast demo` binary for browser tests: started on a free loopback port with
//! its own data directory, killed on drop.

// Each test target uses a part of it.
#![allow(dead_code)]

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
        Demo::start_with(&[], timeout).await
    }

    /// [`Demo::start`] with `env` set (config overrides, `HOLDFAST__SECTION__KEY`).
    pub async fn start_with(env: &[(&str, &str)], timeout: Duration) -> Demo {
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
            .envs(env.iter().copied())
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

    /// A POST to the demo's API with `token`: a device write (with an idempotency key) or a
    /// manager's; it must succeed.
    pub async fn post(&self, token: &str, path: &str, body: serde_json::Value) {
        let answer = reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(token)
            .header(
                "Idempotency-Key",
                format!("{:08x}-0000-4000-8000-000000000001", fastrand::u32(..)),
            )
            .json(&body)
            .send()
            .await
            .expect("the demo answers");
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "POST {path}: {status} {text}");
    }

    /// A conflict the real way; returns its id. The WAN is down, Alice picks on
    /// WH/INT/00001, meanwhile someone cancels that picking in Odoo; when the link is back
    /// the push finds it cancelled.
    pub async fn provoke_conflict(&self) -> i64 {
        use holdfast::demo::{DEMO_MANAGER_TOKEN, DEMO_TOKEN};
        use serde_json::json;
        self.post(
            DEMO_MANAGER_TOKEN,
            "/api/v1/demo/cloud",
            json!({"link": "down"}),
        )
        .await;
        self.post(DEMO_TOKEN, "/api/v1/login", json!({"badge": "OP-ALICE"}))
            .await;
        self.post(
            DEMO_TOKEN,
            "/api/v1/sessions",
            json!({"workflow": "pick", "picking_id": 3}),
        )
        .await;
        for code in ["WH-A-02-03", "5901230000363"] {
            self.post(DEMO_TOKEN, "/api/v1/scan", json!({ "code": code }))
                .await;
        }
        self.post(
            DEMO_MANAGER_TOKEN,
            "/api/v1/demo/cloud",
            json!({"cancel_picking": 3}),
        )
        .await;
        self.post(
            DEMO_MANAGER_TOKEN,
            "/api/v1/demo/cloud",
            json!({"link": "up"}),
        )
        .await;
        let started = Instant::now();
        loop {
            let inbox: serde_json::Value = reqwest::Client::new()
                .get(self.url("/api/v1/conflicts"))
                .bearer_auth(DEMO_MANAGER_TOKEN)
                .send()
                .await
                .expect("the demo answers")
                .json()
                .await
                .expect("JSON");
            if let Some(c) = inbox["conflicts"].as_array().and_then(|c| c.first()) {
                assert_eq!(c["kind"], "picking_cancelled", "{inbox}");
                return c["id"].as_i64().expect("an id");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no conflict: {inbox}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
