//! The WAL checkpointer: copies committed pages from the WAL into the database file on its
//! own thread and connection, so the writer never does it inside a commit.
//!
//! SQLite's automatic checkpoint runs in the connection that commits, while every caller of
//! that batch waits: with thousands of pages in the WAL that is tens of milliseconds of stall
//! for the floor. The writer turns it off (`wal_autocheckpoint=0`) and this thread runs
//! PASSIVE checkpoints (which neither block nor wait for the writer or readers) a few times a
//! second. Under steady writes such a checkpoint never catches up with the newest frames, so
//! the WAL could not restart from its beginning; when it passes [`WAL_RESTART_FRAMES`] the
//! writer finishes the (by then small) remainder between two batches (see `writer`). If this
//! thread ever stops, nothing is lost: the writer's checkpoints still bound the WAL.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;

use super::{StoreError, WriterStats};

/// WAL size (frames, ~4 KiB each) past which the writer completes a checkpoint itself: rare,
/// since the checkpointer catches up fully in any lull, and the WAL then restarts on its own.
pub(super) const WAL_RESTART_FRAMES: i64 = 16_384;

/// How often the checkpointer looks at the WAL.
const INTERVAL: Duration = Duration::from_millis(250);

/// Starts the checkpointer; it stops when `stop_rx`'s sender is used or dropped.
pub(super) fn spawn(
    path: &Path,
    busy_timeout: Duration,
    stop_rx: mpsc::Receiver<()>,
    stats: Arc<WriterStats>,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || run_checkpointer(conn, stop_rx, stats))
        .map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: format!("cannot start the checkpoint thread: {e}"),
        })
}

fn run_checkpointer(conn: Connection, stop_rx: mpsc::Receiver<()>, stats: Arc<WriterStats>) {
    let _span = tracing::info_span!("store_checkpoint").entered();
    loop {
        let stopping = !matches!(
            stop_rx.recv_timeout(INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
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
    }
}
