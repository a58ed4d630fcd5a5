//! The command line: `holdfast run | demo | status | journal | db | conflicts | init | ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

// Output piped into `head` or a pager that quits early is not an error: stop quietly instead
// of panicking on the broken pipe (these shadow the std macros in this module).
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, LogFormat, RawConfig};
use crate::status::{CloudStatus, SiteStatus, Status, rfc3339};
use crate::store::{
    self, FloorCmd, JournalFilter, OpState, OperatorRow, Reader, Store, StoreOptions,
};
use crate::{demo, logging, pull, runtime};

/// `holdfast --version`: the version, the commit and the build date (see `edge/build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HOLDFAST_COMMIT"),
    ", built ",
    env!("HOLDFAST_BUILD_DATE"),
    ")"
);

/// Holdfast: keeps a warehouse working when the cloud is gone, and reconciles with Odoo
/// exactly once when it returns.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version = VERSION, propagate_version = true)]
pub struct Cli {
    /// Config file.
    #[arg(long, short, global = true, env = "HOLDFAST_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Log format (overrides log.format).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance with the config file.
    Run,
    /// Run the appliance on the built-in demo warehouse (no Odoo needed).
    Demo(DemoArgs),
    /// Show mode, queue, last sync and database figures.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the journal of floor operations.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Exchange with the configured Odoo now.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Devices: handhelds' tokens (issued here; only digests are stored), and the registry
    /// of scanners, printers and broker links.
    #[command(subcommand, visible_alias = "devices")]
    Device(DeviceCommand),
    /// Label printing: test a printer, list, reprint or cancel jobs.
    #[command(subcommand)]
    Print(PrintCommand),
    /// Operators who sign in on handhelds (badge and/or PIN).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Open workflow sessions (a picking open on a handheld, a count, a transfer).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Conflicts between the floor and the cloud: list, show, decide.
    #[command(subcommand)]
    Conflicts(ConflictsCommand),
    /// Site managers who sign in to the console (roles: viewer reads, manager also acts).
    #[command(subcommand)]
    Manager(ManagerCommand),
    /// The audit trail: manager actions and console sign-ins, newest first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Play the demo's simulated cloud (a running `holdfast demo`): switch its link (up, down
    /// = connections refused, blackhole = no answers, reset, stall = open connections go
    /// silent), or act as another Odoo user (cancel-picking ID, validate-picking ID).
    DemoCloud {
        action: String,
        /// The picking, for cancel-picking and validate-picking.
        picking: Option<i64>,
        /// The demo's data directory (default: the one `holdfast demo` uses).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Play the demo's scanners (a running `holdfast demo`): each SCAN goes through the serial
    /// scanner's pseudo-terminal or the MQTT scanner, and what the scanner heard is printed.
    /// Command barcodes: HF:QTY:<n>, HF:VALIDATE, HF:VALIDATE:BACKORDER, HF:FINISH, HF:LABEL,
    /// HF:CANCEL, HF:LOGOUT.
    DemoScan {
        /// serial or mqtt.
        #[arg(long, default_value = "serial")]
        via: String,
        #[arg(required = true)]
        scans: Vec<String>,
        /// The demo's data directory (default: the one `holdfast demo` uses).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run an Odoo simulator (for trials and tests): Odoo's wire formats and stock rules.
    Sim(SimArgs),
    /// Central ops: every site's sync health from the telemetry broker, flagging dark and
    /// stale sites (needs no config; the broker's retained statuses are the only state).
    Fleet(crate::fleet::FleetArgs),
    /// Check the config file (every problem named) and exit; nothing is started or opened.
    Check,
    /// Write a commented example config file.
    Init {
        /// Where to write it (default: the --config path).
        path: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Data directory (config and database); kept after exit.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// List entries, newest first.
    List {
        /// Only entries in this state (pending, in_flight, applied, conflict, rejected, resolved).
        #[arg(long)]
        state: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only entries older than this sequence number (paging).
        #[arg(long)]
        before: Option<i64>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one entry, with its payload and effects.
    Show {
        /// Sequence number or id (UUID).
        entry: String,
    },
}

/// The first line of an entry's last error, cut to fit the listing (`journal show` has all).
fn short_error(error: &str) -> String {
    const WIDTH: usize = 72;
    let line = error.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= WIDTH {
        return line.to_owned();
    }
    let cut: String = line.chars().take(WIDTH - 1).collect();
    format!("{cut}…")
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Address to serve on (loopback only is wise: it accepts a fixed API key).
    #[arg(long, default_value = "127.0.0.1:8069")]
    listen: std::net::SocketAddr,
    /// Odoo major version to imitate: 18 (JSON-RPC) or 19 (JSON-2 too).
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u32).range(16..=19))]
    odoo_version: u32,
    /// Products in the generated data set.
    #[arg(long, default_value_t = 40)]
    products: usize,
    /// Quants in the generated data set.
    #[arg(long, default_value_t = 120)]
    quants: usize,
    /// Pickings in the generated data set.
    #[arg(long, default_value_t = 12)]
    pickings: usize,
    /// Seed of the data set (same seed, same data).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Latency added to every answer, in milliseconds (a WAN in front of Odoo).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Keep the simulated database in this JSON file: read at start if it exists (instead
    /// of generating), written at exit.
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Issue (or re-issue) a token for a device; prints it once.
    Issue {
        /// Device id: letters, digits, '-' or '_' (e.g. handheld-07).
        id: String,
    },
    /// Revoke a device's issued token; it is refused from now on.
    Revoke { id: String },
    /// List handhelds with issued tokens, then every scanner, printer and broker link the
    /// appliance knows (state, last seen, counters, last error).
    List {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PrintCommand {
    /// Print a test label on a printer and wait for the running appliance to send it.
    Test {
        printer: String,
        /// Seconds to wait for the printer to take it.
        #[arg(long, default_value_t = 15)]
        wait: u64,
    },
    /// List print jobs, newest first.
    Jobs {
        /// Only jobs in this state (queued, sending, sent, unknown, cancelled).
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        printer: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Print a job's label again, as a new job (the only way an unknown job prints again).
    Reprint { id: i64 },
    /// Cancel a queued job, or one whose outcome is unknown.
    Cancel { id: i64 },
    /// Check site label templates as the appliance does at start and on reload (each file
    /// rendered with sample data): those in `printing.templates`, or in DIR before they go
    /// live. `systemctl reload holdfast` then puts them in use without a restart.
    Templates { dir: Option<PathBuf> },
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Add an operator, or update one with the same id.
    Add {
        /// Operator id: what they type at a PIN sign-in (e.g. alice).
        id: String,
        /// Name shown on the handheld.
        #[arg(long)]
        name: String,
        /// Badge barcode that signs them in.
        #[arg(long)]
        badge: Option<String>,
        /// Read a PIN (floor.min_pin_digits, default 4, to 12 digits) from standard input.
        #[arg(long)]
        pin_stdin: bool,
        /// The handheld's language for this operator (en, de); default: as the device asks.
        #[arg(long)]
        language: Option<String>,
    },
    /// Stop an operator from signing in (their journal entries stay).
    Remove { id: String },
    /// List operators.
    List,
}

#[derive(Debug, Subcommand)]
enum ConflictsCommand {
    /// Open and flagged conflicts (or every one with --all), newest first.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One conflict with both sides' values and the entries it holds back.
    Show { id: i64 },
    /// Decide a conflict: discard (with a note), retry (after a fix in Odoo), recreate (as a
    /// new picking in Odoo), or acknowledge (a flagged one).
    Resolve {
        id: i64,
        #[arg(long)]
        action: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Who decides (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ManagerCommand {
    /// Add a manager. Without --password-stdin a strong password is generated and printed
    /// once.
    Add {
        /// Name they sign in with: letters, digits, '.', '-', '_' or '@'.
        name: String,
        /// viewer (reads everything) or manager (also decides and acts).
        #[arg(long)]
        role: String,
        /// Read the password (at least 10 characters) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (generated and printed once without --password-stdin); the
    /// manager's console sessions end.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a manager; their console sessions end.
    Remove { name: String },
    /// List managers.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// List open sessions: who has which picking open on which device.
    List,
    /// Cancel an open session whose operator is gone (frees its picking; what was recorded
    /// stays in the journal).
    Cancel { id: String },
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Pull what changed in the site's slice of Odoo into the mirror (everything, the
    /// first time).
    Pull {
        /// Pull every record in scope, and delete what Odoo no longer has.
        #[arg(long)]
        full: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Check the database's integrity (safe while the appliance runs).
    Check {
        /// The database file (default: store.path of the config).
        #[arg(long)]
        database: Option<PathBuf>,
    },
    /// Copy the database to a new file with SQLite's online backup (safe while running).
    Backup {
        /// Destination file; must not exist.
        #[arg(required_unless_present = "into", conflicts_with = "into")]
        path: Option<PathBuf>,
        /// Rotated backups instead: a new `holdfast-<time>.db` in this directory, checked,
        /// and the oldest beyond --keep removed (what the backup timer runs).
        #[arg(long)]
        into: Option<PathBuf>,
        #[arg(long, default_value_t = 7, requires = "into")]
        keep: usize,
        /// The database file (default: store.path of the config; with this the config is
        /// not read, so the backup needs none of the appliance's secrets).
        #[arg(long)]
        database: Option<PathBuf>,
    },
}

/// The database a `db` command works on: as given, or the config's.
fn database_path(cli_config: &Path, given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path),
        None => Ok(load_config(cli_config)?.store.path),
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    Ok(RawConfig::load(path, false)?.validate()?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    let mut options = StoreOptions::new(&config.store.path, &config.site.id);
    options.max_size_bytes = config.store.max_size_bytes;
    Store::open(options).with_context(|| format!("opening {}", config.store.path.display()))
}

async fn bind(config: &Config, hint: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}{hint}", config.http.listen))
}

/// Runs a short command on the store (while the appliance may be running: SQLite arbitrates
/// between the two writers), then commits and closes it.
fn with_store(
    config: &Path,
    f: impl AsyncFnOnce(&Store) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let config = load_config(config)?;
    runtime()?.block_on(async {
        let store = open_store(&config)?;
        let result = f(&store).await;
        store.shutdown().await?;
        result
    })
}

pub(crate) fn valid_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{id:?} is not allowed; use 1-64 letters, digits, '-' or '_'");
    }
    Ok(())
}

async fn device_command(
    store: &Store,
    cmd: DeviceCommand,
    lan: &crate::config::LanConfig,
) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Issue { id } => {
            valid_id(&id)?;
            if let Some(owner) = lan.owner_of(&id) {
                bail!(
                    "{id:?} is {owner} in the config: a device id belongs to one transport; give the handheld another id"
                );
            }
            let token = crate::floor::new_token();
            store
                .floor(FloorCmd::IssueDevice {
                    id: id.clone(),
                    token_sha256: crate::floor::sha256_hex(token.as_bytes()),
                })
                .await?;
            audit(
                store,
                "device.issue",
                format!("device:{id}"),
                serde_json::json!({}),
            )
            .await?;
            eprintln!("token for device {id} (shown once; enter it on the device):");
            println!("{token}");
        }
        DeviceCommand::Revoke { id } => {
            store
                .floor(FloorCmd::RevokeDevice { id: id.clone() })
                .await?;
            audit(
                store,
                "device.revoke",
                format!("device:{id}"),
                serde_json::json!({}),
            )
            .await?;
            println!("device {id} revoked");
        }
        DeviceCommand::List { json } => {
            let issued = store.read(|r| r.issued_devices())?;
            let registry = store.read(|r| r.registry())?;
            if json {
                let issued: Vec<_> = issued
                    .iter()
                    .map(|(id, at, revoked)| serde_json::json!({"id": id, "issued_at": at, "revoked_at": revoked}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"handhelds": issued, "devices": registry})
                );
                return Ok(());
            }
            println!("HANDHELDS (issued tokens)");
            println!("{:<24}  {:<24}  REVOKED", "DEVICE", "ISSUED");
            for (id, issued, revoked) in issued {
                println!(
                    "{id:<24}  {:<24}  {}",
                    crate::status::rfc3339(issued),
                    revoked.map(crate::status::rfc3339).unwrap_or_default()
                );
            }
            println!();
            println!(
                "SCANNERS, PRINTERS AND LINKS (as the running appliance last saved them; * = seen, not configured)"
            );
            println!(
                "{:<20} {:<8} {:<11} {:<8} {:<24} {:>7} {:>7} {:>6}  LAST ERROR",
                "DEVICE", "KIND", "TRANSPORT", "STATE", "LAST SEEN", "SCANS", "REFUSED", "ERRORS"
            );
            for d in registry {
                println!(
                    "{:<20} {:<8} {:<11} {:<8} {:<24} {:>7} {:>7} {:>6}  {}",
                    d.id,
                    d.kind,
                    d.transport,
                    if d.configured || d.kind != "scanner" {
                        d.state.clone()
                    } else {
                        format!("{}*", d.state)
                    },
                    d.last_seen
                        .map(crate::status::rfc3339)
                        .unwrap_or_else(|| "never".into()),
                    d.scans,
                    d.refused,
                    d.errors,
                    d.last_error.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

async fn print_command(store: &Store, config: &Config, cmd: PrintCommand) -> anyhow::Result<()> {
    use crate::store::{DeviceCmd, PrintJobFilter};
    let by = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "manager".into())
    );
    match cmd {
        PrintCommand::Test { printer, wait } => {
            let printing = crate::printing::Printing::new(store.clone(), config.lan.clone());
            let target = printing.printer_for(Some(&printer), None)?;
            let label = holdfast_devices::label::Label::Test {
                printer: printer.clone(),
                at: crate::status::rfc3339(crate::store::now_ms()),
            };
            let id = printing
                .enqueue(target, &label, &by, Some("test".into()))
                .await?;
            println!("test label queued as job {id} on {printer}");
            let deadline = std::time::Instant::now() + Duration::from_secs(wait);
            loop {
                let job = store
                    .read(|r| r.print_job(id))?
                    .context("the job disappeared")?;
                match job.state.as_str() {
                    "sent" => {
                        println!("sent: the printer took job {id}");
                        return Ok(());
                    }
                    "unknown" | "cancelled" => bail!(
                        "job {id} is {}: {}",
                        job.state,
                        job.last_error.unwrap_or_default()
                    ),
                    _ if std::time::Instant::now() >= deadline => {
                        let printer_state = store
                            .read(|r| r.registry())?
                            .into_iter()
                            .find(|d| d.id == printer)
                            .map(|d| format!("{} ({})", d.state, d.last_error.unwrap_or_default()))
                            .unwrap_or_else(|| "never seen".into());
                        bail!(
                            "job {id} still {} after {wait} s; printer {printer}: {printer_state}. Is `holdfast run` running? The job stays queued until the printer takes it.",
                            job.state
                        )
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
        PrintCommand::Jobs {
            state,
            printer,
            limit,
        } => {
            let jobs = store.read(|r| {
                r.print_jobs(&PrintJobFilter {
                    printer,
                    state,
                    limit,
                })
            })?;
            println!(
                "{:>6}  {:<14} {:<10} {:<9} {:>3}  {:<24}  LAST ERROR",
                "JOB", "PRINTER", "TEMPLATE", "STATE", "TRY", "CREATED"
            );
            for j in jobs {
                println!(
                    "{:>6}  {:<14} {:<10} {:<9} {:>3}  {:<24}  {}",
                    j.id,
                    j.printer,
                    j.template,
                    j.state,
                    j.attempts,
                    crate::status::rfc3339(j.created_at),
                    j.last_error.unwrap_or_default()
                );
            }
        }
        PrintCommand::Reprint { id } => {
            let new = store
                .devices(DeviceCmd::Reprint { id, by: by.clone() })
                .await?;
            let detail = serde_json::json!({"by": by, "new_job": new});
            audit(store, "print.reprint", format!("print_job:{id}"), detail).await?;
            println!("job {id} reprinted as job {new}");
        }
        PrintCommand::Cancel { id } => {
            store
                .devices(DeviceCmd::Cancel { id, by: by.clone() })
                .await?;
            let detail = serde_json::json!({ "by": by });
            audit(store, "print.cancel", format!("print_job:{id}"), detail).await?;
            println!("job {id} cancelled");
        }
        PrintCommand::Templates { dir } => {
            use holdfast_devices::template::{NAMES, Templates};
            let dir = dir
                .or_else(|| config.lan.printing.templates_dir.clone())
                .context("no templates to check: name a directory, or set printing.templates")?;
            let templates = Templates::load(&dir)?;
            for name in NAMES {
                match templates.files().get(name) {
                    Some(file) => println!("{name:<9} {file}"),
                    None => println!("{name:<9} (built in)"),
                }
            }
            println!("all templates in {} render", dir.display());
        }
    }
    Ok(())
}

async fn operator_command(
    store: &Store,
    cmd: OperatorCommand,
    min_pin_digits: usize,
) -> anyhow::Result<()> {
    match cmd {
        OperatorCommand::Add {
            id,
            name,
            badge,
            pin_stdin,
            language,
        } => {
            valid_id(&id)?;
            let language = crate::i18n::Lang::choice(language.as_deref())
                .map_err(|e| anyhow::anyhow!("--language: {e}"))?
                .map(|l| l.code().to_owned());
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let pin_hash = if pin_stdin {
                let mut pin = String::new();
                std::io::stdin()
                    .read_line(&mut pin)
                    .context("reading the PIN from standard input")?;
                let pin = pin.trim();
                if !(min_pin_digits..=12).contains(&pin.len())
                    || !pin.bytes().all(|b| b.is_ascii_digit())
                {
                    bail!(
                        "a PIN is {min_pin_digits} to 12 digits at this site (floor.min_pin_digits)"
                    );
                }
                Some(crate::floor::hash_pin(pin).map_err(anyhow::Error::msg)?)
            } else {
                None
            };
            if badge.is_none() && pin_hash.is_none() {
                bail!("give the operator a --badge, a PIN (--pin-stdin), or both");
            }
            store
                .floor(FloorCmd::AddOperator(OperatorRow {
                    id: id.clone(),
                    name,
                    badge,
                    pin_hash,
                    active: true,
                    language,
                }))
                .await?;
            println!("operator {id} saved");
        }
        OperatorCommand::Remove { id } => {
            store
                .floor(FloorCmd::DeactivateOperator { id: id.clone() })
                .await?;
            println!("operator {id} can no longer sign in");
        }
        OperatorCommand::List => {
            println!(
                "{:<16}  {:<24}  {:<16}  {:<4}  {:<8}  ACTIVE",
                "ID", "NAME", "BADGE", "PIN", "LANGUAGE"
            );
            for o in store.read(|r| r.operators())? {
                println!(
                    "{:<16}  {:<24}  {:<16}  {:<4}  {:<8}  {}",
                    o.id,
                    o.name,
                    o.badge.as_deref().unwrap_or("-"),
                    if o.pin_hash.is_some() { "yes" } else { "no" },
                    o.language.as_deref().unwrap_or("-"),
                    if o.active { "yes" } else { "no" }
                );
            }
        }
    }
    Ok(())
}

async fn conflicts_command(store: &Store, cmd: ConflictsCommand) -> anyhow::Result<()> {
    match cmd {
        ConflictsCommand::List { all, json } => {
            let rows = store.read(|r| {
                if all {
                    r.conflicts(None, 1000)
                } else {
                    let mut rows = r.conflicts(Some("open"), 1000)?;
                    rows.extend(r.conflicts(Some("flagged"), 1000)?);
                    Ok(rows)
                }
            })?;
            if json {
                for row in &rows {
                    println!("{}", serde_json::to_string(row)?);
                }
                return Ok(());
            }
            println!(
                "{:>5}  {:<8}  {:<24}  {:<14}  {:<20}  MESSAGE",
                "ID", "STATUS", "KIND", "KEY", "SINCE"
            );
            for c in &rows {
                println!(
                    "{:>5}  {:<8}  {:<24}  {:<14}  {:<20}  {}",
                    c.id,
                    c.status,
                    c.kind,
                    c.causal_key,
                    crate::status::rfc3339(c.created_at),
                    c.message
                );
            }
            if rows.is_empty() {
                println!("(none)");
            }
        }
        ConflictsCommand::Show { id } => {
            let (row, entries) = store.read(|r| {
                let row = r
                    .conflict(id)?
                    .ok_or_else(|| store::StoreError::NotFound(format!("conflict {id}")))?;
                let entries = r.entries(&row.seqs)?;
                Ok((row, entries))
            })?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"conflict": row, "entries": entries})
                )?
            );
        }
        ConflictsCommand::Resolve {
            id,
            action,
            note,
            by,
        } => {
            let action = holdfast_sync::ops::ResolveAction::parse(&action).with_context(|| {
                format!("--action {action:?} is not one of: discard, retry, recreate, acknowledge")
            })?;
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "manager".into());
            let seq = crate::push::resolve(store, id, action, &note, &by).await?;
            let detail = serde_json::json!({
                "action": action.as_str(), "note": note, "by": by, "resolution_seq": seq,
            });
            audit(store, "conflict.resolve", format!("conflict:{id}"), detail).await?;
            println!(
                "conflict {id}: {} by {by}, recorded as journal entry {seq}",
                action.as_str()
            );
        }
    }
    Ok(())
}

/// Where the appliance of `config` answers on this machine: its listen address, on loopback
/// when it listens on every interface; a demo listening on port 0 wrote the port it got
/// beside its config.
fn loopback_addr(config_path: &Path, config: &Config) -> std::net::SocketAddr {
    let mut addr = config.http.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    if addr.port() == 0
        && let Some(serving) = config_path
            .parent()
            .and_then(|d| std::fs::read_to_string(d.join(demo::SERVING_FILE)).ok())
            .and_then(|a| a.trim().parse().ok())
    {
        addr = serving;
    }
    addr
}

/// The running appliance's status (`GET /api/v1/status`, with the manager's token from the
/// config), as JSON or as the lines to print; `Err` holds the note to print above the
/// database's figures.
async fn ask_appliance(config_path: &Path, config: &Config, json: bool) -> Result<String, String> {
    let addr = loopback_addr(config_path, config);
    let cannot = |e: &dyn std::fmt::Display| {
        format!("cannot ask the appliance ({e}); figures from the database")
    };
    // Over HTTPS the appliance is trusted by its certificate file, not by name (loopback).
    let tls = crate::tls::cert_path(&config.http.tls, &config.store.path);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{addr}/api/v1/status");
    // Loopback only: never through a proxy from the environment.
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5));
    if let Some(cert) = tls {
        let pinned = crate::tls::pinned_client_config(&cert).map_err(|e| cannot(&e))?;
        builder = builder.use_preconfigured_tls(pinned);
    }
    let client = builder.build().map_err(|e| cannot(&e))?;
    let get = async |url: &str| -> Result<String, String> {
        let mut request = client.get(url);
        if let Some(token) = &config.http.manager_token {
            request = request.bearer_auth(token.expose());
        }
        let answer = request.send().await.map_err(|e| {
            if e.is_connect() {
                crate::status::NOT_RUNNING.to_owned()
            } else {
                format!("the appliance at {addr} did not answer ({e}); figures from the database")
            }
        })?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| {
            format!(
                "the appliance at {addr} answered incompletely ({e}); figures from the database"
            )
        })?;
        if status.is_success() {
            Ok(body)
        } else if status == reqwest::StatusCode::UNAUTHORIZED {
            Err(format!(
                "the appliance at {addr} wants the manager's token for its status (set http.manager_token_file in the config); figures from the database"
            ))
        } else {
            Err(format!(
                "the appliance at {addr} answered {status}; figures from the database"
            ))
        }
    };
    let body = get(&base).await?;
    let live: serde_json::Value = serde_json::from_str(&body).map_err(|_| {
        format!("{addr} does not answer as a holdfast appliance; figures from the database")
    })?;
    // Something else may listen there (another site's appliance, a test): only this
    // config's appliance counts.
    let same_path = |served: &str| {
        let ours = &config.store.path;
        Path::new(served) == ours.as_path()
            || matches!(
                (std::fs::canonicalize(served), std::fs::canonicalize(ours)),
                (Ok(a), Ok(b)) if a == b
            )
    };
    let site = live["site"]["id"].as_str().unwrap_or_default();
    let db = live["database"]["path"].as_str().unwrap_or_default();
    if site != config.site.id || !same_path(db) {
        return Err(format!(
            "{addr} answers for another appliance (site {site:?}, database {db}); figures from the database"
        ));
    }
    if json {
        serde_json::to_string_pretty(&live)
            .map(|mut text| {
                text.push('\n');
                text
            })
            .map_err(|e| format!("cannot print the appliance's status ({e})"))
    } else {
        get(&format!("{base}?format=text")).await
    }
}

/// Plays scans on a running demo's scanners through its API.
async fn demo_scan(data_dir: Option<PathBuf>, via: &str, scans: &[String]) -> anyhow::Result<()> {
    let (base, token) = demo_api(data_dir)?;
    let client = reqwest::Client::new();
    for scan in scans {
        let answer = client
            .post(format!("{base}/api/v1/demo/scan"))
            .bearer_auth(token.expose())
            .json(&serde_json::json!({"via": via, "scan": scan}))
            .send()
            .await
            .context("is `holdfast demo` running?")?;
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{scan}: {status}: {body}");
        }
        let ok = body.get("ok").and_then(|v| v.as_bool()).unwrap_or(false);
        let text = body
            .get("message")
            .or_else(|| body.get("prompt"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let code = body.get("code").and_then(|v| v.as_str()).unwrap_or("");
        println!(
            "{} {scan:<36} {}{}",
            if ok { "good" } else { "BAD " },
            if ok {
                String::new()
            } else {
                format!("{code}: ")
            },
            text
        );
    }
    Ok(())
}

/// Switches a running demo's cloud link through its API.
/// Where a running demo serves (the address it bound, which `--listen 127.0.0.1:0` leaves
/// to the system) and its manager token.
fn demo_api(data_dir: Option<PathBuf>) -> anyhow::Result<(String, config::Secret)> {
    let dir = data_dir.unwrap_or_else(demo::default_dir);
    let config = load_config(&dir.join("holdfast.toml"))?;
    let token = config
        .http
        .manager_token
        .clone()
        .context("the demo config has no manager token")?;
    let addr = std::fs::read_to_string(dir.join(demo::SERVING_FILE))
        .map(|a| a.trim().to_owned())
        .unwrap_or_else(|_| config.http.listen.to_string());
    Ok((format!("http://{addr}"), token))
}

async fn demo_cloud(data_dir: Option<PathBuf>, body: serde_json::Value) -> anyhow::Result<()> {
    let (base, token) = demo_api(data_dir)?;
    let url = format!("{base}/api/v1/demo/cloud");
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token.expose())
        .json(&body)
        .send()
        .await
        .with_context(|| format!("is `holdfast demo` running? cannot reach {url}"))?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{}",
            body["message"]
                .as_str()
                .unwrap_or("the demo refused the switch")
        );
    }
    let mut said = format!(
        "simulated cloud link: {}",
        body["link"].as_str().unwrap_or("?")
    );
    if let Some(id) = body["cancelled"].as_i64() {
        said.push_str(&format!("; picking {id} cancelled in the simulated Odoo"));
    }
    if let Some(id) = body["validated"].as_i64() {
        said.push_str(&format!("; picking {id} validated in the simulated Odoo"));
    }
    println!("{said}");
    Ok(())
}

/// Who acts from the command line, as the audit trail names them.
fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

/// Writes an audit record of a command-line action.
async fn audit(
    store: &Store,
    action: &str,
    target: String,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    store
        .managers(store::ManagerCmd::Audit(store::NewAudit {
            actor: cli_actor(),
            action: action.into(),
            target: Some(target),
            detail,
        }))
        .await
        .context("writing the audit record")?;
    Ok(())
}

/// A password from standard input (one line), or a generated one (`true`: print it).
fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((crate::managers::generate_password(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    crate::managers::valid_password(&password).map_err(anyhow::Error::msg)?;
    Ok((password, false))
}

async fn manager_command(store: &Store, cmd: ManagerCommand) -> anyhow::Result<()> {
    use crate::managers::{Role, hash_password, valid_name};
    use store::{ManagerCmd, NewAudit};
    let audit = |action: &str, name: &str, detail: serde_json::Value| NewAudit {
        actor: cli_actor(),
        action: action.into(),
        target: Some(format!("manager:{name}")),
        detail,
    };
    match cmd {
        ManagerCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            valid_name(&name).map_err(anyhow::Error::msg)?;
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role:?} is not one of: viewer, manager"))?;
            let (password, generated) = read_password(password_stdin)?;
            let password_hash = hash_password(&password).map_err(anyhow::Error::msg)?;
            store
                .managers(ManagerCmd::Add {
                    name: name.clone(),
                    role: role.as_str().into(),
                    password_hash,
                    audit: audit(
                        "manager.add",
                        &name,
                        serde_json::json!({"role": role.as_str()}),
                    ),
                })
                .await?;
            if generated {
                eprintln!("password for manager {name} (shown once):");
                println!("{password}");
            } else {
                println!("manager {name} added as {}", role.as_str());
            }
        }
        ManagerCommand::Passwd {
            name,
            password_stdin,
        } => {
            valid_name(&name).map_err(anyhow::Error::msg)?;
            let (password, generated) = read_password(password_stdin)?;
            let password_hash = hash_password(&password).map_err(anyhow::Error::msg)?;
            store
                .managers(ManagerCmd::Passwd {
                    name: name.clone(),
                    password_hash,
                    audit: audit("manager.passwd", &name, serde_json::json!({})),
                })
                .await?;
            if generated {
                eprintln!("new password for manager {name} (shown once; their sessions ended):");
                println!("{password}");
            } else {
                println!("password of manager {name} changed; their sessions ended");
            }
        }
        ManagerCommand::Remove { name } => {
            store
                .managers(ManagerCmd::Remove {
                    name: name.clone(),
                    audit: audit("manager.remove", &name, serde_json::json!({})),
                })
                .await?;
            println!("manager {name} removed; their sessions ended");
        }
        ManagerCommand::List { json } => {
            let rows = store.read(|r| r.managers())?;
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "name": m.name,
                            "role": m.role,
                            "created_at": rfc3339(m.created_at),
                            "updated_at": rfc3339(m.updated_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::json!({ "managers": rows }));
                return Ok(());
            }
            println!(
                "{:<24}  {:<8}  {:<24}  PASSWORD CHANGED",
                "NAME", "ROLE", "ADDED"
            );
            for m in rows {
                println!(
                    "{:<24}  {:<8}  {:<24}  {}",
                    m.name,
                    m.role,
                    rfc3339(m.created_at),
                    rfc3339(m.updated_at)
                );
            }
        }
    }
    Ok(())
}

async fn session_command(store: &Store, cmd: SessionCommand) -> anyhow::Result<()> {
    match cmd {
        SessionCommand::List => {
            println!(
                "{:<36}  {:<8}  {:<16}  {:<12}  {:<16}  UPDATED",
                "SESSION", "WORKFLOW", "PICKING", "OPERATOR", "DEVICE"
            );
            let rows = store.read(|r| {
                r.open_sessions(None)?
                    .into_iter()
                    .map(|s| {
                        let picking = match s.picking_id {
                            Some(id) => r.picking_header(id)?.map(|(name, _, _)| name),
                            None => None,
                        };
                        Ok((s, picking))
                    })
                    .collect::<Result<Vec<_>, store::StoreError>>()
            })?;
            for (s, picking) in rows {
                println!(
                    "{:<36}  {:<8}  {:<16}  {:<12}  {:<16}  {}",
                    s.id,
                    s.workflow,
                    picking.unwrap_or_else(|| "-".into()),
                    s.operator,
                    s.device,
                    crate::status::rfc3339(s.updated_at)
                );
            }
        }
        SessionCommand::Cancel { id } => {
            store
                .floor(FloorCmd::CancelSession { id: id.clone() })
                .await?;
            audit(
                store,
                "session.cancel",
                format!("session:{id}"),
                serde_json::json!({}),
            )
            .await?;
            println!("session {id} cancelled; what it recorded stays in the journal");
        }
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check => {
            let config = load_config(&cli.config)?;
            println!(
                "{}: config is valid (site {}, Odoo {})",
                cli.config.display(),
                config.site.id,
                config
                    .odoo
                    .as_ref()
                    .map_or("not configured", |o| o.url.as_str())
            );
        }
        Command::Run => {
            let config = load_config(&cli.config)?;
            logging::init(
                cli.log_format.unwrap_or(config.log.format),
                &config.log.level,
            );
            runtime()?.block_on(async {
                let listener = bind(&config, "").await?;
                let store = open_store(&config)?;
                if config.odoo.is_none() {
                    tracing::warn!(
                        "no [odoo] section: serving the local copy only, nothing is reconciled"
                    );
                }
                runtime::run(&config, store, listener, None).await
            })?;
        }
        Command::Demo(args) => {
            let dir = args.data_dir.unwrap_or_else(demo::default_dir);
            runtime()?.block_on(async {
                let cloud = demo::start_cloud(&dir).await?;
                let link = demo::DemoCloud::start(&cloud).await?;
                let devices = demo::lan::DemoLan::start(&dir).await?;
                let config_path = demo::write_config(
                    &dir,
                    &args.listen,
                    &cloud,
                    &link.url(),
                    Some(&devices),
                )?;
                let telemetry_broker = devices.broker();
                let link = link.with_lan(devices);
                let config = load_config(&config_path)?;
                logging::init(
                    cli.log_format.unwrap_or(config.log.format),
                    &config.log.level,
                );
                let listener = bind(
                    &config,
                    " (another demo running? try --listen 127.0.0.1:8081)",
                )
                .await?;
                let addr = listener.local_addr()?;
                std::fs::write(dir.join(demo::SERVING_FILE), addr.to_string())
                    .context("writing the demo's address")?;
                let store = open_store(&config)?;
                let odoo = config.odoo.as_ref().context("demo config has no [odoo]")?;
                let mut puller = pull::connect(&store, odoo, Default::default()).await?;
                let report = puller
                    .pull(pull::PullKind::Full, &Default::default())
                    .await?;
                demo::seed_operators(&store).await?;
                demo::seed_manager(&store).await?;
                println!("Holdfast demo warehouse is running.");
                println!(
                    "  pulled {} records from the simulated Odoo at {}",
                    report.records,
                    cloud.url()
                );
                println!(
                    "  handheld: http://{addr}/ui/#token={}  (sign in: badge {} or operator {} PIN {})",
                    demo::DEMO_TOKEN,
                    demo::DEMO_OPERATORS[0].badge,
                    demo::DEMO_OPERATORS[0].id,
                    demo::DEMO_OPERATORS[0].pin
                );
                println!(
                    "  console:  http://{addr}/console/  (site manager: {} / {})",
                    demo::DEMO_MANAGER,
                    demo::DEMO_MANAGER_PASSWORD
                );
                // Tests and scripts read the address from this line: keep its shape.
                println!("  status:   http://{addr}/api/v1/status");
                println!(
                    "  devices:  http://{addr}/api/v1/pickings with \"Authorization: Bearer {}\"",
                    demo::DEMO_TOKEN
                );
                println!(
                    "  outage:   holdfast demo-cloud down  (then up; another Odoo user: holdfast demo-cloud cancel-picking 2; conflicts: holdfast --config {} conflicts list)",
                    config_path.display()
                );
                println!(
                    "  manager:  http://{addr}/api/v1/conflicts with \"Authorization: Bearer {}\"",
                    demo::DEMO_MANAGER_TOKEN
                );
                println!(
                    "  scanners: holdfast demo-scan --via {} OP-ALICE WH/INT/00001 ...  (serial port {}; labels land in {})",
                    if cfg!(feature = "demo-broker") {
                        "serial|mqtt"
                    } else {
                        "serial"
                    },
                    dir.join("scanner-tty").display(),
                    dir.join("labels").display()
                );
                if let Some(broker) = telemetry_broker {
                    println!(
                        "  central ops: holdfast fleet --broker {broker} --watch  (status retained on holdfast/demo/status, events on holdfast/demo/events)"
                    );
                }
                println!("  data:     {}", dir.display());
                println!(
                    "  inspect:  holdfast --config {} journal list",
                    config_path.display()
                );
                println!("Stop with Ctrl-C.");
                runtime::run(&config, store, listener, Some(link)).await
            })?;
        }
        Command::Sync(SyncCommand::Pull { full }) => {
            let config = load_config(&cli.config)?;
            logging::init(
                cli.log_format.unwrap_or(config.log.format),
                &config.log.level,
            );
            let Some(odoo) = config.odoo.clone() else {
                bail!(
                    "no [odoo] section in {}: nothing to pull from",
                    cli.config.display()
                );
            };
            let kind = if full {
                pull::PullKind::Full
            } else {
                pull::PullKind::Incremental
            };
            let report = runtime()?.block_on(async {
                let store = open_store(&config)?;
                let report = async {
                    let mut puller = pull::connect(&store, &odoo, Default::default()).await?;
                    puller.pull(kind, &Default::default()).await
                }
                .await;
                store.shutdown().await?;
                report
            })?;
            println!(
                "pulled {} records in {} pages ({} unchanged re-read); {} deleted; {} held back by unconfirmed entries; {} changes to owned pickings recorded",
                report.records,
                report.pages,
                report.unchanged,
                report.deleted,
                report.held_back,
                report.owned_changes
            );
        }
        Command::Device(cmd) => {
            let lan = load_config(&cli.config)?.lan;
            with_store(&cli.config, async |store| {
                device_command(store, cmd, &lan).await
            })?
        }
        Command::Print(cmd) => {
            let config = load_config(&cli.config)?;
            runtime()?.block_on(async {
                let store = open_store(&config)?;
                let result = print_command(&store, &config, cmd).await;
                store.shutdown().await?;
                result
            })?
        }
        Command::Operator(cmd) => {
            let min_pin_digits = load_config(&cli.config)?.floor.min_pin_digits;
            with_store(&cli.config, async |store| {
                operator_command(store, cmd, min_pin_digits).await
            })?
        }
        Command::Session(cmd) => {
            with_store(&cli.config, async |store| session_command(store, cmd).await)?
        }
        Command::Conflicts(cmd) => with_store(&cli.config, async |store| {
            conflicts_command(store, cmd).await
        })?,
        Command::Manager(cmd) => {
            with_store(&cli.config, async |store| manager_command(store, cmd).await)?
        }
        Command::Audit { limit, json } => {
            let config = load_config(&cli.config)?;
            let conn = store::open_read_only(&config.store.path)?;
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version < store::schema::SCHEMA_VERSION {
                bail!(
                    "{} is at schema {version}, from before the audit trail (schema {}): start the appliance once to bring it up to date",
                    config.store.path.display(),
                    store::schema::SCHEMA_VERSION
                );
            }
            let rows = Reader::new(&conn).audit(limit.clamp(1, 100_000))?;
            if json {
                for row in &rows {
                    println!("{}", serde_json::to_string(row)?);
                }
            } else {
                println!(
                    "{:>7}  {:<24}  {:<22}  {:<18}  {:<24}  DETAIL",
                    "SEQ", "AT", "ACTOR", "ACTION", "TARGET"
                );
                for row in rows {
                    println!(
                        "{:>7}  {:<24}  {:<22}  {:<18}  {:<24}  {}",
                        row.seq,
                        rfc3339(row.at),
                        row.actor,
                        row.action,
                        row.target.as_deref().unwrap_or("-"),
                        row.detail
                    );
                }
            }
        }
        Command::DemoCloud {
            action,
            picking,
            data_dir,
        } => {
            let body = match (action.as_str(), picking) {
                ("cancel-picking", Some(id)) => serde_json::json!({ "cancel_picking": id }),
                ("validate-picking", Some(id)) => serde_json::json!({ "validate_picking": id }),
                ("cancel-picking" | "validate-picking", None) => {
                    bail!("{action} needs the picking's id, e.g. `holdfast demo-cloud {action} 2`")
                }
                (link, _) => serde_json::json!({ "link": link }),
            };
            runtime()?.block_on(demo_cloud(data_dir, body))?;
        }
        Command::DemoScan {
            via,
            scans,
            data_dir,
        } => runtime()?.block_on(demo_scan(data_dir, &via, &scans))?,
        Command::Status { json } => {
            let config = load_config(&cli.config)?;
            // The running appliance knows more than its database (drain rate, the pull's
            // error, why the mode is what it is): ask it first.
            let asked = runtime()?.block_on(ask_appliance(&cli.config, &config, json));
            match asked {
                Ok(answer) => print!("{answer}"),
                Err(note) => {
                    let conn = store::open_read_only(&config.store.path)?;
                    let mut status = Status::collect(
                        &Reader::new(&conn),
                        SiteStatus {
                            id: config.site.id.clone(),
                            name: config.site.name.clone(),
                        },
                        CloudStatus {
                            target: config.odoo.as_ref().map(|o| o.url.clone()),
                        },
                        &config.store.path.display().to_string(),
                    )?;
                    status.note = Some(note);
                    if json {
                        println!("{}", serde_json::to_string_pretty(&status)?);
                    } else {
                        print!("{}", status.to_text());
                    }
                }
            }
        }
        Command::Journal(cmd) => {
            let config = load_config(&cli.config)?;
            let conn = store::open_read_only(&config.store.path)?;
            let reader = Reader::new(&conn);
            match cmd {
                JournalCommand::List {
                    state,
                    limit,
                    before,
                    json,
                } => {
                    let state = state
                        .map(|s| s.parse::<OpState>())
                        .transpose()
                        .map_err(anyhow::Error::msg)?;
                    let entries = reader.journal(&JournalFilter {
                        state,
                        before_seq: before,
                        device: None,
                        limit,
                    })?;
                    if json {
                        for e in &entries {
                            println!("{}", serde_json::to_string(e)?);
                        }
                    } else {
                        println!(
                            "{:>8}  {:<24}  {:<9}  {:<9}  {:<14}  {:<16}  ERROR",
                            "SEQ", "CREATED", "KIND", "STATE", "DEVICE", "KEY"
                        );
                        for e in &entries {
                            println!(
                                "{:>8}  {:<24}  {:<9}  {:<9}  {:<14}  {:<16}  {}",
                                e.seq,
                                rfc3339(e.created_at),
                                e.kind,
                                e.state,
                                e.device,
                                e.causal_key,
                                short_error(e.last_error.as_deref().unwrap_or(""))
                            );
                        }
                        if entries.is_empty() {
                            println!("(no entries)");
                        }
                    }
                }
                JournalCommand::Show { entry } => {
                    let Some(e) = reader.journal_entry(&entry)? else {
                        bail!("no journal entry {entry:?} (give a sequence number or an id)");
                    };
                    let effects = reader.effects(e.seq)?;
                    let attempts: Vec<serde_json::Value> = reader
                        .push_attempts(e.seq)?
                        .into_iter()
                        .map(|a| {
                            serde_json::json!({
                                "attempt": a.attempt,
                                "started": rfc3339(a.started_at),
                                "ended": a.ended_at.map(rfc3339),
                                "outcome": a.outcome,
                                "call": a.call,
                                "class": a.class,
                                "message": a.message,
                            })
                        })
                        .collect();
                    let mut value = serde_json::to_value(&e)?;
                    value["effects"] = serde_json::Value::Array(effects);
                    value["attempts"] = serde_json::Value::Array(attempts);
                    println!("{}", serde_json::to_string_pretty(&value)?);
                }
            }
        }
        Command::Db(DbCommand::Check { database }) => {
            let path = database_path(&cli.config, database)?;
            let conn = store::open_read_only(&path)?;
            let problems = Reader::new(&conn).integrity_check()?;
            if problems.is_empty() {
                println!("ok: {} passed the integrity check", path.display());
            } else {
                for p in &problems {
                    println!("{p}");
                }
                eprintln!(
                    "error: {} problem(s) found; restore a backup or contact support",
                    problems.len()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Db(DbCommand::Backup {
            path,
            into,
            keep,
            database,
        }) => {
            let db = database_path(&cli.config, database)?;
            match (path, into) {
                (_, Some(dir)) => {
                    let r = crate::backups::rotate(&db, &dir, keep)?;
                    println!(
                        "backup written to {} ({:.1} MB, integrity checked); {} older removed, {keep} kept at most",
                        r.written.display(),
                        r.size_bytes as f64 / 1e6,
                        r.removed.len()
                    );
                }
                (Some(path), None) => {
                    let conn = store::open_read_only(&db)?;
                    store::backup(&conn, &path)
                        .with_context(|| format!("backing up to {}", path.display()))?;
                    println!("backup written to {}", path.display());
                }
                (None, None) => bail!("give a destination file, or --into DIR"),
            }
        }
        Command::Fleet(args) => runtime()?.block_on(crate::fleet::run(args))?,
        Command::Sim(args) => {
            logging::init(cli.log_format.unwrap_or(LogFormat::Plain), "info");
            let spec = holdfast_sync::dataset::DatasetSpec {
                seed: args.seed,
                products: args.products,
                quants: args.quants,
                pickings: args.pickings,
            };
            runtime()?.block_on(async {
                let data = holdfast_sync::dataset::Dataset::generate(&spec);
                let config = holdfast_sync::sim::SimConfig {
                    version: args.odoo_version,
                    ..Default::default()
                };
                let tables = match &args.state {
                    Some(path) if path.exists() => {
                        let text = std::fs::read(path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        let doc: serde_json::Value = serde_json::from_slice(&text)
                            .with_context(|| format!("{} is not JSON", path.display()))?;
                        holdfast_sync::sim::store::Tables::from_json(&doc)
                            .map_err(anyhow::Error::msg)
                            .with_context(|| {
                                format!("{} is not a simulator state", path.display())
                            })?
                    }
                    _ => {
                        let mut t = holdfast_sync::sim::store::Tables::default();
                        t.load(&data, &holdfast_sync::sim::odoo_now());
                        t
                    }
                };
                let n_records: usize = tables.models.values().map(|t| t.len()).sum();
                let sim = holdfast_sync::sim::Simulator::start_with(args.listen, config, tables)
                    .await
                    .with_context(|| format!("cannot listen on {}", args.listen))?;
                sim.set_latency(std::time::Duration::from_millis(args.latency_ms));
                let c = sim.config();
                println!(
                    "Odoo {} simulator with {} records at {}",
                    c.version,
                    n_records,
                    sim.url()
                );
                println!(
                    "  database {:?}, login {:?}, API key {:?}",
                    c.database, c.login, c.api_key
                );
                println!("Stop with Ctrl-C.");
                tokio::signal::ctrl_c()
                    .await
                    .context("waiting for Ctrl-C")?;
                if let Some(path) = &args.state {
                    sim.save(path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("state written to {}", path.display());
                }
                anyhow::Ok(())
            })?;
        }
        Command::Init { path, force } => {
            let path = path.unwrap_or(cli.config);
            if path.exists() && !force {
                bail!("{} exists; use --force to overwrite it", path.display());
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            std::fs::write(&path, config::EXAMPLE)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "wrote {}; edit it, then: holdfast --config {} run",
                path.display(),
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
