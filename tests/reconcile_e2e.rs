//! Reconciliation end to end: the real `holdfast` binary against the Odoo simulator through a
//! fault proxy (the WAN), killed with SIGKILL while it works.
//!
//! - `an_outage_with_crashes_reconciles_exactly_once`: the link is cut, the floor picks (a
//!   partial pick with a backorder), receives a lot, counts and transfers through the device
//!   API, another Odoo user cancels a picking the floor started; the appliance is killed,
//!   restarted, the link restored, killed again during the drain and restarted. Odoo ends
//!   with each operation exactly once (by its mark), the journal drained, and the cancelled
//!   picking as a conflict in status, API and CLI.
//! - `killing_the_appliance_during_drains_never_duplicates_or_loses`: 50 runs
//!   (`HOLDFAST_DRAIN_KILLS`) of SIGKILL at a random moment of a drain of counts and
//!   transfers (the operations that create records in Odoo), then a clean drain: every
//!   entry exactly once.

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;

use std::time::Duration;

use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::odoo::Call;
use holdfast_sync::push::mark;
use holdfast_sync::sim::proxy::{FaultProxy, Link};
use holdfast_sync::sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use site::{Site, cli, drained};

const DEVICE_TOKEN: &str = "e2e-handheld-token-0123";
const MANAGER_TOKEN: &str = "e2e-manager-token-0123";

fn new_site(sim: &Simulator, proxy: &FaultProxy) -> Site {
    let c = sim.config();
    Site::new(DEVICE_TOKEN, |port, dir| {
        format!(
            "[site]\nid = \"e2e\"\n[store]\npath = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\nmanager_token = \"{MANAGER_TOKEN}\"\n\
             [log]\nlevel = \"warn\"\n\
             [odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\ntimeout_secs = 2\n\
             [sync]\npull_interval_secs = 5\n\
             [push]\nretry_min_secs = 0.1\nretry_max_secs = 1\nprobe_secs = 0.2\n\
             [[devices]]\nid = \"hh1\"\ntoken = \"{DEVICE_TOKEN}\"\n",
            dir.join("holdfast.db").display(),
            proxy.url(),
            c.database,
            c.login,
            c.api_key
        )
    })
}

fn rows(sim: &Simulator, model: &str, domain: Value, fields: &[&str]) -> Vec<Value> {
    sim.execute(
        Call::new(model, "search_read")
            .arg("domain", domain)
            .arg("fields", json!(fields))
            .arg("order", "id"),
    )
    .unwrap()
    .as_array()
    .unwrap()
    .clone()
}

async fn cloud() -> (Simulator, FaultProxy) {
    let sim = Simulator::start(
        SimConfig::default(),
        &Dataset::generate(&DatasetSpec::demo()),
    )
    .await
    .unwrap();
    let upstream = sim.url().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    (sim, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_crashes_reconciles_exactly_once() {
    let (sim, proxy) = cloud().await;
    let site = new_site(&sim, &proxy);
    let config = site.config.clone();
    cli(&config, &["sync", "pull", "--full"]);
    cli(
        &config,
        &[
            "operator", "add", "alice", "--name", "Alice", "--badge", "OP-ALICE",
        ],
    );
    let app = site.start_appliance();
    site.wait_until("serving, online", 20, |s| s["mode"] == "online")
        .await;

    // The WAN goes; the floor carries on.
    proxy.set(Link::Refuse);
    site.wait_until("offline", 20, |s| s["mode"] == "offline")
        .await;
    site.post("/api/v1/login", json!({"badge": "OP-ALICE"}))
        .await;

    // A partial pick of WH/INT/00001 (two of its three lines), closed with a backorder.
    let s = site
        .start(json!({"workflow": "pick", "picking_id": 3}))
        .await;
    site.scan("WH-A-02-03").await;
    site.scan("5901230000363").await;
    site.quantity(&s, 19.0).await;
    site.scan("WH-A-03-02").await;
    site.scan("]C1010590123000003510LOT-00004-A").await;
    site.quantity(&s, 12.0).await;
    site.post(
        &format!("/api/v1/sessions/{s}/validate"),
        json!({"backorder": "backorder"}),
    )
    .await;

    // A receipt of a new lot on WH/IN/00003, 5 of 20, with a backorder.
    let s = site
        .start(json!({"workflow": "receive", "picking_id": 7}))
        .await;
    site.scan("]C1010590123000003510E2E-LOT-1").await;
    site.quantity(&s, 5.0).await;
    site.post(
        &format!("/api/v1/sessions/{s}/validate"),
        json!({"backorder": "backorder"}),
    )
    .await;

    // A count that finds 2 more than the view showed, and a transfer of 3.
    let before: f64 = rows(
        &sim,
        "stock.quant",
        json!([
            ["product_id", "=", 37],
            ["location_id.barcode", "=", "WH-A-02-03"]
        ]),
        &["quantity"],
    )
    .iter()
    .map(|q| q["quantity"].as_f64().unwrap())
    .sum();
    // The view shows what Odoo had less the 19 picked; the count finds 2 more than that.
    let s = site.start(json!({"workflow": "count"})).await;
    site.scan("WH-A-02-03").await;
    site.scan("5901230000363").await;
    site.quantity(&s, before - 19.0 + 2.0).await;
    site.post(&format!("/api/v1/sessions/{s}/finish"), json!({}))
        .await;
    let s = site.start(json!({"workflow": "transfer"})).await;
    site.scan("WH-A-02-03").await;
    site.scan("5901230000363").await;
    site.quantity(&s, 3.0).await;
    site.scan("WH-A-01-01").await;
    site.post(&format!("/api/v1/sessions/{s}/finish"), json!({}))
        .await;

    // WH/OUT/00001 started on the floor, then cancelled in Odoo by someone else.
    site.start(json!({"workflow": "pick", "picking_id": 2}))
        .await;
    site.scan("WH-A-01-10").await;
    site.scan("HF-00040").await;
    sim.cancel_picking(2);

    let s = site.status().await;
    assert_eq!(
        s["queue"]["applied"], 0,
        "nothing reached Odoo offline: {s}"
    );
    let recorded = s["queue"]["pending"].as_i64().unwrap();
    assert!(recorded >= 8, "{s}");

    // Power cut; back up; the link returns; killed again mid-drain.
    app.sigkill();
    let app = site.start_appliance();
    site.wait_until("serving again", 20, |s| {
        s["queue"]["pending"].as_i64().is_some()
    })
    .await;
    sim.set_latency(Duration::from_millis(40));
    proxy.set(Link::Up);
    site.wait_until("draining", 30, |s| {
        s["queue"]["applied"].as_i64().unwrap_or(0) > 0 || drained(s)
    })
    .await;
    app.sigkill();
    let _app = site.start_appliance();
    let s = site.wait_until("drained", 60, drained).await;
    println!(
        "recorded {recorded} entries offline; after two SIGKILLs: queue {}, conflicts {}, push {}",
        s["queue"], s["conflicts"], s["push"]
    );

    // Odoo holds each operation once.
    let journal = site.journal();
    assert_eq!(journal.len() as i64, recorded, "{journal:?}");
    for e in &journal {
        let id = e["id"].as_str().unwrap();
        match e["kind"].as_str().unwrap() {
            "count" => {
                let moves = rows(
                    &sim,
                    "stock.move",
                    json!([
                        ["is_inventory", "=", true],
                        ["reference", "=like", format!("{}%", mark(id))]
                    ]),
                    &["quantity"],
                );
                assert_eq!(moves.len(), 1, "count {id}: {moves:?}");
            }
            "transfer" => {
                let p = rows(
                    &sim,
                    "stock.picking",
                    json!([["origin", "=", mark(id)]]),
                    &["state"],
                );
                assert_eq!(p.len(), 1, "transfer {id}: {p:?}");
                assert_eq!(p[0]["state"], "done");
            }
            _ => {}
        }
        let key = e["causal_key"].as_str().unwrap();
        let want = if key == "picking:2" {
            "conflict"
        } else {
            "applied"
        };
        assert_eq!(e["state"], want, "{e}");
    }
    let picking = |id: i64| {
        rows(&sim, "stock.picking", json!([["id", "=", id]]), &["state"])[0]["state"].clone()
    };
    assert_eq!(picking(3), "done");
    assert_eq!(picking(7), "done");
    let backorders = rows(
        &sim,
        "stock.picking",
        json!([["backorder_id", "in", [3, 7]]]),
        &["state"],
    );
    assert_eq!(backorders.len(), 2, "{backorders:?}");
    let done_lines = rows(
        &sim,
        "stock.move.line",
        json!([["picking_id", "=", 3]]),
        &["quantity", "lot_id"],
    );
    let shipped: f64 = done_lines
        .iter()
        .map(|l| l["quantity"].as_f64().unwrap())
        .sum();
    assert_eq!(shipped, 31.0, "{done_lines:?}");
    let lot = rows(
        &sim,
        "stock.lot",
        json!([["name", "=", "E2E-LOT-1"]]),
        &["product_id"],
    );
    assert_eq!(lot.len(), 1, "the received lot exists once");
    let after: f64 = rows(
        &sim,
        "stock.quant",
        json!([
            ["product_id", "=", 37],
            ["location_id.barcode", "=", "WH-A-02-03"]
        ]),
        &["quantity"],
    )
    .iter()
    .map(|q| q["quantity"].as_f64().unwrap())
    .sum();
    // Picked 19 from it, counted +2 (a delta on what Odoo held), moved 3 out.
    assert_eq!(after, before - 19.0 + 2.0 - 3.0, "count as a delta merge");

    // The cancelled picking waits as a conflict: in status, the API and the CLI.
    assert_eq!(s["conflicts"]["open"], 1, "{s}");
    let inbox = site.get_as("/api/v1/conflicts", MANAGER_TOKEN).await;
    let conflicts = inbox["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{inbox}");
    assert_eq!(conflicts[0]["kind"], "picking_cancelled");
    let id = conflicts[0]["id"].as_i64().unwrap().to_string();
    assert!(cli(&config, &["conflicts", "list"]).contains("picking_cancelled"));
    cli(
        &config,
        &[
            "conflicts",
            "resolve",
            &id,
            "--action",
            "discard",
            "--note",
            "cancelled upstream",
            "--by",
            "e2e",
        ],
    );
    let s = site
        .wait_until("conflict decided", 10, |s| s["conflicts"]["open"] == 0)
        .await;
    assert_eq!(s["queue"]["resolved"], 1, "{s}");
    drop(site.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_appliance_during_drains_never_duplicates_or_loses() {
    let runs: u64 = std::env::var("HOLDFAST_DRAIN_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("HOLDFAST_DRAIN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let (sim, proxy) = cloud().await;
    sim.set_latency(Duration::from_millis(15));
    let site = new_site(&sim, &proxy);
    let config = site.config.clone();
    cli(&config, &["sync", "pull", "--full"]);
    cli(
        &config,
        &[
            "operator", "add", "alice", "--name", "Alice", "--badge", "OP-ALICE",
        ],
    );
    let mut app = site.start_appliance();
    site.wait_until("serving", 20, |s| s["mode"] == "online")
        .await;
    site.post("/api/v1/login", json!({"badge": "OP-ALICE"}))
        .await;
    let mut kills = 0;
    for run in 0..runs {
        // Record a few operations offline.
        proxy.set(Link::Refuse);
        site.wait_until("offline", 20, |s| s["mode"] == "offline")
            .await;
        for i in 0..2 {
            // Counted quantities never equal the view (a count that confirms the view sends
            // nothing), and keep the bin well stocked for the transfers.
            let s = site.start(json!({"workflow": "count"})).await;
            site.scan("WH-A-02-03").await;
            site.scan("5901230000363").await;
            site.quantity(&s, (1000 + run * 10 + i * 5) as f64).await;
            site.post(&format!("/api/v1/sessions/{s}/finish"), json!({}))
                .await;
            let s = site.start(json!({"workflow": "transfer"})).await;
            site.scan("WH-A-02-03").await;
            site.scan("5901230000363").await;
            site.quantity(&s, 1.0).await;
            site.scan(if run % 2 == 0 {
                "WH-A-01-01"
            } else {
                "WH-A-02-02"
            })
            .await;
            site.post(&format!("/api/v1/sessions/{s}/finish"), json!({}))
                .await;
        }
        // The link returns; somewhere in the drain the power goes.
        proxy.set(Link::Up);
        tokio::time::sleep(Duration::from_millis(rng.u64(0..400))).await;
        app.sigkill();
        kills += 1;
        app = site.start_appliance();
        site.wait_until("drained", 60, drained).await;
        site.post("/api/v1/login", json!({"badge": "OP-ALICE"}))
            .await;
    }
    let journal = site.journal();
    assert_eq!(journal.len() as u64, runs * 4, "seed {seed}");
    for e in &journal {
        assert_eq!(e["state"], "applied", "seed {seed}: {e}");
        let id = e["id"].as_str().unwrap();
        let n = match e["kind"].as_str().unwrap() {
            "count" => rows(
                &sim,
                "stock.move",
                json!([
                    ["is_inventory", "=", true],
                    ["reference", "=like", format!("{}%", mark(id))]
                ]),
                &["id"],
            )
            .len(),
            _ => rows(
                &sim,
                "stock.picking",
                json!([["origin", "=", mark(id)]]),
                &["id"],
            )
            .len(),
        };
        assert_eq!(n, 1, "seed {seed}: entry {id} reached Odoo {n} times");
    }
    println!(
        "{kills} SIGKILLs during drains, {} entries, each in Odoo once (seed {seed})",
        journal.len()
    );
    drop(app);
}
