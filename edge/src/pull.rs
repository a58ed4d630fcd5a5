//! The pull: refreshing the mirror from Odoo through the store's writer.
//!
//! Every pull takes an epoch first (see the store's rebase rules), then reads model by model,
//! parents first, in keyset pages by id; each page is one transaction, so memory stays
//! bounded and a pull that fails half-way leaves a consistent mirror. A model's cursor (the
//! newest `write_date` seen) advances only after all its pages are committed.
//!
//! - **Full**: every record in scope; ids the mirror holds that Odoo no longer returns are
//!   deleted; each model's snapshot is declared complete so acknowledged effects fold. An
//!   interrupted full pull resumes after the last page it committed.
//! - **Incremental**: records changed since the cursor minus a safety overlap (pickings also
//!   when their moves changed); deletions of pickings, moves and move lines by comparing id
//!   sets; quants also by their own `write_date`, plus a full re-read of a few locations per
//!   pull in turn, because Odoo merges and deletes quants in SQL without touching
//!   `write_date`.
//!
//! The [`run_pull`] task schedules them: a full pull at start when none was done within
//! `sync.full_pull_hours`, then incremental pulls every `sync.pull_interval_secs`, and one at
//! once when a manager asks ([`PullNow`], the console's "Pull now"). Until the
//! push and its probes exist, the pull's outcome sets the connectivity mode shown in status.
//!
//! A pull does not start while the push drains a backlog of [`DRAIN_BUSY`] entries or more
//! (the link just came back after an outage): both at once double Odoo's load at the moment
//! it is busiest. It waits until the backlog falls below that, and never longer than
//! [`DRAIN_YIELD_MAX`]: the floor needs Odoo's changes too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use holdfast_sync::odoo::OdooClient;
use holdfast_sync::pull::{PageQuery, Scope, read_page, scope_ids, with_overlap};
use holdfast_sync::records::Model;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{OdooApi, OdooConfig, SyncConfig};
use crate::connectivity::{Connectivity, Event};
use crate::store::{Epoch, MirrorBatch, Store, now_ms};

/// Records per page.
pub const PAGE: usize = 2_000;

/// Safety overlap subtracted from cursors.
const OVERLAP: Duration = Duration::from_secs(120);

/// Locations whose quants an incremental pull re-reads in full.
const LOCATIONS_PER_PULL: usize = 8;

/// Entries waiting to be pushed from which the drain has Odoo's attention first.
pub const DRAIN_BUSY: i64 = 50;
/// The longest a pull waits for a drain.
pub const DRAIN_YIELD_MAX: Duration = Duration::from_secs(10);
/// How often a waiting pull looks at the backlog again (the push reports it every second).
const DRAIN_LOOK: Duration = Duration::from_millis(500);

/// Waits while the push drains a backlog (see the module docs), at most
/// [`DRAIN_YIELD_MAX`]; answers how long it waited.
pub async fn yield_to_drain(connectivity: &Connectivity, stop: &CancellationToken) -> Duration {
    let started = tokio::time::Instant::now();
    let deadline = started + DRAIN_YIELD_MAX;
    if connectivity.draining(DRAIN_BUSY) {
        tracing::info!(
            wait_at_most = ?DRAIN_YIELD_MAX,
            "the push is draining a backlog; the pull waits for it"
        );
    }
    while connectivity.draining(DRAIN_BUSY) {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(deadline.min(now + DRAIN_LOOK)) => {}
        }
    }
    started.elapsed()
}

/// Full or incremental.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullKind {
    Full,
    Incremental,
}

/// What a pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PullReport {
    pub records: u64,
    pub deleted: u64,
    pub held_back: u64,
    pub pages: u64,
    /// Cloud-side changes recorded on pickings the floor owns.
    pub owned_changes: u64,
    /// Quants re-read by the per-location reconciliation (not counted in `records`).
    pub reconciled: u64,
    /// Records read again inside the overlap window but unchanged (not written).
    pub unchanged: u64,
    /// Stopped early by shutdown; cursors of unfinished models were not advanced.
    pub cancelled: bool,
}

/// The pull's progress, shown in status.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PullProgress {
    pub running: Option<PullKind>,
    pub model: Option<&'static str>,
    pub records: u64,
    pub started_at: Option<i64>,
    pub last_finished_at: Option<i64>,
    pub last_report: Option<PullReport>,
    pub last_error: Option<String>,
    /// When the last pull (or connection) failed.
    pub last_error_at: Option<i64>,
    /// When the last pull succeeded: the mirror's age in status.
    pub last_ok_at: Option<i64>,
    /// Pulls (or connections) failed since the last success.
    pub failures_in_row: u32,
    /// Features off because the connected Odoo lacks an optional model or field (e.g.
    /// `packagings (odoo has neither ...)`), as the client's model map decided at connect.
    pub degraded_features: Vec<String>,
    /// The connected Odoo's version as it reports it (e.g. `18.0-20251101`), once connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub odoo_version: Option<String>,
}

/// How to write a run of pages.
struct PageRun<'a> {
    epoch: Epoch,
    /// Record each committed page as the resume point (full pulls).
    track_resume: bool,
    /// (id, write_date) pairs already pulled: read again, not written again.
    skip: &'a HashSet<(i64, String)>,
}

/// What a run of pages saw: ids, the newest write_date, and every (id, write_date).
type PagesRead = (HashSet<i64>, Option<String>, Vec<(i64, String)>);

/// Shared handle to the progress.
pub type ProgressHandle = Arc<Mutex<PullProgress>>;

/// Pulls one site's scope from one Odoo into one store.
#[derive(Debug)]
pub struct Puller {
    store: Store,
    client: OdooClient,
    scope: Scope,
    progress: ProgressHandle,
    /// Where the next quant reconciliation starts in the location list.
    next_location: usize,
}

/// Records a failed pull (or connection) in the progress shown by status.
fn failed(p: &mut PullProgress, e: &anyhow::Error) {
    p.last_error = Some(format!("{e:#}"));
    p.last_error_at = Some(now_ms());
    p.failures_in_row = p.failures_in_row.saturating_add(1);
}

fn set_progress(progress: &ProgressHandle, f: impl FnOnce(&mut PullProgress)) {
    let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut p);
}

impl Puller {
    pub fn new(store: Store, client: OdooClient, scope: Scope, progress: ProgressHandle) -> Self {
        let degraded = client.models().degraded_features();
        let version = client.version().raw.clone();
        set_progress(&progress, |p| {
            p.degraded_features = degraded;
            p.odoo_version = Some(version);
        });
        Puller {
            store,
            client,
            scope,
            progress,
            next_location: 0,
        }
    }

    /// Runs one pull; `stop` ends it between pages.
    pub async fn pull(
        &mut self,
        kind: PullKind,
        stop: &CancellationToken,
    ) -> anyhow::Result<PullReport> {
        let started = Instant::now();
        set_progress(&self.progress, |p| {
            p.running = Some(kind);
            p.records = 0;
            p.started_at = Some(now_ms());
        });
        let result = self.pull_models(kind, stop).await;
        set_progress(&self.progress, |p| {
            p.running = None;
            p.model = None;
            p.last_finished_at = Some(now_ms());
            match &result {
                Ok(report) => {
                    p.last_report = Some(report.clone());
                    p.last_error = None;
                    p.last_ok_at = p.last_finished_at;
                    p.failures_in_row = 0;
                }
                Err(e) => failed(p, e),
            }
        });
        if let Ok(report) = &result {
            tracing::info!(
                ?kind,
                n_records = report.records,
                n_deleted = report.deleted,
                n_held_back = report.held_back,
                n_owned_changes = report.owned_changes,
                secs = started.elapsed().as_secs_f64(),
                "pull done"
            );
        }
        result
    }

    async fn pull_models(
        &mut self,
        kind: PullKind,
        stop: &CancellationToken,
    ) -> anyhow::Result<PullReport> {
        let epoch = self.store.begin_pull().await?;
        let mut report = PullReport::default();
        for &model in Model::ALL {
            if stop.is_cancelled() {
                report.cancelled = true;
                return Ok(report);
            }
            // The server's own model name (19 reads packagings from product.uom).
            let name = self
                .client
                .models()
                .odoo_name(model)
                .unwrap_or(model.odoo_name());
            set_progress(&self.progress, |p| p.model = Some(name));
            let cursor = self.store.read(|r| r.cursor(model))?;
            // A model never pulled in full is pulled in full, whatever was asked.
            let full = kind == PullKind::Full || cursor.full_at.is_none();
            let since = if full {
                None
            } else {
                cursor
                    .write_date
                    .as_deref()
                    .map(|w| with_overlap(w, OVERLAP))
            };
            // A full pull interrupted earlier resumes after its last committed page; its
            // snapshot then counts from the first attempt's epoch.
            let (after, snapshot_epoch) = match (full, cursor.resume_after) {
                (true, Some(after)) => (
                    after,
                    Epoch(cursor.resume_epoch.unwrap_or(epoch.0).min(epoch.0)),
                ),
                _ => (0, epoch),
            };
            let query = PageQuery {
                after,
                since,
                limit: PAGE,
                ..PageQuery::default()
            };
            // Records already pulled with the same write_date are not changes.
            let skip: HashSet<(i64, String)> = if full {
                HashSet::new()
            } else {
                cursor.window.iter().cloned().collect()
            };
            let Some((_, newest, stamps)) = self
                .pages(
                    model,
                    query,
                    &PageRun {
                        epoch,
                        track_resume: full,
                        skip: &skip,
                    },
                    &mut report,
                    stop,
                )
                .await?
            else {
                report.cancelled = true;
                return Ok(report);
            };
            // Deletions are invisible to write_date: compare id sets (pickings, moves and
            // lines on every pull, everything on full ones).
            if full || matches!(model, Model::Picking | Model::Move | Model::MoveLine) {
                let present: HashSet<i64> = scope_ids(&self.client, &self.scope, model)
                    .await?
                    .into_iter()
                    .collect();
                let mirrored = self.store.read(|r| r.mirror_ids(model))?;
                self.delete_missing(model, mirrored, &present, epoch, &mut report)
                    .await?;
            }
            if full {
                self.store.complete_snapshot(snapshot_epoch, model).await?;
                self.store.set_resume(model, None).await?;
            } else if model == Model::Quant
                && !self.reconcile_quants(epoch, &mut report, stop).await?
            {
                report.cancelled = true;
                return Ok(report);
            }
            // Rows held back by earlier pulls whose entries have settled since: their stamps
            // are in the window (or behind the cursor), so only reading them by id brings them.
            if !self.reread_settled(model, epoch, &mut report, stop).await? {
                report.cancelled = true;
                return Ok(report);
            }
            let cursor_after = match (newest, cursor.write_date) {
                (Some(n), Some(c)) => Some(n.max(c)),
                (n, c) => n.or(c),
            };
            let window = match &cursor_after {
                Some(stamp) => {
                    let floor = with_overlap(stamp, OVERLAP);
                    let mut w: Vec<(i64, String)> = cursor
                        .window
                        .into_iter()
                        .chain(stamps)
                        .filter(|(_, wd)| *wd >= floor)
                        .collect();
                    w.sort();
                    w.dedup();
                    w
                }
                None => Vec::new(),
            };
            self.store
                .set_cursor(model, cursor_after, window, full)
                .await?;
        }
        Ok(report)
    }

    /// Reads and writes every page of a query; `None` when stopped.
    async fn pages(
        &self,
        model: Model,
        mut query: PageQuery,
        run: &PageRun<'_>,
        report: &mut PullReport,
        stop: &CancellationToken,
    ) -> anyhow::Result<Option<PagesRead>> {
        let mut seen = HashSet::new();
        let mut newest: Option<String> = None;
        let mut stamps: Vec<(i64, String)> = Vec::new();
        loop {
            if stop.is_cancelled() {
                return Ok(None);
            }
            let started = Instant::now();
            let page = read_page(&self.client, &self.scope, model, &query).await;
            crate::metrics::pull_call(
                model.odoo_name(),
                match &page {
                    Ok(_) => "ok",
                    Err(holdfast_sync::pull::PullError::Odoo { source, .. }) => {
                        crate::metrics::error_label(source)
                    }
                    // Odoo answered; its records did not map.
                    Err(_) => "permanent",
                },
                started.elapsed(),
            );
            let page = page?;
            let Some(last) = page.last_id else {
                break;
            };
            query.after = last;
            let fetched = page.fetched;
            if let Some(w) = page.max_write_date
                && newest.as_deref().is_none_or(|n| w.as_str() > n)
            {
                newest = Some(w);
            }
            seen.extend(page.records.iter().map(|r| r.id()));
            let n = page.records.len();
            let mut upserts = Vec::with_capacity(n);
            for (record, stamp) in page.records.into_iter().zip(page.stamps) {
                if let Some(stamp) = stamp {
                    let key = (record.id(), window_key(&stamp, &record));
                    if run.skip.contains(&key) {
                        report.unchanged += 1;
                        stamps.push(key);
                        continue;
                    }
                    stamps.push(key);
                }
                upserts.push(record);
            }
            let outcome = self
                .store
                .apply_mirror(MirrorBatch {
                    epoch: Some(run.epoch),
                    upserts,
                    deletes: vec![],
                })
                .await
                .with_context(|| format!("writing a page of {}", model.odoo_name()))?;
            report.records += outcome.upserted;
            report.held_back += outcome.held_back;
            report.owned_changes += outcome.changes;
            report.pages += 1;
            if run.track_resume {
                self.store
                    .set_resume(model, Some((query.after, run.epoch)))
                    .await?;
            }
            // Only stamps inside the overlap window of the newest one matter; keep memory
            // bounded on large pulls.
            if let Some(n) = &newest {
                let floor = with_overlap(n, OVERLAP);
                stamps.retain(|(_, wd)| *wd >= floor);
            }
            set_progress(&self.progress, |p| p.records += n as u64);
            if fetched < query.limit {
                break;
            }
        }
        Ok(Some((seen, newest, stamps)))
    }

    async fn delete_missing(
        &self,
        model: Model,
        mirrored: Vec<i64>,
        present: &HashSet<i64>,
        epoch: Epoch,
        report: &mut PullReport,
    ) -> anyhow::Result<()> {
        let gone: Vec<(Model, i64)> = mirrored
            .into_iter()
            .filter(|id| !present.contains(id))
            .map(|id| (model, id))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let outcome = self
            .store
            .apply_mirror(MirrorBatch {
                epoch: Some(epoch),
                upserts: vec![],
                deletes: gone,
            })
            .await?;
        report.deleted += outcome.deleted;
        report.held_back += outcome.held_back;
        report.owned_changes += outcome.changes;
        Ok(())
    }

    /// Reads again, by id, the rows of `model` an earlier pull held back and that would be
    /// written now; ids Odoo no longer returns are deleted. `false` when stopped.
    async fn reread_settled(
        &self,
        model: Model,
        epoch: Epoch,
        report: &mut PullReport,
        stop: &CancellationToken,
    ) -> anyhow::Result<bool> {
        /// Ids per `id in` domain: keeps each request small.
        const IDS_PER_QUERY: usize = 500;
        let settled = self.store.read(|r| r.settled_held_back(model, epoch))?;
        for ids in settled.chunks(IDS_PER_QUERY) {
            let term = json!(["id", "in", ids]);
            let Some(seen) = self.read_again(model, term, epoch, report, stop).await? else {
                return Ok(false);
            };
            self.delete_missing(model, ids.to_vec(), &seen, epoch, report)
                .await?;
        }
        Ok(true)
    }

    /// Reads every record matching `term` again and writes it (nothing skipped, no resume
    /// point): the ids seen, or `None` when stopped.
    async fn read_again(
        &self,
        model: Model,
        term: serde_json::Value,
        epoch: Epoch,
        report: &mut PullReport,
        stop: &CancellationToken,
    ) -> anyhow::Result<Option<HashSet<i64>>> {
        let query = PageQuery {
            extra: vec![term],
            limit: PAGE,
            ..PageQuery::default()
        };
        let run = PageRun {
            epoch,
            track_resume: false,
            skip: &HashSet::new(),
        };
        Ok(self
            .pages(model, query, &run, report, stop)
            .await?
            .map(|(seen, _, _)| seen))
    }

    /// Re-reads every quant of the next few locations and deletes the mirror's extras.
    async fn reconcile_quants(
        &mut self,
        epoch: Epoch,
        report: &mut PullReport,
        stop: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let locations = self
            .store
            .read(|r| r.internal_locations(self.scope.warehouse_id))?;
        if locations.is_empty() {
            return Ok(true);
        }
        let start = self.next_location % locations.len();
        let slice: Vec<i64> = locations
            .iter()
            .cycle()
            .skip(start)
            .take(LOCATIONS_PER_PULL.min(locations.len()))
            .copied()
            .collect();
        self.next_location = start + slice.len();
        let before = report.records;
        let term = json!(["location_id", "in", slice]);
        let Some(seen) = self
            .read_again(Model::Quant, term, epoch, report, stop)
            .await?
        else {
            return Ok(false);
        };
        report.reconciled += report.records - before;
        report.records = before;
        let mut mirrored = Vec::new();
        for location in &slice {
            mirrored.extend(self.store.read(|r| r.quant_ids_at(*location))?);
        }
        self.delete_missing(Model::Quant, mirrored, &seen, epoch, report)
            .await?;
        Ok(true)
    }
}

/// A record's entry in the overlap window: its `write_date` (first, so the window is cut by
/// comparing strings) and a digest of what was read. `write_date` reads to the second and is
/// the transaction's start: a record changed again in the same second, or by a transaction
/// that started in that second and committed after the read, comes back with the same stamp
/// but other values, and must be written, not skipped as already pulled. (The digest is
/// Rust's default hasher: it may change with the toolchain, which costs one rewrite of the
/// window's records after an upgrade, nothing more.)
fn window_key(stamp: &str, record: &holdfast_sync::records::Record) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{record:?}").hash(&mut h);
    format!("{stamp} {:016x}", h.finish())
}

/// The wire client's settings for the configured Odoo.
pub fn client_config(odoo: &OdooConfig) -> holdfast_sync::odoo::ClientConfig {
    let mut c = holdfast_sync::odoo::ClientConfig::new(
        &odoo.url,
        &odoo.database,
        &odoo.login,
        odoo.api_key.expose(),
        odoo.company_id,
    );
    c.api = match odoo.api {
        OdooApi::Auto => holdfast_sync::odoo::ApiChoice::Auto,
        OdooApi::JsonRpc => holdfast_sync::odoo::ApiChoice::JsonRpc,
        OdooApi::Json2 => holdfast_sync::odoo::ApiChoice::Json2,
    };
    c.timeout = odoo.timeout;
    c.probe_timeout = odoo.probe_timeout;
    c.allow_unverified_version = odoo.allow_unverified_version;
    c.ca_pem = odoo.ca_pem.clone();
    c.identity_pem = odoo
        .client_identity_pem
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec());
    c
}

/// Connects to the configured Odoo.
pub async fn connect(
    store: &Store,
    odoo: &OdooConfig,
    progress: ProgressHandle,
) -> anyhow::Result<Puller> {
    let client = OdooClient::connect(client_config(odoo))
        .await
        .with_context(|| format!("connecting to Odoo at {}", odoo.url))?;
    tracing::info!(
        version = %client.version().raw,
        protocol = ?client.protocol(),
        "connected to Odoo"
    );
    let scope = Scope {
        company_id: odoo.company_id,
        warehouse_id: odoo.warehouse_id,
    };
    Ok(Puller::new(store.clone(), client, scope, progress))
}

/// A request to pull now rather than at the next tick (the console's "Pull now"). The
/// request is kept until the pull task takes it, so one made while a pull runs starts
/// another right after it.
#[derive(Debug, Default)]
pub struct PullNow {
    wake: tokio::sync::Notify,
    full: std::sync::atomic::AtomicBool,
}

/// Shared handle to the pull task's [`PullNow`].
pub type PullNowHandle = Arc<PullNow>;

impl PullNow {
    /// Asks the pull task for a pull now: a full one when `full`, else whatever is due
    /// (incremental unless a full pull is due anyway).
    pub fn request(&self, full: bool) {
        if full {
            self.full.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.wake.notify_one();
    }

    fn take_full(&self) -> bool {
        self.full.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

/// Whether a full pull is due: never done, or older than the configured period.
fn full_due(store: &Store, every: Duration) -> anyhow::Result<bool> {
    let cursor = store.read(|r| r.cursor(Model::Quant))?;
    Ok(cursor
        .full_at
        .is_none_or(|at| now_ms() - at >= every.as_millis() as i64))
}

/// The pull task: full when due, incremental in between, and at once when `now` asks; a
/// failed pull is logged and retried at the next tick (the floor keeps working on the mirror
/// it has).
pub async fn run_pull(
    store: Store,
    odoo: OdooConfig,
    sync: SyncConfig,
    progress: ProgressHandle,
    connectivity: Connectivity,
    now: PullNowHandle,
    stop: CancellationToken,
) {
    let mut puller: Option<Puller> = None;
    let mut tick = tokio::time::interval(sync.pull_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            _ = now.wake.notified() => {}
        }
        yield_to_drain(&connectivity, &stop).await;
        if stop.is_cancelled() {
            return;
        }
        let started = std::time::Instant::now();
        if puller.is_none() {
            match connect(&store, &odoo, progress.clone()).await {
                Ok(p) => puller = Some(p),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot connect to Odoo; retrying at the next pull");
                    set_progress(&progress, |p| failed(p, &e));
                    connectivity
                        .observe(event_of(Err(&e), started.elapsed()))
                        .await;
                    continue;
                }
            }
        }
        let Some(p) = puller.as_mut() else { continue };
        let asked_full = now.take_full();
        let kind = match full_due(&store, sync.full_pull_every) {
            _ if asked_full => PullKind::Full,
            Ok(true) => PullKind::Full,
            Ok(false) => PullKind::Incremental,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read pull cursors");
                continue;
            }
        };
        match p.pull(kind, &stop).await {
            Ok(_) => {
                connectivity
                    .observe(event_of(Ok(()), started.elapsed()))
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), ?kind, "pull failed; retrying at the next pull");
                connectivity
                    .observe(event_of(Err(&e), started.elapsed()))
                    .await;
                // Reconnect next time: credentials or the server may have changed.
                puller = None;
            }
        }
    }
}

/// What a pull's outcome says about the link: answered, not reached (offline material), or
/// answered with an error.
fn event_of(outcome: Result<(), &anyhow::Error>, took: Duration) -> Event {
    let Err(e) = outcome else {
        return Event::Ok {
            // A pull's length is not a round trip: count it as a quick answer.
            latency: took.min(Duration::from_millis(100)),
        };
    };
    match e
        .chain()
        .find_map(|c| c.downcast_ref::<holdfast_sync::odoo::OdooError>())
    {
        Some(holdfast_sync::odoo::OdooError::Unreachable { .. })
        | Some(holdfast_sync::odoo::OdooError::Timeout(_))
        | Some(holdfast_sync::odoo::OdooError::Lost(_)) => Event::Network,
        _ => Event::Error,
    }
}

#[cfg(test)]
mod tests {
    use holdfast_sync::odoo::OdooError;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pull_waits_for_a_busy_drain_but_not_for_long() {
        let stop = CancellationToken::new();
        let connectivity = Connectivity::with_limits(None, Default::default());
        // Nothing to drain: the pull goes at once.
        connectivity.observe(Event::Backlog(3)).await;
        assert_eq!(yield_to_drain(&connectivity, &stop).await, Duration::ZERO);
        // A backlog that never drains: the pull waits its bound, not a moment more.
        connectivity.observe(Event::Backlog(500)).await;
        assert_eq!(yield_to_drain(&connectivity, &stop).await, DRAIN_YIELD_MAX);
        // A backlog that drains in 3 s: the pull goes within a look of it.
        let push = connectivity.clone();
        let drained = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            push.observe(Event::Backlog(DRAIN_BUSY - 1)).await;
        });
        let waited = yield_to_drain(&connectivity, &stop).await;
        drained.await.expect("the drain task ran");
        assert!(
            waited >= Duration::from_secs(3) && waited <= Duration::from_secs(3) + DRAIN_LOOK,
            "waited {waited:?}"
        );
        // A paused queue drains nothing: no reason to wait.
        connectivity.observe(Event::Backlog(500)).await;
        connectivity
            .observe(Event::Paused(Some("credentials refused".into())))
            .await;
        assert_eq!(yield_to_drain(&connectivity, &stop).await, Duration::ZERO);
        // A stop ends the wait.
        connectivity.observe(Event::Paused(None)).await;
        stop.cancel();
        assert_eq!(yield_to_drain(&connectivity, &stop).await, Duration::ZERO);
    }

    #[test]
    fn pull_outcomes_feed_the_connectivity_mode() {
        let e = |inner: OdooError| anyhow::Error::new(inner).context("pulling");
        let took = Duration::from_millis(5);
        assert!(matches!(event_of(Ok(()), took), Event::Ok { .. }));
        let unreachable = e(OdooError::Unreachable {
            url: "u".into(),
            reason: "refused".into(),
        });
        assert_eq!(event_of(Err(&unreachable), took), Event::Network);
        assert_eq!(
            event_of(Err(&e(OdooError::Timeout(Duration::from_secs(1)))), took),
            Event::Network
        );
        assert_eq!(
            event_of(
                Err(&e(OdooError::Busy {
                    status: 429,
                    retry_after: None
                })),
                took
            ),
            Event::Error
        );
        assert_eq!(
            event_of(Err(&anyhow::anyhow!("disk full")), took),
            Event::Error
        );
    }
}
