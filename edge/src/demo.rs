//! The built-in demo warehouse: a data directory with a config and a store seeded from the
//! deterministic demo data set, so a new user sees a working appliance with one command.
//!
//! The demo runs an Odoo simulator in-process holding the demo data set, and the appliance
//! pulls its mirror from it over the real wire protocol, as a site pulls from its Odoo. The
//! simulator's records are kept in the data directory, so a restarted demo finds its cloud
//! as it left it.

pub mod lan;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use holdfast_sync::dataset::{Dataset, DatasetSpec};
use holdfast_sync::sim::proxy::{FaultProxy, Link};
use holdfast_sync::sim::store::Tables;
use holdfast_sync::sim::{Cloud, SimConfig, Simulator};

use crate::store::{MirrorBatch, Store};

/// Records per seeding transaction: large enough to be quick, small enough to keep the
/// writer responsive.
const SEED_PAGE: usize = 5_000;

/// The data directory `holdfast demo` uses when none is given. Kept after exit so the
/// journal can be inspected.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("holdfast-demo")
}

/// File in the demo's data directory holding the simulated Odoo's records (the format of
/// `holdfast sim --state`, which can open it too).
pub const CLOUD_STATE_FILE: &str = "cloud.json";

/// File in the demo's data directory holding the port the simulated Odoo last served on.
pub const CLOUD_PORT_FILE: &str = "cloud-port";

/// How often the simulated cloud's records are written to the data directory when they
/// changed (and once more when the demo stops).
const CLOUD_SAVE_EVERY: Duration = Duration::from_secs(1);

/// Starts the simulated cloud: an Odoo simulator in this process holding the records it held
/// when the demo in `dir` last ran, or the demo data set the first time. What the appliance
/// pushed stays in the cloud across restarts, as it does in a real Odoo; the simulator serves
/// on the port it had last time when that port is free.
pub async fn start_cloud(dir: &Path) -> anyhow::Result<Simulator> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let state = dir.join(CLOUD_STATE_FILE);
    let (tables, saved) = match std::fs::read(&state) {
        Ok(bytes) => (parse_cloud_state(&bytes, &state)?, bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut tables = Tables::default();
            tables.load(
                &Dataset::generate(&DatasetSpec::demo()),
                &holdfast_sync::sim::odoo_now(),
            );
            (tables, Vec::new())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", state.display())),
    };
    let cloud = Cloud::with_tables_of(SimConfig::default(), tables);
    let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let last_port = std::fs::read_to_string(dir.join(CLOUD_PORT_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok())
        .filter(|port| *port != 0);
    let sim = match last_port {
        Some(port) => {
            match Simulator::serve((Ipv4Addr::LOCALHOST, port).into(), cloud.clone()).await {
                Ok(sim) => sim,
                Err(e) => {
                    tracing::warn!(port, error = %e, "the simulated Odoo's last port is taken; serving on another");
                    Simulator::serve(any_port, cloud.clone())
                        .await
                        .context("starting the simulated Odoo")?
                }
            }
        }
        None => Simulator::serve(any_port, cloud.clone())
            .await
            .context("starting the simulated Odoo")?,
    };
    let port = sim.url().rsplit(':').next().unwrap_or_default().to_owned();
    std::fs::write(dir.join(CLOUD_PORT_FILE), port)
        .with_context(|| format!("cannot write {}", dir.join(CLOUD_PORT_FILE).display()))?;
    let mut saver = CloudSaver {
        cloud,
        path: state,
        last: saved,
    };
    // The first write makes the file exist from the start (a demo killed early keeps it).
    saver
        .save_if_changed()
        .context("writing the simulated Odoo's state")?;
    tokio::spawn(keep_saved(saver));
    Ok(sim)
}

/// Reads a saved simulated cloud.
fn parse_cloud_state(bytes: &[u8], path: &Path) -> anyhow::Result<Tables> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).with_context(|| {
        format!(
            "{} is not JSON; delete it to start the demo's cloud afresh",
            path.display()
        )
    })?;
    Tables::from_json(&doc)
        .map_err(anyhow::Error::msg)
        .with_context(|| {
            format!(
                "{} is not a simulated Odoo's state; delete it to start the demo's cloud afresh",
                path.display()
            )
        })
}

/// Keeps the simulated cloud's records in the data directory.
struct CloudSaver {
    cloud: Cloud,
    path: PathBuf,
    /// What the file holds now: unchanged records are not written again.
    last: Vec<u8>,
}

impl CloudSaver {
    fn save_if_changed(&mut self) -> anyhow::Result<()> {
        let doc = self.cloud.with_tables(|t| t.to_json());
        let bytes = serde_json::to_vec(&doc)?;
        if bytes == self.last {
            return Ok(());
        }
        // Written aside and renamed: a demo stopped mid-write keeps the previous state whole.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.last = bytes;
        Ok(())
    }
}

impl Drop for CloudSaver {
    /// The demo stopping (its runtime drops this task) writes the last changes.
    fn drop(&mut self) {
        if let Err(e) = self.save_if_changed() {
            tracing::warn!(error = %format!("{e:#}"), "cannot save the simulated Odoo's state");
        }
    }
}

/// Saves the simulated cloud when it changed, every [`CLOUD_SAVE_EVERY`]; a demo killed
/// outright loses at most that much of the cloud's history.
async fn keep_saved(mut saver: CloudSaver) {
    let mut tick = tokio::time::interval(CLOUD_SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The demo's data set is small: serialising and writing it takes about a millisecond.
        if let Err(e) = saver.save_if_changed() {
            tracing::warn!(error = %format!("{e:#}"), "cannot save the simulated Odoo's state");
        }
    }
}

/// The demo's simulated cloud, behind a fault proxy a person can switch (`holdfast demo
/// cloud down|up`, or `POST /api/v1/demo/cloud`) to play an outage.
#[derive(Clone, Debug)]
pub struct DemoCloud {
    proxy: std::sync::Arc<FaultProxy>,
    /// The simulated Odoo itself, for edits "by another Odoo user".
    cloud: holdfast_sync::sim::Cloud,
    /// The demo's scanners and printer.
    lan: Option<std::sync::Arc<lan::DemoLan>>,
}

impl DemoCloud {
    /// Starts the proxy in front of the simulator.
    pub async fn start(cloud: &Simulator) -> anyhow::Result<DemoCloud> {
        let upstream: std::net::SocketAddr = cloud
            .url()
            .trim_start_matches("http://")
            .parse()
            .context("simulator address")?;
        let proxy = FaultProxy::start(upstream)
            .await
            .context("starting the demo's link to the simulated cloud")?;
        Ok(DemoCloud {
            proxy: std::sync::Arc::new(proxy),
            cloud: cloud.cloud().clone(),
            lan: None,
        })
    }

    /// Adds the demo's scanners and printer.
    pub fn with_lan(mut self, lan: lan::DemoLan) -> DemoCloud {
        self.lan = Some(std::sync::Arc::new(lan));
        self
    }

    pub fn lan(&self) -> Option<&lan::DemoLan> {
        self.lan.as_deref()
    }

    /// Where the appliance reaches the simulated cloud.
    pub fn url(&self) -> String {
        self.proxy.url()
    }

    pub fn link(&self) -> Link {
        self.proxy.link()
    }

    pub fn set(&self, link: Link) {
        self.proxy.set(link);
    }

    /// Cancels a picking in the simulated Odoo, as an Odoo user would.
    pub fn cancel_picking(&self, picking: i64) {
        self.cloud.cancel_picking(picking);
    }

    /// Validates a picking in the simulated Odoo as its lines stand.
    pub fn validate_picking(&self, picking: i64) -> Result<(), String> {
        self.cloud.validate_picking(picking)
    }
}

/// File in the demo's data directory holding the address it serves on (for `demo-cloud` and
/// `demo-scan` when it was started with port 0).
pub const SERVING_FILE: &str = "serving";

/// The demo's manager token (conflicts inbox and the cloud switch).
pub const DEMO_MANAGER_TOKEN: &str = "demo-manager-token";

/// The demo's device token (the demo is for trying things out; a site configures its own).
pub const DEMO_TOKEN: &str = "demo-handheld-token";

/// The demo's site manager on the console (the demo is for trying things out).
pub const DEMO_MANAGER: &str = "demo-manager";
/// That manager's password.
pub const DEMO_MANAGER_PASSWORD: &str = "demo-manager-password";

/// The demo site's own procedure, shown on the console's runbook page.
const DEMO_RUNBOOK: &str = "\
# Demo warehouse: when the cloud is away

1. Keep picking and receiving on the handhelds as usual; every scan is kept on this appliance.
2. Tell the shift lead; note the time the outage began.
3. Do **not** re-enter the floor's work in Odoo by hand: it is sent on its own when the link is back.
4. After the outage, open *Conflicts* and decide what is waiting there.

Ops on call: ops@example.com
";

/// Adds (or resets the password of) the demo's site manager.
pub async fn seed_manager(store: &Store) -> anyhow::Result<()> {
    use crate::store::{ManagerCmd, NewAudit};
    let password_hash =
        crate::managers::hash_password(DEMO_MANAGER_PASSWORD).map_err(anyhow::Error::msg)?;
    let audit = |action: &str| NewAudit {
        actor: "demo".into(),
        action: action.into(),
        target: Some(format!("manager:{DEMO_MANAGER}")),
        detail: serde_json::json!({ "role": "manager" }),
    };
    let exists = store.read(|r| r.manager(DEMO_MANAGER))?.is_some();
    let cmd = if exists {
        ManagerCmd::Passwd {
            name: DEMO_MANAGER.into(),
            password_hash,
            audit: audit("manager.passwd"),
        }
    } else {
        ManagerCmd::Add {
            name: DEMO_MANAGER.into(),
            role: "manager".into(),
            password_hash,
            audit: audit("manager.add"),
        }
    };
    store
        .managers(cmd)
        .await
        .context("adding the demo's site manager")?;
    Ok(())
}

/// Writes the demo's config into `dir` (pointing at the simulated cloud) and returns its path.
pub fn write_config(
    dir: &Path,
    listen: &str,
    cloud: &Simulator,
    url: &str,
    lan: Option<&lan::DemoLan>,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("holdfast.toml");
    let runbook = dir.join("runbook.md");
    std::fs::write(&runbook, DEMO_RUNBOOK)
        .with_context(|| format!("cannot write {}", runbook.display()))?;
    let sim = cloud.config();
    let text = format!(
        "# Written by holdfast demo: the [odoo] section points at the simulated cloud it runs.\n\
         [site]\nid = \"demo\"\nname = \"Demo warehouse\"\nrunbook_file = \"{}\"\n\n\
         [store]\npath = \"{}\"\n\n[http]\nlisten = \"{listen}\"\nmanager_token = \"{DEMO_MANAGER_TOKEN}\"\n\n\
         [push]\nretry_min_secs = 0.5\nretry_max_secs = 10\nprobe_secs = 2\n\n\
         [odoo]\nurl = \"{}\"\ndatabase = \"{}\"\nlogin = \"{}\"\napi_key = \"{}\"\ncompany_id = 1\nwarehouse_id = 1\n\n\
         [log]\nlevel = \"info,rumqttd=warn\"\n\n\
         [[devices]]\nid = \"demo-handheld\"\ntoken = \"{DEMO_TOKEN}\"\n\n{}",
        runbook.display(),
        dir.join("holdfast.db").display(),
        url,
        sim.database,
        sim.login,
        sim.api_key,
        lan.map(lan::DemoLan::config).unwrap_or_default(),
    );
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A demo operator.
#[derive(Debug)]
pub struct DemoOperator {
    pub id: &'static str,
    pub name: &'static str,
    pub badge: &'static str,
    pub pin: &'static str,
}

/// The demo's operators: sign in on the handheld with a badge or id + PIN.
pub const DEMO_OPERATORS: &[DemoOperator] = &[
    DemoOperator {
        id: "alice",
        name: "Alice",
        badge: "OP-ALICE",
        pin: "1234",
    },
    DemoOperator {
        id: "bob",
        name: "Bob",
        badge: "OP-BOB",
        pin: "5678",
    },
];

/// Adds (or refreshes) the demo operators.
pub async fn seed_operators(store: &Store) -> anyhow::Result<()> {
    for op in DEMO_OPERATORS {
        let pin_hash = crate::floor::hash_pin(op.pin).map_err(anyhow::Error::msg)?;
        store
            .floor(crate::store::FloorCmd::AddOperator(
                crate::store::OperatorRow {
                    id: op.id.into(),
                    name: op.name.into(),
                    badge: Some(op.badge.into()),
                    pin_hash: Some(pin_hash),
                    active: true,
                    language: None,
                },
            ))
            .await
            .context("adding the demo operators")?;
    }
    Ok(())
}

/// Writes a whole data set into the mirror, page by page (the store benchmark loads its
/// large warehouse this way).
pub async fn load(store: &Store, data: &Dataset) -> anyhow::Result<usize> {
    let mut records = data.records().peekable();
    let mut n = 0;
    while records.peek().is_some() {
        let page: Vec<_> = records.by_ref().take(SEED_PAGE).collect();
        n += page.len();
        store
            .apply_mirror(MirrorBatch {
                epoch: None,
                upserts: page,
                deletes: vec![],
            })
            .await
            .context("seeding the demo mirror")?;
    }
    Ok(n)
}
