//! The floor's own records: issued device tokens, operators, who is signed in on which
//! device, workflow sessions, and the answers already given to device write requests.
//!
//! A workflow step is one [`StepWrite`]: the session's new state, the journal entries the step
//! made, the device's current session and the answer for its idempotency key, all in one
//! writer command. Either all of it is on disk or none of it is.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::journal::{self, Appended, NewEntry};
use super::{StoreError, now_ms};

/// A workflow session as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionRow {
    pub id: String,
    pub device: String,
    pub operator: String,
    /// `pick`, `receive`, `count` or `transfer`.
    pub workflow: String,
    pub picking_id: Option<i64>,
    /// `active`, `done` or `cancelled`.
    pub state: String,
    /// The state machine's persisted state (JSON).
    pub data: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SessionRow {
    const COLUMNS: &'static str =
        "id, device, operator, workflow, picking_id, state, data, version, created_at, updated_at";

    fn from_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
        Ok(SessionRow {
            id: r.get(0)?,
            device: r.get(1)?,
            operator: r.get(2)?,
            workflow: r.get(3)?,
            picking_id: r.get(4)?,
            state: r.get(5)?,
            data: r.get(6)?,
            version: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
        })
    }
}

/// An operator as stored (the PIN hash never leaves the store module's callers that verify it).
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorRow {
    pub id: String,
    pub name: String,
    pub badge: Option<String>,
    pub pin_hash: Option<String>,
    pub active: bool,
    /// The handheld language the operator chose (`en`, `de`); `None`: as the device asks.
    /// Adding an operator again with `None` keeps the one chosen.
    pub language: Option<String>,
}

/// A device signed in with an operator.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceLogin {
    pub device: String,
    pub operator: String,
    pub session_id: Option<String>,
    pub signed_in_at: i64,
}

/// An answer already given to a device write request.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAnswer {
    pub fingerprint: String,
    pub status: u16,
    pub response: String,
}

/// The answer to remember for a device's idempotency key, written with the step it answers.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub device: String,
    pub key: String,
    pub fingerprint: String,
    pub status: u16,
    pub response: String,
}

/// Where a device's scans go after a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Current {
    /// Leave the device's login as it is.
    Keep,
    /// Scans from `device` go to `session` (or to none).
    Set {
        device: String,
        session: Option<String>,
    },
}

/// One workflow step, written atomically.
#[derive(Clone, Debug)]
pub struct StepWrite {
    /// The session's new row; `version` is the new version.
    pub session: SessionRow,
    /// The version the step started from; `None` creates the session.
    pub expected_version: Option<i64>,
    pub entries: Vec<NewEntry>,
    pub current: Current,
    pub request: Option<RequestRecord>,
    /// Labels the step prints (spooled in the same transaction).
    pub prints: Vec<super::NewPrintJob>,
}

/// Floor administration and sign-in, each one state assignment.
#[derive(Clone, Debug)]
pub enum FloorCmd {
    IssueDevice {
        id: String,
        token_sha256: String,
    },
    RevokeDevice {
        id: String,
    },
    AddOperator(OperatorRow),
    DeactivateOperator {
        id: String,
    },
    Login {
        device: String,
        operator: String,
        request: Option<RequestRecord>,
    },
    Logout {
        device: String,
        request: Option<RequestRecord>,
    },
    /// The operator's handheld language (`None`: as the device asks).
    OperatorLanguage {
        id: String,
        language: Option<String>,
    },
    /// A manager closes an open session (its operator left); what it recorded stays.
    CancelSession {
        id: String,
    },
    /// Forget answers older than this (unix ms).
    PruneRequests {
        before: i64,
    },
}

fn record_request(conn: &Connection, request: &Option<RequestRecord>) -> Result<(), StoreError> {
    let Some(r) = request else { return Ok(()) };
    let inserted = conn
        .prepare_cached(
            "INSERT INTO device_request (device, key, fingerprint, status, response, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            r.device,
            r.key,
            r.fingerprint,
            r.status,
            r.response,
            now_ms()
        ])?;
    if inserted == 0 {
        // Another request with the same key got there first: this one must not count.
        return Err(StoreError::Conflict(format!(
            "idempotency key {:?} was used by a concurrent request",
            r.key
        )));
    }
    Ok(())
}

/// Writes a step (one writer command: undone alone if it fails).
pub(super) fn step(
    conn: &Connection,
    site: &str,
    step: &StepWrite,
) -> Result<Vec<Appended>, StoreError> {
    let s = &step.session;
    if let Some(picking) = s.picking_id.filter(|_| s.state == "active") {
        let holder: Option<(String, String)> = conn
            .prepare_cached(
                "SELECT device, operator FROM session
                 WHERE picking_id = ?1 AND state = 'active' AND id != ?2",
            )?
            .query_row(params![picking, s.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((device, operator)) = holder {
            return Err(StoreError::PickingBusy(format!(
                "this picking is open on device {device} by operator {operator}"
            )));
        }
    }
    let now = now_ms();
    match step.expected_version {
        None => {
            conn.prepare_cached(
                "INSERT INTO session (id, device, operator, workflow, picking_id, state, data, version, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
            )?
            .execute(params![
                s.id, s.device, s.operator, s.workflow, s.picking_id, s.state, s.data, s.version, now
            ])?;
        }
        Some(expected) => {
            let n = conn
                .prepare_cached(
                    "UPDATE session SET device = ?2, state = ?3, data = ?4, version = ?5, updated_at = ?6
                     WHERE id = ?1 AND version = ?7 AND state = 'active'",
                )?
                .execute(params![
                    s.id, s.device, s.state, s.data, s.version, now, expected
                ])?;
            if n == 0 {
                return Err(StoreError::Conflict(
                    "the session changed meanwhile (another request or device); reload it".into(),
                ));
            }
        }
    }
    // (Operations were validated by `Store::step` before they reached the writer.)
    let mut appended = Vec::with_capacity(step.entries.len());
    for entry in &step.entries {
        appended.push(journal::append(conn, site, entry)?);
    }
    if s.state != "active" {
        // Whichever device still points at a closed session points at nothing now.
        conn.prepare_cached("UPDATE device_login SET session_id = NULL WHERE session_id = ?1")?
            .execute([&s.id])?;
    }
    if let Current::Set { device, session } = &step.current {
        conn.prepare_cached("UPDATE device_login SET session_id = ?2 WHERE device = ?1")?
            .execute(params![device, session])?;
    }
    record_request(conn, &step.request)?;
    for job in &step.prints {
        super::devices::enqueue(conn, job, None, now)?;
    }
    Ok(appended)
}

/// Closes the open sessions of pickings cancelled in Odoo that the floor no longer owns (no
/// open entries: none were recorded, or their conflicts were decided). Scanning on would only
/// journal work on a picking that no longer exists for Odoo; what was recorded stays. While
/// entries are still open the session stays, so the inbox's decision comes first. The device's
/// next step on it is answered that the session is cancelled. Returns the sessions closed.
pub(super) fn close_cancelled_sessions(conn: &Connection) -> Result<u64, StoreError> {
    // Open sessions are few (one per device at most), so looking at each is cheap.
    let candidates: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT s.id, s.picking_id FROM session s JOIN picking p ON p.id = s.picking_id
             WHERE s.state = 'active' AND s.picking_id IS NOT NULL AND p.state = 'cancel'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut closed = 0;
    let now = now_ms();
    for (id, picking_id) in candidates {
        if super::mirror::picking_owned(conn, picking_id)? {
            continue;
        }
        // A step racing this one finds the version moved and is refused, not written.
        closed += conn
            .prepare_cached(
                "UPDATE session SET state = 'cancelled', version = version + 1, updated_at = ?2
                 WHERE id = ?1 AND state = 'active'",
            )?
            .execute(params![id, now])? as u64;
        conn.prepare_cached("UPDATE device_login SET session_id = NULL WHERE session_id = ?1")?
            .execute([&id])?;
        tracing::info!(session = %id, picking_id, "picking cancelled in odoo: closing its session");
    }
    Ok(closed)
}

/// Runs an administration or sign-in command (one writer command: undone alone if it fails).
pub(super) fn command(conn: &Connection, cmd: &FloorCmd) -> Result<(), StoreError> {
    let now = now_ms();
    match cmd {
        FloorCmd::IssueDevice { id, token_sha256 } => {
            conn.prepare_cached(
                "INSERT INTO device (id, token_sha256, issued_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET token_sha256 = ?2, issued_at = ?3, revoked_at = NULL",
            )?
            .execute(params![id, token_sha256, now])?;
        }
        FloorCmd::RevokeDevice { id } => {
            let n = conn
                .prepare_cached(
                    "UPDATE device SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id, now])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("issued device {id:?}")));
            }
            conn.prepare_cached("DELETE FROM device_login WHERE device = ?1")?
                .execute([id])?;
        }
        FloorCmd::AddOperator(op) => {
            if let Some(badge) = &op.badge {
                let taken: Option<String> = conn
                    .prepare_cached("SELECT id FROM operator WHERE badge = ?1 AND id != ?2")?
                    .query_row(params![badge, op.id], |r| r.get(0))
                    .optional()?;
                if let Some(other) = taken {
                    return Err(StoreError::Conflict(format!(
                        "badge {badge:?} already belongs to operator {other}"
                    )));
                }
            }
            conn.prepare_cached(
                "INSERT INTO operator (id, name, badge, pin_hash, active, created_at, language)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET name = ?2, badge = COALESCE(?3, badge),
                    pin_hash = COALESCE(?4, pin_hash), active = ?5,
                    language = COALESCE(?7, language)",
            )?
            .execute(params![
                op.id,
                op.name,
                op.badge,
                op.pin_hash,
                op.active,
                now,
                op.language
            ])?;
        }
        FloorCmd::OperatorLanguage { id, language } => {
            let n = conn
                .prepare_cached("UPDATE operator SET language = ?2 WHERE id = ?1")?
                .execute(params![id, language])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("operator {id:?}")));
            }
        }
        FloorCmd::DeactivateOperator { id } => {
            let n = conn
                .prepare_cached("UPDATE operator SET active = 0 WHERE id = ?1")?
                .execute([id])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("operator {id:?}")));
            }
            conn.prepare_cached("DELETE FROM device_login WHERE operator = ?1")?
                .execute([id])?;
        }
        FloorCmd::Login {
            device,
            operator,
            request,
        } => {
            // A device signing in again with the same operator keeps its current session.
            conn.prepare_cached(
                "INSERT INTO device_login (device, operator, session_id, signed_in_at)
                 VALUES (?1, ?2, NULL, ?3)
                 ON CONFLICT (device) DO UPDATE SET
                    session_id = CASE WHEN operator = ?2 THEN session_id END,
                    operator = ?2, signed_in_at = ?3",
            )?
            .execute(params![device, operator, now])?;
            record_request(conn, request)?;
        }
        FloorCmd::Logout { device, request } => {
            conn.prepare_cached("DELETE FROM device_login WHERE device = ?1")?
                .execute([device])?;
            record_request(conn, request)?;
        }
        FloorCmd::CancelSession { id } => {
            let n = conn
                .prepare_cached(
                    "UPDATE session SET state = 'cancelled', version = version + 1, updated_at = ?2
                     WHERE id = ?1 AND state = 'active'",
                )?
                .execute(params![id, now])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("open session {id:?}")));
            }
            conn.prepare_cached("UPDATE device_login SET session_id = NULL WHERE session_id = ?1")?
                .execute([id])?;
        }
        FloorCmd::PruneRequests { before } => {
            conn.prepare_cached("DELETE FROM device_request WHERE created_at < ?1")?
                .execute([before])?;
        }
    }
    Ok(())
}

/// Floor reads, on a read-only connection.
pub(super) mod read {
    use super::*;

    pub fn session(conn: &Connection, id: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {} FROM session WHERE id = ?1",
                SessionRow::COLUMNS
            ))?
            .query_row([id], SessionRow::from_row)
            .optional()?)
    }

    pub fn open_sessions(
        conn: &Connection,
        operator: Option<&str>,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM session WHERE state = 'active' AND (?1 IS NULL OR operator = ?1)
             ORDER BY updated_at DESC",
            SessionRow::COLUMNS
        ))?;
        let rows = stmt.query_map([operator], SessionRow::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn open_session_of_picking(
        conn: &Connection,
        picking_id: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {} FROM session WHERE picking_id = ?1 AND state = 'active'",
                SessionRow::COLUMNS
            ))?
            .query_row([picking_id], SessionRow::from_row)
            .optional()?)
    }

    pub fn device_login(
        conn: &Connection,
        device: &str,
    ) -> Result<Option<DeviceLogin>, StoreError> {
        Ok(conn
            .prepare_cached(
                "SELECT device, operator, session_id, signed_in_at FROM device_login WHERE device = ?1",
            )?
            .query_row([device], |r| {
                Ok(DeviceLogin {
                    device: r.get(0)?,
                    operator: r.get(1)?,
                    session_id: r.get(2)?,
                    signed_in_at: r.get(3)?,
                })
            })
            .optional()?)
    }

    pub fn answer(
        conn: &Connection,
        device: &str,
        key: &str,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        Ok(conn
            .prepare_cached(
                "SELECT fingerprint, status, response FROM device_request WHERE device = ?1 AND key = ?2",
            )?
            .query_row([device, key], |r| {
                Ok(StoredAnswer {
                    fingerprint: r.get(0)?,
                    status: r.get(1)?,
                    response: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// The issued, unrevoked device holding this token digest.
    pub fn device_by_token(conn: &Connection, sha256: &str) -> Result<Option<String>, StoreError> {
        Ok(conn
            .prepare_cached("SELECT id FROM device WHERE token_sha256 = ?1 AND revoked_at IS NULL")?
            .query_row([sha256], |r| r.get(0))
            .optional()?)
    }

    /// Issued devices: (id, issued_at, revoked_at).
    pub fn devices(conn: &Connection) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
        let mut stmt =
            conn.prepare_cached("SELECT id, issued_at, revoked_at FROM device ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn operator_row(r: &Row<'_>) -> rusqlite::Result<OperatorRow> {
        Ok(OperatorRow {
            id: r.get(0)?,
            name: r.get(1)?,
            badge: r.get(2)?,
            pin_hash: r.get(3)?,
            active: r.get(4)?,
            language: r.get(5)?,
        })
    }

    pub fn operator(conn: &Connection, id: &str) -> Result<Option<OperatorRow>, StoreError> {
        Ok(conn
            .prepare_cached(
                "SELECT id, name, badge, pin_hash, active, language FROM operator WHERE id = ?1",
            )?
            .query_row([id], operator_row)
            .optional()?)
    }

    pub fn operator_by_badge(
        conn: &Connection,
        badge: &str,
    ) -> Result<Option<OperatorRow>, StoreError> {
        Ok(conn
            .prepare_cached(
                "SELECT id, name, badge, pin_hash, active, language FROM operator
                 WHERE badge = ?1 AND active",
            )?
            .query_row([badge], operator_row)
            .optional()?)
    }

    pub fn operators(conn: &Connection) -> Result<Vec<OperatorRow>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT id, name, badge, pin_hash, active, language FROM operator ORDER BY id",
        )?;
        let rows = stmt.query_map([], operator_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
