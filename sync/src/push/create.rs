//! New pickings: transfers, and pickings re-created by a conflict's resolution, marked in
//! `origin`.

use super::*;

/// The site's internal picking type: the warehouse's `int_type_id` ("Internal Transfers").
/// Without multi-step routes a warehouse also has other internal types (Pick, Pack,
/// Storage...) that exist archived; a transfer must not land on one of those.
pub async fn internal_picking_type<O: Odoo>(
    odoo: &O,
    warehouse: i64,
) -> Result<Option<i64>, OdooError> {
    let v = odoo
        .call(
            Call::new("stock.warehouse", "read")
                .ids(&[warehouse])
                .arg("fields", json!(["int_type_id"])),
        )
        .await?;
    Ok(records(v)
        .first()
        .and_then(|r| r.get("int_type_id"))
        .and_then(m2o_id))
}

/// Plain text as the body of an Html field (`stock.picking.note`).
fn html_paragraphs(text: &str) -> String {
    text.lines()
        .map(|line| {
            let escaped = line
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!("<p>{escaped}</p>")
        })
        .collect()
}

/// Pushes a transfer: an internal picking carrying the mark in `origin`.
pub async fn push_transfer<O: Odoo>(
    odoo: &O,
    entry: &PushEntry,
    op: &TransferOp,
    picking_type: i64,
) -> Outcome {
    push_new_picking(odoo, entry, &NewPicking::transfer(op, picking_type)).await
}

/// Creates a picking whose `origin` is the entry's mark, in the same call as its moves, then
/// confirms, reserves, sets the lines and validates it (no backorder). A retry after an
/// unknown outcome finds it by origin and carries on from its state.
pub async fn push_new_picking<O: Odoo>(odoo: &O, entry: &PushEntry, spec: &NewPicking) -> Outcome {
    match push_new_picking_inner(odoo, entry, spec).await {
        Ok(o) | Err(o) => o,
    }
}

async fn push_new_picking_inner<O: Odoo>(
    odoo: &O,
    entry: &PushEntry,
    spec: &NewPicking,
) -> Result<Outcome, Outcome> {
    let mark = mark(&entry.id);
    let origin = spec.origin_with(&mark);
    let edge = serde_json::to_value(spec).unwrap_or(Value::Null);
    let mut found = None;
    if entry.ambiguous {
        // `ilike`: the mark ends an origin that may name the original first.
        let v = run(
            odoo,
            Call::new("stock.picking", "search_read")
                .arg("domain", json!([["origin", "ilike", mark]]))
                .arg("fields", json!(["state", "name"]))
                .arg("order", "id"),
            &edge,
        )
        .await?;
        found = records(v).into_iter().next();
    }
    let (picking, state, name) = match found {
        Some(r) => (
            r.get("id").and_then(Value::as_i64).unwrap_or(0),
            text(&r, "state"),
            text(&r, "name"),
        ),
        None => {
            archived(
                odoo,
                spec.lines.iter().map(|l| l.product_id).collect(),
                &edge,
            )
            .await?;
            let serials: Vec<LineKey> = spec
                .lines
                .iter()
                .filter(|l| {
                    l.lot_name.as_deref().is_some_and(|n| !n.is_empty())
                        && l.quantity > EPS
                        && l.quantity <= 1.0 + EPS
                })
                .map(|l| LineKey {
                    move_id: 0,
                    product_id: l.product_id,
                    lot: l.lot_name.clone().unwrap_or_default(),
                    location_id: l.location_id,
                    package_id: 0,
                    side: spec.side,
                })
                .collect();
            serials_in_use(odoo, &serials, &edge).await?;
            let mut per_product: BTreeMap<i64, f64> = BTreeMap::new();
            for l in &spec.lines {
                *per_product.entry(l.product_id).or_insert(0.0) += l.quantity;
            }
            let moves: Vec<Value> = per_product
                .iter()
                .map(|(product, qty)| {
                    let mut mv = json!({"product_id": product, "product_uom_qty": qty,
                                        "location_id": spec.location_id, "location_dest_id": spec.location_dest_id});
                    if odoo.moves_take_name() {
                        // `stock.move.name` is required on 18 and gone on 19.
                        mv["name"] = json!(origin);
                    }
                    json!([0, 0, mv])
                })
                .collect();
            let mut vals = json!({"picking_type_id": spec.picking_type_id, "location_id": spec.location_id,
                                  "location_dest_id": spec.location_dest_id, "origin": origin,
                                  "move_ids": moves});
            if let Some(partner) = spec.partner_id {
                vals["partner_id"] = json!(partner);
            }
            if let Some(note) = spec.note.as_deref().filter(|n| !n.trim().is_empty()) {
                vals["note"] = json!(html_paragraphs(note));
            }
            let created = run(
                odoo,
                Call::new("stock.picking", "create").arg("vals_list", json!([vals])),
                &edge,
            )
            .await?;
            let Some(id) = ids_of(&created).first().copied() else {
                return Err(Outcome::Failed(OdooError::Protocol {
                    status: 200,
                    reason: format!("stock.picking create answered {created}"),
                }));
            };
            (id, "draft".to_owned(), String::new())
        }
    };
    let remote_ref = Some(if name.is_empty() {
        format!("stock.picking,{picking}")
    } else {
        name
    });
    match state.as_str() {
        "done" => {
            return Ok(Outcome::Applied {
                remote_ref,
                superseded: true,
                flagged: Vec::new(),
            });
        }
        "cancel" => {
            return Ok(Outcome::Conflict(Finding {
                kind: ConflictKind::PickingCancelled,
                message: "the picking the appliance created was cancelled in Odoo".into(),
                edge,
                cloud: json!({"state": "cancel", "picking_id": picking}),
            }));
        }
        "draft" => {
            run(
                odoo,
                Call::new("stock.picking", "action_confirm").ids(&[picking]),
                &edge,
            )
            .await?;
        }
        _ => {}
    }
    run(
        odoo,
        Call::new("stock.picking", "action_assign").ids(&[picking]),
        &edge,
    )
    .await?;
    let lines = read_lines(odoo, picking, &edge).await?;
    // Moves by product: from the lines when reserved, else read them.
    let mut move_of: BTreeMap<i64, i64> = lines
        .iter()
        .filter(|l| l.move_id != 0)
        .map(|l| (l.product_id, l.move_id))
        .collect();
    if spec
        .lines
        .iter()
        .any(|l| !move_of.contains_key(&l.product_id))
    {
        let v = run(
            odoo,
            Call::new("stock.move", "search_read")
                .arg("domain", json!([["picking_id", "=", picking]]))
                .arg("fields", json!(["product_id"]))
                .arg("order", "id"),
            &edge,
        )
        .await?;
        for r in records(v) {
            if let (Some(id), Some(product)) = (
                r.get("id").and_then(Value::as_i64),
                r.get("product_id").and_then(m2o_id),
            ) {
                move_of.entry(product).or_insert(id);
            }
        }
    }
    let mut targets: BTreeMap<LineKey, f64> = BTreeMap::new();
    for l in &spec.lines {
        let Some(move_id) = move_of.get(&l.product_id).copied() else {
            return Ok(Outcome::Conflict(Finding {
                kind: ConflictKind::Validation,
                message: format!(
                    "the created picking has no move for product {}",
                    l.product_id
                ),
                edge,
                cloud: json!({"picking_id": picking}),
            }));
        };
        *targets
            .entry(LineKey {
                move_id,
                product_id: l.product_id,
                lot: l.lot_name.clone().unwrap_or_default(),
                location_id: l.location_id,
                package_id: 0,
                side: spec.side,
            })
            .or_insert(0.0) += l.quantity;
    }
    let plan = plan_lines(&targets, &lines, true);
    let mut commands: Vec<Value> = plan
        .updates
        .iter()
        .map(|(id, vals)| json!([1, id, vals]))
        .collect();
    let (lots, _) = lot_ids(odoo, &plan.creates, &BTreeMap::new(), &edge).await?;
    let flagged = over_picks(odoo, &plan.creates, &edge).await?;
    for new in &plan.creates {
        let (src, dest) = match spec.side {
            Side::Source => (new.key.location_id, spec.location_dest_id),
            Side::Destination => (spec.location_id, new.key.location_id),
        };
        let mut vals = json!({"move_id": new.key.move_id, "picking_id": picking, "product_id": new.key.product_id,
                              "location_id": src, "location_dest_id": dest,
                              "quantity": new.quantity, "picked": true});
        if !new.key.lot.is_empty() {
            match lots.get(&(new.key.product_id, new.key.lot.clone())) {
                Some(id) => vals["lot_id"] = json!(id),
                None => vals["lot_name"] = json!(new.key.lot),
            }
        }
        commands.push(json!([0, 0, vals]));
    }
    if !commands.is_empty() {
        run(
            odoo,
            Call::new("stock.picking", "write")
                .ids(&[picking])
                .arg("vals", json!({"move_line_ids": commands})),
            &edge,
        )
        .await?;
    }
    validate_picking(odoo, picking, BackorderChoice::NoBackorder, &edge).await?;
    Ok(Outcome::Applied {
        remote_ref,
        superseded: false,
        flagged,
    })
}
