//! The writer thread: the only owner of the read-write connection.
//!
//! It waits for a command on either lane, then takes whatever else is queued (device lane
//! first, at least one background command per batch so sync is never starved), runs the
//! batch in one `BEGIN IMMEDIATE` transaction, commits, and only then answers every caller.
//! If a command fails, the transaction is rolled back and the batch runs again with a
//! savepoint per command, so the failed command's writes are undone and the others' kept.
//! If the commit fails, every caller in the batch gets the error: nothing is acknowledged
//! that is not on disk.
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
    // BEGIN, COMMIT and ROLLBACK are cached statements: rusqlite's `Transaction` parses them
    // anew for every batch, which at human pace is every scan.
    let conn: &Connection = conn;
    let rollback = || {
        if !conn.is_autocommit() {
            let _ = conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
    };
    let mut results: Vec<Result<Done, StoreError>> = Vec::with_capacity(batch.len());
    let outcome = (|| -> Result<(), StoreError> {
        // First the batch as one transaction without a savepoint per command: almost every
        // batch succeeds whole, and a savepoint costs two statements and a copy of every page
        // the command touches. Should any command fail, the transaction is rolled back and the
        // batch runs again with a savepoint per command, so a failed command undoes only its
        // own writes, as if it had been so from the start.
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        for cmd in batch.iter() {
            match run(conn, cmd, config) {
                Ok(done) if !conn.is_autocommit() => results.push(Ok(done)),
                _ => {
                    results.clear();
                    break;
                }
            }
        }
        if results.len() < batch.len() {
            rollback();
            conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            for cmd in batch.iter() {
                let result = in_savepoint(conn, cmd, config);
                // On SQLITE_FULL or an I/O error SQLite may roll the whole transaction back
                // on its own: then nothing of this batch is on disk, whatever the savepoints
                // said.
                let lost = conn.is_autocommit().then(|| match &result {
                    Err(e) => copy_error(e),
                    Ok(_) => StoreError::Data("the transaction was rolled back".into()),
                });
                results.push(result);
                if let Some(e) = lost {
                    return Err(e);
                }
            }
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    })();
    // Whatever failed (a lost transaction, a refused COMMIT), nothing of it stays open.
    if outcome.is_err() {
        rollback();
    }
    // Each caller gets its command's result; commands not run (BEGIN failed, or the
    // transaction was lost) get the batch's error.
    let mut results = results.into_iter();
    for cmd in batch.drain(..) {
        let writes = !writes_nothing(&cmd);
        let (f, error) = match results.next() {
            Some(result) => answer(cmd, result),
            None => (reject(cmd), None),
        };
        match &error {
            Some(e) => note_refusal(e),
            None => wrote |= writes,
        }
        done.push(f);
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
    answer(cmd, Err(StoreError::Closed)).0
}

/// What a command produced, kept until the batch's fate is known (the command itself keeps
/// its caller's reply, so a batch can be run again).
enum Done {
    Unit,
    Appended(Appended),
    Steps(Vec<Appended>),
    Id(i64),
    Epoch(Epoch),
    Mirror(MirrorOutcome),
    Count(u64),
}

/// The value a caller waits for, out of [`Done`].
trait FromDone: Sized {
    fn from_done(done: Done) -> Option<Self>;
}

macro_rules! from_done {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl FromDone for $t {
            fn from_done(done: Done) -> Option<Self> {
                match done {
                    Done::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    )*};
}
from_done!(Appended => Appended, Vec<Appended> => Steps, i64 => Id, Epoch => Epoch,
    MirrorOutcome => Mirror, u64 => Count);

impl FromDone for () {
    fn from_done(done: Done) -> Option<Self> {
        matches!(done, Done::Unit).then_some(())
    }
}

/// Pairs a command's result with its caller's reply.
fn answer(cmd: WriteCmd, result: Result<Done, StoreError>) -> (Finish, Option<StoreError>) {
    fn to<T: FromDone + Send + 'static>(
        reply: Reply<T>,
        result: Result<Done, StoreError>,
    ) -> (Finish, Option<StoreError>) {
        let result = result.and_then(|done| {
            T::from_done(done)
                .ok_or_else(|| StoreError::Data("the writer mixed up two results".into()))
        });
        finish(reply, result)
    }
    match cmd {
        WriteCmd::Append(_, r) => to(r, result),
        WriteCmd::Transition(_, r) => to(r, result),
        WriteCmd::Step(_, r) => to(r, result),
        WriteCmd::Floor(_, r) => to(r, result),
        WriteCmd::Push(_, r) => to(r, result),
        WriteCmd::Devices(_, r) => to(r, result),
        WriteCmd::Managers(_, r) => to(r, result),
        WriteCmd::Backlog(_, r) => to(r, result),
        WriteCmd::BeginPull(r) => to(r, result),
        WriteCmd::Mirror(_, r) => to(r, result),
        WriteCmd::CompleteSnapshot(_, _, r) => to(r, result),
        WriteCmd::SetMode(_, _, r) => to(r, result),
        WriteCmd::SetCursor(_, _, _, _, r) => to(r, result),
        WriteCmd::SetResume(_, _, r) => to(r, result),
        WriteCmd::Ping(r) | WriteCmd::Shutdown(r) => to(r, result),
        #[cfg(test)]
        WriteCmd::TestSql(_, r) => to(r, result),
    }
}

/// Runs one command in its own savepoint, so that its failure undoes only its own writes.
fn in_savepoint(c: &Connection, cmd: &WriteCmd, config: &WriterConfig) -> Result<Done, StoreError> {
    // The savepoint's statements are prepared once (rusqlite's `Savepoint` parses them anew
    // for every command).
    c.prepare_cached("SAVEPOINT command")?.execute([])?;
    let result = run(c, cmd, config);
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

/// Runs one command (inside the batch's transaction).
fn run(tx: &Connection, cmd: &WriteCmd, config: &WriterConfig) -> Result<Done, StoreError> {
    Ok(match cmd {
        WriteCmd::Append(entry, _) => Done::Appended(journal::append(tx, &config.site, entry)?),
        WriteCmd::Transition(t, _) => {
            journal::transition(tx, t)?;
            Done::Unit
        }
        WriteCmd::Step(step, _) => Done::Steps(floor::step(tx, &config.site, step)?),
        WriteCmd::Floor(cmd, _) => {
            floor::command(tx, cmd)?;
            Done::Unit
        }
        WriteCmd::Push(cmd, _) => Done::Id(push::command(tx, &config.site, cmd)?),
        WriteCmd::Devices(cmd, _) => Done::Id(devices::command(tx, cmd)?),
        WriteCmd::Managers(cmd, _) => Done::Id(managers::command(tx, cmd)?),
        WriteCmd::Backlog(cmd, _) => Done::Id(backlog::command(tx, cmd)?),
        WriteCmd::BeginPull(_) => Done::Epoch(mirror::begin_pull(tx)?),
        WriteCmd::Mirror(b, _) => Done::Mirror(mirror::apply(tx, b)?),
        WriteCmd::CompleteSnapshot(epoch, model, _) => {
            Done::Count(mirror::complete_snapshot(tx, *epoch, *model)?)
        }
        WriteCmd::SetMode(mode, since, _) => {
            tx.prepare_cached(
                "UPDATE appliance_state SET mode = ?1, mode_since = ?2 WHERE id = 1",
            )?
            .execute(rusqlite::params![mode, since])?;
            Done::Unit
        }
        WriteCmd::SetCursor(model, write_date, window, full, _) => {
            mirror::set_cursor(tx, *model, write_date.as_deref(), window, *full)?;
            Done::Unit
        }
        WriteCmd::SetResume(model, resume, _) => {
            mirror::set_resume(tx, *model, *resume)?;
            Done::Unit
        }
        WriteCmd::Ping(_) | WriteCmd::Shutdown(_) => Done::Unit,
        #[cfg(test)]
        WriteCmd::TestSql(sql, _) => {
            tx.execute_batch(sql)?;
            Done::Unit
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pick(move_id: i64) -> Box<NewEntry> {
        Box::new(super::super::tests::pick(move_id, 1, 1, "", 1.0))
    }

    #[test]
    fn a_failed_command_undoes_only_its_own_writes_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holdfast.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        super::super::schema::migrate(&mut conn, "holdfast.db").unwrap();
        let stats = Arc::new(WriterStats::default());
        let (nudge, _checkpointer) =
            super::super::checkpoint::spawn(&path, Duration::from_secs(5), stats.clone()).unwrap();
        let config = WriterConfig {
            max_batch: 16,
            site: "site".into(),
            path: path.clone(),
            cap: None,
            wal_restart_frames: 16_384,
            busy_timeout: Duration::from_secs(5),
            checkpoint: nudge,
        };
        let (first, mut first_rx) = oneshot::channel();
        let (failing, mut failing_rx) = oneshot::channel();
        let (last, mut last_rx) = oneshot::channel();
        // The middle command writes, then fails (an effect of an entry that does not exist).
        let mut batch = vec![
            WriteCmd::Append(pick(1), first),
            WriteCmd::TestSql(
                "UPDATE appliance_state SET mode = 'half-done' WHERE id = 1;
                 INSERT INTO journal_effect (seq, target) VALUES (999999, 'stock');"
                    .into(),
                failing,
            ),
            WriteCmd::Append(pick(2), last),
        ];
        run_batch(&mut conn, &mut batch, &config, &stats);

        let first = first_rx.try_recv().unwrap().unwrap();
        let last = last_rx.try_recv().unwrap().unwrap();
        assert!(failing_rx.try_recv().unwrap().is_err());
        assert!(first.seq < last.seq);
        assert_eq!(stats.commits.load(Ordering::Relaxed), 1);
        assert_eq!(stats.commands.load(Ordering::Relaxed), 3);
        // Both appends and their effects are on disk; nothing of the failed command is.
        let other = Connection::open(&path).unwrap();
        let entries: i64 = other
            .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
            .unwrap();
        let effects: i64 = other
            .query_row("SELECT COUNT(DISTINCT seq) FROM journal_effect", [], |r| {
                r.get(0)
            })
            .unwrap();
        let mode: String = other
            .query_row("SELECT mode FROM appliance_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!((entries, effects), (2, 2));
        assert_ne!(mode, "half-done");

        // A batch where every command succeeds commits as one, the same.
        let (again, mut again_rx) = oneshot::channel();
        let (ping, mut ping_rx) = oneshot::channel();
        let mut batch = vec![WriteCmd::Append(pick(3), again), WriteCmd::Ping(ping)];
        run_batch(&mut conn, &mut batch, &config, &stats);
        assert!(again_rx.try_recv().unwrap().unwrap().seq > last.seq);
        assert!(ping_rx.try_recv().unwrap().is_ok());
        assert_eq!(stats.commits.load(Ordering::Relaxed), 2);
    }
}
