//! Site managers: accounts, console sessions, and who may do what.
//!
//! Shared by the JSON API and the console pages. A request acts as an [`Actor`]: the site
//! manager's bearer token (`http.manager_token`, full rights, so scripts keep working) or a
//! manager signed in with a session cookie. Roles are [`Role::Viewer`] (reads everything) and
//! [`Role::Manager`] (also decides conflicts, acts on print jobs, devices and sessions).
//!
//! Sessions are kept in the store (they survive a restart) under the SHA-256 of their token;
//! the token is only in the `hf_session` cookie. A session ends after [`IDLE_TIMEOUT`] without
//! use or [`ABSOLUTE_TIMEOUT`] after sign-in, whichever comes first ([`SessionPolicy::check`],
//! pure, with "now" passed in). Its CSRF token is derived from the session token
//! ([`csrf_token`]), so it needs no storage and dies with the session; every state-changing
//! request made with the cookie must carry it in `X-CSRF-Token`.
//!
//! Sign-in failures are limited per account and per client address by one
//! [`SignInGuard`] of its own (the floor's operators have theirs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::floor::lockout::{LockoutPolicy, SignInGuard};

/// A session unused for this long has ended.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in however much it is used.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// A session's last use is written at most this often (not a write per request).
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// The longest password accepted (argon2 hashes whatever it is given: bound the work).
pub const MAX_PASSWORD: usize = 1024;
/// How often a refusal on one locked account or address is audited at most.
const LOCK_AUDIT_EVERY: Duration = Duration::from_secs(60);
/// The session cookie's name.
pub const COOKIE: &str = "hf_session";

/// What a manager may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Also decides and acts.
    Manager,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Manager => "manager",
        }
    }

    /// Whether this role meets `need`.
    pub fn allows(self, need: Need) -> bool {
        match need {
            Need::View => true,
            Need::Manage => self == Role::Manager,
        }
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Read.
    View,
    /// Decide or act.
    Manage,
}

/// Who a request acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The site manager's bearer token: full manager rights, no CSRF token needed.
    Token,
    /// A signed-in manager (session cookie).
    Session {
        name: String,
        role: Role,
        /// The console language the manager chose; `None`: as the browser asks.
        language: Option<crate::i18n::Lang>,
    },
}

impl Actor {
    /// The actor as the audit trail names it.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Token => "token".into(),
            Actor::Session { name, .. } => format!("manager:{name}"),
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Actor::Token => Role::Manager,
            Actor::Session { role, .. } => *role,
        }
    }
}

/// How long sessions last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle: IDLE_TIMEOUT,
            absolute: ABSOLUTE_TIMEOUT,
        }
    }
}

/// A session's standing at some moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// In use; `touch`: its last use should be written.
    Valid { touch: bool },
    /// Unused for longer than the idle time-out.
    Idle,
    /// Older than the absolute time-out.
    Expired,
}

impl SessionPolicy {
    /// The standing at `now` of a session created and last seen at these times (all in ms
    /// since the epoch). A clock that went back counts as no time passed.
    pub fn check(&self, created_ms: i64, last_seen_ms: i64, now_ms: i64) -> SessionCheck {
        let since = |t: i64| Duration::from_millis(now_ms.saturating_sub(t).max(0) as u64);
        if since(created_ms) >= self.absolute {
            SessionCheck::Expired
        } else if since(last_seen_ms) >= self.idle {
            SessionCheck::Idle
        } else {
            SessionCheck::Valid {
                touch: since(last_seen_ms) >= TOUCH_EVERY,
            }
        }
    }

    /// (last seen before, created before): sessions past either have ended at `now_ms`.
    pub fn cutoffs(&self, now_ms: i64) -> (i64, i64) {
        (
            now_ms.saturating_sub(self.idle.as_millis() as i64),
            now_ms.saturating_sub(self.absolute.as_millis() as i64),
        )
    }
}

/// Sign-in state shared by every request: the lock-out and the session policy.
#[derive(Clone, Debug)]
pub struct Managers {
    /// Failures per account (`manager:<name>`) and per client address (`addr:<ip>`).
    pub guard: Arc<SignInGuard>,
    pub sessions: SessionPolicy,
    /// When a refusal while locked was last audited, per lock-out key: once a minute is
    /// enough for the trail, and a guesser hammering a locked account cannot fill the disk.
    locks_audited: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Default for Managers {
    fn default() -> Self {
        Managers::new(LockoutPolicy::default(), SessionPolicy::default())
    }
}

impl Managers {
    pub fn new(lockout: LockoutPolicy, sessions: SessionPolicy) -> Managers {
        Managers {
            guard: Arc::new(SignInGuard::new(lockout)),
            sessions,
            locks_audited: Arc::default(),
        }
    }

    /// Whether a refusal on the locked `key` should be audited now (at most once a minute
    /// per key).
    pub fn lock_to_audit(&self, key: &str) -> bool {
        self.lock_to_audit_at(key, Instant::now())
    }

    pub fn lock_to_audit_at(&self, key: &str, now: Instant) -> bool {
        // Timestamps only: a panic elsewhere cannot leave them inconsistent.
        let mut seen = self.locks_audited.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= 4096 {
            seen.retain(|_, t| now.saturating_duration_since(*t) < LOCK_AUDIT_EVERY);
            if seen.len() >= 4096 {
                seen.clear();
            }
        }
        match seen.get(key) {
            Some(t) if now.saturating_duration_since(*t) < LOCK_AUDIT_EVERY => false,
            _ => {
                seen.insert(key.to_owned(), now);
                true
            }
        }
    }
}

/// A manager's name: 1 to 64 letters, digits, `.`, `-`, `_` or `@`.
pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
    {
        return Err(format!(
            "{name:?} is not a manager name; use 1-64 letters, digits, '.', '-', '_' or '@'"
        ));
    }
    Ok(())
}

/// A password: at least [`MIN_PASSWORD`] characters, at most [`MAX_PASSWORD`] bytes.
pub fn valid_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!("a password has at least {MIN_PASSWORD} characters"));
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("a password has at most {MAX_PASSWORD} bytes"));
    }
    Ok(())
}

/// Hashes a password for storage (argon2id, a random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    crate::floor::hash_pin(password).map_err(|e| e.replace("PIN", "password"))
}

/// Whether `password` matches `hash` (an argon2 PHC string). Slow by design: call it off the
/// async workers.
pub fn verify_password(password: &str, hash: &str) -> bool {
    crate::floor::verify_pin(password, hash)
}

/// A hash no password matches in practice, verified for unknown names so that a wrong name
/// takes as long as a wrong password (no telling which names exist).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&crate::floor::new_token()).unwrap_or_default())
}

/// A strong random password (160 bits, hex), for `holdfast manager add` without one given.
pub fn generate_password() -> String {
    crate::floor::new_token()[..40].to_owned()
}

/// The CSRF token of the session whose token is `session_token`. Derived, not stored: only
/// the holder of the cookie can know it, and it ends with the session.
pub fn csrf_token(session_token: &str) -> String {
    crate::floor::sha256_hex(format!("holdfast-csrf\0{session_token}").as_bytes())
}

/// Whether `presented` is the CSRF token of `session_token` (constant time).
pub fn csrf_matches(session_token: &str, presented: Option<&str>) -> bool {
    match presented {
        Some(presented) => bool::from(subtle::ConstantTimeEq::ct_eq(
            presented.trim().as_bytes(),
            csrf_token(session_token).as_bytes(),
        )),
        None => false,
    }
}

/// The `hf_session` value in a `Cookie` header.
pub fn session_cookie(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The `Set-Cookie` value that carries a new session (`Secure` when served over TLS).
pub fn set_cookie(token: &str, secure: bool) -> String {
    let mut cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let mut cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn sessions_end_idle_or_absolute() {
        let p = SessionPolicy::default();
        let t0 = 1_000_000_000;
        // (created, last seen, now) → standing
        let table = [
            (t0, t0, t0, SessionCheck::Valid { touch: false }),
            (t0, t0, t0 + MIN - 1, SessionCheck::Valid { touch: false }),
            (t0, t0, t0 + MIN, SessionCheck::Valid { touch: true }),
            (
                t0,
                t0,
                t0 + 30 * MIN - 1,
                SessionCheck::Valid { touch: true },
            ),
            (t0, t0, t0 + 30 * MIN, SessionCheck::Idle),
            // Used every 20 minutes: alive until the 12th hour, then over.
            (
                t0,
                t0 + 700 * MIN,
                t0 + 719 * MIN,
                SessionCheck::Valid { touch: true },
            ),
            (t0, t0 + 710 * MIN, t0 + 720 * MIN, SessionCheck::Expired),
            (t0, t0 + 720 * MIN, t0 + 720 * MIN, SessionCheck::Expired),
            // A clock that went back is no time passed.
            (t0, t0, t0 - 10 * MIN, SessionCheck::Valid { touch: false }),
        ];
        for (created, seen, now, expected) in table {
            assert_eq!(
                p.check(created, seen, now),
                expected,
                "created {created} seen {seen} now {now}"
            );
        }
        let (stale, born) = p.cutoffs(t0);
        assert_eq!(stale, t0 - 30 * MIN);
        assert_eq!(born, t0 - 720 * MIN);
    }

    #[test]
    fn lock_refusals_are_audited_once_a_minute() {
        let m = Managers::default();
        let t0 = Instant::now();
        assert!(m.lock_to_audit_at("manager:a", t0));
        assert!(!m.lock_to_audit_at("manager:a", t0 + Duration::from_secs(59)));
        assert!(m.lock_to_audit_at("addr:10.0.0.1", t0));
        assert!(m.lock_to_audit_at("manager:a", t0 + Duration::from_secs(61)));
    }

    #[test]
    fn roles_and_needs() {
        assert!(Role::Viewer.allows(Need::View));
        assert!(!Role::Viewer.allows(Need::Manage));
        assert!(Role::Manager.allows(Need::Manage));
        assert_eq!(Actor::Token.role(), Role::Manager);
        for role in [Role::Viewer, Role::Manager] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn csrf_token_belongs_to_its_session() {
        let a = crate::floor::new_token();
        let b = crate::floor::new_token();
        let token = csrf_token(&a);
        assert!(csrf_matches(&a, Some(&token)));
        assert!(!csrf_matches(&b, Some(&token)));
        assert!(!csrf_matches(&a, None));
        assert!(!csrf_matches(&a, Some("")));
        assert!(!csrf_matches(&a, Some(&a)));
    }

    #[test]
    fn cookies_are_read_and_written() {
        let table = [
            ("hf_session=abc", Some("abc")),
            ("a=1; hf_session=abc; b=2", Some("abc")),
            ("hf_session=", None),
            ("hf_sessionx=abc", None),
            ("", None),
            ("garbage;;==;", None),
        ];
        for (header, expected) in table {
            assert_eq!(session_cookie(header), expected, "{header:?}");
        }
        assert_eq!(
            set_cookie("t", false),
            "hf_session=t; HttpOnly; SameSite=Strict; Path=/"
        );
        assert!(set_cookie("t", true).ends_with("; Secure"));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(valid_name("anna.b@site").is_ok());
        for bad in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
        assert!(valid_password("123456789").is_err());
        assert!(valid_password("1234567890").is_ok());
        assert!(valid_password(&"p".repeat(MAX_PASSWORD + 1)).is_err());
        let hash = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("x", "not a hash"));
        assert_eq!(generate_password().len(), 40);
    }
}
