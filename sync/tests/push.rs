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
