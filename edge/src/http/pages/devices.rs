//! `/console/devices`: scanners and broker links from the registry, the printers and their
//! print queue (reprint, cancel), and the handhelds' tokens (issue, revoke). Reading takes
//! any role; the buttons are shown to managers only, and the API refuses a viewer anyway.

use super::chart::clock;
use super::*;
use crate::store::PrintJobFilter;

/// Print jobs listed, newest first.
const JOBS: usize = 50;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/console/devices", get(devices_page))
}

fn when(ms: Option<i64>, lang: crate::i18n::Lang) -> String {
    ms.map_or_else(|| tr(lang, "never", &[]), |t| clock(t, "%Y-%m-%d %H:%M:%S"))
}

/// `GET /console/devices`.
async fn devices_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let rows = state.registry.list();
    let (counts, jobs, issued) = state.store.read(|r| {
        Ok((
            r.print_counts()?,
            r.print_jobs(&PrintJobFilter {
                printer: None,
                state: None,
                limit: JOBS,
            })?,
            r.issued_devices()?,
        ))
    })?;
    let count = |printer: &str, states: &[&str]| -> i64 {
        counts
            .iter()
            .filter(|(p, s, _)| p == printer && states.contains(&s.as_str()))
            .map(|c| c.2)
            .sum()
    };
    let registry = |printers: bool| -> Vec<minijinja::Value> {
        rows.iter()
            .filter(|r| (r.kind == "printer") == printers)
            .map(|r| {
                minijinja::context! {
                    id => r.id.clone(),
                    kind => r.kind.clone(),
                    transport => r.transport.clone(),
                    address => r.address.clone(),
                    state => r.state.clone(),
                    last_seen => when(r.last_seen, lang),
                    scans => r.scans,
                    refused => r.refused,
                    errors => r.errors,
                    last_error => r.last_error.clone(),
                    last_error_at => r.last_error_at.map(|t| clock(t, "%Y-%m-%d %H:%M:%S")),
                    queued => count(&r.id, &["queued", "sending"]),
                    unknown => count(&r.id, &["unknown"]),
                }
            })
            .collect()
    };
    let jobs: Vec<_> = jobs
        .iter()
        .map(|j| {
            minijinja::context! {
                id => j.id,
                printer => j.printer.clone(),
                template => j.template.clone(),
                state => j.state.clone(),
                attempts => j.attempts,
                requested_by => j.requested_by.clone(),
                created => clock(j.created_at, "%Y-%m-%d %H:%M:%S"),
                last_error => j.last_error.clone(),
                reprint_of => j.reprint_of,
                // As the store allows: a job still queued or sending prints once; only a
                // queued job or one whose outcome is unknown can be cancelled.
                can_reprint => !matches!(j.state.as_str(), "queued" | "sending"),
                can_cancel => matches!(j.state.as_str(), "queued" | "unknown"),
            }
        })
        .collect();
    let mut handhelds: Vec<_> = state
        .printing
        .lan()
        .http_devices
        .iter()
        .filter(|id| !issued.iter().any(|(i, _, _)| i == *id))
        .map(|id| {
            minijinja::context! { id => id.clone(), configured => true, revoked => false }
        })
        .collect();
    handhelds.extend(issued.iter().map(|(id, issued_at, revoked_at)| {
        minijinja::context! {
            id => id.clone(),
            configured => false,
            issued_at => clock(*issued_at, "%Y-%m-%d %H:%M:%S"),
            revoked => revoked_at.is_some(),
            revoked_at => revoked_at.map(|t| clock(t, "%Y-%m-%d %H:%M:%S")),
        }
    }));
    render_page(
        &state,
        &viewer,
        "devices.html",
        "devices",
        minijinja::context! {
            scanners => registry(false),
            printers => registry(true),
            jobs => jobs,
            handhelds => handhelds,
        },
    )
}
