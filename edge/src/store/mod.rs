//! The local store: the only module of Holdfast that speaks SQL.
//!
//! One SQLite database holds three things kept apart (see DESIGN.md):
//!
//! - the **mirror**: Odoo's records as last pulled ([`holdfast_sync::records`]);
//! - the **journal**: every floor operation, append-only, with its delivery state;
//! - the **view**: the floor's picture = mirror + the *live effects* of journal entries.
//!
//! # Writes
//!
//! One OS thread owns the only read-write connection ([`writer`]). Writes reach it as typed
//! commands over two bounded channels, a device lane served ahead of a background lane. The
//! thread groups whatever is queued into one transaction (group commit), where one bad command
//! does not sink its neighbours (its writes alone are undone), and answers the callers only
//! after `COMMIT` returned: an acknowledgement means the data is on disk (`synchronous=FULL`).
//!
//! # Reads
//!
//! A few read-only connections ([`ReadPool`]) serve queries directly on the caller's thread.
//! View queries are indexed point lookups that take microseconds, less than handing them to
//! another thread would cost.
//!
//! # Rebase: how a pull and pending entries share the view
//!
//! Each journal entry writes *effect* rows (stock delta at a product/location/lot, picked
//! delta on a move, a lot made known). The view adds every live effect to the mirror. An
//! effect stops counting ("folds") only when the mirror row it touches was replaced by a pull
//! that is known to include it. A pull takes a new *epoch* before it reads from Odoo; an entry
//! acknowledged by Odoo records the epoch current at that moment. When the pull writes a row:
//!
//! - if an entry touching that row is in flight, or was acknowledged at or after the pull's
//!   epoch, the pull cannot know whether its copy includes it: the row is **held back** (the
//!   old row and the live effects stay, so the floor never sees quantities bounce back);
//! - otherwise the row is replaced, and the effects of entries acknowledged before the pull
//!   began are folded: the new row includes them. Pending entries were not applied in Odoo, so
//!   their effects stay live on top of the new row.
//!
//! A held-back row's `write_date` still reaches the pull's cursor, so an incremental pull
//! would take it for unchanged from then on. The store remembers held-back rows (`held_back`)
//! until a pull writes or deletes them, and every pull reads again, by id, those whose
//! entries have settled.
//!
//! The property test in `tests` checks this against an in-memory model of the cloud.

mod backlog;
mod checkpoint;
mod devices;
mod floor;
mod hot;
mod journal;
mod managers;
mod mirror;
mod pending;
mod push;
mod read;
pub mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_sync::ops::InvalidOp;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{mpsc, oneshot};

pub use backlog::{BacklogCmd, BacklogSample};
pub use devices::{
    DeviceCmd, NewPrintJob, PrintJobFilter, PrintJobRow, PrintSettle, RegistryRow, Shipping,
};
pub use floor::{
    Current, DeviceLogin, FloorCmd, OperatorRow, RequestRecord, SessionRow, StepWrite, StoredAnswer,
};
pub use journal::{Appended, JournalEntry, NewEntry, OpState, Transition};
pub use managers::{AuditRow, ManagerCmd, ManagerRow, ManagerSessionRow, NewAudit};
pub use mirror::{MirrorBatch, MirrorOutcome};
pub use push::{
    AttemptFailure, AttemptRow, ConflictRow, NewConflict, PickingContext, PushCmd, PushQueue,
    ReadyKey, Settle,
};
pub use read::{
    AUDIT_WINDOW, ApplianceState, AuditQuery, BarcodeHit, CloudChange, ConflictQuery, Cursor,
    JOURNAL_WINDOW, JournalFilter, JournalPage, JournalQuery, LocationInfo, LotInfo, MoveDetail,
    MoveProgress, PickingSummary, ProductInfo, QueueStats, Reader, mirror_table,
};
use writer::WriteCmd;

/// A pull's epoch (see the module docs on rebase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(pub i64);

/// Which queue a write waits in. The writer serves the device lane first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// A device or person is waiting for the answer.
    Device,
    /// Pull, push and housekeeping.
    Background,
}

/// How to open the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub path: PathBuf,
    /// Site id written into every journal entry.
    pub site: String,
    /// Read-only connections in the pool.
    pub readers: usize,
    /// Depth of each write lane.
    pub queue_depth: usize,
    /// Most commands in one transaction.
    pub max_batch: usize,
    pub busy_timeout: Duration,
    /// Cap on the store's size on disk, the database file and its WAL together; writes past
    /// it fail with [`StoreError::Full`] while there is still room on the disk for the
    /// operating system (see [`SizeCap`]).
    pub max_size_bytes: Option<u64>,
}

/// How a cap on the store's size is shared between the database file and its WAL.
///
/// The WAL holds every page written since the last completed checkpoint, so a cap on the
/// database alone lets the WAL grow far past it (a reader holding an old snapshot keeps the
/// checkpoint from completing; without a cap the writer restarts the WAL only past 16,384
/// frames: 16 MiB of 1 KiB pages, 64 MiB of 4 KiB ones). The WAL gets an eighth of the cap
/// (at most 64 MiB): the writer completes a checkpoint once the WAL is half that,
/// `journal_size_limit` truncates the file back to it when the WAL restarts, and the database
/// gets the rest (`max_page_count`). Before each batch the writer checks the two files
/// together; over the cap it truncates the WAL if no reader holds it (without waiting), and
/// otherwise refuses the batch's writes as full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeCap {
    /// Database file and WAL together.
    pub total_bytes: u64,
    /// The WAL's share.
    pub wal_bytes: u64,
}

impl SizeCap {
    pub fn new(total_bytes: u64) -> SizeCap {
        SizeCap {
            total_bytes,
            wal_bytes: (total_bytes / 8).min(64 * 1024 * 1024),
        }
    }

    /// The database file's share.
    pub fn db_bytes(&self) -> u64 {
        self.total_bytes - self.wal_bytes
    }

    /// On-disk size past which the writer takes no new batch: a quarter of the WAL's share
    /// is kept for the batch in hand (its size is only known once it is written, so one very
    /// large pull page can still pass the cap by its own size).
    pub fn write_limit(&self) -> u64 {
        self.total_bytes - self.wal_bytes / 4
    }
}

/// Room a write needs for `/readyz` to call the store ready: a step writes a few pages.
const READY_HEADROOM_BYTES: u64 = 64 * 1024;

impl StoreOptions {
    pub fn new(path: impl Into<PathBuf>, site: impl Into<String>) -> StoreOptions {
        StoreOptions {
            path: path.into(),
            site: site.into(),
            readers: 3,
            queue_depth: 1024,
            max_batch: 256,
            busy_timeout: Duration::from_secs(5),
            max_size_bytes: None,
        }
    }
}

/// Store failures, typed so callers can tell a person what happened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database is full (disk or store.max_size_mb reached): new operations are refused, reads keep working"
    )]
    Full,
    #[error("the database is read-only: new operations are refused, reads keep working")]
    ReadOnly,
    #[error(
        "database {path} has schema version {found}, newer than this build of holdfast supports ({supported}); run a newer holdfast or restore a backup"
    )]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("the database is corrupt: {0}; restore a backup (holdfast db backup makes them)")]
    Corrupt(String),
    #[error("the database is busy (another process holds a lock)")]
    Busy,
    #[error("the store has shut down")]
    Closed,
    #[error("invalid operation: {0}")]
    Invalid(#[from] InvalidOp),
    #[error("journal entry {seq} cannot go from {from} to {to}")]
    Transition {
        seq: i64,
        from: String,
        to: &'static str,
    },
    #[error("{0} not found")]
    NotFound(String),
    /// A write raced another one and lost (a session step, an idempotency key, a picking
    /// already open elsewhere); nothing of it was written.
    #[error("{0}")]
    Conflict(String),
    /// Another session holds the picking open.
    #[error("{0}")]
    PickingBusy(String),
    #[error("cannot open database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("stored data is unreadable: {0}")]
    Data(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full,
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

/// Counters of the writer, read by status and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub commands: AtomicU64,
    pub failed_commits: AtomicU64,
    /// Frames in the WAL when the checkpointer last looked.
    pub wal_frames: std::sync::atomic::AtomicI64,
    /// Why the last write was refused, until a write commits again: [`REFUSED_FULL`],
    /// [`REFUSED_READ_ONLY`] or 0.
    pub refusing: std::sync::atomic::AtomicU8,
}

/// [`WriterStats::refusing`]: the disk or the size cap is full.
pub const REFUSED_FULL: u8 = 1;
/// [`WriterStats::refusing`]: the database or its file system is read-only.
pub const REFUSED_READ_ONLY: u8 = 2;

/// A handle to the store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    device_tx: mpsc::Sender<WriteCmd>,
    background_tx: mpsc::Sender<WriteCmd>,
    readers: ReadPool,
    /// Hot mirror rows in memory, shared by the readers (see `hot`).
    hot: hot::HotRows,
    path: PathBuf,
    cap: Option<SizeCap>,
    stats: Arc<WriterStats>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Stops the checkpoint thread (it also ends once the store and its writer are gone).
    checkpoint: Mutex<Option<(checkpoint::Nudge, std::thread::JoinHandle<()>)>>,
}

/// Page size of a new database, in bytes.
pub const PAGE_SIZE: i64 = 1024;

/// The writer connection's page cache, in KiB (SQLite's default is 2,000). The writer's pages
/// stay cached across its own commits, unlike a reader's, so what the floor writes to (each
/// open session, signed-in device, stored answer and running total of a busy floor) can stay
/// in memory. Floor bench, 200 handhelds at one scan a second each: with the default the
/// writer read about 11 pages a commit back from the file; with 4 MiB 1.2–1.6, with 8 MiB
/// 0.2–0.5; a full pull's peak resident memory (pull bench: 121–124 MB with the default)
/// rose by 7–10 MB with 4 MiB and by 14–22 MB with 8 MiB.
const WRITER_CACHE_KIB: i64 = 4 * 1024;

/// Applies the pragmas every connection needs.
fn configure(conn: &Connection, busy_timeout: Duration) -> Result<(), StoreError> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The WAL file beside a database.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The database file and its WAL, in bytes on disk (a missing file counts 0).
pub fn size_on_disk(db: &Path) -> u64 {
    size_on_disk_with(db, 0)
}

/// [`size_on_disk`], counting the database file at least at `logical_db` bytes (its pages,
/// some of which may still be only in the WAL).
pub fn size_on_disk_with(db: &Path, logical_db: u64) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(db).max(logical_db) + len(&wal_path(db))
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the writer thread.
    pub fn open(options: StoreOptions) -> Result<Store, StoreError> {
        let path_text = options.path.display().to_string();
        if let Some(parent) = options.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                path: path_text.clone(),
                reason: format!("cannot create directory {}: {e}", parent.display()),
            })?;
        }
        let cap = options.max_size_bytes.map(SizeCap::new);
        private_files(&options.path)?;
        let mut conn = Connection::open(&options.path).map_err(|e| StoreError::Open {
            path: path_text.clone(),
            reason: e.to_string(),
        })?;
        configure(&conn, options.busy_timeout)?;
        // A new database gets small pages (an existing one keeps its own: in WAL mode the
        // size is fixed). Every commit writes each page it touched whole to the WAL and
        // fsyncs it, and a scan touches ~20 pages in as many tables and indexes, each for a
        // row or two: with 1 KiB pages a scan's commit writes and syncs a third of the bytes
        // it did with 4 KiB ones, and the mirror's file is smaller too (measured with the
        // floor and store benchmarks, see ARCHITECTURE.md).
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        // WAL lets readers run beside the writer; FULL makes every commit durable across
        // power loss, which is what an acknowledgement promises.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open {
                path: path_text,
                reason: format!("cannot switch to WAL journal mode (got {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A savepoint around each command (when a batch runs again after a failed command)
        // needs a statement journal; in memory it costs no temporary file created, written
        // and unlinked per batch.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints run on their own thread (see `checkpoint`), never inside a commit; once
        // the WAL has been copied back and restarts, keep its file from staying huge.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let wal_limit = cap.map_or(64 * 1024 * 1024, |c| c.wal_bytes as i64);
        conn.pragma_update(None, "journal_size_limit", wal_limit)?;
        // A cache that holds what a busy floor writes to (see `WRITER_CACHE_KIB`).
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        schema::migrate(&mut conn, &path_text)?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        if let Some(cap) = cap {
            let pages = (cap.db_bytes() as i64 / page_size).max(1);
            conn.pragma_update(None, "max_page_count", pages)?;
        }
        // Frames of a page and its header; the writer completes a checkpoint at half the
        // WAL's share of the cap.
        let frame_bytes = page_size + 24;
        let wal_restart_frames = cap.map_or(checkpoint::WAL_RESTART_FRAMES, |c| {
            (c.wal_bytes as i64 / frame_bytes / 2).clamp(1, checkpoint::WAL_RESTART_FRAMES)
        });

        let readers = ReadPool::open(&options.path, options.readers.max(1), options.busy_timeout)?;
        let (device_tx, device_rx) = mpsc::channel(options.queue_depth.max(1));
        let (background_tx, background_rx) = mpsc::channel(options.queue_depth.max(1));
        let stats = Arc::new(WriterStats::default());
        let (nudge, checkpointer) =
            checkpoint::spawn(&options.path, options.busy_timeout, stats.clone())?;
        let writer = writer::spawn(
            conn,
            device_rx,
            background_rx,
            writer::WriterConfig {
                max_batch: options.max_batch.max(2),
                site: options.site.clone(),
                path: options.path.clone(),
                cap,
                wal_restart_frames,
                busy_timeout: options.busy_timeout,
                checkpoint: nudge.clone(),
            },
            stats.clone(),
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                device_tx,
                background_tx,
                readers,
                hot: hot::HotRows::default(),
                path: options.path,
                cap,
                stats,
                writer: Mutex::new(Some(writer)),
                checkpoint: Mutex::new(Some((nudge, checkpointer))),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The size cap from `store.max_size_mb`, if one is set.
    pub fn size_cap(&self) -> Option<SizeCap> {
        self.inner.cap
    }

    /// Bytes the store may still grow by: the cap's room left over `size_bytes` (database
    /// and WAL) and the free space on the database's file system, whichever is smaller.
    /// `None` when neither is known.
    pub fn headroom_bytes(&self, size_bytes: u64) -> Option<u64> {
        let in_cap = self
            .inner
            .cap
            .map(|cap| cap.total_bytes.saturating_sub(size_bytes));
        let dir = match self.inner.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let on_disk = nix::sys::statvfs::statvfs(dir)
            .ok()
            .map(|fs| fs.blocks_available().saturating_mul(fs.fragment_size()));
        match (in_cap, on_disk) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Commands waiting in each lane (device, background).
    pub fn queue_depths(&self) -> (usize, usize) {
        let depth = |tx: &mpsc::Sender<WriteCmd>| tx.max_capacity() - tx.capacity();
        (
            depth(&self.inner.device_tx),
            depth(&self.inner.background_tx),
        )
    }

    async fn request<T>(
        &self,
        lane: Lane,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteCmd,
    ) -> Result<T, StoreError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let tx = match lane {
            Lane::Device => &self.inner.device_tx,
            Lane::Background => &self.inner.background_tx,
        };
        tx.send(make(reply_tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        reply_rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Appends an operation to the journal; returns once it is committed to disk. Appending
    /// an id that is already in the journal returns the existing entry (idempotent retries).
    pub async fn append(&self, lane: Lane, entry: NewEntry) -> Result<Appended, StoreError> {
        entry.op.validate()?;
        self.request(lane, |reply| WriteCmd::Append(Box::new(entry), reply))
            .await
    }

    /// Moves a journal entry along its delivery states.
    pub async fn transition(&self, transition: Transition) -> Result<(), StoreError> {
        self.request(Lane::Background, |reply| {
            WriteCmd::Transition(transition, reply)
        })
        .await
    }

    /// Starts a pull: takes a new epoch before anything is read from Odoo.
    pub async fn begin_pull(&self) -> Result<Epoch, StoreError> {
        self.request(Lane::Background, WriteCmd::BeginPull).await
    }

    /// Writes a page of pulled records (and deletions) under the pull's epoch.
    pub async fn apply_mirror(&self, batch: MirrorBatch) -> Result<MirrorOutcome, StoreError> {
        self.request(Lane::Background, |reply| {
            WriteCmd::Mirror(Box::new(batch), reply)
        })
        .await
    }

    /// Declares that the pull of `epoch` delivered every record of `model` in scope, so the
    /// effects of entries acknowledged before it began are folded even where no row remains.
    pub async fn complete_snapshot(
        &self,
        epoch: Epoch,
        model: holdfast_sync::records::Model,
    ) -> Result<u64, StoreError> {
        self.request(Lane::Background, |reply| {
            WriteCmd::CompleteSnapshot(epoch, model, reply)
        })
        .await
    }

    /// Advances a model's pull cursor (the newest `write_date` seen) once its pages are
    /// committed; `full` records a full pull, otherwise an incremental one.
    pub async fn set_cursor(
        &self,
        model: holdfast_sync::records::Model,
        write_date: Option<String>,
        window: Vec<(i64, String)>,
        full: bool,
    ) -> Result<(), StoreError> {
        self.request(Lane::Background, |reply| {
            WriteCmd::SetCursor(model, write_date, window, full, reply)
        })
        .await
    }

    /// Remembers where an interrupted full pull of `model` resumes (`None` once complete).
    /// The first attempt's epoch is kept across resumptions.
    pub async fn set_resume(
        &self,
        model: holdfast_sync::records::Model,
        resume: Option<(i64, Epoch)>,
    ) -> Result<(), StoreError> {
        self.request(Lane::Background, |reply| {
            WriteCmd::SetResume(model, resume, reply)
        })
        .await
    }

    /// Records the connectivity mode.
    pub async fn set_mode(&self, mode: &str, since_ms: i64) -> Result<(), StoreError> {
        let mode = mode.to_owned();
        self.request(Lane::Background, |reply| {
            WriteCmd::SetMode(mode, since_ms, reply)
        })
        .await
    }

    /// Writes a workflow step: session state, journal entries, the device's current session
    /// and the idempotent answer, all or nothing.
    pub async fn step(&self, step: StepWrite) -> Result<Vec<Appended>, StoreError> {
        for entry in &step.entries {
            entry.op.validate()?;
        }
        self.request(Lane::Device, |reply| WriteCmd::Step(Box::new(step), reply))
            .await
    }

    /// Floor administration and sign-in (devices, operators, logins).
    pub async fn floor(&self, cmd: FloorCmd) -> Result<(), StoreError> {
        // Housekeeping waits behind the devices; everything else is a person waiting.
        let lane = match cmd {
            FloorCmd::PruneRequests { .. } => Lane::Background,
            _ => Lane::Device,
        };
        self.request(lane, |reply| WriteCmd::Floor(Box::new(cmd), reply))
            .await
    }

    /// Push bookkeeping (see [`PushCmd`]); answers a count, or the seq of a resolution.
    pub async fn push(&self, cmd: PushCmd) -> Result<i64, StoreError> {
        // A manager waiting on a decision goes ahead of the drain.
        let lane = match cmd {
            PushCmd::Resolve { .. } => Lane::Device,
            _ => Lane::Background,
        };
        self.request(lane, |reply| WriteCmd::Push(Box::new(cmd), reply))
            .await
    }

    /// A registry or print spool command (see [`DeviceCmd`]). Spooling a label someone waits
    /// for goes in the device lane; bookkeeping in the background one.
    pub async fn devices(&self, cmd: DeviceCmd) -> Result<i64, StoreError> {
        let lane = match cmd {
            DeviceCmd::Enqueue(_)
            | DeviceCmd::Reprint { .. }
            | DeviceCmd::Cancel { .. }
            | DeviceCmd::NextSscc { .. } => Lane::Device,
            _ => Lane::Background,
        };
        self.request(lane, |reply| WriteCmd::Devices(Box::new(cmd), reply))
            .await
    }

    /// A manager account, console session or audit command (see [`ManagerCmd`]). Sign-ins
    /// and manager actions are people waiting: the device lane.
    pub async fn managers(&self, cmd: ManagerCmd) -> Result<i64, StoreError> {
        self.request(Lane::Device, |reply| {
            WriteCmd::Managers(Box::new(cmd), reply)
        })
        .await
    }

    /// A backlog history command (see [`BacklogCmd`]): bookkeeping, the background lane.
    pub async fn backlog(&self, cmd: BacklogCmd) -> Result<i64, StoreError> {
        self.request(Lane::Background, |reply| {
            WriteCmd::Backlog(Box::new(cmd), reply)
        })
        .await
    }

    /// Answers once the writer has committed everything queued before it: a liveness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.request(Lane::Device, WriteCmd::Ping).await
    }

    /// Whether a write would be taken now (readiness; [`Store::ping`] says the writer is
    /// alive). Not when the last write was refused as full or read-only and none committed
    /// since, when the size cap leaves less than a step's room (database pages free within
    /// the cap, or the database and WAL together at the cap), or when the file system has
    /// less than that free. The error says which, without naming a path.
    pub fn writable(&self) -> Result<(), StoreError> {
        match self.inner.stats.refusing.load(Ordering::Relaxed) {
            REFUSED_FULL => return Err(StoreError::Full),
            REFUSED_READ_ONLY => return Err(StoreError::ReadOnly),
            _ => {}
        }
        if let Some(cap) = self.inner.cap {
            let (page_size, pages, free) = self.inner.readers.with(|conn| {
                let get = |pragma: &str| -> Result<u64, StoreError> {
                    Ok(conn.pragma_query_value(None, pragma, |r| r.get::<_, i64>(0))? as u64)
                };
                Ok((
                    get("page_size")?,
                    get("page_count")?,
                    get("freelist_count")?,
                ))
            })?;
            let room_in_db = (cap.db_bytes() / page_size.max(1))
                .saturating_sub(pages)
                .saturating_add(free)
                * page_size;
            let on_disk = size_on_disk_with(&self.inner.path, pages * page_size);
            if room_in_db < READY_HEADROOM_BYTES || on_disk > cap.write_limit() {
                return Err(StoreError::Full);
            }
        }
        let dir = match self.inner.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(fs) = nix::sys::statvfs::statvfs(dir) {
            let free = fs.blocks_available().saturating_mul(fs.fragment_size());
            if free < READY_HEADROOM_BYTES {
                return Err(StoreError::Full);
            }
        }
        Ok(())
    }

    /// Runs a read on a pooled read-only connection.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Reader<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // One read transaction per call: every query of it sees the same snapshot (a step
        // decides on one consistent view), and the page cache is validated once, not per query.
        // BEGIN/COMMIT are cached statements: parsing them on every read would cost more than
        // the reads themselves.
        self.inner.readers.with(|conn| {
            conn.prepare_cached("BEGIN")?.execute([])?;
            let result = f(&Reader::hot(conn, &self.inner.hot));
            // Ending a read-only transaction cannot lose anything; an error here only means
            // the transaction already ended.
            let _ = conn
                .prepare_cached("COMMIT")
                .and_then(|mut end| end.execute([]));
            result
        })
    }

    /// Copies the database to `dest` with SQLite's online backup API, while the appliance
    /// keeps running.
    pub fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        self.inner.readers.with(|conn| backup(conn, dest))
    }

    /// Finishes queued writes and stops the writer thread. Later writes fail with
    /// [`StoreError::Closed`]; reads keep working.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let result = self.request(Lane::Background, WriteCmd::Shutdown).await;
        let handle = self
            .inner
            .writer
            .lock()
            .map_err(|_| StoreError::Closed)?
            .take();
        if let Some(handle) = handle {
            // The thread has replied to Shutdown; joining only waits for it to unwind.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        let checkpointer = self
            .inner
            .checkpoint
            .lock()
            .map_err(|_| StoreError::Closed)?
            .take();
        if let Some((stop, handle)) = checkpointer {
            // Off the runtime: the stop waits for a checkpoint in progress.
            let _ = tokio::task::spawn_blocking(move || {
                stop.stop();
                handle.join()
            })
            .await;
        }
        match result {
            Err(StoreError::Closed) => Ok(()),
            other => other,
        }
    }

    #[cfg(test)]
    async fn test_sql(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_owned();
        self.request(Lane::Background, |reply| WriteCmd::TestSql(sql, reply))
            .await
    }
}

/// Permissions of every file of the store (database, WAL, shared memory, backups): the
/// journal names operators and what they did, the device table holds token digests. Only
/// the appliance's user reads them, whatever the umask of whoever started it.
const PRIVATE_MODE: u32 = 0o600;

/// Creates the database file owner-only before SQLite opens it (SQLite gives the WAL and
/// shared-memory files the database's permissions when it creates them), and tightens the
/// files of a store made before this rule.
fn private_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |e: std::io::Error| StoreError::Open {
        path: path.display().to_string(),
        reason: format!("cannot create it owner-only: {e}"),
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(e)),
    }
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    for file in [path.to_path_buf(), wal_path(path), PathBuf::from(shm)] {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            // The umask cannot widen what chmod sets.
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(PRIVATE_MODE))
                .map_err(fail)?;
        }
    }
    Ok(())
}

/// Copies `src` into a new database at `dest` (owner-only, like the store).
pub fn backup(src: &Connection, dest: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |reason: String| StoreError::Open {
        path: dest.display().to_string(),
        reason,
    };
    // `create_new`: an existing file is never overwritten, even one that appears meanwhile.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(dest)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => fail("file exists; choose a new path".into()),
            _ => fail(e.to_string()),
        })?;
    file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))
        .map_err(|e| fail(e.to_string()))?;
    drop(file);
    let mut out = Connection::open(dest).map_err(|e| StoreError::Open {
        path: dest.display().to_string(),
        reason: e.to_string(),
    })?;
    let backup = rusqlite::backup::Backup::new(src, &mut out)?;
    backup.run_to_completion(256, Duration::from_millis(5), None)?;
    drop(backup);
    // One self-contained file: the copy leaves WAL mode, so opening it (to check it, to read
    // it) leaves no `-wal` / `-shm` beside it. The appliance turns WAL on again when it opens
    // a restored copy.
    out.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// Opens a database for reading only (CLI inspection while the appliance may be running).
/// Refuses a database newer than this build, like [`Store::open`].
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let text = path.display().to_string();
    if !path.exists() {
        return Err(StoreError::Open {
            path: text,
            reason: "no such file (has the appliance run yet? check store.path)".into(),
        });
    }
    check_header(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open {
        path: text.clone(),
        reason: e.to_string(),
    })?;
    configure(&conn, Duration::from_secs(5))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        // SQLite, but never migrated by holdfast: another program's file, or an empty one.
        return Err(StoreError::Open {
            path: text,
            reason: "an SQLite database without holdfast's schema (is store.path right?)".into(),
        });
    }
    schema::check_version(version, &text)?;
    Ok(conn)
}

/// Refuses a file that cannot be a database: empty (SQLite would take it for a new, empty
/// database and call it sound) or without SQLite's header.
fn check_header(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let fail = |reason: String| StoreError::Open {
        path: path.display().to_string(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut header = [0u8; 16];
    let mut n = 0;
    while n < header.len() {
        match file.read(&mut header[n..]) {
            Ok(0) => break,
            Ok(read) => n += read,
            Err(e) => return Err(fail(format!("cannot read it: {e}"))),
        }
    }
    if n == 0 {
        return Err(fail(
            "the file is empty (0 bytes), not a holdfast database; restore a backup (holdfast db backup makes them) or remove it so the appliance starts afresh".into(),
        ));
    }
    if n < header.len() || &header != b"SQLite format 3\0" {
        return Err(fail(
            "not an SQLite database (the file does not start with SQLite's header); is store.path right?".into(),
        ));
    }
    Ok(())
}

/// A few read-only connections, each behind its own lock. A caller takes the first free
/// one, or waits on one in turn; reads are short, so waits are too.
#[derive(Debug)]
pub struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicU64,
}

impl ReadPool {
    fn open(path: &Path, n: usize, busy_timeout: Duration) -> Result<ReadPool, StoreError> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&conn, busy_timeout)?;
            // Not memory-mapped: a reader whose snapshot changed drops its whole mapping
            // (SQLite unmaps on every such read transaction, and the floor commits with every
            // scan), and a munmap in a threaded process costs a TLB shootdown on every core
            // plus a page fault per page touched again: more than the read() calls it saves.
            conns.push(Mutex::new(conn));
        }
        Ok(ReadPool {
            conns,
            next: AtomicU64::new(0),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        for conn in &self.conns {
            if let Ok(guard) = conn.try_lock() {
                return f(&guard);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.conns.len();
        // A poisoned lock means a reader panicked mid-query; the connection itself is fine.
        let guard = self.conns[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests;
