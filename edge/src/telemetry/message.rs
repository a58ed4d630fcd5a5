//! What the appliance tells central ops: the status snapshot and the events, as JSON.
//!
//! The shapes are published as JSON Schema files (`ops/schemas/status.schema.json`,
//! `ops/schemas/event.schema.json`); a test checks real messages against them. Every
//! message stands alone: it names its site, carries the appliance's boot id, a sequence
//! number within that boot and its time, since Event Grid keeps no order and IoT Hub keeps
//! no retained message. A consumer orders a site's messages by `(boot, seq)`: boot ids are
//! UUIDv7, so a later start sorts after an earlier one.
//!
//! Events come from comparing one snapshot with the next ([`changes`]): the snapshot is the
//! single source, so an event never says something the status does not.

use serde::Serialize;
use serde_json::{Value, json};

use crate::registry::Devices;
use crate::status::Status;

/// `schema` of the status messages.
pub const STATUS_SCHEMA: &str = "holdfast.status";
/// `schema` of the event messages.
pub const EVENT_SCHEMA: &str = "holdfast.event";
/// Version of both shapes; raised when a field changes meaning or goes away (added fields
/// do not raise it).
pub const SCHEMA_VERSION: u32 = 1;

/// Who sends: the fields every message starts with.
#[derive(Clone, Debug, Serialize)]
pub struct Envelope {
    pub schema: &'static str,
    pub schema_version: u32,
    pub site: String,
    /// This start of the appliance (UUIDv7).
    pub boot: String,
    /// Within the boot: 1, 2, 3, … over status and events together.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
}

/// The telemetry link's own health, as the status reports it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LinkHealth {
    pub connected: bool,
    /// Events dropped because the buffer was full (since the start).
    pub dropped_events: u64,
    /// Events waiting to be sent.
    pub buffered_events: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

/// One reading of the appliance: the status snapshot and what goes with it.
#[derive(Clone, Debug)]
pub struct Reading {
    pub status: Status,
    pub devices: Devices,
    /// Bytes the store may still grow by, when known.
    pub headroom_bytes: Option<u64>,
}

impl Reading {
    /// Headroom under the pressure threshold.
    fn pressed(&self, threshold: u64) -> bool {
        self.headroom_bytes.is_some_and(|room| room < threshold)
    }

    fn paused(&self) -> Option<&str> {
        self.status.push.as_ref().and_then(|p| p.paused.as_deref())
    }

    fn open_entries(&self) -> i64 {
        ["pending", "in_flight"]
            .iter()
            .map(|s| self.status.queue.get(*s).copied().unwrap_or(0))
            .sum()
    }

    /// What makes a status worth sending before its interval: the mode, the conflicts, a
    /// paused push, a device or printer lost or back, disk pressure.
    pub fn telling(&self, threshold: u64) -> impl PartialEq + use<> {
        (
            self.status.mode.clone(),
            self.status.conflicts.open,
            self.status.conflicts.flagged,
            self.paused().map(str::to_owned),
            self.devices.printers.clone(),
            self.devices
                .others
                .iter()
                .map(|(id, (_, up))| (id.clone(), *up))
                .collect::<Vec<_>>(),
            self.pressed(threshold),
        )
    }
}

/// Whether Odoo answers, as the status knows it: `None` without an Odoo or before the first
/// pull; `false` while offline or while pulls fail.
pub fn odoo_reachable(status: &Status) -> Option<bool> {
    status.cloud.target.as_ref()?;
    if status.mode == "offline" || status.pull_error.is_some() {
        Some(false)
    } else if status.last_pull_at.is_some() {
        Some(true)
    } else {
        None
    }
}

/// The status message's body (after the envelope).
pub fn status_body(reading: &Reading, interval_secs: u64, link: &LinkHealth) -> Value {
    let s = &reading.status;
    let push = s.push.as_ref();
    let calls = crate::metrics::recent_calls();
    json!({
        "online": true,
        "interval_secs": interval_secs,
        "site_name": s.site.name,
        "mode": s.mode,
        "mode_since": s.mode_since,
        "reason": s.mode_reason,
        "queue": s.queue,
        "open_entries": reading.open_entries(),
        "oldest_pending_age_secs": s.oldest_pending_age_secs,
        "drain_rate_per_sec": push.map(|p| p.drain_rate_per_sec),
        "eta_drain_secs": push.and_then(|p| p.eta_drain_secs),
        "conflicts": {"open": s.conflicts.open, "flagged": s.conflicts.flagged},
        "last_pull_at": s.last_pull_at,
        "last_push_at": s.last_push_at,
        "odoo": {
            "configured": s.cloud.target.is_some(),
            "reachable": odoo_reachable(s),
            "version": s.pull.as_ref().and_then(|p| p.odoo_version.clone()),
            "recent_calls": calls.calls,
            "recent_errors": calls.errors,
            "error_rate": calls.error_rate(),
            "window_secs": calls.window.as_secs(),
        },
        "push_paused": reading.paused(),
        "devices": reading.devices.devices_online(),
        "printers": reading.devices.printers_online(),
        "disk": {
            "store_bytes": s.database.size_bytes,
            "headroom_bytes": reading.headroom_bytes,
        },
        "appliance": {
            "version": s.version,
            "uptime_secs": s.runtime.as_ref().map_or(0.0, |r| r.uptime_secs.floor()),
        },
        "telemetry": link,
    })
}

/// Why a site's status says it is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The broker sent the last will: the connection was lost without a goodbye.
    LastWill,
    /// A clean stop.
    Stopped,
}

impl Gone {
    pub fn as_str(self) -> &'static str {
        match self {
            Gone::LastWill => "last_will",
            Gone::Stopped => "stopped",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Gone::LastWill => "connection lost (last will)",
            Gone::Stopped => "stopped",
        }
    }
}

/// The body of the status that says the site is gone: its last will (sent by the broker
/// when the connection is lost) or the one a clean stop sends.
pub fn offline_body(gone: Gone, interval_secs: u64) -> Value {
    json!({
        "online": false,
        "cause": gone.as_str(),
        "reason": gone.reason(),
        "interval_secs": interval_secs,
    })
}

/// What happened, as an event's `kind` and `detail`.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    Started,
    Stopping,
    ModeChanged {
        from: String,
        to: String,
        reason: Option<String>,
    },
    ConflictsOpened {
        opened: i64,
        open: i64,
    },
    ConflictsResolved {
        resolved: i64,
        open: i64,
    },
    CredentialsRefused {
        reason: String,
    },
    CredentialsAccepted,
    DiskPressure {
        headroom_bytes: u64,
        threshold_bytes: u64,
    },
    DiskPressureCleared {
        headroom_bytes: u64,
    },
    PrinterOffline {
        printer: String,
    },
    PrinterOnline {
        printer: String,
    },
    DeviceSilent {
        device: String,
        kind: String,
    },
    DeviceBack {
        device: String,
        kind: String,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Stopping => "stopping",
            EventKind::ModeChanged { .. } => "mode_changed",
            EventKind::ConflictsOpened { .. } => "conflicts_opened",
            EventKind::ConflictsResolved { .. } => "conflicts_resolved",
            EventKind::CredentialsRefused { .. } => "credentials_refused",
            EventKind::CredentialsAccepted => "credentials_accepted",
            EventKind::DiskPressure { .. } => "disk_pressure",
            EventKind::DiskPressureCleared { .. } => "disk_pressure_cleared",
            EventKind::PrinterOffline { .. } => "printer_offline",
            EventKind::PrinterOnline { .. } => "printer_online",
            EventKind::DeviceSilent { .. } => "device_silent",
            EventKind::DeviceBack { .. } => "device_back",
        }
    }

    fn detail(&self) -> Value {
        match self {
            EventKind::Started | EventKind::Stopping | EventKind::CredentialsAccepted => json!({}),
            EventKind::ModeChanged { from, to, reason } => {
                json!({"from": from, "to": to, "reason": reason})
            }
            EventKind::ConflictsOpened { opened, open } => json!({"opened": opened, "open": open}),
            EventKind::ConflictsResolved { resolved, open } => {
                json!({"resolved": resolved, "open": open})
            }
            EventKind::CredentialsRefused { reason } => json!({"reason": reason}),
            EventKind::DiskPressure {
                headroom_bytes,
                threshold_bytes,
            } => json!({"headroom_bytes": headroom_bytes, "threshold_bytes": threshold_bytes}),
            EventKind::DiskPressureCleared { headroom_bytes } => {
                json!({"headroom_bytes": headroom_bytes})
            }
            EventKind::PrinterOffline { printer } | EventKind::PrinterOnline { printer } => {
                json!({"printer": printer})
            }
            EventKind::DeviceSilent { device, kind } | EventKind::DeviceBack { device, kind } => {
                json!({"device": device, "kind": kind})
            }
        }
    }

    /// The event message's body (after the envelope): the kind, its detail, and the
    /// site's state in a few fields, so the event reads alone.
    pub fn body(&self, reading: Option<&Reading>) -> Value {
        let state = reading.map(|r| {
            json!({
                "mode": r.status.mode,
                "open_entries": r.open_entries(),
                "conflicts_open": r.status.conflicts.open,
            })
        });
        json!({"kind": self.name(), "detail": self.detail(), "state": state})
    }
}

/// The events between two readings, in a fixed order.
pub fn changes(before: &Reading, after: &Reading, pressure_bytes: u64) -> Vec<EventKind> {
    let mut events = Vec::new();
    let (b, a) = (&before.status, &after.status);
    if b.mode != a.mode {
        events.push(EventKind::ModeChanged {
            from: b.mode.clone(),
            to: a.mode.clone(),
            reason: a.mode_reason.clone(),
        });
    }
    match a.conflicts.open - b.conflicts.open {
        n if n > 0 => events.push(EventKind::ConflictsOpened {
            opened: n,
            open: a.conflicts.open,
        }),
        n if n < 0 => events.push(EventKind::ConflictsResolved {
            resolved: -n,
            open: a.conflicts.open,
        }),
        _ => {}
    }
    match (before.paused(), after.paused()) {
        (None, Some(reason)) => events.push(EventKind::CredentialsRefused {
            reason: reason.to_owned(),
        }),
        (Some(_), None) => events.push(EventKind::CredentialsAccepted),
        _ => {}
    }
    match (
        before.pressed(pressure_bytes),
        after.pressed(pressure_bytes),
    ) {
        (false, true) => events.push(EventKind::DiskPressure {
            headroom_bytes: after.headroom_bytes.unwrap_or(0),
            threshold_bytes: pressure_bytes,
        }),
        (true, false) => events.push(EventKind::DiskPressureCleared {
            headroom_bytes: after.headroom_bytes.unwrap_or(0),
        }),
        _ => {}
    }
    for (printer, up) in &after.devices.printers {
        let was = before.devices.printers.get(printer).copied();
        match (was, *up) {
            (Some(true), false) => events.push(EventKind::PrinterOffline {
                printer: printer.clone(),
            }),
            (Some(false), true) => events.push(EventKind::PrinterOnline {
                printer: printer.clone(),
            }),
            _ => {}
        }
    }
    for (device, (kind, up)) in &after.devices.others {
        let was = before.devices.others.get(device).map(|(_, up)| *up);
        match (was, *up) {
            (Some(true), false) => events.push(EventKind::DeviceSilent {
                device: device.clone(),
                kind: kind.clone(),
            }),
            (Some(false), true) => events.push(EventKind::DeviceBack {
                device: device.clone(),
                kind: kind.clone(),
            }),
            _ => {}
        }
    }
    events
}

/// An envelope and a body as one JSON object.
pub fn compose(envelope: &Envelope, body: Value) -> Vec<u8> {
    let mut message = serde_json::to_value(envelope).unwrap_or_else(|_| json!({}));
    if let (Some(out), Value::Object(body)) = (message.as_object_mut(), body) {
        out.extend(body);
    }
    serde_json::to_vec(&message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::status::{CloudStatus, ConflictSummary, DatabaseStatus, PushStatus, SiteStatus};

    fn reading(mode: &str) -> Reading {
        Reading {
            status: Status {
                version: "0.1.0",
                site: SiteStatus {
                    id: "s1".into(),
                    name: "Site one".into(),
                },
                source: "appliance",
                note: None,
                mode: mode.into(),
                mode_since: "2026-12-06T06:00:00Z".into(),
                mode_reason: None,
                cloud: CloudStatus {
                    target: Some("https://odoo.example".into()),
                },
                queue: BTreeMap::from([("pending".into(), 3), ("applied".into(), 9)]),
                oldest_pending_age_secs: Some(12.0),
                last_pull_at: Some("2026-12-06T06:00:00Z".into()),
                last_push_at: None,
                mirror_as_of: None,
                mirror_age_secs: None,
                pull_error: None,
                database: DatabaseStatus {
                    path: "/var/lib/holdfast/holdfast.db".into(),
                    size_bytes: 4096,
                    schema_version: 11,
                },
                mirror: BTreeMap::new(),
                runtime: None,
                pull: None,
                cloud_changes_open: 0,
                conflicts: ConflictSummary::default(),
                push: Some(PushStatus {
                    paused: None,
                    calls: 0,
                    applied: 0,
                    drain_rate_per_sec: 0.0,
                    eta_drain_secs: None,
                    limit: None,
                    waited_on_claims: 0,
                }),
                degraded_features: Vec::new(),
                sign_in: None,
                tls: None,
                telemetry: None,
            },
            devices: Devices::default(),
            headroom_bytes: Some(10_000_000_000),
        }
    }

    #[test]
    fn each_change_worth_telling_is_one_event() {
        let before = {
            let mut r = reading("online");
            r.devices.printers.insert("dock".into(), true);
            r.devices
                .others
                .insert("gun-1".into(), ("scanner".into(), true));
            r
        };
        let mut after = reading("offline");
        after.status.mode_reason = Some("3 probes failed".into());
        after.status.conflicts.open = 2;
        after.status.push.as_mut().unwrap().paused = Some("access denied".into());
        after.headroom_bytes = Some(100_000_000);
        after.devices.printers.insert("dock".into(), false);
        after
            .devices
            .others
            .insert("gun-1".into(), ("scanner".into(), false));
        // A device first seen says nothing: there was nothing to lose.
        after
            .devices
            .others
            .insert("gun-2".into(), ("scanner".into(), true));
        let events = changes(&before, &after, 500_000_000);
        assert_eq!(
            events,
            vec![
                EventKind::ModeChanged {
                    from: "online".into(),
                    to: "offline".into(),
                    reason: Some("3 probes failed".into()),
                },
                EventKind::ConflictsOpened { opened: 2, open: 2 },
                EventKind::CredentialsRefused {
                    reason: "access denied".into()
                },
                EventKind::DiskPressure {
                    headroom_bytes: 100_000_000,
                    threshold_bytes: 500_000_000
                },
                EventKind::PrinterOffline {
                    printer: "dock".into()
                },
                EventKind::DeviceSilent {
                    device: "gun-1".into(),
                    kind: "scanner".into()
                },
            ]
        );
        assert!(before.telling(500_000_000) != after.telling(500_000_000));
        // And back again.
        let names: Vec<_> = changes(&after, &before, 500_000_000)
            .iter()
            .map(EventKind::name)
            .collect();
        assert_eq!(
            names,
            [
                "mode_changed",
                "conflicts_resolved",
                "credentials_accepted",
                "disk_pressure_cleared",
                "printer_online",
                "device_back"
            ]
        );
        assert!(changes(&before, &before, 500_000_000).is_empty());
    }

    #[test]
    fn a_queue_that_moves_is_not_worth_telling_early() {
        let before = reading("online");
        let mut after = reading("online");
        after.status.queue.insert("pending".into(), 40);
        after.status.oldest_pending_age_secs = Some(99.0);
        assert!(before.telling(1) == after.telling(1));
    }

    #[test]
    fn a_message_is_its_envelope_and_its_body_in_one_object() {
        let envelope = Envelope {
            schema: EVENT_SCHEMA,
            schema_version: SCHEMA_VERSION,
            site: "s1".into(),
            boot: "0190-boot".into(),
            seq: 7,
            time: "2026-12-06T06:00:00Z".into(),
        };
        let r = reading("online");
        let bytes = compose(&envelope, EventKind::Started.body(Some(&r)));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["schema"], "holdfast.event");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["kind"], "started");
        assert_eq!(v["state"]["open_entries"], 3);
        let status = compose(
            &Envelope {
                schema: STATUS_SCHEMA,
                ..envelope
            },
            status_body(&r, 60, &LinkHealth::default()),
        );
        let v: Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(v["online"], true);
        assert_eq!(v["odoo"]["reachable"], true);
        assert_eq!(v["queue"]["pending"], 3);
    }
}
