//! The backlog recorder: once a minute (and once at start, so a fresh appliance has a point
//! to show) it reads the queue figures status shows and writes them to the store's backlog
//! history, pruning what is older than [`KEEP`] in the same write. The console's backlog
//! page draws its chart from these rows.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{BacklogCmd, BacklogSample, Store, StoreError, now_ms};

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(60);

/// How long samples are kept: the chart shows 24 h; a day more is kept so yesterday's
/// shift can be compared after a restart.
pub const KEEP: Duration = Duration::from_secs(48 * 3600);

/// The figures of the queue now, as status counts them (`Reader::queue_stats`).
pub fn sample_now(store: &Store, now_ms: i64) -> Result<BacklogSample, StoreError> {
    let queue = store.read(|r| r.queue_stats())?;
    let n = |state: &str| queue.by_state.get(state).copied().unwrap_or(0);
    Ok(BacklogSample {
        minute: now_ms.div_euclid(60_000),
        pending: n("pending"),
        in_flight: n("in_flight"),
        conflicts: n("conflict"),
        oldest_pending_age_s: queue
            .oldest_open_created_at
            .map(|t| (now_ms - t).max(0) / 1000),
        applied_total: n("applied"),
    })
}

/// Takes one sample at `now_ms` and prunes what left [`KEEP`]; answers the sample.
pub async fn record(store: &Store, now_ms: i64) -> Result<BacklogSample, StoreError> {
    let sample = sample_now(store, now_ms)?;
    let keep_from = (now_ms - KEEP.as_millis() as i64).div_euclid(60_000);
    store
        .backlog(BacklogCmd::Record {
            sample: sample.clone(),
            keep_from,
        })
        .await?;
    Ok(sample)
}

/// The recorder task: a sample at once, then every `every`. A failed sample is logged and
/// the next one tried (a gap in a chart is no reason to stop the appliance).
pub async fn run_recorder(store: Store, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = record(&store, now_ms()).await {
            tracing::warn!(error = %e, "backlog sample not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn the_recorder_samples_at_start_and_stops_with_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        let stop = CancellationToken::new();
        // An hour's interval: the only sample within the test is the one taken at start.
        let task = tokio::spawn(run_recorder(
            store.clone(),
            Duration::from_secs(3600),
            stop.clone(),
        ));
        let started = std::time::Instant::now();
        let rows = loop {
            let rows = store.read(|r| r.backlog_since(0)).unwrap();
            if !rows.is_empty() {
                break rows;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no sample at start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].pending, rows[0].oldest_pending_age_s), (0, None));
        assert!(now_ms() / 60_000 - rows[0].minute <= 1, "{rows:?}");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the recorder stops with its token")
            .unwrap();
        store.shutdown().await.unwrap();
    }
}
