//! Odoo's stock semantics in the simulator, as ODOO.md measured them on Odoo 18 (and 19):
//! confirm and reserve, move-line writes (also through the picking's `move_line_ids`
//! commands), validation with the picked-flag rules, the backorder wizard and its context
//! shortcuts, inventory counts with Odoo's own conflict wizard, `inventory_mode` creation,
//! and `load` upserts by external id.

use serde_json::{Map, Value, json};

use super::orm::OrmCall;
use super::store::{SimError, Tables};

type Rec = Map<String, Value>;

fn f(rec: &Rec, field: &str) -> f64 {
    rec.get(field).and_then(Value::as_f64).unwrap_or(0.0)
}

fn id_of(rec: &Rec, field: &str) -> Option<i64> {
    rec.get(field).and_then(Value::as_i64)
}

fn b(rec: &Rec, field: &str) -> bool {
    rec.get(field).and_then(Value::as_bool).unwrap_or(false)
}

fn s<'a>(rec: &'a Rec, field: &str) -> &'a str {
    rec.get(field).and_then(Value::as_str).unwrap_or("")
}

fn ctx_true(ctx: &Rec, key: &str) -> bool {
    ctx.get(key)
        .is_some_and(|v| v.as_bool().unwrap_or(false) || v.as_i64().is_some_and(|n| n != 0))
}

fn ctx_ids(ctx: &Rec, key: &str) -> Vec<i64> {
    ctx.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

fn ids_where(t: &Tables, model: &str, pred: impl Fn(&Rec) -> bool) -> Vec<i64> {
    t.table(model)
        .into_iter()
        .flatten()
        .filter(|(_, r)| pred(r))
        .map(|(id, _)| *id)
        .collect()
}

fn set(t: &mut Tables, model: &str, id: i64, vals: Value, now: &str) {
    t.write(model, id, vals, now);
}

fn usage(t: &Tables, location: i64) -> String {
    t.get("stock.location", location)
        .map(|l| s(l, "usage").to_owned())
        .unwrap_or_default()
}

/// A location and everything below it.
fn children(t: &Tables, location: i64) -> Vec<i64> {
    let mut out = vec![location];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(ids_where(t, "stock.location", |l| {
            id_of(l, "location_id") == Some(parent)
        }));
        i += 1;
    }
    out
}

fn product_name(t: &Tables, product: i64) -> String {
    t.display_name("product.product", product)
}

/// The quant for (product, location, lot), created empty when missing.
fn quant_for(t: &mut Tables, product: i64, location: i64, lot: Option<i64>, now: &str) -> i64 {
    if let Some(id) = ids_where(t, "stock.quant", |q| {
        id_of(q, "product_id") == Some(product)
            && id_of(q, "location_id") == Some(location)
            && id_of(q, "lot_id") == lot
            && id_of(q, "package_id").is_none()
    })
    .first()
    {
        return *id;
    }
    let id = t.next_id("stock.quant");
    let company = t
        .get("stock.location", location)
        .and_then(|l| id_of(l, "company_id"))
        .map_or(Value::Bool(false), |c| json!(c));
    t.insert(
        "stock.quant",
        id,
        Map::from_iter([
            ("product_id".into(), json!(product)),
            ("location_id".into(), json!(location)),
            (
                "lot_id".into(),
                lot.map_or(Value::Bool(false), |l| json!(l)),
            ),
            ("package_id".into(), Value::Bool(false)),
            ("quantity".into(), json!(0.0)),
            ("reserved_quantity".into(), json!(0.0)),
            ("inventory_quantity".into(), json!(0.0)),
            ("inventory_quantity_set".into(), Value::Bool(false)),
            ("company_id".into(), company),
        ]),
        now,
    );
    id
}

fn lines_of_move(t: &Tables, mv: i64) -> Vec<i64> {
    ids_where(t, "stock.move.line", |l| id_of(l, "move_id") == Some(mv))
}

fn moves_of(t: &Tables, picking: i64) -> Vec<i64> {
    ids_where(t, "stock.move", |m| id_of(m, "picking_id") == Some(picking))
}

/// Move quantity = its lines' sum; picked when every line is.
fn recompute_move(t: &mut Tables, mv: i64, now: &str) {
    let lines = lines_of_move(t, mv);
    let qty: f64 = lines
        .iter()
        .filter_map(|l| t.get("stock.move.line", *l))
        .map(|l| f(l, "quantity"))
        .sum();
    // Odoo 18: a move is picked as soon as any of its lines is.
    let picked = lines
        .iter()
        .filter_map(|l| t.get("stock.move.line", *l))
        .any(|l| b(l, "picked"));
    set(
        t,
        "stock.move",
        mv,
        json!({"quantity": qty, "picked": picked}),
        now,
    );
}

/// Releases a move line's reservation from its quant.
fn unreserve_line(t: &mut Tables, line: i64, now: &str) {
    let Some(l) = t.get("stock.move.line", line).cloned() else {
        return;
    };
    if usage(t, id_of(&l, "location_id").unwrap_or(0)) != "internal" {
        return;
    }
    let q = quant_for(
        t,
        id_of(&l, "product_id").unwrap_or(0),
        id_of(&l, "location_id").unwrap_or(0),
        id_of(&l, "lot_id"),
        now,
    );
    let reserved = t
        .get("stock.quant", q)
        .map(|q| f(q, "reserved_quantity"))
        .unwrap_or(0.0);
    t.write_raw(
        "stock.quant",
        q,
        json!({"reserved_quantity": (reserved - f(&l, "quantity")).max(0.0)}),
    );
}

/// Reserves what is available for the picking's open moves (`action_assign`).
pub fn action_assign(t: &mut Tables, picking: i64, now: &str) {
    if t.get("stock.picking", picking)
        .is_none_or(|p| matches!(s(p, "state"), "done" | "cancel"))
    {
        return;
    }
    for mv in moves_of(t, picking) {
        let Some(m) = t.get("stock.move", mv).cloned() else {
            continue;
        };
        if matches!(s(&m, "state"), "done" | "cancel" | "draft") {
            continue;
        }
        let product = id_of(&m, "product_id").unwrap_or(0);
        let src = id_of(&m, "location_id").unwrap_or(0);
        let dest = id_of(&m, "location_dest_id").unwrap_or(0);
        let demand = f(&m, "product_uom_qty");
        let mut reserved: f64 = lines_of_move(t, mv)
            .iter()
            .filter_map(|l| t.get("stock.move.line", *l))
            .map(|l| f(l, "quantity"))
            .sum();
        if usage(t, src) != "internal" {
            // Receipts: everything is "available" from the vendor.
            if reserved < demand {
                new_line(
                    t,
                    mv,
                    picking,
                    product,
                    src,
                    dest,
                    None,
                    demand - reserved,
                    now,
                );
                reserved = demand;
            }
        } else {
            let locations = children(t, src);
            let quants = ids_where(t, "stock.quant", |q| {
                id_of(q, "product_id") == Some(product)
                    && id_of(q, "location_id").is_some_and(|l| locations.contains(&l))
            });
            for q in quants {
                if reserved >= demand {
                    break;
                }
                let Some(quant) = t.get("stock.quant", q).cloned() else {
                    continue;
                };
                let free = f(&quant, "quantity") - f(&quant, "reserved_quantity");
                let take = free.min(demand - reserved);
                if take <= 0.0 {
                    continue;
                }
                t.write_raw(
                    "stock.quant",
                    q,
                    json!({"reserved_quantity": f(&quant, "reserved_quantity") + take}),
                );
                // As in Odoo: a line reserved on an existing lot names it by `lot_id` only;
                // `lot_name` stays empty (it is for lots a receipt will create).
                new_line(
                    t,
                    mv,
                    picking,
                    product,
                    id_of(&quant, "location_id").unwrap_or(src),
                    dest,
                    id_of(&quant, "lot_id"),
                    take,
                    now,
                );
                reserved += take;
            }
        }
        let state = if reserved >= demand {
            "assigned"
        } else if reserved > 0.0 {
            "partially_available"
        } else {
            "confirmed"
        };
        set(
            t,
            "stock.move",
            mv,
            json!({"quantity": reserved, "state": state}),
            now,
        );
    }
    let states: Vec<String> = moves_of(t, picking)
        .iter()
        .filter_map(|m| t.get("stock.move", *m))
        .map(|m| s(m, "state").to_owned())
        .collect();
    // A picking is `assigned` even when its moves are only partially available.
    let state = if states
        .iter()
        .any(|s| s == "assigned" || s == "partially_available")
    {
        "assigned"
    } else {
        "confirmed"
    };
    set(t, "stock.picking", picking, json!({"state": state}), now);
}

#[allow(clippy::too_many_arguments)]
fn new_line(
    t: &mut Tables,
    mv: i64,
    picking: i64,
    product: i64,
    src: i64,
    dest: i64,
    lot: Option<i64>,
    qty: f64,
    now: &str,
) -> i64 {
    let id = t.next_id("stock.move.line");
    t.insert(
        "stock.move.line",
        id,
        Map::from_iter([
            ("move_id".into(), json!(mv)),
            ("picking_id".into(), json!(picking)),
            ("product_id".into(), json!(product)),
            (
                "lot_id".into(),
                lot.map_or(Value::Bool(false), |l| json!(l)),
            ),
            ("lot_name".into(), Value::Bool(false)),
            ("package_id".into(), Value::Bool(false)),
            ("result_package_id".into(), Value::Bool(false)),
            ("location_id".into(), json!(src)),
            ("location_dest_id".into(), json!(dest)),
            ("quantity".into(), json!(qty)),
            ("picked".into(), Value::Bool(false)),
        ]),
        now,
    );
    id
}

/// Cancels a picking (`action_cancel`): reservations released, open moves cancelled.
pub fn cancel(t: &mut Tables, picking: i64, now: &str) {
    // A done picking cannot be cancelled (Odoo: "You cannot cancel a stock move that has
    // been set to 'Done'").
    if t.get("stock.picking", picking)
        .is_none_or(|p| matches!(s(p, "state"), "done" | "cancel"))
    {
        return;
    }
    do_unreserve(t, picking, now);
    for mv in moves_of(t, picking) {
        if t.get("stock.move", mv)
            .is_some_and(|m| s(m, "state") != "done")
        {
            set(t, "stock.move", mv, json!({"state": "cancel"}), now);
        }
    }
    set(t, "stock.picking", picking, json!({"state": "cancel"}), now);
}

/// Drops every reservation of a picking (`do_unreserve`); lines go away.
pub fn do_unreserve(t: &mut Tables, picking: i64, now: &str) {
    if t.get("stock.picking", picking)
        .is_none_or(|p| matches!(s(p, "state"), "done" | "cancel"))
    {
        return;
    }
    for mv in moves_of(t, picking) {
        if t.get("stock.move", mv)
            .is_some_and(|m| matches!(s(m, "state"), "done" | "cancel"))
        {
            continue;
        }
        for line in lines_of_move(t, mv) {
            unreserve_line(t, line, now);
            t.unlink("stock.move.line", line);
        }
        let state = t
            .get("stock.move", mv)
            .map(|m| s(m, "state").to_owned())
            .unwrap_or_default();
        if !matches!(state.as_str(), "done" | "cancel") {
            set(
                t,
                "stock.move",
                mv,
                json!({"quantity": 0.0, "picked": false, "state": "confirmed"}),
                now,
            );
        }
    }
    set(
        t,
        "stock.picking",
        picking,
        json!({"state": "confirmed"}),
        now,
    );
}

fn wizard(name: &str, model: &str, context: Value) -> Value {
    json!({"name": name, "type": "ir.actions.act_window", "res_model": model, "view_mode": "form",
           "views": [[false, "form"]], "target": "new", "context": context})
}

/// `button_validate`: true, or a wizard action.
pub fn button_validate(
    t: &mut Tables,
    pickings: &[i64],
    ctx: &Rec,
    version: u32,
    now: &str,
    sms_pending: &mut bool,
) -> Result<Value, SimError> {
    for &p in pickings {
        let picking = t.get("stock.picking", p).cloned().ok_or_else(|| {
            SimError::missing(format!(
                "Record does not exist or has been deleted.\n(Record: stock.picking({p},), User: 2)"
            ))
        })?;
        if matches!(s(&picking, "state"), "done" | "cancel") {
            return Err(SimError::user(format!(
                "You cannot validate a transfer that is {}.",
                s(&picking, "state")
            )));
        }
        let moves = moves_of(t, p);
        let total: f64 = moves
            .iter()
            .filter_map(|m| t.get("stock.move", *m))
            .map(|m| f(m, "quantity"))
            .sum();
        if total <= 0.0 {
            // The same refusal, reworded in 19 (stock_picking.py, `_get_without_quantities_error_message`).
            return Err(SimError::user(if version >= 19 {
                "Transfer trouble alert! Validating a zero quantity transfer? You're not moving invisible goods around are you?\nSet some quantities and let's get moving!"
            } else {
                "You cannot validate a transfer if no quantities are reserved."
            }));
        }
        for line in ids_where(t, "stock.move.line", |l| {
            id_of(l, "picking_id") == Some(p) && f(l, "quantity") > 0.0
        }) {
            let l = t.get("stock.move.line", line).cloned().unwrap_or_default();
            let product = id_of(&l, "product_id").unwrap_or(0);
            let tracking = t
                .get("product.product", product)
                .map(|p| s(p, "tracking").to_owned())
                .unwrap_or_default();
            if tracking != "none" && id_of(&l, "lot_id").is_none() && s(&l, "lot_name").is_empty() {
                return Err(SimError::user(format!(
                    "You need to supply a Lot/Serial number for product:\n- {}",
                    product_name(t, product)
                )));
            }
            // A serial number received where it is already in stock. Like Odoo
            // (`stock.quant.check_quantity`, `child_of` the quant's location), only within one
            // location: the same serial received into another bin is accepted.
            let src = id_of(&l, "location_id").unwrap_or(0);
            let dest = children(t, id_of(&l, "location_dest_id").unwrap_or(0));
            if tracking == "serial" && usage(t, src) != "internal" {
                let serial = id_of(&l, "lot_id")
                    .and_then(|lot| t.get("stock.lot", lot))
                    .map(|lot| s(lot, "name").to_owned())
                    .unwrap_or_else(|| s(&l, "lot_name").to_owned());
                let in_stock = ids_where(t, "stock.quant", |q| {
                    id_of(q, "product_id") == Some(product)
                        && f(q, "quantity") > 0.0
                        && id_of(q, "lot_id")
                            .and_then(|lot| t.get("stock.lot", lot))
                            .is_some_and(|lot| s(lot, "name") == serial)
                        && id_of(q, "location_id").is_some_and(|loc| dest.contains(&loc))
                });
                if !in_stock.is_empty() {
                    return Err(SimError::validation(format!(
                        "The serial number has already been assigned: \n Product: {}, Serial Number: {serial}",
                        product_name(t, product)
                    )));
                }
            }
        }
    }
    // The SMS confirmation wizard on the first delivery, unless skipped.
    let outgoing = pickings.iter().any(|p| {
        t.get("stock.picking", *p)
            .and_then(|pk| id_of(pk, "picking_type_id"))
            .and_then(|pt| t.get("stock.picking.type", pt))
            .is_some_and(|pt| s(pt, "code") == "outgoing")
    });
    if outgoing && *sms_pending && !ctx_true(ctx, "skip_sms") {
        return Ok(wizard(
            "SMS",
            "confirm.stock.sms",
            json!({"button_validate_picking_ids": pickings, "default_pick_ids": pickings}),
        ));
    }
    // Which pickings would leave something behind.
    let short: Vec<i64> = pickings
        .iter()
        .copied()
        .filter(|p| {
            done_quantities(t, *p)
                .iter()
                .any(|(_, done, demand)| done < demand)
        })
        .collect();
    if !short.is_empty() && !ctx_true(ctx, "skip_backorder") {
        let mut action = wizard(
            "Create Backorder?",
            "stock.backorder.confirmation",
            json!({"button_validate_picking_ids": pickings, "default_pick_ids": pickings.iter().map(|p| json!([4, p])).collect::<Vec<_>>()}),
        );
        // Odoo names the wizard's form view here (and not for the other wizards); the
        // simulator has no views.
        action["view_id"] = Value::Bool(false);
        return Ok(action);
    }
    let no_backorder = ctx_ids(ctx, "picking_ids_not_to_backorder");
    for &p in pickings {
        action_done(t, p, !no_backorder.contains(&p), version, now);
    }
    Ok(Value::Bool(true))
}

/// (move, done quantity, demand) under the picked-flag rules: when no move of the picking
/// is picked, every move ships what its lines hold; otherwise unpicked moves ship nothing.
fn done_quantities(t: &Tables, picking: i64) -> Vec<(i64, f64, f64)> {
    let moves: Vec<(i64, Rec)> = moves_of(t, picking)
        .into_iter()
        .filter_map(|m| t.get("stock.move", m).map(|r| (m, r.clone())))
        .filter(|(_, r)| !matches!(s(r, "state"), "done" | "cancel"))
        .collect();
    let any_picked = moves.iter().any(|(_, m)| b(m, "picked"));
    moves
        .iter()
        .map(|(id, m)| {
            let done = if !any_picked || b(m, "picked") {
                f(m, "quantity")
            } else {
                0.0
            };
            (*id, done, f(m, "product_uom_qty"))
        })
        .collect()
}

/// Moves the stock and closes the picking; the remainder goes to a backorder or is cancelled.
fn action_done(t: &mut Tables, picking: i64, backorder: bool, _version: u32, now: &str) {
    let done = done_quantities(t, picking);
    let any_picked = done
        .iter()
        .any(|(m, _, _)| t.get("stock.move", *m).is_some_and(|m| b(m, "picked")));
    let mut remainder: Vec<(i64, f64, bool)> = Vec::new();
    for (mv, done_qty, demand) in done {
        let m = t.get("stock.move", mv).cloned().unwrap_or_default();
        let product = id_of(&m, "product_id").unwrap_or(0);
        for line in lines_of_move(t, mv) {
            let l = t.get("stock.move.line", line).cloned().unwrap_or_default();
            unreserve_line(t, line, now);
            let qty = if any_picked && !b(&m, "picked") {
                0.0
            } else {
                f(&l, "quantity")
            };
            if qty <= 0.0 {
                t.unlink("stock.move.line", line);
                continue;
            }
            let mut lot = id_of(&l, "lot_id");
            if lot.is_none() && !s(&l, "lot_name").is_empty() {
                // Receipts create the lot from the line's name on validation.
                let name = s(&l, "lot_name").to_owned();
                lot = Some(
                    match ids_where(t, "stock.lot", |r| {
                        id_of(r, "product_id") == Some(product) && s(r, "name") == name
                    })
                    .first()
                    {
                        Some(id) => *id,
                        None => {
                            let id = t.next_id("stock.lot");
                            t.insert(
                                "stock.lot",
                                id,
                                Map::from_iter([
                                    ("product_id".into(), json!(product)),
                                    ("name".into(), json!(name)),
                                    ("company_id".into(), json!(1)),
                                ]),
                                now,
                            );
                            id
                        }
                    },
                );
            }
            for (location, sign) in [
                (id_of(&l, "location_id").unwrap_or(0), -1.0),
                (id_of(&l, "location_dest_id").unwrap_or(0), 1.0),
            ] {
                if usage(t, location) == "internal" {
                    let q = quant_for(t, product, location, lot, now);
                    let have = t
                        .get("stock.quant", q)
                        .map(|q| f(q, "quantity"))
                        .unwrap_or(0.0);
                    set(
                        t,
                        "stock.quant",
                        q,
                        json!({"quantity": have + sign * qty}),
                        now,
                    );
                }
            }
            set(
                t,
                "stock.move.line",
                line,
                json!({"picked": true, "lot_id": lot.map_or(Value::Bool(false), |l| json!(l))}),
                now,
            );
        }
        if done_qty > 0.0 {
            // The done part keeps the done quantity as its demand (Odoo splits the move).
            set(
                t,
                "stock.move",
                mv,
                json!({"state": "done", "quantity": done_qty, "picked": true, "product_uom_qty": done_qty}),
                now,
            );
        }
        if done_qty < demand {
            remainder.push((mv, demand - done_qty, done_qty > 0.0));
        }
    }
    set(
        t,
        "stock.picking",
        picking,
        json!({"state": "done", "date_done": now}),
        now,
    );
    if remainder.is_empty() {
        return;
    }
    let original = t.get("stock.picking", picking).cloned().unwrap_or_default();
    let target = if backorder {
        let id = t.next_id("stock.picking");
        let mut vals = original.clone();
        let n = ids_where(t, "stock.picking", |p| {
            id_of(p, "backorder_id") == Some(picking)
        })
        .len();
        vals.insert(
            "name".into(),
            json!(format!("{}-BO{}", s(&original, "name"), n + 1)),
        );
        vals.insert("state".into(), json!("confirmed"));
        vals.insert("backorder_id".into(), json!(picking));
        vals.remove("date_done");
        t.insert("stock.picking", id, vals, now);
        Some(id)
    } else {
        None
    };
    for (mv, qty, split) in remainder {
        // Without a backorder the remainder is cancelled in the same picking.
        let state = if target.is_some() {
            "confirmed"
        } else {
            "cancel"
        };
        let picking_id = target.unwrap_or(picking);
        let vals = json!({"product_uom_qty": qty, "quantity": 0.0, "picked": false, "state": state, "picking_id": picking_id});
        if split {
            let mut rec = t.get("stock.move", mv).cloned().unwrap_or_default();
            if let Value::Object(v) = vals {
                rec.extend(v);
            }
            let id = t.next_id("stock.move");
            t.insert("stock.move", id, rec, now);
        } else {
            // Nothing of it was done: the whole move goes (to the backorder, or cancelled).
            set(t, "stock.move", mv, vals, now);
        }
    }
    if let Some(bo) = target {
        action_assign(t, bo, now);
    }
}

/// Odoo keeps done transfers locked: their lines are history.
const LOCKED: &str = "You cannot modify a done move line of a locked transfer; unlock it first.";

fn locked(t: &Tables, line: &Rec) -> Result<(), SimError> {
    let done = id_of(line, "move_id")
        .and_then(|m| t.get("stock.move", m))
        .is_some_and(|m| s(m, "state") == "done");
    if done {
        Err(SimError::user(LOCKED))
    } else {
        Ok(())
    }
}

/// Applies `move_line_ids` commands of a picking write: `[0, 0, vals]`, `[1, id, vals]`,
/// `[2, id]` (delete) and `[4, id]` (link).
fn line_commands(
    t: &mut Tables,
    picking: i64,
    commands: &[Value],
    now: &str,
) -> Result<(), SimError> {
    let mut touched = Vec::new();
    for command in commands {
        let c = command
            .as_array()
            .ok_or_else(|| SimError::value(format!("invalid command {command}")))?;
        match (
            c.first().and_then(Value::as_i64),
            c.get(1).and_then(Value::as_i64),
            c.get(2),
        ) {
            (Some(0), _, Some(Value::Object(vals))) => {
                if t.get("stock.picking", picking)
                    .is_some_and(|p| s(p, "state") == "done")
                {
                    return Err(SimError::user(LOCKED));
                }
                let product = vals
                    .get("product_id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| SimError::validation("product_id is required on a move line"))?;
                let mv = match vals.get("move_id").and_then(Value::as_i64) {
                    Some(m) => m,
                    None => *moves_of(t, picking)
                        .iter()
                        .find(|m| {
                            t.get("stock.move", **m)
                                .is_some_and(|r| id_of(r, "product_id") == Some(product))
                        })
                        .ok_or_else(|| {
                            SimError::user(format!(
                                "no move for product {product} in picking {picking}"
                            ))
                        })?,
                };
                let m = t.get("stock.move", mv).cloned().unwrap_or_default();
                let id = new_line(
                    t,
                    mv,
                    picking,
                    product,
                    id_of(&m, "location_id").unwrap_or(0),
                    id_of(&m, "location_dest_id").unwrap_or(0),
                    None,
                    0.0,
                    now,
                );
                set(t, "stock.move.line", id, Value::Object(vals.clone()), now);
                touched.push(mv);
            }
            (Some(1), Some(id), Some(Value::Object(vals))) => {
                let line = t.get("stock.move.line", id).cloned().ok_or_else(|| SimError::missing(format!("Record does not exist or has been deleted.\n(Record: stock.move.line({id},), User: 2)")))?;
                locked(t, &line)?;
                set(t, "stock.move.line", id, Value::Object(vals.clone()), now);
                touched.extend(id_of(&line, "move_id"));
            }
            (Some(2 | 3), Some(id), _) => {
                if let Some(line) = t.get("stock.move.line", id).cloned() {
                    unreserve_line(t, id, now);
                    t.unlink("stock.move.line", id);
                    touched.extend(id_of(&line, "move_id"));
                }
            }
            (Some(4), Some(_), _) => {}
            _ => return Err(SimError::value(format!("invalid command {command}"))),
        }
    }
    touched.sort_unstable();
    touched.dedup();
    for mv in touched {
        recompute_move(t, mv, now);
    }
    Ok(())
}

/// The `vals` of a write call (empty when absent).
fn write_vals(call: &OrmCall<'_>) -> Rec {
    call.kwargs
        .get("vals")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Stock methods and writes with side effects; `None` for the generic ORM.
pub fn execute(
    t: &mut Tables,
    call: &OrmCall<'_>,
    version: u32,
    sms_pending: &mut bool,
) -> Option<Result<Value, SimError>> {
    let now = call.now;
    let ctx = &call.context;
    let missing = |model: &str, ids: &[i64], t: &Tables| -> Result<(), SimError> {
        match ids.iter().find(|id| t.get(model, **id).is_none()) {
            Some(id) => Err(SimError::missing(format!(
                "Record does not exist or has been deleted.\n(Record: {model}({id},), User: 2)"
            ))),
            None => Ok(()),
        }
    };
    Some(match (call.model, call.method) {
        ("stock.picking", "action_confirm") => missing("stock.picking", &call.ids, t).map(|()| {
            for &p in &call.ids {
                for mv in moves_of(t, p) {
                    if t.get("stock.move", mv)
                        .is_some_and(|m| s(m, "state") == "draft")
                    {
                        set(t, "stock.move", mv, json!({"state": "confirmed"}), now);
                    }
                }
                set(t, "stock.picking", p, json!({"state": "confirmed"}), now);
            }
            Value::Bool(true)
        }),
        ("stock.picking", "action_assign") => missing("stock.picking", &call.ids, t).map(|()| {
            for &p in &call.ids {
                action_assign(t, p, now);
            }
            Value::Bool(true)
        }),
        ("stock.picking", "do_unreserve") => missing("stock.picking", &call.ids, t).map(|()| {
            for &p in &call.ids {
                do_unreserve(t, p, now);
            }
            // Odoo's do_unreserve returns None.
            Value::Null
        }),
        ("stock.picking", "action_cancel") => missing("stock.picking", &call.ids, t).map(|()| {
            for &p in &call.ids {
                cancel(t, p, now);
            }
            Value::Bool(true)
        }),
        ("stock.picking", "button_validate") => missing("stock.picking", &call.ids, t)
            .and_then(|()| button_validate(t, &call.ids, ctx, version, now, sms_pending)),
        ("stock.picking", "write")
            if call
                .kwargs
                .get("vals")
                .and_then(|v| v.get("move_line_ids"))
                .is_some() =>
        {
            (|| {
                missing("stock.picking", &call.ids, t)?;
                let mut vals = call
                    .kwargs
                    .get("vals")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let commands = vals
                    .remove("move_line_ids")
                    .and_then(|c| c.as_array().cloned())
                    .ok_or_else(|| SimError::value("move_line_ids must be a list of commands"))?;
                for &p in &call.ids {
                    line_commands(t, p, &commands, now)?;
                    set(t, "stock.picking", p, Value::Object(vals.clone()), now);
                }
                Ok(Value::Bool(true))
            })()
        }
        ("stock.move.line", "write") => (|| {
            missing("stock.move.line", &call.ids, t)?;
            for id in &call.ids {
                if let Some(line) = t.get("stock.move.line", *id) {
                    locked(t, line)?;
                }
            }
            let vals = call.kwargs.get("vals").cloned().unwrap_or_default();
            let mut moves = Vec::new();
            for &id in &call.ids {
                set(t, "stock.move.line", id, vals.clone(), now);
                moves.extend(
                    t.get("stock.move.line", id)
                        .and_then(|l| id_of(l, "move_id")),
                );
            }
            for mv in moves {
                recompute_move(t, mv, now);
            }
            Ok(Value::Bool(true))
        })(),
        ("stock.move", "write")
            if call
                .kwargs
                .get("vals")
                .is_some_and(|v| v.get("quantity").is_some() || v.get("picked").is_some()) =>
        {
            (|| {
                missing("stock.move", &call.ids, t)?;
                let vals = write_vals(call);
                for &mv in &call.ids {
                    let m = t.get("stock.move", mv).cloned().unwrap_or_default();
                    let lines = lines_of_move(t, mv);
                    if let Some(qty) = vals.get("quantity").and_then(Value::as_f64) {
                        // Odoo adjusts the lines: the first takes what the others do not hold.
                        let others: f64 = lines
                            .iter()
                            .skip(1)
                            .filter_map(|l| t.get("stock.move.line", *l))
                            .map(|l| f(l, "quantity"))
                            .sum();
                        match lines.first() {
                            Some(first) => set(
                                t,
                                "stock.move.line",
                                *first,
                                json!({"quantity": (qty - others).max(0.0)}),
                                now,
                            ),
                            None => {
                                let picking = id_of(&m, "picking_id").unwrap_or(0);
                                new_line(
                                    t,
                                    mv,
                                    picking,
                                    id_of(&m, "product_id").unwrap_or(0),
                                    id_of(&m, "location_id").unwrap_or(0),
                                    id_of(&m, "location_dest_id").unwrap_or(0),
                                    None,
                                    qty,
                                    now,
                                );
                            }
                        }
                    }
                    if let Some(picked) = vals.get("picked").and_then(Value::as_bool) {
                        for line in lines_of_move(t, mv) {
                            set(t, "stock.move.line", line, json!({"picked": picked}), now);
                        }
                    }
                    let mut rest = vals.clone();
                    rest.remove("quantity");
                    rest.remove("picked");
                    set(t, "stock.move", mv, Value::Object(rest), now);
                    recompute_move(t, mv, now);
                }
                Ok(Value::Bool(true))
            })()
        }
        ("stock.backorder.confirmation", "create") => {
            let id = t.next_id("stock.backorder.confirmation");
            let picks = ctx_ids(ctx, "button_validate_picking_ids");
            t.insert(
                "stock.backorder.confirmation",
                id,
                Map::from_iter([("pick_ids".into(), json!(picks))]),
                now,
            );
            Ok(json!([id]))
        }
        ("stock.backorder.confirmation", "process" | "process_cancel_backorder") => (|| {
            // Without the wizard's context, Odoo's process() returns True and does nothing.
            let picks = ctx_ids(ctx, "button_validate_picking_ids");
            if picks.is_empty() {
                return Ok(Value::Bool(true));
            }
            for &p in &picks {
                if t.get("stock.picking", p)
                    .is_some_and(|r| !matches!(s(r, "state"), "done" | "cancel"))
                {
                    action_done(t, p, call.method == "process", version, now);
                }
            }
            Ok(Value::Bool(true))
        })(),
        ("confirm.stock.sms", "create") => {
            let id = t.next_id("confirm.stock.sms");
            t.insert("confirm.stock.sms", id, Map::new(), now);
            Ok(json!([id]))
        }
        ("confirm.stock.sms", "send_sms" | "dont_send_sms") => (|| {
            *sms_pending = false;
            let picks = ctx_ids(ctx, "button_validate_picking_ids");
            if picks.is_empty() {
                return Ok(Value::Bool(true));
            }
            button_validate(t, &picks, ctx, version, now, sms_pending)
        })(),
        ("stock.quant", "write")
            if call.kwargs.get("vals").is_some_and(|v| {
                v.get("inventory_quantity").is_some()
                    || v.get("inventory_quantity_auto_apply").is_some()
            }) =>
        {
            (|| {
                missing("stock.quant", &call.ids, t)?;
                let vals = write_vals(call);
                for &q in &call.ids {
                    let quantity = t
                        .get("stock.quant", q)
                        .map(|r| f(r, "quantity"))
                        .unwrap_or(0.0);
                    if let Some(counted) = vals
                        .get("inventory_quantity_auto_apply")
                        .and_then(Value::as_f64)
                    {
                        set(
                            t,
                            "stock.quant",
                            q,
                            json!({"inventory_quantity": counted, "inventory_quantity_set": true, "inventory_base": quantity, "user_id": 2}),
                            now,
                        );
                        apply_inventory(t, q, s(ctx, "inventory_name"), now);
                    } else if let Some(counted) =
                        vals.get("inventory_quantity").and_then(Value::as_f64)
                    {
                        set(
                            t,
                            "stock.quant",
                            q,
                            json!({"inventory_quantity": counted, "inventory_quantity_set": true, "inventory_base": quantity, "user_id": 2}),
                            now,
                        );
                    }
                }
                Ok(Value::Bool(true))
            })()
        }
        ("stock.quant", "create") if ctx_true(ctx, "inventory_mode") => (|| {
            let list = match call.kwargs.get("vals_list") {
                Some(Value::Array(v)) => v.clone(),
                Some(v @ Value::Object(_)) => vec![v.clone()],
                _ => return Err(SimError::value("create() needs vals_list")),
            };
            let mut ids = Vec::new();
            for vals in list {
                let product = vals
                    .get("product_id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| SimError::validation("product_id is required"))?;
                let location = vals
                    .get("location_id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| SimError::validation("location_id is required"))?;
                // Reuses an existing quant for the same product/location/lot.
                let q = quant_for(
                    t,
                    product,
                    location,
                    vals.get("lot_id").and_then(Value::as_i64),
                    now,
                );
                let quantity = t
                    .get("stock.quant", q)
                    .map(|r| f(r, "quantity"))
                    .unwrap_or(0.0);
                if let Some(counted) = vals.get("inventory_quantity").and_then(Value::as_f64) {
                    set(
                        t,
                        "stock.quant",
                        q,
                        json!({"inventory_quantity": counted, "inventory_quantity_set": true, "inventory_base": quantity, "user_id": 2}),
                        now,
                    );
                }
                ids.push(q);
            }
            Ok(json!(ids))
        })(),
        ("stock.quant", "action_apply_inventory") => (|| {
            missing("stock.quant", &call.ids, t)?;
            // 19's `action_apply_inventory` returns the wizard for outdated quants whatever
            // the context says.
            let auto = version < 19 && ctx_true(ctx, "set_inventory_quantity_auto_apply");
            let moved: Vec<i64> = call
                .ids
                .iter()
                .copied()
                .filter(|q| {
                    t.get("stock.quant", *q).is_some_and(|r| {
                        b(r, "inventory_quantity_set") && f(r, "quantity") != f(r, "inventory_base")
                    })
                })
                .collect();
            if !moved.is_empty() && !auto {
                // Odoo's own conflict detection: the quant moved since the count was set.
                return Ok(wizard(
                    "Conflict in Inventory",
                    "stock.inventory.conflict",
                    json!({"default_quant_ids": moved, "default_quant_to_fix_ids": moved}),
                ));
            }
            for &q in &call.ids {
                let set_ = t
                    .get("stock.quant", q)
                    .is_some_and(|r| b(r, "inventory_quantity_set"));
                if !set_ {
                    if version >= 19 {
                        // Odoo 19: applying a quant with no count set zeroes its stock.
                        set(
                            t,
                            "stock.quant",
                            q,
                            json!({"inventory_quantity": 0.0, "inventory_quantity_set": true, "inventory_base": null}),
                            now,
                        );
                    } else {
                        continue;
                    }
                }
                apply_inventory(t, q, s(ctx, "inventory_name"), now);
            }
            // Returns None: no `result` key on JSON-RPC, `null` on JSON-2.
            Ok(Value::Null)
        })(),
        // Odoo's "Clear" on a count: the quant keeps its quantity, the count is forgotten.
        ("stock.quant", "action_clear_inventory_quantity") => {
            missing("stock.quant", &call.ids, t).map(|()| {
                for &q in &call.ids {
                    set(
                        t,
                        "stock.quant",
                        q,
                        json!({"inventory_quantity": 0.0, "inventory_quantity_set": false, "inventory_base": null, "user_id": false}),
                        now,
                    );
                }
                Value::Null
            })
        }
        (model, "load") => load(t, model, call, now),
        _ => return None,
    })
}

/// Sets a counted quant and records the inventory move, named from `inventory_name`.
fn apply_inventory(t: &mut Tables, q: i64, name: &str, now: &str) {
    let Some(quant) = t.get("stock.quant", q).cloned() else {
        return;
    };
    // Odoo names the move from `inventory_name` and appends the counting user's name.
    let mut move_name = if name.is_empty() {
        "Product Quantity Updated".to_owned()
    } else {
        name.to_owned()
    };
    if id_of(&quant, "user_id").is_some() {
        move_name.push_str(" (Holdfast Integration)");
    }
    // Odoo fixes the difference when the count is written (`inventory_diff_quantity`), so
    // stock that moved since is kept: 9 counted as 8, then 1 delivered, applies to 7.
    let base = quant
        .get("inventory_base")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| f(&quant, "quantity"));
    let diff = f(&quant, "inventory_quantity") - base;
    let inventory = ids_where(t, "stock.location", |l| s(l, "usage") == "inventory")
        .first()
        .copied()
        .unwrap_or(0);
    let location = id_of(&quant, "location_id").unwrap_or(0);
    let (src, dest) = if diff >= 0.0 {
        (inventory, location)
    } else {
        (location, inventory)
    };
    let id = t.next_id("stock.move");
    // 19 has no `stock.move.name`: the name goes to `inventory_name` (the move's reference).
    let name_field = if t.version() >= 19 {
        "inventory_name"
    } else {
        "name"
    };
    t.insert(
        "stock.move",
        id,
        Map::from_iter([
            (name_field.into(), json!(move_name)),
            (
                "product_id".into(),
                quant
                    .get("product_id")
                    .cloned()
                    .unwrap_or(Value::Bool(false)),
            ),
            ("product_uom_qty".into(), json!(diff.abs())),
            ("quantity".into(), json!(diff.abs())),
            ("picked".into(), Value::Bool(true)),
            ("state".into(), json!("done")),
            ("is_inventory".into(), Value::Bool(true)),
            ("picking_id".into(), Value::Bool(false)),
            ("location_id".into(), json!(src)),
            ("location_dest_id".into(), json!(dest)),
        ]),
        now,
    );
    // Odoo creates the move with its line (lot and package of the quant).
    let line = new_line(
        t,
        id,
        0,
        id_of(&quant, "product_id").unwrap_or(0),
        src,
        dest,
        id_of(&quant, "lot_id"),
        diff.abs(),
        now,
    );
    t.write_raw(
        "stock.move.line",
        line,
        json!({"picking_id": false, "picked": true}),
    );
    set(
        t,
        "stock.quant",
        q,
        json!({"quantity": f(&quant, "quantity") + diff, "inventory_quantity": 0.0, "inventory_quantity_set": false, "inventory_base": null, "user_id": false}),
        now,
    );
}

/// `load(fields, data)`: upsert by external id (`id` column), values as strings, many2one
/// as `field/id` (external id) or `field/.id` (database id). All or nothing; errors come
/// back in `messages`.
fn load(t: &mut Tables, model: &str, call: &OrmCall<'_>, now: &str) -> Result<Value, SimError> {
    let fields: Vec<String> = call
        .kwargs
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| SimError::value("load() needs fields"))?;
    let rows = call
        .kwargs
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| SimError::value("load() needs data"))?;
    let mut planned: Vec<(Option<i64>, Option<String>, Rec)> = Vec::new();
    let mut messages = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let cells = row.as_array().cloned().unwrap_or_default();
        let mut vals = Rec::new();
        let mut xmlid = None;
        for (field, cell) in fields.iter().zip(cells) {
            let text = cell.as_str().unwrap_or_default().to_owned();
            if field == "id" {
                xmlid = Some(text);
            } else if let Some(name) = field.strip_suffix("/.id") {
                match text.parse::<i64>() {
                    Ok(id) => {
                        vals.insert(name.to_owned(), json!(id));
                    }
                    Err(_) => messages.push(json!({"type": "error", "rows": {"from": n, "to": n}, "field": name, "message": format!("Invalid database id '{text}' for the field '{name}'")})),
                }
            } else if let Some(name) = field.strip_suffix("/id") {
                match ids_where(t, "ir.model.data", |d| s(d, "complete_name") == text).first().and_then(|d| t.get("ir.model.data", *d)).and_then(|d| id_of(d, "res_id")) {
                    Some(id) => {
                        vals.insert(name.to_owned(), json!(id));
                    }
                    None => messages.push(json!({"type": "error", "rows": {"from": n, "to": n}, "field": name, "message": format!("No matching record found for external id '{text}' in field '{name}'")})),
                }
            } else if let Ok(number) = text.parse::<f64>() {
                vals.insert(field.clone(), json!(number));
            } else {
                vals.insert(field.clone(), json!(text));
            }
        }
        let existing = xmlid.as_ref().and_then(|x| {
            ids_where(t, "ir.model.data", |d| {
                s(d, "complete_name") == x && s(d, "model") == model
            })
            .first()
            .and_then(|d| t.get("ir.model.data", *d))
            .and_then(|d| id_of(d, "res_id"))
        });
        planned.push((existing, xmlid, vals));
    }
    if !messages.is_empty() {
        return Ok(json!({"ids": false, "messages": messages, "nextrow": 0}));
    }
    let mut ids = Vec::new();
    for (existing, xmlid, vals) in planned {
        let id = match existing.filter(|id| t.get(model, *id).is_some()) {
            Some(id) => {
                set(t, model, id, Value::Object(vals), now);
                id
            }
            None => {
                let id = t.next_id(model);
                t.insert(model, id, vals, now);
                if let Some(x) = xmlid {
                    let d = t.next_id("ir.model.data");
                    t.insert(
                        "ir.model.data",
                        d,
                        Map::from_iter([
                            ("complete_name".into(), json!(x)),
                            ("model".into(), json!(model)),
                            ("res_id".into(), json!(id)),
                        ]),
                        now,
                    );
                }
                id
            }
        };
        ids.push(id);
    }
    // `nextrow` is 0 once every row was imported.
    Ok(json!({"ids": ids, "messages": [], "nextrow": 0}))
}
