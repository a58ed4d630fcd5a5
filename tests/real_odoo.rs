//! The outage run against a real Odoo: the real `holdfast` binary, a real Odoo 18 or 19, and
//! the fault proxy between them standing in for the WAN.
//!
//! Opt-in: it needs `HOLDFAST_ODOO_URL`, `_DB`, `_LOGIN`, `_KEY` (`../shared/odoo-lab/` writes
//! them to `WORK_DIR/odoo.env`) and writes to that database, so it also needs
//! `HOLDFAST_ODOO_ALLOW_WRITES=1`. Without them it prints that it skipped and why. Run it on a
//! disposable database (`reset.sh` before and after):
//!
//! ```sh
//! . ~/lab19/odoo.env
//! HOLDFAST_ODOO_ALLOW_WRITES=1 cargo test -p holdfast --test real_odoo -- --nocapture
//! ```
//!
//! What it does, as a site would:
//! 1. sets up its own fixtures through the API (two bins with barcodes, an untracked and a
//!    lot-tracked product, 50 on hand, a confirmed delivery of 20 for a customer, a receipt of
//!    10), so it never depends on demo data ids;
//! 2. `holdfast sync pull --full`, then compares every mirrored model's row count with Odoo's
//!    `search_count` over the same domain;
//! 3. starts the appliance, cuts the link, and on the floor (device API): picks 12 of the 20
//!    and validates with a backorder, receives 4 of a new lot with a backorder, counts the bin
//!    (3 more than the view shows), transfers 5 to the other bin;
//! 4. SIGKILL, restart, link restored, SIGKILL during the drain, restart;
//!    Meanwhile someone in Odoo books a serial into a bin, and the floor receives the same
//!    serial on another receipt;
//! 5. checks Odoo: each entry applied exactly once (by its mark), the quantities, the
//!    backorders, the new lot, the transfer's operation type, the serial held once with its
//!    receipt waiting as a `serial_in_use` conflict, and prints the figures.

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;

use std::time::Instant;

use holdfast_sync::odoo::{ClientConfig, OdooClient};
use holdfast_sync::push::mark;
use holdfast_sync::sim::proxy::{FaultProxy, Link};
use serde_json::{Map, Value, json};
use site::{Site, cli, drained};

const DEVICE_TOKEN: &str = "real-odoo-handheld-token";
const MANAGER_TOKEN: &str = "real-odoo-manager-token";

fn new_site(odoo: &ClientConfig, proxy: &FaultProxy, warehouse_id: i64) -> Site {
    Site::new(DEVICE_TOKEN, |port, dir| {
        format!(
            "[site]\nid = \"real-odoo\"\n[store]\npath = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nmanager_token = \"{MANAGER_TOKEN}\"\n\
             [log]\nlevel = \"info\"\n\
             [odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\n\
             company_id = {}\nwarehouse_id = {warehouse_id}\ntimeout_secs = 10\n\
             [sync]\npull_interval_secs = 5\n\
             [push]\nretry_min_secs = 0.2\nretry_max_secs = 2\nprobe_secs = 0.5\n\
             [[devices]]\nid = \"hh1\"\ntoken = \"{DEVICE_TOKEN}\"\n",
            dir.join("holdfast.db").display(),
            proxy.url(),
            odoo.database,
            odoo.login,
            odoo.api_key.expose(),
            odoo.company_id,
        )
    })
}

/// The mirror's table of a model, as `status --json` names it (`MoveLine` → `move_line`).
fn table(model: holdfast_sync::records::Model) -> String {
    let mut out = String::new();
    for (i, c) in format!("{model:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn id_of(record: &Map<String, Value>, field: &str) -> i64 {
    match &record[field] {
        Value::Array(pair) => pair[0].as_i64().unwrap(),
        Value::Number(n) => n.as_i64().unwrap(),
        other => panic!("{field}: {other}"),
    }
}

/// The records this run creates in Odoo, named with a per-run tag.
struct Fixtures {
    bin_a: (i64, String),
    bin_b: (i64, String),
    plain: (i64, String),
    tracked: (i64, String),
    serial: (i64, String),
    packaging_barcode: String,
    package: String,
    delivery: i64,
    receipt: i64,
    serial_receipt: i64,
    lot_delivery: (i64, String),
    int_type_id: i64,
}

async fn one(odoo: &OdooClient, model: &str, domain: Value, fields: &[&str]) -> Map<String, Value> {
    let mut rows = odoo
        .search_read(model, domain.clone(), fields, "id", Some(1))
        .await
        .unwrap();
    assert!(!rows.is_empty(), "no {model} with {domain}");
    rows.remove(0)
}

async fn set_up(odoo: &OdooClient, tag: &str) -> (i64, Fixtures) {
    let major = odoo.version().major;
    let wh = one(
        odoo,
        "stock.warehouse",
        json!([["company_id", "=", 1]]),
        &["lot_stock_id", "in_type_id", "out_type_id", "int_type_id"],
    )
    .await;
    let warehouse_id = wh["id"].as_i64().unwrap();
    let stock = id_of(&wh, "lot_stock_id");
    let mut bins = Vec::new();
    for letter in ["A", "B"] {
        let barcode = format!("HF{letter}{tag}");
        let id = odoo
            .create(
                "stock.location",
                json!([{"name": format!("HF-{letter}-{tag}"), "location_id": stock,
                        "usage": "internal", "barcode": barcode}]),
            )
            .await
            .unwrap()[0];
        bins.push((id, barcode));
    }
    let mut products = Vec::new();
    for (n, tracking) in [(1, "none"), (2, "lot"), (3, "serial")] {
        let barcode = format!("9{tag}{n}");
        let id = odoo
            .create(
                "product.product",
                json!([{"name": format!("Holdfast test {tag}-{n}"), "type": "consu",
                        "is_storable": true, "tracking": tracking, "barcode": barcode}]),
            )
            .await
            .unwrap()[0];
        products.push((id, barcode));
    }
    let (bin_a, bin_b) = (bins[0].clone(), bins[1].clone());
    let (plain, tracked, serial) = (
        products[0].clone(),
        products[1].clone(),
        products[2].clone(),
    );
    // A packaging of 6 and an empty package, in each version's own models (18:
    // `product.packaging`, `stock.quant.package`; 19: a `product.uom` barcode on the demo's
    // "Pack of 6" unit, `stock.package`).
    let packaging_barcode = format!("8{tag}6");
    let (packaging_model, packaging) = if major < 19 {
        (
            "product.packaging",
            json!([{"name": "Pack of 6", "product_id": plain.0, "qty": 6,
                    "barcode": packaging_barcode}]),
        )
    } else {
        let pack = one(
            odoo,
            "uom.uom",
            json!([["name", "=", "Pack of 6"]]),
            &["id"],
        )
        .await;
        (
            "product.uom",
            json!([{"product_id": plain.0, "uom_id": pack["id"], "barcode": packaging_barcode}]),
        )
    };
    odoo.create(packaging_model, packaging).await.unwrap();
    let package_model = if major < 19 {
        "stock.quant.package"
    } else {
        "stock.package"
    };
    let package = format!("HF-PKG-{tag}");
    odoo.create(package_model, json!([{"name": package}]))
        .await
        .unwrap();
    // 50 on hand in bin A, as an applied count (the way stock is usually set by hand).
    set_stock(
        odoo,
        json!({"product_id": plain.0, "location_id": bin_a.0, "inventory_quantity": 50}),
    )
    .await;

    let picking = |type_field: &str, product: i64, qty: f64| {
        let type_id = id_of(&wh, type_field);
        async move {
            let t = one(
                odoo,
                "stock.picking.type",
                json!([["id", "=", type_id]]),
                &["default_location_src_id", "default_location_dest_id"],
            )
            .await;
            let (src, dest) = (
                id_of(&t, "default_location_src_id"),
                id_of(&t, "default_location_dest_id"),
            );
            let partner = one(
                odoo,
                "res.partner",
                json!([["is_company", "=", true]]),
                &["id"],
            )
            .await["id"]
                .as_i64()
                .unwrap();
            let mut mv = json!({"product_id": product, "product_uom_qty": qty,
                                "location_id": src, "location_dest_id": dest});
            // Odoo 18 requires a move's name; 19 has no such field.
            if major < 19 {
                mv["name"] = json!(format!("Holdfast test {tag}"));
            }
            let id = odoo
                .create(
                    "stock.picking",
                    json!([{"picking_type_id": type_id, "location_id": src,
                            "location_dest_id": dest, "partner_id": partner,
                            "origin": format!("HF-TEST-{tag}"),
                            "move_ids": [[0, 0, mv]]}]),
                )
                .await
                .unwrap()[0];
            for method in ["action_confirm", "action_assign"] {
                odoo.call(holdfast_sync::odoo::Call::new("stock.picking", method).ids(&[id]))
                    .await
                    .unwrap();
            }
            id
        }
    };
    let delivery = picking("out_type_id", plain.0, 20.0).await;
    // 5 of an existing lot in bin A, and a delivery of 3 that Odoo reserves on it (a line
    // reserved on an existing lot has `lot_id` set and `lot_name` empty).
    let reserved_lot = format!("HF-RES-{tag}");
    let lot_id = odoo
        .create(
            "stock.lot",
            json!([{"name": reserved_lot, "product_id": tracked.0}]),
        )
        .await
        .unwrap()[0];
    set_stock(
        odoo,
        json!({"product_id": tracked.0, "location_id": bin_a.0, "lot_id": lot_id,
               "inventory_quantity": 5}),
    )
    .await;
    let lot_delivery = picking("out_type_id", tracked.0, 3.0).await;
    let receipt = picking("in_type_id", tracked.0, 10.0).await;
    let serial_receipt = picking("in_type_id", serial.0, 1.0).await;
    (
        warehouse_id,
        Fixtures {
            bin_a,
            bin_b,
            plain,
            tracked,
            serial,
            packaging_barcode,
            package,
            delivery,
            receipt,
            serial_receipt,
            lot_delivery: (lot_delivery, reserved_lot),
            int_type_id: id_of(&wh, "int_type_id"),
        },
    )
}

/// Sets a quant's stock the way a person does in Odoo: a count, applied.
async fn set_stock(odoo: &OdooClient, vals: Value) {
    let quant = odoo
        .call(
            holdfast_sync::odoo::Call::new("stock.quant", "create")
                .arg("vals_list", json!([vals]))
                .context("inventory_mode", true),
        )
        .await
        .unwrap();
    let quant = quant
        .as_array()
        .and_then(|a| a.first())
        .or(Some(&quant))
        .and_then(Value::as_i64)
        .unwrap();
    odoo.call(
        holdfast_sync::odoo::Call::new("stock.quant", "action_apply_inventory").ids(&[quant]),
    )
    .await
    .unwrap();
}

async fn on_hand(odoo: &OdooClient, product: i64, location: i64) -> f64 {
    odoo.search_read(
        "stock.quant",
        json!([["product_id", "=", product], ["location_id", "=", location]]),
        &["quantity"],
        "id",
        None,
    )
    .await
    .unwrap()
    .iter()
    .map(|q| q["quantity"].as_f64().unwrap())
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_against_a_real_odoo_reconciles_exactly_once() {
    let config = match site::real_odoo() {
        Ok(c) => c,
        Err(why) => {
            println!("skipped: an_outage_against_a_real_odoo_reconciles_exactly_once: {why}");
            return;
        }
    };
    let odoo = OdooClient::connect(config.clone()).await.unwrap();
    println!(
        "odoo {} ({:?}) at {}",
        odoo.version().raw,
        odoo.protocol(),
        config.url
    );
    let tag = format!("{}", std::time::UNIX_EPOCH.elapsed().unwrap().as_secs());
    let (warehouse_id, fx) = set_up(&odoo, &tag).await;

    let upstream = config
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let site = new_site(&config, &proxy, warehouse_id);
    let cfg = site.config.clone();

    // The full pull, counted against Odoo's own figures.
    let started = Instant::now();
    cli(&cfg, &["sync", "pull", "--full"]);
    let pull_secs = started.elapsed().as_secs_f64();
    let status: Value = serde_json::from_str(&cli(&cfg, &["status", "--json"])).unwrap();
    let scope = holdfast_sync::pull::Scope {
        company_id: 1,
        warehouse_id,
    };
    let map = odoo.models();
    let mut figures = Vec::new();
    for &model in holdfast_sync::records::Model::ALL {
        let Some(name) = map.odoo_name(model) else {
            println!("{model:?}: not on this server (degraded feature)");
            continue;
        };
        let odoo_count = odoo
            .call(
                holdfast_sync::odoo::Call::new(name, "search_count")
                    .arg("domain", scope.domain(model)),
            )
            .await
            .unwrap()
            .as_i64()
            .unwrap();
        let mirror = status["mirror"][table(model)].as_i64().unwrap_or(-1);
        figures.push(format!("{name} {mirror}/{odoo_count}"));
        assert_eq!(mirror, odoo_count, "{name}: mirror vs search_count");
    }
    println!(
        "full pull {pull_secs:.2} s; mirror/odoo: {}",
        figures.join(", ")
    );
    // Every product came with its unit's rounding, as Odoo answers it for that unit.
    let plain_rounding = odoo.read("uom.uom", &[1], &["rounding"]).await.unwrap()[0]["rounding"]
        .as_f64()
        .unwrap();
    let db = holdfast::store::Store::open(holdfast::store::StoreOptions::new(
        site.dir.path().join("holdfast.db"),
        "real-odoo",
    ))
    .unwrap();
    let product = db.read(|r| r.product(fx.plain.0)).unwrap().unwrap();
    assert_eq!(product.uom_rounding, Some(plain_rounding), "{product:?}");
    db.shutdown().await.unwrap();
    println!("unit rounding mirrored: {plain_rounding}");

    cli(
        &cfg,
        &[
            "operator", "add", "alice", "--name", "Alice", "--badge", "OP-ALICE",
        ],
    );
    let app = site.start_appliance();
    site.wait_until("serving, online", 30, |s| s["mode"] == "online")
        .await;

    // The packaging and the package resolve on the floor.
    let lookup = |code: String| {
        let site = &site;
        async move {
            let r = site
                .http
                .post(format!("{}/api/v1/lookup", site.base))
                .bearer_auth(DEVICE_TOKEN)
                .json(&json!({ "code": code }))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["matches"].clone()
        }
    };
    let found = lookup(fx.packaging_barcode.clone()).await;
    assert_eq!(
        found,
        json!([{"kind": "product", "product_id": fx.plain.0, "quantity": 6.0}]),
        "the packaging scans as 6 of its product"
    );
    let detail: Value = site
        .http
        .get(format!(
            "{}/api/v1/pickings/{}",
            site.base, fx.lot_delivery.0
        ))
        .bearer_auth(DEVICE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reserved = &detail["moves"][0]["reserved"];
    assert!(
        reserved.as_array().is_some_and(|r| r.len() == 1)
            && reserved[0][0]
                .as_str()
                .is_some_and(|bin| bin.ends_with(&format!("HF-A-{tag}")))
            && reserved[0][1] == fx.lot_delivery.1.as_str()
            && reserved[0][2] == 3.0,
        "the reserved lot is shown: {detail}"
    );
    let found = lookup(fx.package.clone()).await;
    assert!(
        found.as_array().is_some_and(|m| !m.is_empty()),
        "the package: {found}"
    );
    println!(
        "packaging {} and package {} resolve: {found}",
        fx.packaging_barcode, fx.package
    );

    // The WAN goes; the floor carries on.
    proxy.set(Link::Refuse);
    site.wait_until("offline", 30, |s| s["mode"] == "offline")
        .await;
    site.post("/api/v1/login", json!({"badge": "OP-ALICE"}))
        .await;

    // 12 of the delivery's 20, closed with a backorder.
    let s = site
        .start(json!({"workflow": "pick", "picking_id": fx.delivery}))
        .await;
    site.scan(&fx.bin_a.1).await;
    site.scan(&fx.plain.1).await;
    site.quantity(&s, 12.0).await;
    site.post(
        &format!("/api/v1/sessions/{s}/validate"),
        json!({"backorder": "backorder"}),
    )
    .await;

    // 4 of the receipt's 10, of a lot Odoo has never seen, with a backorder.
    let lot = format!("HF-LOT-{tag}");
    let s = site
        .start(json!({"workflow": "receive", "picking_id": fx.receipt}))
        .await;
    site.scan(&fx.tracked.1).await;
    site.scan(&lot).await;
    site.quantity(&s, 4.0).await;
    site.post(
        &format!("/api/v1/sessions/{s}/validate"),
        json!({"backorder": "backorder"}),
    )
    .await;

    // A count finding 3 more than the view's 38, then a transfer of 5 to bin B.
    let s = site.start(json!({"workflow": "count"})).await;
    site.scan(&fx.bin_a.1).await;
    site.scan(&fx.plain.1).await;
    site.quantity(&s, 41.0).await;
    site.post(&format!("/api/v1/sessions/{s}/finish"), json!({}))
        .await;
    let s = site.start(json!({"workflow": "transfer"})).await;
    site.scan(&fx.bin_a.1).await;
    site.scan(&fx.plain.1).await;
    site.quantity(&s, 5.0).await;
    site.scan(&fx.bin_b.1).await;
    site.post(&format!("/api/v1/sessions/{s}/finish"), json!({}))
        .await;

    // Meanwhile in Odoo, someone books serial SN into bin B; the floor, not knowing, receives
    // the same serial on another receipt. Odoo would take it (it refuses a duplicate serial
    // only within one location): the push must find it and raise `serial_in_use`.
    let serial_name = format!("HF-SN-{tag}");
    let serial_lot = odoo
        .create(
            "stock.lot",
            json!([{"name": serial_name, "product_id": fx.serial.0}]),
        )
        .await
        .unwrap()[0];
    set_stock(
        &odoo,
        json!({"product_id": fx.serial.0, "location_id": fx.bin_b.0, "lot_id": serial_lot,
               "inventory_quantity": 1}),
    )
    .await;
    let s = site
        .start(json!({"workflow": "receive", "picking_id": fx.serial_receipt}))
        .await;
    site.scan(&fx.serial.1).await;
    site.scan(&serial_name).await;
    site.post(
        &format!("/api/v1/sessions/{s}/validate"),
        json!({"backorder": "no_backorder"}),
    )
    .await;

    let s = site.status().await;
    assert_eq!(
        s["queue"]["applied"], 0,
        "nothing reached Odoo offline: {s}"
    );
    let recorded = s["queue"]["pending"].as_i64().unwrap();

    // Power cut; back up; the link returns; killed again mid-drain.
    app.sigkill();
    let app = site.start_appliance();
    site.wait_until("serving again", 30, |s| {
        s["queue"]["pending"].as_i64().is_some()
    })
    .await;
    proxy.set(Link::Up);
    let drain_started = Instant::now();
    site.wait_until("draining", 60, |s| {
        s["queue"]["applied"].as_i64().unwrap_or(0) > 0 || drained(s)
    })
    .await;
    app.sigkill();
    let _app = site.start_appliance();
    let s = site.wait_until("drained", 120, drained).await;
    let drain_secs = drain_started.elapsed().as_secs_f64();
    println!(
        "recorded {recorded} entries offline; drained in {drain_secs:.1} s through two SIGKILLs: \
         queue {}, conflicts {}, push {}",
        s["queue"], s["conflicts"], s["push"]
    );

    // Odoo holds each operation once.
    let journal = site.journal();
    assert_eq!(journal.len() as i64, recorded, "{journal:?}");
    let serial_key = format!("picking:{}", fx.serial_receipt);
    for e in &journal {
        let id = e["id"].as_str().unwrap();
        let want = if e["causal_key"] == serial_key.as_str() {
            "conflict"
        } else {
            "applied"
        };
        assert_eq!(e["state"], want, "{e}");
        match e["kind"].as_str().unwrap() {
            "count" => {
                let moves = odoo
                    .search_read(
                        "stock.move",
                        json!([
                            ["is_inventory", "=", true],
                            ["reference", "=like", format!("{}%", mark(id))]
                        ]),
                        &["quantity"],
                        "id",
                        None,
                    )
                    .await
                    .unwrap();
                assert_eq!(moves.len(), 1, "count {id}: {moves:?}");
                assert_eq!(moves[0]["quantity"], 3.0, "count {id}: {moves:?}");
            }
            "transfer" => {
                let p = odoo
                    .search_read(
                        "stock.picking",
                        json!([["origin", "ilike", mark(id)]]),
                        &["state", "picking_type_id"],
                        "id",
                        None,
                    )
                    .await
                    .unwrap();
                assert_eq!(p.len(), 1, "transfer {id}: {p:?}");
                assert_eq!(p[0]["state"], "done");
                assert_eq!(
                    id_of(&p[0], "picking_type_id"),
                    fx.int_type_id,
                    "transfers use the warehouse's internal type"
                );
            }
            _ => {}
        }
    }
    let state = |rows: Vec<Map<String, Value>>| rows[0]["state"].clone();
    for (picking, backorder_qty) in [(fx.delivery, 8.0), (fx.receipt, 6.0)] {
        let p = odoo
            .read("stock.picking", &[picking], &["state"])
            .await
            .unwrap();
        assert_eq!(state(p), "done", "picking {picking}");
        let backorders = odoo
            .search_read(
                "stock.move",
                json!([["picking_id.backorder_id", "=", picking]]),
                &["product_uom_qty"],
                "id",
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            backorders.len(),
            1,
            "backorder of {picking}: {backorders:?}"
        );
        assert_eq!(backorders[0]["product_uom_qty"], backorder_qty);
    }
    let lots = odoo
        .search_read(
            "stock.lot",
            json!([
                ["name", "=", lot.clone()],
                ["product_id", "=", fx.tracked.0]
            ]),
            &["id"],
            "id",
            None,
        )
        .await
        .unwrap();
    assert_eq!(lots.len(), 1, "the received lot, once: {lots:?}");
    assert_eq!(
        s["conflicts"]["by_kind"]["open/serial_in_use"], 1,
        "the serial Odoo holds in another bin: {}",
        s["conflicts"]
    );
    let serial_total: f64 = odoo
        .search_read(
            "stock.quant",
            json!([
                ["lot_id", "=", serial_lot],
                ["location_id.usage", "=", "internal"]
            ]),
            &["quantity"],
            "id",
            None,
        )
        .await
        .unwrap()
        .iter()
        .map(|q| q["quantity"].as_f64().unwrap())
        .sum();
    assert_eq!(serial_total, 1.0, "serial {serial_name} held once");
    let p = odoo
        .read("stock.picking", &[fx.serial_receipt], &["state"])
        .await
        .unwrap();
    assert_ne!(
        p[0]["state"], "done",
        "the serial's receipt waits for a person"
    );
    let (a, b) = (
        on_hand(&odoo, fx.plain.0, fx.bin_a.0).await,
        on_hand(&odoo, fx.plain.0, fx.bin_b.0).await,
    );
    assert_eq!(
        (a, b),
        (36.0, 5.0),
        "bin A: 50 - 12 picked + 3 counted - 5 moved; bin B: 5"
    );
    // The lot received offline reaches the mirror with the next pulls (its rows were held
    // back while its entries were in flight) and the floor finds it.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found = lookup(lot.clone()).await;
        if found.to_string().contains("\"lot\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the received lot {lot} never reached the mirror: {found}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!(
        "odoo after the drain: delivery and receipt done with backorders of 8 and 6, lot {lot} \
         once, bin A {a}, bin B {b}"
    );
}
