//! The push translation against the simulator, in-process: what lands in Odoo.
#![allow(clippy::unwrap_used)]

use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::odoo::Call;
use holdfast_sync::ops::{BackorderChoice, CountOp, Operation, PickOp, TransferOp, ValidateOp};
use holdfast_sync::push::{self, ConflictKind, Outcome, PushEntry};
use holdfast_sync::sim::{Cloud, SimConfig};
use serde_json::{Value, json};

fn cloud() -> Cloud {
    Cloud::new(
        SimConfig::default(),
        &Dataset::generate(&DatasetSpec::demo()),
    )
}

fn rows(
    cloud: &Cloud,
    model: &str,
    domain: Value,
    fields: &[&str],
) -> Vec<serde_json::Map<String, Value>> {
    let v = cloud
        .execute(
            Call::new(model, "search_read")
                .arg("domain", domain)
                .arg("fields", json!(fields))
                .arg("order", "id"),
        )
        .expect("search_read");
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

fn m2o(v: &Value) -> i64 {
    v.as_array().and_then(|a| a[0].as_i64()).unwrap_or(0)
}

fn lot_name(v: &Value) -> Option<String> {
    v.as_array().and_then(|a| a[1].as_str()).map(str::to_owned)
}

/// One pick entry per reserved line of the picking, taking what was reserved.
fn picks_for(cloud: &Cloud, picking: i64) -> Vec<Operation> {
    rows(
        cloud,
        "stock.move.line",
        json!([["picking_id", "=", picking]]),
        &["move_id", "product_id", "lot_id", "location_id", "quantity"],
    )
    .iter()
    .map(|l| {
        Operation::Pick(PickOp {
            picking_id: picking,
            move_id: m2o(&l["move_id"]),
            product_id: m2o(&l["product_id"]),
            location_id: m2o(&l["location_id"]),
            lot_name: lot_name(&l["lot_id"]),
            package_id: None,
            quantity: l["quantity"].as_f64().unwrap(),
            view_quantity: 100.0,
        })
    })
    .collect()
}

fn entries(ops: Vec<Operation>) -> Vec<PushEntry> {
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| PushEntry {
            seq: i as i64 + 1,
            id: uuid_like(i),
            op,
            ambiguous: false,
            sent_since: None,
        })
        .collect()
}

fn uuid_like(i: usize) -> String {
    format!("0190f000-0000-7000-8000-{i:012}")
}

fn state(cloud: &Cloud, picking: i64) -> String {
    rows(
        cloud,
        "stock.picking",
        json!([["id", "=", picking]]),
        &["state"],
    )[0]["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_full_pick_lands_in_three_calls_and_a_replay_is_superseded() {
    let cloud = cloud();
    let picking = 3;
    let mut ops = picks_for(&cloud, picking);
    assert!(ops.len() >= 3, "{ops:?}");
    ops.push(Operation::Validate(ValidateOp {
        picking_id: picking,
        backorder: BackorderChoice::NoBackorder,
    }));
    let batch = entries(ops);
    let before = cloud.calls();
    let outcome = push::push_picking(&cloud, picking, &[], &batch).await;
    assert!(
        matches!(
            outcome,
            Outcome::Applied {
                superseded: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(cloud.calls() - before, 3, "read lines, one write, validate");
    assert_eq!(state(&cloud, picking), "done");
    // The same batch again (an answer lost after validation): nothing sent, superseded.
    let before = cloud.calls();
    let again = push::push_picking(&cloud, picking, &[], &batch).await;
    assert!(
        matches!(
            again,
            Outcome::Applied {
                superseded: true,
                ..
            }
        ),
        "{again:?}"
    );
    assert_eq!(cloud.calls() - before, 1);
}

#[tokio::test]
async fn picks_survive_re_reservation_and_a_cancelled_picking_is_a_conflict() {
    let cloud = cloud();
    let picking = 3;
    let ops = picks_for(&cloud, picking);
    let first = entries(ops[..1].to_vec());
    assert!(matches!(
        push::push_picking(&cloud, picking, &[], &first).await,
        Outcome::Applied { .. }
    ));
    cloud.rereserve(picking);
    // Re-sending the first pick with the rest assigns the same absolute quantities.
    let rest = entries(ops.clone());
    assert!(matches!(
        push::push_picking(&cloud, picking, &[], &rest).await,
        Outcome::Applied { .. }
    ));
    let picked: f64 = rows(
        &cloud,
        "stock.move.line",
        json!([["picking_id", "=", picking], ["picked", "=", true]]),
        &["quantity"],
    )
    .iter()
    .map(|l| l["quantity"].as_f64().unwrap())
    .sum();
    let expected: f64 = ops
        .iter()
        .map(|o| match o {
            Operation::Pick(p) => p.quantity,
            _ => 0.0,
        })
        .sum();
    assert_eq!(picked, expected);
    cloud.cancel_picking(picking);
    let outcome = push::push_picking(
        &cloud,
        picking,
        &ops,
        &entries(vec![Operation::Validate(ValidateOp {
            picking_id: picking,
            backorder: BackorderChoice::Backorder,
        })]),
    )
    .await;
    match outcome {
        Outcome::Conflict(f) => assert_eq!(f.kind, ConflictKind::PickingCancelled),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_count_merges_its_delta_and_is_found_by_its_mark_after_a_lost_answer() {
    let cloud = cloud();
    let q = &rows(
        &cloud,
        "stock.quant",
        json!([["lot_id", "=", false], ["quantity", ">", 3]]),
        &["product_id", "location_id", "quantity"],
    )[0];
    let (product, location, quantity) = (
        m2o(&q["product_id"]),
        m2o(&q["location_id"]),
        q["quantity"].as_f64().unwrap(),
    );
    let qid = q["id"].as_i64().unwrap();
    // The floor counted 2 fewer than it saw; meanwhile the cloud shipped 1.
    let op = CountOp {
        product_id: product,
        location_id: location,
        lot_name: None,
        counted: quantity - 2.0,
        expected: quantity,
    };
    cloud.set_quantity(qid, quantity - 1.0);
    let mut entry = entries(vec![Operation::Count(op.clone())]).remove(0);
    let outcome = push::push_count(&cloud, &entry, &op).await;
    assert!(
        matches!(
            outcome,
            Outcome::Applied {
                superseded: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    let now = rows(
        &cloud,
        "stock.quant",
        json!([["id", "=", qid]]),
        &["quantity"],
    )[0]["quantity"]
        .as_f64()
        .unwrap();
    assert_eq!(
        now,
        quantity - 3.0,
        "delta merge: cloud's quantity minus the count's difference"
    );
    entry.ambiguous = true;
    let again = push::push_count(&cloud, &entry, &op).await;
    assert!(
        matches!(
            again,
            Outcome::Applied {
                superseded: true,
                ..
            }
        ),
        "{again:?}"
    );
    let after = rows(
        &cloud,
        "stock.quant",
        json!([["id", "=", qid]]),
        &["quantity"],
    )[0]["quantity"]
        .as_f64()
        .unwrap();
    assert_eq!(after, now);
}

#[tokio::test]
async fn a_transfer_creates_one_marked_picking_even_when_retried() {
    let cloud = cloud();
    let q = &rows(
        &cloud,
        "stock.quant",
        json!([["lot_id", "=", false], ["quantity", ">", 3]]),
        &["product_id", "location_id", "quantity"],
    )[0];
    let (product, from) = (m2o(&q["product_id"]), m2o(&q["location_id"]));
    let to = rows(
        &cloud,
        "stock.location",
        json!([["usage", "=", "internal"], ["id", "!=", from]]),
        &["id"],
    )[0]["id"]
        .as_i64()
        .unwrap();
    let pt = push::internal_picking_type(&cloud, 1)
        .await
        .unwrap()
        .expect("internal type");
    let op = TransferOp {
        product_id: product,
        lot_name: None,
        from_location_id: from,
        to_location_id: to,
        quantity: 2.0,
    };
    let mut entry = entries(vec![Operation::Transfer(op.clone())]).remove(0);
    let outcome = push::push_transfer(&cloud, &entry, &op, pt).await;
    assert!(
        matches!(
            outcome,
            Outcome::Applied {
                superseded: false,
                ..
            }
        ),
        "{outcome:?}"
    );
    entry.ambiguous = true;
    let again = push::push_transfer(&cloud, &entry, &op, pt).await;
    assert!(
        matches!(
            again,
            Outcome::Applied {
                superseded: true,
                ..
            }
        ),
        "{again:?}"
    );
    let marked = rows(
        &cloud,
        "stock.picking",
        json!([["origin", "=", push::mark(&entry.id)]]),
        &["state"],
    );
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["state"], "done");
    let at_to: f64 = rows(
        &cloud,
        "stock.quant",
        json!([["product_id", "=", product], ["location_id", "=", to]]),
        &["quantity"],
    )
    .iter()
    .map(|r| r["quantity"].as_f64().unwrap())
    .sum();
    assert!(at_to >= 2.0);
}

#[tokio::test]
async fn an_archived_product_holds_a_count_back() {
    let cloud = cloud();
    let q = &rows(
        &cloud,
        "stock.quant",
        json!([["lot_id", "=", false], ["quantity", ">", 3]]),
        &["product_id", "location_id", "quantity"],
    )[0];
    let op = CountOp {
        product_id: m2o(&q["product_id"]),
        location_id: m2o(&q["location_id"]),
        lot_name: None,
        counted: 1.0,
        expected: q["quantity"].as_f64().unwrap(),
    };
    cloud.archive_product(op.product_id);
    let entry = entries(vec![Operation::Count(op.clone())]).remove(0);
    match push::push_count(&cloud, &entry, &op).await {
        Outcome::Conflict(f) => assert_eq!(f.kind, ConflictKind::ProductArchived, "{f:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_received_lot_with_another_expiry_is_applied_and_flagged() {
    let cloud = cloud();
    // A receipt line for a lot-tracked product, naming a lot Odoo already has.
    let lot = &rows(&cloud, "stock.lot", json!([]), &["name", "product_id"])[0];
    let (product, name) = (
        m2o(&lot["product_id"]),
        lot["name"].as_str().unwrap().to_owned(),
    );
    cloud.with_tables(|t| {
        t.write(
            "stock.lot",
            lot["id"].as_i64().unwrap(),
            json!({"expiration_date": "2027-01-31 00:00:00"}),
            "2026-01-01 00:00:00",
        )
    });
    let picking = rows(
        &cloud,
        "stock.picking",
        json!([
            ["picking_type_id.code", "=", "incoming"],
            ["state", "=", "assigned"]
        ]),
        &["location_dest_id"],
    )[0]
    .clone();
    let id = picking["id"].as_i64().unwrap();
    let mv = rows(
        &cloud,
        "stock.move",
        json!([["picking_id", "=", id]]),
        &["product_id"],
    )[0]["id"]
        .as_i64()
        .unwrap();
    let op = Operation::Receive(holdfast_sync::ops::ReceiveOp {
        picking_id: id,
        move_id: mv,
        product_id: product,
        location_dest_id: m2o(&picking["location_dest_id"]),
        lot_name: Some(name),
        expiration_date: Some("2027-06-30 00:00:00".into()),
        quantity: 1.0,
    });
    match push::push_picking(&cloud, id, &[], &entries(vec![op])).await {
        Outcome::Applied { flagged, .. } => {
            assert_eq!(flagged.len(), 1, "{flagged:?}");
            assert_eq!(flagged[0].kind, ConflictKind::LotExpiry);
        }
        other => panic!("{other:?}"),
    }
}

type Answer = Result<Value, holdfast_sync::odoo::OdooError>;

/// The simulator, but the first call of `method` goes through `first` instead.
struct FirstCall {
    cloud: Cloud,
    method: &'static str,
    first: fn(&Cloud, Call) -> Answer,
    fired: std::sync::atomic::AtomicBool,
}

impl FirstCall {
    fn new(cloud: &Cloud, method: &'static str, first: fn(&Cloud, Call) -> Answer) -> FirstCall {
        FirstCall {
            cloud: cloud.clone(),
            method,
            first,
            fired: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl push::Odoo for FirstCall {
    fn call(&self, call: Call) -> impl std::future::Future<Output = Answer> + Send {
        use std::sync::atomic::Ordering;
        let answer = if call.method == self.method && !self.fired.swap(true, Ordering::SeqCst) {
            (self.first)(&self.cloud, call)
        } else {
            self.cloud.execute(call)
        };
        std::future::ready(answer)
    }

    fn major(&self) -> u32 {
        18
    }

    fn probe(
        &self,
    ) -> impl std::future::Future<Output = Result<(), holdfast_sync::odoo::OdooError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// The first call of `method` is lost on the way (the link broke before Odoo saw it): the
/// caller gets an unknown outcome.
fn lose_first(cloud: &Cloud, method: &'static str) -> FirstCall {
    FirstCall::new(cloud, method, |_, _| {
        Err(holdfast_sync::odoo::OdooError::Lost(
            "connection reset".into(),
        ))
    })
}

/// The first `button_validate` finds the picking validated a moment before (an earlier
/// attempt, killed with its answer lost, still committing in Odoo when this one read the
/// picking): Odoo refuses it.
fn validated_meanwhile(cloud: &Cloud) -> FirstCall {
    FirstCall::new(cloud, "button_validate", |cloud, call| {
        cloud.execute(call.clone())?;
        cloud.execute(call)
    })
}

#[tokio::test]
async fn a_validation_refused_because_it_was_done_meanwhile_is_read_again_not_a_conflict() {
    let cloud = cloud();
    let picking = 3;
    let mut ops = picks_for(&cloud, picking);
    ops.push(Operation::Validate(ValidateOp {
        picking_id: picking,
        backorder: BackorderChoice::NoBackorder,
    }));
    let batch = entries(ops);
    let racing = validated_meanwhile(&cloud);
    match push::push_picking(&racing, picking, &[], &batch).await {
        Outcome::Failed(e) => assert_eq!(
            e.class(),
            holdfast_sync::odoo::ErrorClass::Transient,
            "{e:?}"
        ),
        other => panic!("a refusal of a picking done meanwhile is no conflict: {other:?}"),
    }
    assert_eq!(state(&cloud, picking), "done");
    let again = push::push_picking(&cloud, picking, &[], &batch).await;
    assert!(
        matches!(
            again,
            Outcome::Applied {
                superseded: true,
                ..
            }
        ),
        "{again:?}"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn quantity(cloud: &Cloud, quant: i64) -> f64 {
    rows(
        cloud,
        "stock.quant",
        json!([["id", "=", quant]]),
        &["quantity"],
    )[0]["quantity"]
        .as_f64()
        .unwrap()
}

/// An untracked quant holding more than 3: (quant, product, location, quantity).
fn plain_quant(cloud: &Cloud) -> (i64, i64, i64, f64) {
    let q = &rows(
        cloud,
        "stock.quant",
        json!([["lot_id", "=", false], ["quantity", ">", 3]]),
        &["product_id", "location_id", "quantity"],
    )[0];
    (
        q["id"].as_i64().unwrap(),
        m2o(&q["product_id"]),
        m2o(&q["location_id"]),
        q["quantity"].as_f64().unwrap(),
    )
}

#[tokio::test]
async fn a_pending_count_applied_by_someone_else_is_not_applied_twice() {
    let cloud = cloud();
    let (qid, product, location, quantity_before) = plain_quant(&cloud);
    // Counted 3 more than the view showed.
    let op = CountOp {
        product_id: product,
        location_id: location,
        lot_name: None,
        counted: quantity_before + 3.0,
        expected: quantity_before,
    };
    let mut entry = entries(vec![Operation::Count(op.clone())]).remove(0);
    let sent = now_ms();
    // The apply is lost: `inventory_quantity` is written, the count pending in Odoo.
    let lossy = lose_first(&cloud, "action_apply_inventory");
    match push::push_count(&lossy, &entry, &op).await {
        Outcome::Failed(e) => assert_eq!(e.class(), holdfast_sync::odoo::ErrorClass::Ambiguous),
        other => panic!("{other:?}"),
    }
    assert_eq!(quantity(&cloud, qid), quantity_before);
    // A person clicks "Apply all" in Odoo's Physical Inventory: the wizard applies every
    // pending count under its own reason, without our mark.
    cloud
        .execute(
            Call::new("stock.quant", "action_apply_inventory")
                .ids(&[qid])
                .context("inventory_name", "Quantity Updated"),
        )
        .unwrap();
    assert_eq!(quantity(&cloud, qid), quantity_before + 3.0);
    entry.ambiguous = true;
    entry.sent_since = Some(sent);
    match push::push_count(&cloud, &entry, &op).await {
        Outcome::Conflict(f) => {
            assert_eq!(f.kind, ConflictKind::CountUnconfirmed, "{f:?}");
            assert!(
                f.cloud["inventory_moves"][0]["reference"]
                    .as_str()
                    .unwrap()
                    .starts_with("Quantity Updated"),
                "{f:?}"
            );
        }
        other => panic!("applied twice? {other:?}"),
    }
    assert_eq!(
        quantity(&cloud, qid),
        quantity_before + 3.0,
        "counted once, not twice"
    );
    // A person decides it is not in Odoo after all and sends it again: applied.
    entry.sent_since = None;
    assert!(matches!(
        push::push_count(&cloud, &entry, &op).await,
        Outcome::Applied {
            superseded: false,
            ..
        }
    ));
    assert_eq!(quantity(&cloud, qid), quantity_before + 6.0);
}

#[tokio::test]
async fn a_pending_count_nobody_applied_is_applied_once_on_retry() {
    let cloud = cloud();
    let (qid, product, location, quantity_before) = plain_quant(&cloud);
    let op = CountOp {
        product_id: product,
        location_id: location,
        lot_name: None,
        counted: quantity_before - 2.0,
        expected: quantity_before,
    };
    let mut entry = entries(vec![Operation::Count(op.clone())]).remove(0);
    let sent = now_ms();
    let lossy = lose_first(&cloud, "action_apply_inventory");
    assert!(matches!(
        push::push_count(&lossy, &entry, &op).await,
        Outcome::Failed(_)
    ));
    entry.ambiguous = true;
    entry.sent_since = Some(sent);
    let outcome = push::push_count(&cloud, &entry, &op).await;
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    assert_eq!(quantity(&cloud, qid), quantity_before - 2.0);
}

#[tokio::test]
async fn stock_set_by_hand_just_before_a_count_is_not_taken_for_it() {
    let cloud = cloud();
    let (qid, product, location, quantity_before) = plain_quant(&cloud);
    // Moments before the count is sent, someone sets this bin's stock by hand in Odoo (10
    // more): an unmarked inventory move inside the retry's look-back, but not of the count's
    // size, so it cannot be the count applied by someone else.
    cloud
        .execute(Call::new("stock.quant", "write").ids(&[qid]).arg(
            "vals",
            json!({"inventory_quantity": quantity_before + 10.0}),
        ))
        .unwrap();
    cloud
        .execute(Call::new("stock.quant", "action_apply_inventory").ids(&[qid]))
        .unwrap();
    let op = CountOp {
        product_id: product,
        location_id: location,
        lot_name: None,
        counted: quantity_before + 13.0,
        expected: quantity_before + 10.0,
    };
    let mut entry = entries(vec![Operation::Count(op.clone())]).remove(0);
    let sent = now_ms();
    let lossy = lose_first(&cloud, "action_apply_inventory");
    assert!(matches!(
        push::push_count(&lossy, &entry, &op).await,
        Outcome::Failed(_)
    ));
    entry.ambiguous = true;
    entry.sent_since = Some(sent);
    let outcome = push::push_count(&cloud, &entry, &op).await;
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    assert_eq!(
        quantity(&cloud, qid),
        quantity_before + 13.0,
        "counted once"
    );
}

/// A serial-tracked product's quant: (product, lot id, serial, bin).
fn serial_in_stock(cloud: &Cloud) -> (i64, i64, String, i64) {
    let serial_products: Vec<i64> = rows(
        cloud,
        "product.product",
        json!([["tracking", "=", "serial"]]),
        &["id"],
    )
    .iter()
    .map(|r| r["id"].as_i64().unwrap())
    .collect();
    let q = &rows(
        cloud,
        "stock.quant",
        json!([
            ["product_id", "in", serial_products],
            ["quantity", "=", 1],
            ["location_id.usage", "=", "internal"]
        ]),
        &["product_id", "lot_id", "location_id"],
    )[0];
    (
        m2o(&q["product_id"]),
        m2o(&q["lot_id"]),
        lot_name(&q["lot_id"]).unwrap(),
        m2o(&q["location_id"]),
    )
}

fn other_bin(cloud: &Cloud, not: i64) -> i64 {
    rows(
        cloud,
        "stock.location",
        json!([
            ["usage", "=", "internal"],
            ["id", "!=", not],
            ["barcode", "ilike", "WH-"]
        ]),
        &["id"],
    )[0]["id"]
        .as_i64()
        .unwrap()
}

/// A new receipt of one unit of `product` into the site's stock, confirmed and not yet
/// reserved: (picking, move).
fn receipt_for(cloud: &Cloud, product: i64) -> (i64, i64) {
    let receipts = &rows(
        cloud,
        "stock.picking.type",
        json!([["code", "=", "incoming"], ["warehouse_id", "=", 1]]),
        &["default_location_src_id", "default_location_dest_id"],
    )[0];
    let (vendor, stock) = (
        m2o(&receipts["default_location_src_id"]),
        m2o(&receipts["default_location_dest_id"]),
    );
    let created = cloud
        .execute(Call::new("stock.picking", "create").arg(
            "vals_list",
            json!([{"picking_type_id": receipts["id"], "location_id": vendor, "location_dest_id": stock,
                    "move_ids": [[0, 0, {"product_id": product, "product_uom_qty": 1.0, "name": "serial",
                                         "location_id": vendor, "location_dest_id": stock}]]}]),
        ))
        .unwrap();
    let id = created.as_array().and_then(|a| a[0].as_i64()).unwrap();
    cloud
        .execute(Call::new("stock.picking", "action_confirm").ids(&[id]))
        .unwrap();
    let mv = rows(
        cloud,
        "stock.move",
        json!([["picking_id", "=", id]]),
        &["id"],
    )[0]["id"]
        .as_i64()
        .unwrap();
    (id, mv)
}

#[tokio::test]
async fn odoo_takes_a_serial_twice_in_two_bins_but_not_in_one() {
    let cloud = cloud();
    let (product, _, serial, bin) = serial_in_stock(&cloud);
    let elsewhere = other_bin(&cloud, bin);
    for (dest, refused) in [(bin, true), (elsewhere, false)] {
        let (picking, mv) = receipt_for(&cloud, product);
        let vendor = rows(
            &cloud,
            "stock.picking",
            json!([["id", "=", picking]]),
            &["location_id"],
        )[0]["location_id"]
            .clone();
        cloud
            .execute(
                Call::new("stock.picking", "write").ids(&[picking]).arg(
                    "vals",
                    json!({"move_line_ids": [[0, 0, {"move_id": mv, "product_id": product, "lot_name": serial,
                           "location_id": m2o(&vendor), "location_dest_id": dest, "quantity": 1.0, "picked": true}]]}),
                ),
            )
            .unwrap();
        let validated = cloud.execute(
            Call::new("stock.picking", "button_validate")
                .ids(&[picking])
                .context("skip_backorder", true)
                .context("skip_sms", true),
        );
        assert_eq!(validated.is_err(), refused, "into {dest}: {validated:?}");
        if refused {
            // Leave the picking as it was for the next round.
            cloud.cancel_picking(picking);
        }
    }
}

#[tokio::test]
async fn a_serial_received_while_odoo_holds_it_in_another_bin_is_a_conflict() {
    let cloud = cloud();
    let (product, _, serial, bin) = serial_in_stock(&cloud);
    let (picking, mv) = receipt_for(&cloud, product);
    let dest = other_bin(&cloud, bin);
    let batch = entries(vec![
        Operation::Receive(holdfast_sync::ops::ReceiveOp {
            picking_id: picking,
            move_id: mv,
            product_id: product,
            location_dest_id: dest,
            lot_name: Some(serial.clone()),
            expiration_date: None,
            quantity: 1.0,
        }),
        Operation::Validate(ValidateOp {
            picking_id: picking,
            backorder: BackorderChoice::Backorder,
        }),
    ]);
    match push::push_picking(&cloud, picking, &[], &batch).await {
        Outcome::Conflict(f) => {
            assert_eq!(f.kind, ConflictKind::SerialInUse, "{f:?}");
            assert_eq!(f.cloud["quants"][0]["location_id"], json!(bin));
        }
        other => panic!("{other:?}"),
    }
    let held: f64 = rows(
        &cloud,
        "stock.quant",
        json!([
            ["lot_id.name", "=", serial],
            ["location_id.usage", "=", "internal"]
        ]),
        &["quantity"],
    )
    .iter()
    .map(|r| r["quantity"].as_f64().unwrap())
    .sum();
    assert_eq!(held, 1.0, "the serial is in stock once");
    assert_ne!(state(&cloud, picking), "done");
}

#[tokio::test]
async fn a_serial_picked_from_a_bin_while_odoo_holds_it_in_another_is_a_conflict() {
    let cloud = cloud();
    let (product, _, serial, bin) = serial_in_stock(&cloud);
    let wrong_bin = other_bin(&cloud, bin);
    let spec = push::NewPicking {
        picking_type_id: push::internal_picking_type(&cloud, 1)
            .await
            .unwrap()
            .unwrap(),
        location_id: wrong_bin,
        location_dest_id: other_bin(&cloud, wrong_bin),
        side: push::Side::Source,
        lines: vec![push::NewPickingLine {
            product_id: product,
            lot_name: Some(serial.clone()),
            location_id: wrong_bin,
            quantity: 1.0,
        }],
        partner_id: None,
        origin: None,
        note: None,
    };
    let entry = entries(vec![Operation::Transfer(TransferOp {
        product_id: product,
        lot_name: Some(serial.clone()),
        from_location_id: wrong_bin,
        to_location_id: spec.location_dest_id,
        quantity: 1.0,
    })])
    .remove(0);
    match push::push_new_picking(&cloud, &entry, &spec).await {
        Outcome::Conflict(f) => assert_eq!(f.kind, ConflictKind::SerialInUse, "{f:?}"),
        other => panic!("{other:?}"),
    }
    // From the bin that holds it, the same move is fine.
    let spec = push::NewPicking {
        location_id: bin,
        lines: vec![push::NewPickingLine {
            location_id: bin,
            ..spec.lines[0].clone()
        }],
        ..spec
    };
    let outcome = push::push_new_picking(&cloud, &entry, &spec).await;
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
}

#[tokio::test]
async fn transfers_use_the_warehouse_internal_type_not_the_archived_pick_type() {
    let cloud = cloud();
    let int_type = rows(
        &cloud,
        "stock.warehouse",
        json!([["id", "=", 1]]),
        &["int_type_id"],
    )[0]["int_type_id"]
        .clone();
    assert_eq!(int_type[1], "Internal Transfers", "{int_type}");
    let archived_pick = rows(
        &cloud,
        "stock.picking.type",
        json!([
            ["code", "=", "internal"],
            ["warehouse_id", "=", 1],
            ["active", "=", false]
        ]),
        &["name"],
    );
    assert_eq!(
        archived_pick[0]["name"], "Pick",
        "modelled like a fresh Odoo"
    );
    let pt = push::internal_picking_type(&cloud, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pt, m2o(&int_type));
    let (_, product, from, _) = plain_quant(&cloud);
    let op = TransferOp {
        product_id: product,
        lot_name: None,
        from_location_id: from,
        to_location_id: other_bin(&cloud, from),
        quantity: 1.0,
    };
    let entry = entries(vec![Operation::Transfer(op.clone())]).remove(0);
    assert!(matches!(
        push::push_transfer(&cloud, &entry, &op, pt).await,
        Outcome::Applied { .. }
    ));
    let made = rows(
        &cloud,
        "stock.picking",
        json!([["origin", "ilike", push::mark(&entry.id)]]),
        &["picking_type_id"],
    );
    assert_eq!(m2o(&made[0]["picking_type_id"]), m2o(&int_type));
}

#[tokio::test]
async fn a_re_created_picking_keeps_its_context_and_is_found_by_its_mark() {
    let cloud = cloud();
    // A delivery cancelled in Odoo, re-created from what the floor picked.
    let original = rows(
        &cloud,
        "stock.picking",
        json!([
            ["picking_type_id.code", "=", "outgoing"],
            ["state", "=", "assigned"],
            ["company_id", "=", 1]
        ]),
        &[
            "name",
            "origin",
            "partner_id",
            "picking_type_id",
            "location_id",
            "location_dest_id",
        ],
    )[0]
    .clone();
    let id = original["id"].as_i64().unwrap();
    let picks = picks_for(&cloud, id);
    cloud.cancel_picking(id);
    let name = original["name"].as_str().unwrap();
    let spec = push::NewPicking {
        picking_type_id: m2o(&original["picking_type_id"]),
        location_id: m2o(&original["location_id"]),
        location_dest_id: m2o(&original["location_dest_id"]),
        side: push::Side::Source,
        lines: picks
            .iter()
            .filter_map(|o| match o {
                Operation::Pick(p) => Some(push::NewPickingLine {
                    product_id: p.product_id,
                    lot_name: p.lot_name.clone(),
                    location_id: p.location_id,
                    quantity: p.quantity,
                }),
                _ => None,
            })
            .collect(),
        partner_id: Some(m2o(&original["partner_id"])),
        origin: Some(format!("{} {name}", original["origin"].as_str().unwrap())),
        note: Some(format!("re-created from {name} <cancelled in Odoo>")),
    };
    let mut entry = entries(vec![]).pop().unwrap_or(PushEntry {
        seq: 9,
        id: uuid_like(9),
        op: Operation::Pick(match &picks[0] {
            Operation::Pick(p) => p.clone(),
            _ => unreachable!(),
        }),
        ambiguous: false,
        sent_since: None,
    });
    // The answer to the validation is lost; the retry finds the picking by its mark.
    let lossy = lose_first(&cloud, "button_validate");
    let first = push::push_new_picking(&lossy, &entry, &spec).await;
    assert!(matches!(first, Outcome::Failed(_)), "{first:?}");
    entry.ambiguous = true;
    let outcome = push::push_new_picking(&cloud, &entry, &spec).await;
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    let made = rows(
        &cloud,
        "stock.picking",
        json!([["origin", "ilike", push::mark(&entry.id)]]),
        &["origin", "partner_id", "note", "picking_type_id", "state"],
    );
    assert_eq!(made.len(), 1, "{made:?}");
    let made = &made[0];
    assert_eq!(made["state"], "done");
    assert_eq!(m2o(&made["partner_id"]), m2o(&original["partner_id"]));
    assert_eq!(
        m2o(&made["picking_type_id"]),
        m2o(&original["picking_type_id"])
    );
    let origin = made["origin"].as_str().unwrap();
    assert!(origin.contains(name), "{origin}");
    assert!(
        origin.contains(original["origin"].as_str().unwrap()),
        "{origin}"
    );
    assert!(origin.ends_with(&push::mark(&entry.id)), "{origin}");
    assert_eq!(
        made["note"],
        json!(format!(
            "<p>re-created from {name} &lt;cancelled in Odoo&gt;</p>"
        ))
    );
}
