//! Sign-in lock-out: how many wrong badges and PINs a device, and the whole site, may try.
//!
//! Every way an operator signs in passes here: `/api/v1/login`, a badge scanned on a device
//! nobody is signed in on (HTTP `/api/v1/scan`, serial, TCP and MQTT scanners alike), and a
//! badge scanned to take over a device from another operator. A scan on a signed-out device is
//! a sign-in attempt whatever it turns out to be: the attempt is counted **before** the badge
//! is looked up, so parallel guesses count too, and a success takes its count back.
//!
//! - **Per device:** after [`LockoutPolicy::device_failures`] failures in a row the device may
//!   not try again for [`LockoutPolicy::base_lock`], doubled at each further lock-out up to
//!   [`LockoutPolicy::max_lock`]; a success (or a quiet [`LockoutPolicy::forget_after`]) starts
//!   the device over.
//! - **Per site:** more than [`LockoutPolicy::site_failures`] failures across all devices
//!   within [`LockoutPolicy::site_window`] lock sign-in on every device for
//!   [`LockoutPolicy::site_lock`]: guessing from many device ids at once is as slow as from one.
//!
//! Lock-outs are logged (a warning naming the device) and counted in [`LockoutStatus`]. The
//! state is in memory: a restart of the appliance is not something a guesser can cause.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How many failures are allowed, and how long a lock-out lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures in a row a device may make before it is locked.
    pub device_failures: u32,
    /// The first lock-out of a device; each further one doubles it.
    pub base_lock: Duration,
    /// The longest a device is locked.
    pub max_lock: Duration,
    /// A device that has not failed for this long starts over (count and doubling).
    pub forget_after: Duration,
    /// Failures across the site within [`LockoutPolicy::site_window`] that lock every device.
    pub site_failures: u32,
    pub site_window: Duration,
    /// How long the whole site is locked.
    pub site_lock: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            // A badge that does not scan well, or a PIN mistyped twice, is not an attack.
            device_failures: 5,
            base_lock: Duration::from_secs(30),
            max_lock: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            // A shift start with 50 operators signing in, some of them twice, stays far below.
            site_failures: 50,
            site_window: Duration::from_secs(5 * 60),
            site_lock: Duration::from_secs(5 * 60),
        }
    }
}

/// What kind of attempt: it decides whether the site's count sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A sign-in (`/api/v1/login`) or any scan on a device nobody is signed in on.
    SignIn,
    /// A scan that matched nothing on a device someone is signed in on, looked up as another
    /// operator's badge (a shift change). An operator scanning a stranger's barcode is common
    /// on a busy floor, so only the device counts it, never the site.
    Takeover,
}

/// Why an attempt is refused before it is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locked {
    /// This device failed too often.
    Device { wait: Duration },
    /// The site as a whole failed too often.
    Site { wait: Duration },
}

impl Locked {
    pub fn wait(&self) -> Duration {
        match self {
            Locked::Device { wait } | Locked::Site { wait } => *wait,
        }
    }

    pub fn message(&self) -> String {
        let secs = self.wait().as_secs() + 1;
        match self {
            Locked::Device { .. } => {
                format!("too many failed sign-ins on this device; try again in {secs} s")
            }
            Locked::Site { .. } => format!(
                "too many failed sign-ins at this site; sign-in is paused for {secs} s (ask the site manager)"
            ),
        }
    }
}

/// The lock-out as status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockoutStatus {
    /// Failed sign-ins since the start.
    pub failures: u64,
    /// Attempts refused because a device or the site was locked.
    pub refused_while_locked: u64,
    /// Times a device was locked, and the site.
    pub device_lockouts: u64,
    pub site_lockouts: u64,
    /// Devices locked now.
    pub locked_devices: Vec<String>,
    /// Seconds until the site's sign-in opens again, when it is locked.
    pub site_locked_for_secs: Option<u64>,
}

#[derive(Debug, Default)]
struct DeviceState {
    /// Failures since the last success or lock-out.
    failures: u32,
    /// Lock-outs since the last success (the doubling).
    lockouts: u32,
    locked_until: Option<Instant>,
    last_failure: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    policy: LockoutPolicy,
    devices: HashMap<String, DeviceState>,
    /// When the site's recent failures were counted (oldest first).
    site: VecDeque<Instant>,
    site_locked_until: Option<Instant>,
    status: LockoutStatus,
}

/// Devices whose state is kept at most; past it, devices that are neither locked nor recently
/// failing are forgotten first (a flood of made-up device ids cannot grow memory).
const MAX_TRACKED: usize = 4096;

/// The lock-out (see the module docs). One per appliance, shared by every transport.
#[derive(Debug)]
pub struct SignInGuard {
    state: Mutex<State>,
}

/// A counted attempt: a failure unless [`Attempt::succeeded`] takes it back.
#[derive(Debug)]
#[must_use = "an attempt counts as a failure unless it succeeded"]
pub struct Attempt<'a> {
    guard: &'a SignInGuard,
    device: String,
    at: Instant,
}

impl Attempt<'_> {
    /// The attempt signed someone in: the device starts over and the attempt is not a failure.
    pub fn succeeded(self) {
        let mut state = self.guard.lock();
        if let Some(d) = state.devices.get_mut(&self.device) {
            *d = DeviceState::default();
        }
        if let Some(i) = state.site.iter().rposition(|t| *t == self.at) {
            state.site.remove(i);
        }
        state.status.failures = state.status.failures.saturating_sub(1);
    }
}

impl SignInGuard {
    pub fn new(policy: LockoutPolicy) -> SignInGuard {
        SignInGuard {
            state: Mutex::new(State {
                policy,
                ..State::default()
            }),
        }
    }

    /// The site's policy (set at start, from `[floor]`).
    pub fn set_policy(&self, policy: LockoutPolicy) {
        self.lock().policy = policy;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is counters only: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a sign-in attempt by `device`, or refuses it while the device or the site is
    /// locked. The attempt is a failure unless it [`Attempt::succeeded`].
    pub fn attempt(&self, device: &str, kind: Kind) -> Result<Attempt<'_>, Locked> {
        self.attempt_at(device, kind, Instant::now())
    }

    pub fn attempt_at(
        &self,
        device: &str,
        kind: Kind,
        now: Instant,
    ) -> Result<Attempt<'_>, Locked> {
        let mut guard = self.lock();
        let p = guard.policy;
        let state = &mut *guard;
        if let Some(until) = state.site_locked_until {
            if now < until {
                state.status.refused_while_locked += 1;
                return Err(Locked::Site { wait: until - now });
            }
            state.site_locked_until = None;
        }
        while state
            .site
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > p.site_window)
        {
            state.site.pop_front();
        }
        if !state.devices.contains_key(device) && state.devices.len() >= MAX_TRACKED {
            state.devices.retain(|_, d| {
                d.locked_until.is_some_and(|u| u > now)
                    || d.last_failure
                        .is_some_and(|t| now.saturating_duration_since(t) < p.site_window)
            });
        }
        let d = state.devices.entry(device.to_owned()).or_default();
        if let Some(until) = d.locked_until {
            if now < until {
                state.status.refused_while_locked += 1;
                return Err(Locked::Device { wait: until - now });
            }
            d.locked_until = None;
        }
        if d.last_failure
            .is_some_and(|t| now.saturating_duration_since(t) > p.forget_after)
        {
            *d = DeviceState::default();
        }
        // Counted as a failure now; a success takes it back.
        d.failures += 1;
        d.last_failure = Some(now);
        state.status.failures += 1;
        if d.failures >= p.device_failures.max(1) {
            let lock = p
                .base_lock
                .saturating_mul(1u32 << d.lockouts.min(16))
                .min(p.max_lock);
            d.failures = 0;
            d.lockouts += 1;
            d.locked_until = Some(now + lock);
            state.status.device_lockouts += 1;
            tracing::warn!(
                device,
                lock_secs = lock.as_secs(),
                lockouts = d.lockouts,
                "sign-in locked on this device after repeated failures"
            );
        }
        if kind == Kind::Takeover {
            return Ok(Attempt {
                guard: self,
                device: device.to_owned(),
                at: now,
            });
        }
        state.site.push_back(now);
        if state.site.len() > p.site_failures.max(1) as usize {
            state.site.clear();
            state.site_locked_until = Some(now + p.site_lock);
            state.status.site_lockouts += 1;
            tracing::warn!(
                device,
                lock_secs = p.site_lock.as_secs(),
                "sign-in locked on every device after repeated failures across the site"
            );
        }
        Ok(Attempt {
            guard: self,
            device: device.to_owned(),
            at: now,
        })
    }

    pub fn status(&self) -> LockoutStatus {
        self.status_at(Instant::now())
    }

    pub fn status_at(&self, now: Instant) -> LockoutStatus {
        let state = self.lock();
        let mut status = state.status.clone();
        status.locked_devices = state
            .devices
            .iter()
            .filter(|(_, d)| d.locked_until.is_some_and(|u| u > now))
            .map(|(id, _)| id.clone())
            .collect();
        status.locked_devices.sort();
        status.site_locked_for_secs = state
            .site_locked_until
            .filter(|u| *u > now)
            .map(|u| (u - now).as_secs() + 1);
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            device_failures: 3,
            base_lock: Duration::from_secs(10),
            max_lock: Duration::from_secs(35),
            forget_after: Duration::from_secs(3600),
            site_failures: 8,
            site_window: Duration::from_secs(60),
            site_lock: Duration::from_secs(120),
        }
    }

    fn fail(g: &SignInGuard, device: &str, now: Instant) -> Result<(), Locked> {
        g.attempt_at(device, Kind::SignIn, now).map(drop)
    }

    #[test]
    fn a_device_is_locked_after_its_failures_for_a_growing_period() {
        let g = SignInGuard::new(LockoutPolicy {
            site_failures: 100,
            ..policy()
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&g, "d1", t0).unwrap();
        }
        assert_eq!(
            fail(&g, "d1", t0),
            Err(Locked::Device {
                wait: Duration::from_secs(10)
            })
        );
        // Another device is not affected.
        fail(&g, "d2", t0).unwrap();
        // After the lock: three more tries, then locked twice as long, then capped.
        let t1 = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            fail(&g, "d1", t1).unwrap();
        }
        assert_eq!(
            fail(&g, "d1", t1).unwrap_err().wait(),
            Duration::from_secs(20)
        );
        let t2 = t1 + Duration::from_secs(20);
        for _ in 0..3 {
            fail(&g, "d1", t2).unwrap();
        }
        assert_eq!(
            fail(&g, "d1", t2).unwrap_err().wait(),
            Duration::from_secs(35)
        );
        let s = g.status_at(t2);
        assert_eq!(s.device_lockouts, 3);
        assert_eq!(s.locked_devices, vec!["d1".to_owned()]);
        assert_eq!(s.failures, 10);
        assert_eq!(s.refused_while_locked, 3);
    }

    #[test]
    fn a_success_takes_its_attempt_back_and_starts_the_device_over() {
        let g = SignInGuard::new(policy());
        let t0 = Instant::now();
        fail(&g, "d1", t0).unwrap();
        fail(&g, "d1", t0).unwrap();
        g.attempt_at("d1", Kind::SignIn, t0).unwrap().succeeded();
        // Three more failures are allowed again.
        for _ in 0..3 {
            fail(&g, "d1", t0).unwrap();
        }
        assert!(fail(&g, "d1", t0).is_err());
        assert_eq!(g.status_at(t0).failures, 5);
    }

    #[test]
    fn many_devices_guessing_lock_the_whole_site() {
        let g = SignInGuard::new(policy());
        let t0 = Instant::now();
        // Two failures each from many device ids: no device reaches its own limit.
        let mut refused = None;
        for i in 0..20 {
            for _ in 0..2 {
                if let Err(e) = fail(&g, &format!("d{i}"), t0) {
                    refused = Some((i, e));
                    break;
                }
            }
            if refused.is_some() {
                break;
            }
        }
        let (at, locked) = refused.expect("the site locks");
        assert!(at <= 5, "locked after the 9th failure, at device {at}");
        assert_eq!(
            locked,
            Locked::Site {
                wait: Duration::from_secs(120)
            }
        );
        assert!(fail(&g, "fresh", t0 + Duration::from_secs(119)).is_err());
        fail(&g, "fresh", t0 + Duration::from_secs(120)).unwrap();
        assert_eq!(g.status_at(t0).site_lockouts, 1);
    }

    #[test]
    fn failures_spread_beyond_the_site_window_do_not_lock_the_site() {
        let g = SignInGuard::new(policy());
        let mut now = Instant::now();
        for i in 0..100 {
            fail(&g, &format!("d{i}"), now).unwrap();
            now += Duration::from_secs(10);
        }
        assert_eq!(g.status_at(now).site_lockouts, 0);
    }

    #[test]
    fn takeover_lookups_lock_the_device_but_never_the_site() {
        let g = SignInGuard::new(policy());
        let t0 = Instant::now();
        for i in 0..40 {
            let _ = g.attempt_at(&format!("d{}", i % 4), Kind::Takeover, t0);
        }
        let s = g.status_at(t0);
        assert_eq!(s.site_lockouts, 0);
        assert_eq!(s.locked_devices.len(), 4);
        fail(&g, "d9", t0).unwrap();
    }

    #[test]
    fn made_up_device_ids_do_not_grow_memory_without_end() {
        let g = SignInGuard::new(LockoutPolicy {
            site_failures: u32::MAX,
            ..policy()
        });
        let mut now = Instant::now();
        for i in 0..(3 * MAX_TRACKED) {
            fail(&g, &format!("d{i}"), now).unwrap();
            now += Duration::from_millis(100);
        }
        assert!(g.lock().devices.len() <= MAX_TRACKED + 1);
    }
}
