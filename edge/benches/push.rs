//! Drain benchmark: the real push scheduler over HTTP against the Odoo simulator.
//!
//! 1. 10,000 pick lines across 500 pickings (plus their 500 validations), 20 ms added to
//!    every call: wall time (target < 60 s), Odoo calls per pick line (target <= 0.2), peak
//!    calls/s.
//! 2. The same kind of work against a simulator capped at 45 calls/s (what a real Odoo 18 on
//!    2 cores takes): achieved calls/s as a share of the cap (target >= 80 %).
//! 3. Baseline, same run: the obvious client (one `write` per move line, then validate) on a
//!    slice of the same pickings, for the ratio.
//! 4. Under load (issue 17): the simulator's load model on (a 2-core single-process Odoo 18:
//!    each call's service time by kind, stretched while more calls run than there are cores;
//!    validations of pickings sharing products fail and retry as Odoo does), 100 deliveries
//!    of 5 lines over 20 products drained at fixed concurrency 1, 2, 4, 8 and adaptive (at
//!    most 8), all under a 45 calls/s cap. For each: drain time, calls per picking,
//!    serialization failures (tries Odoo would log, and calls that failed after Odoo's 5
//!    tries), and what another client sees meanwhile (one `search_read` at a time: p50/p99,
//!    against the same client on the idle simulator), with ratios against the fastest fixed
//!    setting and against idle. Sections 1 to 3 run at fixed concurrency, as measured before
//!    the adaptive limit existed.
//!
//! ```text
//! cargo bench -p holdfast --bench push
//! HOLDFAST_BENCH_SCALE=0.1 cargo bench -p holdfast --bench push
//! HOLDFAST_BENCH_LOAD_PICKINGS=40 cargo bench -p holdfast --bench push   # section 4's size
//! ```

// Benchmark code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast::config::PushConfig;
use holdfast::connectivity::Connectivity;
use holdfast::push::{LimitConfig, Policies, PushStats, Pusher};
use holdfast::store::{Lane, NewEntry, Store, StoreOptions};
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::odoo::{Call, ClientConfig, OdooClient};
use holdfast_sync::ops::{BackorderChoice, Operation, PickOp, ValidateOp};
use holdfast_sync::sim::load::LoadModel;
use holdfast_sync::sim::{Cloud, SimConfig, Simulator};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

fn rows(cloud: &Cloud, model: &str, domain: Value, fields: &[&str]) -> Vec<Map<String, Value>> {
    cloud
        .execute(
            Call::new(model, "search_read")
                .arg("domain", domain)
                .arg("fields", json!(fields))
                .arg("order", "id"),
        )
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

fn m2o(v: &Value) -> i64 {
    v.as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// A cloud with `pickings` reserved deliveries of `lines` untracked products each; answers
/// the pick operations that take exactly what was reserved. `shared`: the deliveries draw
/// on only that many products (each stocked plenty), so many of them share products.
fn warehouse(
    pickings: usize,
    lines: usize,
    shared: Option<usize>,
) -> (Cloud, Vec<(i64, Vec<Operation>)>) {
    let data = Dataset::generate(&DatasetSpec {
        seed: 3,
        products: 300,
        quants: 1_200,
        // A few, so every stock model exists in the simulator.
        pickings: 4,
    });
    let cloud = Cloud::new(
        SimConfig {
            sms_wizard: false,
            ..SimConfig::default()
        },
        &data,
    );
    let stock = rows(
        &cloud,
        "stock.location",
        json!([["barcode", "=", "WHSTOCK"]]),
        &["id"],
    )[0]["id"]
        .as_i64()
        .unwrap();
    let customers = rows(
        &cloud,
        "stock.location",
        json!([["usage", "=", "customer"]]),
        &["id"],
    )[0]["id"]
        .as_i64()
        .unwrap();
    let out_type = rows(
        &cloud,
        "stock.picking.type",
        json!([["code", "=", "outgoing"], ["warehouse_id", "=", 1]]),
        &["id"],
    )[0]["id"]
        .as_i64()
        .unwrap();
    let untracked: std::collections::BTreeSet<i64> = rows(
        &cloud,
        "product.product",
        json!([["tracking", "=", "none"]]),
        &["id"],
    )
    .iter()
    .map(|p| p["id"].as_i64().unwrap())
    .collect();
    // One product per move, each with one quant holding plenty in the site's stock.
    let mut products: Vec<i64> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let bins: Vec<i64> = rows(
        &cloud,
        "stock.location",
        json!([["location_id", "=", stock]]),
        &["id"],
    )
    .iter()
    .map(|l| l["id"].as_i64().unwrap())
    .collect();
    for q in rows(
        &cloud,
        "stock.quant",
        json!([
            ["quantity", ">=", 20],
            ["lot_id", "=", false],
            ["location_id", "in", bins]
        ]),
        &["product_id"],
    ) {
        let p = m2o(&q["product_id"]);
        if untracked.contains(&p) && seen.insert(p) {
            products.push(p);
        }
    }
    assert!(
        products.len() >= lines,
        "only {} products with stock",
        products.len()
    );
    // Delivery i, line j takes product (i * 7 + j) of all of them, or (i + step * j) of the
    // `shared` few: distinct within a delivery, each shared one on lines/shared of them.
    let step = match shared {
        Some(n) => {
            assert!(n >= lines && products.len() >= n, "{n} shared products");
            products.truncate(n);
            // Enough stock for every line on each: all their quants in the site's bins.
            for q in rows(
                &cloud,
                "stock.quant",
                json!([
                    ["product_id", "in", products.clone()],
                    ["location_id", "in", bins.clone()]
                ]),
                &["id"],
            ) {
                cloud.set_quantity(q["id"].as_i64().unwrap(), 10_000.0);
            }
            n / lines
        }
        None => 7,
    };
    let mut out = Vec::new();
    for i in 0..pickings {
        let moves: Vec<Value> = (0..lines)
            .map(|j| {
                let product = match shared {
                    Some(_) => products[(i + step * j) % products.len()],
                    None => products[(i * step + j) % products.len()],
                };
                json!([0, 0, {"product_id": product, "product_uom_qty": 1.0, "location_id": stock,
                              "location_dest_id": customers, "name": "bench"}])
            })
            .collect();
        let id = cloud
            .execute(Call::new("stock.picking", "create").arg(
                "vals_list",
                json!([{"picking_type_id": out_type, "location_id": stock, "location_dest_id": customers, "move_ids": moves}]),
            ))
            .unwrap()[0]
            .as_i64()
            .unwrap();
        cloud
            .execute(Call::new("stock.picking", "action_confirm").ids(&[id]))
            .unwrap();
        cloud
            .execute(Call::new("stock.picking", "action_assign").ids(&[id]))
            .unwrap();
        let ops: Vec<Operation> = rows(
            &cloud,
            "stock.move.line",
            json!([["picking_id", "=", id]]),
            &["move_id", "product_id", "location_id", "quantity"],
        )
        .iter()
        .map(|l| {
            Operation::Pick(PickOp {
                picking_id: id,
                move_id: m2o(&l["move_id"]),
                product_id: m2o(&l["product_id"]),
                location_id: m2o(&l["location_id"]),
                lot_name: None,
                package_id: None,
                quantity: l["quantity"].as_f64().unwrap(),
                view_quantity: 20.0,
            })
        })
        .collect();
        out.push((id, ops));
    }
    (cloud, out)
}

async fn record(store: &Store, pickings: &[(i64, Vec<Operation>)]) -> usize {
    // Pickings in parallel (the writer commits them in groups, as for a busy floor), each
    // picking's entries in order, its validation last.
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = tokio::task::JoinSet::new();
    let mut n = 0;
    for (id, picks) in pickings {
        let mut ops = picks.clone();
        ops.push(Operation::Validate(ValidateOp {
            picking_id: *id,
            backorder: BackorderChoice::NoBackorder,
        }));
        n += ops.len();
        let (store, sem) = (store.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            for op in ops {
                store
                    .append(
                        Lane::Device,
                        NewEntry {
                            id: None,
                            device: "bench".into(),
                            operator: None,
                            op,
                        },
                    )
                    .await
                    .unwrap();
            }
        });
    }
    while set.join_next().await.is_some() {}
    n
}

struct Drain {
    secs: f64,
    /// From the first call to the end (without connecting and the first probes).
    busy_secs: f64,
    calls: u64,
    peak: u64,
    /// Calls the push made itself (others may call the same simulator).
    push_calls: u64,
    /// Where the push's limit ended.
    limit: Option<holdfast::push::LimitStatus>,
}

async fn drain(
    cloud: &Cloud,
    url: &str,
    store: Store,
    config: PushConfig,
    limit: LimitConfig,
) -> Drain {
    // As `push::run_push` connects: one connection per batch in hand.
    let mut client_config = ClientConfig::new(
        url,
        &cloud.config().database,
        &cloud.config().login,
        &cloud.config().api_key,
        1,
    );
    client_config.max_concurrency = config.concurrency;
    let client = OdooClient::connect(client_config).await.unwrap();
    let stats = Arc::new(PushStats::default());
    let pusher = Arc::new(
        Pusher::new(
            store.clone(),
            client,
            config,
            1,
            Connectivity::new(store.clone()),
            stats.clone(),
        )
        .with_limit(limit),
    );
    let stop = CancellationToken::new();
    let calls0 = cloud.calls();
    let started = Instant::now();
    let task = tokio::spawn(pusher.run(stop.clone()));
    let mut peak = 0;
    let mut last = (Instant::now(), cloud.calls());
    let mut first_call: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if first_call.is_none() && cloud.calls() > calls0 {
            first_call = Some(Instant::now());
        }
        if last.0.elapsed() >= Duration::from_secs(1) {
            let now = cloud.calls();
            peak = peak.max(((now - last.1) as f64 / last.0.elapsed().as_secs_f64()) as u64);
            last = (Instant::now(), now);
        }
        let q = store.read(|r| r.queue_stats()).unwrap();
        let open = q.by_state.get("pending").copied().unwrap_or(0)
            + q.by_state.get("in_flight").copied().unwrap_or(0);
        let stuck = q.by_state.get("conflict").copied().unwrap_or(0)
            + q.by_state.get("rejected").copied().unwrap_or(0);
        assert_eq!(stuck, 0, "conflicts in a clean drain: {:?}", q.by_state);
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "drain did not finish: {:?}",
            q.by_state
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let busy_secs = first_call.map_or(secs, |t| t.elapsed().as_secs_f64());
    stop.cancel();
    task.await.unwrap();
    Drain {
        secs,
        busy_secs,
        calls: cloud.calls() - calls0,
        peak,
        push_calls: stats.calls.load(std::sync::atomic::Ordering::Relaxed),
        limit: stats.limit(),
    }
}

/// `push.adaptive = false`: always `push.concurrency` batches in hand.
const FIXED: LimitConfig = LimitConfig { adaptive: false };

fn config(concurrency: usize, calls_per_sec: f64) -> PushConfig {
    PushConfig {
        concurrency,
        max_calls_per_sec: calls_per_sec,
        max_batch: 500,
        retry_min: Duration::from_millis(200),
        retry_max: Duration::from_secs(5),
        probe: Duration::from_millis(100),
        policies: Policies::default(),
    }
}

fn all_done(cloud: &Cloud, pickings: &[(i64, Vec<Operation>)]) {
    let ids: Vec<i64> = pickings.iter().map(|(id, _)| *id).collect();
    let done = rows(
        cloud,
        "stock.picking",
        json!([["id", "in", ids], ["state", "=", "done"]]),
        &["id"],
    )
    .len();
    assert_eq!(done, pickings.len(), "every picking is done in Odoo");
}

async fn serve(cloud: &Cloud) -> Simulator {
    Simulator::serve(SocketAddr::from(([127, 0, 0, 1], 0)), cloud.clone())
        .await
        .unwrap()
}

fn main() {
    let scale: f64 = std::env::var("HOLDFAST_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let pickings = ((500.0 * scale) as usize).max(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    rt.block_on(async {
        // 1. Drain at 20 ms per call.
        let (cloud, work) = warehouse(pickings, 20, None);
        let lines: usize = work.iter().map(|(_, ops)| ops.len()).sum();
        let store = Store::open(StoreOptions::new(dir.path().join("a.db"), "bench")).unwrap();
        let entries = record(&store, &work).await;
        let sim = serve(&cloud).await;
        sim.set_latency(Duration::from_millis(20));
        let (concurrency, cap) = (8, 200.0);
        let d = drain(&cloud, &sim.url(), store.clone(), config(concurrency, cap), FIXED).await;
        all_done(&cloud, &work);
        println!("holdfast push benchmark (simulator over HTTP, JSON-RPC, 20 ms added per call)");
        println!(
            "drain: {} pickings, {lines} pick lines, {entries} entries: {:.1} s (target < 60 s), {} calls = {:.3} calls per pick line (target <= 0.2), peak {} calls/s, {:.0} lines/s [concurrency {concurrency}, cap {cap} calls/s]",
            work.len(),
            d.secs,
            d.calls,
            d.calls as f64 / lines as f64,
            d.peak,
            lines as f64 / d.secs
        );
        store.shutdown().await.unwrap();
        drop(sim);

        // 3. Baseline on a slice of the same kind of pickings: one write per line, then
        // validate, with the same concurrency and latency.
        let slice = (pickings / 10).max(5);
        let (cloud_b, work_b) = warehouse(slice, 20, None);
        let sim_b = serve(&cloud_b).await;
        sim_b.set_latency(Duration::from_millis(20));
        let client = OdooClient::connect(ClientConfig::new(&sim_b.url(), &cloud_b.config().database, &cloud_b.config().login, &cloud_b.config().api_key, 1))
            .await
            .unwrap();
        let lines_b: usize = work_b.iter().map(|(_, ops)| ops.len()).sum();
        let calls0 = cloud_b.calls();
        let started = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut set = tokio::task::JoinSet::new();
        for (id, _) in work_b.clone() {
            let client = client.clone();
            let sem = sem.clone();
            set.spawn(async move {
                let _permit = sem.acquire().await.unwrap();
                let lines = client.search_read("stock.move.line", json!([["picking_id", "=", id]]), &["quantity"], "id", None).await.unwrap();
                for l in lines {
                    let line = l["id"].as_i64().unwrap();
                    client.write("stock.move.line", &[line], json!({"quantity": l["quantity"], "picked": true})).await.unwrap();
                }
                client
                    .call(Call::new("stock.picking", "button_validate").ids(&[id]).context("skip_backorder", true).context("skip_sms", true))
                    .await
                    .unwrap();
            });
        }
        while set.join_next().await.is_some() {}
        let base_secs = started.elapsed().as_secs_f64();
        let base_calls = cloud_b.calls() - calls0;
        all_done(&cloud_b, &work_b);
        let base_rate = lines_b as f64 / base_secs;
        println!(
            "baseline (one write per line): {} pickings, {lines_b} lines: {:.1} s, {:.3} calls per pick line, {:.0} lines/s -> the push drains {:.1}x faster with {:.1}x fewer calls per line",
            work_b.len(),
            base_secs,
            base_calls as f64 / lines_b as f64,
            base_rate,
            (lines as f64 / d.secs) / base_rate,
            (base_calls as f64 / lines_b as f64) / (d.calls as f64 / lines as f64)
        );
        drop(sim_b);

        // 2. Against a simulator that takes 45 calls/s.
        let capped = (pickings / 5).max(5);
        let (cloud_c, work_c) = warehouse(capped, 20, None);
        let store_c = Store::open(StoreOptions::new(dir.path().join("c.db"), "bench")).unwrap();
        record(&store_c, &work_c).await;
        let sim_c = serve(&cloud_c).await;
        sim_c.set_latency(Duration::from_millis(20));
        sim_c.set_capacity(Some(45.0));
        let d = drain(&cloud_c, &sim_c.url(), store_c.clone(), config(concurrency, 45.0), FIXED).await;
        all_done(&cloud_c, &work_c);
        let rate = d.calls as f64 / d.busy_secs;
        println!(
            "capped Odoo (45 calls/s): {} pickings, {} calls in {:.1} s from the first call ({:.1} s with connecting) = {:.1} calls/s = {:.0} % of the cap (target >= 80 %), peak {} calls/s",
            work_c.len(),
            d.calls,
            d.busy_secs,
            d.secs,
            rate,
            100.0 * rate / 45.0,
            d.peak
        );
        store_c.shutdown().await.unwrap();
        drop(sim_c);

        // 4. Under load.
        under_load(dir.path()).await;
    });
}

/// Another client of Odoo: one `search_read` of one record at a time until `stop`; each
/// read's time in milliseconds.
async fn other_client(cloud: &Cloud, url: &str, stop: CancellationToken) -> Vec<f64> {
    let c = cloud.config();
    let client = OdooClient::connect(ClientConfig::new(url, &c.database, &c.login, &c.api_key, 1))
        .await
        .unwrap();
    let product = rows(cloud, "product.product", json!([]), &["id"])[0]["id"]
        .as_i64()
        .unwrap();
    let mut samples = Vec::new();
    while !stop.is_cancelled() {
        let started = Instant::now();
        client
            .search_read(
                "product.product",
                json!([["id", "=", product]]),
                &["name"],
                "id",
                Some(1),
            )
            .await
            .unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples
}

/// p50 and p99 of `samples`.
fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    (at(50), at(99))
}

/// One row of section 4.
struct LoadRun {
    name: String,
    secs: f64,
    calls_per_picking: f64,
    conflicts: u64,
    failures: u64,
    peak_in_progress: u64,
    probe: (f64, f64),
    limit: Option<holdfast::push::LimitStatus>,
}

/// Section 4: the same backlog drained at several settings against the load model.
async fn under_load(dir: &std::path::Path) {
    let pickings: usize = std::env::var("HOLDFAST_BENCH_LOAD_PICKINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .max(5);
    let (lines, products, cap) = (5, 20, 45.0);
    let model = LoadModel::default();
    println!(
        "under load: simulated Odoo 18 on {} cores (search_read {} ms, write {} ms, validate {} ms alone; \
         processor sharing beyond the cores; overlapping validations of shared products fail, Odoo retries \
         {} times waiting uniform(0, 2^try) s): {pickings} deliveries x {lines} lines over {products} \
         products, cap {cap} calls/s",
        model.cores,
        model.read.as_millis(),
        model.write.as_millis(),
        model.validate.as_millis(),
        model.max_tries,
    );
    // The idle figure: the other client alone.
    let idle = {
        let (cloud, _) = warehouse(5, lines, Some(products));
        let sim = serve(&cloud).await;
        sim.set_load(Some(model.clone()));
        let stop = CancellationToken::new();
        let probe = tokio::spawn({
            let (cloud, url, stop) = (cloud.clone(), sim.url(), stop.clone());
            async move { other_client(&cloud, &url, stop).await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.cancel();
        percentiles(probe.await.unwrap())
    };
    let settings: Vec<(String, usize, LimitConfig)> = [1, 2, 4, 8]
        .into_iter()
        .map(|c| (format!("fixed {c}"), c, FIXED))
        .chain(std::iter::once((
            "adaptive, max 8".to_owned(),
            8,
            LimitConfig { adaptive: true },
        )))
        .collect();
    let mut runs = Vec::new();
    for (i, (name, concurrency, limit)) in settings.into_iter().enumerate() {
        let (cloud, work) = warehouse(pickings, lines, Some(products));
        let store =
            Store::open(StoreOptions::new(dir.join(format!("load{i}.db")), "bench")).unwrap();
        record(&store, &work).await;
        let sim = serve(&cloud).await;
        sim.set_load(Some(model.clone()));
        let stop = CancellationToken::new();
        let probe = tokio::spawn({
            let (cloud, url, stop) = (cloud.clone(), sim.url(), stop.clone());
            async move { other_client(&cloud, &url, stop).await }
        });
        let d = drain(
            &cloud,
            &sim.url(),
            store.clone(),
            config(concurrency, cap),
            limit,
        )
        .await;
        stop.cancel();
        let probe = percentiles(probe.await.unwrap());
        all_done(&cloud, &work);
        let stats = cloud.load_stats().unwrap_or_default();
        runs.push(LoadRun {
            name,
            secs: d.secs,
            // The push's own calls: the other client's reads reach the same simulator.
            calls_per_picking: d.push_calls as f64 / work.len() as f64,
            conflicts: stats.serialization_conflicts,
            failures: stats.serialization_failures,
            peak_in_progress: stats.peak_in_progress,
            probe,
            limit: d.limit,
        });
        store.shutdown().await.unwrap();
    }
    // The push before product exclusion, for comparison: 8 pickings at once whatever they
    // share, each as the push sends it (read its lines, one write, validate), a refused
    // validation retried after a short pause.
    {
        let (cloud, work) = warehouse(pickings, lines, Some(products));
        let sim = serve(&cloud).await;
        sim.set_load(Some(model.clone()));
        let stop = CancellationToken::new();
        let probe = tokio::spawn({
            let (cloud, url, stop) = (cloud.clone(), sim.url(), stop.clone());
            async move { other_client(&cloud, &url, stop).await }
        });
        let c = cloud.config();
        let mut client_config = ClientConfig::new(&sim.url(), &c.database, &c.login, &c.api_key, 1);
        // As the push connects: one connection per batch in hand.
        client_config.max_concurrency = 8;
        let client = OdooClient::connect(client_config).await.unwrap();
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        let mut set = tokio::task::JoinSet::new();
        for (id, _) in work.clone() {
            let (client, sem, calls) = (client.clone(), sem.clone(), calls.clone());
            set.spawn(async move {
                let _permit = sem.acquire().await.unwrap();
                let count = || calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                count();
                let lines = client
                    .search_read(
                        "stock.move.line",
                        json!([["picking_id", "=", id]]),
                        &["quantity"],
                        "id",
                        None,
                    )
                    .await
                    .unwrap();
                let commands: Vec<Value> = lines
                    .iter()
                    .map(|l| json!([1, l["id"], {"quantity": l["quantity"], "picked": true}]))
                    .collect();
                count();
                client
                    .write("stock.picking", &[id], json!({"move_line_ids": commands}))
                    .await
                    .unwrap();
                loop {
                    count();
                    let r = client
                        .call(
                            Call::new("stock.picking", "button_validate")
                                .ids(&[id])
                                .context("skip_backorder", true)
                                .context("skip_sms", true)
                                .context("picking_ids_not_to_backorder", json!([id])),
                        )
                        .await;
                    match r {
                        Ok(_) => break,
                        Err(e) if e.class() == holdfast_sync::odoo::ErrorClass::Transient => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => panic!("validate {id}: {e}"),
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
        let secs = started.elapsed().as_secs_f64();
        stop.cancel();
        let probe = percentiles(probe.await.unwrap());
        all_done(&cloud, &work);
        let stats = cloud.load_stats().unwrap_or_default();
        runs.push(LoadRun {
            name: "8, no exclusion".to_owned(),
            secs,
            calls_per_picking: calls.load(std::sync::atomic::Ordering::Relaxed) as f64
                / work.len() as f64,
            conflicts: stats.serialization_conflicts,
            failures: stats.serialization_failures,
            peak_in_progress: stats.peak_in_progress,
            probe,
            limit: None,
        });
    }
    let best = runs
        .iter()
        .filter(|r| r.name.starts_with("fixed"))
        .map(|r| r.secs)
        .fold(f64::INFINITY, f64::min);
    println!(
        "{:<16} {:>8} {:>8} {:>10} {:>12} {:>9} {:>6} {:>15} {:>13}  limit at the end",
        "setting",
        "drain s",
        "vs best",
        "calls/pick",
        "ser. tries",
        "failed",
        "peak",
        "probe p50/p99",
        "vs idle"
    );
    println!(
        "{:<16} {:>8} {:>8} {:>10} {:>12} {:>9} {:>6} {:>15} {:>13}",
        "idle",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        format!("{:.0}/{:.0} ms", idle.0, idle.1),
        "1.0x/1.0x"
    );
    for r in &runs {
        let limit = r.limit.as_ref().map_or("-".to_owned(), |l| {
            format!(
                "{} of {} ({} decreases, {} on retry symptoms)",
                l.limit, l.max, l.decreases, l.symptoms
            )
        });
        println!(
            "{:<16} {:>8.1} {:>7.2}x {:>10.2} {:>12} {:>9} {:>6} {:>15} {:>13}  {limit}",
            r.name,
            r.secs,
            r.secs / best,
            r.calls_per_picking,
            r.conflicts,
            r.failures,
            r.peak_in_progress,
            format!("{:.0}/{:.0} ms", r.probe.0, r.probe.1),
            format!("{:.1}x/{:.1}x", r.probe.0 / idle.0, r.probe.1 / idle.1),
        );
    }
    println!(
        "(ser. tries: validation tries that failed to serialize, each one \"could not serialize access\" in \
         Odoo's log; failed: calls that failed after Odoo's {} tries and reached the push; peak: calls in \
         progress at once in Odoo, the other client's included; \"8, no exclusion\": the push's calls for 8 \
         pickings at once whatever products they share, as before product exclusion)",
        model.max_tries
    );
}
