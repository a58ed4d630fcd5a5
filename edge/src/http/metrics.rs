//! `GET /metrics`: the Prometheus text format, on the appliance's one HTTP server.
//!
//! Gauges are read at scrape time: the figures status already computes from the one status
//! snapshot ([`full_status`], built once per scrape), the rest (devices and printers up,
//! print jobs, each model's pull age, headroom) from the registry and the store. Counters and
//! histograms come from the process's recorder ([`crate::metrics`]), recorded where the
//! events happen.
//!
//! Access ([`METRICS_ROUTES`](super::auth::METRICS_ROUTES)): open from loopback (an agent on
//! the box); from the LAN only with the bearer token `telemetry.metrics_token`, and refused
//! when none is configured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;

use super::*;
use crate::registry::{Devices, Online};

/// The text format's content type (version 0.0.4), what Prometheus asks for first.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The modes, each a series of `holdfast_mode` (1 for the current one).
const MODES: &[&str] = &["unknown", "online", "degraded", "offline"];

pub(super) async fn metrics(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    scrape_allowed(
        peer,
        state.metrics_token.as_ref(),
        bearer_of(request.headers()),
    )?;
    let text = render(&state)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        text,
    )
        .into_response())
}

/// Whether a scrape from `peer` presenting `presented` may read the metrics: loopback always
/// (a request without a known peer is not loopback); another address only with the
/// configured token (401 without it or with a wrong one, 403 when none is configured).
pub fn scrape_allowed(
    peer: Option<IpAddr>,
    token: Option<&crate::config::Secret>,
    presented: Option<&[u8]>,
) -> Result<(), ApiError> {
    if peer.is_some_and(|ip| ip.to_canonical().is_loopback()) {
        return Ok(());
    }
    let Some(token) = token else {
        return Err(ApiError::forbidden(
            "metrics_loopback_only",
            "metrics are served on loopback only; set telemetry.metrics_token to scrape from the LAN",
        ));
    };
    match presented {
        Some(p) if bool::from(subtle::ConstantTimeEq::ct_eq(p, token.expose().as_bytes())) => {
            Ok(())
        }
        Some(_) => Err(ApiError::unauthorized("invalid metrics token")),
        None => Err(ApiError::unauthorized(
            "the metrics token is required from the LAN",
        )),
    }
}

/// The whole exposition: the snapshot's gauges, then the recorder's counters and histograms.
pub fn render(state: &AppState) -> Result<String, ApiError> {
    let s = full_status(state)?;
    let mut out = Exposition::default();
    out.family(
        "holdfast_build_info",
        "gauge",
        "The running build: 1, labelled with its version and the site's id",
    );
    out.sample(
        "holdfast_build_info",
        &[("version", s.version), ("site", &s.site.id)],
        1.0,
    );
    out.family(
        "holdfast_mode",
        "gauge",
        "The appliance's connectivity mode: 1 for the current one",
    );
    for mode in MODES {
        out.sample(
            "holdfast_mode",
            &[("mode", mode)],
            f64::from(u8::from(s.mode == *mode)),
        );
    }
    out.family(
        "holdfast_mode_since_seconds",
        "gauge",
        "When the current mode began (unix time)",
    );
    if let Ok(since) = s.mode_since.parse::<jiff::Timestamp>() {
        out.sample(
            "holdfast_mode_since_seconds",
            &[],
            since.as_millisecond() as f64 / 1000.0,
        );
    }
    out.family(
        "holdfast_journal_entries",
        "gauge",
        "Journal entries by state",
    );
    for (state, n) in &s.queue {
        out.sample("holdfast_journal_entries", &[("state", state)], *n as f64);
    }
    out.family(
        "holdfast_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest entry not yet settled with Odoo (0 when none)",
    );
    out.sample(
        "holdfast_oldest_pending_age_seconds",
        &[],
        s.oldest_pending_age_secs.unwrap_or(0.0),
    );
    out.family(
        "holdfast_conflicts",
        "gauge",
        "Conflicts waiting for a person (open) or applied and flagged",
    );
    out.sample(
        "holdfast_conflicts",
        &[("state", "open")],
        s.conflicts.open as f64,
    );
    out.sample(
        "holdfast_conflicts",
        &[("state", "flagged")],
        s.conflicts.flagged as f64,
    );
    out.family(
        "holdfast_push_paused",
        "gauge",
        "1 while the push is paused because Odoo refused the credentials",
    );
    let paused = s.push.as_ref().is_some_and(|p| p.paused.is_some());
    out.sample("holdfast_push_paused", &[], f64::from(u8::from(paused)));
    if let Some(p) = &s.push {
        out.family(
            "holdfast_push_drain_rate",
            "gauge",
            "Journal entries applied per second over the last minute",
        );
        out.sample("holdfast_push_drain_rate", &[], p.drain_rate_per_sec);
    }
    out.family(
        "holdfast_mirror_age_seconds",
        "gauge",
        "Age of the mirror: its stalest model's last completed pull",
    );
    if let Some(age) = s.mirror_age_secs {
        out.sample("holdfast_mirror_age_seconds", &[], age);
    }
    out.family(
        "holdfast_store_size_bytes",
        "gauge",
        "Size of the database file",
    );
    out.sample(
        "holdfast_store_size_bytes",
        &[],
        s.database.size_bytes as f64,
    );
    out.family(
        "holdfast_store_headroom_bytes",
        "gauge",
        "Bytes the store may still grow by (cap or free disk, whichever is smaller)",
    );
    if let Some(room) = state.store.headroom_bytes(s.database.size_bytes) {
        out.sample("holdfast_store_headroom_bytes", &[], room as f64);
    }
    if let Some(rt) = &s.runtime {
        out.family(
            "holdfast_uptime_seconds",
            "gauge",
            "Time since the appliance started",
        );
        out.sample("holdfast_uptime_seconds", &[], rt.uptime_secs);
    }
    if let Some(t) = &s.telemetry {
        out.family(
            "holdfast_telemetry_connected",
            "gauge",
            "1 while the MQTT telemetry link is connected to its broker",
        );
        out.sample(
            "holdfast_telemetry_connected",
            &[],
            f64::from(u8::from(t.connected)),
        );
        out.family(
            "holdfast_telemetry_buffered_events",
            "gauge",
            "Telemetry events waiting for the broker",
        );
        out.sample(
            "holdfast_telemetry_buffered_events",
            &[],
            t.buffered_events as f64,
        );
    }
    pull_ages(state, &mut out)?;
    devices(state, &mut out);
    print_jobs(state, &mut out)?;
    let mut text = out.text;
    if let Some(handle) = crate::metrics::handle() {
        text.push_str(&handle.render());
    }
    Ok(text)
}

/// Each model's age: since its last completed pull, full or incremental.
fn pull_ages(state: &AppState, out: &mut Exposition) -> Result<(), ApiError> {
    let now = crate::store::now_ms();
    let ages = state.store.read(|r| {
        let mut ages = Vec::new();
        for &model in holdfast_sync::records::Model::ALL {
            let c = r.cursor(model)?;
            if let Some(at) = c.full_at.max(c.incremental_at) {
                ages.push((model.odoo_name(), (now - at).max(0) as f64 / 1000.0));
            }
        }
        Ok(ages)
    })?;
    out.family(
        "holdfast_pull_age_seconds",
        "gauge",
        "Time since each model's last completed pull",
    );
    for (model, age) in ages {
        out.sample("holdfast_pull_age_seconds", &[("model", model)], age);
    }
    Ok(())
}

/// Devices by kind, how many are up, and each printer's state.
fn devices(state: &AppState, out: &mut Exposition) {
    let devices = Devices::from_rows(&state.registry.list());
    // Scanners and printers are shown at 0 too.
    let mut kinds: BTreeMap<&str, Online> = ["scanner", "printer"]
        .into_iter()
        .map(|k| (k, Online::default()))
        .collect();
    kinds.extend(devices.by_kind());
    out.family(
        "holdfast_devices",
        "gauge",
        "Devices known to the registry, by kind",
    );
    for (kind, count) in &kinds {
        out.sample(
            "holdfast_devices",
            &[("kind", kind)],
            f64::from(count.total),
        );
    }
    out.family("holdfast_devices_up", "gauge", "Devices online, by kind");
    for (kind, count) in &kinds {
        out.sample(
            "holdfast_devices_up",
            &[("kind", kind)],
            f64::from(count.online),
        );
    }
    out.family(
        "holdfast_printer_up",
        "gauge",
        "1 while a printer answers its status polls",
    );
    for (printer, up) in &devices.printers {
        out.sample(
            "holdfast_printer_up",
            &[("printer", printer)],
            f64::from(u8::from(*up)),
        );
    }
}

/// Print jobs not yet settled, by state (each state shown, at 0 too).
fn print_jobs(state: &AppState, out: &mut Exposition) -> Result<(), ApiError> {
    let mut by_state: BTreeMap<String, i64> = ["queued", "sending", "unknown"]
        .into_iter()
        .map(|s| (s.to_owned(), 0))
        .collect();
    for (_printer, job_state, n) in state.store.read(|r| r.print_counts())? {
        *by_state.entry(job_state).or_default() += n;
    }
    out.family(
        "holdfast_print_jobs",
        "gauge",
        "Print jobs queued, being sent, or of unknown outcome (a person decides), by state",
    );
    for (job_state, n) in by_state {
        out.sample("holdfast_print_jobs", &[("state", &job_state)], n as f64);
    }
    Ok(())
}

/// The text format, written by hand for the gauges (the recorder renders its own).
#[derive(Debug, Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the text format writes it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_scrape() {
        let token = crate::config::Secret::new("a-scrape-token-of-sixteen+");
        let lan: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());
        let v6_loopback: Option<IpAddr> = Some("::1".parse().unwrap());
        let mapped: Option<IpAddr> = Some("::ffff:127.0.0.1".parse().unwrap());
        let status = |r: Result<(), ApiError>| r.map_err(|e| e.status.as_u16()).err();
        for (peer, token, presented, refused) in [
            (Some(IpAddr::from([127, 0, 0, 1])), None, None, None),
            (Some(IpAddr::from([127, 0, 0, 9])), Some(&token), None, None),
            (v6_loopback, None, None, None),
            (mapped, None, None, None),
            (lan, None, None, Some(403)),
            (lan, None, Some(&b"anything"[..]), Some(403)),
            (None, None, None, Some(403)),
            (lan, Some(&token), None, Some(401)),
            (lan, Some(&token), Some(&b"wrong-token"[..]), Some(401)),
            (lan, Some(&token), Some(token.expose().as_bytes()), None),
        ] {
            assert_eq!(
                status(scrape_allowed(peer, token, presented)),
                refused,
                "{peer:?} token {} presented {presented:?}",
                token.is_some()
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.sample("m", &[("printer", "a\"b\\c\nd")], 1.0);
        assert_eq!(out.text, "m{printer=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
