//! Read queries: the view, barcode lookup, the journal, and status figures.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::floor::{self, DeviceLogin, OperatorRow, SessionRow, StoredAnswer};
use super::hot::{Generation, HotRows};
use super::journal::{JournalEntry, OpState};
use super::push::{self, ConflictRow, PushQueue};
use super::{StoreError, schema};
use holdfast_sync::ops::Effect;

/// Read access to the store on one connection; with a step's effects pending (not written
/// yet), its sums count them too (see `pending`).
#[derive(Debug)]
pub struct Reader<'c> {
    conn: &'c Connection,
    pending: &'c [Effect],
    /// The store's hot rows, for readers of a running store (not for a bare connection).
    hot: Option<&'c HotRows>,
    /// The snapshot's `mirror_generation.n`, once read.
    generation: Cell<Option<i64>>,
}

/// What a barcode stands for.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BarcodeHit {
    Product {
        id: i64,
        name: String,
    },
    /// A packaging barcode: `qty` units of the product.
    Packaging {
        product_id: i64,
        qty: f64,
    },
    Location {
        id: i64,
        name: String,
    },
    Lot {
        id: i64,
        product_id: i64,
    },
    Package {
        id: i64,
    },
    Picking {
        id: i64,
        state: String,
    },
    PickingType {
        id: i64,
    },
}

/// Progress of one move of a picking, as the floor sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MoveProgress {
    pub move_id: i64,
    pub product_id: i64,
    pub demand: f64,
    pub picked: f64,
}

/// A lot as the view knows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LotInfo {
    /// `None` while the lot exists only on the floor (created by a receipt not yet confirmed).
    pub id: Option<i64>,
    pub expiration_date: Option<String>,
}

/// A location as the floor needs it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocationInfo {
    pub id: i64,
    /// The full path, e.g. `WH/Stock/A-01-02`.
    pub name: String,
    /// Odoo's usage: `internal`, `view`, `supplier`, `customer`, ...
    pub usage: String,
    pub barcode: Option<String>,
}

/// A product as the floor needs it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProductInfo {
    pub id: i64,
    pub name: String,
    pub default_code: Option<String>,
    pub barcode: Option<String>,
    /// `none`, `lot` or `serial`.
    pub tracking: String,
    pub uom: String,
    /// The unit's rounding, when Odoo gave it.
    pub uom_rounding: Option<f64>,
    pub active: bool,
}

/// Journal depth by state and the age of the oldest open entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QueueStats {
    pub by_state: BTreeMap<String, i64>,
    /// `created_at` (unix ms) of the oldest entry not yet applied or resolved.
    pub oldest_open_created_at: Option<i64>,
}

/// The appliance's persisted sync state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApplianceState {
    pub epoch: i64,
    pub mode: String,
    pub mode_since: i64,
    pub last_pull_at: Option<i64>,
    pub last_push_at: Option<i64>,
}

/// A model's pull cursor.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cursor {
    /// Newest `write_date` seen (Odoo's `YYYY-MM-DD HH:MM:SS`, UTC).
    pub write_date: Option<String>,
    pub full_at: Option<i64>,
    pub incremental_at: Option<i64>,
    /// An interrupted full pull resumes after this id...
    pub resume_after: Option<i64>,
    /// ...and its snapshot counts from this epoch (its first attempt's).
    pub resume_epoch: Option<i64>,
    /// (id, write_date) of records inside the overlap window, already pulled.
    pub window: Vec<(i64, String)>,
}

/// A cloud-side change to a picking the floor owns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CloudChange {
    pub id: i64,
    pub picking_id: i64,
    pub model: String,
    pub record_id: i64,
    pub summary: String,
    pub seen_at: i64,
}

/// A picking in the floor's list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PickingSummary {
    pub id: i64,
    pub name: String,
    pub state: String,
    /// `incoming`, `outgoing` or `internal`.
    pub kind: String,
    pub partner: Option<String>,
    pub origin: Option<String>,
    pub scheduled_date: Option<String>,
    pub demand: f64,
    pub picked: f64,
    /// Where the goods come from and go to (parents of the moves' locations).
    pub location_id: i64,
    pub location_dest_id: i64,
}

/// One move of a picking, for the line-by-line screen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MoveDetail {
    pub move_id: i64,
    pub product_id: i64,
    pub product: String,
    pub default_code: Option<String>,
    pub barcode: Option<String>,
    pub tracking: String,
    pub demand: f64,
    pub picked: f64,
    pub location_id: i64,
    pub location: Option<String>,
    pub location_dest_id: i64,
    /// Where Odoo reserved it: (location, lot, quantity) per move line.
    pub reserved: Vec<(String, Option<String>, f64)>,
    /// The product's unit rounding, when Odoo gave it (read with the move, so a quantity
    /// step needs no second read of the product).
    pub uom_rounding: Option<f64>,
}

/// A picking as the mirror alone has it (what Odoo last said, before the journal's picks):
/// what readers keep in memory between pulls (see `hot`).
#[derive(Debug)]
pub(super) struct PickingMirror {
    /// `picked` is the mirror's own (moves marked picked in Odoo).
    summary: PickingSummary,
    /// Not cancelled, by id; `picked` is the mirror's own.
    moves: Vec<MoveDetail>,
    /// Every move of the picking, cancelled ones too (their journal totals count in the
    /// picking's picked quantity, as in the list).
    move_ids: Vec<i64>,
}

/// Which journal entries to list.
#[derive(Clone, Debug, Default)]
pub struct JournalFilter {
    pub state: Option<OpState>,
    /// Only entries with a smaller sequence (paging backwards from the newest).
    pub before_seq: Option<i64>,
    /// Only entries recorded by this device.
    pub device: Option<String>,
    pub limit: usize,
}

/// Which journal entries the console's journal browser lists (every filter optional).
#[derive(Clone, Debug, Default)]
pub struct JournalQuery {
    pub state: Option<OpState>,
    pub kind: Option<String>,
    pub device: Option<String>,
    pub operator: Option<String>,
    /// `picking:<id>`, `stock:<product>:<location>`, ...
    pub causal_key: Option<String>,
    /// Recorded at or after (unix ms).
    pub from_ms: Option<i64>,
    /// Recorded before (unix ms).
    pub to_ms: Option<i64>,
    /// Only entries with a smaller sequence number (the keyset of the page before).
    pub before_seq: Option<i64>,
    pub limit: usize,
    /// How many sequence numbers the page looks at; `None`: [`JOURNAL_WINDOW`].
    pub window: Option<i64>,
}

/// One page of the journal browser, newest first.
#[derive(Clone, Debug, Default)]
pub struct JournalPage {
    pub entries: Vec<JournalEntry>,
    /// The lowest sequence number this page looked at: entries below it were not searched.
    pub searched_to: i64,
    /// Where the next (older) page starts (`before_seq`), when there is older history.
    pub next_before: Option<i64>,
}

/// How many journal entries one page of the browser looks at, at most. The journal keeps
/// every entry for good and only the delivery states are indexed, so a filter on device,
/// operator, picking or time walks the sequence numbers backwards; the window bounds that walk
/// (a page with few matches offers the next window) instead of an index per filter.
pub const JOURNAL_WINDOW: i64 = 20_000;

/// Which conflicts the inbox lists.
#[derive(Clone, Debug, Default)]
pub struct ConflictQuery {
    /// `open` (open and flagged: waiting for a person), `resolved`, or every one (`None`).
    pub status: Option<String>,
    pub kind: Option<String>,
    pub causal_key: Option<String>,
    /// Only conflicts with a smaller id (the keyset of the page before).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// Which audit records the audit page lists.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// `manager:anna`, `cli:root`, `token`; a bare name matches `manager:<name>` too.
    pub actor: Option<String>,
    /// An action or its prefix (`conflict.` matches every conflict decision).
    pub action: Option<String>,
    /// Exactly this target (`conflict:7`, `session:...`).
    pub target: Option<String>,
    /// Only records with a smaller sequence number (the keyset of the page before).
    pub before_seq: Option<i64>,
    /// Only records with this sequence number or a larger one (the bottom of a page's
    /// window, see [`AUDIT_WINDOW`]).
    pub from_seq: Option<i64>,
    pub limit: usize,
}

/// The table a mirrored model is kept in: the key of [`Reader::mirror_counts`].
pub fn mirror_table(model: holdfast_sync::records::Model) -> &'static str {
    super::mirror::table(model)
}

/// How many audit records one page of the console's audit trail looks at, at most: a filter
/// that matches nothing reads this many, not the whole trail.
pub const AUDIT_WINDOW: i64 = 10_000;

impl<'c> Reader<'c> {
    /// Keys ready to push now (see the push scheduler).
    pub fn push_queue(&self, now: i64, limit: usize) -> Result<PushQueue, StoreError> {
        push::read::queue(self.conn, now, limit)
    }

    /// The open entries of a causal key, in order.
    pub fn push_batch(&self, key: &str, max: usize) -> Result<Vec<JournalEntry>, StoreError> {
        push::read::batch(self.conn, key, max)
    }

    /// The entries of a causal key Odoo already holds, in order.
    pub fn push_applied(&self, key: &str) -> Result<Vec<JournalEntry>, StoreError> {
        push::read::applied(self.conn, key)
    }

    /// Journal entries by seq (missing ones are skipped).
    pub fn entries(&self, seqs: &[i64]) -> Result<Vec<JournalEntry>, StoreError> {
        push::read::entries(self.conn, seqs)
    }

    pub fn conflict(&self, id: i64) -> Result<Option<ConflictRow>, StoreError> {
        push::read::conflict(self.conn, id)
    }

    /// Conflicts with this status (every one when `None`), newest first.
    pub fn conflicts(
        &self,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConflictRow>, StoreError> {
        push::read::conflicts(self.conn, status, limit)
    }

    /// The inbox's conflicts, newest first.
    pub fn conflict_page(&self, q: &ConflictQuery) -> Result<Vec<ConflictRow>, StoreError> {
        push::read::conflict_page(self.conn, q)
    }

    /// (status, kind, count) of open and flagged conflicts.
    pub fn conflict_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        push::read::conflict_counts(self.conn)
    }

    pub fn new(conn: &'c Connection) -> Reader<'c> {
        Reader {
            conn,
            pending: &[],
            hot: None,
            generation: Cell::new(None),
        }
    }

    /// A reader of a running store: mirror lookups go through its hot rows.
    pub(super) fn hot(conn: &'c Connection, hot: &'c HotRows) -> Reader<'c> {
        Reader {
            hot: Some(hot),
            ..Reader::new(conn)
        }
    }

    /// This reader (same snapshot, same hot rows) with `pending` effects counted.
    pub(super) fn over<'p>(&'p self, pending: &'p [Effect]) -> Reader<'p> {
        Reader {
            conn: self.conn,
            pending,
            hot: self.hot,
            generation: self.generation.clone(),
        }
    }

    /// A mirror row from the hot rows if they hold it at this snapshot's generation, else
    /// `read` from SQLite (and kept). Only for what the mirror alone decides (see `hot`).
    fn through_hot<T: Clone>(
        &self,
        get: impl FnOnce(&Generation) -> Option<T>,
        keep: impl FnOnce(&mut Generation, T),
        read: impl FnOnce(&Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(hot) = self.hot else {
            return read(self);
        };
        let n = self.mirror_generation()?;
        if let Some(found) = hot.get(n, get) {
            return Ok(found);
        }
        let found = read(self)?;
        hot.keep(n, |g| keep(g, found.clone()));
        Ok(found)
    }

    /// The mirror's generation in this reader's snapshot (read once per reader).
    fn mirror_generation(&self) -> Result<i64, StoreError> {
        if let Some(n) = self.generation.get() {
            return Ok(n);
        }
        let n = self
            .conn
            .prepare_cached("SELECT n FROM mirror_generation WHERE id = 1")?
            .query_row([], |r| r.get(0))?;
        self.generation.set(Some(n));
        Ok(n)
    }

    /// Effects counted as if committed (none for a plain reader).
    pub(super) fn pending(&self) -> &[Effect] {
        self.pending
    }

    /// The connection, for the other store modules' reads.
    pub(super) fn conn(&self) -> &Connection {
        self.conn
    }

    /// On-hand quantity of a product (lot; `""` for none) at a location: mirror plus live
    /// effects of journal entries.
    pub fn on_hand(
        &self,
        product_id: i64,
        location_id: i64,
        lot_name: &str,
    ) -> Result<f64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE((SELECT SUM(quantity) FROM quant
                                  WHERE product_id = ?1 AND location_id = ?2 AND lot_name = ?3), 0)
                      + COALESCE((SELECT total FROM stock_total
                                  WHERE product_id = ?1 AND location_id = ?2 AND lot_name = ?3), 0)",
            )?
            .query_row(params![product_id, location_id, lot_name], |r| {
                r.get::<_, f64>(0)
            })?
            + self.pending_stock(product_id, location_id, lot_name))
    }

    /// Keys whose running total (`move_total`, `stock_total`) is not the sum of their live
    /// effects, or counts another number of them: always none, since triggers keep the totals
    /// in the effects' own transactions. For the store's tests and `holdfast db check`.
    pub fn effect_total_drift(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT target, product_id, location_id, lot_name, move_id, SUM(total), SUM(summed)
             FROM (SELECT 'move' AS target, 0 AS product_id, 0 AS location_id, '' AS lot_name,
                          move_id, total, 0.0 AS summed, effects, 0 AS counted FROM move_total
                   UNION ALL
                   SELECT 'stock', product_id, location_id, lot_name, 0, total, 0.0, effects, 0
                   FROM stock_total
                   UNION ALL
                   SELECT target, COALESCE(product_id, 0), COALESCE(location_id, 0), lot_name,
                          COALESCE(move_id, 0), 0.0, delta, 0, 1
                   FROM journal_effect WHERE live = 1 AND target IN ('stock', 'move'))
             GROUP BY 1, 2, 3, 4, 5
             HAVING abs(SUM(total) - SUM(summed)) > 1e-9 OR SUM(effects) != SUM(counted)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(format!(
                "{} product {} location {} lot {:?} move {}: total {} against a sum of {}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, f64>(5)?,
                r.get::<_, f64>(6)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// States whose kept count (`journal_count`) is not the number of entries in that state:
    /// always none, since triggers keep the counts in the entries' own transactions. For the
    /// store's tests and `holdfast db check`.
    pub fn journal_count_drift(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT state, SUM(kept), SUM(counted)
             FROM (SELECT state, n AS kept, 0 AS counted FROM journal_count
                   UNION ALL
                   SELECT state, 0, COUNT(*) FROM journal GROUP BY state)
             GROUP BY state
             HAVING SUM(kept) != SUM(counted)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(format!(
                "journal entries {}: counted {} against {} there",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Reserved quantity the mirror shows for a product (lot) at a location.
    pub fn reserved(
        &self,
        product_id: i64,
        location_id: i64,
        lot_name: &str,
    ) -> Result<f64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE(SUM(reserved), 0) FROM quant
                 WHERE product_id = ?1 AND location_id = ?2 AND lot_name = ?3",
            )?
            .query_row(params![product_id, location_id, lot_name], |r| r.get(0))?)
    }

    /// Picked quantity of one move: the mirror's (if Odoo marked it picked) plus live effects.
    pub fn move_picked(&self, move_id: i64) -> Result<f64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE((SELECT CASE WHEN picked THEN quantity ELSE 0 END FROM move WHERE id = ?1), 0)
                      + COALESCE((SELECT total FROM move_total WHERE move_id = ?1), 0)",
            )?
            .query_row([move_id], |r| r.get::<_, f64>(0))?
            + self.pending_move(move_id))
    }

    /// Demand and picked quantity of every move of a picking.
    pub fn picking_progress(&self, picking_id: i64) -> Result<Vec<MoveProgress>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, m.product_id, m.product_uom_qty,
                    (CASE WHEN m.picked THEN m.quantity ELSE 0 END)
                    + COALESCE((SELECT t.total FROM move_total t WHERE t.move_id = m.id), 0)
             FROM move m WHERE m.picking_id = ?1 ORDER BY m.id",
        )?;
        let rows = stmt.query_map([picking_id], |r| {
            Ok(MoveProgress {
                move_id: r.get(0)?,
                product_id: r.get(1)?,
                demand: r.get(2)?,
                picked: r.get::<_, f64>(3)? + self.pending_move(r.get(0)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Pickings of the site, open ones first (or only, with `open_only`), by schedule.
    pub fn pickings(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<PickingSummary>, StoreError> {
        self.picking_rows(open_only, limit)
    }

    /// The list's pickings (all but the journal's pending effects of a step).
    fn picking_rows(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<PickingSummary>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{} WHERE (?1 = 0 OR (p.state NOT IN ('done', 'cancel', 'draft')
                                AND NOT EXISTS (SELECT 1 FROM journal j
                                                WHERE j.causal_key = 'picking:' || p.id
                                                  AND j.kind = 'validate'
                                                  AND j.state NOT IN ('resolved', 'rejected'))))
             ORDER BY p.state IN ('done', 'cancel'), p.scheduled_date, p.id
             LIMIT ?2",
            summary_select(true)
        ))?;
        let rows = stmt.query_map(params![open_only, limit as i64], summary_row)?;
        let mut rows: Vec<PickingSummary> = rows.collect::<Result<_, _>>()?;
        for row in &mut rows {
            row.picked += self.pending_picking(row.id)?;
        }
        Ok(rows)
    }

    /// One picking with its moves, or `None`: the mirror's side from the hot rows, what the
    /// journal adds (each move's running total, the step's pending effects) from the snapshot.
    pub fn picking(
        &self,
        id: i64,
    ) -> Result<Option<(PickingSummary, Vec<MoveDetail>)>, StoreError> {
        let Some(mirror) = self.picking_mirror(id)? else {
            return Ok(None);
        };
        let mut summary = mirror.summary.clone();
        let mut moves = mirror.moves.clone();
        let mut total = self
            .conn
            .prepare_cached("SELECT total FROM move_total WHERE move_id = ?1")?;
        let mut journal = 0.0;
        for &move_id in &mirror.move_ids {
            let t: f64 = total
                .query_row([move_id], |r| r.get(0))
                .optional()?
                .unwrap_or(0.0);
            journal += t;
            if let Some(m) = moves.iter_mut().find(|m| m.move_id == move_id) {
                m.picked += t;
                m.picked += self.pending_move(move_id);
            }
        }
        summary.picked += journal;
        summary.picked += self.pending_moves(&mirror.move_ids);
        Ok(Some((summary, moves)))
    }

    /// A picking's name, state and kind (`incoming`, `outgoing`, `internal`): what a session
    /// header shows, without the journal's sums.
    pub fn picking_header(&self, id: i64) -> Result<Option<(String, String, String)>, StoreError> {
        Ok(self.picking_mirror(id)?.map(|p| {
            (
                p.summary.name.clone(),
                p.summary.state.clone(),
                p.summary.kind.clone(),
            )
        }))
    }

    fn picking_mirror(&self, id: i64) -> Result<Option<Arc<PickingMirror>>, StoreError> {
        self.through_hot(
            |g| g.pickings.get(&id),
            |g, p| g.pickings.keep(id, p),
            |r| r.picking_in_mirror(id),
        )
    }

    /// [`Reader::picking_mirror`] from the mirror's tables.
    fn picking_in_mirror(&self, id: i64) -> Result<Option<Arc<PickingMirror>>, StoreError> {
        let summary = self
            .conn
            .prepare_cached(&format!("{} WHERE p.id = ?1", summary_select(false)))?
            .query_row([id], summary_row)
            .optional()?;
        let Some(summary) = summary else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, m.product_id, pr.name, pr.default_code, pr.barcode, pr.tracking,
                    m.product_uom_qty, (CASE WHEN m.picked THEN m.quantity ELSE 0 END),
                    m.location_id, l.complete_name, m.location_dest_id, pr.uom_rounding
             FROM move m
             LEFT JOIN product pr ON pr.id = m.product_id
             LEFT JOIN location l ON l.id = m.location_id
             WHERE m.picking_id = ?1 AND m.state != 'cancel'
             ORDER BY m.id",
        )?;
        let mut moves: Vec<MoveDetail> = stmt
            .query_map([id], |r| {
                Ok(MoveDetail {
                    move_id: r.get(0)?,
                    product_id: r.get(1)?,
                    product: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    default_code: r.get(3)?,
                    barcode: r.get(4)?,
                    tracking: r
                        .get::<_, Option<String>>(5)?
                        .unwrap_or_else(|| "none".into()),
                    demand: r.get(6)?,
                    picked: r.get(7)?,
                    location_id: r.get(8)?,
                    location: r.get(9)?,
                    location_dest_id: r.get(10)?,
                    reserved: Vec::new(),
                    uom_rounding: r.get(11)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut lines = self.conn.prepare_cached(
            // Odoo leaves `lot_name` empty on a line reserved on an existing lot (only
            // `lot_id` is set); `lot_name` names a lot still to be created (receipts).
            "SELECT COALESCE(l.complete_name, ''), COALESCE(lot.name, NULLIF(ml.lot_name, '')),
                    ml.quantity
             FROM move_line ml LEFT JOIN location l ON l.id = ml.location_id
                  LEFT JOIN lot ON lot.id = ml.lot_id
             WHERE ml.move_id = ?1 ORDER BY ml.id",
        )?;
        for m in &mut moves {
            m.reserved = lines
                .query_map([m.move_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
        }
        let move_ids = self
            .conn
            .prepare_cached("SELECT id FROM move WHERE picking_id = ?1 ORDER BY id")?
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(Arc::new(PickingMirror {
            summary,
            moves,
            move_ids,
        })))
    }

    /// Whether a lot exists for a product, in the mirror or created on the floor.
    pub fn lot(&self, product_id: i64, name: &str) -> Result<Option<LotInfo>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, expiration_date FROM lot WHERE name = ?2 AND product_id = ?1
                 UNION ALL
                 SELECT NULL, expiration_date FROM journal_effect
                 WHERE live = 1 AND target = 'lot' AND product_id = ?1 AND lot_name = ?2
                 LIMIT 1",
            )?
            .query_row(params![product_id, name], |r| {
                Ok(LotInfo {
                    id: r.get(0)?,
                    expiration_date: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// Everything a scanned code can stand for, in one statement: each branch is a probe of
    /// its own index (product by barcode, then by internal reference when it has no such barcode;
    /// packaging, location, lot, package, picking, picking type).
    pub fn lookup_barcode(&self, code: &str) -> Result<Vec<BarcodeHit>, StoreError> {
        self.through_hot(
            |g| g.barcodes.get(code),
            |g, hits| g.barcodes.keep(code.to_owned(), hits),
            |r| r.lookup_barcode_in_mirror(code),
        )
    }

    /// [`Reader::lookup_barcode`] from the mirror's tables.
    fn lookup_barcode_in_mirror(&self, code: &str) -> Result<Vec<BarcodeHit>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT 'product', id, NULL, name, NULL FROM product WHERE barcode = ?1 AND active
             UNION ALL SELECT 'product', id, NULL, name, NULL FROM product
                 WHERE default_code = ?1 AND active AND (barcode IS NULL OR barcode != ?1)
             UNION ALL SELECT 'packaging', product_id, NULL, NULL, qty FROM packaging WHERE barcode = ?1
             UNION ALL SELECT 'location', id, NULL, complete_name, NULL FROM location WHERE barcode = ?1 AND active
             UNION ALL SELECT 'lot', id, product_id, NULL, NULL FROM lot WHERE name = ?1
             UNION ALL SELECT 'package', id, NULL, NULL, NULL FROM package WHERE name = ?1
             UNION ALL SELECT 'picking', id, NULL, state, NULL FROM picking WHERE name = ?1
             UNION ALL SELECT 'picking_type', id, NULL, NULL, NULL FROM picking_type WHERE barcode = ?1",
        )?;
        let rows = stmt.query_map([code], |r| {
            let kind: String = r.get(0)?;
            let id: i64 = r.get(1)?;
            Ok(match kind.as_str() {
                "product" => BarcodeHit::Product {
                    id,
                    name: r.get(3)?,
                },
                "packaging" => BarcodeHit::Packaging {
                    product_id: id,
                    qty: r.get(4)?,
                },
                "location" => BarcodeHit::Location {
                    id,
                    name: r.get(3)?,
                },
                "lot" => BarcodeHit::Lot {
                    id,
                    product_id: r.get(2)?,
                },
                "package" => BarcodeHit::Package { id },
                "picking" => BarcodeHit::Picking {
                    id,
                    state: r.get(3)?,
                },
                _ => BarcodeHit::PickingType { id },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Journal entries, newest first.
    pub fn journal(&self, filter: &JournalFilter) -> Result<Vec<JournalEntry>, StoreError> {
        let sql = format!(
            "SELECT {} FROM journal
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR seq < ?2)
               AND (?4 IS NULL OR device = ?4)
             ORDER BY seq DESC LIMIT ?3",
            JournalEntry::COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                filter.state.map(|s| s.as_str()),
                filter.before_seq,
                filter.limit as i64,
                filter.device
            ],
            JournalEntry::from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A page of the journal browser: the filters within at most [`JOURNAL_WINDOW`] sequence
    /// numbers below `before_seq`, newest first (a range of the primary key, never the whole
    /// journal).
    pub fn journal_page(&self, q: &JournalQuery) -> Result<JournalPage, StoreError> {
        let (lowest, highest): (Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached("SELECT MIN(seq), MAX(seq) FROM journal")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let (Some(lowest), Some(highest)) = (lowest, highest) else {
            return Ok(JournalPage::default());
        };
        // Any `before` a URL brings (negative, huge) lands within the journal's own range.
        let top = q
            .before_seq
            .unwrap_or(highest + 1)
            .clamp(lowest, highest + 1);
        let bottom = top
            .saturating_sub(q.window.unwrap_or(JOURNAL_WINDOW).max(1))
            .max(lowest);
        let sql = format!(
            "SELECT {} FROM journal
             WHERE seq < ?1 AND seq >= ?2
               AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR kind = ?4)
               AND (?5 IS NULL OR device = ?5) AND (?6 IS NULL OR operator = ?6)
               AND (?7 IS NULL OR causal_key = ?7)
               AND (?8 IS NULL OR created_at >= ?8) AND (?9 IS NULL OR created_at < ?9)
             ORDER BY seq DESC LIMIT ?10",
            JournalEntry::COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                top,
                bottom,
                q.state.map(|s| s.as_str()),
                q.kind,
                q.device,
                q.operator,
                q.causal_key,
                q.from_ms,
                q.to_ms,
                q.limit as i64
            ],
            JournalEntry::from_row,
        )?;
        let entries: Vec<JournalEntry> = rows.collect::<Result<_, _>>()?;
        let full = entries.len() >= q.limit;
        let searched_to = if full {
            entries.last().map_or(bottom, |e| e.seq)
        } else {
            bottom
        };
        // Older history exists below the page; entries are recorded in sequence order, so
        // once the bottom is older than `from` nothing older can match.
        let older = searched_to > lowest
            && match q.from_ms {
                None => true,
                Some(from) => {
                    let at: Option<i64> = self
                        .conn
                        .prepare_cached("SELECT created_at FROM journal WHERE seq = ?1")?
                        .query_row([searched_to], |r| r.get(0))
                        .optional()?;
                    at.is_none_or(|at| at >= from)
                }
            };
        Ok(JournalPage {
            entries,
            searched_to,
            next_before: older.then_some(searched_to),
        })
    }

    /// The conflicts that hold an entry back or were decided by it, by id.
    pub fn conflicts_of_entry(&self, seq: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM conflict
             WHERE resolution_seq = ?1 OR EXISTS (SELECT 1 FROM json_each(conflict.seqs) WHERE value = ?1)
             ORDER BY id",
        )?;
        let rows = stmt.query_map([seq], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A mirrored picking's id by its name (`WH/OUT/00012`).
    pub fn picking_by_name(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM picking WHERE name = ?1 ORDER BY id DESC LIMIT 1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }

    /// One journal entry by sequence number or id.
    pub fn journal_entry(&self, key: &str) -> Result<Option<JournalEntry>, StoreError> {
        let sql = format!(
            "SELECT {} FROM journal WHERE id = ?1 OR (?2 IS NOT NULL AND seq = ?2)",
            JournalEntry::COLUMNS
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(
                params![key, key.parse::<i64>().ok()],
                JournalEntry::from_row,
            )
            .optional()?)
    }

    /// Effect rows of one entry (target, delta, live), for inspection.
    pub fn effects(&self, seq: i64) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT target, product_id, location_id, lot_name, move_id, delta, live
             FROM journal_effect WHERE seq = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([seq], |r| {
            Ok(serde_json::json!({
                "target": r.get::<_, String>(0)?,
                "product_id": r.get::<_, Option<i64>>(1)?,
                "location_id": r.get::<_, Option<i64>>(2)?,
                "lot_name": r.get::<_, String>(3)?,
                "move_id": r.get::<_, Option<i64>>(4)?,
                "delta": r.get::<_, f64>(5)?,
                "live": r.get::<_, bool>(6)?,
            }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Journal depth by state.
    pub fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let mut stats = QueueStats::default();
        for state in OpState::ALL {
            stats.by_state.insert(state.as_str().to_owned(), 0);
        }
        // Kept by triggers (migration 18): a few rows, however long the journal.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, n FROM journal_count")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            stats.by_state.insert(state, n);
        }
        // The first open entry of each state through `journal_by_state` (one seek each), and
        // of those the earliest appended: the entry that has waited longest.
        stats.oldest_open_created_at = self
            .conn
            .prepare_cached(
                "SELECT created_at FROM journal WHERE seq = (
                     SELECT MIN(first) FROM (
                         SELECT MIN(seq) AS first FROM journal WHERE state = 'pending'
                         UNION ALL SELECT MIN(seq) FROM journal WHERE state = 'in_flight'
                         UNION ALL SELECT MIN(seq) FROM journal WHERE state = 'conflict'
                         UNION ALL SELECT MIN(seq) FROM journal WHERE state = 'rejected'))",
            )?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(stats)
    }

    pub fn appliance_state(&self) -> Result<ApplianceState, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT epoch, mode, mode_since, last_pull_at, last_push_at FROM appliance_state WHERE id = 1",
            )?
            .query_row([], |r| {
                Ok(ApplianceState {
                    epoch: r.get(0)?,
                    mode: r.get(1)?,
                    mode_since: r.get(2)?,
                    last_pull_at: r.get(3)?,
                    last_push_at: r.get(4)?,
                })
            })?)
    }

    /// Rows per mirrored table.
    ///
    /// Counting walks each table (500,000 quants at a large site), and status, metrics and
    /// telemetry ask every few seconds: the counts are kept with the hot rows, which hold
    /// them until a pull writes the mirror.
    pub fn mirror_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        self.through_hot(
            |g| g.mirror_counts.clone(),
            |g, counts| g.mirror_counts = Some(counts),
            |r| {
                let mut out = BTreeMap::new();
                for &model in holdfast_sync::records::Model::ALL {
                    let table = super::mirror::table(model);
                    let n: i64 =
                        r.conn
                            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                                row.get(0)
                            })?;
                    out.insert(table.to_owned(), n);
                }
                Ok(out)
            },
        )
    }

    /// Every id the mirror holds for a model (a pull compares them with Odoo's to find
    /// deletions).
    pub fn mirror_ids(&self, model: holdfast_sync::records::Model) -> Result<Vec<i64>, StoreError> {
        let sql = format!("SELECT id FROM {} ORDER BY id", super::mirror::table(model));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ids of `model` that earlier pulls held back and that the pull of `epoch` would now
    /// write: the pull reads them again by id (their `write_date` may be behind the cursor).
    pub fn settled_held_back(
        &self,
        model: holdfast_sync::records::Model,
        epoch: super::Epoch,
    ) -> Result<Vec<i64>, StoreError> {
        super::mirror::settled_held_back(self.conn, model, epoch)
    }

    /// A model's pull cursor (default when never pulled).
    pub fn cursor(&self, model: holdfast_sync::records::Model) -> Result<Cursor, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT write_date, full_at, incremental_at, resume_after, resume_epoch, window
                 FROM sync_cursor WHERE model = ?1",
            )?
            .query_row([model.odoo_name()], |r| {
                Ok(Cursor {
                    write_date: r.get(0)?,
                    full_at: r.get(1)?,
                    incremental_at: r.get(2)?,
                    resume_after: r.get(3)?,
                    resume_epoch: r.get(4)?,
                    // Unreadable windows only cost a re-read: treat them as empty.
                    window: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|w| serde_json::from_str(&w).ok())
                        .unwrap_or_default(),
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// Cloud-side changes to owned pickings not yet handled, oldest first.
    pub fn cloud_changes(&self) -> Result<Vec<CloudChange>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, picking_id, model, record_id, summary, seen_at FROM cloud_change
             WHERE handled = 0 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CloudChange {
                id: r.get(0)?,
                picking_id: r.get(1)?,
                model: r.get(2)?,
                record_id: r.get(3)?,
                summary: r.get(4)?,
                seen_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every change the pulls saw on one owned picking, oldest first (a conflict shows them).
    pub fn cloud_changes_of(&self, picking_id: i64) -> Result<Vec<CloudChange>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, picking_id, model, record_id, summary, seen_at FROM cloud_change
             WHERE picking_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([picking_id], |r| {
            Ok(CloudChange {
                id: r.get(0)?,
                picking_id: r.get(1)?,
                model: r.get(2)?,
                record_id: r.get(3)?,
                summary: r.get(4)?,
                seen_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many cloud-side changes to owned pickings wait for reconciliation.
    pub fn cloud_changes_open(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM cloud_change WHERE handled = 0")?
            .query_row([], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// Ids of quants the mirror holds at a location.
    pub fn quant_ids_at(&self, location_id: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM quant WHERE location_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([location_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Internal locations of a warehouse, by id (quant reconciliation walks them in turn).
    pub fn internal_locations(&self, warehouse_id: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM location WHERE warehouse_id = ?1 AND usage = 'internal' ORDER BY id",
        )?;
        let rows = stmt.query_map([warehouse_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Size of the database in bytes (pages in use and free).
    pub fn db_size(&self) -> Result<u64, StoreError> {
        let pages: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))?;
        let size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok((pages * size) as u64)
    }

    /// `PRAGMA integrity_check` and a foreign key check; empty when all is well.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let line = row?;
            if line != "ok" {
                problems.push(line);
            }
        }
        let mut stmt = self.conn.prepare("PRAGMA foreign_key_check")?;
        for row in stmt.query_map([], |r| {
            Ok(format!(
                "foreign key violation in {} row {}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?
            ))
        })? {
            problems.push(row?);
        }
        // A database from before the running totals (version 12) has none to check.
        let totals: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'move_total')",
            [],
            |r| r.get(0),
        )?;
        if totals {
            problems.extend(self.effect_total_drift()?);
        }
        // Nor, before version 18, the counts by state.
        let counts: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal_count')",
            [],
            |r| r.get(0),
        )?;
        if counts {
            problems.extend(self.journal_count_drift()?);
        }
        Ok(problems)
    }

    /// Schema version of the database.
    pub fn schema_version(&self) -> Result<(i64, i64), StoreError> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok((found, schema::SCHEMA_VERSION))
    }

    /// A location of the mirror.
    pub fn location(&self, id: i64) -> Result<Option<LocationInfo>, StoreError> {
        self.through_hot(
            |g| g.locations.get(&id),
            |g, l| g.locations.keep(id, l),
            |r| r.location_in_mirror(id),
        )
    }

    fn location_in_mirror(&self, id: i64) -> Result<Option<LocationInfo>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, complete_name, usage, barcode FROM location WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(LocationInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    usage: r.get(2)?,
                    barcode: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// Whether `location_id` is `ancestor_id` or lies below it.
    pub fn location_within(&self, location_id: i64, ancestor_id: i64) -> Result<bool, StoreError> {
        self.through_hot(
            |g| g.within.get(&(location_id, ancestor_id)),
            |g, within| g.within.keep((location_id, ancestor_id), within),
            |r| r.location_within_in_mirror(location_id, ancestor_id),
        )
    }

    fn location_within_in_mirror(
        &self,
        location_id: i64,
        ancestor_id: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "WITH RECURSIVE up(id, depth) AS (
                     SELECT ?1, 0
                     UNION ALL
                     SELECT l.parent_id, up.depth + 1 FROM location l JOIN up ON l.id = up.id
                     WHERE l.parent_id IS NOT NULL AND up.depth < 32
                 )
                 SELECT EXISTS (SELECT 1 FROM up WHERE id = ?2)",
            )?
            .query_row(params![location_id, ancestor_id], |r| r.get(0))?)
    }

    /// A product of the mirror.
    pub fn product(&self, id: i64) -> Result<Option<ProductInfo>, StoreError> {
        self.through_hot(
            |g| g.products.get(&id),
            |g, p| g.products.keep(id, p),
            |r| r.product_in_mirror(id),
        )
    }

    fn product_in_mirror(&self, id: i64) -> Result<Option<ProductInfo>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, name, default_code, barcode, tracking, uom, active, uom_rounding FROM product WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(ProductInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    default_code: r.get(2)?,
                    barcode: r.get(3)?,
                    tracking: r.get(4)?,
                    uom: r.get(5)?,
                    active: r.get(6)?,
                    uom_rounding: r.get(7)?,
                })
            })
            .optional()?)
    }

    /// On-hand quantity of a product's lot (serial) across the site's internal locations.
    pub fn lot_on_hand(&self, product_id: i64, lot_name: &str) -> Result<f64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE((SELECT SUM(q.quantity) FROM quant q JOIN location l ON l.id = q.location_id
                                  WHERE q.product_id = ?1 AND q.lot_name = ?2 AND l.usage = 'internal'), 0)
                      + COALESCE((SELECT SUM(t.total) FROM stock_total t JOIN location l ON l.id = t.location_id
                                  WHERE t.product_id = ?1 AND t.lot_name = ?2 AND l.usage = 'internal'), 0)",
            )?
            .query_row(params![product_id, lot_name], |r| r.get::<_, f64>(0))?
            + self.pending_lot(product_id, lot_name)?)
    }

    /// What a package holds in the mirror: (product, location, lot name, quantity) per quant.
    pub fn package_contents(
        &self,
        package_id: i64,
    ) -> Result<Vec<(i64, i64, String, f64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT product_id, location_id, lot_name, quantity FROM quant
             WHERE package_id = ?1 AND quantity > 0 ORDER BY id",
        )?;
        let rows = stmt.query_map([package_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Move lines Odoo reserved for a move: (location, lot name, quantity).
    pub fn reservations(&self, move_id: i64) -> Result<Vec<(i64, String, f64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            // The lot's name through `lot_id` (see `picking`: Odoo leaves `lot_name` empty
            // on lines reserved on existing lots).
            "SELECT ml.location_id, COALESCE(lot.name, ml.lot_name, ''), ml.quantity
             FROM move_line ml LEFT JOIN lot ON lot.id = ml.lot_id
             WHERE ml.move_id = ?1 ORDER BY ml.id",
        )?;
        let rows = stmt.query_map([move_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (picking type, source, destination) of a mirrored picking.
    pub fn picking_route(&self, id: i64) -> Result<Option<(i64, i64, i64)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT picking_type_id, location_id, location_dest_id FROM picking WHERE id = ?1",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?)
    }

    /// Whether the floor has validated this picking (a validate entry not resolved or
    /// rejected): it must not be picked or validated again while the mirror says otherwise.
    pub fn validated_on_floor(&self, picking_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM journal
                                WHERE causal_key = 'picking:' || ?1 AND kind = 'validate'
                                  AND state NOT IN ('resolved', 'rejected'))",
            )?
            .query_row([picking_id], |r| r.get(0))?)
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        floor::read::session(self.conn, id)
    }

    /// Open sessions, of one operator or of everyone.
    pub fn open_sessions(&self, operator: Option<&str>) -> Result<Vec<SessionRow>, StoreError> {
        floor::read::open_sessions(self.conn, operator)
    }

    /// The open session holding a picking, if any.
    pub fn open_session_of_picking(
        &self,
        picking_id: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        floor::read::open_session_of_picking(self.conn, picking_id)
    }

    pub fn device_login(&self, device: &str) -> Result<Option<DeviceLogin>, StoreError> {
        floor::read::device_login(self.conn, device)
    }

    /// The answer already given to a device's idempotency key.
    pub fn stored_answer(
        &self,
        device: &str,
        key: &str,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        floor::read::answer(self.conn, device, key)
    }

    /// The issued, unrevoked device holding a token with this SHA-256 digest (hex).
    pub fn device_by_token(&self, sha256_hex: &str) -> Result<Option<String>, StoreError> {
        floor::read::device_by_token(self.conn, sha256_hex)
    }

    /// Issued devices: (id, issued at, revoked at).
    pub fn issued_devices(&self) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
        floor::read::devices(self.conn)
    }

    pub fn operator(&self, id: &str) -> Result<Option<OperatorRow>, StoreError> {
        floor::read::operator(self.conn, id)
    }

    pub fn operator_by_badge(&self, badge: &str) -> Result<Option<OperatorRow>, StoreError> {
        floor::read::operator_by_badge(self.conn, badge)
    }

    pub fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        floor::read::operators(self.conn)
    }
}

/// A picking summary's statement, up to its `WHERE`: the mirror's own picked quantity, plus
/// with `journal` what the running totals of its moves add.
fn summary_select(journal: bool) -> String {
    format!(
        "SELECT p.id, p.name, p.state, t.code, pa.name, p.origin, p.scheduled_date,
                COALESCE((SELECT SUM(m.product_uom_qty) FROM move m WHERE m.picking_id = p.id AND m.state != 'cancel'), 0),
                COALESCE((SELECT SUM(CASE WHEN m.picked THEN m.quantity ELSE 0 END) FROM move m WHERE m.picking_id = p.id), 0)
                {}
                , p.location_id, p.location_dest_id
         FROM picking p
         JOIN picking_type t ON t.id = p.picking_type_id
         LEFT JOIN partner pa ON pa.id = p.partner_id",
        if journal {
            // CROSS JOIN keeps the picking's moves outermost: the other order reads the
            // totals of every move on the site.
            "+ COALESCE((SELECT SUM(t.total) FROM move m CROSS JOIN move_total t
                            ON t.move_id = m.id
                          WHERE m.picking_id = p.id), 0)"
        } else {
            ""
        }
    )
}

fn summary_row(r: &Row<'_>) -> rusqlite::Result<PickingSummary> {
    Ok(PickingSummary {
        id: r.get(0)?,
        name: r.get(1)?,
        state: r.get(2)?,
        kind: r.get(3)?,
        partner: r.get(4)?,
        origin: r.get(5)?,
        scheduled_date: r.get(6)?,
        demand: r.get(7)?,
        picked: r.get(8)?,
        location_id: r.get(9)?,
        location_dest_id: r.get(10)?,
    })
}
