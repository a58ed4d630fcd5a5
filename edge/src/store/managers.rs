//! Site managers (migration 8): accounts, console sessions and the audit trail.
//!
//! Every command that changes an account or a session writes its audit row in the same
//! writer command (all or nothing), so an account is never changed without the trail saying who did it. Sessions
//! are keyed by the SHA-256 of their token; the token itself is only ever in the cookie.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::read::Reader;
use super::{StoreError, now_ms};

/// A manager account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerRow {
    pub name: String,
    /// `viewer` or `manager`.
    pub role: String,
    pub password_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The console language the manager chose (`en`, `de`); `None`: as the browser asks.
    pub language: Option<String>,
}

/// A console session with its manager's role as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerSessionRow {
    pub manager: String,
    pub role: String,
    pub created_at: i64,
    pub last_seen: i64,
    /// The manager's chosen language, if any.
    pub language: Option<String>,
}

/// An audit record to write.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAudit {
    /// `token`, `manager:<name>`, `cli:<user>`, `device:<id>`, `anonymous`.
    pub actor: String,
    /// `conflict.resolve`, `print.reprint`, `login.failure`, ...
    pub action: String,
    /// What it acted on: `conflict:<id>`, `manager:<name>`, ...
    pub target: Option<String>,
    pub detail: serde_json::Value,
}

/// A written audit record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}

/// Manager, session and audit commands for the writer; each answers a count or a seq.
#[derive(Clone, Debug)]
pub enum ManagerCmd {
    /// A new account (refused if the name is taken).
    Add {
        name: String,
        role: String,
        password_hash: String,
        audit: NewAudit,
    },
    /// A new password; the account's sessions end.
    Passwd {
        name: String,
        password_hash: String,
        audit: NewAudit,
    },
    /// The account and its sessions go.
    Remove { name: String, audit: NewAudit },
    /// A signed-in session; sessions expired by `stale_before` (last seen earlier) or
    /// `born_before` (created earlier) are removed on the way.
    OpenSession {
        token_sha256: String,
        manager: String,
        now: i64,
        stale_before: i64,
        born_before: i64,
        audit: NewAudit,
    },
    /// The session was used at `at`.
    Touch { token_sha256: String, at: i64 },
    /// The session ends (sign-out or expiry); answers 1 if it existed.
    CloseSession {
        token_sha256: String,
        audit: Option<NewAudit>,
    },
    /// The manager's console language (`None`: as the browser asks).
    Language {
        name: String,
        language: Option<String>,
        audit: NewAudit,
    },
    /// An audit record on its own; answers its seq.
    Audit(NewAudit),
}

fn write_audit(conn: &Connection, audit: &NewAudit) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        now_ms(),
        audit.actor,
        audit.action,
        audit.target,
        audit.detail.to_string()
    ])?;
    Ok(conn.last_insert_rowid())
}

pub(super) fn command(conn: &Connection, cmd: &ManagerCmd) -> Result<i64, StoreError> {
    match cmd {
        ManagerCmd::Add {
            name,
            role,
            password_hash,
            audit,
        } => {
            let now = now_ms();
            let n = conn
                .prepare_cached(
                    "INSERT INTO manager (name, role, password_hash, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO NOTHING",
                )?
                .execute(params![name, role, password_hash, now])?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "manager {name:?} exists already (change the password with `holdfast manager passwd`)"
                )));
            }
            write_audit(conn, audit)
        }
        ManagerCmd::Passwd {
            name,
            password_hash,
            audit,
        } => {
            let n = conn
                .prepare_cached(
                    "UPDATE manager SET password_hash = ?2, updated_at = ?3 WHERE name = ?1",
                )?
                .execute(params![name, password_hash, now_ms()])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("manager {name:?}")));
            }
            conn.prepare_cached("DELETE FROM manager_session WHERE manager = ?1")?
                .execute([name])?;
            write_audit(conn, audit)
        }
        ManagerCmd::Remove { name, audit } => {
            conn.prepare_cached("DELETE FROM manager_session WHERE manager = ?1")?
                .execute([name])?;
            let n = conn
                .prepare_cached("DELETE FROM manager WHERE name = ?1")?
                .execute([name])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("manager {name:?}")));
            }
            write_audit(conn, audit)
        }
        ManagerCmd::OpenSession {
            token_sha256,
            manager,
            now,
            stale_before,
            born_before,
            audit,
        } => {
            conn.prepare_cached(
                "DELETE FROM manager_session WHERE last_seen < ?1 OR created_at < ?2",
            )?
            .execute(params![stale_before, born_before])?;
            conn.prepare_cached(
                "INSERT INTO manager_session (token_sha256, manager, created_at, last_seen)
                 VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(params![token_sha256, manager, now])?;
            write_audit(conn, audit)
        }
        ManagerCmd::Touch { token_sha256, at } => Ok(conn
            .prepare_cached(
                "UPDATE manager_session SET last_seen = max(last_seen, ?2) WHERE token_sha256 = ?1",
            )?
            .execute(params![token_sha256, at])?
            as i64),
        ManagerCmd::CloseSession {
            token_sha256,
            audit,
        } => {
            let n = conn
                .prepare_cached("DELETE FROM manager_session WHERE token_sha256 = ?1")?
                .execute([token_sha256])?;
            if let Some(audit) = audit {
                write_audit(conn, audit)?;
            }
            Ok(n as i64)
        }
        ManagerCmd::Language {
            name,
            language,
            audit,
        } => {
            let n = conn
                .prepare_cached("UPDATE manager SET language = ?2 WHERE name = ?1")?
                .execute(params![name, language])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("manager {name:?}")));
            }
            write_audit(conn, audit)
        }
        ManagerCmd::Audit(audit) => write_audit(conn, audit),
    }
}

fn manager_row(r: &Row<'_>) -> rusqlite::Result<ManagerRow> {
    Ok(ManagerRow {
        name: r.get(0)?,
        role: r.get(1)?,
        password_hash: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
        language: r.get(5)?,
    })
}

impl Reader<'_> {
    pub fn manager(&self, name: &str) -> Result<Option<ManagerRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT name, role, password_hash, created_at, updated_at, language FROM manager
                 WHERE name = ?1",
            )?
            .query_row([name], manager_row)
            .optional()?)
    }

    /// Every manager account, by name.
    pub fn managers(&self) -> Result<Vec<ManagerRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT name, role, password_hash, created_at, updated_at, language FROM manager
             ORDER BY name",
        )?;
        let rows = stmt.query_map([], manager_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The session whose token has this digest, with its manager's current role.
    pub fn manager_session(
        &self,
        token_sha256: &str,
    ) -> Result<Option<ManagerSessionRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT s.manager, m.role, s.created_at, s.last_seen, m.language
                 FROM manager_session s JOIN manager m ON m.name = s.manager
                 WHERE s.token_sha256 = ?1",
            )?
            .query_row([token_sha256], |r| {
                Ok(ManagerSessionRow {
                    manager: r.get(0)?,
                    role: r.get(1)?,
                    created_at: r.get(2)?,
                    last_seen: r.get(3)?,
                    language: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// A page of the audit trail, newest first. The trail has no index but its key: a site
    /// writes a few hundred records a day, and a page stops at `limit` matches.
    pub fn audit_page(&self, q: &super::read::AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, at, actor, action, target, detail FROM audit
             WHERE (?1 IS NULL OR actor = ?1 OR actor = 'manager:' || ?1)
               AND (?2 IS NULL OR action = ?2 OR substr(action, 1, length(?2)) = ?2)
               AND (?3 IS NULL OR target = ?3) AND (?4 IS NULL OR seq < ?4)
               AND (?6 IS NULL OR seq >= ?6)
             ORDER BY seq DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            rusqlite::params![
                q.actor,
                q.action,
                q.target,
                q.before_seq,
                q.limit as i64,
                q.from_seq
            ],
            audit_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest `limit` records about `target` (`conflict:7`), newest first, through the
    /// target's index (migration 11): a record's trail costs its own rows, not the trail's.
    pub fn audit_of(&self, target: &str, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, at, actor, action, target, detail FROM audit
             WHERE target = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![target, limit as i64], audit_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest record older than a window of `window` records below `before_seq` (below
    /// the newest when `None`), or `None` when the window reaches the first record: a page
    /// reads the records above it. A walk down the key, never the whole trail.
    pub fn audit_below_window(
        &self,
        before_seq: Option<i64>,
        window: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT seq FROM audit WHERE (?1 IS NULL OR seq < ?1)
                 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
            )?
            .query_row(rusqlite::params![before_seq, window.max(1)], |r| r.get(0))
            .optional()?)
    }

    /// The newest `limit` audit records, newest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT seq, at, actor, action, target, detail FROM audit ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], audit_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    let detail: String = r.get(5)?;
    Ok(AuditRow {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
    })
}
