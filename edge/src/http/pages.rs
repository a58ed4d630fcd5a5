//! The console's pages for the site manager: sign-in and the overview, rendered on the
//! server from templates compiled into the binary (no CDN: the console works offline), with
//! one small script that polls `/console/overview.json` to keep the overview live.
//!
//! A page without a live session cookie redirects to `/console/login` and renders nothing.
//! Every page carries a Content-Security-Policy without inline script (the script is a file),
//! may not be framed (clickjacking), and is never cached (it shows a session's data and its
//! CSRF token). Templates are `.html`, so minijinja escapes every value for HTML.

mod audit;
mod backlog;
mod cache;
mod chart;
mod devices;
mod inbox;
mod journal;
mod records;
mod runbook;
mod sessions;

pub(super) use sessions::cancel_session;

use super::*;
use axum::http::{HeaderValue, header};
use serde::Serialize;

use crate::registry::{Devices, Online};

const CONSOLE_JS: &str = include_str!("../../console/console.js");
const CONSOLE_CSS: &str = include_str!("../../console/console.css");

/// Every console template, compiled in. A page's template extends `layout.html` (header,
/// navigation, language menu) and fills its `title` and `main` blocks.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../../console/layout.html")),
    ("login.html", include_str!("../../console/login.html")),
    ("overview.html", include_str!("../../console/overview.html")),
    ("runbook.html", include_str!("../../console/runbook.html")),
    ("inbox.html", include_str!("../../console/inbox.html")),
    ("conflict.html", include_str!("../../console/conflict.html")),
    ("entries.html", include_str!("../../console/entries.html")),
    ("journal.html", include_str!("../../console/journal.html")),
    ("entry.html", include_str!("../../console/entry.html")),
    ("sessions.html", include_str!("../../console/sessions.html")),
    ("audit.html", include_str!("../../console/audit.html")),
    ("missing.html", include_str!("../../console/missing.html")),
    ("backlog.html", include_str!("../../console/backlog.html")),
    ("devices.html", include_str!("../../console/devices.html")),
    ("cache.html", include_str!("../../console/cache.html")),
];

/// The policy of every console page: only the appliance's own files, no inline script, no
/// framing, forms post only back to the appliance.
pub const CONSOLE_CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The templates, parsed once. `t(key, name=value, ...)` looks `key` up in the catalogue in
/// the page's language (the context's `lang`).
fn environment() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                // A test renders every template; a broken one is a build defect, and the
                // page answers 500 naming it.
                tracing::error!(template = name, error = %e, "console template does not parse");
            }
        }
        env.add_function("t", translate);
        env
    })
}

/// The template function `t`: a catalogue message in the page's language, its keyword
/// arguments as Fluent variables (numbers stay numbers, for plurals).
fn translate(
    state: &minijinja::State<'_, '_>,
    key: &str,
    kwargs: minijinja::value::Kwargs,
) -> Result<String, minijinja::Error> {
    use fluent_bundle::FluentValue;
    let lang = state
        .lookup("lang")
        .and_then(|v| v.as_str().and_then(crate::i18n::Lang::parse))
        .unwrap_or(crate::i18n::Lang::En);
    let mut args: Vec<(&str, FluentValue<'_>)> = Vec::new();
    for name in kwargs.args() {
        let value: minijinja::Value = kwargs.get(name)?;
        let value = match value.as_i64() {
            Some(n) => FluentValue::from(n),
            None => match f64::try_from(value.clone()) {
                Ok(x) if value.kind() == minijinja::value::ValueKind::Number => {
                    FluentValue::from(x)
                }
                _ => FluentValue::from(value.to_string()),
            },
        };
        args.push((name, value));
    }
    Ok(crate::i18n::catalogue().text(lang, key, &args))
}

/// Renders the template `name` with `ctx`.
fn render(name: &str, ctx: minijinja::Value) -> Result<String, ApiError> {
    let fail = |e: minijinja::Error| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "template",
        message: format!("console page {name}: {e}"),
    };
    environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(fail)
}

/// The signed-in manager a page is rendered for.
#[derive(Debug, Clone)]
pub(super) struct Viewer {
    pub actor: Actor,
    /// The session's CSRF token, for the page's forms and script.
    pub csrf: String,
    /// The page's language: the manager's own, else the browser's.
    pub lang: crate::i18n::Lang,
}

impl Viewer {
    pub fn name(&self) -> String {
        match &self.actor {
            Actor::Session { name, .. } => name.clone(),
            Actor::Token => "token".to_owned(),
        }
    }

    /// Whether the manager may act (decide, cancel, reprint, pull), not only read.
    pub fn can_manage(&self) -> bool {
        self.actor.role().allows(Need::Manage)
    }
}

/// Renders a console page for `viewer`: the layout's context (site, who, role, language,
/// CSRF token, which navigation entry is current) merged with the page's own `ctx`.
pub(super) fn render_page(
    state: &AppState,
    viewer: &Viewer,
    template: &str,
    current: &str,
    ctx: minijinja::Value,
) -> Result<Response, ApiError> {
    let languages: Vec<_> = crate::i18n::Lang::ALL
        .iter()
        .map(|l| minijinja::context! { code => l.code(), name => l.name() })
        .collect();
    let html = render(
        template,
        minijinja::context! {
            site => state.site.name.clone(),
            name => viewer.name(),
            role => viewer.actor.role().as_str(),
            can_manage => viewer.can_manage(),
            csrf => viewer.csrf.clone(),
            lang => viewer.lang.code(),
            languages => languages,
            current => current,
            ..ctx
        },
    )?;
    Ok(page(html))
}

/// An HTML page with the console's security headers.
fn page(html: String) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    secure(response.headers_mut());
    response
}

/// The console's security headers (pages, and the overview's JSON, which is not cached
/// either).
pub(super) fn secure(headers: &mut axum::http::HeaderMap) {
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
    // A link out of the console (the runbook's, Odoo's) does not tell the other site which
    // page, filters or record the manager was looking at.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
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

/// The answer to a page request without a live session.
pub(super) fn to_login() -> Response {
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
        .merge(runbook::routes())
        .route("/console/login", get(login_page).post(console_login))
        .route(
            "/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .merge(inbox::routes())
        .merge(journal::routes())
        .merge(sessions::routes())
        .merge(audit::routes())
        .merge(backlog::routes())
        .merge(devices::routes())
        .merge(cache::routes())
}

/// The language of a request without an account's choice: its `Accept-Language`.
pub(super) fn browser_language(headers: &axum::http::HeaderMap) -> crate::i18n::Lang {
    crate::i18n::negotiate(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The language a manager's request is answered in: the account's choice, else the
/// browser's.
fn language_of(actor: &Actor, headers: &axum::http::HeaderMap) -> crate::i18n::Lang {
    match actor {
        Actor::Session {
            language: Some(l), ..
        } => *l,
        _ => browser_language(headers),
    }
}

/// The session of the request's cookie. Pages take only a session (a bearer token has no
/// cookie to sign out of, and no CSRF token).
pub(super) fn page_session(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Viewer> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(crate::managers::session_cookie)?;
    let (actor, _) = session_actor(state, token).ok()?;
    let lang = language_of(&actor, headers);
    Some(Viewer {
        actor,
        csrf: crate::managers::csrf_token(token),
        lang,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    error: Option<String>,
}

/// `GET /console/login`: the sign-in form. A failed sign-in from the form comes back here
/// with `?error=`; the message is chosen here from a fixed set, never echoed from the URL.
async fn login_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let message = match q.error.as_deref() {
        None => None,
        Some("failed") => Some("login-failed"),
        Some("locked") => Some("login-locked"),
        Some(_) => Some("login-invalid"),
    };
    let html = render(
        "login.html",
        minijinja::context! {
            site => state.site.name.clone(),
            message => message,
            lang => browser_language(&headers).code(),
        },
    )?;
    Ok(page(html))
}

/// What the overview shows, as display text in the viewer's language: the page renders it,
/// and the script replaces each `data-field` with the same field from
/// `/console/overview.json`.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub site: String,
    /// `online`, `degraded`, `offline` or `unknown` (the banner's class).
    pub mode: String,
    /// The mode in the viewer's language.
    pub mode_label: String,
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
pub(super) fn duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..90 => format!("{secs} s"),
        90..5400 => format!("{} min", (secs + 30) / 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

pub(super) fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A stored time (RFC 3339) for a person: `2026-12-06 03:30:51 UTC (4 min ago)`; the text
/// as given when it does not parse.
pub(super) fn when(lang: crate::i18n::Lang, iso: &str) -> String {
    let Ok(at) = iso.parse::<jiff::Timestamp>() else {
        return iso.to_owned();
    };
    let ago = (jiff::Timestamp::now().as_millisecond() - at.as_millisecond()) as f64 / 1000.0;
    tr(
        lang,
        "time-ago",
        &[
            ("at", at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()),
            ("ago", duration(ago)),
        ],
    )
}

/// A catalogue message in `lang`, with `(name, value)` variables.
pub(super) fn tr(lang: crate::i18n::Lang, key: &str, args: &[(&str, String)]) -> String {
    let args: Vec<_> = args
        .iter()
        .map(|(k, v)| (*k, fluent_bundle::FluentValue::from(v.as_str())))
        .collect();
    crate::i18n::catalogue().text(lang, key, &args)
}

/// The overview of the status snapshot (see [`full_status`]) and the device registry, in
/// `lang`.
pub fn overview(state: &AppState, lang: crate::i18n::Lang) -> Result<Overview, ApiError> {
    let s = full_status(state)?;
    let queue = if s.queue.values().all(|n| *n == 0) {
        tr(lang, "queue-empty", &[])
    } else {
        s.queue
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(state, n)| tr(lang, &format!("queue-{state}"), &[("n", n.to_string())]))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let (drain_rate, eta) = match &s.push {
        Some(p) => (
            tr(
                lang,
                "per-second",
                &[("rate", format!("{:.1}", p.drain_rate_per_sec))],
            ),
            p.eta_drain_secs.map_or_else(|| "—".to_owned(), duration),
        ),
        None => (tr(lang, "no-push", &[]), "—".to_owned()),
    };
    let target = s.cloud.target.as_ref().map(|url| {
        match s.pull.as_ref().and_then(|p| p.odoo_version.as_deref()) {
            Some(v) if !v.is_empty() => format!("{url} (Odoo {v})"),
            _ => url.clone(),
        }
    });
    let odoo = match (target, &s.pull_error) {
        (None, _) => tr(lang, "odoo-none", &[]),
        (Some(url), Some(e)) => tr(
            lang,
            "odoo-unreachable",
            &[
                ("url", url),
                ("failures", e.failures_in_row.to_string()),
                ("message", e.message.clone()),
            ],
        ),
        (Some(url), None) if s.mode == "offline" => tr(lang, "odoo-offline", &[("url", url)]),
        (Some(url), None) if s.last_pull_at.is_some() => {
            tr(lang, "odoo-reachable", &[("url", url)])
        }
        (Some(url), None) => tr(lang, "odoo-not-yet", &[("url", url)]),
    };
    let database = match state.store.size_cap() {
        Some(cap) => tr(
            lang,
            "database-capped",
            &[
                ("size", megabytes(s.database.size_bytes)),
                ("cap", megabytes(cap.total_bytes)),
                (
                    "headroom",
                    megabytes(cap.total_bytes.saturating_sub(s.database.size_bytes)),
                ),
            ],
        ),
        None => tr(
            lang,
            "database-uncapped",
            &[("size", megabytes(s.database.size_bytes))],
        ),
    };
    let devices = Devices::from_rows(&state.registry.list());
    let of_total = |count: Online| {
        tr(
            lang,
            "of-total",
            &[
                ("up", count.online.to_string()),
                ("total", count.total.to_string()),
            ],
        )
    };
    let lockouts = s.sign_in.as_ref().map_or_else(
        || "—".to_owned(),
        |l| {
            tr(
                lang,
                "lockouts-summary",
                &[
                    ("failures", l.failures.to_string()),
                    ("device", l.device_lockouts.to_string()),
                    ("site", l.site_lockouts.to_string()),
                    ("locked", l.locked_devices.len().to_string()),
                ],
            )
        },
    );
    Ok(Overview {
        site: s.site.name.clone(),
        mode_label: tr(lang, &format!("mode-{}", s.mode), &[]),
        mode: s.mode.clone(),
        mode_since: when(lang, &s.mode_since),
        mode_reason: s.mode_reason.clone(),
        queue,
        oldest_pending: s
            .oldest_pending_age_secs
            .map_or_else(|| tr(lang, "none-pending", &[]), duration),
        drain_rate,
        eta,
        last_pull: s
            .last_pull_at
            .as_deref()
            .map_or_else(|| tr(lang, "never", &[]), |t| when(lang, t)),
        odoo,
        database,
        devices: of_total(devices.devices_online()),
        printers: of_total(devices.printers_online()),
        conflicts: tr(
            lang,
            "conflicts-summary",
            &[
                ("open", s.conflicts.open.to_string()),
                ("flagged", s.conflicts.flagged.to_string()),
            ],
        ),
        lockouts,
        tls: s.tls.as_ref().map_or_else(
            || tr(lang, "https-off", &[]),
            |t| t.fingerprint_sha256.clone(),
        ),
    })
}

/// `GET /console/`: the overview, for a signed-in manager of any role; otherwise a
/// redirect to the sign-in page.
async fn overview_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let o = overview(&state, viewer.lang)?;
    render_page(
        &state,
        &viewer,
        "overview.html",
        "overview",
        minijinja::context! { o => minijinja::Value::from(minijinja::value::Serde(&o)) },
    )
}

/// `GET /console/overview.json`: the overview's figures for the page's script (a manager
/// route: any role).
pub(super) async fn overview_json(
    State(state): State<Arc<AppState>>,
    axum::Extension(actor): axum::Extension<Actor>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let lang = language_of(&actor, &headers);
    let mut response = Json(overview(&state, lang)?).into_response();
    secure(response.headers_mut());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{Lang, catalogue};

    /// Every literal key a template asks for (`t("key")` or `t('key')`).
    fn literal_keys(source: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for quote in ['"', '\''] {
            let open = format!("t({quote}");
            let mut rest = source;
            while let Some(at) = rest.find(&open) {
                rest = &rest[at + open.len()..];
                if let Some(end) = rest.find(quote) {
                    keys.push(rest[..end].to_owned());
                }
            }
        }
        keys
    }

    #[test]
    fn every_key_a_template_names_is_in_the_catalogue() {
        let mut missing = Vec::new();
        for (name, source) in TEMPLATES {
            // A key built in the template (`"nav-" ~ id`) is checked by rendering, below.
            for key in literal_keys(source)
                .into_iter()
                .filter(|k| !k.ends_with('-'))
            {
                if !catalogue().has(Lang::En, &key) {
                    missing.push(format!("{name}: {key}"));
                }
            }
        }
        assert!(missing.is_empty(), "keys not in en/*.ftl: {missing:#?}");
    }

    #[test]
    fn every_template_parses() {
        let mut env = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn the_layout_renders_in_every_language_without_a_raw_key() {
        for lang in Lang::ALL {
            let html = render(
                "overview.html",
                minijinja::context! {
                    site => "Test <site>", name => "anna", role => "viewer", can_manage => false,
                    csrf => "x", lang => lang.code(), current => "overview",
                    languages => vec![minijinja::context! { code => "en", name => "English" }],
                    o => minijinja::context! { mode => "online", mode_label => "online" },
                },
            )
            .unwrap();
            for prefix in ["nav-", "role-", "overview-"] {
                assert!(
                    !html.contains(&format!(">{prefix}")),
                    "{lang}: raw key {prefix} in {html}"
                );
            }
            assert!(html.contains("Test &lt;site&gt;"), "values are escaped");
        }
    }
}
