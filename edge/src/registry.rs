//! The device registry: what the appliance knows of every scanner, printer and broker link —
//! configured or merely seen — with last seen, last error and counters.
//!
//! It lives in memory (a scan must not cost a database write of its own) and is written to the
//! store every few seconds when it changed, and once more at shutdown, so `holdfast devices
//! list` (another process) and the next start see it too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_devices::hub::DeviceEvent;
use tokio_util::sync::CancellationToken;

use crate::store::{DeviceCmd, RegistryRow, Store, StoreError, now_ms};

/// How often a changed registry is written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// The registry; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    rows: BTreeMap<String, RegistryRow>,
    dirty: bool,
}

fn empty(id: &str, kind: &str, transport: &str) -> RegistryRow {
    RegistryRow {
        id: id.to_owned(),
        kind: kind.to_owned(),
        transport: transport.to_owned(),
        address: None,
        configured: false,
        state: "unknown".into(),
        first_seen: None,
        last_seen: None,
        last_error: None,
        last_error_at: None,
        scans: 0,
        refused: 0,
        errors: 0,
        detail: None,
    }
}

impl Registry {
    /// The registry as the store last saw it; every row starts unconfigured and `unknown`
    /// until the config and the links say otherwise.
    pub fn load(store: &Store) -> Result<Registry, StoreError> {
        let rows = store.read(|r| r.registry())?;
        let registry = Registry::default();
        {
            let mut state = registry.lock();
            for mut row in rows {
                row.configured = false;
                row.state = if row.kind == "printer" || row.kind == "scanner" {
                    "unknown".into()
                } else {
                    row.state
                };
                state.rows.insert(row.id.clone(), row);
            }
            state.dirty = true;
        }
        Ok(registry)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, id: &str, kind: &str, transport: &str, f: impl FnOnce(&mut RegistryRow)) {
        let mut state = self.lock();
        let row = state
            .rows
            .entry(id.to_owned())
            .or_insert_with(|| empty(id, kind, transport));
        f(row);
        state.dirty = true;
    }

    /// A device named in the config.
    pub fn configure(&self, id: &str, kind: &str, transport: &str, address: Option<String>) {
        self.update(id, kind, transport, |row| {
            row.kind = kind.to_owned();
            row.transport = transport.to_owned();
            row.address = address;
            row.configured = true;
        });
    }

    /// A scan was answered.
    pub fn scanned(&self, id: &str, transport: &str, good: bool, error: Option<&str>) {
        let now = now_ms();
        self.update(id, "scanner", transport, |row| {
            row.scans += 1;
            if !good {
                row.refused += 1;
            }
            if let Some(error) = error {
                row.last_error = Some(error.to_owned());
                row.last_error_at = Some(now);
            }
            row.first_seen.get_or_insert(now);
            row.last_seen = Some(now);
            row.state = "online".into();
        });
    }

    /// A link event from a transport.
    pub fn event(&self, id: &str, kind: &str, transport: &str, event: &DeviceEvent) {
        let now = now_ms();
        self.update(id, kind, transport, |row| match event {
            DeviceEvent::Connected { address } => {
                row.state = "online".into();
                if row.address.is_none() || !row.configured {
                    row.address = Some(address.clone());
                }
                row.first_seen.get_or_insert(now);
                row.last_seen = Some(now);
            }
            DeviceEvent::Disconnected { error } => {
                row.state = "offline".into();
                if let Some(error) = error {
                    row.errors += 1;
                    row.last_error = Some(error.clone());
                    row.last_error_at = Some(now);
                }
            }
            DeviceEvent::Refused { error } => {
                row.refused += 1;
                row.last_error = Some(error.clone());
                row.last_error_at = Some(now);
                row.last_seen = Some(now);
            }
        });
    }

    /// A printer's state after a status poll (`online`, `fault`, `offline`), with its detail.
    pub fn printer(&self, id: &str, state: &str, detail: Option<String>, error: Option<String>) {
        let now = now_ms();
        self.update(id, "printer", "tcp", |row| {
            if state != "offline" {
                row.first_seen.get_or_insert(now);
                row.last_seen = Some(now);
            }
            row.state = state.to_owned();
            if detail.is_some() {
                row.detail = detail;
            }
            if let Some(error) = error {
                row.errors += 1;
                row.last_error = Some(error);
                row.last_error_at = Some(now);
            }
        });
    }

    /// One device.
    pub fn get(&self, id: &str) -> Option<RegistryRow> {
        self.lock().rows.get(id).cloned()
    }

    /// Every device, by kind and id.
    pub fn list(&self) -> Vec<RegistryRow> {
        let mut rows: Vec<RegistryRow> = self.lock().rows.values().cloned().collect();
        rows.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        rows
    }

    /// Writes the registry if it changed.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let rows = {
            let mut state = self.lock();
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            state.rows.values().cloned().collect::<Vec<_>>()
        };
        if let Err(e) = store.devices(DeviceCmd::Registry(rows)).await {
            self.lock().dirty = true;
            return Err(e);
        }
        Ok(())
    }

    /// Writes changes every few seconds until `cancel`, then once more.
    pub async fn run(self, store: Store, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
            }
            if let Err(e) = self.flush(&store).await {
                tracing::warn!(error = %e, "device registry not saved");
            }
        }
        if let Err(e) = self.flush(&store).await {
            tracing::warn!(error = %e, "device registry not saved at shutdown");
        }
    }
}
