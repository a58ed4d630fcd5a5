//! The connectivity mode: unknown / online / degraded / offline, decided from probes, from
//! the outcomes of real calls and from the pull's health, with hysteresis so it does not
//! flap.
//!
//! - **unknown** from the start until Odoo first answers: the mode a previous run recorded
//!   says nothing about the link now;
//! - **offline** after [`OFFLINE_AFTER`] network failures in a row (refused, timed out, cut),
//!   from probes or calls alike;
//! - out of offline only to **degraded**, after [`BACK_AFTER`] successes in a row;
//! - **online** only after [`ONLINE_AFTER`] successes in a row, with few errors among the
//!   recent calls, answers not slow, the backlog small, the queue not paused and the mirror
//!   fresh (the first answer after the start is enough: there is no history to hold back);
//! - from online to **degraded** when errors, slowness or the backlog cross a higher bar than
//!   the one that let it in, when the queue pauses, or when the mirror is older than
//!   `sync.stale_after_secs` or the pull failed [`Limits::pull_failures`] times in a row —
//!   pushes that succeed do not make a mirror that stopped refreshing healthy.
//!
//! Open conflicts are not an input: they wait for a person, not for the link, and status
//! shows them as their own figure.
//!
//! Every mode but online carries a reason ([`Tracker::reason`]) for the people reading
//! status. [`Tracker`] is the pure rule; [`Connectivity`] shares it between the push, the
//! pull and [`run_probes`], and records each change in the store (`mode`, `mode_since`).
//!
//! **Detection budget.** A link that dies silently (a black hole: nothing answers, nothing
//! is refused) is found by probes alone, since calls wait for their own, longer time-out. A
//! probe runs every `push.probe_secs` (5 s by default) with `push.probe_timeout_secs` (3 s);
//! the first failure triggers another probe at once and then one every [`PROBE_FAST`], each
//! on its own connection, so the third failure lands about `probe + 2 × timeout + 1 s` after
//! the link died. Every period is drawn within ±[`JITTER`] of its value, so that hundreds of
//! sites restarted by one power cut, or waiting for the same cloud to come back, do not
//! probe it in lockstep: 13.2 s at worst with the defaults (12 s on average), and a link
//! that is back is found within 1.2 s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_sync::odoo::{ErrorClass, OdooError};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, now_ms};

/// Network failures in a row that make the cloud offline.
pub const OFFLINE_AFTER: u32 = 3;
/// Successes in a row that bring an offline cloud back (to degraded).
pub const BACK_AFTER: u32 = 2;
/// Successes in a row needed before online.
pub const ONLINE_AFTER: u32 = 5;
/// How often to probe while the link is in doubt: before the first answer, offline, or
/// after a failure.
pub const PROBE_FAST: Duration = Duration::from_secs(1);
/// How far a probe period strays from its value, either way (a fraction of it).
pub const JITTER: f64 = 0.2;
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
    Unknown,
    Online,
    Degraded,
    Offline,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Unknown => "unknown",
            Mode::Online => "online",
            Mode::Degraded => "degraded",
            Mode::Offline => "offline",
        }
    }

    /// A recorded mode; anything unrecognised is unknown.
    pub fn parse(s: &str) -> Mode {
        match s {
            "online" => Mode::Online,
            "degraded" => Mode::Degraded,
            "offline" => Mode::Offline,
            _ => Mode::Unknown,
        }
    }
}

/// The pull's health as the tracker judges it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullHealth {
    /// When the mirror was last refreshed by a whole pull (unix ms); `None` if never.
    pub mirror_as_of: Option<i64>,
    /// Pulls failed since the last one that succeeded.
    pub failures_in_row: u32,
    pub last_error: Option<String>,
}

/// The site's bounds on the pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A mirror older than this makes the mode degraded.
    pub stale_after: Duration,
    /// Pulls failed in a row that make the mode degraded, however fresh the mirror.
    pub pull_failures: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            stale_after: Duration::from_secs(300),
            pull_failures: 3,
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
    /// The pull's health now (fed periodically: a mirror grows stale with time alone).
    Pull(PullHealth),
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
    limits: Limits,
    fails_in_row: u32,
    oks_in_row: u32,
    /// (ok, latency) of recent calls.
    recent: VecDeque<(bool, Duration)>,
    backlog: i64,
    paused: Option<String>,
    pull: Option<PullHealth>,
    /// Why the last network failure happened, when its source said.
    last_problem: Option<String>,
}

impl Tracker {
    pub fn new(mode: Mode, since_ms: i64) -> Tracker {
        Tracker::with_limits(mode, since_ms, Limits::default())
    }

    pub fn with_limits(mode: Mode, since_ms: i64, limits: Limits) -> Tracker {
        Tracker {
            mode,
            since_ms,
            limits,
            fails_in_row: 0,
            oks_in_row: 0,
            recent: VecDeque::with_capacity(WINDOW),
            backlog: 0,
            paused: None,
            pull: None,
            last_problem: None,
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

    /// Entries waiting to reach Odoo, as last reported by the push.
    pub fn backlog(&self) -> i64 {
        self.backlog
    }

    /// Whether the link is in doubt (probes then come faster).
    pub fn in_doubt(&self) -> bool {
        matches!(self.mode, Mode::Unknown | Mode::Offline) || self.fails_in_row > 0
    }

    /// Remembers why the last network failure happened, for the offline reason.
    pub fn note_problem(&mut self, problem: String) {
        self.last_problem = Some(problem);
    }

    fn push_recent(&mut self, ok: bool, latency: Duration) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((ok, latency));
    }

    fn failed_recently(&self) -> usize {
        self.recent.iter().filter(|(ok, _)| !ok).count()
    }

    fn error_rate(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.failed_recently() as f64 / self.recent.len() as f64
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

    /// Odoo has answered at least once (well or with an error).
    fn answered(&self) -> bool {
        self.recent.iter().any(|(ok, _)| *ok) || self.recent.len() > self.fails_in_row as usize
    }

    /// Why the pull makes the site degraded, if it does.
    fn pull_problem(&self, now_ms: i64) -> Option<String> {
        let pull = self.pull.as_ref()?;
        let error = pull
            .last_error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        if let Some(at) = pull.mirror_as_of {
            let age = Duration::from_millis((now_ms - at).max(0) as u64);
            if age > self.limits.stale_after {
                return Some(format!("mirror stale: last pull {} ago{error}", ago(age)));
            }
        }
        (pull.failures_in_row >= self.limits.pull_failures).then(|| {
            format!(
                "pull failing: {} failures in a row{error}",
                pull.failures_in_row
            )
        })
    }

    /// Applies an event at `now_ms`; returns the new mode when it changed.
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
            Event::Pull(health) => self.pull = Some(health),
        }
        let next = self.next_mode(now_ms);
        (next != self.mode).then(|| {
            self.mode = next;
            self.since_ms = now_ms;
            next
        })
    }

    /// The bar to be online (the lower one).
    fn healthy(&self, now_ms: i64) -> bool {
        self.error_rate() < 0.1
            && self.median_latency() < FAST
            && self.backlog < BACKLOG_LOW
            && self.paused.is_none()
            && self.pull_problem(now_ms).is_none()
    }

    fn next_mode(&self, now_ms: i64) -> Mode {
        if self.fails_in_row >= OFFLINE_AFTER {
            return Mode::Offline;
        }
        match self.mode {
            Mode::Unknown if !self.answered() => Mode::Unknown,
            Mode::Unknown if self.healthy(now_ms) => Mode::Online,
            Mode::Unknown => Mode::Degraded,
            Mode::Offline if self.oks_in_row >= BACK_AFTER => Mode::Degraded,
            Mode::Offline => Mode::Offline,
            Mode::Degraded => {
                if self.oks_in_row >= ONLINE_AFTER && self.healthy(now_ms) {
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
                    || self.fails_in_row > 0 && self.error_rate() > 0.2
                    || self.pull_problem(now_ms).is_some();
                if unhealthy {
                    Mode::Degraded
                } else {
                    Mode::Online
                }
            }
        }
    }

    /// Why the mode is not online, for people: `None` when online.
    pub fn reason(&self, now_ms: i64) -> Option<String> {
        let problem = self.last_problem.as_deref();
        match self.mode {
            Mode::Online => None,
            Mode::Unknown => Some(match problem {
                Some(p) if self.fails_in_row > 0 => format!("no answer from odoo yet: {p}"),
                _ => "waiting for the first answer from odoo".to_owned(),
            }),
            Mode::Offline => Some(format!(
                "odoo unreachable: {}",
                problem.unwrap_or("no answer")
            )),
            Mode::Degraded => {
                let mut why = Vec::new();
                if let Some(p) = &self.paused {
                    why.push(format!("queue paused: {p}"));
                }
                if let Some(p) = self.pull_problem(now_ms) {
                    why.push(p);
                }
                if self.backlog >= BACKLOG_LOW {
                    why.push(format!("backlog: {} entries to push", self.backlog));
                }
                if self.error_rate() >= 0.1 {
                    why.push(format!(
                        "recent failures: {} of the last {} calls failed",
                        self.failed_recently(),
                        self.recent.len()
                    ));
                }
                let median = self.median_latency();
                if median >= FAST {
                    why.push(format!(
                        "odoo slow: median answer {:.1} s",
                        median.as_secs_f64()
                    ));
                }
                if why.is_empty() && self.oks_in_row < ONLINE_AFTER {
                    why.push(format!(
                        "recovering: {} of {ONLINE_AFTER} answers in a row",
                        self.oks_in_row
                    ));
                }
                if why.is_empty() {
                    why.push("settling".to_owned());
                }
                Some(why.join("; "))
            }
        }
    }
}

/// `45 s`, `14 min`, `3 h 5 min`, `2 d 4 h`.
pub fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The mode as status shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeNow {
    pub mode: Mode,
    pub since_ms: i64,
    pub reason: Option<String>,
}

/// The shared tracker, recording changes in the store.
#[derive(Clone, Debug)]
pub struct Connectivity {
    tracker: Arc<Mutex<Tracker>>,
    store: Option<Store>,
    changes: Arc<watch::Sender<Mode>>,
}

impl Connectivity {
    /// Starts unknown, with the default limits.
    pub fn new(store: Store) -> Connectivity {
        Connectivity::with_limits(Some(store), Limits::default())
    }

    /// Starts unknown; records changes in `store` when there is one.
    pub fn with_limits(store: Option<Store>, limits: Limits) -> Connectivity {
        let (changes, _) = watch::channel(Mode::Unknown);
        Connectivity {
            tracker: Arc::new(Mutex::new(Tracker::with_limits(
                Mode::Unknown,
                now_ms(),
                limits,
            ))),
            store,
            changes: Arc::new(changes),
        }
    }

    fn with_tracker<T>(&self, f: impl FnOnce(&mut Tracker) -> T) -> T {
        // A panic elsewhere while holding the lock leaves a tracker that is still whole.
        let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut t)
    }

    pub fn mode(&self) -> Mode {
        self.with_tracker(|t| t.mode())
    }

    /// Mode, since when and why, now.
    pub fn now(&self) -> ModeNow {
        let now = now_ms();
        self.with_tracker(|t| ModeNow {
            mode: t.mode(),
            since_ms: t.since_ms(),
            reason: t.reason(now),
        })
    }

    /// Follows the mode's changes.
    pub fn subscribe(&self) -> watch::Receiver<Mode> {
        self.changes.subscribe()
    }

    /// Why the queue is paused, if it is.
    pub fn paused(&self) -> Option<String> {
        self.with_tracker(|t| t.paused().map(str::to_owned))
    }

    /// Whether the push is draining a backlog of at least `busy` entries (and not paused,
    /// where nothing drains).
    pub fn draining(&self, busy: i64) -> bool {
        self.with_tracker(|t| t.backlog() >= busy && t.paused().is_none())
    }

    /// Remembers why the last network failure happened (shown while offline).
    pub fn note_problem(&self, problem: String) {
        self.with_tracker(|t| t.note_problem(problem));
    }

    /// Whether the link is in doubt: before the first answer, offline, or after a failure.
    pub fn in_doubt(&self) -> bool {
        self.with_tracker(|t| t.in_doubt())
    }

    /// The probe period: `every`, or [`PROBE_FAST`] while the link is in doubt.
    pub fn probe_period(&self, every: Duration) -> Duration {
        if self.with_tracker(|t| t.in_doubt()) {
            every.min(PROBE_FAST)
        } else {
            every
        }
    }

    /// Records the starting mode, so that status read from the database does not show the
    /// mode of the previous run as current.
    pub async fn record_start(&self) {
        let (mode, since) = self.with_tracker(|t| (t.mode(), t.since_ms()));
        self.record(mode, since).await;
    }

    async fn record(&self, mode: Mode, since: i64) {
        if let Some(store) = &self.store
            && let Err(e) = store.set_mode(mode.as_str(), since).await
        {
            tracing::warn!(error = %e, "cannot record the connectivity mode");
        }
    }

    /// Applies an event and records a change of mode.
    pub async fn observe(&self, event: Event) {
        let now = now_ms();
        let change = self.with_tracker(|t| {
            t.observe(event, now)
                .map(|m| (m, t.since_ms(), t.reason(now)))
        });
        if let Some((mode, since, reason)) = change {
            tracing::info!(
                mode = mode.as_str(),
                reason = reason.as_deref().unwrap_or(""),
                "connectivity mode changed"
            );
            self.changes.send_replace(mode);
            self.record(mode, since).await;
        }
    }
}

/// A health check that needs no login.
pub trait HealthCheck: Send + Sync + 'static {
    fn check(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send;
}

impl HealthCheck for holdfast_sync::odoo::HealthProbe {
    fn check(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
        holdfast_sync::odoo::HealthProbe::check(self)
    }
}

/// Where the probe task reads the pull's health.
#[derive(Clone, Debug)]
pub struct PullWatch {
    pub progress: crate::pull::ProgressHandle,
    pub store: Store,
}

impl PullWatch {
    /// The pull's health now: its own figures, and the mirror's age from the store until
    /// a pull of this run has succeeded.
    pub fn health(&self) -> PullHealth {
        let p = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mirror_as_of = p.last_ok_at.or_else(|| {
            self.store
                .read(crate::status::mirror_as_of)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read the pull cursors");
                    None
                })
        });
        PullHealth {
            mirror_as_of,
            failures_in_row: p.failures_in_row,
            last_error: p.last_error,
        }
    }
}

/// `period` give or take [`JITTER`] of it, drawn afresh each time.
pub fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 - JITTER + 2.0 * JITTER * unit_random())
}

/// A number in `[0, 1)`, different at each call and on each site. The standard library's
/// hasher keys are random per process and change at each `RandomState`: enough to spread
/// probes, with no generator to carry around (nothing here needs more than that).
fn unit_random() -> f64 {
    use std::hash::BuildHasher;
    let bits = std::collections::hash_map::RandomState::new().hash_one(0u8);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Probes in flight at most: with [`PROBE_FAST`] and a 3 s time-out, probes stuck in a
/// black hole overlap (the third failure comes a second after the second) and one more is
/// always free to find the link back.
const PROBES_IN_FLIGHT: usize = OFFLINE_AFTER as usize + 1;

/// The probe task: a health probe at once, then every `every` (every [`PROBE_FAST`] while
/// in doubt, a failure calling the next one at once), up to [`PROBES_IN_FLIGHT`] at once so
/// that probes stuck in a black hole overlap instead of queueing; and the pull's health at
/// each tick.
pub async fn run_probes<H: HealthCheck>(
    health: Arc<H>,
    connectivity: Connectivity,
    every: Duration,
    pull: Option<PullWatch>,
    stop: CancellationToken,
) {
    type Probed = (tokio::time::Instant, Result<(), OdooError>, Duration);
    let mut in_flight: JoinSet<Probed> = JoinSet::new();
    let mut next = tokio::time::Instant::now();
    // When the newest probe that answered was sent: a probe sent before it that fails
    // afterwards (stuck in the outage that just ended) is old news.
    let mut answered_from: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                let Ok((sent, result, took)) = done else { continue };
                match &result {
                    Ok(()) => answered_from = Some(answered_from.map_or(sent, |a| a.max(sent))),
                    Err(_) if answered_from.is_some_and(|a| sent < a) => continue,
                    Err(e) => {
                        connectivity.note_problem(match e {
                            // A probe changes nothing: "may have been applied" would mislead.
                            OdooError::Timeout(d) => {
                                format!("health probe: no answer within {:.1} s", d.as_secs_f64())
                            }
                            e => format!("health probe: {e}"),
                        });
                        // The first failure is checked again at once; after that the fast
                        // period holds (a refused link fails at once, every time).
                        let now = tokio::time::Instant::now();
                        next = if connectivity.in_doubt() {
                            next.min(now + jittered(PROBE_FAST))
                        } else {
                            now
                        };
                    }
                }
                connectivity.observe(Event::of(&result, took)).await;
            }
            _ = tokio::time::sleep_until(next) => {
                if let Some(pull) = &pull {
                    connectivity.observe(Event::Pull(pull.health())).await;
                }
                if in_flight.len() < PROBES_IN_FLIGHT {
                    let health = health.clone();
                    in_flight.spawn(async move {
                        let sent = tokio::time::Instant::now();
                        let result = health.check().await;
                        (sent, result, sent.elapsed())
                    });
                }
                next = tokio::time::Instant::now() + jittered(connectivity.probe_period(every));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn ok() -> Event {
        Event::Ok {
            latency: Duration::from_millis(50),
        }
    }

    fn slow() -> Event {
        Event::Ok {
            latency: Duration::from_secs(4),
        }
    }

    const MIN: i64 = 60_000;

    fn pull(as_of: Option<i64>, failures: u32, error: Option<&str>) -> Event {
        Event::Pull(PullHealth {
            mirror_as_of: as_of,
            failures_in_row: failures,
            last_error: error.map(str::to_owned),
        })
    }

    /// One case: a starting mode, events at times, and the mode and reason expected after.
    struct Case {
        name: &'static str,
        start: Mode,
        events: Vec<(i64, Event)>,
        mode: Mode,
        /// A part of the reason status shows (`None`: no reason, i.e. online).
        reason: Option<&'static str>,
    }

    fn repeat(n: usize, from: i64, event: Event) -> Vec<(i64, Event)> {
        (0..n).map(|i| (from + i as i64, event.clone())).collect()
    }

    fn then(mut a: Vec<(i64, Event)>, b: Vec<(i64, Event)>) -> Vec<(i64, Event)> {
        a.extend(b);
        a
    }

    #[test]
    fn the_mode_and_its_reason_follow_what_happened() {
        let fresh = pull(Some(0), 0, None);
        let cases = [
            Case {
                name: "nothing answered yet",
                start: Mode::Unknown,
                events: vec![(0, Event::Backlog(0)), (1, fresh.clone())],
                mode: Mode::Unknown,
                reason: Some("waiting for the first answer from odoo"),
            },
            Case {
                name: "the first probe answers: online at once, not degraded",
                start: Mode::Unknown,
                events: vec![(0, Event::Backlog(0)), (1, fresh.clone()), (2, ok())],
                mode: Mode::Online,
                reason: None,
            },
            Case {
                name: "first answer with a backlog to drain",
                start: Mode::Unknown,
                events: vec![(0, Event::Backlog(500)), (1, ok())],
                mode: Mode::Degraded,
                reason: Some("backlog: 500 entries to push"),
            },
            Case {
                name: "unknown until enough failures say offline",
                start: Mode::Unknown,
                events: repeat(2, 0, Event::Network),
                mode: Mode::Unknown,
                reason: Some("waiting for the first answer"),
            },
            Case {
                name: "never reached since the start",
                start: Mode::Unknown,
                events: repeat(3, 0, Event::Network),
                mode: Mode::Offline,
                reason: Some("odoo unreachable"),
            },
            Case {
                name: "one failure is not offline",
                start: Mode::Online,
                events: then(repeat(10, 0, ok()), vec![(10, Event::Network)]),
                mode: Mode::Online,
                reason: None,
            },
            Case {
                name: "three failures in a row are offline",
                start: Mode::Online,
                events: then(repeat(10, 0, ok()), repeat(3, 10, Event::Network)),
                mode: Mode::Offline,
                reason: Some("odoo unreachable"),
            },
            Case {
                name: "back from offline through degraded",
                start: Mode::Offline,
                events: then(repeat(3, 0, Event::Network), repeat(2, 3, ok())),
                mode: Mode::Degraded,
                reason: Some("recent failures: 3 of the last 5 calls failed"),
            },
            Case {
                name: "one answer does not bring it back",
                start: Mode::Offline,
                events: then(repeat(3, 0, Event::Network), repeat(1, 3, ok())),
                mode: Mode::Offline,
                reason: Some("odoo unreachable"),
            },
            Case {
                name: "the outage's failures age out of the window",
                start: Mode::Offline,
                events: then(repeat(3, 0, Event::Network), repeat(WINDOW, 3, ok())),
                mode: Mode::Online,
                reason: None,
            },
            Case {
                name: "slow answers",
                start: Mode::Online,
                events: repeat(10, 0, slow()),
                mode: Mode::Degraded,
                reason: Some("odoo slow: median answer 4.0 s"),
            },
            Case {
                name: "a paused queue",
                start: Mode::Online,
                events: vec![(0, Event::Paused(Some("credentials refused".into())))],
                mode: Mode::Degraded,
                reason: Some("queue paused: credentials refused"),
            },
            Case {
                name: "backlog hysteresis: above the low mark stays degraded",
                start: Mode::Degraded,
                events: then(
                    vec![(0, Event::Backlog(100))],
                    repeat(ONLINE_AFTER as usize, 1, ok()),
                ),
                mode: Mode::Degraded,
                reason: Some("backlog: 100 entries to push"),
            },
            Case {
                name: "backlog hysteresis: between the marks stays online",
                start: Mode::Online,
                events: vec![(0, Event::Backlog(150)), (1, ok())],
                mode: Mode::Online,
                reason: None,
            },
            Case {
                name: "stale mirror while pushes succeed",
                start: Mode::Online,
                events: then(
                    repeat(10, 0, ok()),
                    vec![(
                        14 * MIN + 10,
                        pull(Some(0), 2, Some("reading product.packaging: not found")),
                    )],
                ),
                mode: Mode::Degraded,
                reason: Some("mirror stale: last pull 14 min ago: reading product.packaging"),
            },
            Case {
                name: "pull failing over and over with a fresh mirror",
                start: Mode::Online,
                events: then(
                    repeat(10, 0, ok()),
                    vec![(MIN, pull(Some(0), 3, Some("reading product.packaging")))],
                ),
                mode: Mode::Degraded,
                reason: Some("pull failing: 3 failures in a row: reading product.packaging"),
            },
            Case {
                name: "one failed pull is not degraded",
                start: Mode::Online,
                events: then(
                    repeat(10, 0, ok()),
                    vec![(MIN, pull(Some(0), 1, Some("x")))],
                ),
                mode: Mode::Online,
                reason: None,
            },
            Case {
                name: "a good pull brings it back",
                start: Mode::Online,
                events: then(
                    repeat(10, 0, ok()),
                    vec![
                        (20 * MIN, pull(Some(0), 4, Some("x"))),
                        (20 * MIN + 1, pull(Some(20 * MIN), 0, None)),
                        (20 * MIN + 2, ok()),
                    ],
                ),
                mode: Mode::Online,
                reason: None,
            },
            Case {
                name: "a mirror never pulled is not stale by itself",
                start: Mode::Unknown,
                events: vec![(0, pull(None, 0, None)), (1, ok())],
                mode: Mode::Online,
                reason: None,
            },
            Case {
                name: "recovering is said as such",
                start: Mode::Degraded,
                events: repeat(2, 0, ok()),
                mode: Mode::Degraded,
                reason: Some("recovering: 2 of 5 answers in a row"),
            },
        ];
        for case in cases {
            let mut t = Tracker::new(case.start, 0);
            let mut last = 0;
            for (at, event) in case.events {
                t.observe(event, at);
                last = at;
            }
            assert_eq!(t.mode(), case.mode, "{}", case.name);
            let reason = t.reason(last);
            match case.reason {
                None => assert_eq!(reason, None, "{}", case.name),
                Some(part) => assert!(
                    reason.as_deref().is_some_and(|r| r.contains(part)),
                    "{}: reason {reason:?} lacks {part:?}",
                    case.name
                ),
            }
        }
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

    #[test]
    fn offline_gives_the_probe_s_words() {
        let mut t = Tracker::new(Mode::Online, 0);
        t.note_problem("health probe: no answer within 3 s".into());
        for i in 0..3 {
            t.observe(Event::Network, i);
        }
        assert_eq!(
            t.reason(3).as_deref(),
            Some("odoo unreachable: health probe: no answer within 3 s")
        );
    }

    #[test]
    fn ages_read_as_people_say_them() {
        for (secs, text) in [
            (0, "0 s"),
            (59, "59 s"),
            (14 * 60 + 5, "14 min"),
            (3 * 3600 + 5 * 60, "3 h 5 min"),
            (2 * 86_400 + 4 * 3600, "2 d 4 h"),
        ] {
            assert_eq!(ago(Duration::from_secs(secs)), text);
        }
    }

    /// A health endpoint behind a link that can be cut silently: a probe then waits for its
    /// time-out, as over a black hole.
    struct Link {
        up: AtomicBool,
        timeout: Duration,
    }

    impl HealthCheck for Link {
        fn check(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
            let up = self.up.load(Ordering::SeqCst);
            let timeout = self.timeout;
            async move {
                if up {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(())
                } else {
                    tokio::time::sleep(timeout).await;
                    Err(OdooError::Timeout(timeout))
                }
            }
        }
    }

    /// Waits (in virtual time) for `mode`; returns how long it took.
    async fn time_to(rx: &mut watch::Receiver<Mode>, mode: Mode) -> Duration {
        let started = tokio::time::Instant::now();
        rx.wait_for(|m| *m == mode).await.expect("tracker alive");
        started.elapsed()
    }

    /// A health endpoint that answers and remembers when it was asked.
    #[derive(Default)]
    struct Asked(Mutex<Vec<tokio::time::Instant>>);

    impl HealthCheck for Asked {
        fn check(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
            if let Ok(mut a) = self.0.lock() {
                a.push(tokio::time::Instant::now());
            }
            async { Ok(()) }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sites_started_together_do_not_probe_in_lockstep() {
        let every = Duration::from_secs(5);
        let stop = CancellationToken::new();
        let sites: Vec<Arc<Asked>> = (0..2).map(|_| Arc::new(Asked::default())).collect();
        for site in &sites {
            tokio::spawn(run_probes(
                site.clone(),
                Connectivity::with_limits(None, Limits::default()),
                every,
                None,
                stop.clone(),
            ));
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
        stop.cancel();
        let times: Vec<Vec<tokio::time::Instant>> = sites
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        for asked in &times {
            // The first answer ends the doubt; from then on, periods of 5 s ± 20%.
            let gaps: Vec<Duration> = asked.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
            assert!(gaps.len() > 90, "{} probes", asked.len());
            let (low, high) = (every.mul_f64(1.0 - JITTER), every.mul_f64(1.0 + JITTER));
            for g in &gaps {
                assert!(*g >= low && *g <= high, "a period of {g:?}");
            }
            let spread = gaps.iter().max().copied().unwrap_or_default()
                - gaps.iter().min().copied().unwrap_or_default();
            assert!(
                spread > Duration::from_secs(1),
                "periods spread over {spread:?} only"
            );
        }
        // Started at the same instant, they drift apart: most of their probes are no
        // longer sent together.
        let together = (10..90)
            .filter(|&i| {
                let (a, b) = (times[0][i], times[1][i]);
                a.max(b) - a.min(b) < Duration::from_millis(100)
            })
            .count();
        assert!(together < 40, "{together} of 80 probes sent together");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_black_hole_is_offline_within_15_s_whenever_it_starts() {
        let every = Duration::from_secs(5);
        let timeout = Duration::from_secs(3);
        let mut worst = Duration::ZERO;
        // The link dies at every offset against the probe schedule.
        for offset_ms in (0..5_000).step_by(500) {
            let link = Arc::new(Link {
                up: AtomicBool::new(true),
                timeout,
            });
            let connectivity = Connectivity::with_limits(None, Limits::default());
            let mut rx = connectivity.subscribe();
            let stop = CancellationToken::new();
            tokio::spawn(run_probes(
                link.clone(),
                connectivity.clone(),
                every,
                None,
                stop.clone(),
            ));
            let first = time_to(&mut rx, Mode::Online).await;
            assert!(first < Duration::from_secs(1), "online after {first:?}");
            tokio::time::sleep(Duration::from_secs(30) + Duration::from_millis(offset_ms)).await;
            link.up.store(false, Ordering::SeqCst);
            let detected = time_to(&mut rx, Mode::Offline).await;
            worst = worst.max(detected);
            // The slowest draws: a period 20% long, then a fast one 20% long.
            let budget = every.mul_f64(1.0 + JITTER)
                + 2 * timeout
                + PROBE_FAST.mul_f64(1.0 + JITTER)
                + Duration::from_millis(100);
            assert!(
                detected <= budget,
                "offset {offset_ms} ms: offline after {detected:?}"
            );
            link.up.store(true, Ordering::SeqCst);
            let back = time_to(&mut rx, Mode::Degraded).await;
            assert!(
                back <= Duration::from_secs(3) + PROBE_FAST.mul_f64(2.0 * JITTER),
                "offset {offset_ms} ms: back after {back:?}"
            );
            stop.cancel();
        }
        println!(
            "silent black hole, probe every 5 s, time-out 3 s: offline after {worst:?} at worst"
        );
    }
}
