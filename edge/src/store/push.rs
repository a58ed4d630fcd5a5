//! Push bookkeeping: which causal keys are ready, batches moving through their states,
//! conflicts with both sides' values, and the decisions people take on them.
//!
//! Every state change here is one writer command, so a batch of entries settles together
//! (all applied, all held back, or all back to pending) in one commit.

use holdfast_sync::ops::{Operation, ResolveAction, ResolveOp};
use holdfast_sync::push::NewPicking;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use super::journal::{self, JournalEntry, NewEntry};
use super::{StoreError, now_ms};

/// A conflict to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewConflict {
    pub kind: String,
    /// The policy that decided what happened (`manual`, `edge_wins`, `cloud_wins`, `merge`).
    pub policy: String,
    pub message: String,
    pub edge: Value,
    pub cloud: Value,
}

/// How a batch in flight settles.
#[derive(Clone, Debug, PartialEq)]
pub enum Settle {
    /// Odoo holds the batch's effect.
    Applied {
        remote_ref: Option<String>,
        /// Kept on the entries (e.g. "superseded: done in Odoo with the same quantities").
        note: Option<String>,
        /// Disagreements applied anyway, shown until acknowledged.
        flagged: Vec<NewConflict>,
    },
    /// Nothing decided: back to pending, tried again at `next_attempt_at`.
    Retry {
        error: String,
        next_attempt_at: i64,
        /// The outcome of this attempt is unknown: look for the mark next time.
        ambiguous: bool,
        /// False when the attempt never reached Odoo through no fault of the entry (the
        /// queue paused on refused credentials): it does not count.
        count_attempt: bool,
    },
    /// Held back for a person: the entries wait in `conflict` (or `rejected`, when Odoo
    /// refused them as invalid) and block their causal key.
    Hold {
        rejected: bool,
        conflict: NewConflict,
    },
    /// Settled by policy (cloud wins): the entries are dropped with a note.
    Discard { conflict: NewConflict },
}

/// Why an attempt did not apply its entries, kept in its `push_attempt` row (the journal
/// keeps only the last error).
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptFailure {
    /// The call that failed (`model.method`), when one did.
    pub call: Option<String>,
    /// `transient`, `ambiguous`, `auth`, `permanent` (the wire client's classes) or
    /// `conflict` (Odoo answered, and disagrees).
    pub class: String,
    pub message: String,
}

/// One push attempt of an entry, as `holdfast journal show` lists them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttemptRow {
    pub attempt: i64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// `applied`, `retry`, `conflict`, `rejected`, `discarded`, `interrupted`; `None` while
    /// in flight.
    pub outcome: Option<String>,
    pub call: Option<String>,
    pub class: Option<String>,
    pub message: Option<String>,
}

/// What a re-created picking carries over from the mirror's copy of the original.
#[derive(Clone, Debug, PartialEq)]
pub struct PickingContext {
    pub name: String,
    pub origin: Option<String>,
    pub partner_id: Option<i64>,
}

/// Push commands for the writer.
#[derive(Clone, Debug)]
pub enum PushCmd {
    /// Pending → in flight (one attempt more, with its row in `push_attempt`).
    Begin { seqs: Vec<i64> },
    /// In flight → wherever the outcome says; the attempt's row gets its end in the same
    /// commit.
    Settle {
        seqs: Vec<i64>,
        settle: Settle,
        failure: Option<AttemptFailure>,
    },
    /// On startup: whatever was in flight when the appliance stopped has an unknown outcome.
    Recover,
    /// A person's decision on a conflict, recorded as a `resolve` journal entry.
    Resolve {
        conflict_id: i64,
        action: ResolveAction,
        note: String,
        by: String,
        /// For `recreate`: the picking to create (built from the held-back entries).
        recreate: Option<NewPicking>,
    },
}

/// A conflict as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConflictRow {
    pub id: i64,
    pub seq: i64,
    pub seqs: Vec<i64>,
    pub causal_key: String,
    pub kind: String,
    pub policy: String,
    pub status: String,
    pub message: String,
    pub edge: Value,
    pub cloud: Value,
    pub created_at: i64,
    pub resolution: Option<String>,
    pub note: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub resolution_seq: Option<i64>,
}

const CONFLICT_COLUMNS: &str = "id, seq, seqs, causal_key, kind, policy, status, message, edge, cloud, created_at, resolution, note, resolved_by, resolved_at, resolution_seq";

impl ConflictRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<ConflictRow> {
        let json = |i: usize| -> rusqlite::Result<Value> {
            let text: String = r.get(i)?;
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        };
        let seqs: String = r.get(2)?;
        Ok(ConflictRow {
            id: r.get(0)?,
            seq: r.get(1)?,
            seqs: serde_json::from_str(&seqs).unwrap_or_default(),
            causal_key: r.get(3)?,
            kind: r.get(4)?,
            policy: r.get(5)?,
            status: r.get(6)?,
            message: r.get(7)?,
            edge: json(8)?,
            cloud: json(9)?,
            created_at: r.get(10)?,
            resolution: r.get(11)?,
            note: r.get(12)?,
            resolved_by: r.get(13)?,
            resolved_at: r.get(14)?,
            resolution_seq: r.get(15)?,
        })
    }
}

/// A causal key whose first open entry may be sent now.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadyKey {
    pub causal_key: String,
    pub first_seq: i64,
}

/// What the scheduler needs to know about the queue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushQueue {
    pub ready: Vec<ReadyKey>,
    /// When the next key not yet ready becomes ready (unix ms).
    pub next_at: Option<i64>,
}

fn check_state(
    conn: &Connection,
    seq: i64,
    allowed: &[&str],
    to: &'static str,
) -> Result<(), StoreError> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM journal WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    match state {
        None => Err(StoreError::NotFound(format!("journal entry {seq}"))),
        Some(s) if allowed.contains(&s.as_str()) => Ok(()),
        Some(from) => Err(StoreError::Transition { seq, from, to }),
    }
}

fn insert_conflict(
    conn: &Connection,
    seqs: &[i64],
    c: &NewConflict,
    status: &str,
    resolution: Option<(&str, &str)>,
) -> Result<i64, StoreError> {
    let first = seqs
        .first()
        .copied()
        .ok_or_else(|| StoreError::Data("a conflict needs an entry".into()))?;
    let key: String = conn
        .prepare_cached("SELECT causal_key FROM journal WHERE seq = ?1")?
        .query_row([first], |r| r.get(0))?;
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO conflict (seq, seqs, causal_key, kind, policy, status, message, edge, cloud, created_at,
                               resolution, note, resolved_by, resolved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        first,
        serde_json::to_string(seqs).unwrap_or_default(),
        key,
        c.kind,
        c.policy,
        status,
        c.message,
        c.edge.to_string(),
        c.cloud.to_string(),
        now,
        resolution.map(|r| r.0),
        resolution.map(|r| r.1),
        resolution.map(|_| "policy"),
        resolution.map(|_| now),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Drops entries: resolved with a note, their effects leave the view.
fn discard(conn: &Connection, seqs: &[i64], note: &str) -> Result<(), StoreError> {
    let now = now_ms();
    for &seq in seqs {
        conn.prepare_cached("UPDATE journal_effect SET live = 0 WHERE seq = ?1")?
            .execute([seq])?;
        conn.prepare_cached(
            "UPDATE journal SET state = 'resolved', note = ?2, acked_at = ?3 WHERE seq = ?1",
        )?
        .execute(params![seq, note, now])?;
    }
    Ok(())
}

impl super::Reader<'_> {
    /// An entry's push attempts, oldest first (`holdfast journal show`).
    pub fn push_attempts(&self, seq: i64) -> Result<Vec<AttemptRow>, StoreError> {
        read::attempts(self.conn(), seq)
    }

    /// When a person last told an entry to retry, and when it was first sent since (or at
    /// all), unix ms.
    pub fn push_sent_since(&self, seq: i64) -> Result<(Option<i64>, Option<i64>), StoreError> {
        read::sent_since(self.conn(), seq)
    }

    /// The products of a mirrored picking's moves (what its validation takes stock of).
    pub fn picking_products(&self, picking: i64) -> Result<Vec<i64>, StoreError> {
        read::picking_products(self.conn(), picking)
    }

    /// A mirrored picking's name, origin and partner (for a re-creation's context).
    pub fn picking_context(&self, id: i64) -> Result<Option<PickingContext>, StoreError> {
        read::picking_context(self.conn(), id)
    }
}

/// Runs a push command inside the writer's transaction; answers a count or a seq.
pub(super) fn command(conn: &Connection, site: &str, cmd: &PushCmd) -> Result<i64, StoreError> {
    match cmd {
        PushCmd::Begin { seqs } => {
            let now = now_ms();
            for &seq in seqs {
                check_state(conn, seq, &["pending"], "in_flight")?;
                conn.prepare_cached(
                    "UPDATE journal SET state = 'in_flight', attempts = attempts + 1 WHERE seq = ?1",
                )?
                .execute([seq])?;
                // Numbered on their own: an attempt that does not count (a paused queue)
                // still happened.
                conn.prepare_cached(
                    "INSERT INTO push_attempt (seq, attempt, started_at)
                     VALUES (?1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM push_attempt WHERE seq = ?1), ?2)",
                )?
                .execute(params![seq, now])?;
            }
            Ok(seqs.len() as i64)
        }
        PushCmd::Settle {
            seqs,
            settle,
            failure,
        } => {
            for &seq in seqs {
                check_state(conn, seq, &["in_flight"], "settled")?;
            }
            let now = now_ms();
            let outcome = match settle {
                Settle::Applied { .. } => "applied",
                Settle::Retry { .. } => "retry",
                Settle::Hold { rejected: true, .. } => "rejected",
                Settle::Hold { .. } => "conflict",
                Settle::Discard { .. } => "discarded",
            };
            for &seq in seqs {
                conn.prepare_cached(
                    "UPDATE push_attempt SET ended_at = ?2, outcome = ?3, call = ?4, class = ?5, message = ?6
                     WHERE seq = ?1 AND ended_at IS NULL",
                )?
                .execute(params![
                    seq,
                    now,
                    outcome,
                    failure.as_ref().and_then(|f| f.call.as_deref()),
                    failure.as_ref().map(|f| f.class.as_str()),
                    failure.as_ref().map(|f| f.message.as_str()),
                ])?;
            }
            match settle {
                Settle::Applied {
                    remote_ref,
                    note,
                    flagged,
                } => {
                    for &seq in seqs {
                        conn.prepare_cached(
                            "UPDATE journal SET state = 'applied', remote_ref = ?2, acked_at = ?3, last_error = NULL,
                             ambiguous = 0, note = COALESCE(?4, note),
                             acked_epoch = (SELECT epoch FROM appliance_state WHERE id = 1)
                             WHERE seq = ?1",
                        )?
                        .execute(params![seq, remote_ref, now, note])?;
                    }
                    for c in flagged {
                        insert_conflict(conn, seqs, c, "flagged", None)?;
                    }
                    conn.prepare_cached(
                        "UPDATE appliance_state SET last_push_at = ?1 WHERE id = 1",
                    )?
                    .execute([now])?;
                }
                Settle::Retry {
                    error,
                    next_attempt_at,
                    ambiguous,
                    count_attempt,
                } => {
                    for &seq in seqs {
                        conn.prepare_cached(
                            "UPDATE journal SET state = 'pending', last_error = ?2, next_attempt_at = ?3,
                             ambiguous = MAX(ambiguous, ?4), attempts = attempts - ?5
                             WHERE seq = ?1",
                        )?
                        .execute(params![seq, error, next_attempt_at, *ambiguous as i64, (!count_attempt) as i64])?;
                    }
                }
                Settle::Hold { rejected, conflict } => {
                    let state = if *rejected { "rejected" } else { "conflict" };
                    for &seq in seqs {
                        conn.prepare_cached(
                            "UPDATE journal SET state = ?2, last_error = ?3 WHERE seq = ?1",
                        )?
                        .execute(params![seq, state, conflict.message])?;
                    }
                    insert_conflict(conn, seqs, conflict, "open", None)?;
                }
                Settle::Discard { conflict } => {
                    let note = format!(
                        "discarded by policy {}: {}",
                        conflict.policy, conflict.message
                    );
                    discard(conn, seqs, &note)?;
                    insert_conflict(conn, seqs, conflict, "resolved", Some(("discard", &note)))?;
                }
            }
            // The push re-read the cloud's copy of these pickings: changes the pull noticed
            // on them are accounted for.
            let key: Option<String> = match seqs.first() {
                Some(seq) => conn
                    .prepare_cached("SELECT causal_key FROM journal WHERE seq = ?1")?
                    .query_row([seq], |r| r.get(0))
                    .optional()?,
                None => None,
            };
            if let Some(picking) = key
                .as_deref()
                .and_then(|k| k.strip_prefix("picking:"))
                .and_then(|p| p.parse::<i64>().ok())
                && !matches!(settle, Settle::Retry { .. })
            {
                conn.prepare_cached(
                    "UPDATE cloud_change SET handled = 1 WHERE picking_id = ?1 AND handled = 0",
                )?
                .execute([picking])?;
            }
            Ok(seqs.len() as i64)
        }
        PushCmd::Recover => {
            conn.prepare_cached(
                "UPDATE push_attempt SET ended_at = ?1, outcome = 'interrupted', class = 'ambiguous',
                 message = 'the appliance stopped during this attempt'
                 WHERE ended_at IS NULL",
            )?
            .execute([now_ms()])?;
            Ok(conn
                .prepare_cached(
                    "UPDATE journal SET state = 'pending', ambiguous = 1 WHERE state = 'in_flight'",
                )?
                .execute([])? as i64)
        }
        PushCmd::Resolve {
            conflict_id,
            action,
            note,
            by,
            recreate,
        } => resolve(
            conn,
            site,
            *conflict_id,
            *action,
            note,
            by,
            recreate.clone(),
        ),
    }
}

fn resolve(
    conn: &Connection,
    site: &str,
    conflict_id: i64,
    action: ResolveAction,
    note: &str,
    by: &str,
    recreate: Option<NewPicking>,
) -> Result<i64, StoreError> {
    let conflict = read::conflict(conn, conflict_id)?
        .ok_or_else(|| StoreError::NotFound(format!("conflict {conflict_id}")))?;
    let allowed = match conflict.status.as_str() {
        "open" => matches!(
            action,
            ResolveAction::Discard | ResolveAction::Retry | ResolveAction::Recreate
        ),
        "flagged" => matches!(action, ResolveAction::Acknowledge),
        _ => false,
    };
    if !allowed {
        return Err(StoreError::Conflict(format!(
            "conflict {conflict_id} is {}: {} is not possible (open conflicts take discard, retry or recreate; flagged ones acknowledge)",
            conflict.status,
            action.as_str()
        )));
    }
    if action == ResolveAction::Recreate && recreate.is_none() {
        return Err(StoreError::Conflict(format!(
            "conflict {conflict_id} holds nothing that can be re-created as a picking"
        )));
    }
    let op = Operation::Resolve(ResolveOp {
        conflict_id,
        action,
        note: note.to_owned(),
        entries: conflict.seqs.clone(),
        recreate: if action == ResolveAction::Recreate {
            recreate
        } else {
            None
        },
    });
    op.validate().map_err(StoreError::Invalid)?;
    let goes = op.goes_to_cloud();
    let appended = journal::append(
        conn,
        site,
        &NewEntry {
            id: None,
            device: "manager".into(),
            operator: Some(by.to_owned()),
            op,
        },
    )?;
    let now = now_ms();
    if !goes {
        // A local decision: settled as it is recorded.
        conn.prepare_cached("UPDATE journal SET state = 'applied', acked_at = ?2 WHERE seq = ?1")?
            .execute(params![appended.seq, now])?;
    }
    let held: Vec<i64> = {
        let mut v = Vec::new();
        for &seq in &conflict.seqs {
            let state: Option<String> = conn
                .prepare_cached("SELECT state FROM journal WHERE seq = ?1")?
                .query_row([seq], |r| r.get(0))
                .optional()?;
            if matches!(state.as_deref(), Some("conflict" | "rejected")) {
                v.push(seq);
            }
        }
        v
    };
    let text = format!("{} by {by}: {note}", action.as_str());
    match action {
        ResolveAction::Discard => discard(conn, &held, &text)?,
        ResolveAction::Recreate => discard(
            conn,
            &held,
            &format!("{text} (re-created as entry {})", appended.seq),
        )?,
        ResolveAction::Retry => {
            for &seq in &held {
                conn.prepare_cached(
                    "UPDATE journal SET state = 'pending', next_attempt_at = NULL, note = ?2 WHERE seq = ?1",
                )?
                .execute(params![seq, text])?;
            }
        }
        ResolveAction::Acknowledge => {}
    }
    conn.prepare_cached(
        "UPDATE conflict SET status = 'resolved', resolution = ?2, note = ?3, resolved_by = ?4, resolved_at = ?5,
         resolution_seq = ?6 WHERE id = ?1",
    )?
    .execute(params![conflict_id, action.as_str(), note, by, now, appended.seq])?;
    Ok(appended.seq)
}

/// Reads for the push and the conflicts inbox.
pub(super) mod read {
    use super::*;

    pub fn conflict(conn: &Connection, id: i64) -> Result<Option<ConflictRow>, StoreError> {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {CONFLICT_COLUMNS} FROM conflict WHERE id = ?1"
            ))?
            .query_row([id], ConflictRow::from_row)
            .optional()?)
    }

    /// Conflicts by status (`None`: every one), newest first.
    pub fn conflicts(
        conn: &Connection,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConflictRow>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CONFLICT_COLUMNS} FROM conflict WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![status, limit as i64], ConflictRow::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The inbox's conflicts, newest first: a walk down the key that stops at `limit` matches
    /// (conflicts are kept for good, but a site has thousands at most, not millions).
    pub fn conflict_page(
        conn: &Connection,
        q: &super::super::read::ConflictQuery,
    ) -> Result<Vec<ConflictRow>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CONFLICT_COLUMNS} FROM conflict
             WHERE (?1 IS NULL OR status = ?1 OR (?1 = 'open' AND status = 'flagged'))
               AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR causal_key = ?3)
               AND (?4 IS NULL OR id < ?4)
             ORDER BY id DESC LIMIT ?5"
        ))?;
        let rows = stmt.query_map(
            params![q.status, q.kind, q.causal_key, q.before_id, q.limit as i64],
            ConflictRow::from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Open and flagged conflicts, by kind.
    pub fn conflict_counts(conn: &Connection) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT status, kind, COUNT(*) FROM conflict WHERE status IN ('open', 'flagged') GROUP BY status, kind",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keys whose first open entry is pending, due, and not blocked by a held-back entry.
    ///
    /// The open keys are walked one seek at a time through `journal_open_by_key` (the next key
    /// after the last, then its first entry), so the cost follows the number of keys, not of
    /// entries: grouping every open entry by key took 0.7–0.9 s with 460,000 entries queued
    /// on 452 keys (a long outage at floor speed), this 6 ms. `INDEXED BY` because without
    /// statistics SQLite's planner walks `journal_by_state` for the next key instead (minutes).
    pub fn queue(conn: &Connection, now: i64, limit: usize) -> Result<PushQueue, StoreError> {
        let mut stmt = conn.prepare_cached(
            "WITH RECURSIVE open_key(key) AS (
                 SELECT MIN(causal_key) FROM journal INDEXED BY journal_open_by_key
                 WHERE state IN ('pending', 'in_flight')
                 UNION ALL
                 SELECT (SELECT MIN(causal_key) FROM journal INDEXED BY journal_open_by_key
                         WHERE state IN ('pending', 'in_flight') AND causal_key > open_key.key)
                 FROM open_key WHERE open_key.key IS NOT NULL)
             SELECT j.causal_key, j.seq, j.state, j.next_attempt_at FROM open_key
             JOIN journal j ON j.seq = (SELECT MIN(seq) FROM journal INDEXED BY journal_open_by_key
                                        WHERE state IN ('pending', 'in_flight')
                                          AND causal_key = open_key.key)
             WHERE j.causal_key NOT LIKE 'print:%'
               AND NOT EXISTS (SELECT 1 FROM journal b WHERE b.causal_key = j.causal_key
                               AND b.state IN ('conflict', 'rejected') AND b.seq < j.seq)
             ORDER BY COALESCE(j.next_attempt_at, 0), j.seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?;
        let mut out = PushQueue::default();
        for row in rows {
            let (causal_key, first_seq, state, next) = row?;
            if state != "pending" {
                continue;
            }
            match next {
                Some(at) if at > now => {
                    out.next_at = Some(out.next_at.map_or(at, |n| n.min(at)));
                }
                _ if out.ready.len() < limit => out.ready.push(ReadyKey {
                    causal_key,
                    first_seq,
                }),
                _ => {}
            }
        }
        Ok(out)
    }

    /// The open entries of a key, in order.
    pub fn batch(
        conn: &Connection,
        key: &str,
        max: usize,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM journal WHERE causal_key = ?1 AND state IN ('pending', 'in_flight') ORDER BY seq LIMIT ?2",
            JournalEntry::COLUMNS
        ))?;
        let rows = stmt.query_map(params![key, max as i64], JournalEntry::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The entries of a key that reached Odoo, in order.
    pub fn applied(conn: &Connection, key: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM journal WHERE causal_key = ?1 AND state = 'applied' ORDER BY seq",
            JournalEntry::COLUMNS
        ))?;
        let rows = stmt.query_map([key], JournalEntry::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An entry's push attempts, oldest first.
    pub fn attempts(conn: &Connection, seq: i64) -> Result<Vec<AttemptRow>, StoreError> {
        // The CLI reads without migrating: a database the appliance has not upgraded yet has
        // no attempts to show.
        let exists: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'push_attempt')",
            )?
            .query_row([], |r| r.get(0))?;
        if !exists {
            return Ok(Vec::new());
        }
        let mut stmt = conn.prepare_cached(
            "SELECT attempt, started_at, ended_at, outcome, call, class, message
             FROM push_attempt WHERE seq = ?1 ORDER BY attempt",
        )?;
        let rows = stmt.query_map([seq], |r| {
            Ok(AttemptRow {
                attempt: r.get(0)?,
                started_at: r.get(1)?,
                ended_at: r.get(2)?,
                outcome: r.get(3)?,
                call: r.get(4)?,
                class: r.get(5)?,
                message: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When a person last told an entry to retry (unix ms), and when it was first sent
    /// since (or at all, without such a decision).
    pub fn sent_since(
        conn: &Connection,
        seq: i64,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let decided: Option<i64> = conn
            .prepare_cached(
                "SELECT MAX(resolved_at) FROM conflict
                 WHERE resolution = 'retry' AND EXISTS (SELECT 1 FROM json_each(conflict.seqs) WHERE value = ?1)",
            )?
            .query_row([seq], |r| r.get(0))?;
        let first: Option<i64> = conn
            .prepare_cached(
                "SELECT MIN(started_at) FROM push_attempt WHERE seq = ?1 AND started_at >= ?2",
            )?
            .query_row(params![seq, decided.unwrap_or(i64::MIN)], |r| r.get(0))?;
        Ok((decided, first))
    }

    pub fn picking_products(conn: &Connection, picking: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT product_id FROM move WHERE picking_id = ?1 ORDER BY product_id",
        )?;
        let rows = stmt.query_map([picking], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The mirror's picking a re-creation names: (name, origin, partner).
    pub fn picking_context(
        conn: &Connection,
        id: i64,
    ) -> Result<Option<PickingContext>, StoreError> {
        Ok(conn
            .prepare_cached("SELECT name, origin, partner_id FROM picking WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(PickingContext {
                    name: r.get(0)?,
                    origin: r.get(1)?,
                    partner_id: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Entries by seq.
    pub fn entries(conn: &Connection, seqs: &[i64]) -> Result<Vec<JournalEntry>, StoreError> {
        let mut out = Vec::with_capacity(seqs.len());
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM journal WHERE seq = ?1",
            JournalEntry::COLUMNS
        ))?;
        for seq in seqs {
            if let Some(e) = stmt.query_row([seq], JournalEntry::from_row).optional()? {
                out.push(e);
            }
        }
        Ok(out)
    }
}
