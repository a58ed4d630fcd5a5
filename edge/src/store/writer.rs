//! The writer thread: the only owner of the read-write connection.
//!
//! It waits for a command on either lane, then takes whatever else is queued (device lane
//! first, at least one background command per batch so sync is never starved), runs the
//! batch in one `BEGIN IMMEDIATE` transaction with a savepoint per command, commits, and only
//! then answers every caller. If the commit fails, every caller in the batch gets the error:
//! nothing is acknowledged that is not on disk.
//!
//! With a size cap ([`SizeCap`]) it checks the database and WAL files before each batch;
//! over the cap it truncates the WAL if no reader holds it and otherwise refuses the batch's
//! writes as full (pings still answer: the writer is alive). It records whether writes are
//! being refused, for readiness ([`WriterStats::refusing`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use holdfast_sync::records::Model;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::backlog::{self, BacklogCmd};
use super::devices::{self, DeviceCmd};
use super::floor::{self, FloorCmd, StepWrite};
use super::journal::{self, Appended, NewEntry, Transition};
use super::managers::{self, ManagerCmd};
use super::mirror::{self, MirrorBatch, MirrorOutcome};
use super::push::{self, PushCmd};
use super::{Epoch, REFUSED_FULL, REFUSED_READ_ONLY, SizeCap, StoreError, WriterStats};

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Commands the writer understands.
#[derive(Debug)]
pub(super) enum WriteCmd {
    Append(Box<NewEntry>, Reply<Appended>),
    Transition(Transition, Reply<()>),
    Step(Box<StepWrite>, Reply<Vec<Appended>>),
    Floor(Box<FloorCmd>, Reply<()>),
    Push(Box<PushCmd>, Reply<i64>),
    Devices(Box<DeviceCmd>, Reply<i64>),
    Managers(Box<ManagerCmd>, Reply<i64>),
    Backlog(Box<BacklogCmd>, Reply<i64>),
    BeginPull(Reply<Epoch>),
    Mirror(Box<MirrorBatch>, Reply<MirrorOutcome>),
    CompleteSnapshot(Epoch, Model, Reply<u64>),
    SetMode(String, i64, Reply<()>),
    SetCursor(Model, Option<String>, Vec<(i64, String)>, bool, Reply<()>),
    SetResume(Model, Option<(i64, Epoch)>, Reply<()>),
    Ping(Reply<()>),
    /// Finish what is queued, then stop.
    Shutdown(Reply<()>),
    #[cfg(test)]
    TestSql(String, Reply<()>),
}

pub(super) struct WriterConfig {
    pub max_batch: usize,
    pub site: String,
    /// The database file (its WAL is beside it).
    pub path: std::path::PathBuf,
    pub cap: Option<SizeCap>,
    /// WAL frames past which the writer completes a checkpoint after a batch.
    pub wal_restart_frames: i64,
    pub busy_timeout: std::time::Duration,
    /// Told after each commit.
    pub checkpoint: super::checkpoint::Nudge,
}

/// Sends a command's result once the batch's fate is known.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

fn finish<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, StoreError>,
) -> (Finish, Option<StoreError>) {
    let error = result.as_ref().err().map(copy_error);
    let f: Finish = Box::new(move |commit_error| {
        let result = match commit_error {
            None => result,
            Some(e) => Err(copy_error(e)),
        };
        // The caller may have given up waiting; that is its business.
        let _ = reply.send(result);
    });
    (f, error)
}

/// The commit error, for each caller in the batch.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Full => StoreError::Full,
        StoreError::ReadOnly => StoreError::ReadOnly,
        StoreError::Busy => StoreError::Busy,
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        other => StoreError::Data(other.to_string()),
    }
}

pub(super) fn spawn(
    conn: Connection,
    device_rx: mpsc::Receiver<WriteCmd>,
    background_rx: mpsc::Receiver<WriteCmd>,
    config: WriterConfig,
    stats: Arc<WriterStats>,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run_writer(conn, device_rx, background_rx, config, stats))
        .map_err(|e| StoreError::Open {
            path: String::new(),
            reason: format!("cannot start the writer thread: {e}"),
        })
}

fn run_writer(
    mut conn: Connection,
    mut device_rx: mpsc::Receiver<WriteCmd>,
    mut background_rx: mpsc::Receiver<WriteCmd>,
    config: WriterConfig,
    stats: Arc<WriterStats>,
) {
    let _span = tracing::info_span!("store_writer").entered();
    // A current-thread runtime used only to wait on the two lanes at once.
    let waiter = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "store writer cannot start");
            return;
        }
    };
    let mut batch: Vec<WriteCmd> = Vec::with_capacity(config.max_batch);
    let mut stopping = false;
    loop {
        if batch.is_empty() && !stopping {
            let first = waiter.block_on(async {
                tokio::select! {
                    biased;
                    Some(cmd) = device_rx.recv() => Some(cmd),
                    Some(cmd) = background_rx.recv() => Some(cmd),
                    else => None,
                }
            });
            match first {
                Some(cmd) => batch.push(cmd),
                None => return, // every handle is gone
            }
        }
        // Device commands first, but leave one slot for the background lane.
        while batch.len() < config.max_batch - 1 {
            match device_rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        while batch.len() < config.max_batch {
            match background_rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return; // stopping and drained
        }
        stopping |= batch.iter().any(|c| matches!(c, WriteCmd::Shutdown(_)));
        run_batch(&mut conn, &mut batch, &config, &stats);
    }
}

/// Whether the database and WAL leave room for a batch within the cap
/// ([`SizeCap::write_limit`]), after truncating the WAL if it can be done without waiting
/// for a reader.
fn within_cap(conn: &Connection, config: &WriterConfig) -> bool {
    let Some(cap) = config.cap else { return true };
    let limit = cap.write_limit();
    // The database file counts at its full size even where a checkpoint has not copied
    // its pages from the WAL yet: they will be, and then both files hold them for a while.
    let size = || {
        let logical = conn
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .ok()
            .zip(
                conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
                    .ok(),
            )
            .map_or(0, |(n, size)| (n * size) as u64);
        super::size_on_disk_with(&config.path, logical)
    };
    if size() <= limit {
        return true;
    }
    // A reader on an old snapshot keeps the WAL; do not wait for it with every caller of
    // this batch waiting too: without the busy handler the checkpoint does what it can now.
    let _ = conn.busy_timeout(std::time::Duration::ZERO);
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
    let _ = conn.busy_timeout(config.busy_timeout);
    let fits = size() <= limit;
    if !fits {
        tracing::warn!(
            cap_bytes = cap.total_bytes,
            "the database and its WAL are over store.max_size_mb and a reader holds the WAL: writes are refused until it lets go"
        );
    }
    fits
}

/// A command that writes nothing (it only waits for the commit before it).
fn writes_nothing(cmd: &WriteCmd) -> bool {
    matches!(cmd, WriteCmd::Ping(_) | WriteCmd::Shutdown(_))
}

fn run_batch(
    conn: &mut Connection,
    batch: &mut Vec<WriteCmd>,
    config: &WriterConfig,
    stats: &WriterStats,
) {
    let mut done: Vec<Finish> = Vec::with_capacity(batch.len());
    if !within_cap(conn, config) {
        // Nothing is written: pings and shutdown still answer, writes are refused as full.
        stats.refusing.store(REFUSED_FULL, Ordering::Relaxed);
        let n_commands = batch.len();
        for cmd in batch.drain(..) {
            if writes_nothing(&cmd) {
                match cmd {
                    WriteCmd::Ping(r) | WriteCmd::Shutdown(r) => finish(r, Ok(())).0(None),
                    _ => {}
                }
            } else {
                reject(cmd)(Some(&StoreError::Full));
            }
        }
        stats
            .commands
            .fetch_add(n_commands as u64, Ordering::Relaxed);
        return;
    }
    let mut wrote = false;
    let mut refused: Option<u8> = None;
    let mut note_refusal = |e: &StoreError| match e {
        StoreError::Full => refused = Some(REFUSED_FULL),
        StoreError::ReadOnly => refused = refused.or(Some(REFUSED_READ_ONLY)),
        _ => {}
    };
    batch.reverse(); // run in arrival order while popping from the end
    // BEGIN, COMMIT and ROLLBACK are cached statements: rusqlite's `Transaction` parses them
    // anew for every batch, which at human pace is every scan.
    let conn: &Connection = conn;
    let outcome = (|| -> Result<(), StoreError> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let ran = (|| -> Result<(), StoreError> {
            while let Some(cmd) = batch.pop() {
                let writes = !writes_nothing(&cmd);
                let (f, error) = execute(conn, cmd, config);
                match &error {
                    Some(e) => note_refusal(e),
                    None => wrote |= writes,
                }
                done.push(f);
                // On SQLITE_FULL or an I/O error SQLite may roll the whole transaction back
                // on its own: then nothing of this batch is on disk, whatever the savepoints
                // said.
                if conn.is_autocommit() {
                    return Err(error.unwrap_or_else(|| {
                        StoreError::Data("the transaction was rolled back".into())
                    }));
                }
            }
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
        })();
        // Whatever failed (a lost transaction, a refused COMMIT), nothing of it stays open.
        if ran.is_err() && !conn.is_autocommit() {
            let _ = conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
        ran
    })();
    // Commands not run (BEGIN failed, or the transaction was lost) get the batch's error.
    for cmd in batch.drain(..) {
        done.push(reject(cmd));
    }
    stats
        .commands
        .fetch_add(done.len() as u64, Ordering::Relaxed);
    match &outcome {
        Ok(()) => {
            stats.commits.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            note_refusal(e);
            stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, n_commands = done.len(), "store commit failed");
        }
    }
    // Refused writes make the store unready until a write commits again.
    match refused {
        Some(why) => stats.refusing.store(why, Ordering::Relaxed),
        None if wrote && outcome.is_ok() => stats.refusing.store(0, Ordering::Relaxed),
        None => {}
    }
    let error = outcome.err();
    for f in done {
        f(error.as_ref());
    }
    if wrote && error.is_none() {
        config.checkpoint.committed();
    }
    // After the replies, not before: finish what the checkpointer could not, so the next
    // transaction starts the WAL afresh (see `checkpoint`).
    if stats.wal_frames.load(Ordering::Relaxed) > config.wal_restart_frames {
        stats.wal_frames.store(0, Ordering::Relaxed);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// Answers a command that never ran; the batch error replaces the result.
fn reject(cmd: WriteCmd) -> Finish {
    match cmd {
        WriteCmd::Append(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Transition(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Step(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Floor(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Push(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Devices(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Managers(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Backlog(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::BeginPull(r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Mirror(_, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::CompleteSnapshot(_, _, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::SetMode(_, _, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::SetCursor(_, _, _, _, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::SetResume(_, _, r) => finish(r, Err(StoreError::Closed)).0,
        WriteCmd::Ping(r) | WriteCmd::Shutdown(r) => finish(r, Err(StoreError::Closed)).0,
        #[cfg(test)]
        WriteCmd::TestSql(_, r) => finish(r, Err(StoreError::Closed)).0,
    }
}

/// Runs one command in its own savepoint.
fn execute(tx: &Connection, cmd: WriteCmd, config: &WriterConfig) -> (Finish, Option<StoreError>) {
    // The savepoint's statements are prepared once (rusqlite's `Savepoint` parses them anew
    // for every command).
    fn in_savepoint<T>(
        c: &Connection,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        c.prepare_cached("SAVEPOINT command")?.execute([])?;
        let result = f(c);
        if result.is_err() {
            // Undo what the command did; the transaction and the batch's other commands stay.
            // Should even that fail, the whole transaction goes (the batch then fails as one)
            // rather than commit half a command.
            let undone = c
                .prepare_cached("ROLLBACK TO command")
                .and_then(|mut s| s.execute([]))
                .and_then(|_| c.prepare_cached("RELEASE command"))
                .and_then(|mut s| s.execute([]));
            if undone.is_err() && !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK");
            }
            return result;
        }
        if let Err(e) = c
            .prepare_cached("RELEASE command")
            .and_then(|mut s| s.execute([]))
        {
            if !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK");
            }
            return Err(e.into());
        }
        result
    }
    match cmd {
        WriteCmd::Append(entry, r) => {
            let result = in_savepoint(tx, |c| journal::append(c, &config.site, &entry));
            finish(r, result)
        }
        WriteCmd::Transition(t, r) => finish(r, in_savepoint(tx, |c| journal::transition(c, &t))),
        WriteCmd::Step(step, r) => {
            finish(r, in_savepoint(tx, |c| floor::step(c, &config.site, &step)))
        }
        WriteCmd::Floor(cmd, r) => finish(r, in_savepoint(tx, |c| floor::command(c, &cmd))),
        WriteCmd::Push(cmd, r) => finish(
            r,
            in_savepoint(tx, |c| push::command(c, &config.site, &cmd)),
        ),
        WriteCmd::Devices(cmd, r) => finish(r, in_savepoint(tx, |c| devices::command(c, &cmd))),
        WriteCmd::Managers(cmd, r) => finish(r, in_savepoint(tx, |c| managers::command(c, &cmd))),
        WriteCmd::Backlog(cmd, r) => finish(r, in_savepoint(tx, |c| backlog::command(c, &cmd))),
        WriteCmd::BeginPull(r) => finish(r, in_savepoint(tx, mirror::begin_pull)),
        WriteCmd::Mirror(b, r) => finish(r, in_savepoint(tx, |c| mirror::apply(c, &b))),
        WriteCmd::CompleteSnapshot(epoch, model, r) => finish(
            r,
            in_savepoint(tx, |c| mirror::complete_snapshot(c, epoch, model)),
        ),
        WriteCmd::SetMode(mode, since, r) => finish(
            r,
            in_savepoint(tx, |c| {
                c.prepare_cached(
                    "UPDATE appliance_state SET mode = ?1, mode_since = ?2 WHERE id = 1",
                )?
                .execute(rusqlite::params![mode, since])?;
                Ok(())
            }),
        ),
        WriteCmd::SetCursor(model, write_date, window, full, r) => finish(
            r,
            in_savepoint(tx, |c| {
                mirror::set_cursor(c, model, write_date.as_deref(), &window, full)
            }),
        ),
        WriteCmd::SetResume(model, resume, r) => finish(
            r,
            in_savepoint(tx, |c| mirror::set_resume(c, model, resume)),
        ),
        WriteCmd::Ping(r) | WriteCmd::Shutdown(r) => finish(r, Ok(())),
        #[cfg(test)]
        WriteCmd::TestSql(sql, r) => finish(r, tx.execute_batch(&sql).map_err(StoreError::from)),
    }
}
