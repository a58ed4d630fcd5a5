//! An opt-in load model for the simulator: how a real single-process Odoo on two cores
//! behaves when several clients call it at once (see [`LoadModel`]).
//!
//! - **Processor sharing.** Every model call costs a base service time by its kind (Odoo 18
//!   on loopback, `../shared/ODOO.md`: `search_read` ~30 ms, a move-line `write` ~60 ms,
//!   `button_validate` ~100 ms). Up to `cores` calls run at full speed; beyond that the calls
//!   in progress share the cores equally, so each one stretches by `in progress / cores`.
//!   That is what another user of a busy Odoo sees: every call of theirs slows with the
//!   push's concurrency, not only the push's own.
//! - **Serialization failures.** Odoo runs each call in a REPEATABLE READ transaction; two
//!   validations of pickings sharing a product update the same `stock.quant` rows, and the
//!   one that commits second fails with `could not serialize access due to concurrent
//!   update`. Odoo retries that itself (`odoo/service/model.py`, `retrying`): up to
//!   `MAX_TRIES_ON_CONCURRENCY_FAILURE = 5` tries, sleeping `random.uniform(0, 2 ** try)`
//!   seconds before try `try + 1`, and only after the fifth failed try does the exception
//!   reach the client: over JSON-RPC an error whose `data.name` is
//!   `psycopg2.errors.SerializationFailure` (`odoo/http.py`, `serialize_exception`), over
//!   JSON-2 the same name with HTTP 500. Here a validation try fails when another validation
//!   touching one of its products committed while it ran (first committer wins); each failed
//!   try costs its service time plus Odoo's wait, and the fifth fails the call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::store::{SimError, Tables};

/// What Odoo's own retries try at most (`MAX_TRIES_ON_CONCURRENCY_FAILURE`).
pub const ODOO_MAX_TRIES: u32 = 5;

/// The load model's settings; [`LoadModel::default`] is the measured Odoo 18 on 2 cores.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadModel {
    /// Calls served at full speed at once (a single Odoo process on 2 cores).
    pub cores: f64,
    /// Base service time of reads (`search_read`, `read`, `search`, `search_count`, …).
    pub read: Duration,
    /// Base service time of writes and other state changes (`write`, `create`,
    /// `action_confirm`, `action_assign`, …).
    pub write: Duration,
    /// Base service time of validations (`button_validate`, the backorder wizard's
    /// `process`/`process_cancel_backorder`, `action_apply_inventory`).
    pub validate: Duration,
    /// Whether overlapping validations sharing a product fail as in Odoo.
    pub conflicts: bool,
    /// Tries per call before the failure reaches the client (Odoo: 5).
    pub max_tries: u32,
    /// Odoo sleeps `uniform(0, 2^try) × retry_unit` before the next try; Odoo's unit is one
    /// second (tests shorten it).
    pub retry_unit: Duration,
}

impl Default for LoadModel {
    fn default() -> Self {
        LoadModel {
            cores: 2.0,
            read: Duration::from_millis(30),
            write: Duration::from_millis(60),
            validate: Duration::from_millis(100),
            conflicts: true,
            max_tries: ODOO_MAX_TRIES,
            retry_unit: Duration::from_secs(1),
        }
    }
}

/// What the load model has counted since it was turned on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Validation tries that failed with a serialization failure (each is one "could not
    /// serialize access" in Odoo's log), retried or not.
    pub serialization_conflicts: u64,
    /// Calls that failed after their last try: the client got the error.
    pub serialization_failures: u64,
    /// Most calls in progress at once.
    pub peak_in_progress: u64,
}

/// What kind of work a call is, for its base service time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    Read,
    Write,
    Validate,
}

impl CallKind {
    /// The kind of `method` (any model).
    pub fn of(method: &str) -> CallKind {
        match method {
            "search_read" | "read" | "search" | "search_count" | "fields_get" | "name_search"
            | "read_group" => CallKind::Read,
            "button_validate"
            | "process"
            | "process_cancel_backorder"
            | "action_apply_inventory"
            | "_action_done" => CallKind::Validate,
            _ => CallKind::Write,
        }
    }
}

/// The running model: calls in progress with the work they have left, recent commits.
#[derive(Debug)]
pub(super) struct Load {
    model: LoadModel,
    state: Mutex<Shares>,
    /// Wakes every call in progress when the number in progress changes (their share did).
    changed: Notify,
    conflicts: AtomicU64,
    failures: AtomicU64,
}

#[derive(Debug)]
struct Shares {
    /// When the remaining work below was last brought up to date.
    last: Instant,
    /// Seconds of work left per call in progress.
    remaining: BTreeMap<u64, f64>,
    next_ticket: u64,
    peak: u64,
    /// Validation tries in progress: when each began.
    validating: BTreeMap<u64, Instant>,
    /// Validations committed while some validation try was in progress: when, and the
    /// products they touched.
    commits: Vec<(Instant, BTreeSet<i64>)>,
}

impl Shares {
    /// Advances every call in progress by its share of the cores since `last`.
    fn advance(&mut self, cores: f64, now: Instant) {
        let n = self.remaining.len();
        if n > 0 {
            let rate = (cores / n as f64).min(1.0);
            let done = now.saturating_duration_since(self.last).as_secs_f64() * rate;
            for left in self.remaining.values_mut() {
                *left -= done;
            }
        }
        self.last = now;
    }

    fn rate(&self, cores: f64) -> f64 {
        (cores / self.remaining.len().max(1) as f64).min(1.0)
    }
}

/// The error Odoo gives after its last try (JSON-RPC `data.name`, JSON-2 `name`).
pub fn serialization_failure() -> SimError {
    SimError {
        name: "psycopg2.errors.SerializationFailure",
        // psycopg2's message as Odoo serializes it (`str(exc)`, newline included).
        message: "could not serialize access due to concurrent update\n".into(),
    }
}

impl Load {
    pub(super) fn new(model: LoadModel) -> Load {
        Load {
            model,
            state: Mutex::new(Shares {
                last: Instant::now(),
                remaining: BTreeMap::new(),
                next_ticket: 0,
                peak: 0,
                validating: BTreeMap::new(),
                commits: Vec::new(),
            }),
            changed: Notify::new(),
            conflicts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub(super) fn model(&self) -> &LoadModel {
        &self.model
    }

    pub(super) fn stats(&self) -> LoadStats {
        let peak = self.lock().peak;
        LoadStats {
            serialization_conflicts: self.conflicts.load(Ordering::Relaxed),
            serialization_failures: self.failures.load(Ordering::Relaxed),
            peak_in_progress: peak,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shares> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn base(&self, kind: CallKind) -> Duration {
        match kind {
            CallKind::Read => self.model.read,
            CallKind::Write => self.model.write,
            CallKind::Validate => self.model.validate,
        }
    }

    /// Serves one call's time: returns once the call has had its service time under the
    /// load of the moment; for a validation touching `products` (when conflicts are on),
    /// with Odoo's retries, or the serialization failure after the last try. The caller
    /// then runs the call on the records.
    pub(super) async fn serve(
        &self,
        kind: CallKind,
        products: &BTreeSet<i64>,
    ) -> Result<(), SimError> {
        let work = self.base(kind).as_secs_f64();
        let contended = kind == CallKind::Validate && self.model.conflicts && !products.is_empty();
        let tries = self.model.max_tries.max(1);
        for attempt in 1..=tries {
            let (ticket, began) = self.enter(work, contended);
            self.wait_out(ticket).await;
            if self.leave(ticket, contended.then_some((began, products))) {
                return Ok(());
            }
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            if attempt == tries {
                break;
            }
            // Odoo's `random.uniform(0.0, 2 ** tryno)` before the next try; the thread
            // sleeps, it takes no core.
            let wait = fastrand::f64() * f64::from(1u32 << attempt.min(16));
            tokio::time::sleep(self.model.retry_unit.mul_f64(wait)).await;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        Err(serialization_failure())
    }

    /// A call starts: `work` seconds to do.
    fn enter(&self, work: f64, validation: bool) -> (u64, Instant) {
        let now = Instant::now();
        let ticket = {
            let mut s = self.lock();
            s.advance(self.model.cores, now);
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            s.remaining.insert(ticket, work);
            s.peak = s.peak.max(s.remaining.len() as u64);
            if validation {
                s.validating.insert(ticket, now);
            }
            ticket
        };
        // Every other call's share just shrank.
        self.changed.notify_waiters();
        (ticket, now)
    }

    /// Waits until the call's work is done at the share it gets, re-planning whenever the
    /// number of calls in progress changes.
    async fn wait_out(&self, ticket: u64) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a change between reading and sleeping
            // still wakes this call.
            notified.as_mut().enable();
            let eta = {
                let mut s = self.lock();
                s.advance(self.model.cores, Instant::now());
                let left = s.remaining.get(&ticket).copied().unwrap_or(0.0);
                if left <= 1e-6 {
                    return;
                }
                Duration::from_secs_f64(left / s.rate(self.model.cores))
            };
            tokio::select! {
                _ = tokio::time::sleep(eta) => {}
                _ = &mut notified => {}
            }
        }
    }

    /// A call's work is done. A contended validation (`Some((began, products))`) commits
    /// unless another validation touching one of its products committed since it began;
    /// the check and the commit are one step, so two finishing at once cannot both win.
    /// Whether the call succeeded.
    fn leave(&self, ticket: u64, validation: Option<(Instant, &BTreeSet<i64>)>) -> bool {
        let now = Instant::now();
        let won = {
            let mut s = self.lock();
            s.advance(self.model.cores, now);
            s.remaining.remove(&ticket);
            s.validating.remove(&ticket);
            let won = match validation {
                None => true,
                Some((began, products)) => {
                    let lost = s
                        .commits
                        .iter()
                        .any(|(at, touched)| *at >= began && !touched.is_disjoint(products));
                    if !lost {
                        s.commits.push((now, products.clone()));
                    }
                    !lost
                }
            };
            // Only tries still in progress can lose to a commit: older ones are forgotten.
            match s.validating.values().min().copied() {
                Some(oldest) => s.commits.retain(|(at, _)| *at >= oldest),
                None => s.commits.clear(),
            }
            won
        };
        self.changed.notify_waiters();
        won
    }
}

/// The products a validation of `pickings` takes stock of (their moves' products).
pub(super) fn products_of(tables: &Tables, pickings: &[i64]) -> BTreeSet<i64> {
    let id = |v: Option<&Value>| match v {
        Some(Value::Array(pair)) => pair.first().and_then(Value::as_i64),
        Some(v) => v.as_i64(),
        None => None,
    };
    tables
        .table("stock.move")
        .map(|moves| {
            moves
                .values()
                .filter(|m| id(m.get("picking_id")).is_some_and(|p| pickings.contains(&p)))
                .filter_map(|m| id(m.get("product_id")))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn model(conflicts: bool) -> LoadModel {
        LoadModel {
            cores: 2.0,
            read: Duration::from_millis(30),
            write: Duration::from_millis(60),
            validate: Duration::from_millis(100),
            conflicts,
            max_tries: ODOO_MAX_TRIES,
            retry_unit: Duration::from_millis(10),
        }
    }

    /// At least `ms` (the model never serves faster) and not far above it (real timers on a
    /// busy machine run late, never early).
    fn about(t: Duration, ms: u64) -> bool {
        t >= Duration::from_millis(ms.saturating_sub(1)) && t < Duration::from_millis(ms * 2 + 20)
    }

    async fn timed(
        load: &Arc<Load>,
        kind: CallKind,
        products: BTreeSet<i64>,
    ) -> (Duration, Result<(), SimError>) {
        let started = Instant::now();
        let r = load.serve(kind, &products).await;
        (started.elapsed(), r)
    }

    #[tokio::test]
    async fn a_call_alone_takes_its_base_time() {
        let load = Arc::new(Load::new(model(true)));
        let (t, r) = timed(&load, CallKind::Read, BTreeSet::new()).await;
        assert!(r.is_ok());
        assert!(about(t, 30), "{t:?}");
        let (t, _) = timed(&load, CallKind::Validate, BTreeSet::from([1])).await;
        assert!(about(t, 100), "{t:?}");
    }

    #[tokio::test]
    async fn calls_beyond_the_cores_share_them() {
        let load = Arc::new(Load::new(model(false)));
        // Two reads fit two cores: 30 ms each.
        let both = futures_join(&load, 2, CallKind::Read).await;
        assert!(both.iter().all(|t| about(*t, 30)), "{both:?}");
        // Six reads on two cores: each runs at a third of a core, 90 ms.
        let six = futures_join(&load, 6, CallKind::Read).await;
        assert!(six.iter().all(|t| about(*t, 90)), "{six:?}");
    }

    #[tokio::test]
    async fn a_short_call_stretches_only_while_others_run() {
        let load = Arc::new(Load::new(model(false)));
        // Three 60 ms writes and one 30 ms read start together: 4 in progress, each at half
        // a core; the read is done at 60 ms, then the writes (30 ms of work left) run at
        // two thirds of a core: 45 ms more.
        let writes: Vec<_> = (0..3)
            .map(|_| {
                let load = load.clone();
                tokio::spawn(async move { timed(&load, CallKind::Write, BTreeSet::new()).await.0 })
            })
            .collect();
        let (read, _) = timed(&load, CallKind::Read, BTreeSet::new()).await;
        assert!(about(read, 60), "{read:?}");
        for w in writes {
            let t = w.await.unwrap_or_default();
            assert!(about(t, 105), "{t:?}");
        }
    }

    async fn futures_join(load: &Arc<Load>, n: usize, kind: CallKind) -> Vec<Duration> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let load = load.clone();
                tokio::spawn(async move { timed(&load, kind, BTreeSet::new()).await.0 })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    }

    #[tokio::test]
    async fn overlapping_validations_of_one_product_retry_as_odoo_does() {
        let load = Arc::new(Load::new(model(true)));
        let a = {
            let load = load.clone();
            tokio::spawn(
                async move { timed(&load, CallKind::Validate, BTreeSet::from([7, 8])).await },
            )
        };
        let (t_b, b) = timed(&load, CallKind::Validate, BTreeSet::from([8, 9])).await;
        let (t_a, a) = a
            .await
            .unwrap_or((Duration::ZERO, Err(serialization_failure())));
        // One committed first; the other lost its first try, waited, and committed on a
        // later one: both succeed, one took longer than its base time.
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert!(t_a.max(t_b) > Duration::from_millis(150), "{t_a:?} {t_b:?}");
        let stats = load.stats();
        assert!(stats.serialization_conflicts >= 1, "{stats:?}");
        assert_eq!(stats.serialization_failures, 0);
    }

    #[tokio::test]
    async fn validations_of_other_products_never_conflict() {
        let load = Arc::new(Load::new(model(true)));
        let a = {
            let load = load.clone();
            tokio::spawn(async move { timed(&load, CallKind::Validate, BTreeSet::from([1])).await })
        };
        let (t_b, b) = timed(&load, CallKind::Validate, BTreeSet::from([2])).await;
        let (t_a, a) = a
            .await
            .unwrap_or((Duration::ZERO, Err(serialization_failure())));
        assert!(a.is_ok() && b.is_ok());
        assert!(about(t_a, 100) && about(t_b, 100), "{t_a:?} {t_b:?}");
        assert_eq!(load.stats().serialization_conflicts, 0);
    }

    #[tokio::test]
    async fn the_last_try_fails_with_odoos_error() {
        // A hot product validated by many at once: with one try each, all but the first
        // committer fail at once with the error Odoo sends after its retries.
        let load = Arc::new(Load::new(LoadModel {
            max_tries: 1,
            ..model(true)
        }));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let load = load.clone();
                tokio::spawn(
                    async move { load.serve(CallKind::Validate, &BTreeSet::from([5])).await },
                )
            })
            .collect();
        let mut failed = Vec::new();
        for t in tasks {
            if let Ok(Err(e)) = t.await {
                failed.push(e);
            }
        }
        assert_eq!(failed.len(), 3, "{failed:?}");
        assert!(failed.iter().all(|e| *e == serialization_failure()));
        assert_eq!(failed[0].name, "psycopg2.errors.SerializationFailure");
        let stats = load.stats();
        assert_eq!(
            (stats.serialization_conflicts, stats.serialization_failures),
            (3, 3)
        );
        assert_eq!(stats.peak_in_progress, 4);
    }

    /// Two reserved deliveries of one product in a fresh simulator (in-process calls).
    fn two_deliveries_of_one_product(cloud: &crate::sim::Cloud) -> (i64, i64) {
        use crate::odoo::Call;
        let rows =
            |model: &str, domain: Value, fields: &[&str]| -> Vec<serde_json::Map<String, Value>> {
                cloud
                    .execute(
                        Call::new(model, "search_read")
                            .arg("domain", domain)
                            .arg("fields", serde_json::json!(fields))
                            .arg("order", "id"),
                    )
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.as_object().cloned())
                    .collect()
            };
        let first_id = |rows: Vec<serde_json::Map<String, Value>>| {
            rows.first()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let m2o = |v: Option<&Value>| match v {
            Some(Value::Array(pair)) => pair.first().and_then(Value::as_i64).unwrap_or(0),
            Some(v) => v.as_i64().unwrap_or(0),
            None => 0,
        };
        let stock = first_id(rows(
            "stock.location",
            serde_json::json!([["barcode", "=", "WHSTOCK"]]),
            &["id"],
        ));
        let customers = first_id(rows(
            "stock.location",
            serde_json::json!([["usage", "=", "customer"]]),
            &["id"],
        ));
        let out_type = first_id(rows(
            "stock.picking.type",
            serde_json::json!([["code", "=", "outgoing"], ["warehouse_id", "=", 1]]),
            &["id"],
        ));
        let untracked: BTreeSet<i64> = rows(
            "product.product",
            serde_json::json!([["tracking", "=", "none"]]),
            &["id"],
        )
        .iter()
        .filter_map(|p| p.get("id").and_then(Value::as_i64))
        .collect();
        let bins: Vec<i64> = rows(
            "stock.location",
            serde_json::json!([["location_id", "=", stock]]),
            &["id"],
        )
        .iter()
        .filter_map(|l| l.get("id").and_then(Value::as_i64))
        .collect();
        let quant = rows(
            "stock.quant",
            serde_json::json!([["lot_id", "=", false], ["location_id", "in", bins]]),
            &["id", "product_id"],
        )
        .into_iter()
        .find(|q| untracked.contains(&m2o(q.get("product_id"))))
        .unwrap_or_default();
        let product = m2o(quant.get("product_id"));
        cloud.set_quantity(quant.get("id").and_then(Value::as_i64).unwrap_or(0), 100.0);
        let mut ids = Vec::new();
        for _ in 0..2 {
            let created = cloud.execute(Call::new("stock.picking", "create").arg(
                "vals_list",
                serde_json::json!([{"picking_type_id": out_type, "location_id": stock, "location_dest_id": customers,
                    "move_ids": [[0, 0, {"product_id": product, "product_uom_qty": 1.0, "location_id": stock,
                                         "location_dest_id": customers, "name": "load test"}]]}]),
            ));
            let id = created
                .ok()
                .and_then(|v| v.get(0).and_then(Value::as_i64))
                .unwrap_or(0);
            for method in ["action_confirm", "action_assign"] {
                assert!(
                    cloud
                        .execute(Call::new("stock.picking", method).ids(&[id]))
                        .is_ok()
                );
            }
            ids.push(id);
        }
        let assigned = rows(
            "stock.picking",
            serde_json::json!([["id", "in", ids.clone()], ["state", "=", "assigned"]]),
            &["id"],
        );
        assert_eq!(assigned.len(), 2, "both deliveries reserved");
        (ids[0], ids[1])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_json_rpc_the_last_failure_has_odoos_shape_and_is_transient() {
        use crate::dataset::{Dataset, DatasetSpec};
        use crate::odoo::{Call, ClientConfig, ErrorClass, OdooClient, OdooError};
        let data = Dataset::generate(&DatasetSpec {
            seed: 3,
            products: 40,
            quants: 160,
            pickings: 4,
        });
        let config = crate::sim::SimConfig {
            sms_wizard: false,
            ..Default::default()
        };
        let sim = match crate::sim::Simulator::start(config.clone(), &data).await {
            Ok(sim) => sim,
            Err(e) => panic!("simulator: {e}"),
        };
        let (a, b) = two_deliveries_of_one_product(sim.cloud());
        let (pa, pb) = sim.with_tables(|t| (products_of(t, &[a]), products_of(t, &[b])));
        assert!(pa.len() == 1 && pa == pb, "{pa:?} {pb:?}");
        // One try each: the second committer fails at once, as Odoo's fifth try would.
        sim.set_load(Some(LoadModel {
            max_tries: 1,
            ..model(true)
        }));
        let client = match OdooClient::connect(ClientConfig::new(
            &sim.url(),
            &config.database,
            &config.login,
            &config.api_key,
            1,
        ))
        .await
        {
            Ok(c) => c,
            Err(e) => panic!("connect: {e}"),
        };
        let validate = |id: i64| {
            let client = client.clone();
            async move {
                client
                    .call(
                        Call::new("stock.picking", "button_validate")
                            .ids(&[id])
                            .context("skip_backorder", true)
                            .context("skip_sms", true),
                    )
                    .await
            }
        };
        let (ra, rb) = tokio::join!(validate(a), validate(b));
        let errors: Vec<OdooError> = [ra, rb].into_iter().filter_map(Result::err).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        match &errors[0] {
            OdooError::Server { name, message, .. } => {
                assert_eq!(name, "psycopg2.errors.SerializationFailure");
                assert!(
                    message.starts_with("could not serialize access"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(errors[0].class(), ErrorClass::Transient);
        let stats = sim.load_stats().unwrap_or_default();
        assert_eq!(
            (stats.serialization_conflicts, stats.serialization_failures),
            (1, 1)
        );
        // Off again: the same call is served at once, as without the model.
        sim.set_load(None);
        assert!(sim.load_stats().is_none());
    }

    #[test]
    fn kinds_follow_odoos_costs() {
        assert_eq!(CallKind::of("search_read"), CallKind::Read);
        assert_eq!(CallKind::of("write"), CallKind::Write);
        assert_eq!(CallKind::of("button_validate"), CallKind::Validate);
        assert_eq!(CallKind::of("action_apply_inventory"), CallKind::Validate);
    }
}
