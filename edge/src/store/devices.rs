//! Devices on the LAN: the registry (what the appliance knows of each scanner, printer and
//! broker link) and the print spool.
//!
//! A print job moves `queued → sending → sent`. A send that failed before a byte reached
//! the printer goes back to `queued` with a retry time; a send interrupted after bytes went
//! out (or found `sending` after a restart) is `unknown`: the label may or may not have
//! printed, so no automatic retry sends it again — a person reprints (a new job linked to the
//! first) or cancels it.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::read::Reader;
use super::{StoreError, now_ms};

/// One device as the registry keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegistryRow {
    pub id: String,
    /// `scanner`, `printer` or `broker`.
    pub kind: String,
    /// `serial`, `tcp-listen`, `tcp-connect`, `mqtt`, `tcp` (printers).
    pub transport: String,
    pub address: Option<String>,
    /// Named in the config (as opposed to seen on the broker).
    pub configured: bool,
    /// `online`, `offline`, `fault` or `unknown`.
    pub state: String,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub scans: i64,
    pub refused: i64,
    pub errors: i64,
    /// Kind-specific detail as JSON text (a printer's last status).
    pub detail: Option<String>,
}

/// A label job to spool.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPrintJob {
    pub printer: String,
    pub template: String,
    /// The label's data as JSON (what was asked for).
    pub label: String,
    /// What is sent to the printer.
    pub zpl: String,
    /// Who asked: `device:<id>`, `operator:<id>`, `cli:<user>`.
    pub requested_by: String,
    /// What it is for: `journal:<seq>`, `session:<id>`, `test`.
    pub source: Option<String>,
    /// The requesting device's idempotency key: the same key spools one job.
    pub request_key: Option<String>,
}

/// A spooled job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrintJobRow {
    pub id: i64,
    pub printer: String,
    pub template: String,
    pub label: String,
    #[serde(skip)]
    pub zpl: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub requested_by: String,
    pub source: Option<String>,
    pub reprint_of: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

/// How a send ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrintSettle {
    /// The printer took every byte.
    Sent,
    /// Nothing reached the printer: try again at `next_attempt_at`.
    Retry { error: String, next_attempt_at: i64 },
    /// Bytes may have reached the printer: held for a person.
    Unknown { error: String },
}

/// Device and spool commands for the writer.
#[derive(Clone, Debug)]
pub enum DeviceCmd {
    /// Writes registry rows as they stand in memory.
    Registry(Vec<RegistryRow>),
    /// Spools a job; answers its id.
    Enqueue(NewPrintJob),
    /// `queued → sending` (one attempt more); answers 1, or 0 if the job is no longer queued.
    Begin {
        id: i64,
    },
    Settle {
        id: i64,
        settle: PrintSettle,
    },
    /// On startup: jobs found `sending` have an unknown outcome.
    Recover,
    /// A new job with the same label (answers its id); an `unknown` original is closed.
    Reprint {
        id: i64,
        by: String,
    },
    /// `queued`/`unknown` → `cancelled`.
    Cancel {
        id: i64,
        by: String,
    },
    /// The next SSCC serial reference for a company prefix (answers it).
    NextSscc {
        prefix: String,
    },
}

pub(super) fn command(conn: &Connection, cmd: &DeviceCmd) -> Result<i64, StoreError> {
    let now = now_ms();
    match cmd {
        DeviceCmd::Registry(rows) => {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO device_registry (id, kind, transport, address, configured, state,
                    first_seen, last_seen, last_error, last_error_at, scans, refused, errors, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (id) DO UPDATE SET kind = ?2, transport = ?3, address = ?4,
                    configured = ?5, state = ?6, first_seen = ?7, last_seen = ?8, last_error = ?9,
                    last_error_at = ?10, scans = ?11, refused = ?12, errors = ?13, detail = ?14",
            )?;
            for r in rows {
                stmt.execute(params![
                    r.id,
                    r.kind,
                    r.transport,
                    r.address,
                    r.configured,
                    r.state,
                    r.first_seen,
                    r.last_seen,
                    r.last_error,
                    r.last_error_at,
                    r.scans,
                    r.refused,
                    r.errors,
                    r.detail
                ])?;
            }
            Ok(rows.len() as i64)
        }
        DeviceCmd::Enqueue(job) => enqueue(conn, job, None, now),
        DeviceCmd::Begin { id } => Ok(conn
            .prepare_cached(
                "UPDATE print_job SET state = 'sending', attempts = attempts + 1, updated_at = ?2
                 WHERE id = ?1 AND state = 'queued'",
            )?
            .execute(params![id, now])? as i64),
        DeviceCmd::Settle { id, settle } => {
            let n = match settle {
                PrintSettle::Sent => conn
                    .prepare_cached(
                        "UPDATE print_job SET state = 'sent', sent_at = ?2, updated_at = ?2,
                            last_error = NULL, next_attempt_at = NULL
                         WHERE id = ?1 AND state = 'sending'",
                    )?
                    .execute(params![id, now])?,
                PrintSettle::Retry {
                    error,
                    next_attempt_at,
                } => conn
                    .prepare_cached(
                        "UPDATE print_job SET state = 'queued', last_error = ?2,
                            next_attempt_at = ?3, updated_at = ?4
                         WHERE id = ?1 AND state = 'sending'",
                    )?
                    .execute(params![id, error, next_attempt_at, now])?,
                PrintSettle::Unknown { error } => conn
                    .prepare_cached(
                        "UPDATE print_job SET state = 'unknown', last_error = ?2, updated_at = ?3
                         WHERE id = ?1 AND state = 'sending'",
                    )?
                    .execute(params![id, error, now])?,
            };
            if n == 0 {
                return Err(StoreError::NotFound(format!("print job {id} being sent")));
            }
            Ok(*id)
        }
        DeviceCmd::Recover => Ok(conn
            .prepare_cached(
                "UPDATE print_job SET state = 'unknown', updated_at = ?1,
                    last_error = 'the appliance stopped while sending; the label may have printed'
                 WHERE state = 'sending'",
            )?
            .execute([now])? as i64),
        DeviceCmd::Reprint { id, by } => {
            let job =
                job(conn, *id)?.ok_or_else(|| StoreError::NotFound(format!("print job {id}")))?;
            if matches!(job.state.as_str(), "queued" | "sending") {
                return Err(StoreError::Conflict(format!(
                    "print job {id} is still {}; it prints once the printer takes it (cancel it first to replace it)",
                    job.state
                )));
            }
            let new = NewPrintJob {
                printer: job.printer,
                template: job.template,
                label: job.label,
                zpl: job.zpl,
                requested_by: by.clone(),
                source: job.source,
                request_key: None,
            };
            let new_id = enqueue(conn, &new, Some(*id), now)?;
            conn.prepare_cached(
                "UPDATE print_job SET state = 'cancelled', updated_at = ?2,
                    last_error = 'reprinted as job ' || ?3
                 WHERE id = ?1 AND state = 'unknown'",
            )?
            .execute(params![id, now, new_id])?;
            Ok(new_id)
        }
        DeviceCmd::Cancel { id, by } => {
            let n = conn
                .prepare_cached(
                    "UPDATE print_job SET state = 'cancelled', updated_at = ?2,
                        last_error = 'cancelled by ' || ?3
                     WHERE id = ?1 AND state IN ('queued', 'unknown')",
                )?
                .execute(params![id, now, by])?;
            if n == 0 {
                return match job(conn, *id)? {
                    None => Err(StoreError::NotFound(format!("print job {id}"))),
                    Some(j) => Err(StoreError::Conflict(format!(
                        "print job {id} is {}; only queued or unknown jobs can be cancelled",
                        j.state
                    ))),
                };
            }
            Ok(*id)
        }
        DeviceCmd::NextSscc { prefix } => {
            let next: i64 = conn
                .prepare_cached(
                    "INSERT INTO sscc_counter (prefix, next) VALUES (?1, 2)
                     ON CONFLICT (prefix) DO UPDATE SET next = next + 1
                     RETURNING next - 1",
                )?
                .query_row([prefix], |r| r.get(0))?;
            Ok(next)
        }
    }
}

pub(super) fn enqueue(
    conn: &Connection,
    job: &NewPrintJob,
    reprint_of: Option<i64>,
    now: i64,
) -> Result<i64, StoreError> {
    if let Some(key) = &job.request_key {
        let seen: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM print_job WHERE requested_by = ?1 AND request_key = ?2",
            )?
            .query_row(params![job.requested_by, key], |r| r.get(0))
            .optional()?;
        if let Some(id) = seen {
            return Ok(id);
        }
    }
    conn.prepare_cached(
        "INSERT INTO print_job (printer, template, label, zpl, requested_by, source, reprint_of,
            request_key, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![
        job.printer,
        job.template,
        job.label,
        job.zpl,
        job.requested_by,
        job.source,
        reprint_of,
        job.request_key,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

const JOB_COLUMNS: &str = "id, printer, template, label, zpl, state, attempts, last_error,
    next_attempt_at, requested_by, source, reprint_of, created_at, updated_at, sent_at";

fn job_row(r: &Row<'_>) -> rusqlite::Result<PrintJobRow> {
    Ok(PrintJobRow {
        id: r.get(0)?,
        printer: r.get(1)?,
        template: r.get(2)?,
        label: r.get(3)?,
        zpl: r.get(4)?,
        state: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        next_attempt_at: r.get(8)?,
        requested_by: r.get(9)?,
        source: r.get(10)?,
        reprint_of: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        sent_at: r.get(14)?,
    })
}

fn job(conn: &Connection, id: i64) -> Result<Option<PrintJobRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM print_job WHERE id = ?1"
        ))?
        .query_row([id], job_row)
        .optional()?)
}

/// Which jobs to list.
#[derive(Clone, Debug, Default)]
pub struct PrintJobFilter {
    pub printer: Option<String>,
    pub state: Option<String>,
    pub limit: usize,
}

impl Reader<'_> {
    /// Every device in the registry, by id.
    pub fn registry(&self) -> Result<Vec<RegistryRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, kind, transport, address, configured, state, first_seen, last_seen,
                last_error, last_error_at, scans, refused, errors, detail
             FROM device_registry ORDER BY kind, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RegistryRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                transport: r.get(2)?,
                address: r.get(3)?,
                configured: r.get(4)?,
                state: r.get(5)?,
                first_seen: r.get(6)?,
                last_seen: r.get(7)?,
                last_error: r.get(8)?,
                last_error_at: r.get(9)?,
                scans: r.get(10)?,
                refused: r.get(11)?,
                errors: r.get(12)?,
                detail: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn print_job(&self, id: i64) -> Result<Option<PrintJobRow>, StoreError> {
        job(self.conn(), id)
    }

    /// Jobs, newest first.
    pub fn print_jobs(&self, filter: &PrintJobFilter) -> Result<Vec<PrintJobRow>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM print_job
             WHERE (?1 IS NULL OR printer = ?1) AND (?2 IS NULL OR state = ?2)
             ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![filter.printer, filter.state, filter.limit.max(1) as i64],
            job_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The printer's next job to send: the oldest queued one, if it is due at `now`. Jobs of a
    /// printer go out in order, so a job waiting for its retry holds the ones behind it.
    pub fn next_print_job(
        &self,
        printer: &str,
        now: i64,
    ) -> Result<Option<PrintJobRow>, StoreError> {
        let first = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM print_job
                 WHERE printer = ?1 AND state IN ('queued', 'sending') ORDER BY id LIMIT 1"
            ))?
            .query_row([printer], job_row)
            .optional()?;
        Ok(first.filter(|j| j.state == "queued" && j.next_attempt_at.is_none_or(|t| t <= now)))
    }

    /// Jobs per printer and state.
    pub fn print_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT printer, state, count(*) FROM print_job
             WHERE state IN ('queued', 'sending', 'unknown') GROUP BY printer, state",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// What a delivery label needs of a picking: its name, origin and ship-to partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipping {
    pub picking: String,
    pub origin: Option<String>,
    /// `incoming`, `outgoing` or `internal`.
    pub kind: String,
    /// Name, street, street2, zip, city, country.
    pub partner: Option<[Option<String>; 6]>,
}

impl Reader<'_> {
    pub fn shipping(&self, picking_id: i64) -> Result<Option<Shipping>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT p.name, p.origin, t.code, r.id, r.name, r.street, r.street2, r.zip, r.city, r.country
                 FROM picking p JOIN picking_type t ON t.id = p.picking_type_id
                 LEFT JOIN partner r ON r.id = p.partner_id WHERE p.id = ?1",
            )?
            .query_row([picking_id], |r| {
                let partner: Option<i64> = r.get(3)?;
                Ok(Shipping {
                    picking: r.get(0)?,
                    origin: r.get(1)?,
                    kind: r.get(2)?,
                    partner: match partner {
                        None => None,
                        Some(_) => Some([
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                            r.get(9)?,
                        ]),
                    },
                })
            })
            .optional()?)
    }
}
