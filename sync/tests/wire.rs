//! The wire client against the Odoo simulator on 127.0.0.1, over both transports: the
//! facts of ODOO.md that the generic ORM covers, and a full round trip of the demo data set
//! through Odoo's read format and the record mapping.

#![allow(clippy::unwrap_used)]

use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::odoo::mapping::map_record;
use holdfast_sync::odoo::{
    Call, ClientConfig, ErrorClass, OdooClient, OdooError, PackagingSource, Protocol,
};
use holdfast_sync::pull::{PageQuery, Scope, read_page, scope_ids};
use holdfast_sync::records::{Model, Packaging, PackagingId, ProductId, Record};
use holdfast_sync::sim::{Fault, SimConfig, Simulator};
use serde_json::json;

async fn start(version: u32) -> (Simulator, Dataset) {
    let data = Dataset::generate(&DatasetSpec::demo());
    let config = SimConfig {
        version,
        ..SimConfig::default()
    };
    (Simulator::start(config, &data).await.unwrap(), data)
}

fn client_config(sim: &Simulator) -> ClientConfig {
    let c = sim.config();
    ClientConfig::new(&sim.url(), &c.database, &c.login, &c.api_key, 1)
}

#[tokio::test]
async fn version_picks_the_transport() {
    for (version, expect_json2) in [(18, false), (19, true)] {
        let (sim, _) = start(version).await;
        let client = OdooClient::connect(client_config(&sim)).await.unwrap();
        assert_eq!(client.version().major, version);
        assert_eq!(
            matches!(client.protocol(), Protocol::Json2),
            expect_json2,
            "Odoo {version}"
        );
    }
}

#[tokio::test]
async fn refused_credentials_are_auth_errors() {
    for version in [18, 19] {
        let (sim, _) = start(version).await;
        let mut config = client_config(&sim);
        config.api_key = holdfast_sync::odoo::ApiKey::new("wrong");
        let err = OdooClient::connect(config).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth, "Odoo {version}: {err}");
        assert!(!err.to_string().contains("wrong"), "the key leaked: {err}");
    }
}

#[tokio::test]
async fn unreachable_odoo_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ClientConfig::new(&format!("http://127.0.0.1:{port}"), "db", "l", "k", 1);
    let err = OdooClient::connect(config).await.unwrap_err();
    assert!(matches!(err, OdooError::Unreachable { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn read_format_errors_and_dates_match_odoo() {
    for version in [18, 19] {
        let (sim, data) = start(version).await;
        let client = OdooClient::connect(client_config(&sim)).await.unwrap();

        let rows = client
            .search_read(
                "stock.quant",
                json!([["lot_id", "=", false]]),
                &["product_id", "lot_id"],
                "id asc",
                Some(2),
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["lot_id"], json!(false), "empty many2one is false");
        let product = &rows[0]["product_id"];
        assert!(
            product[0].is_i64() && product[1].as_str().unwrap().starts_with("[HF-"),
            "{product}"
        );

        // read of a missing id is empty; write on one is MissingError.
        assert!(
            client
                .read("stock.picking", &[999_999], &["name"])
                .await
                .unwrap()
                .is_empty()
        );
        let err = client
            .write("stock.picking", &[999_999], json!({"origin": "x"}))
            .await
            .unwrap_err();
        assert_eq!(err.exception(), Some("MissingError"), "Odoo {version}");
        assert_eq!(err.class(), ErrorClass::Permanent);

        // Private methods are refused; unknown fields are invalid.
        let err = client
            .call(holdfast_sync::odoo::Call::new("stock.picking", "_action_done").ids(&[1]))
            .await
            .unwrap_err();
        assert_eq!(err.exception(), Some("AccessError"), "Odoo {version}");
        let err = client
            .search_read("stock.picking", json!([]), &["no_such_field"], "id", None)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent, "{err}");

        // write_date: "YYYY-MM-DD HH:MM:SS", and `>` finds what changed after a cursor.
        let picking = data.pickings[0].id.0;
        client
            .write("stock.picking", &[picking], json!({"origin": "EDITED"}))
            .await
            .unwrap();
        let row = &client
            .read("stock.picking", &[picking], &["write_date", "origin"])
            .await
            .unwrap()[0];
        let stamp = row["write_date"].as_str().unwrap();
        assert_eq!(stamp.len(), 19, "{stamp}");
        assert_eq!(row["origin"], "EDITED");
        let changed = client
            .search(
                "stock.picking",
                json!([["write_date", ">=", stamp], ["origin", "=", "EDITED"]]),
                "id",
            )
            .await
            .unwrap();
        assert_eq!(changed, vec![picking]);

        // create answers ids.
        let ids = client
            .create("res.partner", json!([{"name": "New customer"}]))
            .await
            .unwrap();
        assert_eq!(ids.len(), 1);
    }
}

#[tokio::test]
async fn company_scope_hides_the_other_company() {
    let (sim, data) = start(18).await;
    let client = OdooClient::connect(client_config(&sim)).await.unwrap();
    let ids = client
        .search("stock.picking", json!([]), "id")
        .await
        .unwrap();
    let company1: Vec<i64> = data
        .pickings
        .iter()
        .filter(|p| p.company_id.0 == 1)
        .map(|p| p.id.0)
        .collect();
    assert_eq!(ids, company1);
    assert!(
        company1.len() < data.pickings.len(),
        "the demo has pickings of both companies"
    );
}

#[tokio::test]
async fn the_demo_data_round_trips_through_odoos_read_format() {
    for version in [18, 19] {
        let (sim, data) = start(version).await;
        let mut config = client_config(&sim);
        // Both companies, to compare everything.
        config.company_id = 1;
        let client = OdooClient::connect(config).await.unwrap();
        let expected: Vec<Record> = data.records().collect();
        let map = client.models();
        for model in Model::ALL {
            let got: Vec<Record> = if matches!(*model, Model::Packaging | Model::Product) {
                // 19's packagings are product.uom rows made into packagings by the pull, and
                // a product's rounding is its unit's, joined in by the pull.
                let query = PageQuery {
                    limit: 100_000,
                    ..PageQuery::default()
                };
                let scope = Scope {
                    company_id: 1,
                    warehouse_id: 1,
                };
                read_page(&client, &scope, *model, &query)
                    .await
                    .unwrap()
                    .records
            } else {
                let rows = client
                    .call(
                        Call::new(map.odoo_name(*model).unwrap(), "search_read")
                            .arg("domain", json!([]))
                            .arg("fields", json!(map.read_fields(*model)))
                            .arg("order", "id asc")
                            .context("allowed_company_ids", json!([1, 2])),
                    )
                    .await
                    .unwrap();
                rows.as_array()
                    .unwrap()
                    .iter()
                    .map(|r| map_record(*model, r.as_object().unwrap()).unwrap())
                    .collect()
            };
            let want: Vec<&Record> = expected.iter().filter(|r| r.model() == *model).collect();
            assert_eq!(got.len(), want.len(), "{model:?} on Odoo {version}");
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g, w, "Odoo {version}");
            }
        }
    }
}

#[tokio::test]
async fn injected_faults_surface_with_the_right_class() {
    for version in [18, 19] {
        let (sim, data) = start(version).await;
        let mut config = client_config(&sim);
        config.timeout = std::time::Duration::from_millis(500);
        let client = OdooClient::connect(config).await.unwrap();
        let read = || client.read("stock.picking", &[1], &["name"]);

        sim.inject([Fault::Status(503)]);
        assert!(matches!(
            read().await.unwrap_err(),
            OdooError::Busy { status: 503, .. }
        ));
        sim.inject([Fault::TooManyRequests(7)]);
        let err = read().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
        sim.inject([Fault::Status(500)]);
        assert_eq!(read().await.unwrap_err().class(), ErrorClass::Ambiguous);
        sim.inject([Fault::Reset]);
        let err = read().await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Ambiguous, "{err}");
        sim.inject([Fault::BlackHole]);
        assert!(matches!(read().await.unwrap_err(), OdooError::Timeout(_)));
        sim.inject([Fault::Latency(std::time::Duration::from_millis(150))]);
        let t = std::time::Instant::now();
        assert_eq!(read().await.unwrap().len(), 1);
        assert!(t.elapsed() >= std::time::Duration::from_millis(150));

        // The worst case: Odoo applied the write, the answer was lost.
        let picking = data.pickings[0].id.0;
        sim.inject([Fault::CommitThenDrop]);
        let err = client
            .write("stock.picking", &[picking], json!({"origin": "APPLIED"}))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Ambiguous, "{err}");
        let row = &client
            .read("stock.picking", &[picking], &["origin"])
            .await
            .unwrap()[0];
        assert_eq!(
            row["origin"], "APPLIED",
            "committed although the caller never heard"
        );
        assert_eq!(sim.pending_faults(), 0);
    }
}

/// Facts of ODOO.md about the wire itself, checked on the simulator with a plain HTTP client.
#[tokio::test]
async fn the_simulator_answers_like_odoo_on_the_wire() {
    let http = reqwest::Client::new();
    for version in [18, 19] {
        let (sim, _) = start(version).await;
        let url = sim.url();
        let health = http.get(format!("{url}/web/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(
            health.json::<serde_json::Value>().await.unwrap(),
            json!({"status": "pass"})
        );
        // Every answer closes the connection, like Odoo's threaded server.
        let r = http
            .post(format!("{url}/jsonrpc"))
            .body("{")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get("connection").and_then(|v| v.to_str().ok()),
            Some("close")
        );
        assert_eq!(r.status(), 400, "malformed JSON");
        let r = http
            .post(format!("{url}/jsonrpc"))
            .body("{}")
            .header("content-type", "text/plain")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "wrong content type on JSON-RPC");
        assert!(r.text().await.unwrap().contains("<html"));
        let version_page = http
            .get(format!("{url}/web/version"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(version_page, if version >= 19 { 200 } else { 404 });
        // A method returning None: no `result` key.
        let c = sim.config();
        let body = json!({"jsonrpc": "2.0", "method": "call", "id": 9, "params": {"service": "object", "method": "execute_kw",
            "args": [c.database, 2, c.api_key, "stock.quant", "action_apply_inventory", [[1]], {}]}});
        let answer: serde_json::Value = http
            .post(format!("{url}/jsonrpc"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer, json!({"jsonrpc": "2.0", "id": 9}));
        let error_code: serde_json::Value = http
            .post(format!("{url}/jsonrpc"))
            .json(&json!({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {"service": "object", "method": "execute_kw",
                "args": [c.database, 2, "bad", "res.partner", "search", [[]], {}]}}))
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(
            error_code["error"]["data"]["name"],
            "odoo.exceptions.AccessDenied"
        );
        assert_eq!(
            error_code["error"]["code"],
            if version >= 19 { 0 } else { 200 }
        );
        if version >= 19 {
            let json2 = |path: &str| {
                http.post(format!("{url}/json/2/{path}"))
                    .bearer_auth(&c.api_key)
                    .header("X-Odoo-Database", &c.database)
            };
            // A JSON array body is silently ignored.
            let r = json2("res.partner/search")
                .json(&json!([1, 2]))
                .send()
                .await
                .unwrap();
            assert_eq!(
                (r.status().as_u16(), r.text().await.unwrap()),
                (200, "[]".to_owned())
            );
            let r = json2("res.partner/search")
                .body("{}")
                .header("content-type", "text/plain")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 415);
            let r = http
                .post(format!("{url}/json/2/res.partner/search"))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401);
            assert_eq!(
                r.headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer")
            );
            let r = json2("stock.quant/action_apply_inventory")
                .json(&json!({"ids": [1]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.text().await.unwrap(), "null");
            let r = json2("res.partner/no_such_method")
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404);
        }
    }
}

#[tokio::test]
async fn hostile_answers_get_typed_errors() {
    let (sim, _) = start(18).await;
    let mut config = client_config(&sim);
    config.max_response_bytes = 4096;
    let client = OdooClient::connect(config).await.unwrap();
    // Too large: the answer is cut off at the limit, not buffered whole.
    let err = client
        .search_read(
            "stock.quant",
            json!([]),
            &["product_id", "location_id"],
            "id",
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, OdooError::TooLarge { limit: 4096 }), "{err}");
    // A login page where JSON was expected.
    sim.inject([Fault::HtmlPage]);
    let err = client
        .read("stock.picking", &[1], &["name"])
        .await
        .unwrap_err();
    assert!(
        matches!(err, OdooError::Protocol { status: 200, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Sign in"), "{err}");
    // An answer cut off half-way: the call may have been applied.
    sim.inject([Fault::Truncated]);
    let err = client
        .read("stock.picking", &[1], &["name"])
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Ambiguous, "{err}");
    // TLS spoken to a plain-HTTP server: the handshake fails before anything is sent.
    let c = sim.config();
    let tls = ClientConfig::new(
        &sim.url().replace("http://", "https://"),
        &c.database,
        &c.login,
        &c.api_key,
        1,
    );
    let err = OdooClient::connect(tls).await.unwrap_err();
    assert!(matches!(err, OdooError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn cloud_side_edits_are_visible_to_the_client() {
    let (sim, data) = start(18).await;
    let client = OdooClient::connect(client_config(&sim)).await.unwrap();
    let picking = data
        .pickings
        .iter()
        .find(|p| p.state == holdfast_sync::records::PickingState::Assigned && p.company_id.0 == 1)
        .unwrap()
        .id
        .0;
    let before = client
        .search(
            "stock.move.line",
            json!([["picking_id", "=", picking]]),
            "id",
        )
        .await
        .unwrap();
    sim.rereserve(picking);
    let after = client
        .search(
            "stock.move.line",
            json!([["picking_id", "=", picking]]),
            "id",
        )
        .await
        .unwrap();
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "{before:?} -> {after:?}"
    );
    sim.cancel_picking(picking);
    let state = &client
        .read("stock.picking", &[picking], &["state"])
        .await
        .unwrap()[0]["state"];
    assert_eq!(state, "cancel");
    let product = data.products[0].id.0;
    assert!(sim.archive_product(product));
    // Archived records drop out of default searches; the pull asks for active in (true, false).
    assert!(
        client
            .search("product.product", json!([["id", "=", product]]), "id")
            .await
            .unwrap()
            .is_empty()
    );
    let both = client
        .search(
            "product.product",
            json!([["id", "=", product], ["active", "in", [true, false]]]),
            "id",
        )
        .await
        .unwrap();
    assert_eq!(both, vec![product]);
    let quant = data.quants[0].id.0;
    assert!(sim.set_quantity(quant, 1234.0));
    assert_eq!(
        client
            .read("stock.quant", &[quant], &["quantity"])
            .await
            .unwrap()[0]["quantity"],
        json!(1234.0)
    );
}

/// Odoo 19 lost `product.packaging`, renamed `stock.quant.package` and dropped
/// `stock.move.name`: the simulator answers as a real 19 does, and the client's model map
/// reads 19's models instead.
#[tokio::test]
async fn odoo_19_models_answer_like_odoo_19_and_the_map_follows_them() {
    let (sim, data) = start(19).await;
    let client = OdooClient::connect(client_config(&sim)).await.unwrap();
    let map = client.models();
    assert_eq!(map.odoo_name(Model::Package), Some("stock.package"));
    assert_eq!(map.odoo_name(Model::Packaging), Some("product.uom"));
    assert_eq!(map.packaging(), Some(PackagingSource::ProductUom));
    assert!(!map.moves_take_name());
    assert!(map.degraded().is_empty(), "{:?}", map.degraded());

    // The models 19 removed: 404 NotFound, on the wire as real 19 answers.
    for gone in ["product.packaging", "stock.quant.package"] {
        let err = client
            .search_read(gone, json!([]), &["id"], "id", None)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            OdooError::Server {
                name: "werkzeug.exceptions.NotFound".into(),
                message: format!("the model '{gone}' does not exist"),
                status: Some(404),
            }
        );
        assert_eq!(err.class(), ErrorClass::Permanent);
    }
    let c = sim.config();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/json/2/product.packaging/search_read",
            sim.url()
        ))
        .bearer_auth(&c.api_key)
        .header("X-Odoo-Database", &c.database)
        .json(&json!({"domain": [], "fields": ["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["name"], "werkzeug.exceptions.NotFound");
    assert_eq!(
        body["message"],
        "the model 'product.packaging' does not exist"
    );

    // stock.move.name is gone: reading, searching, writing or creating with it is a
    // ValueError (500 on JSON-2), as Odoo's ORM raises for an unknown field.
    let err = client
        .search_read("stock.move", json!([]), &["name"], "id", Some(1))
        .await
        .unwrap_err();
    assert_eq!(
        (
            err.exception(),
            err.to_string().contains("Invalid field 'name'")
        ),
        (Some("ValueError"), true),
        "{err}"
    );
    assert!(matches!(
        err,
        OdooError::Server {
            status: Some(500),
            ..
        }
    ));
    let err = client
        .search("stock.move", json!([["name", "=like", "holdfast:%"]]), "id")
        .await
        .unwrap_err();
    assert_eq!(err.exception(), Some("ValueError"), "{err}");
    let mv = &data.moves[0];
    let err = client
        .write("stock.move", &[mv.id.0], json!({"name": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.exception(), Some("ValueError"), "{err}");
    let err = client
        .create(
            "stock.move",
            json!([{"name": "x", "product_id": mv.product_id.0, "product_uom_qty": 1.0,
                    "location_id": mv.location_id.0, "location_dest_id": mv.location_dest_id.0}]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "builtins.ValueError: Invalid field 'name' in 'stock.move'"
    );
    // Moves are created without it, and marks are found through `reference`.
    let created = client
        .create(
            "stock.move",
            json!([{"product_id": mv.product_id.0, "product_uom_qty": 1.0,
                    "location_id": mv.location_id.0, "location_dest_id": mv.location_dest_id.0}]),
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    let fields = client
        .call(Call::new("stock.move", "fields_get").arg("attributes", json!(["type"])))
        .await
        .unwrap();
    assert!(
        fields.get("name").is_none() && fields.get("reference").is_some(),
        "{fields}"
    );

    // The new models hold the data set's packages and packagings.
    let packages = client
        .search_read("stock.package", json!([]), &["name"], "id", None)
        .await
        .unwrap();
    assert_eq!(packages.len(), data.packages.len());
    assert_eq!(packages[0]["name"], json!(data.packages[0].name));
    let units = client
        .search_read(
            "product.uom",
            json!([]),
            &["product_id", "uom_id", "barcode"],
            "id",
            None,
        )
        .await
        .unwrap();
    assert_eq!(units.len(), data.packagings.len());
    assert_eq!(units[0]["uom_id"][1], json!("Box of 12"));
    assert_eq!(units[0]["barcode"], json!(data.packagings[0].barcode));
}

#[tokio::test]
async fn odoo_18_keeps_its_models_and_its_move_names() {
    let (sim, data) = start(18).await;
    let client = OdooClient::connect(client_config(&sim)).await.unwrap();
    let map = client.models();
    assert_eq!(map.odoo_name(Model::Package), Some("stock.quant.package"));
    assert_eq!(map.odoo_name(Model::Packaging), Some("product.packaging"));
    assert!(map.moves_take_name());
    assert_eq!(
        client
            .search("product.packaging", json!([]), "id")
            .await
            .unwrap()
            .len(),
        data.packagings.len()
    );
    // Over JSON-RPC an unknown model is a UserError, on 18 as on 19.
    let err = client
        .search("stock.package", json!([]), "id")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "odoo.exceptions.UserError: Object stock.package doesn't exist"
    );
}

/// A 19 packaging's quantity is its unit in the product's unit: `factor / product factor`.
#[tokio::test]
async fn odoo_19_packaging_quantities_come_from_the_unit_factors() {
    let (sim, data) = start(19).await;
    let product = data.packagings[0].product_id.0;
    let (dozens, pallet, pack) = sim.with_tables(|t| {
        let now = holdfast_sync::sim::odoo_now();
        let unit = |t: &mut holdfast_sync::sim::store::Tables, name: &str, factor: f64| {
            let id = t.next_id("uom.uom");
            t.insert(
                "uom.uom",
                id,
                serde_json::Map::from_iter([
                    ("name".into(), json!(name)),
                    ("relative_factor".into(), json!(factor)),
                    ("relative_uom_id".into(), json!(1)),
                    ("factor".into(), json!(factor)),
                ]),
                &now,
            );
            id
        };
        let dozens = unit(t, "Dozens", 12.0);
        let pallet = unit(t, "Pallet", 480.0);
        // The product is now counted in dozens; a pallet of 480 units is 40 dozens.
        assert!(t.write("product.product", product, json!({"uom_id": dozens}), &now));
        let pack = t.next_id("product.uom");
        t.insert(
            "product.uom",
            pack,
            serde_json::Map::from_iter([
                ("product_id".into(), json!(product)),
                ("uom_id".into(), json!(pallet)),
                ("barcode".into(), json!("19999999999999")),
                ("company_id".into(), json!(false)),
            ]),
            &now,
        );
        (dozens, pallet, pack)
    });
    let client = OdooClient::connect(client_config(&sim)).await.unwrap();
    let scope = Scope {
        company_id: 1,
        warehouse_id: 1,
    };
    let query = PageQuery {
        limit: 1_000,
        ..PageQuery::default()
    };
    let page = read_page(&client, &scope, Model::Packaging, &query)
        .await
        .unwrap();
    let of_product: Vec<&Packaging> = page
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Packaging(p) if p.product_id == ProductId(product) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(
        of_product,
        [
            &Packaging {
                id: data.packagings[0].id,
                product_id: ProductId(product),
                name: "Box of 12".into(),
                barcode: data.packagings[0].barcode.clone(),
                qty: 1.0,
            },
            &Packaging {
                id: PackagingId(pack),
                product_id: ProductId(product),
                name: "Pallet".into(),
                barcode: Some("19999999999999".into()),
                qty: 40.0,
            }
        ],
        "units {dozens} and {pallet}"
    );
    assert_eq!(page.fetched, data.packagings.len() + 1);
    assert_eq!(
        scope_ids(&client, &scope, Model::Packaging)
            .await
            .unwrap()
            .len(),
        data.packagings.len() + 1
    );

    // A unit factor of zero is hostile input: a mapping error naming the record, no panic.
    sim.with_tables(|t| {
        t.write(
            "uom.uom",
            pallet,
            json!({"factor": 0.0}),
            &holdfast_sync::sim::odoo_now(),
        )
    });
    let err = read_page(&client, &scope, Model::Packaging, &query)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("product.uom record {pack}: field uom_id")),
        "{err}"
    );
}

#[tokio::test]
async fn unverified_versions_are_refused_unless_allowed() {
    let (sim, _) = start(17).await;
    let err = OdooClient::connect(client_config(&sim)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "odoo 17.0 has not been verified with holdfast; set odoo.allow_unverified_version = true to try it"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    let mut config = client_config(&sim);
    config.allow_unverified_version = true;
    let client = OdooClient::connect(config).await.unwrap();
    assert_eq!(client.version().major, 17);
    // Judged by what it has: 18's models.
    assert_eq!(
        client.models().odoo_name(Model::Package),
        Some("stock.quant.package")
    );
}
