//! Mirror rows: writing pulled records under the rebase rules (see the parent module).

use holdfast_sync::records::{Model, Record};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{Epoch, StoreError, now_ms};

/// One page of a pull.
#[derive(Clone, Debug, Default)]
pub struct MirrorBatch {
    /// The epoch returned by `begin_pull` before the page was read.
    pub epoch: Option<Epoch>,
    pub upserts: Vec<Record>,
    /// Records that no longer exist in Odoo (or left the site's scope).
    pub deletes: Vec<(Model, i64)>,
}

/// What a page did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorOutcome {
    pub upserted: u64,
    pub deleted: u64,
    /// Rows kept as they were because an entry touching them is unconfirmed.
    pub held_back: u64,
    pub folded: u64,
    /// Cloud-side changes recorded on pickings the floor owns.
    pub changes: u64,
}

/// The view key an effect and a mirror row share.
#[derive(Clone, Debug, PartialEq)]
enum EffectKey {
    Stock {
        product_id: i64,
        location_id: i64,
        lot_name: String,
    },
    Move(i64),
    Lot {
        product_id: i64,
        lot_name: String,
    },
}

impl EffectKey {
    fn condition(&self) -> &'static str {
        match self {
            EffectKey::Stock { .. } => {
                "e.target = 'stock' AND e.product_id = ?1 AND e.location_id = ?2 AND e.lot_name = ?3"
            }
            EffectKey::Move(_) => "e.target = 'move' AND e.move_id = ?1",
            EffectKey::Lot { .. } => "e.target = 'lot' AND e.product_id = ?1 AND e.lot_name = ?2",
        }
    }

    fn params(&self) -> Vec<Value> {
        match self {
            EffectKey::Stock {
                product_id,
                location_id,
                lot_name,
            } => vec![
                Value::Integer(*product_id),
                Value::Integer(*location_id),
                Value::Text(lot_name.clone()),
            ],
            EffectKey::Move(id) => vec![Value::Integer(*id)],
            EffectKey::Lot {
                product_id,
                lot_name,
            } => vec![Value::Integer(*product_id), Value::Text(lot_name.clone())],
        }
    }

    /// The key as `held_back` columns: (target, product, location, lot name, move).
    fn columns(
        &self,
    ) -> (
        &'static str,
        Option<i64>,
        Option<i64>,
        Option<&str>,
        Option<i64>,
    ) {
        match self {
            EffectKey::Stock {
                product_id,
                location_id,
                lot_name,
            } => (
                "stock",
                Some(*product_id),
                Some(*location_id),
                Some(lot_name),
                None,
            ),
            EffectKey::Move(id) => ("move", None, None, None, Some(*id)),
            EffectKey::Lot {
                product_id,
                lot_name,
            } => ("lot", Some(*product_id), None, Some(lot_name), None),
        }
    }

    /// The live effects on this key that a pull can hold back or fold. `e.pushed = 1` follows
    /// from every state the two questions below ask about (schema version 15); it is written
    /// out so that SQLite reads the partial indexes `effect_stock` and `effect_move`, which
    /// hold only those effects, instead of every unfolded effect on the key.
    fn pulled_effects(&self) -> String {
        format!("e.live = 1 AND e.pushed = 1 AND {}", self.condition())
    }

    fn held_sql(&self) -> String {
        format!(
            "SELECT EXISTS (SELECT 1 FROM journal_effect e JOIN journal j ON j.seq = e.seq
             WHERE {} AND (j.state = 'in_flight' OR j.ambiguous = 1 OR (j.state = 'applied' AND j.acked_epoch >= ?{})))",
            self.pulled_effects(),
            self.params().len() + 1
        )
    }

    fn fold_sql(&self) -> String {
        format!(
            "UPDATE journal_effect AS e SET live = 0 WHERE {} AND EXISTS
             (SELECT 1 FROM journal j WHERE j.seq = e.seq AND j.state = 'applied' AND j.acked_epoch < ?{})",
            self.pulled_effects(),
            self.params().len() + 1
        )
    }

    /// Whether an entry touching this key is unconfirmed relative to the pull of `epoch`.
    fn held(&self, conn: &Connection, epoch: Epoch) -> Result<bool, StoreError> {
        let mut values = self.params();
        values.push(Value::Integer(epoch.0));
        Ok(conn
            .prepare_cached(&self.held_sql())?
            .query_row(params_from_iter(values), |r| r.get(0))?)
    }

    /// Folds the effects on this key of entries the pull of `epoch` includes.
    fn fold(&self, conn: &Connection, epoch: Epoch) -> Result<u64, StoreError> {
        let mut values = self.params();
        values.push(Value::Integer(epoch.0));
        Ok(conn
            .prepare_cached(&self.fold_sql())?
            .execute(params_from_iter(values))? as u64)
    }
}

fn record_key(record: &Record) -> Option<EffectKey> {
    match record {
        Record::Quant(q) => Some(EffectKey::Stock {
            product_id: q.product_id.0,
            location_id: q.location_id.0,
            lot_name: q.lot_name.clone().unwrap_or_default(),
        }),
        Record::Move(m) => Some(EffectKey::Move(m.id.0)),
        Record::Lot(l) => Some(EffectKey::Lot {
            product_id: l.product_id.0,
            lot_name: l.name.clone(),
        }),
        _ => None,
    }
}

/// The view key of a mirror row about to be deleted.
fn stored_key(conn: &Connection, model: Model, id: i64) -> Result<Option<EffectKey>, StoreError> {
    Ok(match model {
        Model::Quant => conn
            .prepare_cached("SELECT product_id, location_id, lot_name FROM quant WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(EffectKey::Stock {
                    product_id: r.get(0)?,
                    location_id: r.get(1)?,
                    lot_name: r.get(2)?,
                })
            })
            .optional()?,
        Model::Move => Some(EffectKey::Move(id)),
        Model::Lot => conn
            .prepare_cached("SELECT product_id, name FROM lot WHERE id = ?1")?
            .query_row([id], |r| {
                Ok(EffectKey::Lot {
                    product_id: r.get(0)?,
                    lot_name: r.get(1)?,
                })
            })
            .optional()?,
        _ => None,
    })
}

pub(super) fn table(model: Model) -> &'static str {
    match model {
        Model::Company => "company",
        Model::Warehouse => "warehouse",
        Model::Partner => "partner",
        Model::Product => "product",
        Model::Packaging => "packaging",
        Model::Lot => "lot",
        Model::Location => "location",
        Model::Package => "package",
        Model::Quant => "quant",
        Model::PickingType => "picking_type",
        Model::Picking => "picking",
        Model::Move => "move",
        Model::MoveLine => "move_line",
    }
}

/// Whether the floor owns a picking: it has journal entries not yet settled with the cloud.
/// Asked once per pulled picking, move and line, so it must not scan the journal: the open
/// states use the partial index on (causal_key, seq); conflicts and rejections are few and
/// found through the (state, seq) index.
pub(super) fn picking_owned(conn: &Connection, picking_id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM journal WHERE causal_key = ?1
                            AND state IN ('pending', 'in_flight'))
                 OR EXISTS (SELECT 1 FROM journal WHERE state IN ('conflict', 'rejected')
                            AND causal_key = ?1)",
        )?
        .query_row([format!("picking:{picking_id}")], |r| r.get(0))?)
}

/// Records how a pulled picking, move or move line differs from the mirror when its picking
/// has open journal entries (the floor owns it). Returns 1 when a change was recorded.
fn note_owned_change(conn: &Connection, record: &Record, epoch: Epoch) -> Result<u64, StoreError> {
    // Ownership first: most pulled rows belong to pickings the floor does not own, and their
    // summaries (a lot name lookup for lines) would be built for nothing.
    let picking_id = match record {
        Record::Picking(p) => Some(p.id.0),
        Record::Move(m) => m.picking_id.map(|p| p.0),
        Record::MoveLine(l) => l.picking_id.map(|p| p.0),
        _ => None,
    };
    let Some(picking_id) = picking_id else {
        return Ok(0);
    };
    if !picking_owned(conn, picking_id)? {
        return Ok(0);
    }
    let (model, id, new_text, old_sql) = match record {
        Record::Picking(p) => (
            "stock.picking",
            p.id.0,
            format!(
                "state {}, from {} to {}",
                p.state, p.location_id, p.location_dest_id
            ),
            "SELECT 'state ' || state || ', from ' || location_id || ' to ' || location_dest_id FROM picking WHERE id = ?1",
        ),
        Record::Move(m) => (
            "stock.move",
            m.id.0,
            format!(
                "product {}, demand {}, quantity {}, state {}",
                m.product_id, m.product_uom_qty, m.quantity, m.state
            ),
            "SELECT 'product ' || product_id || ', demand ' || format('%g', product_uom_qty) || ', quantity ' || format('%g', quantity) || ', state ' || state FROM move WHERE id = ?1",
        ),
        // The lot by `lot_id` first: Odoo leaves `lot_name` empty on lines reserved on
        // existing lots, so a re-reservation on another lot changes only `lot_id`.
        Record::MoveLine(l) => (
            "stock.move.line",
            l.id.0,
            format!(
                "location {}, lot {}, quantity {}",
                l.location_id,
                line_lot_label(conn, l.lot_id.map(|id| id.0), l.lot_name.as_deref())?,
                l.quantity
            ),
            "SELECT 'location ' || location_id || ', lot ' || COALESCE((SELECT name FROM lot WHERE lot.id = move_line.lot_id), '#' || lot_id, NULLIF(lot_name, ''), '-') || ', quantity ' || format('%g', quantity) FROM move_line WHERE id = ?1",
        ),
        _ => return Ok(0),
    };
    let old: Option<String> = conn
        .prepare_cached(old_sql)?
        .query_row([id], |r| r.get(0))
        .optional()?;
    // Rust's {} and SQLite's %g print quantities alike ("5", "2.5").
    let summary = match old {
        Some(old) if old == new_text => return Ok(0),
        Some(old) => format!("{old} -> {new_text}"),
        None => format!("new: {new_text}"),
    };
    conn.prepare_cached(
        "INSERT INTO cloud_change (picking_id, model, record_id, summary, epoch, seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![picking_id, model, id, summary, epoch.0, now_ms()])?;
    // Done or cancelled in the cloud: the push should look now (and raise the conflict),
    // not when the entries' backoff runs out.
    if let Record::Picking(p) = record
        && !p.state.is_open()
    {
        wake_picking(conn, picking_id)?;
    }
    Ok(1)
}

/// How a cloud change names a move line's lot: the mirrored lot's name, `#id` for a lot not
/// mirrored, the name of a lot still to be created, or `-` (as the SQL side of
/// [`note_owned_change`] does).
fn line_lot_label(
    conn: &Connection,
    lot_id: Option<i64>,
    lot_name: Option<&str>,
) -> Result<String, StoreError> {
    if let Some(id) = lot_id {
        let name: Option<String> = conn
            .prepare_cached("SELECT name FROM lot WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        return Ok(name.unwrap_or_else(|| format!("#{id}")));
    }
    Ok(lot_name.filter(|n| !n.is_empty()).unwrap_or("-").to_owned())
}

/// Makes a picking's pending entries due now.
fn wake_picking(conn: &Connection, picking_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE journal SET next_attempt_at = NULL WHERE causal_key = ?1 AND state = 'pending'",
    )?
    .execute([format!("picking:{picking_id}")])?;
    Ok(())
}

/// Records the disappearance of a picking, move or move line of an owned picking.
fn note_owned_deletion(
    conn: &Connection,
    model: Model,
    id: i64,
    epoch: Epoch,
) -> Result<u64, StoreError> {
    let sql = match model {
        Model::Picking => "SELECT id FROM picking WHERE id = ?1",
        Model::Move => "SELECT picking_id FROM move WHERE id = ?1",
        Model::MoveLine => "SELECT picking_id FROM move_line WHERE id = ?1",
        _ => return Ok(0),
    };
    let picking_id: Option<Option<i64>> = conn
        .prepare_cached(sql)?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(Some(picking_id)) = picking_id else {
        return Ok(0);
    };
    if !picking_owned(conn, picking_id)? {
        return Ok(0);
    }
    Ok(conn
        .prepare_cached(
            "INSERT INTO cloud_change (picking_id, model, record_id, summary, epoch, seen_at)
             VALUES (?1, ?2, ?3, 'deleted in the cloud', ?4, ?5)",
        )?
        .execute(params![
            picking_id,
            model.odoo_name(),
            id,
            epoch.0,
            now_ms()
        ])? as u64)
}

/// Takes a new epoch for a pull that is about to read.
pub(super) fn begin_pull(conn: &Connection) -> Result<Epoch, StoreError> {
    // A picking cancelled in Odoo while the floor owned it keeps its session open until its
    // entries are decided; a pull need not read the picking again after that decision, so
    // every pull looks once at the start.
    super::floor::close_cancelled_sessions(conn)?;
    Ok(Epoch(
        conn.prepare_cached(
            "UPDATE appliance_state SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
        )?
        .query_row([], |r| r.get(0))?,
    ))
}

/// Writes one page of a pull.
pub(super) fn apply(conn: &Connection, batch: &MirrorBatch) -> Result<MirrorOutcome, StoreError> {
    let mut out = MirrorOutcome::default();
    // Without an epoch (seeding an empty store) nothing is held back or folded.
    let epoch = batch.epoch;
    let mut pickings = false;
    for record in &batch.upserts {
        pickings |= matches!(record, Record::Picking(_));
        if let Some(epoch) = epoch {
            out.changes += note_owned_change(conn, record, epoch)?;
        }
        if let (Some(epoch), Some(key)) = (epoch, record_key(record)) {
            if key.held(conn, epoch)? {
                remember_held(conn, record.model(), record.id(), &key, epoch)?;
                out.held_back += 1;
                continue;
            }
            out.folded += key.fold(conn, epoch)?;
            forget_held(conn, record.model(), record.id())?;
        }
        upsert(conn, record)?;
        out.upserted += 1;
    }
    for &(model, id) in &batch.deletes {
        if let Some(epoch) = epoch {
            out.changes += note_owned_deletion(conn, model, id, epoch)?;
        }
        if let (Some(epoch), Some(key)) = (epoch, stored_key(conn, model, id)?) {
            if key.held(conn, epoch)? {
                remember_held(conn, model, id, &key, epoch)?;
                out.held_back += 1;
                continue;
            }
            out.folded += key.fold(conn, epoch)?;
        }
        // Gone from Odoo: nothing left to read again (a held-back row never mirrored has no
        // stored key, so this runs whatever the branch above found).
        forget_held(conn, model, id)?;
        out.deleted += conn
            .prepare_cached(&format!("DELETE FROM {} WHERE id = ?1", table(model)))?
            .execute([id])? as u64;
    }
    if pickings && epoch.is_some() {
        super::floor::close_cancelled_sessions(conn)?;
    }
    // Mirror rows changed: what readers keep in memory from the mirror is stale (`hot`).
    if out.upserted + out.deleted > 0 {
        conn.prepare_cached("UPDATE mirror_generation SET n = n + 1 WHERE id = 1")?
            .execute([])?;
    }
    conn.prepare_cached("UPDATE appliance_state SET last_pull_at = ?1 WHERE id = 1")?
        .execute([now_ms()])?;
    Ok(out)
}

/// Remembers a row a pull held back, with the view key that held it: its `write_date` enters
/// the cursor window all the same, so only reading it again by id brings Odoo's copy once the
/// entries on that key have settled (see [`settled_held_back`]).
fn remember_held(
    conn: &Connection,
    model: Model,
    id: i64,
    key: &EffectKey,
    epoch: Epoch,
) -> Result<(), StoreError> {
    let (target, product_id, location_id, lot_name, move_id) = key.columns();
    conn.prepare_cached(
        "INSERT INTO held_back (model, record_id, target, product_id, location_id, lot_name, move_id, epoch)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (model, record_id) DO UPDATE SET target = ?3, product_id = ?4,
             location_id = ?5, lot_name = ?6, move_id = ?7, epoch = ?8",
    )?
    .execute(params![
        model.odoo_name(),
        id,
        target,
        product_id,
        location_id,
        lot_name,
        move_id,
        epoch.0
    ])?;
    Ok(())
}

/// Forgets a held-back row once a pull wrote (or deleted) it.
fn forget_held(conn: &Connection, model: Model, id: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM held_back WHERE model = ?1 AND record_id = ?2")?
        .execute(params![model.odoo_name(), id])?;
    Ok(())
}

/// Ids of `model` held back by earlier pulls whose entries have settled relative to the pull
/// of `epoch`: writing them now would not be held back, so the pull reads them again.
pub(super) fn settled_held_back(
    conn: &Connection,
    model: Model,
    epoch: Epoch,
) -> Result<Vec<i64>, StoreError> {
    // The same conditions as `EffectKey::held`, per target.
    let mut stmt = conn.prepare_cached(
        "SELECT h.record_id FROM held_back h
         WHERE h.model = ?1 AND NOT EXISTS (
             SELECT 1 FROM journal_effect e JOIN journal j ON j.seq = e.seq
             WHERE e.live = 1 AND e.pushed = 1 AND e.target = h.target
               AND CASE h.target
                   WHEN 'stock' THEN e.product_id = h.product_id AND e.location_id = h.location_id
                                     AND e.lot_name = h.lot_name
                   WHEN 'move' THEN e.move_id = h.move_id
                   ELSE e.product_id = h.product_id AND e.lot_name = h.lot_name END
               AND (j.state = 'in_flight' OR j.ambiguous = 1
                    OR (j.state = 'applied' AND j.acked_epoch >= ?2)))
         ORDER BY h.record_id",
    )?;
    let rows = stmt.query_map(params![model.odoo_name(), epoch.0], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Advances a model's pull cursor after its pages were committed.
pub(super) fn set_cursor(
    conn: &Connection,
    model: Model,
    write_date: Option<&str>,
    window: &[(i64, String)],
    full: bool,
) -> Result<(), StoreError> {
    let now = now_ms();
    let window = serde_json::to_string(window).map_err(|e| StoreError::Data(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO sync_cursor (model, write_date, full_at, incremental_at, window) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (model) DO UPDATE SET
             write_date = COALESCE(MAX(excluded.write_date, sync_cursor.write_date), excluded.write_date, sync_cursor.write_date),
             full_at = COALESCE(excluded.full_at, sync_cursor.full_at),
             incremental_at = COALESCE(excluded.incremental_at, sync_cursor.incremental_at),
             window = excluded.window",
    )?
    .execute(params![
        model.odoo_name(),
        write_date,
        full.then_some(now),
        (!full).then_some(now),
        window
    ])?;
    Ok(())
}

/// Remembers (or forgets, with `None`) where an interrupted full pull of a model resumes.
pub(super) fn set_resume(
    conn: &Connection,
    model: Model,
    resume: Option<(i64, Epoch)>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO sync_cursor (model, resume_after, resume_epoch) VALUES (?1, ?2, ?3)
         ON CONFLICT (model) DO UPDATE SET
             resume_after = excluded.resume_after,
             resume_epoch = CASE WHEN excluded.resume_after IS NULL THEN NULL
                                 ELSE COALESCE(sync_cursor.resume_epoch, excluded.resume_epoch) END",
    )?
    .execute(params![
        model.odoo_name(),
        resume.map(|(after, _)| after),
        resume.map(|(_, epoch)| epoch.0)
    ])?;
    Ok(())
}

/// Folds, for a model pulled in full, every effect of entries acknowledged before the pull
/// began, except on keys held back by unconfirmed entries.
pub(super) fn complete_snapshot(
    conn: &Connection,
    epoch: Epoch,
    model: Model,
) -> Result<u64, StoreError> {
    let target = match model {
        Model::Quant => "stock",
        Model::Move => "move",
        Model::Lot => "lot",
        _ => return Ok(0),
    };
    let folded = conn
        .prepare_cached(
            "UPDATE journal_effect AS e SET live = 0
             WHERE e.live = 1 AND e.pushed = 1 AND e.target = ?1
               AND EXISTS (SELECT 1 FROM journal j WHERE j.seq = e.seq AND j.state = 'applied' AND j.acked_epoch < ?2)
               AND NOT EXISTS (
                   SELECT 1 FROM journal_effect f JOIN journal k ON k.seq = f.seq
                   WHERE f.live = 1 AND f.pushed = 1 AND f.target = e.target
                     AND f.product_id IS e.product_id AND f.location_id IS e.location_id
                     AND f.lot_name IS e.lot_name AND f.move_id IS e.move_id
                     AND (k.state = 'in_flight' OR k.ambiguous = 1 OR (k.state = 'applied' AND k.acked_epoch >= ?2)))",
        )?
        .execute(params![target, epoch.0])? as u64;
    Ok(folded)
}

fn upsert(conn: &Connection, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::Company(r) => conn
            .prepare_cached("INSERT OR REPLACE INTO company (id, name) VALUES (?1, ?2)")?
            .execute(params![r.id.0, r.name])?,
        Record::Warehouse(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO warehouse (id, name, code, company_id, view_location_id, lot_stock_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                r.id.0,
                r.name,
                r.code,
                r.company_id.0,
                r.view_location_id.0,
                r.lot_stock_id.0
            ])?,
        Record::Partner(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO partner (id, name, street, street2, zip, city, country)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.id.0, r.name, r.street, r.street2, r.zip, r.city, r.country
            ])?,
        Record::Product(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO product (id, default_code, barcode, name, tracking, uom, active, uom_rounding)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                r.id.0,
                r.default_code,
                r.barcode,
                r.name,
                r.tracking.as_str(),
                r.uom,
                r.active,
                r.uom_rounding.filter(|r| r.is_finite() && *r > 0.0)
            ])?,
        Record::Packaging(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO packaging (id, product_id, name, barcode, qty) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![r.id.0, r.product_id.0, r.name, r.barcode, r.qty])?,
        Record::Lot(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO lot (id, product_id, name, expiration_date) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![r.id.0, r.product_id.0, r.name, r.expiration_date])?,
        Record::Location(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO location (id, name, complete_name, barcode, usage, parent_id, warehouse_id, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                r.id.0,
                r.name,
                r.complete_name,
                r.barcode,
                r.usage.as_str(),
                r.parent_id.map(|v| v.0),
                r.warehouse_id.map(|v| v.0),
                r.active
            ])?,
        Record::Package(r) => conn
            .prepare_cached("INSERT OR REPLACE INTO package (id, name, location_id) VALUES (?1, ?2, ?3)")?
            .execute(params![r.id.0, r.name, r.location_id.map(|v| v.0)])?,
        Record::Quant(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO quant (id, product_id, location_id, lot_id, lot_name, package_id, quantity, reserved)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                r.id.0,
                r.product_id.0,
                r.location_id.0,
                r.lot_id.map(|v| v.0),
                r.lot_name.clone().unwrap_or_default(),
                r.package_id.map(|v| v.0),
                r.quantity,
                r.reserved
            ])?,
        Record::PickingType(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO picking_type (id, name, code, barcode, warehouse_id, default_location_src_id, default_location_dest_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.id.0,
                r.name,
                r.code.as_str(),
                r.barcode,
                r.warehouse_id.map(|v| v.0),
                r.default_location_src_id.map(|v| v.0),
                r.default_location_dest_id.map(|v| v.0)
            ])?,
        Record::Picking(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO picking (id, name, state, picking_type_id, location_id, location_dest_id, partner_id, origin, scheduled_date, backorder_id, company_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                r.id.0,
                r.name,
                r.state.as_str(),
                r.picking_type_id.0,
                r.location_id.0,
                r.location_dest_id.0,
                r.partner_id.map(|v| v.0),
                r.origin,
                r.scheduled_date,
                r.backorder_id.map(|v| v.0),
                r.company_id.0
            ])?,
        Record::Move(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO move (id, picking_id, product_id, product_uom_qty, quantity, picked, state, location_id, location_dest_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                r.id.0,
                r.picking_id.map(|v| v.0),
                r.product_id.0,
                r.product_uom_qty,
                r.quantity,
                r.picked,
                r.state.as_str(),
                r.location_id.0,
                r.location_dest_id.0
            ])?,
        Record::MoveLine(r) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO move_line (id, move_id, picking_id, product_id, lot_id, lot_name, package_id, result_package_id, location_id, location_dest_id, quantity, picked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                r.id.0,
                r.move_id.map(|v| v.0),
                r.picking_id.map(|v| v.0),
                r.product_id.0,
                r.lot_id.map(|v| v.0),
                r.lot_name,
                r.package_id.map(|v| v.0),
                r.result_package_id.map(|v| v.0),
                r.location_id.0,
                r.location_dest_id.0,
                r.quantity,
                r.picked
            ])?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pull's questions about a key read the key's sent effects through the partial
    /// indexes, not every unfolded effect on it (a scan of a busy move's history).
    #[test]
    fn a_keys_pulled_effects_are_read_through_their_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn, "test").unwrap();
        let keys = [
            (
                EffectKey::Stock {
                    product_id: 1,
                    location_id: 2,
                    lot_name: String::new(),
                },
                "effect_stock",
            ),
            (EffectKey::Move(7), "effect_move"),
        ];
        for (key, index) in keys {
            for sql in [key.held_sql(), key.fold_sql()] {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let unbound = vec![rusqlite::types::Null; stmt.parameter_count()];
                let plan: Vec<String> = stmt
                    .query_map(params_from_iter(unbound), |r| r.get::<_, String>(3))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                assert!(
                    plan.iter()
                        .any(|step| step.contains(&format!("INDEX {index}"))),
                    "{sql}: {plan:?}"
                );
            }
        }
    }
}
