//! The adaptive limit on batches in hand: how many causal keys the push works on at once.
//!
//! Odoo's workers are shared with its people: past a point, more batches in parallel do not
//! drain faster (each call just takes longer) but make every other user wait. The limit is
//! found the way TCP finds a path's capacity (AIMD, with Vegas' idea of reading queueing
//! from latency):
//!
//! - every answered call is compared with its **baseline**, the fastest answer seen for the
//!   same `model.method` (a validation is not slow for being slower than a read), which
//!   drifts slowly up towards what calls take now, *but only while the limit is at its
//!   floor*: with one batch in hand the push is not what makes Odoo slow, so a slower Odoo
//!   is the new normal; with more, a slower answer is the queue the push itself builds, and
//!   learning it as normal would let the drain load Odoo without end (measured: a baseline
//!   that drifted at any limit stayed at the maximum while other users' p99 rose 2.4×);
//! - while the recent calls (median of the last few ratios) stay near their baselines the
//!   limit grows by one per limit's worth of answers (**additive increase**);
//! - when they exceed [`Aimd::decrease_above`] times their baselines (Odoo is queueing), the
//!   limit is multiplied by [`Aimd::latency_backoff`]; a retry symptom (time-out, lost
//!   answer, 429/503, serialization failure or lock error: the wire client's transient and
//!   ambiguous classes) multiplies it by [`Aimd::symptom_backoff`] (**multiplicative
//!   decrease**);
//! - a decrease counts once per round: answers to calls sent before it were made under the
//!   old limit and say nothing about the new one.
//!
//! The limit stays within `1..=push.concurrency` and starts at [`Aimd::initial`] (1), so the
//! first answers of a drain, made alone, teach the baseline. With `push.adaptive = false` it
//! is always `push.concurrency` (the fixed behaviour), and latencies are still shown.
//!
//! [`Limiter`] is the pure rule: it takes "now" and each call's outcome.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use holdfast_sync::odoo::{ErrorClass, OdooError};
use serde::Serialize;
use tokio::time::Instant;

/// Whether the limit adapts (`push.adaptive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitConfig {
    /// `false`: always `push.concurrency` batches in hand.
    pub adaptive: bool,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig { adaptive: true }
    }
}

/// The rule's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aimd {
    /// Where the limit starts.
    pub initial: f64,
    /// Recent calls within this many times their baselines let the limit grow.
    pub increase_below: f64,
    /// Recent calls beyond this many times their baselines shrink it.
    pub decrease_above: f64,
    /// The factor a slow round applies.
    pub latency_backoff: f64,
    /// The factor a retry symptom applies.
    pub symptom_backoff: f64,
    /// How far a baseline moves towards a slower answer (per answer, only while the limit is
    /// at its floor): 1% re-learns a server twice as slow in about 70 answers, while a burst
    /// of slow ones barely moves it.
    pub baseline_drift: f64,
    /// Baselines are taken as at least this: below it, differences are noise (a local
    /// simulator, a loopback), not queueing.
    pub min_baseline: Duration,
    /// Answers the recent latency is the median of.
    pub window: usize,
}

impl Default for Aimd {
    fn default() -> Self {
        Aimd {
            initial: 1.0,
            // The median answer of a quiet Odoo is about 1.2 times its fastest one. Other
            // users' reads queue behind the drain's calls as much as the drain's own do, so
            // the push keeps its own calls close to quiet (measured on real Odoo 18 and 19,
            // 100 deliveries: 2×/1.5× held other users' p99 at 3.7–4.1× idle).
            increase_below: 1.25,
            decrease_above: 1.5,
            // Latency is a soft signal: back off gently; an error is a hard one.
            latency_backoff: 0.75,
            symptom_backoff: 0.5,
            baseline_drift: 0.01,
            min_baseline: Duration::from_millis(5),
            window: 5,
        }
    }
}

/// What a call's outcome says about Odoo's load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Signal {
    /// Odoo answered (a refusal of the call's content is an answer too) after this long.
    Answered(Duration),
    /// A retry symptom: time-out, lost answer, busy, serialization failure, lock error.
    Symptom,
    /// Nothing about load (refused credentials).
    Neutral,
}

impl Signal {
    pub fn of<T>(result: &Result<T, OdooError>, latency: Duration) -> Signal {
        match result {
            Ok(_) => Signal::Answered(latency),
            Err(e) => match e.class() {
                ErrorClass::Transient | ErrorClass::Ambiguous => Signal::Symptom,
                ErrorClass::Permanent => Signal::Answered(latency),
                ErrorClass::Auth => Signal::Neutral,
            },
        }
    }
}

/// The limit as status shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LimitStatus {
    pub adaptive: bool,
    /// Batches in hand allowed now.
    pub limit: usize,
    /// `push.concurrency`.
    pub max: usize,
    /// What the recent calls take at their baselines (mean, ms).
    pub baseline_ms: Option<f64>,
    /// What the recent calls took (mean, ms).
    pub recent_ms: Option<f64>,
    /// Median of the recent calls' latency over their baselines (what the rule reads).
    pub latency_ratio: Option<f64>,
    /// Times the rule called for a decrease since the start (also when not adaptive, where
    /// it changes nothing), and how many of them a retry symptom caused.
    pub decreases: u64,
    pub symptoms: u64,
}

/// Answers kept for status.
const SHOWN: usize = 20;

/// The pure rule (see the module docs).
#[derive(Clone, Debug)]
pub struct Limiter {
    config: LimitConfig,
    aimd: Aimd,
    max: usize,
    limit: f64,
    /// Fastest answer per `model.method`, drifting up slowly.
    baselines: HashMap<String, Duration>,
    /// Latency / baseline of the answers since the last decrease (the rule's window).
    ratios: VecDeque<f64>,
    /// (latency, baseline) of the last answers, for status.
    shown: VecDeque<(Duration, Duration)>,
    last_decrease: Option<Instant>,
    decreases: u64,
    symptoms: u64,
}

impl Limiter {
    pub fn new(max: usize, config: LimitConfig) -> Limiter {
        Limiter::with_rule(max, config, Aimd::default())
    }

    pub fn with_rule(max: usize, config: LimitConfig, aimd: Aimd) -> Limiter {
        let max = max.max(1);
        Limiter {
            config,
            aimd,
            max,
            limit: if config.adaptive {
                aimd.initial.clamp(1.0, max as f64)
            } else {
                max as f64
            },
            baselines: HashMap::new(),
            ratios: VecDeque::with_capacity(aimd.window),
            shown: VecDeque::with_capacity(SHOWN),
            last_decrease: None,
            decreases: 0,
            symptoms: 0,
        }
    }

    /// Batches in hand allowed now.
    pub fn limit(&self) -> usize {
        (self.limit.floor() as usize).clamp(1, self.max)
    }

    /// A call named `call` (`model.method`), sent at `started`, ended at `now` with `signal`.
    pub fn observe(&mut self, call: &str, started: Instant, now: Instant, signal: Signal) {
        // Sent before the last decrease: made under the old limit, it says nothing about
        // the new one (one decrease per round, as TCP does per round trip).
        let current = self.last_decrease.is_none_or(|d| started > d);
        match signal {
            Signal::Neutral => {}
            Signal::Symptom => {
                if current {
                    self.symptoms += 1;
                    self.decrease(self.aimd.symptom_backoff, now);
                }
            }
            Signal::Answered(latency) => {
                let at_floor = self.limit < 2.0; // one batch in hand
                let baseline = match self.baselines.get_mut(call) {
                    Some(b) => {
                        let before = *b;
                        if latency < before {
                            *b = latency;
                        } else if at_floor {
                            *b = before + (latency - before).mul_f64(self.aimd.baseline_drift);
                        }
                        before
                    }
                    None => {
                        self.baselines.insert(call.to_owned(), latency);
                        latency
                    }
                };
                if self.shown.len() == SHOWN {
                    self.shown.pop_front();
                }
                self.shown.push_back((latency, baseline));
                if !current {
                    return;
                }
                let floor = baseline.max(self.aimd.min_baseline).as_secs_f64();
                if self.ratios.len() == self.aimd.window.max(1) {
                    self.ratios.pop_front();
                }
                self.ratios.push_back(latency.as_secs_f64() / floor);
                // The median of a majority of the window: one slow answer is not a trend.
                if self.ratios.len() < self.aimd.window.max(1) / 2 + 1 {
                    return;
                }
                let ratio = self.ratio().unwrap_or(1.0);
                if ratio > self.aimd.decrease_above {
                    self.decrease(self.aimd.latency_backoff, now);
                } else if ratio < self.aimd.increase_below && self.config.adaptive {
                    // One more batch per limit's worth of good answers.
                    self.limit = (self.limit + 1.0 / self.limit.max(1.0)).min(self.max as f64);
                }
            }
        }
    }

    fn decrease(&mut self, factor: f64, now: Instant) {
        self.decreases += 1;
        self.last_decrease = Some(now);
        self.ratios.clear();
        if self.config.adaptive {
            self.limit = (self.limit * factor).max(1.0);
        }
    }

    /// Median of the rule's window.
    fn ratio(&self) -> Option<f64> {
        let mut r: Vec<f64> = self.ratios.iter().copied().collect();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied()
    }

    pub fn status(&self) -> LimitStatus {
        let n = self.shown.len() as f64;
        let mean = |f: fn(&(Duration, Duration)) -> Duration| {
            (n > 0.0).then(|| self.shown.iter().map(f).sum::<Duration>().as_secs_f64() * 1e3 / n)
        };
        LimitStatus {
            adaptive: self.config.adaptive,
            limit: self.limit(),
            max: self.max,
            baseline_ms: mean(|s| s.1),
            recent_ms: mean(|s| s.0),
            latency_ratio: self.ratio(),
            decreases: self.decreases,
            symptoms: self.symptoms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1;

    /// One scenario: calls in order, each `(method, latency ms or None for a symptom)`, sent
    /// one after the other; the limit expected after each step listed.
    struct Case {
        name: &'static str,
        max: usize,
        adaptive: bool,
        /// Limit before the calls (reached by good answers first).
        warm_to: usize,
        calls: Vec<(&'static str, Option<u64>)>,
        expect: usize,
    }

    fn steady(n: usize, method: &'static str, ms: u64) -> Vec<(&'static str, Option<u64>)> {
        vec![(method, Some(ms)); n]
    }

    fn run(case: &Case) -> Limiter {
        let mut l = Limiter::new(
            case.max,
            LimitConfig {
                adaptive: case.adaptive,
            },
        );
        let mut now = Instant::now();
        // Warm up at a quiet server: reads at 30 ms, writes at 60 ms.
        while l.limit() < case.warm_to {
            for (m, ms) in [("stock.picking.read", 30), ("stock.picking.write", 60)] {
                let started = now;
                now += Duration::from_millis(ms);
                l.observe(m, started, now, Signal::Answered(Duration::from_millis(ms)));
            }
        }
        for (method, ms) in &case.calls {
            let started = now;
            now += Duration::from_millis(ms.unwrap_or(3_000) * MS);
            let signal = match ms {
                Some(ms) => Signal::Answered(Duration::from_millis(*ms)),
                None => Signal::Symptom,
            };
            l.observe(method, started, now, signal);
            now += Duration::from_millis(1);
        }
        l
    }

    #[test]
    fn the_limit_follows_latency_and_symptoms() {
        let cases = [
            Case {
                name: "steady answers grow it to the maximum",
                max: 8,
                adaptive: true,
                warm_to: 1,
                calls: steady(60, "stock.picking.read", 30),
                expect: 8,
            },
            Case {
                name: "it never passes the maximum",
                max: 3,
                adaptive: true,
                warm_to: 1,
                calls: steady(200, "stock.picking.read", 30),
                expect: 3,
            },
            Case {
                name: "a slower method is not slowness: validations at 100 ms among 30 ms reads",
                max: 6,
                adaptive: true,
                warm_to: 1,
                calls: [
                    ("stock.picking.read", Some(30)),
                    ("stock.picking.button_validate", Some(100)),
                ]
                .repeat(40),
                expect: 6,
            },
            Case {
                name: "latency rising past 1.5 times the baseline brings it down",
                max: 8,
                adaptive: true,
                warm_to: 8,
                calls: [30, 45, 60, 75, 90, 120, 150, 180, 240]
                    .iter()
                    .flat_map(|ms| vec![("stock.picking.read", Some(*ms)); 5])
                    .collect(),
                expect: 1,
            },
            Case {
                name: "moderately slower (1.25-1.5x) holds it where it is",
                max: 8,
                adaptive: true,
                warm_to: 4,
                calls: steady(20, "stock.picking.read", 42),
                expect: 4,
            },
            Case {
                name: "one slow answer among fast ones is noise (median)",
                max: 6,
                adaptive: true,
                warm_to: 6,
                calls: [
                    steady(2, "stock.picking.read", 30),
                    steady(1, "stock.picking.read", 400),
                    steady(2, "stock.picking.read", 30),
                ]
                .concat(),
                expect: 6,
            },
            Case {
                name: "a symptom halves it",
                max: 8,
                adaptive: true,
                warm_to: 8,
                calls: vec![("stock.picking.write", None)],
                expect: 4,
            },
            Case {
                name: "symptoms in a row halve it each round, down to one",
                max: 8,
                adaptive: true,
                warm_to: 8,
                calls: vec![("stock.picking.write", None); 5],
                expect: 1,
            },
            Case {
                name: "it grows back after a symptom",
                max: 8,
                adaptive: true,
                warm_to: 8,
                calls: [
                    vec![("stock.picking.write", None)],
                    steady(60, "stock.picking.read", 30),
                ]
                .concat(),
                expect: 8,
            },
            Case {
                name: "sub-millisecond answers (a local simulator) are not queueing",
                max: 4,
                adaptive: true,
                warm_to: 1,
                calls: [
                    steady(3, "stock.quant.read", 0),
                    steady(30, "stock.quant.read", 4),
                ]
                .concat(),
                expect: 4,
            },
            Case {
                name: "not adaptive: fixed at the maximum whatever happens",
                max: 4,
                adaptive: false,
                warm_to: 4,
                calls: [
                    vec![("stock.picking.write", None); 3],
                    steady(10, "stock.picking.read", 900),
                ]
                .concat(),
                expect: 4,
            },
        ];
        for case in &cases {
            let l = run(case);
            assert_eq!(l.limit(), case.expect, "{}: {:?}", case.name, l.status());
        }
    }

    #[test]
    fn answers_to_calls_sent_before_a_decrease_do_not_decrease_it_again() {
        let mut l = Limiter::new(8, LimitConfig::default());
        let t0 = Instant::now();
        let mut now = t0;
        while l.limit() < 8 {
            now += Duration::from_millis(30);
            l.observe("r", now, now, Signal::Answered(Duration::from_millis(30)));
        }
        // Eight calls sent together; all come back as symptoms: one round, one halving.
        let sent = now;
        for i in 0..8 {
            l.observe("w", sent, now + Duration::from_millis(i), Signal::Symptom);
        }
        assert_eq!(l.limit(), 4);
        // A call sent after the decrease counts again.
        let later = now + Duration::from_millis(100);
        l.observe("w", later, later, Signal::Symptom);
        assert_eq!(l.limit(), 2);
        assert_eq!(l.status().decreases, 2);
        assert_eq!(l.status().symptoms, 2);
    }

    #[test]
    fn the_baseline_relearns_a_server_that_became_slower_for_good() {
        let mut l = Limiter::new(8, LimitConfig::default());
        let mut now = Instant::now();
        let mut step = |l: &mut Limiter, ms: u64| {
            let started = now;
            now += Duration::from_millis(ms);
            l.observe(
                "stock.picking.read",
                started,
                now,
                Signal::Answered(Duration::from_millis(ms)),
            );
        };
        for _ in 0..20 {
            step(&mut l, 30);
        }
        // Everything takes 90 ms from now on: first the limit falls...
        for _ in 0..5 {
            step(&mut l, 90);
        }
        assert!(l.limit() < 8, "{:?}", l.status());
        // ...then the baseline catches up and it grows back to the maximum.
        for _ in 0..400 {
            step(&mut l, 90);
        }
        let s = l.status();
        assert_eq!(s.limit, 8, "{s:?}");
        assert!(s.baseline_ms.is_some_and(|b| b > 60.0), "{s:?}");
        assert!(s.recent_ms.is_some_and(|r| (r - 90.0).abs() < 1.0), "{s:?}");
    }

    #[test]
    fn outcomes_read_as_signals() {
        let d = Duration::from_millis(40);
        assert_eq!(Signal::of(&Ok::<(), OdooError>(()), d), Signal::Answered(d));
        let busy = OdooError::Busy {
            status: 503,
            retry_after: None,
        };
        assert_eq!(Signal::of::<()>(&Err(busy), d), Signal::Symptom);
        assert_eq!(
            Signal::of::<()>(&Err(OdooError::Timeout(d)), d),
            Signal::Symptom
        );
        let serialization = OdooError::Server {
            name: "psycopg2.errors.SerializationFailure".into(),
            message: "could not serialize access due to concurrent update".into(),
            status: None,
        };
        assert_eq!(Signal::of::<()>(&Err(serialization), d), Signal::Symptom);
        let user = OdooError::Server {
            name: "odoo.exceptions.UserError".into(),
            message: "no".into(),
            status: None,
        };
        assert_eq!(Signal::of::<()>(&Err(user), d), Signal::Answered(d));
        assert_eq!(
            Signal::of::<()>(&Err(OdooError::Auth("x".into())), d),
            Signal::Neutral
        );
    }
}
