//! The push scheduler: drains the journal to Odoo, exactly once, in causal order, at a rate
//! Odoo can take.
//!
//! - Entries sharing a causal key go in journal order, one batch at a time; different keys
//!   go in parallel, as many as the adaptive limit allows ([`limit`]: grows while Odoo
//!   answers as fast as it does when quiet, shrinks when it queues or shows retry
//!   symptoms), at most `push.concurrency`. A picking's pending picks (up to and including
//!   its validation) are one batch: one write on the picking, not one per line.
//! - Batches that take stock of the same products (validations, counts, transfers,
//!   re-creations) are never in flight together ([`exclusion`]): Odoo would serialize them
//!   on the quants' lock and fail some.
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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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

use crate::connectivity::{Connectivity, Event, Mode};
use crate::store::{
    AttemptFailure, ConflictRow, JournalEntry, NewConflict, OpState, PickingContext, PushCmd,
    Settle, Store, StoreError, now_ms,
};

pub mod exclusion;
pub mod limit;

pub use exclusion::{Claim, Claims, Exclusion};
pub use limit::{LimitConfig, LimitStatus, Limiter, Signal};

/// How far apart the appliance's clock and Odoo's may be when a retry asks Odoo for records
/// made since its first attempt.
const CLOCK_SLACK_MS: i64 = 10 * 60 * 1000;

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

/// How the push drains the journal to Odoo.
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// Causal keys pushed at once, at most (the adaptive limit's ceiling; see
    /// [`LimitConfig`] for whether it adapts).
    pub concurrency: usize,
    /// Cap on calls per second towards Odoo.
    pub max_calls_per_sec: f64,
    /// Entries of one picking coalesced into one write at most.
    pub max_batch: usize,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Health probe period (shorter while offline).
    pub probe: Duration,
    /// Policy per conflict kind.
    pub policies: Policies,
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
            (CountUnconfirmed, Policy::Manual),
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
    /// The concurrency limit as of the last call (kept here for status, which has no
    /// handle on the scheduler).
    limit: Mutex<Option<LimitStatus>>,
    /// Times a ready batch waited because a batch in flight claimed its products.
    pub waited_on_claims: AtomicU64,
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

    /// The concurrency limit, its baseline and the recent latency; `None` until the push
    /// has started.
    pub fn limit(&self) -> Option<LimitStatus> {
        self.limit.lock().ok().and_then(|l| l.clone())
    }

    fn set_limit(&self, status: LimitStatus) {
        if let Ok(mut l) = self.limit.lock() {
            *l = Some(status);
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

/// Every call to Odoo passes here: rate cap, Retry-After hold, connectivity, and the
/// concurrency limit fed with each call's latency.
#[derive(Debug)]
pub struct Gate<O> {
    inner: O,
    limiter: DefaultDirectRateLimiter,
    hold_until: Mutex<Option<tokio::time::Instant>>,
    connectivity: Connectivity,
    stats: Arc<PushStats>,
    /// Never held across an await: a call updates it once it has ended.
    concurrency: Mutex<Limiter>,
}

impl<O: Odoo> Gate<O> {
    pub fn new(
        inner: O,
        calls_per_sec: f64,
        connectivity: Connectivity,
        stats: Arc<PushStats>,
        concurrency: Limiter,
    ) -> Gate<O> {
        let period = Duration::from_secs_f64(1.0 / calls_per_sec.max(0.001));
        // The average never exceeds the cap; a burst of a tenth of a second's worth lets the
        // drain catch up after a gap (a batch waiting on its previous call) instead of
        // losing that slot for good.
        let burst =
            std::num::NonZeroU32::new((calls_per_sec / 10.0).ceil().clamp(1.0, 100.0) as u32)
                .unwrap_or(std::num::NonZeroU32::MIN);
        // Status shows the limit from the start, not only after the first call.
        stats.set_limit(concurrency.status());
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN))
            .allow_burst(burst);
        Gate {
            inner,
            limiter: RateLimiter::direct(quota),
            hold_until: Mutex::new(None),
            connectivity,
            stats,
            concurrency: Mutex::new(concurrency),
        }
    }

    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// Batches in hand allowed now.
    pub fn limit(&self) -> usize {
        self.concurrency.lock().map_or(1, |l| l.limit())
    }

    fn set_limiter(&mut self, limiter: Limiter) {
        self.stats.set_limit(limiter.status());
        self.concurrency = Mutex::new(limiter);
    }

    async fn call_inner(&self, call: Call) -> Result<Value, OdooError> {
        let hold = self.hold_until.lock().ok().and_then(|h| *h);
        if let Some(until) = hold {
            tokio::time::sleep_until(until).await;
        }
        self.limiter.until_ready().await;
        // Timed from here: the rate cap's and the hold's waits are ours, not Odoo's.
        let name = format!("{}.{}", call.model, call.method);
        let started = tokio::time::Instant::now();
        let result = self.inner.call(call).await;
        let ended = tokio::time::Instant::now();
        let status = self.concurrency.lock().ok().map(|mut l| {
            l.observe(&name, started, ended, Signal::of(&result, ended - started));
            l.status()
        });
        if let Some(status) = status {
            self.stats.set_limit(status);
        }
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        crate::metrics::push_call(
            &name,
            crate::metrics::call_outcome(&result),
            ended - started,
        );
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
            .observe(Event::of(&result, ended - started))
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

/// The calls of one batch: remembers the last one made, so a failure can name it (a failed
/// call ends the batch's translation, so the last call is the one that failed).
struct Traced<'a, O> {
    inner: &'a Gate<O>,
    last: Mutex<Option<String>>,
}

impl<'a, O: Odoo> Traced<'a, O> {
    fn new(inner: &'a Gate<O>) -> Self {
        Traced {
            inner,
            last: Mutex::new(None),
        }
    }

    fn last_call(&self) -> Option<String> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

impl<O: Odoo> Odoo for Traced<'_, O> {
    fn call(
        &self,
        call: Call,
    ) -> impl std::future::Future<Output = Result<Value, OdooError>> + Send {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(format!("{}.{}", call.model, call.method));
        }
        self.inner.call(call)
    }

    fn major(&self) -> u32 {
        self.inner.major()
    }

    fn probe(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
        self.inner.probe()
    }
}

fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Transient => "transient",
        ErrorClass::Ambiguous => "ambiguous",
        ErrorClass::Auth => "auth",
        ErrorClass::Permanent => "permanent",
    }
}

/// A causal key's next batch, formed before it is sent so that its claims are known.
#[derive(Debug)]
enum Formed {
    /// Nothing to send: no open entry, or the first is in flight.
    Nothing,
    /// The first open entry cannot be read by this build: held as a conflict, no call.
    Unreadable {
        entry: Box<JournalEntry>,
        error: String,
    },
    Batch {
        batch: Vec<(JournalEntry, Operation)>,
        claims: Claims,
    },
}

impl Formed {
    fn claims(&self) -> Claims {
        match self {
            Formed::Batch { claims, .. } => claims.clone(),
            Formed::Nothing | Formed::Unreadable { .. } => Claims::default(),
        }
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
                Limiter::new(config.concurrency, LimitConfig::default()),
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

    /// Whether the number of batches in hand adapts to Odoo's latency (the default) or
    /// stays at `push.concurrency`.
    pub fn with_limit(mut self, limit: LimitConfig) -> Pusher<O> {
        self.gate
            .set_limiter(Limiter::new(self.config.concurrency, limit));
        self
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
        let mut tasks: JoinSet<()> = JoinSet::new();
        // The key of each batch in hand, by task: a task that panicked still frees its key
        // and its claims.
        let mut in_hand: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut busy: HashSet<String> = HashSet::new();
        let mut exclusion = Exclusion::default();
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
            if sending && tasks.len() < self.gate.limit() {
                // Read further than the slots free: some ready keys may wait on claims.
                match self
                    .store
                    .read(|r| r.push_queue(now_ms(), self.config.concurrency * 4 + 32))
                {
                    Ok(queue) => {
                        // Claims of batches that wait in this pass: later batches meeting
                        // them wait too, so the first to wait is the first to go.
                        let mut waiting = Claims::default();
                        for key in queue.ready {
                            if tasks.len() >= self.gate.limit() {
                                break;
                            }
                            if busy.contains(&key.causal_key) {
                                continue;
                            }
                            let formed = match self.form(&key.causal_key) {
                                Ok(f) => f,
                                Err(e) => {
                                    tracing::warn!(error = %e, key = %key.causal_key, "cannot read the batch; retrying");
                                    continue;
                                }
                            };
                            let claims = formed.claims();
                            if exclusion.blocks(&claims) || waiting.meets(&claims) {
                                self.stats.waited_on_claims.fetch_add(1, Ordering::Relaxed);
                                waiting.extend(&claims);
                                continue;
                            }
                            exclusion.hold(&key.causal_key, claims);
                            busy.insert(key.causal_key.clone());
                            let me = self.clone();
                            let causal_key = key.causal_key.clone();
                            let handle = tasks.spawn(async move {
                                if let Err(e) = me.push_formed(&causal_key, formed).await {
                                    tracing::warn!(error = %e, key = %causal_key, "push bookkeeping failed; retrying");
                                }
                            });
                            in_hand.insert(handle.id(), key.causal_key);
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
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match joined {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "a push task failed; entries it left in flight are retried after the next start");
                            e.id()
                        }
                    };
                    if let Some(key) = in_hand.remove(&id) {
                        exclusion.release(&key);
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
    pub async fn push_key(&self, key: &str) -> Result<(), StoreError> {
        let formed = self.form(key)?;
        self.push_formed(key, formed).await
    }

    /// The next batch of one causal key, and what it claims: a picking's picks up to and
    /// including its validation (one by one once a coalesced batch was refused), or one
    /// entry of any other kind.
    fn form(&self, key: &str) -> Result<Formed, StoreError> {
        let isolated = self
            .isolate
            .lock()
            .map(|s| s.contains(key))
            .unwrap_or(false);
        self.store.read(|r| {
            let entries = r.push_batch(key, self.config.max_batch)?;
            let Some(first) = entries.first() else {
                return Ok(Formed::Nothing);
            };
            if first.state != OpState::Pending {
                return Ok(Formed::Nothing);
            }
            let mut batch: Vec<(JournalEntry, Operation)> = Vec::new();
            for e in entries {
                let op = match e.operation() {
                    Ok(op) => op,
                    Err(err) if batch.is_empty() => {
                        return Ok(Formed::Unreadable {
                            error: err.to_string(),
                            entry: Box::new(e),
                        });
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
            let validated = batch.iter().find_map(|(_, op)| match op {
                Operation::Validate(v) => Some(v.picking_id),
                _ => None,
            });
            let picking_products = match validated {
                Some(picking) => r.picking_products(picking)?,
                None => Vec::new(),
            };
            let ops: Vec<&Operation> = batch.iter().map(|(_, op)| op).collect();
            let claims = Claims::of(&ops, &picking_products);
            Ok(Formed::Batch { batch, claims })
        })
    }

    /// Sends a formed batch and settles it.
    async fn push_formed(&self, key: &str, formed: Formed) -> Result<(), StoreError> {
        let batch = match formed {
            Formed::Nothing => return Ok(()),
            Formed::Unreadable { entry: e, error } => {
                let seqs = vec![e.seq];
                self.store
                    .push(PushCmd::Begin { seqs: seqs.clone() })
                    .await?;
                let conflict = NewConflict {
                    kind: ConflictKind::Validation.as_str().into(),
                    policy: Policy::Manual.as_str().into(),
                    message: format!("this build cannot read the entry: {error}"),
                    edge: e.payload.clone(),
                    cloud: Value::Null,
                };
                tracing::warn!(op_id = %e.id, kind = %e.kind, class = "permanent", error = %conflict.message, "push attempt refused before any call");
                let failure = Some(AttemptFailure {
                    call: None,
                    class: "permanent".into(),
                    message: conflict.message.clone(),
                });
                self.store
                    .push(PushCmd::Settle {
                        seqs,
                        settle: Settle::Hold {
                            rejected: true,
                            conflict,
                        },
                        failure,
                    })
                    .await?;
                return Ok(());
            }
            Formed::Batch { batch, .. } => batch,
        };
        let seqs: Vec<i64> = batch.iter().map(|(e, _)| e.seq).collect();
        let mut push_entries: Vec<PushEntry> = Vec::with_capacity(batch.len());
        for (e, op) in &batch {
            // Any earlier attempt may have created the entry's record before failing on a
            // later call: look for the mark whenever this is not the first attempt.
            let ambiguous = e.ambiguous || e.attempts > 0;
            let sent_since = if ambiguous {
                let (decided, first) = self.store.read(|r| r.push_sent_since(e.seq))?;
                match (decided, first) {
                    // Odoo's clock may lag ours; a person's decision covers what came before.
                    (_, Some(first)) => {
                        Some((first - CLOCK_SLACK_MS).max(decided.unwrap_or(i64::MIN)))
                    }
                    // A person looked at Odoo and decided to send it again: this attempt does.
                    (Some(_), None) => None,
                    // No attempt row (sent by an older build): since it was recorded.
                    (None, None) => Some(e.created_at - CLOCK_SLACK_MS),
                }
            } else {
                None
            };
            push_entries.push(PushEntry {
                seq: e.seq,
                id: e.id.clone(),
                op: op.clone(),
                ambiguous,
                sent_since,
            });
        }
        let attempts = batch.iter().map(|(e, _)| e.attempts).max().unwrap_or(0) + 1;
        self.store
            .push(PushCmd::Begin { seqs: seqs.clone() })
            .await?;
        let traced = Traced::new(&self.gate);
        let outcome = self.translate(&traced, key, &push_entries).await?;
        let failure = self.report(&push_entries, &outcome, traced.last_call(), attempts);
        let settle = self.settle(key, &push_entries, outcome, attempts).await;
        if let Settle::Applied { .. } = &settle {
            self.stats.applied_now(seqs.len() as u64);
        }
        self.store
            .push(PushCmd::Settle {
                seqs,
                settle,
                failure,
            })
            .await?;
        Ok(())
    }

    /// What an attempt that did not apply its batch leaves in the entries' attempt rows, and
    /// its one log line (a retry is one line, however many calls it took).
    fn report(
        &self,
        batch: &[PushEntry],
        outcome: &Outcome,
        call: Option<String>,
        attempt: i64,
    ) -> Option<AttemptFailure> {
        let first = batch.first()?;
        let (class, message) = match outcome {
            Outcome::Applied { .. } => return None,
            Outcome::Failed(e) => (class_name(e.class()), e.to_string()),
            Outcome::Conflict(f) => ("conflict", format!("{}: {}", f.kind, f.message)),
        };
        let shown = call.as_deref().unwrap_or("-");
        let kind = first.op.kind();
        let kind = kind.as_str();
        let op_id = first.id.as_str();
        let entries = batch.len();
        match outcome {
            Outcome::Conflict(f) => {
                let policy = self.config.policies.get(f.kind).as_str();
                tracing::warn!(op_id, kind, entries, attempt, call = shown, class, conflict = %f.kind, policy, error = %message, "push attempt ended in a conflict");
            }
            _ => {
                tracing::warn!(op_id, kind, entries, attempt, call = shown, class, error = %message, "push attempt failed");
            }
        }
        Some(AttemptFailure {
            call,
            class: class.to_owned(),
            message,
        })
    }

    async fn translate(
        &self,
        odoo: &Traced<'_, O>,
        key: &str,
        batch: &[PushEntry],
    ) -> Result<Outcome, StoreError> {
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
                translate::push_picking(odoo, picking, &prior, batch).await
            }
            Operation::Count(op) => translate::push_count(odoo, first, op).await,
            Operation::Transfer(op) => {
                let found = self
                    .internal_type
                    .get_or_try_init(|| translate::internal_picking_type(odoo, self.warehouse_id))
                    .await;
                match found {
                    Ok(Some(t)) => translate::push_transfer(odoo, first, op, *t).await,
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
                Some(spec) => translate::push_new_picking(odoo, first, spec).await,
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
                    tracing::error!(
                        "Odoo refused the credentials: the push is paused until they work again"
                    );
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
/// entries, summed per product, lot and bin, on the original picking's type and route, for
/// the original's partner, with the original's origin and name in its `origin` (before the
/// mark) and the manager's note.
pub fn recreate_spec(
    store: &Store,
    conflict: &ConflictRow,
    note: &str,
    by: &str,
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
        let PickingContext {
            name,
            origin,
            partner_id,
        } = r
            .picking_context(picking)?
            .unwrap_or_else(|| PickingContext {
                name: format!("picking {picking}"),
                origin: None,
                partner_id: None,
            });
        let origin = match origin.as_deref().map(str::trim) {
            Some(o) if !o.is_empty() => format!("{o} {name}"),
            _ => name.clone(),
        };
        let mut text = format!(
            "Re-created by Holdfast from {name} ({} in Odoo), decided by {by}.",
            conflict.kind.replace('_', " ")
        );
        if !note.trim().is_empty() {
            text.push('\n');
            text.push_str(note.trim());
        }
        Ok(Some(NewPicking {
            picking_type_id,
            location_id,
            location_dest_id,
            side,
            lines,
            partner_id,
            origin: Some(origin),
            note: Some(text),
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
        ResolveAction::Recreate => recreate_spec(store, &conflict, note, by)?,
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
#[expect(
    clippy::too_many_arguments,
    reason = "the limit's setting travels beside PushConfig, which callers build field by field"
)]
pub async fn run_push(
    store: Store,
    client_config: holdfast_sync::odoo::ClientConfig,
    warehouse_id: i64,
    config: PushConfig,
    limit: LimitConfig,
    connectivity: Connectivity,
    stats: Arc<PushStats>,
    stop: CancellationToken,
) {
    let mut attempt = 0u32;
    let client = loop {
        let started = Instant::now();
        let mut client_config = client_config.clone();
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
    let pusher = Arc::new(
        Pusher::new(store, client, config, warehouse_id, connectivity, stats).with_limit(limit),
    );
    pusher.run(stop).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicBool;

    use holdfast_sync::dataset::{Dataset, DatasetSpec};
    use holdfast_sync::ops::CountOp;
    use holdfast_sync::sim::{Cloud, SimConfig};
    use serde_json::json;

    use super::*;
    use crate::store::{Lane, MirrorBatch, NewEntry, StoreOptions};

    /// The simulator, but the first `action_apply_inventory` is lost before Odoo sees it.
    struct LoseFirstApply {
        cloud: Cloud,
        lost: AtomicBool,
    }

    impl Odoo for LoseFirstApply {
        fn call(
            &self,
            call: Call,
        ) -> impl std::future::Future<Output = Result<Value, OdooError>> + Send {
            let answer = if call.method == "action_apply_inventory"
                && !self.lost.swap(true, Ordering::SeqCst)
            {
                Err(OdooError::Lost("connection reset".into()))
            } else {
                self.cloud.execute(call)
            };
            std::future::ready(answer)
        }

        fn major(&self) -> u32 {
            18
        }

        fn probe(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
            std::future::ready(Ok(()))
        }
    }

    /// The simulator, with validations that take a while, recording which pickings'
    /// validations were in Odoo's hands at the same time.
    struct Overlaps {
        cloud: Cloud,
        seen: Arc<Seen>,
    }

    #[derive(Default)]
    struct Seen {
        validating: Mutex<Vec<i64>>,
        /// Every pair of pickings validated at once.
        together: Mutex<HashSet<(i64, i64)>>,
        most_at_once: AtomicU64,
        validated: tokio::sync::watch::Sender<usize>,
    }

    impl Odoo for Overlaps {
        fn call(
            &self,
            call: Call,
        ) -> impl std::future::Future<Output = Result<Value, OdooError>> + Send {
            let picking = (call.method == "button_validate")
                .then(|| call.ids.as_ref().and_then(|ids| ids.first().copied()))
                .flatten();
            async move {
                let Some(picking) = picking else {
                    return self.cloud.execute(call);
                };
                let seen = &self.seen;
                if let Ok(mut v) = seen.validating.lock() {
                    if let Ok(mut t) = seen.together.lock() {
                        for &other in v.iter() {
                            t.insert((picking.min(other), picking.max(other)));
                        }
                    }
                    v.push(picking);
                    seen.most_at_once
                        .fetch_max(v.len() as u64, Ordering::SeqCst);
                }
                // A validation keeps Odoo busy for a while (the quant lock held).
                tokio::time::sleep(Duration::from_millis(200)).await;
                let answer = self.cloud.execute(call);
                if let Ok(mut v) = seen.validating.lock() {
                    v.retain(|&p| p != picking);
                }
                seen.validated.send_modify(|n| *n += 1);
                answer
            }
        }

        fn major(&self) -> u32 {
            18
        }

        fn probe(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
            std::future::ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn validations_of_pickings_sharing_a_product_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        let data = Dataset::generate(&DatasetSpec {
            seed: 7,
            products: 40,
            quants: 400,
            pickings: 80,
        });
        store
            .apply_mirror(MirrorBatch {
                epoch: None,
                upserts: data.records().collect(),
                deletes: vec![],
            })
            .await
            .unwrap();
        let cloud = Cloud::new(SimConfig::default(), &data);
        // Deliveries reserved in full: picked as reserved.
        let outgoing: HashSet<_> = data
            .picking_types
            .iter()
            .filter(|t| t.code == holdfast_sync::records::PickingCode::Outgoing)
            .map(|t| t.id)
            .collect();
        let mut candidates: Vec<(i64, BTreeSet<i64>)> = data
            .pickings
            .iter()
            .filter(|p| outgoing.contains(&p.picking_type_id))
            .filter(|p| p.state == holdfast_sync::records::PickingState::Assigned)
            .filter_map(|p| {
                let lines: Vec<_> = data
                    .move_lines
                    .iter()
                    .filter(|l| l.picking_id == Some(p.id))
                    .collect();
                let pickable = !lines.is_empty() && lines.iter().all(|l| l.quantity > 0.0);
                let products: BTreeSet<i64> = data
                    .moves
                    .iter()
                    .filter(|m| m.picking_id == Some(p.id))
                    .map(|m| m.product_id.0)
                    .collect();
                pickable.then_some((p.id.0, products))
            })
            .collect();
        candidates.sort();
        let shared = candidates
            .iter()
            .enumerate()
            .find_map(|(i, (a, pa))| {
                candidates[i + 1..]
                    .iter()
                    .find(|(_, pb)| !pa.is_disjoint(pb))
                    .map(|(b, pb)| (*a, *b, pa | pb))
            })
            .expect("two deliveries sharing a product");
        let (a, b, mut taken) = shared;
        let mut unrelated = Vec::new();
        for (p, products) in &candidates {
            if unrelated.len() < 4 && products.is_disjoint(&taken) {
                taken.extend(products.iter().copied());
                unrelated.push(*p);
            }
        }
        assert!(unrelated.len() >= 2, "unrelated deliveries: {unrelated:?}");
        // Each picked in full on the floor and validated, while offline.
        for &picking in [a, b].iter().chain(&unrelated) {
            let mut ops: Vec<Operation> = data
                .move_lines
                .iter()
                .filter(|l| l.picking_id == Some(holdfast_sync::records::PickingId(picking)))
                .map(|l| {
                    Operation::Pick(holdfast_sync::ops::PickOp {
                        picking_id: picking,
                        move_id: l.move_id.unwrap().0,
                        product_id: l.product_id.0,
                        location_id: l.location_id.0,
                        lot_name: l.lot_id.and_then(|lot| {
                            data.lots
                                .iter()
                                .find(|x| x.id == lot)
                                .map(|x| x.name.clone())
                        }),
                        package_id: None,
                        quantity: l.quantity,
                        view_quantity: l.quantity,
                    })
                })
                .collect();
            ops.push(Operation::Validate(holdfast_sync::ops::ValidateOp {
                picking_id: picking,
                backorder: holdfast_sync::ops::BackorderChoice::NoBackorder,
            }));
            for op in ops {
                store
                    .append(
                        Lane::Background,
                        NewEntry {
                            id: None,
                            device: "scanner-1".into(),
                            operator: None,
                            op,
                        },
                    )
                    .await
                    .unwrap();
            }
        }
        let seen = Arc::new(Seen::default());
        let mut validated = seen.validated.subscribe();
        let stats = Arc::new(PushStats::default());
        let pusher = Arc::new(
            Pusher::new(
                store.clone(),
                Overlaps {
                    cloud: cloud.clone(),
                    seen: seen.clone(),
                },
                PushConfig {
                    concurrency: 8,
                    ..config()
                },
                1,
                Connectivity::new(store.clone()),
                stats.clone(),
            )
            // Eight in hand from the first batch: the test is about claims, not the limit.
            .with_limit(LimitConfig { adaptive: false }),
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(pusher.run(stop.clone()));
        let n_pickings = 2 + unrelated.len();
        tokio::time::timeout(
            Duration::from_secs(60),
            validated.wait_for(|n| *n >= n_pickings),
        )
        .await
        .expect("every delivery validated within a minute")
        .unwrap();
        // The stop lets the batches in hand settle.
        stop.cancel();
        task.await.unwrap();
        let q = store.read(|r| r.queue_stats()).unwrap();
        assert_eq!(q.by_state.get("pending"), Some(&0), "{q:?}");
        assert_eq!(q.by_state.get("in_flight"), Some(&0), "{q:?}");
        let together = seen.together.lock().unwrap().clone();
        assert!(
            !together.contains(&(a.min(b), a.max(b))),
            "{a} and {b} share a product and were validated at once: {together:?}"
        );
        assert!(
            seen.most_at_once.load(Ordering::SeqCst) >= 2,
            "unrelated deliveries go in parallel: {together:?}"
        );
        assert!(stats.waited_on_claims.load(Ordering::Relaxed) >= 1);
        let done = cloud
            .execute(Call::new("stock.picking", "search_count").arg(
                "domain",
                json!([["id", "in", [a, b]], ["state", "=", "done"]]),
            ))
            .unwrap();
        assert_eq!(done, json!(2), "both validated in Odoo");
    }

    /// The simulator as a server that queues: each call takes 10 ms times the square of
    /// the calls in its hands (two at once: 40 ms each).
    struct Queueing {
        cloud: Cloud,
        in_flight: Arc<AtomicU64>,
        most: Arc<AtomicU64>,
        applied: tokio::sync::watch::Sender<usize>,
    }

    impl Odoo for Queueing {
        async fn call(&self, call: Call) -> Result<Value, OdooError> {
            let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10 * n * n)).await;
            let applies = call.method == "action_apply_inventory";
            let answer = self.cloud.execute(call);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if applies {
                self.applied.send_modify(|n| *n += 1);
            }
            answer
        }

        fn major(&self) -> u32 {
            18
        }

        fn probe(&self) -> impl std::future::Future<Output = Result<(), OdooError>> + Send {
            std::future::ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_queueing_odoo_gets_fewer_batches_than_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        let data = Dataset::generate(&DatasetSpec::demo());
        let cloud = Cloud::new(SimConfig::default(), &data);
        // Counts that claim nothing in common: distinct products in distinct bins.
        let (mut products, mut bins) = (HashSet::new(), HashSet::new());
        let mut n_counts = 0;
        for q in data.quants.iter().filter(|q| q.lot_id.is_none()) {
            if n_counts == 12 || !products.insert(q.product_id) || !bins.insert(q.location_id) {
                continue;
            }
            n_counts += 1;
            store
                .append(
                    Lane::Background,
                    NewEntry {
                        id: None,
                        device: "scanner-1".into(),
                        operator: None,
                        op: Operation::Count(CountOp {
                            product_id: q.product_id.0,
                            location_id: q.location_id.0,
                            lot_name: None,
                            counted: q.quantity + 1.0,
                            expected: q.quantity,
                        }),
                    },
                )
                .await
                .unwrap();
        }
        assert!(n_counts >= 6, "{n_counts} independent counts");
        let most = Arc::new(AtomicU64::new(0));
        let (applied, mut applied_rx) = tokio::sync::watch::channel(0);
        let stats = Arc::new(PushStats::default());
        let pusher = Arc::new(Pusher::new(
            store.clone(),
            Queueing {
                cloud,
                in_flight: Arc::default(),
                most: most.clone(),
                applied,
            },
            PushConfig {
                concurrency: 8,
                ..config()
            },
            1,
            Connectivity::new(store.clone()),
            stats.clone(),
        ));
        let stop = CancellationToken::new();
        let task = tokio::spawn(pusher.run(stop.clone()));
        tokio::time::timeout(
            Duration::from_secs(60),
            applied_rx.wait_for(|n| *n >= n_counts),
        )
        .await
        .expect("every count applied within a minute")
        .unwrap();
        stop.cancel();
        task.await.unwrap();
        let q = store.read(|r| r.queue_stats()).unwrap();
        assert_eq!(q.by_state.get("applied"), Some(&(n_counts as i64)), "{q:?}");
        let limit = stats.limit().unwrap();
        let most = most.load(Ordering::SeqCst);
        // It tried more batches, saw calls slow down fourfold whenever two met, and backed
        // off: never near the eight a fixed limit keeps in hand (calls that happen not to
        // meet, while the batches write to the store, let it climb a little at times).
        assert!((2..=4).contains(&most), "{most} calls at once; {limit:?}");
        assert!(limit.decreases >= 1, "{limit:?}");
        assert!(limit.adaptive && limit.max == 8, "{limit:?}");
        assert!(
            limit.baseline_ms.is_some() && limit.recent_ms.is_some(),
            "{limit:?}"
        );
    }

    fn config() -> PushConfig {
        PushConfig {
            concurrency: 1,
            max_calls_per_sec: 100_000.0,
            max_batch: 50,
            retry_min: Duration::from_millis(1),
            retry_max: Duration::from_millis(5),
            probe: Duration::from_millis(50),
            policies: Policies::default(),
        }
    }

    fn quantity(cloud: &Cloud, quant: i64) -> f64 {
        cloud
            .execute(
                Call::new("stock.quant", "read")
                    .ids(&[quant])
                    .arg("fields", json!(["quantity"])),
            )
            .unwrap()[0]["quantity"]
            .as_f64()
            .unwrap()
    }

    #[tokio::test]
    async fn attempts_are_recorded_and_a_count_applied_by_someone_else_waits_for_a_person() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        let data = Dataset::generate(&DatasetSpec::demo());
        let cloud = Cloud::new(SimConfig::default(), &data);
        let q = data
            .quants
            .iter()
            .find(|q| q.lot_id.is_none() && q.quantity > 3.0)
            .unwrap();
        let before = q.quantity;
        let op = Operation::Count(CountOp {
            product_id: q.product_id.0,
            location_id: q.location_id.0,
            lot_name: None,
            counted: before + 3.0,
            expected: before,
        });
        let key = op.causal_key();
        let seq = store
            .append(
                Lane::Background,
                NewEntry {
                    id: None,
                    device: "scanner-1".into(),
                    operator: None,
                    op,
                },
            )
            .await
            .unwrap()
            .seq;
        let odoo = LoseFirstApply {
            cloud: cloud.clone(),
            lost: AtomicBool::new(false),
        };
        let pusher = Pusher::new(
            store.clone(),
            odoo,
            config(),
            1,
            Connectivity::new(store.clone()),
            Arc::new(PushStats::default()),
        );
        pusher.push_key(&key).await.unwrap();
        let attempts = store.read(|r| r.push_attempts(seq)).unwrap();
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        let a = &attempts[0];
        assert_eq!(a.outcome.as_deref(), Some("retry"));
        assert_eq!(
            a.call.as_deref(),
            Some("stock.quant.action_apply_inventory")
        );
        assert_eq!(a.class.as_deref(), Some("ambiguous"));
        assert!(a.ended_at.is_some());
        // "Apply all" in Odoo applies the pending count without our mark.
        cloud
            .execute(
                Call::new("stock.quant", "action_apply_inventory")
                    .ids(&[q.id.0])
                    .context("inventory_name", "Quantity Updated"),
            )
            .unwrap();
        pusher.push_key(&key).await.unwrap();
        assert_eq!(quantity(&cloud, q.id.0), before + 3.0, "counted once");
        let e = store
            .read(|r| r.journal_entry(&seq.to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(e.state, OpState::Conflict);
        let attempts = store.read(|r| r.push_attempts(seq)).unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[1].outcome.as_deref(), Some("conflict"));
        assert_eq!(attempts[1].class.as_deref(), Some("conflict"));
        let conflict = store
            .read(|r| r.conflicts(Some("open"), 10))
            .unwrap()
            .remove(0);
        assert_eq!(conflict.kind, "count_unconfirmed");
        // A person decides Odoo does not hold it: the next attempt applies it.
        resolve(
            &store,
            conflict.id,
            ResolveAction::Retry,
            "recount",
            "manager",
        )
        .await
        .unwrap();
        pusher.push_key(&key).await.unwrap();
        let e = store
            .read(|r| r.journal_entry(&seq.to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(e.state, OpState::Applied);
        assert_eq!(quantity(&cloud, q.id.0), before + 6.0);
        assert_eq!(store.read(|r| r.push_attempts(seq)).unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_attempt_cut_off_by_a_stop_shows_as_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        let seq = store
            .append(
                Lane::Background,
                NewEntry {
                    id: None,
                    device: "scanner-1".into(),
                    operator: None,
                    op: Operation::Count(CountOp {
                        product_id: 1,
                        location_id: 2,
                        lot_name: None,
                        counted: 1.0,
                        expected: 2.0,
                    }),
                },
            )
            .await
            .unwrap()
            .seq;
        store
            .push(PushCmd::Begin { seqs: vec![seq] })
            .await
            .unwrap();
        store.push(PushCmd::Recover).await.unwrap();
        let attempts = store.read(|r| r.push_attempts(seq)).unwrap();
        assert_eq!(attempts[0].outcome.as_deref(), Some("interrupted"));
        assert_eq!(attempts[0].class.as_deref(), Some("ambiguous"));
    }

    #[tokio::test]
    async fn a_re_created_delivery_keeps_its_customer_origin_and_the_managers_note() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        let data = Dataset::generate(&DatasetSpec::demo());
        store
            .apply_mirror(MirrorBatch {
                epoch: None,
                upserts: data.records().collect(),
                deletes: vec![],
            })
            .await
            .unwrap();
        let out_type = data
            .picking_types
            .iter()
            .find(|t| t.code == holdfast_sync::records::PickingCode::Outgoing)
            .unwrap();
        let delivery = data
            .pickings
            .iter()
            .find(|p| p.picking_type_id == out_type.id && p.partner_id.is_some())
            .unwrap();
        let line = data
            .move_lines
            .iter()
            .find(|l| l.picking_id == Some(delivery.id))
            .unwrap();
        let seq = store
            .append(
                Lane::Background,
                NewEntry {
                    id: None,
                    device: "scanner-1".into(),
                    operator: None,
                    op: Operation::Pick(holdfast_sync::ops::PickOp {
                        picking_id: delivery.id.0,
                        move_id: line.move_id.unwrap().0,
                        product_id: line.product_id.0,
                        location_id: line.location_id.0,
                        lot_name: line.lot_name.clone(),
                        package_id: None,
                        quantity: 1.0,
                        view_quantity: line.quantity,
                    }),
                },
            )
            .await
            .unwrap()
            .seq;
        store
            .push(PushCmd::Begin { seqs: vec![seq] })
            .await
            .unwrap();
        store
            .push(PushCmd::Settle {
                seqs: vec![seq],
                settle: Settle::Hold {
                    rejected: false,
                    conflict: NewConflict {
                        kind: "picking_cancelled".into(),
                        policy: "manual".into(),
                        message: "the picking was cancelled in Odoo".into(),
                        edge: Value::Null,
                        cloud: Value::Null,
                    },
                },
                failure: None,
            })
            .await
            .unwrap();
        let conflict = store
            .read(|r| r.conflicts(Some("open"), 10))
            .unwrap()
            .remove(0);
        let spec = recreate_spec(&store, &conflict, "customer still wants it", "Ana")
            .unwrap()
            .unwrap();
        assert_eq!(spec.picking_type_id, out_type.id.0, "the original's type");
        assert_eq!(spec.partner_id, delivery.partner_id.map(|p| p.0));
        let origin = spec.origin.clone().unwrap();
        assert!(origin.contains(&delivery.name), "{origin}");
        if let Some(o) = &delivery.origin {
            assert!(origin.starts_with(o.as_str()), "{origin}");
        }
        let note = spec.note.clone().unwrap();
        assert!(
            note.contains(&delivery.name) && note.contains("Ana"),
            "{note}"
        );
        assert!(note.ends_with("customer still wants it"), "{note}");
    }
}
