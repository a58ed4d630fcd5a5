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
    // Thirteen fields_get calls, eight models before quants with a page and an id-set read
    // each; then the first page of quants passes and the connection breaks on the second.
    sim.inject(std::iter::repeat_n(Fault::Pass, 13 + 17).chain([Fault::Reset]));
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
