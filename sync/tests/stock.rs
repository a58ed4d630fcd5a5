//! Odoo's stock semantics as ODOO.md measured them, exercised through the wire client on
//! both transports. The same calls are the ones the push will make, so these tests are also
//! the conformance suite for them: with HOLDFAST_ODOO_URL, HOLDFAST_ODOO_DB,
//! HOLDFAST_ODOO_LOGIN and HOLDFAST_ODOO_KEY set they run against that real Odoo instead
//! (which must hold a storable untracked product with stock in warehouse 1's stock location
//! and company 1).

#![allow(clippy::unwrap_used)]

use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::odoo::{Call, ClientConfig, ErrorClass, OdooClient};
use holdfast_sync::sim::{SimConfig, Simulator};
use serde_json::{Value, json};

/// A connected client and what the tests need to know of the database.
struct Target {
    client: OdooClient,
    major: u32,
    _sim: Option<Simulator>,
    stock: i64,
    customers: i64,
    delivery_type: i64,
    internal_type: i64,
    product: i64,
    lot_product: i64,
}

fn real_odoo() -> Option<ClientConfig> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(ClientConfig::new(
        &var("HOLDFAST_ODOO_URL")?,
        &var("HOLDFAST_ODOO_DB")?,
        &var("HOLDFAST_ODOO_LOGIN")?,
        &var("HOLDFAST_ODOO_KEY")?,
        1,
    ))
}

async fn targets() -> Vec<Target> {
    let mut configs = Vec::new();
    if let Some(config) = real_odoo() {
        eprintln!(
            "conformance: running against the real Odoo at {}",
            config.url
        );
        configs.push((config, None));
    } else {
        eprintln!(
            "conformance: HOLDFAST_ODOO_* not set; running against the simulator (Odoo 18 and 19)"
        );
        let data = Dataset::generate(&DatasetSpec::demo());
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
            let c = sim.config().clone();
            configs.push((
                ClientConfig::new(&sim.url(), &c.database, &c.login, &c.api_key, 1),
                Some(sim),
            ));
        }
    }
    let mut out = Vec::new();
    for (config, sim) in configs {
        let client = OdooClient::connect(config).await.unwrap();
        let major = client.version().major;
        let wh = client
            .search_read(
                "stock.warehouse",
                json!([["id", "=", 1]]),
                &["lot_stock_id"],
                "id",
                Some(1),
            )
            .await
            .unwrap();
        let stock = wh[0]["lot_stock_id"][0].as_i64().unwrap();
        let customers = first_id(
            &client,
            "stock.location",
            json!([["usage", "=", "customer"]]),
            "customer location",
        )
        .await;
        let delivery_type = first_id(
            &client,
            "stock.picking.type",
            json!([["code", "=", "outgoing"], ["warehouse_id", "=", 1]]),
            "delivery type",
        )
        .await;
        // Without multi-step locations enabled, Odoo keeps the internal type archived.
        let internal_type = first_id(
            &client,
            "stock.picking.type",
            json!([
                ["code", "=", "internal"],
                ["warehouse_id", "=", 1],
                ["active", "in", [true, false]]
            ]),
            "internal type",
        )
        .await;
        // Untracked and lot-tracked products with plenty of stock in the warehouse.
        let mut product = 0;
        let mut lot_product = 0;
        for q in client
            .search_read(
                "stock.quant",
                json!([["location_id.warehouse_id", "=", 1], ["quantity", ">", 30]]),
                &["product_id"],
                "id",
                Some(200),
            )
            .await
            .unwrap()
        {
            let p = q["product_id"][0].as_i64().unwrap();
            let tracking = client
                .read("product.product", &[p], &["tracking"])
                .await
                .unwrap()[0]["tracking"]
                .as_str()
                .unwrap()
                .to_owned();
            if tracking == "none" && product == 0 {
                product = p;
            }
            if tracking == "lot" && lot_product == 0 {
                lot_product = p;
            }
        }
        assert!(
            product > 0 && lot_product > 0,
            "the database needs stock of an untracked and a lot-tracked product"
        );
        out.push(Target {
            client,
            major,
            _sim: sim,
            stock,
            customers,
            delivery_type,
            internal_type,
            product,
            lot_product,
        });
    }
    out
}

async fn first_id(client: &OdooClient, model: &str, domain: Value, what: &str) -> i64 {
    let rows = client
        .search_read(model, domain, &["id"], "id", Some(1))
        .await
        .unwrap();
    rows.first()
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("no {what}"))
}

impl Target {
    /// A confirmed and reserved picking with one move per (product, demand).
    async fn picking(&self, kind: &str, moves: &[(i64, f64)], origin: &str) -> i64 {
        let (picking_type, dest) = match kind {
            "out" => (self.delivery_type, self.customers),
            _ => (self.internal_type, self.stock),
        };
        let c = &self.client;
        let picking = c
            .create("stock.picking", json!([{"picking_type_id": picking_type, "location_id": self.stock, "location_dest_id": dest, "origin": origin}]))
            .await
            .unwrap()[0];
        for (product, qty) in moves {
            let mut vals = json!({"picking_id": picking, "product_id": product, "product_uom_qty": qty,
                                  "location_id": self.stock, "location_dest_id": dest});
            if self.major < 19 {
                // `name` is required on stock.move in 18 and gone in 19.
                vals["name"] = json!(origin);
            }
            c.create("stock.move", json!([vals])).await.unwrap();
        }
        c.call(Call::new("stock.picking", "action_confirm").ids(&[picking]))
            .await
            .unwrap();
        c.call(Call::new("stock.picking", "action_assign").ids(&[picking]))
            .await
            .unwrap();
        picking
    }

    async fn lines(&self, picking: i64) -> Vec<serde_json::Map<String, Value>> {
        self.client
            .search_read(
                "stock.move.line",
                json!([["picking_id", "=", picking]]),
                &[
                    "move_id",
                    "product_id",
                    "quantity",
                    "picked",
                    "lot_id",
                    "location_id",
                ],
                "id",
                None,
            )
            .await
            .unwrap()
    }

    async fn state(&self, picking: i64) -> String {
        self.client
            .read("stock.picking", &[picking], &["state"])
            .await
            .unwrap()[0]["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Marks every line picked with `f(line quantity)` through one write on the picking.
    async fn pick_all(&self, picking: i64, f: impl Fn(f64) -> f64) {
        let commands: Vec<Value> = self
            .lines(picking)
            .await
            .iter()
            .map(|l| json!([1, l["id"], {"quantity": f(l["quantity"].as_f64().unwrap()), "picked": true}]))
            .collect();
        self.client
            .write(
                "stock.picking",
                &[picking],
                json!({"move_line_ids": commands}),
            )
            .await
            .unwrap();
    }

    async fn backorders(&self, picking: i64) -> Vec<i64> {
        self.client
            .search(
                "stock.picking",
                json!([["backorder_id", "=", picking]]),
                "id",
            )
            .await
            .unwrap()
    }

    async fn validate(&self, picking: i64, context: Value) -> Value {
        let mut call = Call::new("stock.picking", "button_validate").ids(&[picking]);
        for (k, v) in context.as_object().unwrap() {
            call = call.context(k, v.clone());
        }
        self.client.call(call).await.unwrap()
    }
}

#[tokio::test]
async fn full_pick_validates_to_done() {
    for t in targets().await {
        let p = t.picking("out", &[(t.product, 2.0)], "full").await;
        assert_eq!(t.state(p).await, "assigned");
        t.pick_all(p, |q| q).await;
        assert_eq!(t.validate(p, json!({"skip_sms": true})).await, json!(true));
        assert_eq!(t.state(p).await, "done");
        assert!(t.backorders(p).await.is_empty());
    }
}

#[tokio::test]
async fn partial_pick_asks_for_a_backorder_and_the_wizard_needs_its_context() {
    for t in targets().await {
        let p = t.picking("out", &[(t.product, 4.0)], "partial").await;
        t.pick_all(p, |q| q / 2.0).await;
        let action = t.validate(p, json!({"skip_sms": true})).await;
        assert_eq!(
            action["res_model"], "stock.backorder.confirmation",
            "{action}"
        );
        let context = action["context"].as_object().unwrap().clone();

        // Without the action's context, process() answers true and does nothing.
        let wizard = t
            .client
            .create("stock.backorder.confirmation", json!([{}]))
            .await
            .unwrap();
        let done = t
            .client
            .call(Call::new("stock.backorder.confirmation", "process").ids(&wizard))
            .await
            .unwrap();
        assert_eq!(done, json!(true));
        assert_ne!(
            t.state(p).await,
            "done",
            "process() without context must not validate"
        );

        // With it, the backorder is created.
        let mut create =
            Call::new("stock.backorder.confirmation", "create").arg("vals_list", json!([{}]));
        let mut process = Call::new("stock.backorder.confirmation", "process");
        for (k, v) in &context {
            create = create.context(k, v.clone());
            process = process.context(k, v.clone());
        }
        let wizard = t.client.call(create).await.unwrap();
        let ids: Vec<i64> = wizard
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        t.client.call(process.ids(&ids)).await.unwrap();
        assert_eq!(t.state(p).await, "done");
        assert_eq!(t.backorders(p).await.len(), 1);
    }
}

#[tokio::test]
async fn context_shortcuts_validate_without_wizards() {
    for t in targets().await {
        // skip_backorder: a backorder is created.
        let p = t.picking("int", &[(t.product, 4.0)], "skip").await;
        t.pick_all(p, |q| q / 2.0).await;
        assert_eq!(
            t.validate(p, json!({"skip_backorder": true, "skip_sms": true}))
                .await,
            json!(true)
        );
        assert_eq!(t.backorders(p).await.len(), 1);
        // ... and with picking_ids_not_to_backorder, none.
        let p = t.picking("int", &[(t.product, 4.0)], "nobo").await;
        t.pick_all(p, |q| q / 2.0).await;
        let ctx =
            json!({"skip_backorder": true, "skip_sms": true, "picking_ids_not_to_backorder": [p]});
        assert_eq!(t.validate(p, ctx).await, json!(true));
        assert_eq!(t.state(p).await, "done");
        assert!(t.backorders(p).await.is_empty());
    }
}

#[tokio::test]
async fn an_unpicked_move_goes_whole_to_the_backorder() {
    for t in targets().await {
        let p = t
            .picking(
                "int",
                &[(t.product, 2.0), (t.lot_product, 2.0)],
                "picked-rule",
            )
            .await;
        let lines = t.lines(p).await;
        let first_move = lines[0]["move_id"][0].clone();
        let commands: Vec<Value> = lines
            .iter()
            .filter(|l| l["move_id"][0] == first_move)
            .map(|l| json!([1, l["id"], {"picked": true}]))
            .collect();
        t.client
            .write("stock.picking", &[p], json!({"move_line_ids": commands}))
            .await
            .unwrap();
        assert_eq!(
            t.validate(p, json!({"skip_backorder": true, "skip_sms": true}))
                .await,
            json!(true)
        );
        let bo = t.backorders(p).await;
        assert_eq!(bo.len(), 1);
        let moves = t
            .client
            .search_read(
                "stock.move",
                json!([["picking_id", "=", bo[0]]]),
                &["product_uom_qty"],
                "id",
                None,
            )
            .await
            .unwrap();
        assert_eq!(moves.len(), 1, "the unpicked move, whole");
        assert_eq!(moves[0]["product_uom_qty"].as_f64(), Some(2.0));
    }
}

#[tokio::test]
async fn validation_refusals_are_user_errors() {
    for t in targets().await {
        // Nothing reserved and no quantity.
        let p = t.picking("int", &[(t.product, 2.0)], "none").await;
        let commands: Vec<Value> = t
            .lines(p)
            .await
            .iter()
            .map(|l| json!([1, l["id"], {"quantity": 0.0}]))
            .collect();
        t.client
            .write("stock.picking", &[p], json!({"move_line_ids": commands}))
            .await
            .unwrap();
        let err = t
            .client
            .call(
                Call::new("stock.picking", "button_validate")
                    .ids(&[p])
                    .context("skip_sms", true),
            )
            .await
            .unwrap_err();
        assert_eq!(err.exception(), Some("UserError"), "{err}");
        assert!(
            err.to_string().contains("no quantities are reserved"),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::Permanent);
    }
}

#[tokio::test]
async fn first_delivery_may_ask_about_sms_unless_skipped() {
    let Some(t) = targets().await.into_iter().next() else {
        return;
    };
    if t._sim.is_none() {
        return; // depends on the real database's history
    }
    let p = t.picking("out", &[(t.product, 1.0)], "sms").await;
    t.pick_all(p, |q| q).await;
    let action = t.validate(p, json!({})).await;
    assert_eq!(action["res_model"], "confirm.stock.sms", "{action}");
    assert_eq!(t.validate(p, json!({"skip_sms": true})).await, json!(true));
}

#[tokio::test]
async fn inventory_counts_apply_detect_their_own_conflicts_and_carry_a_name() {
    for t in targets().await {
        let c = &t.client;
        let quant = c
            .search_read(
                "stock.quant",
                json!([
                    ["product_id", "=", t.product],
                    ["location_id.warehouse_id", "=", 1],
                    ["quantity", ">", 5]
                ]),
                &["quantity"],
                "id",
                Some(1),
            )
            .await
            .unwrap();
        let q = quant[0]["id"].as_i64().unwrap();
        let before = quant[0]["quantity"].as_f64().unwrap();
        c.write(
            "stock.quant",
            &[q],
            json!({"inventory_quantity": before - 1.0}),
        )
        .await
        .unwrap();
        // Unique per run: a real database keeps the moves of earlier runs.
        let mark = format!(
            "holdfast:count-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let result = c
            .call(
                Call::new("stock.quant", "action_apply_inventory")
                    .ids(&[q])
                    .context("inventory_name", mark.as_str()),
            )
            .await
            .unwrap();
        assert_eq!(result, Value::Null, "returns None");
        let after = c.read("stock.quant", &[q], &["quantity"]).await.unwrap()[0]["quantity"]
            .as_f64()
            .unwrap();
        assert_eq!(after, before - 1.0);
        let named = c
            .search(
                "stock.move",
                json!([["name", "=like", format!("{mark}%")]]),
                "id",
            )
            .await
            .unwrap();
        // Odoo appends " (User Name)" when the count was set by a user: match the prefix.
        assert_eq!(named.len(), 1, "the inventory move carries the entry id");

        // The quant moves after the count was set: Odoo answers with its conflict wizard...
        c.write(
            "stock.quant",
            &[q],
            json!({"inventory_quantity": after - 1.0}),
        )
        .await
        .unwrap();
        let p = t.picking("out", &[(t.product, 1.0)], "moves-stock").await;
        t.pick_all(p, |q| q).await;
        t.validate(p, json!({"skip_sms": true})).await;
        let moved = c.read("stock.quant", &[q], &["quantity"]).await.unwrap()[0]["quantity"]
            .as_f64()
            .unwrap();
        if moved != after {
            let action = c
                .call(Call::new("stock.quant", "action_apply_inventory").ids(&[q]))
                .await
                .unwrap();
            assert_eq!(action["res_model"], "stock.inventory.conflict", "{action}");
            // ... unless told to apply anyway.
            let r = c
                .call(
                    Call::new("stock.quant", "action_apply_inventory")
                        .ids(&[q])
                        .context("set_inventory_quantity_auto_apply", true),
                )
                .await
                .unwrap();
            assert_eq!(r, Value::Null);
        }
    }
}

#[tokio::test]
async fn inventory_mode_create_reuses_the_quant_and_load_upserts() {
    for t in targets().await {
        let c = &t.client;
        let existing = c
            .search(
                "stock.quant",
                json!([
                    ["product_id", "=", t.product],
                    ["location_id", "=", t.stock]
                ]),
                "id",
            )
            .await
            .unwrap();
        let count = || {
            c.call(
                Call::new("stock.quant", "create")
                    .arg("vals_list", json!([{"product_id": t.product, "location_id": t.stock, "inventory_quantity": 3.0}]))
                    .context("inventory_mode", true),
            )
        };
        let created = count().await.unwrap();
        let again = count().await.unwrap();
        assert_eq!(created, again, "inventory_mode create reuses the quant");
        if let Some(first) = existing.first() {
            assert_eq!(created, json!([first]));
        }

        let load = || {
            c.call(
                Call::new("res.partner", "load")
                    .arg("fields", json!(["id", "name"]))
                    .arg(
                        "data",
                        json!([["holdfast.partner_test", "Upserted by load"]]),
                    ),
            )
        };
        let first = load().await.unwrap();
        let second = load().await.unwrap();
        assert_eq!(first["messages"], json!([]), "{first}");
        assert_eq!(
            first["ids"], second["ids"],
            "the second identical load returns the same ids"
        );
    }
}

#[tokio::test]
async fn re_reservation_recreates_move_lines_with_new_ids() {
    for t in targets().await {
        let p = t.picking("int", &[(t.product, 2.0)], "rereserve").await;
        let before: Vec<Value> = t.lines(p).await.iter().map(|l| l["id"].clone()).collect();
        t.client
            .call(Call::new("stock.picking", "do_unreserve").ids(&[p]))
            .await
            .unwrap();
        t.client
            .call(Call::new("stock.picking", "action_assign").ids(&[p]))
            .await
            .unwrap();
        let after: Vec<Value> = t.lines(p).await.iter().map(|l| l["id"].clone()).collect();
        assert!(!after.is_empty());
        assert!(
            after.iter().all(|id| !before.contains(id)),
            "{before:?} -> {after:?}"
        );
    }
}

#[tokio::test]
async fn applying_an_uncounted_quant_differs_between_18_and_19() {
    for t in targets().await {
        if t._sim.is_none() {
            continue; // would zero real stock on 19
        }
        let c = &t.client;
        let q = c
            .search_read(
                "stock.quant",
                json!([["location_id.warehouse_id", "=", 1], ["quantity", ">", 0]]),
                &["quantity"],
                "id desc",
                Some(1),
            )
            .await
            .unwrap();
        let id = q[0]["id"].as_i64().unwrap();
        let before = q[0]["quantity"].as_f64().unwrap();
        c.call(Call::new("stock.quant", "action_apply_inventory").ids(&[id]))
            .await
            .unwrap();
        let after = c.read("stock.quant", &[id], &["quantity"]).await.unwrap()[0]["quantity"]
            .as_f64()
            .unwrap();
        if t.major >= 19 {
            assert_eq!(after, 0.0, "Odoo 19 zeroes a quant with no count set");
        } else {
            assert_eq!(after, before, "Odoo 18 leaves it alone");
        }
    }
}
