//! Picks, receipts and validation: a picking's batch as absolute, keyed line assignments
//! in one write, then a wizard-free validation.

use super::*;

/// What a move line is keyed by: Odoo re-creates lines with new ids, so never the line id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LineKey {
    pub move_id: i64,
    pub product_id: i64,
    /// Empty when untracked.
    pub lot: String,
    /// The bin on the floor's side of the line (see [`Side`]).
    pub location_id: i64,
    /// 0 when none.
    pub package_id: i64,
    pub side: Side,
}

/// The quantity every key should hold, from the picking's entries (earlier ones that reached
/// Odoo, then this batch), and whether the batch validates.
pub fn targets(prior: &[Operation], batch: &[Operation]) -> BTreeMap<LineKey, f64> {
    let mut out: BTreeMap<LineKey, f64> = BTreeMap::new();
    for op in prior.iter().chain(batch) {
        let (key, q) = match op {
            Operation::Pick(p) => (
                LineKey {
                    move_id: p.move_id,
                    product_id: p.product_id,
                    lot: p.lot_name.clone().unwrap_or_default(),
                    location_id: p.location_id,
                    package_id: p.package_id.unwrap_or(0),
                    side: Side::Source,
                },
                p.quantity,
            ),
            Operation::Receive(r) => (
                LineKey {
                    move_id: r.move_id,
                    product_id: r.product_id,
                    lot: r.lot_name.clone().unwrap_or_default(),
                    location_id: r.location_dest_id,
                    package_id: 0,
                    side: Side::Destination,
                },
                r.quantity,
            ),
            _ => continue,
        };
        *out.entry(key).or_insert(0.0) += q;
    }
    // Corrections can take a key below zero in floating point noise; more put back than
    // was taken leaves nothing to ship.
    for q in out.values_mut() {
        if *q < EPS {
            *q = 0.0;
        }
    }
    out
}

/// A move line as the push reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudLine {
    pub id: i64,
    pub move_id: i64,
    pub product_id: i64,
    pub lot_id: Option<i64>,
    pub lot: String,
    pub location_id: i64,
    pub location_dest_id: i64,
    pub package_id: i64,
    pub quantity: f64,
    pub picked: bool,
    pub state: String,
}

const LINE_FIELDS: &[&str] = &[
    "move_id",
    "product_id",
    "lot_id",
    "lot_name",
    "location_id",
    "location_dest_id",
    "package_id",
    "quantity",
    "picked",
    "state",
];

impl CloudLine {
    fn from_record(r: &Map<String, Value>) -> Option<CloudLine> {
        let lot = r
            .get("lot_id")
            .and_then(m2o_name)
            .or_else(|| r.get("lot_name").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        Some(CloudLine {
            id: r.get("id")?.as_i64()?,
            move_id: r.get("move_id").and_then(m2o_id).unwrap_or(0),
            product_id: r.get("product_id").and_then(m2o_id)?,
            lot_id: r.get("lot_id").and_then(m2o_id),
            lot,
            location_id: r.get("location_id").and_then(m2o_id)?,
            location_dest_id: r.get("location_dest_id").and_then(m2o_id)?,
            package_id: r.get("package_id").and_then(m2o_id).unwrap_or(0),
            quantity: num(r, "quantity"),
            picked: r.get("picked").and_then(Value::as_bool).unwrap_or(false),
            state: text(r, "state"),
        })
    }

    pub(super) fn key(&self, side: Side) -> LineKey {
        LineKey {
            move_id: self.move_id,
            product_id: self.product_id,
            lot: self.lot.clone(),
            location_id: match side {
                Side::Source => self.location_id,
                Side::Destination => self.location_dest_id,
            },
            package_id: self.package_id,
            side,
        }
    }
}

/// A line to create: Odoo needs the other side's location and the lot's id when it exists.
#[derive(Clone, Debug, PartialEq)]
pub struct NewLine {
    pub key: LineKey,
    pub quantity: f64,
}

/// The `move_line_ids` commands that bring the cloud's lines to the targets.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LinePlan {
    /// `[1, id, vals]` updates of existing lines.
    pub updates: Vec<(i64, Map<String, Value>)>,
    /// Lines to create (`[0, 0, vals]`) once their other side and lot are known.
    pub creates: Vec<NewLine>,
}

impl LinePlan {
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.creates.is_empty()
    }
}

/// Plans the line commands (pure): each key's first matching line gets the target with
/// `picked`, its other matching lines 0; keys with no line get a new one; when validating,
/// every line no key claims gets quantity 0 (Odoo would otherwise ship reserved lines nobody
/// touched).
pub fn plan_lines(
    targets: &BTreeMap<LineKey, f64>,
    lines: &[CloudLine],
    validating: bool,
) -> LinePlan {
    let mut plan = LinePlan::default();
    let sides: BTreeSet<Side> = targets.keys().map(|k| k.side).collect();
    let mut claimed: BTreeSet<i64> = BTreeSet::new();
    for (key, &target) in targets {
        let mut matching: Vec<&CloudLine> =
            lines.iter().filter(|l| l.key(key.side) == *key).collect();
        matching.sort_by_key(|l| l.id);
        let mut first = true;
        for line in &matching {
            claimed.insert(line.id);
            let (q, picked) = if first {
                (target, target > 0.0)
            } else {
                (0.0, false)
            };
            first = false;
            if (line.quantity - q).abs() > EPS || line.picked != picked {
                let mut vals = Map::new();
                vals.insert("quantity".into(), json!(q));
                vals.insert("picked".into(), json!(picked));
                plan.updates.push((line.id, vals));
            }
        }
        if matching.is_empty() && target > 0.0 {
            plan.creates.push(NewLine {
                key: key.clone(),
                quantity: target,
            });
        }
    }
    if validating {
        for line in lines {
            let claimed_by_other_side = sides.iter().any(|s| targets.contains_key(&line.key(*s)));
            if !claimed.contains(&line.id) && !claimed_by_other_side && line.quantity.abs() > EPS {
                let mut vals = Map::new();
                vals.insert("quantity".into(), json!(0.0));
                vals.insert("picked".into(), json!(false));
                plan.updates.push((line.id, vals));
            }
        }
    }
    plan
}

/// Compares a done picking's lines with the floor's targets: `Ok` when they agree.
pub fn compare_done(
    targets: &BTreeMap<LineKey, f64>,
    lines: &[CloudLine],
) -> Result<(), (Value, Value)> {
    let side = targets
        .keys()
        .next()
        .map(|k| k.side)
        .unwrap_or(Side::Source);
    let mut cloud: BTreeMap<LineKey, f64> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.quantity.abs() > EPS) {
        *cloud.entry(l.key(side)).or_insert(0.0) += l.quantity;
    }
    let edge: BTreeMap<&LineKey, f64> = targets
        .iter()
        .filter(|(_, q)| q.abs() > EPS)
        .map(|(k, q)| (k, *q))
        .collect();
    let same = edge.len() == cloud.len()
        && edge
            .iter()
            .all(|(k, q)| cloud.get(*k).is_some_and(|c| (c - q).abs() <= EPS));
    if same {
        Ok(())
    } else {
        let show = |m: Vec<(&LineKey, f64)>| -> Value {
            Value::Array(
                m.into_iter()
                    .map(|(k, q)| json!({"move_id": k.move_id, "product_id": k.product_id, "lot": k.lot, "location_id": k.location_id, "quantity": q}))
                    .collect(),
            )
        };
        Err((
            show(edge.into_iter().collect()),
            show(cloud.iter().map(|(k, q)| (k, *q)).collect()),
        ))
    }
}

pub(super) async fn read_lines<O: Odoo>(
    odoo: &O,
    picking: i64,
    edge: &Value,
) -> Result<Vec<CloudLine>, Outcome> {
    let v = run(
        odoo,
        Call::new("stock.move.line", "search_read")
            .arg("domain", json!([["picking_id", "=", picking]]))
            .arg("fields", json!(LINE_FIELDS))
            .arg("order", "id"),
        edge,
    )
    .await?;
    Ok(records(v)
        .iter()
        .filter_map(CloudLine::from_record)
        .collect())
}

/// The picking's header, read when its lines do not tell enough.
#[derive(Clone, Debug)]
struct PickingHead {
    name: String,
    state: String,
    location_id: i64,
    location_dest_id: i64,
}

async fn read_picking<O: Odoo>(
    odoo: &O,
    picking: i64,
    edge: &Value,
) -> Result<Option<PickingHead>, Outcome> {
    let v = run(
        odoo,
        Call::new("stock.picking", "read").ids(&[picking]).arg(
            "fields",
            json!(["name", "state", "location_id", "location_dest_id"]),
        ),
        edge,
    )
    .await;
    let v = match v {
        Ok(v) => v,
        // A deleted picking: MissingError on some versions, an empty list on others.
        Err(Outcome::Conflict(f)) if f.message.contains("does not exist") => return Ok(None),
        Err(o) => return Err(o),
    };
    Ok(records(v).first().map(|r| PickingHead {
        name: text(r, "name"),
        state: text(r, "state"),
        location_id: r.get("location_id").and_then(m2o_id).unwrap_or(0),
        location_dest_id: r.get("location_dest_id").and_then(m2o_id).unwrap_or(0),
    }))
}

/// Pushes one batch of a picking: its pick/receive entries in order, optionally ending with
/// its validation. `prior` holds the picking's entries that reached Odoo before.
pub async fn push_picking<O: Odoo>(
    odoo: &O,
    picking: i64,
    prior: &[Operation],
    batch: &[PushEntry],
) -> Outcome {
    match push_picking_inner(odoo, picking, prior, batch).await {
        Ok(o) | Err(o) => o,
    }
}

async fn push_picking_inner<O: Odoo>(
    odoo: &O,
    picking: i64,
    prior: &[Operation],
    batch: &[PushEntry],
) -> Result<Outcome, Outcome> {
    let ops: Vec<Operation> = batch.iter().map(|e| e.op.clone()).collect();
    let validate = ops.iter().find_map(|op| match op {
        Operation::Validate(v) => Some(v.backorder),
        _ => None,
    });
    let targets = targets(prior, &ops);
    let edge = json!({
        "picking_id": picking,
        "lines": targets.iter().filter(|(_, q)| q.abs() > EPS).map(|(k, q)| json!({"move_id": k.move_id, "product_id": k.product_id, "lot": k.lot, "location_id": k.location_id, "quantity": q})).collect::<Vec<_>>(),
        "validate": validate.map(|b| match b { BackorderChoice::Backorder => "backorder", BackorderChoice::NoBackorder => "no_backorder" }),
    });
    let lines = read_lines(odoo, picking, &edge).await?;
    // Lines tell the state of a picking that has any; otherwise read its header.
    let mut head: Option<PickingHead> = None;
    let state = match lines.first() {
        Some(l) if !l.state.is_empty() => l.state.clone(),
        _ => {
            head = read_picking(odoo, picking, &edge).await?;
            match &head {
                Some(h) => h.state.clone(),
                None => {
                    return Ok(Outcome::Conflict(Finding {
                        kind: ConflictKind::PickingCancelled,
                        message: format!("picking {picking} no longer exists in Odoo"),
                        edge,
                        cloud: json!({"state": "deleted"}),
                    }));
                }
            }
        }
    };
    match state.as_str() {
        "done" => {
            return Ok(match compare_done(&targets, &lines) {
                Ok(()) => Outcome::Applied {
                    remote_ref: head.map(|h| h.name),
                    superseded: true,
                    flagged: Vec::new(),
                },
                Err((e, c)) => Outcome::Conflict(Finding {
                    kind: ConflictKind::PickingDoneDifferently,
                    message: "the picking was validated in Odoo with other quantities".into(),
                    edge: json!({"lines": e, "validate": edge["validate"]}),
                    cloud: json!({"state": "done", "lines": c}),
                }),
            });
        }
        "cancel" => {
            return Ok(Outcome::Conflict(Finding {
                kind: ConflictKind::PickingCancelled,
                message: "the picking was cancelled in Odoo".into(),
                edge,
                cloud: json!({"state": "cancel"}),
            }));
        }
        _ => {}
    }
    // Only serials this batch names: earlier batches' were checked when they were sent.
    let named: Vec<LineKey> = self::targets(&[], &ops)
        .into_keys()
        .filter(|k| {
            !k.lot.is_empty() && targets.get(k).is_some_and(|q| *q > EPS && *q <= 1.0 + EPS)
        })
        .collect();
    serials_in_use(odoo, &named, &edge).await?;
    let mut flagged = Vec::new();
    let plan = plan_lines(&targets, &lines, validate.is_some());
    if !plan.is_empty() {
        let mut commands: Vec<Value> = plan
            .updates
            .iter()
            .map(|(id, vals)| json!([1, id, vals]))
            .collect();
        if !plan.creates.is_empty() {
            archived(
                odoo,
                plan.creates.iter().map(|n| n.key.product_id).collect(),
                &edge,
            )
            .await?;
            let expiries: BTreeMap<(i64, String), String> = ops
                .iter()
                .filter_map(|op| match op {
                    Operation::Receive(r) => Some((
                        (r.product_id, r.lot_name.clone()?),
                        r.expiration_date.clone()?,
                    )),
                    _ => None,
                })
                .collect();
            let (lots, expiry_findings) = lot_ids(odoo, &plan.creates, &expiries, &edge).await?;
            flagged.extend(expiry_findings);
            flagged.extend(over_picks(odoo, &plan.creates, &edge).await?);
            for new in &plan.creates {
                let other = match lines.iter().find(|l| l.move_id == new.key.move_id) {
                    Some(l) => match new.key.side {
                        Side::Source => l.location_dest_id,
                        Side::Destination => l.location_id,
                    },
                    None => {
                        if head.is_none() {
                            head = read_picking(odoo, picking, &edge).await?;
                        }
                        match (&head, new.key.side) {
                            (Some(h), Side::Source) => h.location_dest_id,
                            (Some(h), Side::Destination) => h.location_id,
                            (None, _) => 0,
                        }
                    }
                };
                let (src, dest) = match new.key.side {
                    Side::Source => (new.key.location_id, other),
                    Side::Destination => (other, new.key.location_id),
                };
                let mut vals = json!({
                    "move_id": new.key.move_id,
                    "picking_id": picking,
                    "product_id": new.key.product_id,
                    "location_id": src,
                    "location_dest_id": dest,
                    "quantity": new.quantity,
                    "picked": true,
                });
                if new.key.package_id != 0 {
                    vals["package_id"] = json!(new.key.package_id);
                }
                if !new.key.lot.is_empty() {
                    match lots.get(&(new.key.product_id, new.key.lot.clone())) {
                        Some(id) => vals["lot_id"] = json!(id),
                        // Receipts name new lots; Odoo creates them on validation.
                        None => vals["lot_name"] = json!(new.key.lot),
                    }
                }
                commands.push(json!([0, 0, vals]));
            }
        }
        run(
            odoo,
            Call::new("stock.picking", "write")
                .ids(&[picking])
                .arg("vals", json!({"move_line_ids": commands})),
            &edge,
        )
        .await
        .map_err(reread_on_missing)?;
    }
    let Some(choice) = validate else {
        return Ok(Outcome::Applied {
            remote_ref: head.map(|h| h.name),
            superseded: false,
            flagged,
        });
    };
    if let Err(refused) = validate_picking(odoo, picking, choice, &edge).await {
        let refused = reread_on_missing(refused);
        // Odoo refuses to validate a picking that is already done (18: "no quantities are
        // reserved", 19: "zero quantity"): our own earlier attempt, killed with its answer
        // lost, may have still been committing when this one read the picking, or someone
        // validated it meanwhile. Its state, not the message, tells: done → the next attempt
        // compares the whole batch with what Odoo did, instead of splitting it up.
        if matches!(refused, Outcome::Conflict(_))
            && read_picking(odoo, picking, &edge)
                .await?
                .is_some_and(|h| h.state == "done")
        {
            return Err(Outcome::Failed(OdooError::Server {
                name: "odoo.exceptions.ConcurrencyError".into(),
                message: "the picking was validated while this attempt ran; reading again".into(),
                status: None,
            }));
        }
        return Err(refused);
    }
    Ok(Outcome::Applied {
        remote_ref: head
            .map(|h| h.name)
            .or_else(|| Some(format!("stock.picking,{picking}"))),
        superseded: false,
        flagged,
    })
}

/// A line we read was re-created by Odoo (re-reservation) before our write reached it:
/// nothing was applied; read again and retry.
fn reread_on_missing(o: Outcome) -> Outcome {
    match o {
        // ...or the picking was validated meanwhile (its lines are locked): read again, and
        // the next attempt compares with what Odoo did.
        Outcome::Conflict(f)
            if f.message.contains("does not exist") || f.message.contains("locked") =>
        {
            Outcome::Failed(OdooError::Server {
                name: "odoo.exceptions.ConcurrencyError".into(),
                message: format!(
                    "a move line changed under the write ({}); reading again",
                    f.message
                ),
                status: None,
            })
        }
        other => other,
    }
}

/// Ids of the existing lots the new lines name, by (product, lot name).
pub(super) async fn lot_ids<O: Odoo>(
    odoo: &O,
    creates: &[NewLine],
    expiries: &BTreeMap<(i64, String), String>,
    edge: &Value,
) -> Result<(BTreeMap<(i64, String), i64>, Vec<Finding>), Outcome> {
    let names: BTreeSet<&str> = creates
        .iter()
        .map(|n| n.key.lot.as_str())
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        return Ok((BTreeMap::new(), Vec::new()));
    }
    let products: BTreeSet<i64> = creates.iter().map(|n| n.key.product_id).collect();
    let search = |fields: Value| {
        Call::new("stock.lot", "search_read")
            .arg(
                "domain",
                json!([["name", "in", names], ["product_id", "in", products]]),
            )
            .arg("fields", fields)
            .arg("order", "id")
    };
    // `expiration_date` exists only with product_expiry: without it, no expiry to compare.
    let v = if expiries.is_empty() {
        run(odoo, search(json!(["name", "product_id"])), edge).await?
    } else {
        match run(
            odoo,
            search(json!(["name", "product_id", "expiration_date"])),
            edge,
        )
        .await
        {
            Err(Outcome::Conflict(f)) if f.message.contains("Invalid field") => {
                run(odoo, search(json!(["name", "product_id"])), edge).await?
            }
            other => other?,
        }
    };
    let mut ids = BTreeMap::new();
    let mut flagged = Vec::new();
    for r in records(v) {
        let (Some(product), Some(id)) = (
            r.get("product_id").and_then(m2o_id),
            r.get("id").and_then(Value::as_i64),
        ) else {
            continue;
        };
        let name = text(&r, "name");
        let cloud = r.get("expiration_date").and_then(Value::as_str);
        if let (Some(floor), Some(cloud)) = (expiries.get(&(product, name.clone())), cloud)
            && floor.get(..10) != cloud.get(..10)
        {
            flagged.push(Finding {
                kind: ConflictKind::LotExpiry,
                message: format!(
                    "lot {name} of product {product} exists in Odoo with expiry {cloud}; the floor received it with {floor} (received into the existing lot)"
                ),
                edge: json!({"product_id": product, "lot": name, "expiration_date": floor}),
                cloud: json!({"lot_id": id, "expiration_date": cloud}),
            });
        }
        ids.insert((product, name), id);
    }
    Ok((ids, flagged))
}

/// Odoo refuses a duplicate serial only within one location: a serial received while the
/// cloud holds it in another bin, or picked from a bin while the cloud holds it in another,
/// would be applied and leave it in stock twice. Checked before anything is written: a
/// receipt's serial may be in stock nowhere, a pick's nowhere but its source bin.
pub(super) async fn serials_in_use<O: Odoo>(
    odoo: &O,
    keys: &[LineKey],
    edge: &Value,
) -> Result<(), Outcome> {
    // A serial is one unit: a key holding more names a lot, and costs no call.
    let keys: Vec<&LineKey> = keys.iter().filter(|k| !k.lot.is_empty()).collect();
    let tracked: BTreeSet<i64> = keys.iter().map(|k| k.product_id).collect();
    if tracked.is_empty() {
        return Ok(());
    }
    let serial: BTreeSet<i64> = ids_of(
        &run(
            odoo,
            Call::new("product.product", "search")
                .arg(
                    "domain",
                    json!([
                        ["id", "in", tracked],
                        ["tracking", "=", "serial"],
                        ["active", "in", [true, false]]
                    ]),
                )
                .arg("order", "id"),
            edge,
        )
        .await?,
    )
    .into_iter()
    .collect();
    let keys: Vec<&LineKey> = keys
        .into_iter()
        .filter(|k| serial.contains(&k.product_id))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let names: BTreeSet<&str> = keys.iter().map(|k| k.lot.as_str()).collect();
    let quants = records(
        run(
            odoo,
            Call::new("stock.quant", "search_read")
                .arg(
                    "domain",
                    json!([
                        ["product_id", "in", serial],
                        ["lot_id.name", "in", names],
                        ["quantity", ">", 0],
                        ["location_id.usage", "=", "internal"]
                    ]),
                )
                .arg(
                    "fields",
                    json!(["product_id", "lot_id", "location_id", "quantity"]),
                )
                .arg("order", "id"),
            edge,
        )
        .await?,
    );
    for key in keys {
        let held: Vec<&Map<String, Value>> = quants
            .iter()
            .filter(|q| {
                q.get("product_id").and_then(m2o_id) == Some(key.product_id)
                    && q.get("lot_id").and_then(m2o_name).as_deref() == Some(key.lot.as_str())
                    && (key.side == Side::Destination
                        || q.get("location_id").and_then(m2o_id) != Some(key.location_id))
            })
            .collect();
        if held.is_empty() {
            continue;
        }
        let places: Vec<String> = held
            .iter()
            .map(|q| {
                q.get("location_id")
                    .and_then(m2o_name)
                    .unwrap_or_else(|| "an unnamed location".into())
            })
            .collect();
        let verb = match key.side {
            Side::Destination => "received",
            Side::Source => "picked",
        };
        return Err(Outcome::Conflict(Finding {
            kind: ConflictKind::SerialInUse,
            message: format!(
                "serial {} of product {} was {verb} on the floor but Odoo holds it in stock at {}",
                key.lot,
                key.product_id,
                places.join(", ")
            ),
            edge: json!({"product_id": key.product_id, "lot": key.lot, "location_id": key.location_id, "side": key.side}),
            cloud: json!({"quants": held.iter().map(|q| json!({
                "id": q.get("id"),
                "location_id": q.get("location_id").and_then(m2o_id),
                "location": q.get("location_id").and_then(m2o_name),
                "quantity": num(q, "quantity"),
            })).collect::<Vec<_>>()}),
        }));
    }
    Ok(())
}

/// Archived products are a person's decision (apply by id, or not): held back.
pub(super) async fn archived<O: Odoo>(
    odoo: &O,
    products: BTreeSet<i64>,
    edge: &Value,
) -> Result<(), Outcome> {
    if products.is_empty() {
        return Ok(());
    }
    let v = run(
        odoo,
        Call::new("product.product", "search_read")
            .arg(
                "domain",
                json!([["id", "in", products], ["active", "=", false]]),
            )
            .arg("fields", json!(["display_name"]))
            .arg("order", "id"),
        edge,
    )
    .await?;
    let found = records(v);
    if found.is_empty() {
        return Ok(());
    }
    Err(Outcome::Conflict(Finding {
        kind: ConflictKind::ProductArchived,
        message: format!(
            "archived in Odoo: {}",
            found
                .iter()
                .map(|r| text(r, "display_name"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        edge: edge.clone(),
        cloud: json!({"archived": found.iter().filter_map(|r| r.get("id").cloned()).collect::<Vec<_>>()}),
    }))
}

/// New pick lines take stock nobody reserved for this picking: flag those taking more than
/// the cloud says is available (the physical pick is the warehouse's truth: it is applied).
pub(super) async fn over_picks<O: Odoo>(
    odoo: &O,
    creates: &[NewLine],
    edge: &Value,
) -> Result<Vec<Finding>, Outcome> {
    let picks: Vec<&NewLine> = creates
        .iter()
        .filter(|n| n.key.side == Side::Source)
        .collect();
    if picks.is_empty() {
        return Ok(Vec::new());
    }
    let products: BTreeSet<i64> = picks.iter().map(|n| n.key.product_id).collect();
    let locations: BTreeSet<i64> = picks.iter().map(|n| n.key.location_id).collect();
    let v = run(
        odoo,
        Call::new("stock.quant", "search_read")
            .arg(
                "domain",
                json!([
                    ["product_id", "in", products],
                    ["location_id", "in", locations]
                ]),
            )
            .arg(
                "fields",
                json!([
                    "product_id",
                    "location_id",
                    "lot_id",
                    "quantity",
                    "reserved_quantity"
                ]),
            )
            .arg("order", "id"),
        edge,
    )
    .await?;
    let quants = records(v);
    let mut out = Vec::new();
    for n in picks {
        let available: f64 = quants
            .iter()
            .filter(|q| {
                q.get("product_id").and_then(m2o_id) == Some(n.key.product_id)
                    && q.get("location_id").and_then(m2o_id) == Some(n.key.location_id)
                    && q.get("lot_id").and_then(m2o_name).unwrap_or_default() == n.key.lot
            })
            .map(|q| num(q, "quantity") - num(q, "reserved_quantity"))
            .sum();
        if n.quantity > available + EPS {
            out.push(Finding {
                kind: ConflictKind::OverPick,
                message: format!(
                    "picked {} of product {} at location {}; Odoo has {} available there",
                    n.quantity, n.key.product_id, n.key.location_id, available
                ),
                edge: json!({"product_id": n.key.product_id, "location_id": n.key.location_id, "lot": n.key.lot, "picked": n.quantity}),
                cloud: json!({"available": available}),
            });
        }
    }
    Ok(out)
}

/// Validates without wizards (context shortcuts), answering any wizard that still comes back
/// with the context it carries.
pub(super) async fn validate_picking<O: Odoo>(
    odoo: &O,
    picking: i64,
    choice: BackorderChoice,
    edge: &Value,
) -> Result<(), Outcome> {
    let mut call = Call::new("stock.picking", "button_validate")
        .ids(&[picking])
        .context("skip_backorder", true)
        .context("skip_sms", true);
    if choice == BackorderChoice::NoBackorder {
        call = call.context("picking_ids_not_to_backorder", json!([picking]));
    }
    let mut answer = run(odoo, call, edge).await?;
    // A wizard may answer with another wizard (SMS, then backorder); a handful is plenty.
    for _ in 0..3 {
        let Some(action) = answer.as_object() else {
            return Ok(());
        };
        let model = action
            .get("res_model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let context = action
            .get("context")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let method = match model.as_str() {
            "stock.backorder.confirmation" => match choice {
                BackorderChoice::Backorder => "process",
                BackorderChoice::NoBackorder => "process_cancel_backorder",
            },
            "confirm.stock.sms" => "dont_send_sms",
            other => {
                return Err(Outcome::Conflict(Finding {
                    kind: ConflictKind::Validation,
                    message: format!(
                        "Odoo asked for a decision the appliance does not make: {other}"
                    ),
                    edge: edge.clone(),
                    cloud: Value::Object(action.clone()),
                }));
            }
        };
        let mut create = Call::new(&model, "create").arg("vals_list", json!([{}]));
        let mut process = Call::new(&model, method);
        for (k, v) in &context {
            create = create.context(k, v.clone());
            process = process.context(k, v.clone());
        }
        let wizard = ids_of(&run(odoo, create, edge).await?);
        answer = run(odoo, process.ids(&wizard), edge).await?;
    }
    Err(Outcome::Conflict(Finding {
        kind: ConflictKind::Validation,
        message: "Odoo kept asking for confirmations on validation".into(),
        edge: edge.clone(),
        cloud: answer,
    }))
}
