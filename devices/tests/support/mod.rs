//! Shared by the transport tests: a hub that records what transports hand it.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast_devices::hub::{DeviceEvent, Feedback, Hub, Transport};

/// A scan as the hub saw it: device, bytes, idempotency key.
pub type Seen = (String, Vec<u8>, Option<String>);

/// Records scans and events; answers good unless the scan is `BAD`; can be made slow.
#[derive(Clone, Default)]
pub struct TestHub {
    pub scans: Arc<Mutex<Vec<Seen>>>,
    pub events: Arc<Mutex<Vec<(String, DeviceEvent)>>>,
    pub delay: Arc<Mutex<Duration>>,
    /// Scans handed over so far, counted before the delay (a scan in hand).
    pub arrived: Arc<Mutex<usize>>,
}

impl Hub for TestHub {
    async fn scan(
        &self,
        device: &str,
        _transport: Transport,
        data: Vec<u8>,
        key: Option<String>,
    ) -> Feedback {
        *self.arrived.lock().unwrap() += 1;
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.scans
            .lock()
            .unwrap()
            .push((device.into(), data.clone(), key));
        if data == b"BAD" {
            Feedback::bad("refused", "bad scan")
        } else {
            Feedback::good(format!("got {}", String::from_utf8_lossy(&data)))
        }
    }

    fn event(&self, device: &str, event: DeviceEvent) {
        self.events.lock().unwrap().push((device.into(), event));
    }
}

impl TestHub {
    pub fn data(&self) -> Vec<Vec<u8>> {
        self.scans
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.1.clone())
            .collect()
    }

    pub fn count(&self, f: impl Fn(&DeviceEvent) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| f(e))
            .count()
    }

    pub fn connects(&self) -> usize {
        self.count(|e| matches!(e, DeviceEvent::Connected { .. }))
    }

    pub fn disconnects(&self) -> usize {
        self.count(|e| matches!(e, DeviceEvent::Disconnected { .. }))
    }

    pub fn refusals(&self) -> usize {
        self.count(|e| matches!(e, DeviceEvent::Refused { .. }))
    }
}

/// Polls until `f` holds; fails the test after 15 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback address nobody listens on (yet).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub mod mosquitto;
pub mod pki;
