//! The device registry: what the appliance knows of every scanner, printer and broker link —
//! configured or merely seen — with last seen, last error and counters.
//!
//! It lives in memory (a scan must not cost a database write of its own) and is written to the
//! store every few seconds when it changed, and once more at shutdown, so `holdfast devices
//! list` (another process) and the next start see it too.
//!
//! Refused input is counted by why ([`Refusal`]) in the row's `detail`, as JSON
//! `{"refused_by": {"unlisted_device": 3, "retained": 1}}`: on the broker link for what an
//! MQTT client sent under an unlisted or foreign id, or retained; on the scanner for a
//! stranger's TCP connection or a stale partial scan. A site sees someone probing as a
//! climbing counter in `holdfast devices list` and the devices API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_devices::hub::{DeviceEvent, Refusal};
use serde::Serialize;
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

/// Adds one to the row's count of `reason` in its detail (kept as JSON text, which the store
/// and the devices API carry as they are).
fn count_refusal(row: &mut RegistryRow, reason: Refusal) {
    let mut detail = row
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    let counts = &mut detail["refused_by"][reason.as_str()];
    *counts = serde_json::json!(counts.as_i64().unwrap_or(0) + 1);
    row.detail = Some(detail.to_string());
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
            DeviceEvent::Refused { reason, error } => {
                count_refusal(row, *reason);
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

    /// A device's refusals by why (`unlisted_device`, `retained`, ...).
    pub fn refusals(&self, id: &str) -> BTreeMap<String, i64> {
        self.get(id)
            .and_then(|row| row.detail)
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|v| v.get("refused_by").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
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

/// How many devices of a kind are up, of how many the registry knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Online {
    pub online: u32,
    pub total: u32,
}

impl Online {
    fn add(&mut self, up: bool) {
        self.total += 1;
        self.online += u32::from(up);
    }
}

/// The registry's rows as up or not, printers apart from the rest: what the console's
/// overview, `/metrics` and telemetry count.
#[derive(Clone, Debug, Default)]
pub struct Devices {
    /// Printer id → up.
    pub printers: BTreeMap<String, bool>,
    /// Other device id → (kind, up).
    pub others: BTreeMap<String, (String, bool)>,
}

impl Devices {
    /// A device is up while its state is `online` (not `offline`, `fault` or `unknown`).
    pub fn from_rows(rows: &[RegistryRow]) -> Devices {
        let mut devices = Devices::default();
        for row in rows {
            let up = row.state == "online";
            if row.kind == "printer" {
                devices.printers.insert(row.id.clone(), up);
            } else {
                devices
                    .others
                    .insert(row.id.clone(), (row.kind.clone(), up));
            }
        }
        devices
    }

    fn count<'a>(ups: impl Iterator<Item = &'a bool>) -> Online {
        let mut count = Online::default();
        for up in ups {
            count.add(*up);
        }
        count
    }

    pub fn printers_online(&self) -> Online {
        Devices::count(self.printers.values())
    }

    /// Every device but the printers (scanners, broker links).
    pub fn devices_online(&self) -> Online {
        Devices::count(self.others.values().map(|(_, up)| up))
    }

    /// Each kind's count, printers under `printer`; a kind without devices is absent.
    pub fn by_kind(&self) -> BTreeMap<&str, Online> {
        let mut kinds = BTreeMap::new();
        for up in self.printers.values() {
            kinds
                .entry("printer")
                .or_insert_with(Online::default)
                .add(*up);
        }
        for (kind, up) in self.others.values() {
            kinds.entry(kind.as_str()).or_default().add(*up);
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_why() {
        let registry = Registry::default();
        let refuse = |reason| DeviceEvent::Refused {
            reason,
            error: "x".into(),
        };
        registry.configure("mqtt-broker", "broker", "mqtt", None);
        for reason in [
            Refusal::UnlistedDevice,
            Refusal::UnlistedDevice,
            Refusal::Retained,
        ] {
            registry.event("mqtt-broker", "broker", "mqtt", &refuse(reason));
        }
        let counts = registry.refusals("mqtt-broker");
        assert_eq!(counts.get("unlisted_device"), Some(&2));
        assert_eq!(counts.get("retained"), Some(&1));
        assert_eq!(registry.get("mqtt-broker").unwrap().refused, 3);
    }

    #[test]
    fn devices_are_up_only_while_online_and_printers_count_apart() {
        let rows: Vec<RegistryRow> = [
            ("gun-1", "scanner", "online"),
            ("gun-2", "scanner", "offline"),
            ("gun-3", "scanner", "unknown"),
            ("mqtt-broker", "broker", "online"),
            ("dock", "printer", "online"),
            ("office", "printer", "fault"),
        ]
        .into_iter()
        .map(|(id, kind, state)| RegistryRow {
            state: state.into(),
            ..empty(id, kind, "tcp")
        })
        .collect();
        let devices = Devices::from_rows(&rows);
        let online = |online, total| Online { online, total };
        assert_eq!(devices.devices_online(), online(2, 4));
        assert_eq!(devices.printers_online(), online(1, 2));
        assert_eq!(
            devices.by_kind(),
            BTreeMap::from([
                ("broker", online(1, 1)),
                ("printer", online(1, 2)),
                ("scanner", online(1, 3)),
            ])
        );
    }
}
