//! End-to-end tests: the real `holdfast` binary, as a user runs it.

// Test and benchmark code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use holdfast::store::{Lane, NewEntry, Store, StoreOptions};
use holdfast_sync::ops::{CountOp, Operation};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn holdfast() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    // Tests must not pick up a real site's config or overrides.
    cmd.env_remove("HOLDFAST_CONFIG");
    for (key, _) in std::env::vars() {
        if key.starts_with("HOLDFAST__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(args: &[&str]) -> Output {
    holdfast().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A plain HTTP/1.1 GET; returns (status, body).
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_for(addr: &str) {
    wait_for_path(addr, "/healthz");
}

/// Waits until `path` answers 200 (at most 20 s).
fn wait_for_path(addr: &str, path: &str) {
    let start = Instant::now();
    while get(addr, path).map(|(s, _)| s).ok() != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{addr}{path} never answered 200"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("holdfast.toml");
    std::fs::write(
        &path,
        format!(
            "[site]\nid = \"e2e\"\n[store]\npath = \"{}\"\n{extra}",
            dir.join("holdfast.db").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_version_names_the_commit_and_the_build_date() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = text(&out.stdout);
    // `holdfast 0.1.0 (commit 0123456789ab, built 2026-12-06)`; `-dirty` from a checkout
    // with changes, `unknown` without git.
    let rest = text
        .trim()
        .strip_prefix(&format!("holdfast {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{text}"));
    let (commit, date) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once(", built "))
        .unwrap_or_else(|| panic!("{text}"));
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash == "unknown" || (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
    assert!(
        date.len() == 10 && date.parse::<jiff::civil::Date>().is_ok(),
        "{text}"
    );
}

#[test]
fn help_is_there_for_every_command() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["demo", "--help"],
        &["status", "--help"],
        &["journal", "--help"],
        &["journal", "list", "--help"],
        &["journal", "show", "--help"],
        &["db", "--help"],
        &["db", "check", "--help"],
        &["db", "backup", "--help"],
        &["fleet", "--help"],
        &["init", "--help"],
        &["check", "--help"],
        &["sync", "--help"],
        &["sync", "pull", "--help"],
        &["sim", "--help"],
        &["devices", "list", "--help"],
        &["print", "--help"],
        &["print", "test", "--help"],
        &["print", "jobs", "--help"],
        &["demo-scan", "--help"],
        &["manager", "--help"],
        &["manager", "add", "--help"],
        &["audit", "--help"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Usage: holdfast"), "{args:?}");
    }
}

#[test]
fn init_writes_a_valid_config_and_never_overwrites_by_accident() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/holdfast.toml");
    let p = path.to_str().unwrap();
    let out = run(&["init", p]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("[site]") && written.contains("# [odoo]"));

    let out = run(&["init", p]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("exists; use --force"));
    assert!(run(&["init", p, "--force"]).status.success());
}

/// `holdfast check` is what the image's provisioning runs before it takes a site's config.
#[test]
fn check_accepts_a_good_config_and_names_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    assert!(run(&["init", good.to_str().unwrap()]).status.success());
    let out = run(&["--config", good.to_str().unwrap(), "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("config is valid (site site-01, Odoo not configured)"),
        "{}",
        text(&out.stdout)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[site]\nid = \"has space\"\n[floor]\nover_pick_factor = 0\n",
    )
    .unwrap();
    let out = run(&["--config", bad.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("site.id: \"has space\" is not allowed"),
        "{err}"
    );
    assert!(err.contains("floor.over_pick_factor"), "{err}");
    // Nothing was created beside the config (no database, no certificate).
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[test]
fn bad_config_is_refused_with_every_problem_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[site]\nid = \"has space\"\n[http]\nlisten = \"nowhere\"\n",
    )
    .unwrap();
    let out = run(&["--config", path.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("site.id: \"has space\" is not allowed"),
        "{err}"
    );
    assert!(
        err.contains("http.listen: \"nowhere\" is not an address"),
        "{err}"
    );

    let out = run(&["--config", "/nonexistent/holdfast.toml", "run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("holdfast init"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_serves_probes_honours_env_overrides_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // The file says one port; the environment overrides it. `holdfast status` asks the
    // appliance with the manager's token from the same file.
    let config = write_config(
        dir.path(),
        &format!("[http]\nlisten = \"127.0.0.1:1\"\nmanager_token = \"{E2E_MANAGER}\"\n"),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = holdfast()
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("HOLDFAST__HTTP__LISTEN", &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = child.stderr.take().unwrap();
    wait_for(&addr);
    // `holdfast status` asks the running appliance (same overrides, so the same address).
    let out = holdfast()
        .args(["--config", config.to_str().unwrap(), "status"])
        .env("HOLDFAST__HTTP__LISTEN", &addr)
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!said.contains("appliance not running"), "{said}");
    assert!(
        said.contains("why       no odoo configured"),
        "the running appliance's own words: {said}"
    );
    let (status, body) = get(&addr, "/readyz").unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"ready":true}"#);
    // Without a token the status names nothing: no path, no URL.
    let (status, body) = get(&addr, "/api/v1/status").unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("holdfast.db"), "{body}");
    let manager = format!("Bearer {E2E_MANAGER}");
    let (status, body) = request(
        &addr,
        "GET",
        "/api/v1/status",
        &[("Authorization", manager.as_str())],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["site"]["id"], "e2e");
    assert_eq!(json["cloud"]["target"], serde_json::Value::Null);
    let (status, body) = get(&addr, "/api/v1/nothing").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
    assert!(terminate(child).success(), "SIGTERM must exit 0");
    // Logs into a pipe (a file, journald) carry no colour codes.
    let mut logged = String::new();
    logs.read_to_string(&mut logged).unwrap();
    assert!(logged.contains("holdfast is serving"), "{logged}");
    assert!(
        !logged.contains('\x1b'),
        "ANSI escapes in piped logs: {logged:?}"
    );
}

/// The site manager's token in the configs these tests write.
const E2E_MANAGER: &str = "e2e-manager-token-0123456789";

/// `GET path` with the demo's manager token.
fn get_as_manager(addr: &str, path: &str) -> (u16, String) {
    let manager = format!("Bearer {}", holdfast::demo::DEMO_MANAGER_TOKEN);
    request(
        addr,
        "GET",
        path,
        &[("Authorization", manager.as_str())],
        b"",
    )
}

/// Starts `holdfast demo` on a port of the system's choosing; returns it and the address its
/// banner names.
fn start_demo(data: &Path) -> (Child, String) {
    start_demo_with(data, &[])
}

/// [`start_demo`] with config overrides in the environment (`HOLDFAST__SECTION__KEY`).
fn start_demo_with(data: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut command = holdfast();
    command.envs(env.iter().copied());
    let mut child = command
        .args([
            "demo",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("demo exited early").unwrap();
        if let Some(rest) = line.trim().strip_prefix("status:") {
            break rest
                .trim()
                .trim_start_matches("http://")
                .trim_end_matches("/api/v1/status")
                .to_owned();
        }
    };
    // Keep reading: the demo's output must not meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

#[test]
fn demo_serves_the_sample_warehouse_and_the_cli_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    // The banner names the real address.
    let (child, addr) = start_demo(&data);
    wait_for(&addr);
    let (status, body) = get_as_manager(&addr, "/api/v1/status");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["site"]["id"], "demo");
    assert_eq!(json["mirror"]["product"], 40);
    // Pulled from the in-process simulated Odoo: the site's company and warehouse only.
    assert_eq!(json["mirror"]["picking"], 10);
    assert!(
        json["cloud"]["target"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert!(json["last_pull_at"].is_string());
    assert!(
        json["pull"].is_object(),
        "the pull task reports its progress: {json}"
    );
    // The scheduled pull succeeds against the simulated cloud: the site is online.
    let start = Instant::now();
    loop {
        let (_, body) = get_as_manager(&addr, "/api/v1/status");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if json["mode"] == "online" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never online: {json}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(json["cloud_changes_open"], 0);
    assert_eq!(json["queue"]["pending"], 0);
    assert!(json["mode"].is_string());
    assert!(json["database"]["size_bytes"].as_u64().unwrap() > 0);
    // While it runs, the CLI shows what the appliance knows (the drain, the live mode).
    let config = data.join("holdfast.toml");
    let c = config.to_str().unwrap();
    let out = run(&["--config", c, "status"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(said.contains("draining  "), "{said}");
    assert!(!said.contains("appliance not running"), "{said}");
    assert!(terminate(child).success());

    // The CLI reads the same data directory while nothing runs, and says so.
    let out = run(&["--config", c, "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("note      appliance not running; figures from the database"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("Demo warehouse (demo)"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["--config", c, "db", "check"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("ok:"));
    let backup = dir.path().join("backup.db");
    let out = run(&["--config", c, "db", "backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let copy = rusqlite::Connection::open(&backup).unwrap();
    let n: i64 = copy
        .query_row("SELECT COUNT(*) FROM product", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 40);
    // A second backup to the same file is refused rather than overwriting it.
    let out = run(&["--config", c, "db", "backup", backup.to_str().unwrap()]);
    assert!(!out.status.success());
    // Backups are owner-only whatever the umask (the test runs under the usual 022).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // What the backup timer runs: no config (none of the appliance's secrets), a checked copy
    // in a rotated directory (0700).
    let db = data.join("holdfast.db");
    let rotated = dir.path().join("backups");
    let out = run(&[
        "--config",
        "/nonexistent/holdfast.toml",
        "db",
        "backup",
        "--database",
        db.to_str().unwrap(),
        "--into",
        rotated.to_str().unwrap(),
        "--keep",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("integrity checked"),
        "{}",
        text(&out.stdout)
    );
    let mode = std::fs::metadata(&rotated).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let copies: Vec<_> = std::fs::read_dir(&rotated).unwrap().collect();
    assert_eq!(copies.len(), 1);
}

#[test]
fn db_check_fails_clearly_on_an_empty_or_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let c = config.to_str().unwrap();
    let db = dir.path().join("holdfast.db");
    // (what the file holds, what the error says)
    for (content, said) in [
        (&b""[..], "the file is empty (0 bytes)"),
        (
            &b"this is a text file, not a database\n"[..],
            "not an SQLite database",
        ),
    ] {
        std::fs::write(&db, content).unwrap();
        let out = run(&["--config", c, "db", "check"]);
        assert_eq!(out.status.code(), Some(1), "{content:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(said), "{err}");
        assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    }
}

#[test]
fn journal_list_and_show_print_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let appended = rt.block_on(async {
        let store = Store::open(StoreOptions::new(dir.path().join("holdfast.db"), "e2e")).unwrap();
        let a = store
            .append(
                Lane::Device,
                NewEntry {
                    id: None,
                    device: "handheld-3".into(),
                    operator: Some("anna".into()),
                    op: Operation::Count(CountOp {
                        product_id: 4,
                        location_id: 21,
                        lot_name: None,
                        counted: 7.0,
                        expected: 9.0,
                    }),
                },
            )
            .await
            .unwrap();
        store.shutdown().await.unwrap();
        a
    });
    let c = config.to_str().unwrap();
    let out = run(&["--config", c, "journal", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("count") && listing.contains("pending") && listing.contains("handheld-3"),
        "{listing}"
    );

    let out = run(&["--config", c, "journal", "list", "--state", "applied"]);
    assert!(text(&out.stdout).contains("(no entries)"));
    let out = run(&["--config", c, "journal", "list", "--state", "lost"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown state"));

    for key in [appended.seq.to_string(), appended.id.to_string()] {
        let out = run(&["--config", c, "journal", "show", &key]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["payload"]["counted"], 7.0);
        assert_eq!(json["causal_key"], "stock:4:21");
        assert_eq!(json["effects"][0]["delta"], -2.0);
    }
    let out = run(&["--config", c, "journal", "show", "999"]);
    assert!(!out.status.success());
}

#[test]
fn tells_systemd_when_ready_and_feeds_the_watchdog_and_shows_mode_and_backlog() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = holdfast()
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("HOLDFAST__HTTP__LISTEN", &addr)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // sd_notify only honours WATCHDOG_USEC meant for this pid; without WATCHDOG_PID it is.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    // `systemctl status holdfast` shows the mode and the backlog (STATUS=), sent at the
    // start and again only when the line changes.
    while !(seen.iter().any(|m: &String| m.contains("READY=1"))
        && seen.iter().any(|m| m.contains("WATCHDOG=1"))
        && seen.iter().any(|m| m.starts_with("STATUS=")))
    {
        let n = socket
            .recv(&mut buf)
            .expect("no notification from holdfast");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let status = seen.iter().find(|m| m.starts_with("STATUS=")).unwrap();
    assert!(status.contains(" · queue 0 · oldest pending —"), "{status}");
    assert!(terminate(child).success());
    let n = socket.recv(&mut buf).unwrap();
    let mut last = String::from_utf8_lossy(&buf[..n]).into_owned();
    while !last.contains("STOPPING=1") {
        let n = socket.recv(&mut buf).expect("no STOPPING=1");
        last = String::from_utf8_lossy(&buf[..n]).into_owned();
    }
}

#[test]
fn image_recipe_installs_binary_unit_and_config_into_a_root() {
    let root = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../firmware-images/install-root.sh"
    );
    let out = Command::new("bash")
        .args([
            script,
            env!("CARGO_BIN_EXE_holdfast"),
            root.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for file in [
        "usr/bin/holdfast",
        "usr/lib/systemd/system/holdfast.service",
        "usr/lib/sysusers.d/holdfast.conf",
        "usr/lib/tmpfiles.d/holdfast.conf",
        "etc/holdfast/holdfast.toml",
        "etc/systemd/system/multi-user.target.wants/holdfast.service",
    ] {
        assert!(
            root.path().join(file).symlink_metadata().is_ok(),
            "{file} missing"
        );
    }
    let unit = std::fs::read_to_string(root.path().join("usr/lib/systemd/system/holdfast.service"))
        .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
}

#[test]
fn sync_pull_fills_the_mirror_from_a_configured_odoo() {
    use holdfast_sync::dataset::{Dataset, DatasetSpec};
    use holdfast_sync::sim::{SimConfig, Simulator};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = Dataset::generate(&DatasetSpec::demo());
    for version in [18, 19] {
        let sim = rt
            .block_on(Simulator::start(
                SimConfig {
                    version,
                    ..SimConfig::default()
                },
                &data,
            ))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), &sim.config().api_key).unwrap();
        let odoo = format!(
            "[odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key_file = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\n",
            sim.url(),
            sim.config().database,
            sim.config().login,
            dir.path().join("key").display()
        );
        let config = write_config(dir.path(), &odoo);
        let out = run(&["--config", config.to_str().unwrap(), "sync", "pull"]);
        assert!(
            out.status.success(),
            "Odoo {version}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).starts_with("pulled "),
            "{}",
            text(&out.stdout)
        );
        let db = rusqlite::Connection::open(dir.path().join("holdfast.db")).unwrap();
        let count = |table: &str| -> i64 {
            db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count("product"), 40);
        assert_eq!(count("picking"), 10, "only the site's warehouse");
        let in_wh = |loc: &holdfast_sync::records::LocationId| {
            data.locations
                .iter()
                .any(|l| l.id == *loc && l.warehouse_id.map(|w| w.0) == Some(1))
        };
        let wh_quants = data.quants.iter().filter(|q| in_wh(&q.location_id)).count() as i64;
        assert!(wh_quants < data.quants.len() as i64);
        assert_eq!(count("quant"), wh_quants, "quants of WH only");
        // 19 has them as stock.package and product.uom, 18 under its own models.
        assert_eq!(
            count("package"),
            data.packages.len() as i64,
            "Odoo {version}"
        );
        assert_eq!(
            count("packaging"),
            data.packagings.len() as i64,
            "Odoo {version}"
        );
        assert!(
            !text(&out.stderr).contains(&sim.config().api_key),
            "the key leaked"
        );

        // A wrong key is refused with a clear message and a failure code.
        std::fs::write(dir.path().join("key"), "not-the-key").unwrap();
        let out = run(&["--config", config.to_str().unwrap(), "sync", "pull"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("refused the credentials"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_pull_broken_by_faults_fails_clearly_and_the_next_one_completes() {
    use holdfast_sync::dataset::{Dataset, DatasetSpec};
    use holdfast_sync::sim::{Fault, SimConfig, Simulator};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = Dataset::generate(&DatasetSpec::demo());
    let sim = rt
        .block_on(Simulator::start(SimConfig::default(), &data))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = sim.config();
    let odoo = format!(
        "[odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\ntimeout_secs = 1\n",
        sim.url(),
        c.database,
        c.login,
        c.api_key
    );
    let config = write_config(dir.path(), &odoo);
    let config = config.to_str().unwrap();
    // Version + authenticate + a few pages, then each fault in turn.
    for (fault, message) in [
        (Fault::Reset, "connection to Odoo lost"),
        (
            Fault::TooManyRequests(5),
            "Odoo is busy (HTTP 429), retry after 5 s",
        ),
        (Fault::BlackHole, "no answer from Odoo within"),
        (Fault::Truncated, "connection to Odoo lost"),
        (Fault::HtmlPage, "unexpected answer from Odoo"),
    ] {
        sim.inject(std::iter::repeat_n(Fault::Pass, 6).chain([fault]));
        let out = run(&["--config", config, "sync", "pull"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains(message), "{}", text(&out.stderr));
        // What was committed is consistent.
        assert!(run(&["--config", config, "db", "check"]).status.success());
    }
    let out = run(&["--config", config, "sync", "pull"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db = rusqlite::Connection::open(dir.path().join("holdfast.db")).unwrap();
    let pickings: i64 = db
        .query_row("SELECT COUNT(*) FROM picking", [], |r| r.get(0))
        .unwrap();
    let products: i64 = db
        .query_row("SELECT COUNT(*) FROM product", [], |r| r.get(0))
        .unwrap();
    assert_eq!((pickings, products), (10, 40));
}

#[test]
fn sim_serves_an_odoo_for_trials_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("odoo.json");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = holdfast()
        .args([
            "sim",
            "--listen",
            &addr,
            "--odoo-version",
            "19",
            "--products",
            "100",
            "--quants",
            "300",
        ])
        .args(["--state", state.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    wait_for_path(&addr, "/web/health");
    let (status, body) = get(&addr, "/web/version").unwrap();
    assert_eq!(status, 200, "Odoo 19 answers /web/version");
    assert!(body.contains("\"version_info\":[19"), "{body}");
    let mut child = child;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    // The state file holds the database for the next start.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        doc["models"]["product.product"].as_array().unwrap().len(),
        100
    );
}

/// A plain HTTP/1.1 request with headers and a body; returns (status, body).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body; a broken pipe is fine then.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn device_api_needs_a_token_and_answers_from_the_local_view() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let addr = format!("127.0.0.1:{}", free_port());
    let token = "handheld-01-secret-token";
    let child = holdfast()
        .args([
            "demo",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &addr,
        ])
        .env(
            "HOLDFAST__DEVICES",
            format!("[{{id=\"handheld-01\",token=\"{token}\"}}]"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&addr);
    let auth = format!("Bearer {token}");
    let json = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];

    // No token, a wrong one, a wrong scheme: 401, and the same answer for all.
    for headers in [
        vec![],
        vec![("Authorization", "Bearer nope")],
        vec![("Authorization", token)],
    ] {
        let (status, body) = request(&addr, "GET", "/api/v1/pickings", &headers, b"");
        assert_eq!(status, 401);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(body["error"]["message"], "missing or invalid device token");
        assert_eq!(body["code"], "unauthorized");
    }

    let (status, body) = request(&addr, "GET", "/api/v1/pickings", &json, b"");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = &list["pickings"][0];
    assert!(first["name"].as_str().unwrap().starts_with("WH/"), "{list}");
    let id = first["id"].as_i64().unwrap();
    let (status, body) = request(&addr, "GET", &format!("/api/v1/pickings/{id}"), &json, b"");
    assert_eq!(status, 200, "{body}");
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        detail["moves"].as_array().is_some_and(|m| !m.is_empty()),
        "{detail}"
    );
    assert_eq!(
        request(&addr, "GET", "/api/v1/pickings/999999", &json, b"").0,
        404
    );
    assert_eq!(
        request(&addr, "GET", "/api/v1/pickings/x", &json, b"").0,
        400
    );

    // Lookup: a bin, a picking, a GS1 product scan; bad scans and bodies get clear errors.
    let barcode = detail["moves"][0]["barcode"].as_str().map(str::to_owned);
    let (status, body) = request(
        &addr,
        "POST",
        "/api/v1/lookup",
        &json,
        br#"{"code":"WH-A-01-01"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""kind":"location""#), "{body}");
    if let Some(ean) = barcode {
        let scan = serde_json::json!({"code": format!("]C1010{ean}3712")}).to_string();
        let (status, body) = request(&addr, "POST", "/api/v1/lookup", &json, scan.as_bytes());
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains(r#""quantity":12.0"#) && body.contains(r#""symbology":"]C1""#),
            "{body}"
        );
    }
    for (payload, code, status_wanted) in [
        (&br#"{"code":"]C10109501101530004"}"#[..], "bad_scan", 422),
        (&br#"{"code":"A\u0000B"}"#[..], "bad_scan", 422),
        (&b"not json"[..], "bad_request", 400),
        (&br#"{"code":"X","extra":1}"#[..], "bad_request", 400),
    ] {
        let (status, body) = request(&addr, "POST", "/api/v1/lookup", &json, payload);
        assert_eq!(status, status_wanted, "{body}");
        assert!(body.contains(&format!(r#""code":"{code}""#)), "{body}");
    }
    let big = vec![b'x'; 100 * 1024];
    let (status, body) = request(&addr, "POST", "/api/v1/lookup", &json, &big);
    assert_eq!(status, 413, "{body}");
    assert!(terminate(child).success());
}

#[test]
fn issued_devices_operators_and_idempotent_steps_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = holdfast()
        .args([
            "demo",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&addr);
    let config = data.join("holdfast.toml");
    let cli = |args: &[&str], stdin: &str| {
        let mut child = holdfast()
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    // A manager issues a device token and adds an operator, while the appliance runs.
    let token = cli(&["device", "issue", "hh-9"], "").trim().to_owned();
    assert_eq!(token.len(), 64, "{token}");
    cli(
        &["operator", "add", "carol", "--name", "Carol", "--pin-stdin"],
        "2468\n",
    );
    assert!(cli(&["operator", "list"], "").contains("carol"));

    let auth = format!("Bearer {token}");
    let with_key = |key: &'static str| {
        vec![
            ("Authorization", auth.clone()),
            ("Content-Type", "application/json".to_owned()),
            ("Idempotency-Key", key.to_owned()),
        ]
    };
    let post = |path: &str, key: &'static str, body: &str| {
        let headers = with_key(key);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = request(&addr, "POST", path, &headers, body.as_bytes());
        (
            status,
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        )
    };

    // Writes need an Idempotency-Key.
    let no_key = [("Authorization", auth.as_str())];
    let (status, body) = request(&addr, "POST", "/api/v1/logout", &no_key, b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("idempotency_key_required"), "{body}");

    let (status, body) = post(
        "/api/v1/login",
        "l-1",
        r#"{"operator":"carol","pin":"1111"}"#,
    );
    assert_eq!(
        (status, &body["code"]),
        (401, &serde_json::json!("login_failed"))
    );
    let (status, body) = post(
        "/api/v1/login",
        "l-2",
        r#"{"operator":"carol","pin":"2468"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        "/api/v1/sessions",
        "s-1",
        r#"{"workflow":"pick","picking_id":3}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["session"]["expect"], "location");
    let (_, body) = post("/api/v1/scan", "s-2", r#"{"code":"WH-A-02-03"}"#);
    assert_eq!(body["code"], "location", "{body}");

    // A scan whose answer was lost is sent again with the same key: same answer, one entry.
    let (status, first) = post("/api/v1/scan", "s-3", r#"{"code":"5901230000363"}"#);
    assert_eq!(status, 200, "{first}");
    let (status, again) = post("/api/v1/scan", "s-3", r#"{"code":"5901230000363"}"#);
    assert_eq!(status, 200, "{again}");
    assert_eq!(first["entries"], again["entries"]);
    let listed = cli(&["journal", "list", "--json"], "");
    assert_eq!(listed.lines().count(), 1, "{listed}");
    // The same key for another request is refused.
    let (status, body) = post("/api/v1/scan", "s-3", r#"{"code":"WH-A-02-03"}"#);
    assert_eq!(
        (status, &body["code"]),
        (422, &serde_json::json!("idempotency_key_reused"))
    );
    // A scan in the wrong step is refused with the session unchanged.
    let (status, body) = post("/api/v1/sessions/nope/quantity", "s-4", r#"{"quantity":2}"#);
    assert_eq!(
        (status, &body["code"]),
        (404, &serde_json::json!("not_found"))
    );
    let (status, body) = post("/api/v1/scan", "s-5", r#"{"code":"]C10109501101530004"}"#);
    assert_eq!(
        (status, &body["code"]),
        (422, &serde_json::json!("bad_scan"))
    );

    // A manager frees a picking whose operator left: the session is cancelled, the entry stays.
    let listed = cli(&["session", "list"], "");
    let line = listed
        .lines()
        .find(|l| l.contains("WH/INT/00001"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("carol") && line.contains("hh-9"), "{line}");
    let id = line.split_whitespace().next().unwrap();
    cli(&["session", "cancel", id], "");
    assert!(!cli(&["session", "list"], "").contains(id));
    let (status, body) = post(
        "/api/v1/sessions",
        "s-6",
        r#"{"workflow":"pick","picking_id":3}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert_ne!(body["session_id"], id);
    assert_eq!(cli(&["journal", "list", "--json"], "").lines().count(), 1);

    // Revoked: the device is refused from then on.
    cli(&["device", "revoke", "hh-9"], "");
    let (status, _) = request(&addr, "GET", "/api/v1/me", &no_key, b"");
    assert_eq!(status, 401);
    assert!(terminate(child).success());
}

/// Plays scans on a running demo's scanner; returns the lines `demo-scan` printed.
fn demo_scan(data: &Path, via: &str, scans: &[&str]) -> Vec<String> {
    let mut args = vec![
        "demo-scan",
        "--data-dir",
        data.to_str().unwrap(),
        "--via",
        via,
    ];
    args.extend_from_slice(scans);
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn demo_scanners_on_a_pty_and_mqtt_run_picks_and_labels_reach_the_printer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let (child, addr) = start_demo(&data);
    wait_for(&addr);
    // The serial scanner (a pseudo-terminal the demo plays) picks WH/INT/00001 to the end.
    let heard = demo_scan(
        &data,
        "serial",
        &[
            "OP-ALICE",
            "WH/INT/00001",
            "WH-A-02-03",
            "5901230000363",
            "HF:QTY:19",
            "WH-A-03-02",
            "5901230000035",
            "]C110LOT-00004-A",
            "HF:QTY:12",
            "WH-A-03-03",
            "5901230000103",
            "HF:QTY:4",
            "HF:VALIDATE",
            "NO-SUCH-CODE",
        ],
    );
    assert_eq!(heard.len(), 14, "{heard:?}");
    assert!(
        heard[..13].iter().all(|l| l.starts_with("good")),
        "{heard:#?}"
    );
    assert!(heard[13].starts_with("BAD"), "{heard:#?}");
    // The MQTT scanner picks WH/OUT/00001 and prints its package label (a delivery label).
    let heard = demo_scan(
        &data,
        "mqtt",
        &[
            "OP-BOB",
            "WH/OUT/00001",
            "WH-A-01-10",
            "HF-00040",
            "HF:QTY:3",
            "HF:LABEL",
        ],
    );
    assert!(heard.iter().all(|l| l.starts_with("good")), "{heard:#?}");
    assert!(
        heard[5].contains("Package label queued on demo-printer"),
        "{heard:#?}"
    );
    // The label reached the demo's printer: a delivery label to the picking's partner, SSCC
    // with its FNC1.
    let labels = data.join("labels");
    let start = Instant::now();
    let label = loop {
        let found: Vec<_> = std::fs::read_dir(&labels).unwrap().flatten().collect();
        if let Some(f) = found.first() {
            break std::fs::read_to_string(f.path()).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no label printed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        label.starts_with("^XA^CI28") && label.ends_with("^XZ"),
        "{label}"
    );
    assert!(
        label.contains("SHIP TO") && label.contains("WH/OUT/00001"),
        "{label}"
    );
    assert!(label.contains("^FD>;>800"), "SSCC as GS1-128: {label}");
    // The registry knows both scanners and the printer (with a token: it names serial
    // ports and addresses).
    assert_eq!(get(&addr, "/api/v1/devices").unwrap().0, 401);
    assert_eq!(get(&addr, "/api/v1/printers").unwrap().0, 401);
    let (status, body) = get_as_manager(&addr, "/api/v1/devices");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let devices = json["devices"].as_array().unwrap();
    let find = |id: &str| devices.iter().find(|d| d["id"] == id).cloned().unwrap();
    assert_eq!(find("demo-serial")["scans"], 14);
    assert_eq!(find("demo-serial")["refused"], 1);
    assert_eq!(find("demo-mqtt")["transport"], "mqtt");
    assert_eq!(find("demo-printer")["state"], "online");
    // Jobs carry addresses: no token, no list.
    assert_eq!(get(&addr, "/api/v1/print-jobs").unwrap().0, 401);
    let manager = format!("Bearer {}", holdfast::demo::DEMO_MANAGER_TOKEN);
    // The printer has the label; the job is `sent` once the printer closed the connection.
    let start = Instant::now();
    let jobs = loop {
        let (_, body) = request(
            &addr,
            "GET",
            "/api/v1/print-jobs",
            &[("Authorization", manager.as_str())],
            b"",
        );
        let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
        if jobs["jobs"][0]["state"] == "sent" {
            break jobs;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{jobs}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(jobs["jobs"][0]["template"], "delivery");
    assert!(terminate(child).success());
    // The floor recorded the picks and the validation.
    let c = data.join("holdfast.toml");
    let out = run(&["--config", c.to_str().unwrap(), "journal", "list", "--json"]);
    let journal = text(&out.stdout);
    assert!(journal.contains("\"kind\":\"validate\""), "{journal}");
    let out = run(&["--config", c.to_str().unwrap(), "devices", "list"]);
    assert!(
        text(&out.stdout).contains("demo-serial"),
        "{}",
        text(&out.stdout)
    );
}

/// Prints a product label through the running appliance (the handheld's Print button) and
/// returns the ZPL the demo printer received.
fn print_product_label(addr: &str, labels: &Path, key: &str) -> String {
    let before = std::fs::read_dir(labels).map_or(0, |d| d.count());
    let auth = format!("Bearer {}", holdfast::demo::DEMO_TOKEN);
    let (status, body) = request(
        addr,
        "POST",
        "/api/v1/print",
        &[("Authorization", &auth), ("Idempotency-Key", key)],
        br#"{"label": "product", "product_id": 1}"#,
    );
    assert_eq!(status, 202, "{body}");
    let start = Instant::now();
    loop {
        let mut files: Vec<_> = std::fs::read_dir(labels)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if files.len() > before {
            files.sort();
            return std::fs::read_to_string(files.last().unwrap()).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no label printed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn site_templates_are_read_again_on_sighup_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let templates = dir.path().join("labels");
    std::fs::create_dir(&templates).unwrap();
    let product = templates.join("product.zpl");
    let layout =
        |mark: &str| format!("^XA^CI28^FO20,20^A0N,30,30^FH_^FD{mark} {{{{ name }}}}^FS^XZ\n");
    std::fs::write(&product, layout("SITE-A")).unwrap();
    let (child, addr) = start_demo_with(
        &data,
        &[("HOLDFAST__PRINTING__TEMPLATES", templates.to_str().unwrap())],
    );
    wait_for(&addr);
    let labels = data.join("labels");
    let label = print_product_label(&addr, &labels, "t-1");
    assert!(label.contains("SITE-A"), "{label}");

    // The layout changes on disk; `systemctl reload` (SIGHUP) puts it in use.
    std::fs::write(&product, layout("SITE-B")).unwrap();
    let config = data.join("holdfast.toml");
    let check_templates = || {
        run(&[
            "--config",
            config.to_str().unwrap(),
            "print",
            "templates",
            templates.to_str().unwrap(),
        ])
    };
    let out = check_templates();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("product.zpl"),
        "{}",
        text(&out.stdout)
    );
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGHUP).unwrap();
    let start = Instant::now();
    let mut n = 2;
    while !print_product_label(&addr, &labels, &format!("t-{n}")).contains("SITE-B") {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "SIGHUP did not reload the templates"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }

    // A mistake: the check names the file and line, and a reload keeps the layout in use.
    std::fs::write(&product, "^XA\n^FO20,20^FH_^FD{{ nme }}^FS^XZ\n").unwrap();
    let out = check_templates();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("product.zpl") && err.contains("nme"), "{err}");
    kill(pid, Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&addr, "/healthz").unwrap().0, 200, "still serving");
    n += 1;
    let label = print_product_label(&addr, &labels, &format!("t-{n}"));
    assert!(label.contains("SITE-B"), "{label}");
    assert!(terminate(child).success());
}

/// The `[odoo] url` of a demo's written config (where it reaches its simulated cloud).
fn demo_cloud_addr(data: &Path) -> String {
    let config = std::fs::read_to_string(data.join("holdfast.toml")).unwrap();
    config
        .lines()
        .find_map(|l| l.strip_prefix("url = \""))
        .unwrap()
        .trim_end_matches('"')
        .trim_start_matches("http://")
        .to_owned()
}

/// The move lines of a picking as the demo's simulated Odoo holds them (JSON-RPC).
fn cloud_lines(data: &Path, picking: i64) -> serde_json::Value {
    let sim = holdfast_sync::sim::SimConfig::default();
    let call = serde_json::json!({
        "jsonrpc": "2.0", "method": "call", "id": 1,
        "params": {"service": "object", "method": "execute_kw", "args": [
            sim.database, 2, sim.api_key, "stock.move.line", "search_read",
            [[["picking_id", "=", picking]]],
            {"fields": ["product_id", "location_id", "quantity", "picked"], "order": "id"},
        ]},
    });
    let (status, body) = request(
        &demo_cloud_addr(data),
        "POST",
        "/jsonrpc",
        &[("Content-Type", "application/json")],
        call.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["result"].clone()
}

#[test]
fn what_the_demo_pushed_is_still_in_its_cloud_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let (child, addr) = start_demo(&data);
    wait_for(&addr);
    let before = cloud_lines(&data, 3);
    let auth = format!("Bearer {}", holdfast::demo::DEMO_TOKEN);
    let mut n = 0;
    let mut post = |path: &str, body: &str| {
        n += 1;
        let key = format!("restart-{n}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key.as_str()),
        ];
        let (status, body) = request(&addr, "POST", path, &headers, body.as_bytes());
        assert!(status < 300, "{path}: {body}");
    };
    // One pick on WH/INT/00001, pushed to the simulated Odoo.
    post("/api/v1/login", r#"{"operator":"alice","pin":"1234"}"#);
    post("/api/v1/sessions", r#"{"workflow":"pick","picking_id":3}"#);
    post("/api/v1/scan", r#"{"code":"WH-A-02-03"}"#);
    post("/api/v1/scan", r#"{"code":"5901230000363"}"#);
    let config = data.join("holdfast.toml");
    let start = Instant::now();
    loop {
        let out = run(&[
            "--config",
            config.to_str().unwrap(),
            "journal",
            "list",
            "--state",
            "applied",
        ]);
        if text(&out.stdout).contains("pick") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the pick was never applied"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pushed = cloud_lines(&data, 3);
    assert_ne!(pushed, before, "the pick reached the cloud");
    let port = std::fs::read_to_string(data.join("cloud-port")).ok();
    assert!(terminate(child).success());

    // Restarted on the same data directory: the cloud is as the demo left it.
    let (child, addr) = start_demo(&data);
    wait_for(&addr);
    assert_eq!(cloud_lines(&data, 3), pushed);
    let again = std::fs::read_to_string(data.join("cloud-port")).ok();
    assert!(
        again.is_some() && again == port,
        "the simulated Odoo serves on its port again: {port:?} then {again:?}"
    );
    assert!(terminate(child).success());
}

#[test]
fn a_connection_flood_leaves_probes_and_scanners_served_under_a_low_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let scanner_port = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "[http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [[scanners]]\nid = \"dock-1\"\ntransport = \"tcp-listen\"\naddress = \"127.0.0.1:{scanner_port}\"\n\
             terminator = \"lf\"\ngood_beep = \"07\"\nbad_beep = \"15\"\n"
        ),
    );
    let addr = format!("127.0.0.1:{http_port}");
    // 400 descriptors, soft and hard (the appliance cannot raise it): fewer than the
    // connections the flood opens.
    let child = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 400 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_holdfast"),
            "--config",
            config.to_str().unwrap(),
            "run",
        ])
        .env_remove("HOLDFAST_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server: std::net::SocketAddr = addr.parse().unwrap();
    // 600 idle connections from four addresses.
    let flood = rt.block_on(async {
        let mut flood = Vec::new();
        for i in 0..600u32 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(std::net::SocketAddr::from((
                    [127, 0, 4, (i % 4) as u8 + 1],
                    0,
                )))
                .unwrap();
            flood.push(socket.connect(server).await.unwrap());
        }
        flood
    });
    let ask = |path: &str| {
        let started = Instant::now();
        let answer = get(&addr, path);
        (answer.map(|a| a.0).unwrap_or(0), started.elapsed())
    };
    // Probes answer at once; a page is refused at once (the cap is reached), not held.
    let (status, took) = ask("/healthz");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
    let (status, took) = ask("/readyz");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "/readyz took {took:?}");
    let (status, took) = ask("/ui/");
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(1), "/ui/ took {took:?}");
    // A fixed-mount scanner still connects and gets its beep (a refusal: nobody signed in).
    let mut scanner = TcpStream::connect(("127.0.0.1", scanner_port)).unwrap();
    scanner
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    scanner.write_all(b"5901230000363\n").unwrap();
    let mut beep = [0u8; 1];
    scanner.read_exact(&mut beep).unwrap();
    assert!(beep == [0x07] || beep == [0x15], "{beep:?}");
    drop(flood);
    assert!(terminate(child).success());
}
