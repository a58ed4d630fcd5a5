//! Counts: delta merges through `inventory_quantity` and `action_apply_inventory`, marked
//! through `inventory_name`.

use super::*;

/// Looks for the inventory move an earlier attempt of this entry left.
async fn find_inventory_move<O: Odoo>(
    odoo: &O,
    entry: &str,
    edge: &Value,
) -> Result<Option<i64>, Outcome> {
    // Odoo appends " (User Name)" to the move's reference when a user set the count.
    let v = run(
        odoo,
        Call::new("stock.move", "search")
            .arg(
                "domain",
                json!([
                    ["is_inventory", "=", true],
                    ["reference", "=like", format!("{}%", mark(entry))]
                ]),
            )
            .arg("order", "id"),
        edge,
    )
    .await?;
    Ok(ids_of(&v).first().copied())
}

async fn find_lot<O: Odoo>(
    odoo: &O,
    product: i64,
    name: &str,
    edge: &Value,
) -> Result<Option<i64>, Outcome> {
    let v = run(
        odoo,
        Call::new("stock.lot", "search")
            .arg(
                "domain",
                json!([["name", "=", name], ["product_id", "=", product]]),
            )
            .arg("order", "id"),
        edge,
    )
    .await?;
    Ok(ids_of(&v).first().copied())
}

/// How close an unmarked inventory move's quantity must be to a count's delta to be taken
/// for that count applied by someone else (Odoo rounds to the unit's precision, 0.01 or finer
/// for the units a warehouse counts in).
const COUNT_DELTA_TOLERANCE: f64 = 0.005;

/// An earlier attempt may have written `inventory_quantity` and lost its answer before
/// applying it: Odoo then shows a pending count, and a person's "Apply all" applies it under
/// their own reference, without our mark. Any inventory move on this quant since the entry
/// was first sent that carries no Holdfast mark may be that one: applying the count again
/// could count it twice, so the outcome is a person's call.
async fn unmarked_counts<O: Odoo>(
    odoo: &O,
    op: &CountOp,
    lot: Option<i64>,
    since_ms: i64,
    edge: &Value,
) -> Result<Option<Finding>, Outcome> {
    let since = jiff::Timestamp::from_millisecond(since_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let mut domain = vec![
        json!(["is_inventory", "=", true]),
        json!(["state", "=", "done"]),
        json!(["product_id", "=", op.product_id]),
        json!(["create_date", ">=", since]),
        json!("|"),
        json!(["location_id", "=", op.location_id]),
        json!(["location_dest_id", "=", op.location_id]),
    ];
    match lot {
        Some(l) => domain.push(json!(["move_line_ids.lot_id", "=", l])),
        // A lot Odoo did not know before this attempt has never been counted there.
        None if op.lot_name.is_some() => return Ok(None),
        None => {}
    }
    let moves = records(
        run(
            odoo,
            Call::new("stock.move", "search_read")
                .arg("domain", Value::Array(domain))
                .arg(
                    "fields",
                    json!([
                        "reference",
                        "product_uom_qty",
                        "location_id",
                        "location_dest_id",
                        "create_date"
                    ]),
                )
                .arg("order", "id"),
            edge,
        )
        .await?,
    );
    // Odoo fixes a pending count's difference when `inventory_quantity` is written
    // (`inventory_diff_quantity` depends on it alone), so someone applying *our* pending count
    // makes a move of exactly our delta, whatever moved since. A foreign move of another size
    // (stock set by hand, another count) cannot be ours and is no reason to stop.
    let ours = op.counted - op.expected;
    let foreign: Vec<Value> = moves
        .iter()
        .filter(|m| !text(m, "reference").starts_with("holdfast:"))
        .filter_map(|m| {
            let into = m.get("location_dest_id").and_then(m2o_id) == Some(op.location_id);
            let qty = num(m, "product_uom_qty");
            let delta = if into { qty } else { -qty };
            ((delta - ours).abs() < COUNT_DELTA_TOLERANCE).then(|| {
                json!({
                    "move_id": m.get("id"),
                    "reference": text(m, "reference"),
                    "delta": delta,
                    "create_date": text(m, "create_date"),
                })
            })
        })
        .collect();
    if foreign.is_empty() {
        return Ok(None);
    }
    Ok(Some(Finding {
        kind: ConflictKind::CountUnconfirmed,
        message: format!(
            "this count's earlier attempt may have left it pending in Odoo, and {} count(s) were applied there since without the appliance's mark (e.g. \"{}\"): check whether Odoo already holds it before retrying",
            foreign.len(),
            foreign
                .first()
                .and_then(|m| m["reference"].as_str())
                .unwrap_or_default()
        ),
        edge: edge.clone(),
        cloud: json!({"inventory_moves": foreign}),
    }))
}

/// Pushes a count as a delta merge onto the cloud's current quantity.
pub async fn push_count<O: Odoo>(odoo: &O, entry: &PushEntry, op: &CountOp) -> Outcome {
    match push_count_inner(odoo, entry, op).await {
        Ok(o) | Err(o) => o,
    }
}

async fn push_count_inner<O: Odoo>(
    odoo: &O,
    entry: &PushEntry,
    op: &CountOp,
) -> Result<Outcome, Outcome> {
    let delta = op.counted - op.expected;
    let edge = json!({"product_id": op.product_id, "location_id": op.location_id, "lot": op.lot_name, "counted": op.counted, "expected": op.expected, "delta": delta});
    if entry.ambiguous
        && let Some(id) = find_inventory_move(odoo, &entry.id, &edge).await?
    {
        return Ok(Outcome::Applied {
            remote_ref: Some(format!("stock.move,{id}")),
            superseded: true,
            flagged: Vec::new(),
        });
    }
    if delta.abs() > EPS {
        archived(odoo, BTreeSet::from([op.product_id]), &edge).await?;
    }
    if delta.abs() <= EPS {
        // The count confirmed what the view showed: nothing to move in Odoo.
        return Ok(Outcome::Applied {
            remote_ref: None,
            superseded: false,
            flagged: Vec::new(),
        });
    }
    let lot = match &op.lot_name {
        Some(name) => match find_lot(odoo, op.product_id, name, &edge).await? {
            Some(id) => Some(id),
            None => {
                let created = run(
                    odoo,
                    Call::new("stock.lot", "create").arg(
                        "vals_list",
                        json!([{"name": name, "product_id": op.product_id}]),
                    ),
                    &edge,
                )
                .await?;
                ids_of(&created).first().copied()
            }
        },
        None => None,
    };
    if entry.ambiguous
        && let Some(since) = entry.sent_since
        && let Some(finding) = unmarked_counts(odoo, op, lot, since, &edge).await?
    {
        return Ok(Outcome::Conflict(finding));
    }
    let mut domain = vec![
        json!(["product_id", "=", op.product_id]),
        json!(["location_id", "=", op.location_id]),
    ];
    domain.push(json!([
        "lot_id",
        "=",
        lot.map_or(Value::Bool(false), |l| json!(l))
    ]));
    let quants = records(
        run(
            odoo,
            Call::new("stock.quant", "search_read")
                .arg("domain", Value::Array(domain))
                .arg("fields", json!(["quantity"]))
                .arg("order", "id"),
            &edge,
        )
        .await?,
    );
    let current: f64 = quants.iter().map(|q| num(q, "quantity")).sum();
    let target = current + delta;
    let quant = match quants
        .first()
        .and_then(|q| q.get("id"))
        .and_then(Value::as_i64)
    {
        Some(id) => {
            run(
                odoo,
                Call::new("stock.quant", "write")
                    .ids(&[id])
                    .arg("vals", json!({"inventory_quantity": target - (current - num(&quants[0], "quantity"))}))
                    .context("inventory_mode", true),
                &edge,
            )
            .await?;
            id
        }
        None => {
            let mut vals = json!({"product_id": op.product_id, "location_id": op.location_id, "inventory_quantity": target});
            if let Some(l) = lot {
                vals["lot_id"] = json!(l);
            }
            let created = run(
                odoo,
                Call::new("stock.quant", "create")
                    .arg("vals_list", json!([vals]))
                    .context("inventory_mode", true),
                &edge,
            )
            .await?;
            match ids_of(&created).first() {
                Some(id) => *id,
                None => {
                    return Err(Outcome::Failed(OdooError::Protocol {
                        status: 200,
                        reason: format!("stock.quant create answered {created}"),
                    }));
                }
            }
        }
    };
    // Odoo fixes the count's difference when `inventory_quantity` is written, and its own
    // conflict check catches moves after that; a move between our read and that write would
    // slip through. Read again: if the quantity moved, start over on the new one.
    let again = records(
        run(
            odoo,
            Call::new("stock.quant", "read")
                .ids(&[quant])
                .arg("fields", json!(["quantity"])),
            &edge,
        )
        .await?,
    );
    let quantity_now = again.first().map(|q| num(q, "quantity"));
    let read_before = quants
        .iter()
        .find(|q| q.get("id").and_then(Value::as_i64) == Some(quant))
        .map(|q| num(q, "quantity"))
        .unwrap_or(0.0);
    if quantity_now.is_none_or(|q| (q - read_before).abs() > EPS) {
        return Err(Outcome::Failed(OdooError::Server {
            name: "odoo.exceptions.ConcurrencyError".into(),
            message: "the quant changed while the count was set; retrying on its new quantity"
                .into(),
            status: None,
        }));
    }
    let answer = run(
        odoo,
        Call::new("stock.quant", "action_apply_inventory")
            .ids(&[quant])
            .context("inventory_name", mark(&entry.id)),
        &edge,
    )
    .await?;
    if answer.get("res_model").and_then(Value::as_str) == Some("stock.inventory.conflict") {
        // The quant moved between our read and the apply: read again on the next attempt,
        // so the delta lands on the newest quantity.
        return Err(Outcome::Failed(OdooError::Server {
            name: "odoo.exceptions.ConcurrencyError".into(),
            message: "the quant changed while the count was applied; retrying on its new quantity"
                .into(),
            status: None,
        }));
    }
    Ok(Outcome::Applied {
        remote_ref: Some(format!("stock.quant,{quant}")),
        superseded: false,
        flagged: Vec::new(),
    })
}
