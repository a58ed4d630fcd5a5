//! The console's pages for the site manager: sign-in and the overview, rendered on the
//! server from templates compiled into the binary (no CDN: the console works offline), with
//! one small script that polls `/console/overview.json` to keep the overview live.
//!
//! A page without a live session cookie redirects to `/console/login` and renders nothing.
//! Every page carries a Content-Security-Policy without inline script (the script is a file),
//! may not be framed (clickjacking), and is never cached (it shows a session's data and its
//! CSRF token). Templates are `.html`, so minijinja escapes every value for HTML.

use super::*;
use axum::http::{HeaderValue, header};
use serde::Serialize;

const LOGIN_HTML: &str = include_str!("../../console/login.html");
const OVERVIEW_HTML: &str = include_str!("../../console/overview.html");
const CONSOLE_JS: &str = include_str!("../../console/console.js");
const CONSOLE_CSS: &str = include_str!("../../console/console.css");

/// The policy of every console page: only the appliance's own files, no inline script, no
/// framing, forms post only back to the appliance.
pub const CONSOLE_CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Renders the template `name` with `ctx`. The environment is built per page: two small
/// templates parse in microseconds, and a page is asked for now and then, not per scan.
fn render(name: &str, ctx: minijinja::Value) -> Result<String, ApiError> {
    let mut env = minijinja::Environment::new();
    let fail = |e: minijinja::Error| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "template",
        message: format!("console page {name}: {e}"),
    };
    env.add_template("login.html", LOGIN_HTML).map_err(fail)?;
    env.add_template("overview.html", OVERVIEW_HTML)
        .map_err(fail)?;
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(fail)
}

/// An HTML page with the console's security headers.
fn page(html: String) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    secure(response.headers_mut());
    response
}

/// The console's security headers (pages, and the overview's JSON, which is not cached
/// either).
fn secure(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change only with the binary; a tablet re-checks after an upgrade.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn to_login() -> Response {
    let mut response = axum::response::Redirect::to("/console/login").into_response();
    secure(response.headers_mut());
    response
}

/// The console's page routes, merged into the main router. The overview's JSON is a
/// manager route (see [`MANAGER_ROUTES`]), not here.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/console",
            get(|| async { axum::response::Redirect::to("/console/") }),
        )
        .route("/console/", get(overview_page))
        .route("/console/login", get(login_page).post(console_login))
        .route(
            "/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
}

/// The session of the request's cookie: the manager and the session's CSRF token. Pages
/// take only a session (a bearer token has no cookie to sign out of, and no CSRF token).
fn page_session(state: &AppState, headers: &axum::http::HeaderMap) -> Option<(Actor, String)> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(crate::managers::session_cookie)?;
    let (actor, _) = session_actor(state, token).ok()?;
    Some((actor, crate::managers::csrf_token(token)))
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    error: Option<String>,
}

/// `GET /console/login`: the sign-in form. A failed sign-in from the form comes back here
/// with `?error=`; the message is chosen here from a fixed set, never echoed from the URL.
async fn login_page(
    State(state): State<Arc<AppState>>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let message = match q.error.as_deref() {
        None => None,
        Some("failed") => Some("Unknown name or wrong password.".to_owned()),
        Some("locked") => {
            Some("Too many failed sign-ins. Wait a few minutes, then try again.".to_owned())
        }
        Some(_) => Some("Enter a name and a password.".to_owned()),
    };
    let html = render(
        "login.html",
        minijinja::context! { site => state.site.name.clone(), message => message },
    )?;
    Ok(page(html))
}

/// What the overview shows, as display text: the page renders it, and the script replaces
/// each `data-field` with the same field from `/console/overview.json`.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub site: String,
    /// `online`, `degraded`, `offline` or `unknown`.
    pub mode: String,
    pub mode_since: String,
    pub mode_reason: Option<String>,
    pub queue: String,
    pub oldest_pending: String,
    pub drain_rate: String,
    pub eta: String,
    pub last_pull: String,
    pub odoo: String,
    pub database: String,
    pub devices: String,
    pub printers: String,
    pub conflicts: String,
    pub lockouts: String,
    pub tls: String,
}

/// `12 s`, `4 min`, `2 h 5 min`.
fn duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..90 => format!("{secs} s"),
        90..5400 => format!("{} min", (secs + 30) / 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The overview of the status snapshot (see [`full_status`]) and the device registry.
pub fn overview(state: &AppState) -> Result<Overview, ApiError> {
    let s = full_status(state)?;
    let queue = if s.queue.values().all(|n| *n == 0) {
        "empty".to_owned()
    } else {
        s.queue
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(state, n)| format!("{state} {n}"))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let (drain_rate, eta) = match &s.push {
        Some(p) => (
            format!("{:.1} / s", p.drain_rate_per_sec),
            p.eta_drain_secs.map_or_else(|| "—".to_owned(), duration),
        ),
        None => ("no push running".to_owned(), "—".to_owned()),
    };
    let target = s.cloud.target.as_ref().map(|url| {
        match s.pull.as_ref().and_then(|p| p.odoo_version.as_deref()) {
            Some(v) if !v.is_empty() => format!("{url} (Odoo {v})"),
            _ => url.clone(),
        }
    });
    let odoo = match (&target, &s.pull_error) {
        (None, _) => "none configured".to_owned(),
        (Some(url), Some(e)) => format!(
            "{url}: not reachable ({} failures in a row: {})",
            e.failures_in_row, e.message
        ),
        (Some(url), None) if s.last_pull_at.is_some() => format!("{url}: reachable"),
        (Some(url), None) => format!("{url}: not yet reached"),
    };
    let database = match state.store.size_cap() {
        Some(cap) => format!(
            "{} of {} ({} headroom)",
            megabytes(s.database.size_bytes),
            megabytes(cap.total_bytes),
            megabytes(cap.total_bytes.saturating_sub(s.database.size_bytes))
        ),
        None => format!("{} (no cap set)", megabytes(s.database.size_bytes)),
    };
    let rows = state.registry.list();
    let online = |printer: bool| {
        let of_kind = rows.iter().filter(|r| (r.kind == "printer") == printer);
        let total = of_kind.clone().count();
        let up = of_kind.filter(|r| r.state == "online").count();
        format!("{up} of {total}")
    };
    let lockouts = s.sign_in.as_ref().map_or_else(
        || "—".to_owned(),
        |l| {
            format!(
                "{} failed sign-ins, {} device and {} site lock-outs, {} locked now",
                l.failures,
                l.device_lockouts,
                l.site_lockouts,
                l.locked_devices.len()
            )
        },
    );
    Ok(Overview {
        site: s.site.name.clone(),
        mode: s.mode.clone(),
        mode_since: s.mode_since.clone(),
        mode_reason: s.mode_reason.clone(),
        queue,
        oldest_pending: s
            .oldest_pending_age_secs
            .map_or_else(|| "none pending".to_owned(), duration),
        drain_rate,
        eta,
        last_pull: s.last_pull_at.clone().unwrap_or_else(|| "never".to_owned()),
        odoo,
        database,
        devices: online(false),
        printers: online(true),
        conflicts: format!("{} open, {} flagged", s.conflicts.open, s.conflicts.flagged),
        lockouts,
        tls: s
            .tls
            .as_ref()
            .map_or_else(|| "HTTPS off".to_owned(), |t| t.fingerprint_sha256.clone()),
    })
}

/// `GET /console/`: the overview, for a signed-in manager of any role; otherwise a
/// redirect to the sign-in page.
async fn overview_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some((actor, csrf)) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let (name, role) = match &actor {
        Actor::Session { name, role } => (name.clone(), role.as_str()),
        Actor::Token => ("token".to_owned(), "manager"),
    };
    let o = overview(&state)?;
    let html = render(
        "overview.html",
        minijinja::context! { o => minijinja::Value::from(minijinja::value::Serde(&o)), csrf => csrf, name => name, role => role },
    )?;
    Ok(page(html))
}

/// `GET /console/overview.json`: the overview's figures for the page's script (a manager
/// route: any role).
pub(super) async fn overview_json(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let mut response = Json(overview(&state)?).into_response();
    secure(response.headers_mut());
    Ok(response)
}
