//! Eclipse Mosquitto, the broker sites run, started as a child process on loopback for one
//! test or benchmark run. Debian's package `mosquitto` (`/usr/sbin/mosquitto`);
//! `scripts/test.sh` installs it. Also compiled into the LAN benchmark (`#[path]`).

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the broker is: `PATH`, else where Debian puts it (`/usr/sbin` is not on every
/// user's `PATH`).
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("mosquitto"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin/mosquitto");
        debian.is_file().then_some(debian)
    })
}

/// The broker for a test: `None` (after saying why) when it is not installed, except under
/// `CI=true`, where a missing broker fails the test rather than skipping it.
pub fn required(test: &str) -> Option<PathBuf> {
    let found = binary();
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: mosquitto is not installed (Debian package `mosquitto`; scripts/test.sh installs it)"
        );
        eprintln!("{test}: skipped: mosquitto is not installed (scripts/test.sh installs it)");
    }
    found
}

/// One broker process. Killed when dropped.
pub struct Mosquitto {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts `binary` with `config` (written to `dir/mosquitto.conf`) and waits until `addr`
    /// (the config's first listener) takes connections.
    pub fn start(binary: &Path, dir: &Path, addr: SocketAddr, config: &str) -> Mosquitto {
        let path = dir.join("mosquitto.conf");
        // Started as root, mosquitto would drop to the `mosquitto` user and lose the test's
        // files; `user root` keeps it (ignored when not root).
        let full = format!(
            "user root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n{config}"
        );
        std::fs::write(&path, full).unwrap();
        let mut broker = Mosquitto {
            binary: binary.to_owned(),
            config: path,
            log: dir.join("mosquitto.log"),
            addr,
            child: None,
        };
        broker.spawn();
        broker
    }

    /// A plain listener at `addr`, anonymous clients, Nagle's algorithm as configured.
    pub fn plain(binary: &Path, dir: &Path, addr: SocketAddr, nodelay: bool) -> Mosquitto {
        let config = format!(
            "listener {} {}\nallow_anonymous true\nset_tcp_nodelay {nodelay}\n",
            addr.port(),
            addr.ip()
        );
        Mosquitto::start(binary, dir, addr, &config)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().unwrap()) {
                panic!("mosquitto exited with {status}: {}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto is not listening on {}: {}",
                self.addr,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the broker logged (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the broker is gone at once, with whatever it held in memory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Killed, then started again on the same port with the same config.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes a Mosquitto password file with one login, by the broker's own `mosquitto_passwd`.
pub fn password_file(path: &Path, user: &str, password: &str) {
    let tool = ["/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mosquitto_passwd"));
    let out = Command::new(&tool)
        .arg("-c")
        .arg("-b")
        .arg(path)
        .arg(user)
        .arg(password)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    assert!(
        out.status.success(),
        "mosquitto_passwd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a Mosquitto password file with several logins.
pub fn password_file_with(path: &Path, logins: &[(&str, &str)]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, "").unwrap();
    let tool = ["/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mosquitto_passwd"));
    for (user, password) in logins {
        let out = Command::new(&tool)
            .arg("-b")
            .arg(path)
            .arg(user)
            .arg(password)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
        assert!(
            out.status.success(),
            "mosquitto_passwd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The broker config Holdfast ships (`systemd/mosquitto/`), with its listener moved to
/// `addr` and its password file at `passwd`; the shipped ACL file as it is.
pub fn shipped_config(addr: SocketAddr, passwd: &Path) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/mosquitto");
    let conf = std::fs::read_to_string(dir.join("holdfast.conf")).unwrap();
    let acl = dir.join("holdfast.acl").canonicalize().unwrap();
    let replaced = conf
        .replace(
            "\nlistener 1883\n",
            &format!("\nlistener {} {}\n", addr.port(), addr.ip()),
        )
        .replace(
            "/etc/mosquitto/holdfast.passwd",
            &passwd.display().to_string(),
        )
        .replace("/etc/mosquitto/holdfast.acl", &acl.display().to_string());
    assert!(
        replaced.contains(&format!("listener {} ", addr.port())),
        "the shipped config has no `listener 1883` line to move"
    );
    replaced
}
