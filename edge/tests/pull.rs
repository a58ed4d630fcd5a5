//! The pull against the Odoo simulator: incremental pulls see what changed (and only that),
//! deletions, quants changed behind `write_date`'s back, and cloud-side edits of pickings the
//! floor owns.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use holdfast::config::RawConfig;
use holdfast::pull::{PullKind, connect};
use holdfast::store::{Lane, NewEntry, Store, StoreOptions};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::ops::{Operation, PickOp};
use holdfast_sync::sim::{SimConfig, Simulator, odoo_now};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn odoo_config(sim: &Simulator) -> holdfast::config::OdooConfig {
    let c = sim.config();
    let text = format!(
        "[site]\nid = \"t\"\n[odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\n",
        sim.url(),
        c.database,
        c.login,
        c.api_key
    );
    RawConfig::from_toml(&text)
        .unwrap()
        .validate()
        .unwrap()
        .odoo
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_pulls_follow_changes_deletions_and_owned_pickings() {
    let data = Dataset::generate(&DatasetSpec {
        seed: 3,
        products: 300,
        quants: 2_000,
        pickings: 60,
    });
    let sim = Simulator::start(SimConfig::default(), &data).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
    let stop = CancellationToken::new();
    let mut puller = connect(&store, &odoo_config(&sim), Default::default())
        .await
        .unwrap();

    let full = puller.pull(PullKind::Full, &stop).await.unwrap();
    assert!(full.records > 1_000, "{full:?}");

    // Nothing changed: an incremental pull reads next to nothing.
    let quiet = puller.pull(PullKind::Incremental, &stop).await.unwrap();
    // Records inside the safety overlap are read again, but known (id, write_date) pairs
    // are not changes: nothing is written.
    assert_eq!(quiet.records, 0, "idle incremental wrote {quiet:?}");
    assert!(
        quiet.unchanged > 0,
        "the overlap window was read again: {quiet:?}"
    );

    // The floor starts picking one picking: it owns it now.
    let picking = data
        .pickings
        .iter()
        .find(|p| p.company_id.0 == 1 && data.moves.iter().any(|m| m.picking_id == Some(p.id)))
        .unwrap();
    let mv = data
        .moves
        .iter()
        .find(|m| m.picking_id == Some(picking.id))
        .unwrap();
    store
        .append(
            Lane::Device,
            NewEntry {
                id: None,
                device: "h1".into(),
                operator: None,
                op: Operation::Pick(PickOp {
                    picking_id: picking.id.0,
                    move_id: mv.id.0,
                    product_id: mv.product_id.0,
                    location_id: 1,
                    lot_name: None,
                    package_id: None,
                    quantity: 1.0,
                    view_quantity: 1.0,
                }),
            },
        )
        .await
        .unwrap();

    // Meanwhile, in the cloud: a product renamed, the owned picking's move changed, a move
    // line of another picking deleted, and a quant changed by a raw-SQL path.
    let product = data.products[5].id.0;
    let other_line = data
        .move_lines
        .iter()
        .find(|l| {
            l.picking_id != Some(picking.id)
                && data
                    .pickings
                    .iter()
                    .any(|p| Some(p.id) == l.picking_id && p.company_id.0 == 1)
        })
        .unwrap();
    let wh_bin = data
        .locations
        .iter()
        .find(|l| {
            l.warehouse_id.map(|w| w.0) == Some(1)
                && l.barcode.as_deref().is_some_and(|b| b.starts_with("WH-"))
        })
        .unwrap();
    let quant = data
        .quants
        .iter()
        .find(|q| q.location_id == wh_bin.id)
        .unwrap();
    sim.with_tables(|t| {
        let now = odoo_now();
        assert!(t.write(
            "product.product",
            product,
            json!({"name": "Renamed in Odoo"}),
            &now
        ));
        assert!(t.write(
            "stock.move",
            mv.id.0,
            json!({"product_uom_qty": 99.0}),
            &now
        ));
        assert!(t.unlink("stock.move.line", other_line.id.0));
        assert!(t.write_raw("stock.quant", quant.id.0, json!({"quantity": 4242.0})));
    });

    let mut seen_quant = false;
    let mut changes = 0;
    // Quant reconciliation walks the locations a few at a time: enough pulls reach them all.
    let locations = store.read(|r| r.internal_locations(1)).unwrap().len();
    for _ in 0..=(locations / 8 + 1) {
        let report = puller.pull(PullKind::Incremental, &stop).await.unwrap();
        assert!(report.records < 20, "incremental pulled {report:?}");
        changes += report.owned_changes;
        seen_quant |= store
            .read(|r| {
                r.on_hand(
                    quant.product_id.0,
                    wh_bin.id.0,
                    quant.lot_name.as_deref().unwrap_or(""),
                )
            })
            .unwrap()
            == 4242.0;
    }
    assert!(
        seen_quant,
        "a quant changed behind write_date's back was reconciled"
    );
    let hits = store
        .read(|r| r.lookup_barcode(data.products[5].barcode.as_deref().unwrap()))
        .unwrap();
    assert!(format!("{hits:?}").contains("Renamed in Odoo"), "{hits:?}");
    assert!(
        !store
            .read(|r| r.mirror_ids(holdfast_sync::records::Model::MoveLine))
            .unwrap()
            .contains(&other_line.id.0)
    );

    // The owned picking's change is recorded, not silently taken.
    assert!(changes >= 1);
    let recorded = store.read(|r| r.cloud_changes()).unwrap();
    assert!(
        recorded.iter().any(|c| c.picking_id == picking.id.0
            && c.model == "stock.move"
            && c.summary.contains("demand 99")),
        "{recorded:?}"
    );
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_full_pull_resumes_after_its_last_page_without_loss() {
    use holdfast_sync::records::Model;
    use holdfast_sync::sim::Fault;
    let data = Dataset::generate(&DatasetSpec {
        seed: 5,
        products: 300,
        quants: 5_000,
        pickings: 60,
    });
    let sim = Simulator::start(SimConfig::default(), &data).await.unwrap();
    let stop = CancellationToken::new();

    // Reference: one uninterrupted full pull into a fresh store.
    let ref_dir = tempfile::tempdir().unwrap();
    let reference = Store::open(StoreOptions::new(ref_dir.path().join("h.db"), "t")).unwrap();
    let full = connect(&reference, &odoo_config(&sim), Default::default())
        .await
        .unwrap()
        .pull(PullKind::Full, &stop)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
    let mut puller = connect(&store, &odoo_config(&sim), Default::default())
        .await
        .unwrap();
    // Eight models before quants with a page and an id-set read each, and the products' units
    // (fields were asked at connect); then the first page of quants passes and the connection
    // breaks on the second.
    sim.inject(std::iter::repeat_n(Fault::Pass, 18).chain([Fault::Reset]));
    let err = puller.pull(PullKind::Full, &stop).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("connection to Odoo lost"),
        "{err:#}"
    );
    let cursor = store.read(|r| r.cursor(Model::Quant)).unwrap();
    assert!(cursor.resume_after.is_some_and(|id| id > 0), "{cursor:?}");

    let resumed = puller.pull(PullKind::Full, &stop).await.unwrap();
    assert!(
        resumed.records < full.records,
        "resumed, not restarted: {resumed:?} vs {full:?}"
    );
    assert_eq!(
        store.read(|r| r.cursor(Model::Quant)).unwrap().resume_after,
        None
    );

    // Nothing lost, nothing doubled: the mirror equals the uninterrupted one.
    for model in Model::ALL {
        assert_eq!(
            store.read(|r| r.mirror_ids(*model)).unwrap(),
            reference.read(|r| r.mirror_ids(*model)).unwrap(),
            "{model:?}"
        );
    }
    let total = |s: &Store| {
        data.quants
            .iter()
            .map(|q| {
                s.read(|r| {
                    r.on_hand(
                        q.product_id.0,
                        q.location_id.0,
                        q.lot_name.as_deref().unwrap_or(""),
                    )
                })
                .unwrap()
            })
            .sum::<f64>()
    };
    assert_eq!(total(&store), total(&reference));
}

/// The scope's first picking of `code` (incoming, outgoing, internal) with a move, and that
/// move.
fn picking_with_move(
    data: &Dataset,
    code: holdfast_sync::records::PickingCode,
) -> (
    &holdfast_sync::records::Picking,
    &holdfast_sync::records::Move,
) {
    data.pickings
        .iter()
        .filter(|p| {
            data.picking_types.iter().any(|t| {
                t.id == p.picking_type_id
                    && t.code == code
                    && t.warehouse_id.map(|w| w.0) == Some(1)
            })
        })
        .find_map(|p| {
            data.moves
                .iter()
                .find(|m| m.picking_id == Some(p.id))
                .map(|m| (p, m))
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_held_back_while_entries_were_in_flight_are_read_again_once_they_settle() {
    use holdfast::store::Transition;
    use holdfast_sync::ops::ReceiveOp;
    use holdfast_sync::records::{Model, PickingCode};
    let data = Dataset::generate(&DatasetSpec {
        seed: 11,
        products: 100,
        quants: 400,
        pickings: 30,
    });
    let sim = Simulator::start(SimConfig::default(), &data).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
    let stop = CancellationToken::new();
    let mut puller = connect(&store, &odoo_config(&sim), Default::default())
        .await
        .unwrap();
    puller.pull(PullKind::Full, &stop).await.unwrap();

    // A receipt on the floor names a new lot; the push has sent it (in flight).
    let (picking, mv) = picking_with_move(&data, PickingCode::Incoming);
    let lot = "HF-HELD-LOT-1";
    let entry = store
        .append(
            Lane::Background,
            NewEntry {
                id: None,
                device: "h1".into(),
                operator: None,
                op: Operation::Receive(ReceiveOp {
                    picking_id: picking.id.0,
                    move_id: mv.id.0,
                    product_id: mv.product_id.0,
                    location_dest_id: mv.location_dest_id.0,
                    lot_name: Some(lot.into()),
                    expiration_date: None,
                    quantity: 2.0,
                }),
            },
        )
        .await
        .unwrap();
    store
        .transition(Transition::InFlight { seq: entry.seq })
        .await
        .unwrap();
    // Odoo applied it (the lot exists now) and someone changed the move's demand.
    sim.with_tables(|t| {
        let now = odoo_now();
        let id = t.next_id("stock.lot");
        t.insert(
            "stock.lot",
            id,
            serde_json::Map::from_iter([
                ("product_id".into(), json!(mv.product_id.0)),
                ("name".into(), json!(lot)),
                ("company_id".into(), json!(1)),
            ]),
            &now,
        );
        assert!(t.write(
            "stock.move",
            mv.id.0,
            json!({"product_uom_qty": 77.0}),
            &now
        ));
    });
    let lot_known = |store: &Store| {
        store
            .read(|r| r.lookup_barcode(lot))
            .unwrap()
            .iter()
            .any(|h| matches!(h, holdfast::store::BarcodeHit::Lot { .. }))
    };
    let demand = |store: &Store| {
        store
            .read(|r| r.picking(picking.id.0))
            .unwrap()
            .unwrap()
            .1
            .iter()
            .find(|m| m.move_id == mv.id.0)
            .unwrap()
            .demand
    };

    // The pull reads them while the entry is in flight: both rows are held back.
    let held = puller.pull(PullKind::Incremental, &stop).await.unwrap();
    assert!(held.held_back >= 2, "{held:?}");
    assert!(!lot_known(&store));

    // Odoo confirms; the next pull (inside the same overlap window) must bring both rows.
    store
        .transition(Transition::Applied {
            seq: entry.seq,
            remote_ref: None,
        })
        .await
        .unwrap();
    let report = puller.pull(PullKind::Incremental, &stop).await.unwrap();
    assert!(
        lot_known(&store),
        "the received lot is in the mirror: {report:?}"
    );
    assert_eq!(demand(&store), 77.0, "{report:?}");
    // Once written, they are forgotten: later pulls do not read them again.
    for model in [Model::Lot, Model::Move] {
        let left = store
            .read(|r| r.settled_held_back(model, holdfast::store::Epoch(i64::MAX)))
            .unwrap();
        assert!(left.is_empty(), "{model:?}: {left:?}");
    }
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_reserved_on_an_existing_lot_shows_the_lot() {
    use holdfast_sync::records::{PickingCode, Tracking};
    let data = Dataset::generate(&DatasetSpec {
        seed: 3,
        products: 300,
        quants: 2_000,
        pickings: 60,
    });
    // An outgoing picking of a lot-tracked product with stock in lots.
    let (picking, mv) =
        data.pickings
            .iter()
            .filter(|p| {
                data.picking_types.iter().any(|t| {
                    t.id == p.picking_type_id
                        && t.code != PickingCode::Incoming
                        && t.warehouse_id.map(|w| w.0) == Some(1)
                }) && p.state.is_open()
            })
            .flat_map(|p| {
                data.moves
                    .iter()
                    .filter(move |m| m.picking_id == Some(p.id))
                    .map(move |m| (p, m))
            })
            .find(|(_, m)| {
                data.products
                    .iter()
                    .any(|p| p.id == m.product_id && p.tracking == Tracking::Lot)
                    && data.quants.iter().any(|q| {
                        q.product_id == m.product_id && q.lot_id.is_some() && q.quantity > 0.0
                    })
            })
            .unwrap();
    let sim = Simulator::start(SimConfig::default(), &data).await.unwrap();
    // Odoo's scheduler reserves it again: the lines name existing lots by lot_id.
    sim.rereserve(picking.id.0);
    let reserved_lots: Vec<String> = sim.with_tables(|t| {
        t.table("stock.move.line")
            .unwrap()
            .values()
            .filter(|l| l["move_id"] == json!(mv.id.0))
            .filter_map(|l| l["lot_id"].as_i64())
            .map(|lot| t.display_name("stock.lot", lot))
            .collect()
    });
    assert!(!reserved_lots.is_empty(), "the move was reserved on lots");

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
    let stop = CancellationToken::new();
    connect(&store, &odoo_config(&sim), Default::default())
        .await
        .unwrap()
        .pull(PullKind::Full, &stop)
        .await
        .unwrap();
    let (_, moves) = store.read(|r| r.picking(picking.id.0)).unwrap().unwrap();
    let shown: Vec<Option<String>> = moves
        .iter()
        .find(|m| m.move_id == mv.id.0)
        .unwrap()
        .reserved
        .iter()
        .map(|(_, lot, _)| lot.clone())
        .collect();
    assert_eq!(
        shown,
        reserved_lots.into_iter().map(Some).collect::<Vec<_>>(),
        "reserved lines name their lots"
    );
    let by_move = store.read(|r| r.reservations(mv.id.0)).unwrap();
    assert!(
        by_move.iter().all(|(_, lot, _)| !lot.is_empty()),
        "{by_move:?}"
    );

    // The floor owns the picking; Odoo moves a reserved line to another lot (only `lot_id`
    // changes): the owned picking's change is recorded with both lots.
    store
        .append(
            Lane::Background,
            NewEntry {
                id: None,
                device: "h1".into(),
                operator: None,
                op: Operation::Pick(PickOp {
                    picking_id: picking.id.0,
                    move_id: mv.id.0,
                    product_id: mv.product_id.0,
                    location_id: by_move[0].0,
                    lot_name: Some(by_move[0].1.clone()),
                    package_id: None,
                    quantity: 1.0,
                    view_quantity: 1.0,
                }),
            },
        )
        .await
        .unwrap();
    let other = "LOT-MOVED-IN-ODOO";
    // Usually within the same second as the reservation the last pull read: write_date reads
    // to the second, so only the content tells this line changed.
    sim.with_tables(|t| {
        let now = odoo_now();
        let lot = t.next_id("stock.lot");
        t.insert(
            "stock.lot",
            lot,
            serde_json::Map::from_iter([
                ("product_id".into(), json!(mv.product_id.0)),
                ("name".into(), json!(other)),
                ("company_id".into(), json!(1)),
            ]),
            &now,
        );
        let line = t
            .table("stock.move.line")
            .unwrap()
            .iter()
            .find(|(_, l)| l["move_id"] == json!(mv.id.0))
            .map(|(id, _)| *id)
            .unwrap();
        assert!(t.write("stock.move.line", line, json!({"lot_id": lot}), &now));
    });
    let mut puller = connect(&store, &odoo_config(&sim), Default::default())
        .await
        .unwrap();
    puller.pull(PullKind::Incremental, &stop).await.unwrap();
    let changes = store.read(|r| r.cloud_changes_of(picking.id.0)).unwrap();
    let from = format!("lot {}", by_move[0].1);
    assert!(
        changes.iter().any(|c| c.model == "stock.move.line"
            && c.summary.contains(&from)
            && c.summary.contains(&format!("lot {other}"))),
        "{changes:?}"
    );
    store.shutdown().await.unwrap();
}

/// A full pull mirrors packages and packagings from Odoo 18's models and from 19's
/// (`stock.package`; packagings as `product.uom` with the quantity from the unit factors),
/// and an incremental pull on 19 follows a packaging added in the cloud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_and_packagings_are_mirrored_from_odoo_18_and_19() {
    use holdfast::store::BarcodeHit;
    let data = Dataset::generate(&DatasetSpec::demo());
    assert!(!data.packagings.is_empty() && !data.packages.is_empty());
    for version in [18, 19] {
        let sim = Simulator::start(
            SimConfig {
                version,
                ..SimConfig::default()
            },
            &data,
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        let stop = CancellationToken::new();
        let progress = holdfast::pull::ProgressHandle::default();
        let mut puller = connect(&store, &odoo_config(&sim), progress.clone())
            .await
            .unwrap();
        let report = puller.pull(PullKind::Full, &stop).await.unwrap();
        assert!(report.records > 100, "Odoo {version}: {report:?}");
        let counts = store.read(|r| r.mirror_counts()).unwrap();
        assert_eq!(
            counts["packaging"],
            data.packagings.len() as i64,
            "Odoo {version}"
        );
        assert_eq!(
            counts["package"],
            data.packages.len() as i64,
            "Odoo {version}"
        );
        for p in &data.packagings {
            let hits = store
                .read(|r| r.lookup_barcode(p.barcode.as_deref().unwrap()))
                .unwrap();
            assert!(
                hits.contains(&BarcodeHit::Packaging {
                    product_id: p.product_id.0,
                    qty: 12.0
                }),
                "Odoo {version}: {hits:?}"
            );
        }
        for p in &data.packages {
            let hits = store.read(|r| r.lookup_barcode(&p.name)).unwrap();
            assert_eq!(hits, [BarcodeHit::Package { id: p.id.0 }], "Odoo {version}");
        }
        let status = progress.lock().unwrap().clone();
        assert!(
            status.degraded_features.is_empty(),
            "Odoo {version}: {:?}",
            status.degraded_features
        );
        assert_eq!(status.last_error, None, "Odoo {version}");

        if version >= 19 {
            // A pallet of 40 added in Odoo 19: a unit of 40 Units, linked to the product.
            let product = data.packagings[0].product_id.0;
            sim.with_tables(|t| {
                let now = odoo_now();
                let uom = t.next_id("uom.uom");
                t.insert(
                    "uom.uom",
                    uom,
                    serde_json::Map::from_iter([
                        ("name".into(), json!("Pallet of 40")),
                        ("relative_factor".into(), json!(40.0)),
                        ("relative_uom_id".into(), json!(1)),
                        ("factor".into(), json!(40.0)),
                    ]),
                    &now,
                );
                let id = t.next_id("product.uom");
                t.insert(
                    "product.uom",
                    id,
                    serde_json::Map::from_iter([
                        ("product_id".into(), json!(product)),
                        ("uom_id".into(), json!(uom)),
                        ("barcode".into(), json!("09999999000040")),
                        ("company_id".into(), json!(false)),
                    ]),
                    &now,
                );
            });
            let report = puller.pull(PullKind::Incremental, &stop).await.unwrap();
            assert!(report.records >= 1, "{report:?}");
            assert_eq!(
                store.read(|r| r.lookup_barcode("09999999000040")).unwrap(),
                [BarcodeHit::Packaging {
                    product_id: product,
                    qty: 40.0
                }]
            );
            // The pallet becomes 48 in Odoo, months after its packaging was made: only the
            // unit changes (the `product.uom` row keeps its old stamp, outside the pull's
            // overlap), and the next incremental pull follows.
            sim.with_tables(|t| {
                let row = t
                    .table("product.uom")
                    .unwrap()
                    .iter()
                    .find(|(_, r)| r["barcode"] == json!("09999999000040"))
                    .map(|(id, _)| *id)
                    .unwrap();
                let old = json!({"write_date": "2026-01-01 00:00:00"});
                assert!(t.write_raw("product.uom", row, old));
                let uom = t
                    .table("uom.uom")
                    .unwrap()
                    .iter()
                    .find(|(_, r)| r["name"] == json!("Pallet of 40"))
                    .map(|(id, _)| *id)
                    .unwrap();
                let vals = json!({"name": "Pallet of 48", "relative_factor": 48.0, "factor": 48.0});
                assert!(t.write("uom.uom", uom, vals, &odoo_now()));
            });
            puller.pull(PullKind::Incremental, &stop).await.unwrap();
            assert_eq!(
                store.read(|r| r.lookup_barcode("09999999000040")).unwrap(),
                [BarcodeHit::Packaging {
                    product_id: product,
                    qty: 48.0
                }],
                "a unit's new factor reaches its packagings"
            );
        }
        store.shutdown().await.unwrap();
    }
}

/// An Odoo without packages or packagings (both optional) is mirrored without them: the
/// pull succeeds and status names what is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odoo_without_optional_models_is_pulled_with_those_features_degraded() {
    let data = Dataset::generate(&DatasetSpec::demo());
    let sim = Simulator::start(
        SimConfig {
            version: 19,
            ..SimConfig::default()
        },
        &data,
    )
    .await
    .unwrap();
    // Packages uninstalled, so to speak: ir.model no longer lists stock.package.
    sim.with_tables(|t| {
        let gone: Vec<i64> = t
            .table("ir.model")
            .unwrap()
            .iter()
            .filter(|(_, r)| r["model"] == json!("stock.package"))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            t.unlink("ir.model", id);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
    let progress = holdfast::pull::ProgressHandle::default();
    let mut puller = connect(&store, &odoo_config(&sim), progress.clone())
        .await
        .unwrap();
    puller
        .pull(PullKind::Full, &CancellationToken::new())
        .await
        .unwrap();
    let counts = store.read(|r| r.mirror_counts()).unwrap();
    assert_eq!(counts["package"], 0);
    assert_eq!(counts["packaging"], data.packagings.len() as i64);
    assert_eq!(
        progress.lock().unwrap().degraded_features,
        ["packages (odoo has neither stock.quant.package nor stock.package)"]
    );
    store.shutdown().await.unwrap();
}

/// `write_date` reads to the second (and is the transaction's start): a record changed again
/// within the second the last pull read comes back with the same stamp and other values, and
/// must still reach the mirror rather than pass for a record already pulled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_within_the_second_already_pulled_still_arrives() {
    let data = Dataset::generate(&DatasetSpec::demo());
    let sim = Simulator::start(SimConfig::default(), &data).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
    let stop = CancellationToken::new();
    let mut puller = connect(&store, &odoo_config(&sim), Default::default())
        .await
        .unwrap();
    puller.pull(PullKind::Full, &stop).await.unwrap();
    // A product written in the last minute, read by the first incremental pull...
    let id = data.products[0].id.0;
    let now = odoo_now();
    sim.with_tables(|t| {
        assert!(t.write("product.product", id, json!({"name": "Renamed once"}), &now));
    });
    puller.pull(PullKind::Incremental, &stop).await.unwrap();
    let name = |store: &Store| store.read(|r| r.product(id)).unwrap().unwrap().name;
    assert_eq!(name(&store), "Renamed once");
    // ...and written again by a transaction that started in that same second.
    sim.with_tables(|t| {
        assert!(t.write(
            "product.product",
            id,
            json!({"name": "Renamed twice"}),
            &now
        ));
    });
    let again = puller.pull(PullKind::Incremental, &stop).await.unwrap();
    assert_eq!(name(&store), "Renamed twice", "{again:?}");
}
