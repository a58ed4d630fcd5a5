//! Sync health for central ops over MQTT: a status snapshot per site and events, to a
//! Mosquitto / EMQX broker, Azure IoT Hub or an Azure Event Grid namespace (`[telemetry.mqtt]`,
//! profiles in [`profile`]).
//!
//! The sampler reads the one status snapshot ([`crate::http::full_status`]) every
//! [`SAMPLE`] on a blocking thread, compares it with the last ([`message::changes`]) and
//! puts events, and a status when something worth telling changed or `interval_secs`
//! passed, into the [`link::Outbox`]. The link ([`link`]) sends from there on its own
//! connection. Nothing here is on the floor's or the push's path: the outbox never makes
//! anyone wait, and a broker that is gone costs only dropped events, counted.
//!
//! At start the link registers a last will (`online: false`) on the status topic; a clean
//! stop sends the `stopping` event and an offline status itself, then says goodbye (which
//! cancels the will). `holdfast fleet` reads these.

pub mod link;
pub mod message;
pub mod profile;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::http::AppState;
use message::{Envelope, EventKind, LinkHealth, Reading};
pub use profile::Settings;

/// How often the sampler reads the status.
pub const SAMPLE: Duration = Duration::from_secs(2);
/// How long a stop waits for the goodbye messages to be acknowledged.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Numbers the messages of this boot.
#[derive(Debug)]
struct Sequencer {
    site: String,
    boot: String,
    next: AtomicU64,
    interval_secs: u64,
}

impl Sequencer {
    fn envelope(&self, schema: &'static str) -> Envelope {
        Envelope {
            schema,
            schema_version: message::SCHEMA_VERSION,
            site: self.site.clone(),
            boot: self.boot.clone(),
            seq: self.next.fetch_add(1, Ordering::Relaxed),
            time: jiff::Timestamp::now().to_string(),
        }
    }

    fn status(&self, body: serde_json::Value) -> Vec<u8> {
        message::compose(&self.envelope(message::STATUS_SCHEMA), body)
    }

    fn offline(&self, gone: message::Gone) -> Vec<u8> {
        self.status(message::offline_body(gone, self.interval_secs))
    }

    fn event(&self, kind: &EventKind, reading: Option<&Reading>) -> Vec<u8> {
        message::compose(&self.envelope(message::EVENT_SCHEMA), kind.body(reading))
    }
}

/// The telemetry of a running appliance: what the status and `/metrics` show of it.
#[derive(Clone, Debug)]
pub struct Telemetry {
    outbox: Arc<link::Outbox>,
    health: Arc<link::Health>,
    sequencer: Arc<Sequencer>,
}

impl Telemetry {
    pub fn new(settings: &Settings) -> Telemetry {
        Telemetry {
            outbox: Arc::new(link::Outbox::new(settings.events_buffer)),
            health: Arc::default(),
            sequencer: Arc::new(Sequencer {
                site: settings.site.clone(),
                boot: uuid::Uuid::now_v7().to_string(),
                next: AtomicU64::new(1),
                interval_secs: settings.interval.as_secs(),
            }),
        }
    }

    /// The link's health, for the status.
    pub fn health(&self) -> LinkHealth {
        LinkHealth {
            connected: self.health.connected.load(Ordering::Relaxed),
            dropped_events: self.outbox.dropped(),
            buffered_events: self.outbox.buffered(),
            reconnects: self.health.reconnects.load(Ordering::Relaxed),
            last_error: self.health.last_error(),
        }
    }
}

/// Reads the status snapshot and what goes with it.
fn read(state: &AppState) -> Result<Reading, String> {
    let status = crate::http::full_status(state).map_err(|e| format!("{e:?}"))?;
    Ok(Reading {
        headroom_bytes: state.store.headroom_bytes(status.database.size_bytes),
        devices: crate::registry::Devices::from_rows(&state.registry.list()),
        status,
    })
}

async fn read_blocking(state: &AppState) -> Option<Reading> {
    let state = state.clone();
    match tokio::task::spawn_blocking(move || read(&state)).await {
        Ok(Ok(reading)) => Some(reading),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "telemetry cannot read the status");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "telemetry's status read failed");
            None
        }
    }
}

/// Runs the sampler and the link until `cancel`, then says goodbye (within a few seconds).
pub async fn run(
    state: AppState,
    settings: Settings,
    telemetry: Telemetry,
    cancel: CancellationToken,
) {
    let interval_secs = settings.interval.as_secs();
    let sequencer = telemetry.sequencer.clone();
    let will = {
        let sequencer = sequencer.clone();
        move || sequencer.offline(message::Gone::LastWill)
    };
    let mut link = tokio::spawn(
        link::run(
            settings.broker.clone(),
            settings.site.clone(),
            telemetry.outbox.clone(),
            telemetry.health.clone(),
            will,
        )
        .instrument(tracing::info_span!("telemetry-link")),
    );
    let outbox = &telemetry.outbox;
    let pressure = settings.disk_pressure_bytes;
    let mut last: Option<Reading> = None;
    let mut last_sent = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(SAMPLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(reading) = read_blocking(&state).await else {
            continue;
        };
        let telling = match &last {
            None => {
                outbox.event(sequencer.event(&EventKind::Started, Some(&reading)));
                true
            }
            Some(before) => {
                for event in message::changes(before, &reading, pressure) {
                    outbox.event(sequencer.event(&event, Some(&reading)));
                }
                before.telling(pressure) != reading.telling(pressure)
            }
        };
        if telling || last_sent.elapsed() >= settings.interval {
            let body = message::status_body(&reading, interval_secs, &telemetry.health());
            outbox.status(sequencer.status(body));
            last_sent = tokio::time::Instant::now();
        }
        last = Some(reading);
    }
    // Goodbye: the event, then the site's status as offline, and the link closes cleanly.
    let reading = read_blocking(&state).await;
    outbox.event(sequencer.event(&EventKind::Stopping, reading.as_ref().or(last.as_ref())));
    outbox.status(sequencer.offline(message::Gone::Stopped));
    outbox.close();
    if tokio::time::timeout(STOP_GRACE, &mut link).await.is_err() {
        tracing::warn!("telemetry could not say goodbye in time (broker away?)");
        link.abort();
    }
}
