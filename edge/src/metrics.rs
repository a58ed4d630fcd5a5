//! Counters and latency histograms for Prometheus, recorded where the events happen: each
//! push call to Odoo (`push.rs`, beside the adaptive limiter's own timing), each page the
//! pull reads (`pull.rs`), each scan on every transport (`scanners.rs` for serial, TCP and
//! MQTT, `http.rs` for handhelds) and each refused device input. The gauges (queue, mode,
//! devices, store) are not kept here: `/metrics` reads them from the one status snapshot at
//! scrape time (`http/metrics.rs`).
//!
//! The `metrics` facade has one recorder per process, installed by [`handle`] on first use.
//! An appliance is one process; tests that run several in one process share the counters,
//! so they compare a counter before and after what they do.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const PUSH_CALLS: &str = "holdfast_push_calls_total";
pub const PUSH_CALL_SECONDS: &str = "holdfast_push_call_duration_seconds";
pub const PULL_CALLS: &str = "holdfast_pull_calls_total";
pub const PULL_CALL_SECONDS: &str = "holdfast_pull_call_duration_seconds";
pub const SCANS: &str = "holdfast_scans_total";
pub const SCAN_SECONDS: &str = "holdfast_scan_duration_seconds";
pub const REFUSALS: &str = "holdfast_device_input_refused_total";
pub const TELEMETRY_DROPPED: &str = "holdfast_telemetry_dropped_total";
pub const TELEMETRY_MESSAGES: &str = "holdfast_telemetry_messages_total";
pub const TELEMETRY_BYTES: &str = "holdfast_telemetry_bytes_total";
pub const TELEMETRY_RECONNECTS: &str = "holdfast_telemetry_reconnects_total";

/// How far back the status's error rate of Odoo calls looks.
pub const RECENT_WINDOW: Duration = Duration::from_secs(300);
/// Calls remembered for it at most (a drain makes many; the rate needs no more).
const RECENT_MAX: usize = 4096;

/// Buckets of the Odoo call histograms: from a fast LAN answer to the push's time-out.
const CALL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of the scan histogram: a scan is answered from SQLite, within milliseconds; the
/// upper buckets show a floor in trouble.
const SCAN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process's recorder, installed on first use. `None` only if another recorder was
/// installed first (nothing in Holdfast does that); recording then goes to that one.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(SCAN_SECONDS.into()), SCAN_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(PUSH_CALL_SECONDS.into()),
                        CALL_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(PULL_CALL_SECONDS.into()),
                        CALL_BUCKETS,
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(e) => {
                    tracing::error!(error = %e, "metrics recorder not built; /metrics shows gauges only");
                    return None;
                }
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics shows gauges only");
                return None;
            }
            describe();
            Some(handle)
        })
        .as_ref()
}

/// HELP lines, and the counters every appliance has shown at zero (a rate over a series that
/// appears only at its first event misses that event).
fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        PUSH_CALLS,
        "Odoo calls made by the push, by model.method and outcome (ok or the error class)"
    );
    describe_histogram!(
        PUSH_CALL_SECONDS,
        Unit::Seconds,
        "Latency of the push's Odoo calls, by model.method and outcome"
    );
    describe_counter!(
        PULL_CALLS,
        "Pages the pull read from Odoo, by model and outcome"
    );
    describe_histogram!(
        PULL_CALL_SECONDS,
        Unit::Seconds,
        "Latency of the pull's page reads, by model and outcome"
    );
    describe_counter!(
        SCANS,
        "Scans answered, by transport and outcome (accepted or refused)"
    );
    describe_histogram!(
        SCAN_SECONDS,
        Unit::Seconds,
        "Time from a scan's arrival to its answer, by transport and outcome"
    );
    describe_counter!(
        REFUSALS,
        "Device input refused before it reached the floor (foreign ids, oversized or malformed frames), by transport and reason"
    );
    describe_counter!(
        TELEMETRY_MESSAGES,
        "MQTT telemetry messages the broker acknowledged, by kind (status or event)"
    );
    describe_counter!(
        TELEMETRY_BYTES,
        Unit::Bytes,
        "Bytes of MQTT telemetry payloads the broker acknowledged"
    );
    describe_counter!(
        TELEMETRY_DROPPED,
        "Telemetry events dropped because the buffer was full while the broker was away"
    );
    describe_counter!(
        TELEMETRY_RECONNECTS,
        "Times the telemetry link connected to its broker again"
    );
    metrics::counter!(TELEMETRY_DROPPED).absolute(0);
    metrics::counter!(TELEMETRY_RECONNECTS).absolute(0);
    metrics::counter!(TELEMETRY_BYTES).absolute(0);
    for kind in ["status", "event"] {
        metrics::counter!(TELEMETRY_MESSAGES, "kind" => kind).absolute(0);
    }
    for transport in ["http", "serial", "tcp", "mqtt"] {
        for outcome in ["accepted", "refused"] {
            metrics::counter!(SCANS, "transport" => transport, "outcome" => outcome).absolute(0);
        }
    }
}

/// Keeps the histograms' pending samples bounded between scrapes (the exporter folds them
/// into the buckets here and at each render).
pub fn upkeep() {
    if let Some(h) = handle() {
        h.run_upkeep();
    }
}

/// The outcome label of an Odoo call: `ok` or its error class.
pub fn call_outcome<T>(result: &Result<T, holdfast_sync::odoo::OdooError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => error_label(e),
    }
}

/// An Odoo error's class as a label: `transient`, `ambiguous`, `auth` or `permanent`.
pub fn error_label(e: &holdfast_sync::odoo::OdooError) -> &'static str {
    use holdfast_sync::odoo::ErrorClass;
    match e.class() {
        ErrorClass::Transient => "transient",
        ErrorClass::Ambiguous => "ambiguous",
        ErrorClass::Auth => "auth",
        ErrorClass::Permanent => "permanent",
    }
}

/// One push call to Odoo (`operation` is `model.method`).
pub fn push_call(operation: &str, outcome: &'static str, took: Duration) {
    odoo_call(PUSH_CALLS, PUSH_CALL_SECONDS, operation, outcome, took);
}

/// One page the pull read (`operation` is the Odoo model).
pub fn pull_call(operation: &str, outcome: &'static str, took: Duration) {
    odoo_call(PULL_CALLS, PULL_CALL_SECONDS, operation, outcome, took);
}

/// One call to Odoo, counted in `calls` and timed in `seconds`, and remembered for the
/// status's error rate.
fn odoo_call(
    calls: &'static str,
    seconds: &'static str,
    operation: &str,
    outcome: &'static str,
    took: Duration,
) {
    note_call(outcome == "ok");
    if handle().is_none() {
        return;
    }
    let labels = [
        ("operation", operation.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::counter!(calls, &labels).increment(1);
    metrics::histogram!(seconds, &labels).record(took.as_secs_f64());
}

/// One scan answered over `transport` (`http`, `serial`, `tcp`, `mqtt`).
pub fn scan(transport: &'static str, accepted: bool, took: Duration) {
    if handle().is_none() {
        return;
    }
    let outcome = if accepted { "accepted" } else { "refused" };
    metrics::counter!(SCANS, "transport" => transport, "outcome" => outcome).increment(1);
    metrics::histogram!(SCAN_SECONDS, "transport" => transport, "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// Device input refused before the floor saw it.
pub fn refused(transport: &'static str, reason: &'static str) {
    if handle().is_none() {
        return;
    }
    metrics::counter!(REFUSALS, "transport" => transport, "reason" => reason).increment(1);
}

/// The transport label of a scanner link's registry name (`tcp-listen` and `tcp-connect`
/// are both `tcp`).
pub fn transport_label(registry_transport: &str) -> &'static str {
    match registry_transport {
        "serial" => "serial",
        "mqtt" => "mqtt",
        "http" => "http",
        _ => "tcp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_show_in_the_rendered_text_with_their_labels_and_buckets() {
        let Some(h) = handle() else {
            panic!("recorder not installed")
        };
        push_call(
            "stock.picking.button_validate",
            "ok",
            Duration::from_millis(40),
        );
        scan("serial", false, Duration::from_millis(3));
        refused("tcp", "oversized");
        let text = h.render();
        for line in [
            "holdfast_push_calls_total{operation=\"stock.picking.button_validate\",outcome=\"ok\"}",
            "holdfast_push_call_duration_seconds_bucket{operation=\"stock.picking.button_validate\",outcome=\"ok\",le=\"0.05\"}",
            "holdfast_scans_total{transport=\"serial\",outcome=\"refused\"}",
            "holdfast_scans_total{transport=\"http\",outcome=\"accepted\"} 0",
            "holdfast_scan_duration_seconds_bucket{transport=\"serial\",outcome=\"refused\",le=\"0.005\"}",
            "holdfast_device_input_refused_total{transport=\"tcp\",reason=\"oversized\"}",
            "# TYPE holdfast_scan_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn transports_are_labelled_by_their_kind() {
        for (registry, label) in [
            ("serial", "serial"),
            ("tcp-listen", "tcp"),
            ("tcp-connect", "tcp"),
            ("mqtt", "mqtt"),
            ("http", "http"),
        ] {
            assert_eq!(transport_label(registry), label);
        }
    }
}

/// Odoo calls (push and pull) of the last [`RECENT_WINDOW`]: the status's error rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecentCalls {
    pub calls: u64,
    pub errors: u64,
    pub window: Duration,
}

impl RecentCalls {
    /// Errors per call; `None` without calls.
    pub fn error_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.errors as f64 / self.calls as f64)
    }
}

/// The outcomes of recent calls, oldest first (one process, like the recorder).
fn recent() -> &'static Mutex<VecDeque<(Instant, bool)>> {
    static RECENT: OnceLock<Mutex<VecDeque<(Instant, bool)>>> = OnceLock::new();
    RECENT.get_or_init(Default::default)
}

fn note_call(ok: bool) {
    let mut calls = recent().lock().unwrap_or_else(|e| e.into_inner());
    if calls.len() == RECENT_MAX {
        calls.pop_front();
    }
    calls.push_back((Instant::now(), ok));
}

/// The calls of the last [`RECENT_WINDOW`] and how many failed.
pub fn recent_calls() -> RecentCalls {
    let mut calls = recent().lock().unwrap_or_else(|e| e.into_inner());
    while calls
        .front()
        .is_some_and(|(at, _)| at.elapsed() > RECENT_WINDOW)
    {
        calls.pop_front();
    }
    RecentCalls {
        calls: calls.len() as u64,
        errors: calls.iter().filter(|(_, ok)| !ok).count() as u64,
        window: RECENT_WINDOW,
    }
}

/// What the telemetry link did: one message sent (`kind` `status` or `event`) of `bytes`.
pub fn telemetry_sent(kind: &'static str, bytes: usize) {
    if handle().is_none() {
        return;
    }
    metrics::counter!(TELEMETRY_MESSAGES, "kind" => kind).increment(1);
    metrics::counter!(TELEMETRY_BYTES).increment(bytes as u64);
}

/// Events the telemetry buffer had no room for.
pub fn telemetry_dropped(n: u64) {
    if handle().is_none() {
        return;
    }
    metrics::counter!(TELEMETRY_DROPPED).increment(n);
}

/// The telemetry link connected again after losing its broker.
pub fn telemetry_reconnected() {
    if handle().is_none() {
        return;
    }
    metrics::counter!(TELEMETRY_RECONNECTS).increment(1);
}
