//! The handhelds: a minimal HTTP/1.1 keep-alive client (one connection per device, one
//! request at a time, as a handheld does), hand-written so that the load generator, which
//! shares the machine's cores with the server, costs as little CPU as possible (its share is
//! printed); signing in, scanning back to back or paced.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

pub struct Conn {
    pub stream: TcpStream,
    pub host: String,
    pub out: Vec<u8>,
    pub buf: Vec<u8>,
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            host: addr.to_string(),
            out: Vec::with_capacity(512),
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// POSTs a JSON body and returns the status and body of the answer.
    pub async fn post(&mut self, path: &str, token: &str, key: &str, body: &str) -> (u16, Vec<u8>) {
        use std::io::Write;
        self.out.clear();
        write!(
            self.out,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Idempotency-Key: {key}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .unwrap();
        self.stream.write_all(&self.out).await.unwrap();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap();
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line: {head}"));
                let mut length = None;
                for line in head.split("\r\n").skip(1) {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse::<usize>().ok();
                    }
                    assert!(
                        !name.eq_ignore_ascii_case("transfer-encoding"),
                        "this client reads only answers with a Content-Length: {head}"
                    );
                }
                let length =
                    length.unwrap_or_else(|| panic!("answer without Content-Length: {head}"));
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.fill().await;
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return (status, body);
            }
            self.fill().await;
        }
    }

    pub async fn fill(&mut self) {
        self.buf.reserve(16 * 1024);
        let n = self.stream.read_buf(&mut self.buf).await.unwrap();
        assert!(n > 0, "the server closed the connection");
    }
}

#[derive(Clone, Debug)]
pub struct Device {
    pub id: String,
    pub token: String,
    pub badge: String,
    pub picking: i64,
    /// Barcodes (else internal references) of the picking's products, scanned in turn.
    pub codes: Vec<String>,
}

/// A device signed in with its session open.
pub struct Handheld {
    pub conn: Conn,
    pub device: Device,
    /// Scans sent so far (names the idempotency keys).
    pub n: u64,
}

/// What one device saw during a run.
#[derive(Default)]
pub struct Seen {
    /// Round trips of the measured scans, in order.
    pub latencies: Vec<Duration>,
    pub failures: u64,
    pub first_failure: Option<String>,
    /// Paced runs: sends more than 5 ms behind their schedule.
    pub behind: u64,
}

impl Seen {
    pub fn failed(&mut self, message: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(message);
    }
}

impl Handheld {
    /// Signs the operator in by badge and opens a pick session on the device's picking.
    pub async fn sign_in(addr: SocketAddr, device: Device) -> Handheld {
        let mut conn = Conn::open(addr).await;
        let d = &device;
        let (status, body) = conn
            .post(
                "/api/v1/login",
                &d.token,
                &format!("{}-login", d.id),
                &json!({"badge": d.badge}).to_string(),
            )
            .await;
        assert_eq!(
            status,
            200,
            "sign-in on {}: {}",
            d.id,
            String::from_utf8_lossy(&body)
        );
        let (status, body) = conn
            .post(
                "/api/v1/sessions",
                &d.token,
                &format!("{}-start", d.id),
                &json!({"workflow": "pick", "picking_id": d.picking}).to_string(),
            )
            .await;
        assert_eq!(
            status,
            201,
            "pick session on picking {} from {}: {}",
            d.picking,
            d.id,
            String::from_utf8_lossy(&body)
        );
        Handheld { conn, device, n: 0 }
    }

    /// One scan: the next product code of the picking, under a new idempotency key.
    pub async fn scan(&mut self) -> Result<(), String> {
        let d = &self.device;
        let code = &d.codes[self.n as usize % d.codes.len()];
        let key = format!("{}-{}", d.id, self.n);
        self.n += 1;
        let body = format!(r#"{{"code":"{code}"}}"#);
        let (status, answer) = self.conn.post("/api/v1/scan", &d.token, &key, &body).await;
        let answer: Value = serde_json::from_slice(&answer).map_err(|e| {
            format!(
                "{}: answer is not JSON ({e}): {}",
                d.id,
                String::from_utf8_lossy(&answer)
            )
        })?;
        let ok = status == 200
            && matches!(answer["status"].as_str(), Some("ok" | "warning"))
            && answer["entries"].as_array().is_some_and(|e| e.len() == 1);
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} scanning {code} on picking {}: HTTP {status} {answer}",
                d.id, d.picking
            ))
        }
    }

    pub async fn warm_up(&mut self, scans: u64, seen: &mut Seen) {
        for _ in 0..scans {
            if let Err(e) = self.scan().await {
                seen.failed(e);
            }
        }
    }

    /// Scans back to back until `duration` after the start.
    pub async fn closed(mut self, warmup: u64, start: Arc<Barrier>, duration: Duration) -> Outcome {
        let mut seen = Seen::default();
        self.warm_up(warmup, &mut seen).await;
        start.wait().await;
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.timed_scan(&mut seen).await;
        }
        (self, seen)
    }

    /// Scans `scans` times back to back.
    pub async fn count(mut self, scans: u64) -> Outcome {
        let mut seen = Seen::default();
        for _ in 0..scans {
            self.timed_scan(&mut seen).await;
        }
        (self, seen)
    }

    /// One measured scan: its round trip, and its failure if any.
    pub async fn timed_scan(&mut self, seen: &mut Seen) {
        let t = Instant::now();
        let result = self.scan().await;
        seen.latencies.push(t.elapsed());
        if let Err(e) = result {
            seen.failed(e);
        }
    }

    /// Scans every `interval` (from `phase` after the start) for `duration`.
    pub async fn paced(
        mut self,
        warmup: u64,
        start: Arc<Barrier>,
        duration: Duration,
        interval: Duration,
        phase: Duration,
    ) -> Outcome {
        let mut seen = Seen::default();
        self.warm_up(warmup, &mut seen).await;
        start.wait().await;
        let begin = tokio::time::Instant::now();
        let mut due = begin + phase;
        while due < begin + duration {
            tokio::time::sleep_until(due).await;
            if due.elapsed() > Duration::from_millis(5) {
                seen.behind += 1;
            }
            self.timed_scan(&mut seen).await;
            due += interval;
        }
        (self, seen)
    }
}

pub type Outcome = (Handheld, Seen);

pub async fn sign_in_all(addr: SocketAddr, devices: &[Device]) -> Vec<Handheld> {
    let tasks: Vec<_> = devices
        .iter()
        .cloned()
        .map(|d| tokio::spawn(Handheld::sign_in(addr, d)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
