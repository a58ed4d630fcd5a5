//! The drain run against a real Odoo (issue 17): what an offline backlog does to Odoo and to
//! its other users when the link comes back. The real `holdfast` binary, a real Odoo 18 or
//! 19, the fault proxy between them standing in for the WAN, and another Odoo client reading
//! beside the drain.
//!
//! Opt-in like `real_odoo.rs`: it needs `HOLDFAST_ODOO_URL`, `_DB`, `_LOGIN`, `_KEY`
//! (`../shared/odoo-lab/` writes them to `WORK_DIR/odoo.env`) and writes to that database,
//! so also `HOLDFAST_ODOO_ALLOW_WRITES=1`; without them it prints that it skipped and why.
//! Reset the database before each run (`reset.sh WORK_DIR`).
//!
//! Settings, from the environment:
//! - `HOLDFAST_DRAIN_CONCURRENCY` (`push.concurrency`), `HOLDFAST_DRAIN_CALLS_PER_SEC`
//!   (`push.max_calls_per_sec`), `HOLDFAST_DRAIN_ADAPTIVE` (`push.adaptive`, `1`/`true` or
//!   `0`/`false`); each unset is not written (the appliance's default). The old defaults
//!   were concurrency 4 at 20 calls/s, fixed;
//! - `HOLDFAST_ODOO_LOG`: Odoo's server log (e.g. `/work/lab/lab18/logs/odoo.log`), to count
//!   the serialization failures Odoo logged during the drain; unset: not counted;
//! - `HOLDFAST_DRAIN_PICKINGS` (default 100), for a shorter run.
//!
//! ```sh
//! bash ../shared/odoo-lab/reset.sh /work/lab/lab18 && . /work/lab/lab18/odoo.env
//! HOLDFAST_ODOO_ALLOW_WRITES=1 HOLDFAST_ODOO_LOG=/work/lab/lab18/logs/odoo.log \
//!   HOLDFAST_DRAIN_ADAPTIVE=0 HOLDFAST_DRAIN_CONCURRENCY=4 HOLDFAST_DRAIN_CALLS_PER_SEC=20 \
//!   cargo test -p holdfast --test real_odoo_drain -- --nocapture
//! ```
//!
//! What it does:
//! 1. fixtures through the API, tagged per run: 4 bins with barcodes, 20 storable products
//!    with barcodes, 400 of each in one bin (an applied count), and 100 deliveries of 5 lines
//!    each over those 20 products (so pickings share products, as in a real wave), confirmed
//!    and reserved;
//! 2. `holdfast sync pull --full`, starts the appliance, cuts the link;
//! 3. picks all 100 offline through the device API (one handheld, one operator): per line
//!    scan the bin, scan the product, set the quantity; then validate;
//! 4. another Odoo client (straight to Odoo, not through the proxy) reads one record in a
//!    loop for 5 s: its idle latency;
//! 5. restores the link; the same client reads in a loop until the queue is empty: its
//!    latency during the drain, and the drain time;
//! 6. checks Odoo: every picking done; no split quants (two positive quants of one product in
//!    one bin, no lot or package); no negative quants; no reservation without a move line
//!    (`stock.quant.reserved_quantity` vs the open move lines on that quant); and counts
//!    Odoo's logged serialization failures; prints one summary line.

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use holdfast_sync::odoo::{Call, ClientConfig, OdooClient};
use holdfast_sync::sim::proxy::{FaultProxy, Link};
use serde_json::{Map, Value, json};
use site::{Site, cli, drained, env};

const DEVICE_TOKEN: &str = "drain-handheld-token";
const PRODUCTS: usize = 20;
const BINS: usize = 4;
const LINES: usize = 5;
/// Stock per product: more than the deliveries take (each product is on 25 lines of at most
/// 3), so every move is reserved whole.
const STOCK: f64 = 400.0;
/// How long the other client reads while Odoo is idle.
const IDLE_PROBE: Duration = Duration::from_secs(5);

/// The push settings of this run.
/// Each `None` is not written: the appliance's default.
#[derive(Debug)]
struct Settings {
    concurrency: Option<usize>,
    calls_per_sec: Option<f64>,
    adaptive: Option<bool>,
    pickings: usize,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        fn parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
            env(name)
                .map(|v| v.parse().map_err(|_| format!("{name}={v} is not a number")))
                .transpose()
        }
        let adaptive = match env("HOLDFAST_DRAIN_ADAPTIVE").as_deref() {
            None => None,
            Some("1" | "true") => Some(true),
            Some("0" | "false") => Some(false),
            Some(other) => {
                return Err(format!(
                    "HOLDFAST_DRAIN_ADAPTIVE={other}: say 1/true or 0/false"
                ));
            }
        };
        Ok(Settings {
            concurrency: parse("HOLDFAST_DRAIN_CONCURRENCY")?,
            calls_per_sec: parse("HOLDFAST_DRAIN_CALLS_PER_SEC")?,
            adaptive,
            pickings: parse("HOLDFAST_DRAIN_PICKINGS")?.unwrap_or(100),
        })
    }

    fn toml(&self) -> String {
        let mut out = String::new();
        if let Some(c) = self.concurrency {
            out.push_str(&format!("concurrency = {c}\n"));
        }
        if let Some(r) = self.calls_per_sec {
            out.push_str(&format!("max_calls_per_sec = {r}\n"));
        }
        if let Some(a) = self.adaptive {
            out.push_str(&format!("adaptive = {a}\n"));
        }
        out
    }

    fn label(&self) -> String {
        let or_default = |v: Option<String>| v.unwrap_or_else(|| "default".to_owned());
        let adaptive = match self.adaptive {
            Some(true) => "adaptive",
            Some(false) => "fixed",
            None => "default mode",
        };
        format!(
            "{adaptive}, concurrency {}, {} calls/s",
            or_default(self.concurrency.map(|c| c.to_string())),
            or_default(self.calls_per_sec.map(|r| r.to_string())),
        )
    }
}

fn new_site(odoo: &ClientConfig, proxy: &FaultProxy, warehouse_id: i64, s: &Settings) -> Site {
    Site::new(DEVICE_TOKEN, |port, dir| {
        // The push's own settings come from the run; the probe is fast so the drain starts
        // as soon as the link is back (the drain is measured, not the detection), and the
        // retry ceiling is short so a batch refused a few times does not idle for minutes.
        format!(
            "[site]\nid = \"real-odoo-drain\"\n[store]\npath = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n\
             [log]\nlevel = \"info\"\n\
             [odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\n\
             company_id = {}\nwarehouse_id = {warehouse_id}\n\
             [push]\n{}retry_min_secs = 1\nretry_max_secs = 10\nprobe_secs = 0.5\n\
             [[devices]]\nid = \"hh1\"\ntoken = \"{DEVICE_TOKEN}\"\n",
            dir.join("holdfast.db").display(),
            proxy.url(),
            odoo.database,
            odoo.login,
            odoo.api_key.expose(),
            odoo.company_id,
            s.toml(),
        )
    })
}

fn id_of(record: &Map<String, Value>, field: &str) -> i64 {
    match &record[field] {
        Value::Array(pair) => pair[0].as_i64().unwrap(),
        Value::Number(n) => n.as_i64().unwrap(),
        other => panic!("{field}: {other}"),
    }
}

fn ids(created: &Value) -> Vec<i64> {
    match created {
        Value::Array(a) => a.iter().map(|v| v.as_i64().unwrap()).collect(),
        v => vec![v.as_i64().unwrap()],
    }
}

async fn one(odoo: &OdooClient, model: &str, domain: Value, fields: &[&str]) -> Map<String, Value> {
    let mut rows = odoo
        .search_read(model, domain.clone(), fields, "id", Some(1))
        .await
        .unwrap();
    assert!(!rows.is_empty(), "no {model} with {domain}");
    rows.remove(0)
}

/// What the run created: bins and products (id, barcode), and the deliveries with their
/// lines (product index, quantity).
struct Fixtures {
    warehouse_id: i64,
    bins: Vec<(i64, String)>,
    products: Vec<(i64, String)>,
    deliveries: Vec<(i64, Vec<(usize, f64)>)>,
    partner: i64,
}

/// The bin holding product `p`'s stock.
fn bin_of(p: usize) -> usize {
    p % BINS
}

async fn set_up(odoo: &OdooClient, tag: &str, pickings: usize) -> Fixtures {
    let major = odoo.version().major;
    let wh = one(
        odoo,
        "stock.warehouse",
        json!([["company_id", "=", 1]]),
        &["lot_stock_id"],
    )
    .await;
    let warehouse_id = wh["id"].as_i64().unwrap();
    let stock = id_of(&wh, "lot_stock_id");
    // The warehouse's delivery type by its code (the simulator names no `out_type_id`).
    let out_type = one(
        odoo,
        "stock.picking.type",
        json!([
            ["code", "=", "outgoing"],
            ["warehouse_id", "=", warehouse_id]
        ]),
        &["id"],
    )
    .await["id"]
        .as_i64()
        .unwrap();
    // Fields Odoo defaults are given anyway, so the run also works against the simulator
    // (a dry run of this harness). Few calls: one `create` per model with every record (Odoo takes lists).
    let bin_barcodes: Vec<String> = (0..BINS).map(|b| format!("HFD{tag}B{b}")).collect();
    let bins = odoo
        .create(
            "stock.location",
            Value::Array(
                bin_barcodes
                    .iter()
                    .map(|code| json!({"name": code, "location_id": stock, "usage": "internal", "barcode": code,
                                 "active": true, "company_id": 1}))
                    .collect(),
            ),
        )
        .await
        .unwrap();
    let product_barcodes: Vec<String> = (0..PRODUCTS).map(|p| format!("HFD{tag}P{p:02}")).collect();
    let products = odoo
        .create(
            "product.product",
            Value::Array(
                product_barcodes
                    .iter()
                    .map(|code| {
                        json!({"name": format!("Holdfast drain {code}"), "type": "consu",
                                       "is_storable": true, "tracking": "none", "barcode": code,
                                       "active": true, "company_id": false})
                    })
                    .collect(),
            ),
        )
        .await
        .unwrap();
    // Stock as a person sets it: counts, applied.
    let quants = odoo
        .call(
            Call::new("stock.quant", "create")
                .arg(
                    "vals_list",
                    Value::Array(
                        (0..PRODUCTS)
                            .map(|p| {
                                json!({"product_id": products[p], "location_id": bins[bin_of(p)],
                                            "inventory_quantity": STOCK})
                            })
                            .collect(),
                    ),
                )
                .context("inventory_mode", true),
        )
        .await
        .unwrap();
    odoo.call(Call::new("stock.quant", "action_apply_inventory").ids(&ids(&quants)))
        .await
        .unwrap();

    // From the warehouse's stock (the bins are inside it) to the customers.
    let src = stock;
    let dest = one(
        odoo,
        "stock.location",
        json!([["usage", "=", "customer"]]),
        &["id"],
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let partner = one(odoo, "res.partner", json!([]), &["id"]).await["id"]
        .as_i64()
        .unwrap();
    // Delivery i takes products i, i+4, i+8, … (mod 20): five distinct products, each
    // product on a quarter of the deliveries, so neighbours in the queue share products.
    let lines: Vec<Vec<(usize, f64)>> = (0..pickings)
        .map(|i| {
            (0..LINES)
                .map(|j| ((i + 4 * j) % PRODUCTS, (1 + (i + j) % 3) as f64))
                .collect()
        })
        .collect();
    let vals: Vec<Value> = lines
        .iter()
        .map(|l| {
            let moves: Vec<Value> = l
                .iter()
                .map(|&(p, qty)| {
                    let mut mv = json!({"product_id": products[p], "product_uom_qty": qty,
                                        "location_id": src, "location_dest_id": dest,
                                        "company_id": 1});
                    // Odoo 18 requires a move's name; 19 has no such field.
                    if major < 19 {
                        mv["name"] = json!(format!("Holdfast drain {tag}"));
                    }
                    json!([0, 0, mv])
                })
                .collect();
            json!({"picking_type_id": out_type, "location_id": src, "location_dest_id": dest,
                   "partner_id": partner, "origin": format!("HF-DRAIN-{tag}"), "move_ids": moves,
                   "company_id": 1})
        })
        .collect();
    let pickings_ids = ids(&odoo
        .call(Call::new("stock.picking", "create").arg("vals_list", Value::Array(vals)))
        .await
        .unwrap());
    for method in ["action_confirm", "action_assign"] {
        odoo.call(Call::new("stock.picking", method).ids(&pickings_ids))
            .await
            .unwrap();
    }
    let assigned = odoo
        .search_read(
            "stock.picking",
            json!([
                ["id", "in", pickings_ids.clone()],
                ["state", "=", "assigned"]
            ]),
            &["id"],
            "id",
            None,
        )
        .await
        .unwrap()
        .len();
    assert_eq!(assigned, pickings_ids.len(), "every delivery reserved");
    Fixtures {
        warehouse_id,
        bins: bins.into_iter().zip(bin_barcodes).collect(),
        products: products.into_iter().zip(product_barcodes).collect(),
        deliveries: pickings_ids.into_iter().zip(lines).collect(),
        partner,
    }
}

/// p50 and p99 in milliseconds.
fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    (at(50), at(99))
}

/// Another Odoo user: reads one record in a loop until `done` says stop; each read's time
/// in milliseconds.
async fn other_user<F: std::future::Future<Output = bool>>(
    odoo: &OdooClient,
    partner: i64,
    mut done: impl FnMut() -> F,
) -> Vec<f64> {
    let mut samples = Vec::new();
    loop {
        let started = Instant::now();
        odoo.search_read(
            "res.partner",
            json!([["id", "=", partner]]),
            &["name"],
            "id",
            Some(1),
        )
        .await
        .unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        if done().await {
            return samples;
        }
    }
}

/// Odoo's log from byte `from` on: lines with "could not serialize access" (one per failed
/// try: `odoo.sql_db` logs the refused query), retries Odoo scheduled ("tries left"), and
/// calls it gave up on ("maximum number of tries reached", `odoo/service/model.py`).
fn serialization_in_log(path: &str, from: u64) -> (usize, usize, usize) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let tail = String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default());
    let count = |needle: &str| tail.lines().filter(|l| l.contains(needle)).count();
    (
        count("could not serialize access"),
        count("tries left, try again"),
        count("maximum number of tries reached"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_against_a_real_odoo_leaves_its_other_users_and_its_stock_sound() {
    let name = "a_drain_against_a_real_odoo_leaves_its_other_users_and_its_stock_sound";
    let config = match site::real_odoo() {
        Ok(c) => c,
        Err(why) => {
            println!("skipped: {name}: {why}");
            return;
        }
    };
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {name}: {why}");
            return;
        }
    };
    let odoo_log = env("HOLDFAST_ODOO_LOG");
    let odoo = OdooClient::connect(config.clone()).await.unwrap();
    let version = odoo.version().raw.clone();
    println!(
        "odoo {version} ({:?}) at {}; {}",
        odoo.protocol(),
        config.url,
        settings.label()
    );
    let tag = format!("{}", std::time::UNIX_EPOCH.elapsed().unwrap().as_secs());
    let started = Instant::now();
    let fx = set_up(&odoo, &tag, settings.pickings).await;
    println!(
        "fixtures: {} bins, {} products, {} deliveries of {LINES} lines in {:.1} s",
        fx.bins.len(),
        fx.products.len(),
        fx.deliveries.len(),
        started.elapsed().as_secs_f64()
    );

    let upstream = config
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let site = new_site(&config, &proxy, fx.warehouse_id, &settings);
    let cfg = site.config.clone();
    cli(&cfg, &["sync", "pull", "--full"]);
    cli(
        &cfg,
        &[
            "operator", "add", "alice", "--name", "Alice", "--badge", "OP-ALICE",
        ],
    );
    let _app = site.start_appliance();
    site.wait_until("serving, online", 60, |s| s["mode"] == "online")
        .await;

    // The WAN goes; the floor picks every delivery.
    proxy.set(Link::Refuse);
    site.wait_until("offline", 30, |s| s["mode"] == "offline")
        .await;
    site.post("/api/v1/login", json!({"badge": "OP-ALICE"}))
        .await;
    let started = Instant::now();
    for (picking, lines) in &fx.deliveries {
        let s = site
            .start(json!({"workflow": "pick", "picking_id": picking}))
            .await;
        for &(p, qty) in lines {
            site.scan(&fx.bins[bin_of(p)].1).await;
            site.scan(&fx.products[p].1).await;
            site.quantity(&s, qty).await;
        }
        site.post(
            &format!("/api/v1/sessions/{s}/validate"),
            json!({"backorder": "no_backorder"}),
        )
        .await;
    }
    let pick_secs = started.elapsed().as_secs_f64();
    let s = site.status().await;
    assert_eq!(
        s["queue"]["applied"], 0,
        "nothing reached Odoo offline: {s}"
    );
    let recorded = s["queue"]["pending"].as_i64().unwrap();
    println!(
        "picked {} deliveries offline in {pick_secs:.1} s: {recorded} entries",
        fx.deliveries.len()
    );

    // Another user of Odoo, straight to it: idle first.
    let other = OdooClient::connect(config.clone()).await.unwrap();
    let idle_until = Instant::now() + IDLE_PROBE;
    let mut idle = other_user(&other, fx.partner, || {
        std::future::ready(Instant::now() >= idle_until)
    })
    .await;

    // The link returns: the drain, with the other user reading beside it.
    let log_from = odoo_log
        .as_deref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    let calls0 = site.status().await["push"]["calls"].as_u64().unwrap_or(0);
    proxy.set(Link::Up);
    let drain_started = Instant::now();
    let deadline = drain_started + Duration::from_secs(900);
    let site_ref = &site;
    let mut busy = other_user(&other, fx.partner, || async move {
        let s = site_ref.status().await;
        assert!(
            Instant::now() < deadline,
            "the drain did not finish in 900 s: {s}"
        );
        drained(&s)
    })
    .await;
    // The probe loop notices the end only after its read; the queue's own end is close
    // enough (a read takes tens of milliseconds).
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let s = site.status().await;
    let calls = s["push"]["calls"].as_u64().unwrap_or(0) - calls0;
    let conflicts = s["conflicts"]["open"].as_i64().unwrap_or(0);

    // Odoo afterwards.
    let picking_ids: Vec<i64> = fx.deliveries.iter().map(|(id, _)| *id).collect();
    let done = odoo
        .search_read(
            "stock.picking",
            json!([["id", "in", picking_ids.clone()], ["state", "=", "done"]]),
            &["id"],
            "id",
            None,
        )
        .await
        .unwrap()
        .len();
    let product_ids: Vec<i64> = fx.products.iter().map(|(id, _)| *id).collect();
    let quants = odoo
        .search_read(
            "stock.quant",
            json!([
                ["product_id", "in", product_ids.clone()],
                ["location_id.usage", "=", "internal"]
            ]),
            &[
                "product_id",
                "location_id",
                "lot_id",
                "package_id",
                "quantity",
                "reserved_quantity",
            ],
            "id",
            None,
        )
        .await
        .unwrap();
    let plain = |q: &Map<String, Value>| q["lot_id"] == false && q["package_id"] == false;
    let mut positive: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for q in quants.iter().filter(|q| plain(q)) {
        if q["quantity"].as_f64().unwrap_or(0.0) > 0.0 {
            *positive
                .entry((id_of(q, "product_id"), id_of(q, "location_id")))
                .or_default() += 1;
        }
    }
    let split = positive.values().filter(|n| **n > 1).count();
    let negative = quants
        .iter()
        .filter(|q| q["quantity"].as_f64().unwrap_or(0.0) < 0.0)
        .count();
    // Reserved on a quant = the open move lines taking from it (Odoo keeps the two in step;
    // a reservation with no line behind it blocks stock nobody will ship).
    let open_lines = odoo
        .search_read(
            "stock.move.line",
            json!([
                ["product_id", "in", product_ids.clone()],
                ["state", "not in", ["done", "cancel"]]
            ]),
            &[
                "product_id",
                "location_id",
                "lot_id",
                "package_id",
                "quantity",
            ],
            "id",
            None,
        )
        .await
        .unwrap();
    let mut lines_on: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for l in open_lines.iter().filter(|l| plain(l)) {
        *lines_on
            .entry((id_of(l, "product_id"), id_of(l, "location_id")))
            .or_default() += l["quantity"].as_f64().unwrap_or(0.0);
    }
    let mut reserved_on: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for q in quants.iter().filter(|q| plain(q)) {
        *reserved_on
            .entry((id_of(q, "product_id"), id_of(q, "location_id")))
            .or_default() += q["reserved_quantity"].as_f64().unwrap_or(0.0);
    }
    let orphan = reserved_on
        .iter()
        .filter(|(key, reserved)| {
            (**reserved - lines_on.get(*key).copied().unwrap_or(0.0)).abs() > 1e-6
        })
        .count();
    let on_hand: f64 = quants
        .iter()
        .map(|q| q["quantity"].as_f64().unwrap_or(0.0))
        .sum();
    let shipped: f64 = fx
        .deliveries
        .iter()
        .flat_map(|(_, l)| l.iter().map(|(_, q)| q))
        .sum();
    let expected = STOCK * PRODUCTS as f64 - shipped;

    let serialization = odoo_log
        .as_deref()
        .map(|p| serialization_in_log(p, log_from));
    let (i50, i99) = percentiles(&mut idle);
    let (b50, b99) = percentiles(&mut busy);
    let serialization_text = match serialization {
        Some((failed, retried, gave_up)) => {
            format!("{failed} (Odoo retried {retried}, gave up on {gave_up})")
        }
        None => "not counted (HOLDFAST_ODOO_LOG unset)".to_owned(),
    };
    println!(
        "SUMMARY odoo {version} [{}]: {} deliveries x {LINES} lines drained in {drain_secs:.1} s, \
         {:.2} calls/picking ({calls} calls), other client p50/p99 idle {i50:.0}/{i99:.0} ms, \
         during {b50:.0}/{b99:.0} ms ({:.1}x/{:.1}x; {} reads), serialization failures in \
         Odoo's log {serialization_text}, pickings done {done}/{}, split quants {split}, \
         negative quants {negative}, orphan reservations {orphan}, open conflicts {conflicts}, \
         on hand {on_hand} (expected {expected})",
        settings.label(),
        fx.deliveries.len(),
        calls as f64 / fx.deliveries.len() as f64,
        b50 / i50,
        b99 / i99,
        busy.len(),
        fx.deliveries.len(),
    );
    assert_eq!(done, fx.deliveries.len(), "every delivery done in Odoo");
    assert_eq!(conflicts, 0, "no conflicts: {}", s["conflicts"]);
    assert_eq!(split, 0, "no split quants: {positive:?}");
    assert_eq!(negative, 0, "no negative quants");
    assert_eq!(orphan, 0, "no reservation without a move line");
    assert_eq!(on_hand, expected, "stock on hand after the deliveries");
}
