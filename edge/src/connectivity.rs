//! The connectivity mode: online / degraded / offline, decided from probes and from the
//! outcomes of real calls, with hysteresis so it does not flap.
//!
//! - **offline** after [`OFFLINE_AFTER`] network failures in a row (refused, timed out, cut),
//!   from probes or calls alike;
//! - out of offline only to **degraded**, after [`BACK_AFTER`] successes in a row;
//! - **online** only after [`ONLINE_AFTER`] successes in a row, with few errors among the
//!   recent calls, answers not slow, the backlog small and the queue not paused;
//! - from online to **degraded** when errors, slowness or the backlog cross a higher bar than
//!   the one that let it in.
//!
//! [`Tracker`] is the pure rule; [`Connectivity`] shares it between the push, its probes and
//! the pull, and records each change in the store (`mode`, `mode_since` in status).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_sync::odoo::{ErrorClass, OdooError};
use serde::Serialize;

use crate::store::{Store, now_ms};

/// Network failures in a row that make the cloud offline.
pub const OFFLINE_AFTER: u32 = 3;
/// Successes in a row that bring an offline cloud back (to degraded).
pub const BACK_AFTER: u32 = 2;
/// Successes in a row needed before online.
pub const ONLINE_AFTER: u32 = 5;
/// Recent calls the error rate and latency are judged on.
const WINDOW: usize = 20;
/// Answers slower than this (median of the window) make the cloud degraded...
const SLOW: Duration = Duration::from_secs(3);
/// ...and it must be below this to be online again.
const FAST: Duration = Duration::from_millis(1500);
/// Pending entries above which the site is draining a backlog (degraded)...
const BACKLOG_HIGH: i64 = 200;
/// ...and below which it may be online again.
const BACKLOG_LOW: i64 = 50;

/// The mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Online,
    Degraded,
    Offline,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Online => "online",
            Mode::Degraded => "degraded",
            Mode::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Mode {
        match s {
            "online" => Mode::Online,
            "degraded" => Mode::Degraded,
            _ => Mode::Offline,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A call or probe answered.
    Ok { latency: Duration },
    /// It did not reach Odoo or got no answer (refused, timed out, connection cut).
    Network,
    /// Odoo answered with an error (busy, refused credentials, server error).
    Error,
    /// Entries waiting to reach Odoo.
    Backlog(i64),
    /// The queue is paused (refused credentials), with why; `None` when it resumes.
    Paused(Option<String>),
}

impl Event {
    /// The event a call's result makes.
    pub fn of<T>(result: &Result<T, OdooError>, latency: Duration) -> Event {
        match result {
            Ok(_) => Event::Ok { latency },
            Err(e) => match e {
                OdooError::Unreachable { .. } | OdooError::Timeout(_) | OdooError::Lost(_) => {
                    Event::Network
                }
                // A refusal of one call's content says nothing about the link.
                e if e.class() == ErrorClass::Permanent => Event::Ok { latency },
                _ => Event::Error,
            },
        }
    }
}

/// The pure rule (see the module docs).
#[derive(Clone, Debug)]
pub struct Tracker {
    mode: Mode,
    since_ms: i64,
    fails_in_row: u32,
    oks_in_row: u32,
    /// (ok, latency) of recent calls.
    recent: VecDeque<(bool, Duration)>,
    backlog: i64,
    paused: Option<String>,
}

impl Tracker {
    pub fn new(mode: Mode, since_ms: i64) -> Tracker {
        Tracker {
            mode,
            since_ms,
            fails_in_row: 0,
            oks_in_row: 0,
            recent: VecDeque::with_capacity(WINDOW),
            backlog: 0,
            paused: None,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn since_ms(&self) -> i64 {
        self.since_ms
    }

    pub fn paused(&self) -> Option<&str> {
        self.paused.as_deref()
    }

    fn push_recent(&mut self, ok: bool, latency: Duration) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((ok, latency));
    }

    fn error_rate(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.recent.iter().filter(|(ok, _)| !ok).count() as f64 / self.recent.len() as f64
    }

    fn median_latency(&self) -> Duration {
        let mut l: Vec<Duration> = self
            .recent
            .iter()
            .filter(|(ok, _)| *ok)
            .map(|(_, d)| *d)
            .collect();
        l.sort();
        l.get(l.len() / 2).copied().unwrap_or_default()
    }

    /// Applies an event; returns the new mode when it changed.
    pub fn observe(&mut self, event: Event, now_ms: i64) -> Option<Mode> {
        match event {
            Event::Ok { latency } => {
                self.fails_in_row = 0;
                self.oks_in_row = self.oks_in_row.saturating_add(1);
                self.push_recent(true, latency);
            }
            Event::Network => {
                self.oks_in_row = 0;
                self.fails_in_row = self.fails_in_row.saturating_add(1);
                self.push_recent(false, Duration::ZERO);
            }
            Event::Error => {
                self.oks_in_row = 0;
                self.push_recent(false, Duration::ZERO);
            }
            Event::Backlog(n) => self.backlog = n,
            Event::Paused(why) => self.paused = why,
        }
        let next = self.next_mode();
        (next != self.mode).then(|| {
            self.mode = next;
            self.since_ms = now_ms;
            next
        })
    }

    fn next_mode(&self) -> Mode {
        if self.fails_in_row >= OFFLINE_AFTER {
            return Mode::Offline;
        }
        match self.mode {
            Mode::Offline if self.oks_in_row >= BACK_AFTER => Mode::Degraded,
            Mode::Offline => Mode::Offline,
            Mode::Degraded => {
                let healthy = self.oks_in_row >= ONLINE_AFTER
                    && self.error_rate() < 0.1
                    && self.median_latency() < FAST
                    && self.backlog < BACKLOG_LOW
                    && self.paused.is_none();
                if healthy {
                    Mode::Online
                } else {
                    Mode::Degraded
                }
            }
            Mode::Online => {
                let unhealthy = self.error_rate() > 0.3
                    || self.median_latency() > SLOW
                    || self.backlog > BACKLOG_HIGH
                    || self.paused.is_some()
                    || self.fails_in_row > 0 && self.error_rate() > 0.2;
                if unhealthy {
                    Mode::Degraded
                } else {
                    Mode::Online
                }
            }
        }
    }
}

/// The shared tracker, recording changes in the store.
#[derive(Clone, Debug)]
pub struct Connectivity {
    tracker: Arc<Mutex<Tracker>>,
    store: Store,
}

impl Connectivity {
    /// Starts from the mode the store last recorded.
    pub fn new(store: Store) -> Connectivity {
        let (mode, since) = store
            .read(|r| r.appliance_state())
            .map(|s| (Mode::parse(&s.mode), s.mode_since))
            .unwrap_or((Mode::Offline, now_ms()));
        Connectivity {
            tracker: Arc::new(Mutex::new(Tracker::new(mode, since))),
            store,
        }
    }

    pub fn mode(&self) -> Mode {
        self.tracker
            .lock()
            .map(|t| t.mode())
            .unwrap_or(Mode::Offline)
    }

    /// Why the queue is paused, if it is.
    pub fn paused(&self) -> Option<String> {
        self.tracker
            .lock()
            .ok()
            .and_then(|t| t.paused().map(str::to_owned))
    }

    /// Applies an event and records a change of mode.
    pub async fn observe(&self, event: Event) {
        let change = {
            let Ok(mut t) = self.tracker.lock() else {
                return;
            };
            t.observe(event, now_ms()).map(|m| (m, t.since_ms()))
        };
        if let Some((mode, since)) = change {
            tracing::info!(mode = mode.as_str(), "connectivity mode changed");
            if let Err(e) = self.store.set_mode(mode.as_str(), since).await {
                tracing::warn!(error = %e, "cannot record the connectivity mode");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Event {
        Event::Ok {
            latency: Duration::from_millis(50),
        }
    }

    #[test]
    fn one_failure_does_not_make_the_cloud_offline_and_it_comes_back_through_degraded() {
        let mut t = Tracker::new(Mode::Online, 0);
        assert_eq!(t.observe(Event::Network, 1), Some(Mode::Degraded));
        assert_eq!(t.observe(Event::Network, 2), None);
        assert_eq!(t.observe(Event::Network, 3), Some(Mode::Offline));
        assert_eq!(t.observe(ok(), 4), None, "one answer is not enough");
        assert_eq!(t.observe(ok(), 5), Some(Mode::Degraded));
        for i in 0..2 {
            assert_eq!(t.observe(ok(), 6 + i), None);
        }
        // Errors still in the window keep it degraded until they age out.
        let mut went_online = None;
        for i in 0..WINDOW as i64 {
            if let Some(m) = t.observe(ok(), 10 + i) {
                went_online = Some((m, i));
            }
        }
        assert_eq!(went_online.map(|(m, _)| m), Some(Mode::Online));
        assert!(t.since_ms() >= 10);
    }

    #[test]
    fn a_backlog_and_a_pause_hold_the_mode_at_degraded() {
        let mut t = Tracker::new(Mode::Degraded, 0);
        t.observe(Event::Backlog(500), 0);
        for i in 0..30 {
            t.observe(ok(), i);
        }
        assert_eq!(t.mode(), Mode::Degraded);
        t.observe(Event::Backlog(100), 31);
        assert_eq!(
            t.mode(),
            Mode::Degraded,
            "hysteresis: below the low mark only"
        );
        assert_eq!(t.observe(Event::Backlog(10), 32), Some(Mode::Online));
        assert_eq!(
            t.observe(Event::Paused(Some("credentials refused".into())), 33),
            Some(Mode::Degraded)
        );
    }

    #[test]
    fn flapping_calls_do_not_flap_the_mode() {
        let mut t = Tracker::new(Mode::Online, 0);
        let mut changes = 0;
        for i in 0..200 {
            let e = if i % 7 == 0 { Event::Error } else { ok() };
            changes += t.observe(e, i).is_some() as u32;
        }
        assert!(changes <= 2, "{changes} changes");
    }
}
