//! The push scheduler: drains the journal to Odoo, exactly once, in causal order, at a rate
//! Odoo can take.
//!
//! - Entries sharing a causal key go in journal order, one batch at a time; different keys
//!   go in parallel, at most `push.concurrency` at once. A picking's pending picks (up to and
//!   including its validation) are one batch: one write on the picking, not one per line.
//! - Every call passes the [`Gate`]: a cap on calls per second (`push.max_calls_per_sec`), a
//!   hold honouring 429/503 `Retry-After` for the whole queue, and the connectivity tracker
//!   fed with each outcome.
//! - A failed batch goes back to pending with a jittered exponential delay (backon); an
//!   unknown outcome (timeout, reset, crash) marks it *ambiguous*, so the next attempt looks
//!   for its mark before sending anything; refused credentials pause the whole queue (and
//!   say so in status) instead of burning attempts; Odoo refusing one batch holds only its
//!   causal key, with Odoo's message, as a conflict to decide. A batch refused as invalid is
//!   split: its entries go one by one until the culprit is found.
//! - While offline nothing is sent but probes; entries wait with their attempts intact.
//! - On startup, entries left in flight become ambiguous (see `store::push`).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use holdfast_sync::odoo::{Call, ErrorClass, OdooError};
use holdfast_sync::ops::{Operation, ResolveAction};
use holdfast_sync::push::{
    self as translate, ConflictKind, Finding, NewPicking, NewPickingLine, Odoo, Outcome, PushEntry,
    Side,
};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::PushConfig;
use crate::connectivity::{Connectivity, Event, Mode};
use crate::store::{
    ConflictRow, JournalEntry, NewConflict, OpState, PushCmd, Settle, Store, StoreError, now_ms,
};

/// What happens to a conflict of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Held back for a person (the inbox).
    Manual,
    /// The floor's version stands: applied, and flagged for a look.
    EdgeWins,
    /// The cloud's version stands: the floor's entries are discarded with a note.
    CloudWins,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Manual => "manual",
            Policy::EdgeWins => "edge_wins",
            Policy::CloudWins => "cloud_wins",
        }
    }
}

/// The policy per conflict kind (`[conflicts]` in the config).
#[derive(Clone, Debug, PartialEq)]
pub struct Policies(BTreeMap<ConflictKind, Policy>);

impl Default for Policies {
    fn default() -> Self {
        use ConflictKind::*;
        Policies(BTreeMap::from([
            (PickingDoneDifferently, Policy::Manual),
            (PickingCancelled, Policy::Manual),
            (OverPick, Policy::EdgeWins),
            (SerialInUse, Policy::Manual),
            (LotExpiry, Policy::EdgeWins),
            (ProductArchived, Policy::Manual),
            (Validation, Policy::Manual),
        ]))
    }
}

impl Policies {
    pub fn get(&self, kind: ConflictKind) -> Policy {
        self.0.get(&kind).copied().unwrap_or(Policy::Manual)
    }

    /// Sets a kind's policy from the config; says what is allowed when it is not.
    pub fn set(&mut self, kind: &str, policy: &str) -> Result<(), String> {
        if kind == "count_moved" {
            // Counts while the cloud moved the same stock are always delta merges.
            return match policy {
                "merge" => Ok(()),
                other => Err(format!("{other:?}: counts are always merged (\"merge\")")),
            };
        }
        let k = ConflictKind::parse(kind).ok_or_else(|| {
            format!(
                "unknown conflict kind; one of: count_moved, {}",
                ConflictKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        // Over-picks and lot expiries are facts of the floor already applied: only flagged.
        let allowed: &[Policy] = match k {
            ConflictKind::OverPick | ConflictKind::LotExpiry => &[Policy::EdgeWins],
            _ => &[Policy::Manual, Policy::CloudWins],
        };
        let p = allowed
            .iter()
            .copied()
            .find(|p| p.as_str() == policy)
            .ok_or_else(|| {
                format!(
                    "{policy:?} is not allowed for {kind}; one of: {}",
                    allowed
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        self.0.insert(k, p);
        Ok(())
    }
}

/// Figures the status shows while the push runs.
#[derive(Debug, Default)]
pub struct PushStats {
    pub calls: AtomicU64,
    pub applied: AtomicU64,
    /// (when, entries applied) of recent batches, for the drain rate.
    recent: Mutex<VecDeque<(Instant, u64)>>,
}

impl PushStats {
    fn applied_now(&self, n: u64) {
        self.applied.fetch_add(n, Ordering::Relaxed);
        if let Ok(mut r) = self.recent.lock() {
            r.push_back((Instant::now(), n));
            while r
                .front()
                .is_some_and(|(t, _)| t.elapsed() > Duration::from_secs(60))
            {
                r.pop_front();
            }
        }
    }

    /// Entries applied per second over the last minute.
    pub fn drain_rate(&self) -> f64 {
        let Ok(r) = self.recent.lock() else {
            return 0.0;
        };
        let Some((first, _)) = r.front() else {
            return 0.0;
        };
        let n: u64 = r.iter().map(|(_, n)| n).sum();
        n as f64 / first.elapsed().as_secs_f64().max(1.0)
    }
}

/// Every call to Odoo passes here: rate cap, Retry-After hold, connectivity.
#[derive(Debug)]
pub struct Gate<O> {
    inner: O,
    limiter: DefaultDirectRateLimiter,
    hold_until: Mutex<Option<tokio::time::Instant>>,
    connectivity: Connectivity,
    stats: Arc<PushStats>,
}

impl<O: Odoo> Gate<O> {
    pub fn new(
        inner: O,
        calls_per_sec: f64,
        connectivity: Connectivity,
        stats: Arc<PushStats>,
    ) -> Gate<O> {
        let period = Duration::from_secs_f64(1.0 / calls_per_sec.max(0.001));
        // The average never exceeds the cap; a burst of a tenth of a second's worth lets the
        // drain catch up after a gap (a batch waiting on its previous call) instead of
        // losing that slot for good.
        let burst =
            std::num::NonZeroU32::new((calls_per_sec / 10.0).ceil().clamp(1.0, 100.0) as u32)
                .unwrap_or(std::num::NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN))
            .allow_burst(burst);
        Gate {
            inner,
            limiter: RateLimiter::direct(quota),
            hold_until: Mutex::new(None),
            connectivity,
            stats,
        }
    }

    pub fn inner(&self) -> &O {
        &self.inner
    }

    async fn call_inner(&self, call: Call) -> Result<Value, OdooError> {
        let hold = self.hold_until.lock().ok().and_then(|h| *h);
        if let Some(until) = hold {
            tokio::time::sleep_until(until).await;
        }
        self.limiter.until_ready().await;
        let started = Instant::now();
        let result = self.inner.call(call).await;
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e @ OdooError::Busy { .. }) = &result {
            // Odoo (or its proxy) is overloaded: the whole queue waits, not just this call.
            let wait = e
                .retry_after()
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(600));
            if let Ok(mut h) = self.hold_until.lock() {
                let until = tokio::time::Instant::now() + wait;
                *h = Some(h.map_or(until, |old| old.max(until)));
            }
        }
        self.connectivity
            .observe(Event::of(&result, started.elapsed()))
            .await;
        result
    }
}

impl<O: Odoo> Odoo for Gate<O> {
    fn call(
        &self,
        call: Call,
    ) -> impl std::future::Future<Output = Result<Value, OdooError>> + Send {
        self.call_inner(call)
    }

    fn major(&self) -> u32 {
        self.inner.major()
    }

    fn probe(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
        self.inner.probe()
    }
}

/// The push scheduler for one Odoo.
#[derive(Debug)]
pub struct Pusher<O> {
    store: Store,
    gate: Gate<O>,
    config: PushConfig,
    warehouse_id: i64,
    connectivity: Connectivity,
    stats: Arc<PushStats>,
    internal_type: tokio::sync::OnceCell<Option<i64>>,
    /// Keys whose batches go entry by entry (a coalesced batch was refused).
    isolate: Mutex<HashSet<String>>,
}

impl<O: Odoo + 'static> Pusher<O> {
    pub fn new(
        store: Store,
        odoo: O,
        config: PushConfig,
        warehouse_id: i64,
        connectivity: Connectivity,
        stats: Arc<PushStats>,
    ) -> Pusher<O> {
        Pusher {
            gate: Gate::new(
                odoo,
                config.max_calls_per_sec,
                connectivity.clone(),
                stats.clone(),
            ),
            store,
            config,
            warehouse_id,
            connectivity,
            stats,
            internal_type: tokio::sync::OnceCell::new(),
            isolate: Mutex::default(),
        }
    }

    pub fn stats(&self) -> &Arc<PushStats> {
        &self.stats
    }

    /// Marks what was in flight when the appliance last stopped as ambiguous.
    pub async fn recover(&self) -> Result<i64, StoreError> {
        let n = self.store.push(PushCmd::Recover).await?;
        if n > 0 {
            tracing::warn!(
                entries = n,
                "entries were in flight at the last stop; their next attempt looks for their marks first"
            );
        }
        Ok(n)
    }

    /// Runs until `stop`; returns once the batches in hand have settled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        if let Err(e) = self.recover().await {
            tracing::error!(error = %e, "cannot recover entries left in flight; the push does not start");
            return;
        }
        let mut tasks: JoinSet<String> = JoinSet::new();
        let mut busy: HashSet<String> = HashSet::new();
        let mut probe = tokio::time::interval(self.config.probe);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backlog_at = Instant::now() - Duration::from_secs(10);
        loop {
            if backlog_at.elapsed() > Duration::from_secs(1) {
                backlog_at = Instant::now();
                if let Ok(q) = self.store.read(|r| r.queue_stats()) {
                    let open = q.by_state.get("pending").copied().unwrap_or(0)
                        + q.by_state.get("in_flight").copied().unwrap_or(0);
                    self.connectivity.observe(Event::Backlog(open)).await;
                }
            }
            let sending =
                self.connectivity.mode() != Mode::Offline && self.connectivity.paused().is_none();
            let mut wait = Duration::from_millis(250);
            if sending && tasks.len() < self.config.concurrency {
                match self
                    .store
                    .read(|r| r.push_queue(now_ms(), self.config.concurrency * 4))
                {
                    Ok(queue) => {
                        for key in queue.ready {
                            if tasks.len() >= self.config.concurrency {
                                break;
                            }
                            if busy.insert(key.causal_key.clone()) {
                                let me = self.clone();
                                tasks.spawn(async move {
                                    if let Err(e) = me.push_key(&key.causal_key).await {
                                        tracing::warn!(error = %e, key = %key.causal_key, "push bookkeeping failed; retrying");
                                    }
                                    key.causal_key
                                });
                            }
                        }
                        if let Some(at) = queue.next_at {
                            wait = wait
                                .min(Duration::from_millis((at - now_ms()).clamp(10, 250) as u64));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the push queue"),
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(key) = joined {
                        busy.remove(&key);
                    }
                }
                _ = probe.tick() => self.probe().await,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Let the batches in hand settle (a call in flight finishes or times out); whatever
        // is cut off here is recovered as ambiguous at the next start.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }

    /// Probes Odoo: its health (an idle link going down shows as offline before anything
    /// waits on it), or the credentials while paused.
    async fn probe(&self) {
        if let Some(why) = self.connectivity.paused() {
            let started = Instant::now();
            let r = self
                .gate
                .inner()
                .call(Call::new("res.users", "context_get"))
                .await;
            match &r {
                Ok(_) => {
                    tracing::info!("Odoo accepts the credentials again; the push resumes");
                    self.connectivity.observe(Event::Paused(None)).await;
                }
                Err(e) if e.class() == ErrorClass::Auth => {
                    tracing::error!(error = %e, paused = %why, "push paused: Odoo still refuses the credentials")
                }
                Err(_) => {}
            }
            self.connectivity
                .observe(Event::of(&r, started.elapsed()))
                .await;
            return;
        }
        let started = Instant::now();
        let r = self.gate.inner().probe().await;
        self.connectivity
            .observe(Event::of(&r, started.elapsed()))
            .await;
    }

    fn delay(&self, attempt: i64, retry_after: Option<Duration>) -> Duration {
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.config.retry_min)
            .with_max_delay(self.config.retry_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        let d = backoff
            .nth(attempt.clamp(1, 40) as usize - 1)
            .unwrap_or(self.config.retry_max);
        retry_after.map_or(d, |r| d.max(r))
    }

    /// Pushes the next batch of one causal key and settles it.
    async fn push_key(&self, key: &str) -> Result<(), StoreError> {
        let entries = self
            .store
            .read(|r| r.push_batch(key, self.config.max_batch))?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.state != OpState::Pending {
            return Ok(());
        }
        let isolated = self
            .isolate
            .lock()
            .map(|s| s.contains(key))
            .unwrap_or(false);
        let mut batch: Vec<(JournalEntry, Operation)> = Vec::new();
        for e in entries {
            let op = match e.operation() {
                Ok(op) => op,
                Err(err) if batch.is_empty() => {
                    let seqs = vec![e.seq];
                    self.store
                        .push(PushCmd::Begin { seqs: seqs.clone() })
                        .await?;
                    let conflict = NewConflict {
                        kind: ConflictKind::Validation.as_str().into(),
                        policy: Policy::Manual.as_str().into(),
                        message: format!("this build cannot read the entry: {err}"),
                        edge: e.payload.clone(),
                        cloud: Value::Null,
                    };
                    self.store
                        .push(PushCmd::Settle {
                            seqs,
                            settle: Settle::Hold {
                                rejected: true,
                                conflict,
                            },
                        })
                        .await?;
                    return Ok(());
                }
                Err(_) => break,
            };
            let picking_part = matches!(
                op,
                Operation::Pick(_) | Operation::Receive(_) | Operation::Validate(_)
            );
            if !batch.is_empty() && (!picking_part || isolated) {
                break;
            }
            let ends = !picking_part || matches!(op, Operation::Validate(_));
            batch.push((e, op));
            if ends {
                break;
            }
        }
        let seqs: Vec<i64> = batch.iter().map(|(e, _)| e.seq).collect();
        let push_entries: Vec<PushEntry> = batch
            .iter()
            .map(|(e, op)| PushEntry {
                seq: e.seq,
                id: e.id.clone(),
                op: op.clone(),
                // Any earlier attempt may have created the entry's record before failing on a
                // later call: look for the mark whenever this is not the first attempt.
                ambiguous: e.ambiguous || e.attempts > 0,
            })
            .collect();
        let attempts = batch.iter().map(|(e, _)| e.attempts).max().unwrap_or(0) + 1;
        self.store
            .push(PushCmd::Begin { seqs: seqs.clone() })
            .await?;
        let outcome = self.translate(key, &push_entries).await?;
        let settle = self.settle(key, &push_entries, outcome, attempts).await;
        if let Settle::Applied { .. } = &settle {
            self.stats.applied_now(seqs.len() as u64);
        }
        self.store.push(PushCmd::Settle { seqs, settle }).await?;
        Ok(())
    }

    async fn translate(&self, key: &str, batch: &[PushEntry]) -> Result<Outcome, StoreError> {
        let Some(first) = batch.first() else {
            return Ok(Outcome::Failed(OdooError::Config("empty batch".into())));
        };
        Ok(match &first.op {
            Operation::Pick(_) | Operation::Receive(_) | Operation::Validate(_) => {
                let picking = match &first.op {
                    Operation::Pick(p) => p.picking_id,
                    Operation::Receive(r) => r.picking_id,
                    Operation::Validate(v) => v.picking_id,
                    _ => 0,
                };
                let prior: Vec<Operation> = self
                    .store
                    .read(|r| r.push_applied(key))?
                    .iter()
                    .filter_map(|e| e.operation().ok())
                    .collect();
                translate::push_picking(&self.gate, picking, &prior, batch).await
            }
            Operation::Count(op) => translate::push_count(&self.gate, first, op).await,
            Operation::Transfer(op) => {
                let found = self
                    .internal_type
                    .get_or_try_init(|| {
                        translate::internal_picking_type(&self.gate, self.warehouse_id)
                    })
                    .await;
                match found {
                    Ok(Some(t)) => translate::push_transfer(&self.gate, first, op, *t).await,
                    Ok(None) => Outcome::Conflict(Finding {
                        kind: ConflictKind::Validation,
                        message: format!(
                            "warehouse {} has no internal picking type in Odoo",
                            self.warehouse_id
                        ),
                        edge: serde_json::to_value(&first.op).unwrap_or(Value::Null),
                        cloud: Value::Null,
                    }),
                    Err(e) => Outcome::Failed(e),
                }
            }
            Operation::Resolve(r) => match &r.recreate {
                Some(spec) => translate::push_new_picking(&self.gate, first, spec).await,
                None => Outcome::Applied {
                    remote_ref: None,
                    superseded: false,
                    flagged: Vec::new(),
                },
            },
            Operation::Print(_) => Outcome::Applied {
                remote_ref: None,
                superseded: false,
                flagged: Vec::new(),
            },
        })
    }

    async fn settle(
        &self,
        key: &str,
        batch: &[PushEntry],
        outcome: Outcome,
        attempts: i64,
    ) -> Settle {
        let conflict = |f: &Finding, policy: Policy| NewConflict {
            kind: f.kind.as_str().into(),
            policy: policy.as_str().into(),
            message: f.message.clone(),
            edge: f.edge.clone(),
            cloud: f.cloud.clone(),
        };
        let isolate = |on: bool| {
            if let Ok(mut s) = self.isolate.lock() {
                if on {
                    s.insert(key.to_owned());
                } else {
                    s.remove(key);
                }
            }
        };
        match outcome {
            Outcome::Applied {
                remote_ref,
                superseded,
                flagged,
            } => {
                let note = superseded.then(|| {
                    if batch.iter().any(|e| e.ambiguous) {
                        "confirmed in Odoo after an attempt with an unknown outcome".to_owned()
                    } else {
                        "superseded: Odoo already held the same result".to_owned()
                    }
                });
                Settle::Applied {
                    remote_ref,
                    note,
                    flagged: flagged
                        .iter()
                        .map(|f| conflict(f, self.config.policies.get(f.kind)))
                        .collect(),
                }
            }
            Outcome::Conflict(f) if f.kind == ConflictKind::Validation && batch.len() > 1 => {
                // Which entry of the coalesced batch did Odoo refuse? Send them one by one.
                isolate(true);
                Settle::Retry {
                    error: format!(
                        "Odoo refused a batch of {} entries ({}); sending them one by one",
                        batch.len(),
                        f.message
                    ),
                    next_attempt_at: now_ms(),
                    ambiguous: false,
                    count_attempt: false,
                }
            }
            Outcome::Conflict(f) => {
                isolate(false);
                let policy = self.config.policies.get(f.kind);
                tracing::warn!(key, kind = %f.kind, policy = policy.as_str(), message = %f.message, "conflict");
                match policy {
                    Policy::CloudWins => Settle::Discard {
                        conflict: conflict(&f, policy),
                    },
                    Policy::Manual | Policy::EdgeWins => Settle::Hold {
                        rejected: f.kind == ConflictKind::Validation,
                        conflict: conflict(&f, Policy::Manual),
                    },
                }
            }
            Outcome::Failed(e) => match e.class() {
                ErrorClass::Auth => {
                    tracing::error!(error = %e, "Odoo refused the credentials: the push is paused until they work again");
                    self.connectivity
                        .observe(Event::Paused(Some(e.to_string())))
                        .await;
                    Settle::Retry {
                        error: e.to_string(),
                        next_attempt_at: now_ms() + self.config.probe.as_millis() as i64,
                        ambiguous: false,
                        count_attempt: true,
                    }
                }
                class @ (ErrorClass::Transient | ErrorClass::Ambiguous) => Settle::Retry {
                    error: e.to_string(),
                    next_attempt_at: now_ms()
                        + self.delay(attempts, e.retry_after()).as_millis() as i64,
                    ambiguous: class == ErrorClass::Ambiguous,
                    count_attempt: true,
                },
                ErrorClass::Permanent => Settle::Hold {
                    rejected: true,
                    conflict: NewConflict {
                        kind: ConflictKind::Validation.as_str().into(),
                        policy: Policy::Manual.as_str().into(),
                        message: e.to_string(),
                        edge: Value::Null,
                        cloud: Value::Null,
                    },
                },
            },
        }
    }
}

/// The picking that re-creates what a conflict held back: the picks (or receipts) of its
/// entries, summed per product, lot and bin, on the original picking's type and route.
pub fn recreate_spec(
    store: &Store,
    conflict: &ConflictRow,
) -> Result<Option<NewPicking>, StoreError> {
    store.read(|r| {
        let entries = r.entries(&conflict.seqs)?;
        let mut lines: BTreeMap<(i64, String, i64), f64> = BTreeMap::new();
        let mut picking = None;
        let mut side = Side::Source;
        // Earlier entries of the same picking that reached Odoo stay where they are.
        for e in &entries {
            match e.operation()? {
                Operation::Pick(p) => {
                    picking = Some(p.picking_id);
                    *lines
                        .entry((p.product_id, p.lot_name.unwrap_or_default(), p.location_id))
                        .or_insert(0.0) += p.quantity;
                }
                Operation::Receive(rc) => {
                    picking = Some(rc.picking_id);
                    side = Side::Destination;
                    *lines
                        .entry((
                            rc.product_id,
                            rc.lot_name.unwrap_or_default(),
                            rc.location_dest_id,
                        ))
                        .or_insert(0.0) += rc.quantity;
                }
                _ => {}
            }
        }
        let Some(picking) = picking else {
            return Ok(None);
        };
        let Some((picking_type_id, location_id, location_dest_id)) = r.picking_route(picking)?
        else {
            return Ok(None);
        };
        let lines: Vec<NewPickingLine> = lines
            .into_iter()
            .filter(|(_, q)| *q > 1e-9)
            .map(
                |((product_id, lot, location_id), quantity)| NewPickingLine {
                    product_id,
                    lot_name: (!lot.is_empty()).then_some(lot),
                    location_id,
                    quantity,
                },
            )
            .collect();
        if lines.is_empty() {
            return Ok(None);
        }
        Ok(Some(NewPicking {
            picking_type_id,
            location_id,
            location_dest_id,
            side,
            lines,
        }))
    })
}

/// Records a person's decision on a conflict (the HTTP inbox and the CLI both come here);
/// answers the `resolve` journal entry's seq.
pub async fn resolve(
    store: &Store,
    conflict_id: i64,
    action: ResolveAction,
    note: &str,
    by: &str,
) -> Result<i64, StoreError> {
    let conflict = store
        .read(|r| r.conflict(conflict_id))?
        .ok_or_else(|| StoreError::NotFound(format!("conflict {conflict_id}")))?;
    let recreate = match action {
        ResolveAction::Recreate => recreate_spec(store, &conflict)?,
        _ => None,
    };
    store
        .push(PushCmd::Resolve {
            conflict_id,
            action,
            note: note.to_owned(),
            by: by.to_owned(),
            recreate,
        })
        .await
}

/// The push task for the configured Odoo: connects (retrying while the cloud is away) and
/// runs the scheduler until `stop`.
pub async fn run_push(
    store: Store,
    odoo: crate::config::OdooConfig,
    config: PushConfig,
    connectivity: Connectivity,
    stats: Arc<PushStats>,
    stop: CancellationToken,
) {
    let mut attempt = 0u32;
    let client = loop {
        let started = Instant::now();
        let mut client_config = crate::pull::client_config(&odoo);
        // The push's own connections: as many as the batches it keeps in hand.
        client_config.max_concurrency = config.concurrency;
        match holdfast_sync::odoo::OdooClient::connect(client_config).await {
            Ok(c) => break c,
            Err(e) => {
                attempt += 1;
                connectivity
                    .observe(Event::of::<()>(&Err(e.clone()), started.elapsed()))
                    .await;
                if e.class() == ErrorClass::Auth {
                    connectivity
                        .observe(Event::Paused(Some(e.to_string())))
                        .await;
                }
                let wait = config
                    .probe
                    .min(Duration::from_secs(2u64.saturating_pow(attempt.min(6))));
                tracing::warn!(error = %e, retry_in = ?wait, "push cannot connect to Odoo");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    connectivity.observe(Event::Paused(None)).await;
    let pusher = Arc::new(Pusher::new(
        store,
        client,
        config,
        odoo.warehouse_id,
        connectivity,
        stats,
    ));
    pusher.run(stop).await;
}
