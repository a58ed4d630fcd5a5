//! The backlog's history (migration 10): one sample a minute of the figures status shows
//! (queue depth, oldest open entry, the journal's applied total), for the console's chart.
//! A sample and the pruning of old ones are one write, so the table never outgrows its
//! window.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::StoreError;
use super::read::Reader;

/// One minute's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BacklogSample {
    /// Unix time in minutes (ms / 60,000).
    pub minute: i64,
    pub pending: i64,
    pub in_flight: i64,
    /// Journal entries in conflict.
    pub conflicts: i64,
    /// Age of the oldest entry not yet applied or resolved, as status computes it.
    pub oldest_pending_age_s: Option<i64>,
    /// Journal entries applied in Odoo so far: the drain is the difference between samples.
    pub applied_total: i64,
}

/// Writes for the backlog's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BacklogCmd {
    /// Writes `sample` (a second sample in the same minute replaces the first) and deletes
    /// samples older than `keep_from` (a minute); answers how many were deleted.
    Record {
        sample: BacklogSample,
        keep_from: i64,
    },
}

pub(super) fn command(conn: &Connection, cmd: &BacklogCmd) -> Result<i64, StoreError> {
    match cmd {
        BacklogCmd::Record { sample, keep_from } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO backlog_sample
                    (minute, pending, in_flight, conflicts, oldest_pending_age_s, applied_total)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                sample.minute,
                sample.pending,
                sample.in_flight,
                sample.conflicts,
                sample.oldest_pending_age_s,
                sample.applied_total
            ])?;
            Ok(conn
                .prepare_cached("DELETE FROM backlog_sample WHERE minute < ?1")?
                .execute([keep_from])? as i64)
        }
    }
}

impl Reader<'_> {
    /// Samples from minute `from` on, oldest first.
    pub fn backlog_since(&self, from: i64) -> Result<Vec<BacklogSample>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT minute, pending, in_flight, conflicts, oldest_pending_age_s, applied_total
             FROM backlog_sample WHERE minute >= ?1 ORDER BY minute",
        )?;
        let rows = stmt.query_map([from], |r| {
            Ok(BacklogSample {
                minute: r.get(0)?,
                pending: r.get(1)?,
                in_flight: r.get(2)?,
                conflicts: r.get(3)?,
                oldest_pending_age_s: r.get(4)?,
                applied_total: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{Store, StoreOptions};

    fn sample(minute: i64, pending: i64) -> BacklogSample {
        BacklogSample {
            minute,
            pending,
            applied_total: minute,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_sample_prunes_what_left_the_window_and_replaces_its_minute() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        for minute in 100..110 {
            let pruned = store
                .backlog(BacklogCmd::Record {
                    sample: sample(minute, minute - 100),
                    keep_from: 0,
                })
                .await
                .unwrap();
            assert_eq!(pruned, 0);
        }
        // The same minute again replaces its row; everything before minute 105 goes.
        let pruned = store
            .backlog(BacklogCmd::Record {
                sample: sample(109, 42),
                keep_from: 105,
            })
            .await
            .unwrap();
        assert_eq!(pruned, 5);
        let rows = store.read(|r| r.backlog_since(0)).unwrap();
        let minutes: Vec<i64> = rows.iter().map(|s| s.minute).collect();
        assert_eq!(minutes, vec![105, 106, 107, 108, 109]);
        assert_eq!(rows.last().unwrap().pending, 42);
        assert_eq!(store.read(|r| r.backlog_since(108)).unwrap().len(), 2);
        // A negative count is refused by the schema, not stored.
        let refused = store
            .backlog(BacklogCmd::Record {
                sample: sample(110, -1),
                keep_from: 105,
            })
            .await;
        assert!(refused.is_err());
        store.shutdown().await.unwrap();
    }
}
