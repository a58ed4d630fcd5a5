//! Journal rows: appending operations with their effects, and moving entries through their
//! delivery states.

use std::fmt;
use std::str::FromStr;

use holdfast_sync::ops::{Effect, Operation, PAYLOAD_VERSION};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use uuid::Uuid;

use super::{StoreError, now_ms};

/// Delivery state of a journal entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    Pending,
    InFlight,
    Applied,
    Conflict,
    Rejected,
    Resolved,
}

impl OpState {
    pub const ALL: &'static [OpState] = &[
        OpState::Pending,
        OpState::InFlight,
        OpState::Applied,
        OpState::Conflict,
        OpState::Rejected,
        OpState::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpState::Pending => "pending",
            OpState::InFlight => "in_flight",
            OpState::Applied => "applied",
            OpState::Conflict => "conflict",
            OpState::Rejected => "rejected",
            OpState::Resolved => "resolved",
        }
    }
}

impl fmt::Display for OpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OpState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OpState::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?} (one of: pending, in_flight, applied, conflict, rejected, resolved)"
                )
            })
    }
}

/// An operation to append.
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// Set by callers that retry (devices send an idempotency key); generated otherwise.
    pub id: Option<Uuid>,
    pub device: String,
    pub operator: Option<String>,
    pub op: Operation,
}

/// What an append returns, once committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub seq: i64,
    pub id: Uuid,
    pub created_at: i64,
    /// The id was already in the journal; nothing new was written.
    pub duplicate: bool,
}

/// A delivery state change, as the push decides it.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// Pending (or conflict being retried) → in flight: a call is about to be made.
    InFlight { seq: i64 },
    /// In flight → applied: Odoo confirmed.
    Applied {
        seq: i64,
        remote_ref: Option<String>,
    },
    /// In flight → pending: the call failed before Odoo applied anything; retry later.
    Retry {
        seq: i64,
        error: String,
        next_attempt_at: i64,
    },
    /// In flight → rejected: Odoo refused it; needs a person.
    Rejected { seq: i64, error: String },
    /// In flight → conflict: the cloud disagrees; needs a decision.
    Conflict { seq: i64, error: String },
    /// Conflict or rejected → resolved: decided; its effect leaves the view.
    Resolved { seq: i64, note: String },
}

impl Transition {
    fn seq(&self) -> i64 {
        match self {
            Transition::InFlight { seq }
            | Transition::Applied { seq, .. }
            | Transition::Retry { seq, .. }
            | Transition::Rejected { seq, .. }
            | Transition::Conflict { seq, .. }
            | Transition::Resolved { seq, .. } => *seq,
        }
    }

    fn to_state(&self) -> OpState {
        match self {
            Transition::InFlight { .. } => OpState::InFlight,
            Transition::Applied { .. } => OpState::Applied,
            Transition::Retry { .. } => OpState::Pending,
            Transition::Rejected { .. } => OpState::Rejected,
            Transition::Conflict { .. } => OpState::Conflict,
            Transition::Resolved { .. } => OpState::Resolved,
        }
    }

    fn allowed_from(&self) -> &'static [&'static str] {
        match self {
            Transition::InFlight { .. } => &["pending", "conflict", "rejected"],
            Transition::Applied { .. }
            | Transition::Retry { .. }
            | Transition::Rejected { .. }
            | Transition::Conflict { .. } => &["in_flight"],
            Transition::Resolved { .. } => &["conflict", "rejected"],
        }
    }
}

/// A journal entry as read back.
#[derive(Clone, Debug, Serialize)]
pub struct JournalEntry {
    pub seq: i64,
    pub id: String,
    pub site: String,
    pub device: String,
    pub operator: Option<String>,
    pub kind: String,
    pub payload_version: u32,
    pub payload: serde_json::Value,
    pub causal_key: String,
    pub state: OpState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub remote_ref: Option<String>,
    pub created_at: i64,
    pub acked_at: Option<i64>,
    pub note: Option<String>,
    /// An attempt's outcome is unknown: the next one looks for its mark first.
    pub ambiguous: bool,
}

impl JournalEntry {
    pub(super) const COLUMNS: &'static str = "seq, id, site, device, operator, kind, payload_version, payload, causal_key, state, attempts, last_error, next_attempt_at, remote_ref, created_at, acked_at, note, ambiguous";

    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<JournalEntry> {
        let payload: String = row.get(7)?;
        let state: String = row.get(9)?;
        Ok(JournalEntry {
            seq: row.get(0)?,
            id: row.get(1)?,
            site: row.get(2)?,
            device: row.get(3)?,
            operator: row.get(4)?,
            kind: row.get(5)?,
            payload_version: row.get(6)?,
            // The column holds what `Operation::to_payload` wrote; keep unknown shapes visible
            // as a string rather than failing the whole listing.
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            causal_key: row.get(8)?,
            state: state.parse().map_err(|e: String| {
                rusqlite::Error::FromSqlConversionFailure(9, rusqlite::types::Type::Text, e.into())
            })?,
            attempts: row.get(10)?,
            last_error: row.get(11)?,
            next_attempt_at: row.get(12)?,
            remote_ref: row.get(13)?,
            created_at: row.get(14)?,
            acked_at: row.get(15)?,
            note: row.get(16)?,
            ambiguous: row.get(17)?,
        })
    }

    /// The recorded operation.
    pub fn operation(&self) -> Result<Operation, StoreError> {
        Operation::from_payload(self.payload_version, &self.payload.to_string())
            .map_err(|e| StoreError::Data(format!("journal entry {}: {e}", self.seq)))
    }
}

/// Appends one entry and its effects (inside the writer's transaction).
pub(super) fn append(
    conn: &Connection,
    site: &str,
    entry: &NewEntry,
) -> Result<Appended, StoreError> {
    if let Some(id) = entry.id {
        let existing = conn
            .prepare_cached("SELECT seq, created_at FROM journal WHERE id = ?1")?
            .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((seq, created_at)) = existing {
            return Ok(Appended {
                seq,
                id,
                created_at,
                duplicate: true,
            });
        }
    }
    let id = entry.id.unwrap_or_else(Uuid::now_v7);
    let created_at = now_ms();
    let op = &entry.op;
    conn.prepare_cached(
        "INSERT INTO journal (id, site, device, operator, kind, payload_version, payload, causal_key, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        id.to_string(),
        site,
        entry.device,
        entry.operator,
        op.kind().as_str(),
        PAYLOAD_VERSION,
        op.to_payload(),
        op.causal_key(),
        created_at,
    ])?;
    let seq = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO journal_effect (seq, target, product_id, location_id, lot_name, move_id, delta, expiration_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for effect in op.effects() {
        match effect {
            Effect::Stock {
                product_id,
                location_id,
                lot_name,
                delta,
            } => insert.execute(params![
                seq,
                "stock",
                product_id.0,
                location_id.0,
                lot_name,
                None::<i64>,
                delta,
                None::<String>
            ])?,
            Effect::MovePicked { move_id, delta } => insert.execute(params![
                seq,
                "move",
                None::<i64>,
                None::<i64>,
                "",
                move_id.0,
                delta,
                None::<String>
            ])?,
            Effect::LotKnown {
                product_id,
                lot_name,
                expiration_date,
            } => insert.execute(params![
                seq,
                "lot",
                product_id.0,
                None::<i64>,
                lot_name,
                None::<i64>,
                0.0,
                expiration_date
            ])?,
        };
    }
    Ok(Appended {
        seq,
        id,
        created_at,
        duplicate: false,
    })
}

/// Applies a delivery state change; refuses one the entry's current state does not allow.
pub(super) fn transition(conn: &Connection, t: &Transition) -> Result<(), StoreError> {
    let seq = t.seq();
    let current: Option<String> = conn
        .prepare_cached("SELECT state FROM journal WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    let Some(current) = current else {
        return Err(StoreError::NotFound(format!("journal entry {seq}")));
    };
    if !t.allowed_from().contains(&current.as_str()) {
        return Err(StoreError::Transition {
            seq,
            from: current,
            to: t.to_state().as_str(),
        });
    }
    let now = now_ms();
    match t {
        Transition::InFlight { .. } => conn
            .prepare_cached(
                "UPDATE journal SET state = 'in_flight', attempts = attempts + 1 WHERE seq = ?1",
            )?
            .execute([seq])?,
        Transition::Applied { remote_ref, .. } => conn
            .prepare_cached(
                "UPDATE journal SET state = 'applied', remote_ref = ?2, acked_at = ?3, last_error = NULL, ambiguous = 0,
                 acked_epoch = (SELECT epoch FROM appliance_state WHERE id = 1)
                 WHERE seq = ?1",
            )?
            .execute(params![seq, remote_ref, now])?,
        Transition::Retry {
            error,
            next_attempt_at,
            ..
        } => conn
            .prepare_cached(
                "UPDATE journal SET state = 'pending', last_error = ?2, next_attempt_at = ?3 WHERE seq = ?1",
            )?
            .execute(params![seq, error, next_attempt_at])?,
        Transition::Rejected { error, .. } => conn
            .prepare_cached("UPDATE journal SET state = 'rejected', last_error = ?2 WHERE seq = ?1")?
            .execute(params![seq, error])?,
        Transition::Conflict { error, .. } => conn
            .prepare_cached("UPDATE journal SET state = 'conflict', last_error = ?2 WHERE seq = ?1")?
            .execute(params![seq, error])?,
        Transition::Resolved { note, .. } => {
            conn.prepare_cached("UPDATE journal_effect SET live = 0 WHERE seq = ?1")?
                .execute([seq])?;
            conn.prepare_cached(
                "UPDATE journal SET state = 'resolved', note = ?2, acked_at = ?3 WHERE seq = ?1",
            )?
            .execute(params![seq, note, now])?
        }
    };
    if matches!(t, Transition::Applied { .. }) {
        conn.prepare_cached("UPDATE appliance_state SET last_push_at = ?1 WHERE id = 1")?
            .execute([now])?;
    }
    Ok(())
}
