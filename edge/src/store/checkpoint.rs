//! The WAL checkpointer: copies committed pages from the WAL into the database file on its
//! own thread and connection, so the writer never does it inside a commit.
//!
//! SQLite's automatic checkpoint runs in the connection that commits, while every caller of
//! that batch waits: with thousands of pages in the WAL that is tens of milliseconds of stall
//! for the floor. The writer turns it off (`wal_autocheckpoint=0`) and this thread runs
//! PASSIVE checkpoints (which neither block nor wait for the writer or readers). Under steady
//! writes such a checkpoint never catches up with the newest frames, so the WAL could not
//! restart from its beginning; when it passes [`WAL_RESTART_FRAMES`] the writer finishes the
//! (by then small) remainder between two batches (see `writer`). If this thread ever stops,
//! nothing is lost: the writer's checkpoints still bound the WAL.
//!
//! When: the writer nudges this thread after each commit, and a checkpoint follows at most
//! [`MIN_GAP`] after the one before. Small and often is what the floor's latency wants: a
//! checkpoint ends with an fsync of the database file, and a commit's own fsync of the WAL
//! waits behind it on the same disk. Measured on the floor benchmark (200 handhelds, 2
//! cores), checkpoints every 250 ms gave a p99 of 8.6 ms at 1,000 scans/s and 2.5 ms at 200;
//! every 10 ms, 2.2 and 2.0; every 1 s, 82 and 3.5. With no commits the thread looks once
//! every [`IDLE_INTERVAL`] (another process, such as the command line, may have written).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;

use super::{StoreError, WriterStats};

/// WAL size (frames, a page each: 1 KiB in a new store, 4 KiB in older ones) past which the
/// writer completes a checkpoint itself: rare, since the checkpointer catches up fully in any
/// lull, and the WAL then restarts on its own.
pub(super) const WAL_RESTART_FRAMES: i64 = 16_384;

/// The least time from one checkpoint to the next, however often commits land.
const MIN_GAP: Duration = Duration::from_millis(10);

/// How often the checkpointer looks at the WAL when nothing nudges it.
const IDLE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Signal {
    Committed,
    Stop,
}

/// The line to the checkpointer thread, held by the writer and the store.
#[derive(Clone, Debug)]
pub(super) struct Nudge(mpsc::SyncSender<Signal>);

impl Nudge {
    /// A commit landed: a checkpoint soon. Never blocks; nudges not taken yet coalesce.
    pub(super) fn committed(&self) {
        let _ = self.0.try_send(Signal::Committed);
    }

    /// One last checkpoint, then the thread ends (as it does once every `Nudge` is gone).
    pub(super) fn stop(&self) {
        let _ = self.0.send(Signal::Stop);
    }
}

/// Starts the checkpointer.
pub(super) fn spawn(
    path: &Path,
    busy_timeout: Duration,
    stats: Arc<WriterStats>,
) -> Result<(Nudge, std::thread::JoinHandle<()>), StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || run_checkpointer(conn, rx, stats))
        .map(|handle| (Nudge(tx), handle))
        .map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: format!("cannot start the checkpoint thread: {e}"),
        })
}

fn run_checkpointer(conn: Connection, rx: mpsc::Receiver<Signal>, stats: Arc<WriterStats>) {
    let _span = tracing::info_span!("store_checkpoint").entered();
    loop {
        let stopping = match rx.recv_timeout(IDLE_INTERVAL) {
            Ok(Signal::Committed) | Err(mpsc::RecvTimeoutError::Timeout) => false,
            Ok(Signal::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        // (busy, frames in the WAL, frames checkpointed)
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match result {
            Ok((_, log, done)) => {
                stats.wal_frames.store(log, Ordering::Relaxed);
                if log > 0 {
                    tracing::trace!(n_frames = log, n_checkpointed = done, "checkpoint");
                }
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
        }
        if stopping {
            return;
        }
        // Commits meanwhile leave one nudge waiting: the next checkpoint takes them all.
        std::thread::sleep(MIN_GAP);
    }
}
