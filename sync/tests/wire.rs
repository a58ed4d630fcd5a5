//! The wire client against the Odoo simulator on 127.0.0.1, over both transports: the
//! facts of ODOO.md that the generic ORM covers, and a full round trip of the demo data set
//! through Odoo's read format and the record mapping.

#![allow(clippy::unwrap_used)]

use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::odoo::mapping::{fields, map_record};
use holdfast_sync::odoo::{ClientConfig, ErrorClass, OdooClient, OdooError, Protocol};
use holdfast_sync::records::{Model, Record};
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
        config.api_key.0 = "wrong".into();
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
        for model in Model::ALL {
            let rows = client
                .call(
                    holdfast_sync::odoo::Call::new(model.odoo_name(), "search_read")
                        .arg("domain", json!([]))
                        .arg("fields", json!(fields(*model)))
                        .arg("order", "id asc")
                        .context("allowed_company_ids", json!([1, 2])),
                )
                .await
                .unwrap();
            let got: Vec<Record> = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|r| map_record(*model, r.as_object().unwrap()).unwrap())
                .collect();
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
