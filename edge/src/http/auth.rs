//! Who may do what on the manager routes: the one authorisation check ([`authorize`]) shared
//! by the JSON API and the console, the routes behind it ([`MANAGER_ROUTES`]), the
//! device-or-manager routes, and the audit record of what a manager did.

use super::*;

/// Every route behind [`authorize`] (method, path with `{id}` for a parameter): reads need
/// [`Need::View`], the others [`Need::Manage`]. The device-or-manager routes also take a device
/// token. Kept beside the router; a test refuses each one to an anonymous client and each state
/// change to a viewer.
pub const MANAGER_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/printers"),
    ("GET", "/api/v1/print-jobs"),
    ("POST", "/api/v1/print-jobs/{id}/reprint"),
    ("POST", "/api/v1/print-jobs/{id}/cancel"),
    ("POST", "/api/v1/devices/{id}/token"),
    ("POST", "/api/v1/devices/{id}/revoke"),
    ("POST", "/api/v1/pull"),
    ("GET", "/api/v1/conflicts"),
    ("GET", "/api/v1/conflicts/{id}"),
    ("POST", "/api/v1/conflicts/{id}/resolve"),
    ("GET", "/api/v1/audit"),
    ("POST", "/api/v1/floor-sessions/{id}/cancel"),
    ("GET", "/api/v1/demo/cloud"),
    ("POST", "/api/v1/demo/cloud"),
    ("POST", "/api/v1/demo/scan"),
    ("GET", "/console/me"),
    ("GET", "/console/overview.json"),
    ("POST", "/console/logout"),
    ("POST", "/console/language"),
];

/// The manager routes any signed-in role may post to: they change only the caller's own
/// session or account (sign out, the console's language). The CSRF token is still required.
pub const SELF_SERVICE_ROUTES: &[&str] = &["/console/logout", "/console/language"];

/// The device API (a device token, see `require_device`): method and path as routed.
pub const DEVICE_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/pickings"),
    ("GET", "/api/v1/pickings/{id}"),
    ("POST", "/api/v1/lookup"),
    ("GET", "/api/v1/me"),
    ("PUT", "/api/v1/me/language"),
    ("GET", "/api/v1/journal"),
    ("GET", "/api/v1/sessions/{id}"),
    ("POST", "/api/v1/print"),
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/logout"),
    ("POST", "/api/v1/sessions"),
    ("POST", "/api/v1/scan"),
    ("POST", "/api/v1/sessions/{id}/{action}"),
];

/// What anyone on the LAN may ask without credentials: probes, the handheld's and the
/// console's static files and sign-in page, redirects. Nothing here reads site data.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/"),
    ("GET", "/ui"),
    ("GET", "/ui/"),
    ("GET", "/ui/app.js"),
    ("GET", "/ui/app.css"),
    ("GET", "/ui/strings.json"),
    ("GET", "/console"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("GET", "/console/console.js"),
    ("GET", "/console/console.css"),
];

/// Routes for central ops' scrapers (`http/metrics.rs`): open from loopback, from the LAN
/// only with the bearer token `telemetry.metrics_token` (refused when none is configured).
/// They name no device, host or path, but do tell the site's workload, so they are not
/// public.
pub const METRICS_ROUTES: &[(&str, &str)] = &[("GET", "/metrics")];

/// Whether a routed request has an access rule: the route is public, a device route, a
/// manager route, a metrics route or a console page. [`route_rule`] answers 500 for one that has none, so a
/// route added without deciding who may use it works for nobody (and every test that
/// touches it fails) instead of for everybody.
pub fn has_rule(method: &axum::http::Method, path: &str) -> bool {
    let method = if method == axum::http::Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let listed = |routes: &[(&str, &str)]| routes.iter().any(|(m, p)| *m == method && *p == path);
    listed(PUBLIC_ROUTES)
        || listed(DEVICE_ROUTES)
        || listed(MANAGER_ROUTES)
        || listed(METRICS_ROUTES)
        || (method == "GET" && CONSOLE_PAGES.contains(&path))
}

/// The router's outermost check: a request that matched a route without an access rule
/// (see [`has_rule`]) is refused with 500 and logged.
pub(super) async fn route_rule(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>()
        && !has_rule(request.method(), matched.as_str())
    {
        tracing::error!(
            method = %request.method(),
            route = matched.as_str(),
            "a route without an access rule was asked for; list it in http/auth.rs"
        );
        return ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "no_access_rule",
            message: format!(
                "{} {} has no access rule",
                request.method(),
                matched.as_str()
            ),
        }
        .into_response();
    }
    next.run(request).await
}

/// What a request's method needs: reads view, everything else acts.
/// The console's pages: without a live session each redirects to `/console/login` and shows
/// nothing (a test walks them as it walks [`MANAGER_ROUTES`]).
pub const CONSOLE_PAGES: &[&str] = &[
    "/console/",
    "/console/conflicts",
    "/console/conflicts/{id}",
    "/console/journal",
    "/console/journal/{id}",
    "/console/sessions",
    "/console/audit",
    "/console/runbook",
    "/console/backlog",
    "/console/devices",
    "/console/cache",
];

pub fn need_of(method: &axum::http::Method) -> Need {
    use axum::http::Method;
    if method == Method::GET || method == Method::HEAD {
        Need::View
    } else {
        Need::Manage
    }
}

/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The one authorisation check of the manager routes: the site manager's bearer token (full
/// rights) or a live console session whose role meets `need`; a state change made with the
/// cookie must carry the session's CSRF token. 401 without valid credentials, 403 for a role
/// that falls short or a missing or wrong CSRF token.
pub fn authorize(
    state: &AppState,
    parts: &axum::http::request::Parts,
    need: Need,
) -> Result<Actor, ApiError> {
    if let Some(presented) = bearer_of(&parts.headers) {
        if token_is_manager(state, presented) {
            return Ok(Actor::Token);
        }
        return Err(ApiError::unauthorized("invalid manager token"));
    }
    let Some(token) = parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(crate::managers::session_cookie)
    else {
        return Err(ApiError::unauthorized(
            "a manager token or a console session is required",
        ));
    };
    let (actor, _) = session_actor(state, token)?;
    if !actor.role().allows(need) {
        return Err(ApiError::forbidden(
            "forbidden",
            "a viewer may read but not change anything; ask a manager",
        ));
    }
    if need_of(&parts.method) == Need::Manage {
        let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !crate::managers::csrf_matches(token, presented) {
            return Err(ApiError::forbidden(
                "csrf",
                "a change made with the session cookie needs the session's X-CSRF-Token header",
            ));
        }
    }
    Ok(actor)
}

/// The manager signed in with the session `token`, and the digest it is stored under. An
/// expired session is removed; a live one's last use is written now and then (not awaited:
/// a request does not wait on a bookkeeping write).
pub(super) fn session_actor(state: &AppState, token: &str) -> Result<(Actor, String), ApiError> {
    use crate::managers::SessionCheck;
    let digest = crate::floor::sha256_hex(token.as_bytes());
    let Some(row) = state.store.read(|r| r.manager_session(&digest))? else {
        return Err(ApiError::unauthorized(
            "the console session has ended; sign in again",
        ));
    };
    let now = crate::store::now_ms();
    match state
        .managers
        .sessions
        .check(row.created_at, row.last_seen, now)
    {
        SessionCheck::Valid { touch } => {
            if touch {
                let store = state.store.clone();
                let token_sha256 = digest.clone();
                tokio::spawn(async move {
                    let cmd = crate::store::ManagerCmd::Touch {
                        token_sha256,
                        at: now,
                    };
                    if let Err(e) = store.managers(cmd).await {
                        tracing::warn!(error = %e, "console session: last use not written");
                    }
                });
            }
        }
        SessionCheck::Idle | SessionCheck::Expired => {
            let store = state.store.clone();
            let token_sha256 = digest.clone();
            tokio::spawn(async move {
                let cmd = crate::store::ManagerCmd::CloseSession {
                    token_sha256,
                    audit: None,
                };
                if let Err(e) = store.managers(cmd).await {
                    tracing::warn!(error = %e, "console session: expired session not removed");
                }
            });
            return Err(ApiError::unauthorized(
                "the console session has ended; sign in again",
            ));
        }
    }
    let role = Role::parse(&row.role)
        .ok_or_else(|| StoreError::Data(format!("manager role {:?}", row.role)))?;
    Ok((
        Actor::Session {
            name: row.manager,
            role,
            language: row.language.as_deref().and_then(crate::i18n::Lang::parse),
        },
        digest,
    ))
}

/// `presented` is the site manager's token (constant time).
pub(super) fn token_is_manager(state: &AppState, presented: &[u8]) -> bool {
    match &state.manager_token {
        Some(expected) => bool::from(subtle::ConstantTimeEq::ct_eq(
            presented,
            expected.expose().as_bytes(),
        )),
        None => false,
    }
}

/// A refusal of [`authorize`] as an answer (a 401 asks for a bearer token).
pub(super) fn refusal(e: ApiError) -> Response {
    let ask = e.status == StatusCode::UNAUTHORIZED;
    let mut response = e.into_response();
    if ask {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Writes an audit record; a failure is logged, not answered (the action itself is done).
pub(super) async fn record(state: &AppState, audit: crate::store::NewAudit) {
    let action = audit.action.clone();
    if let Err(e) = state
        .store
        .managers(crate::store::ManagerCmd::Audit(audit))
        .await
    {
        tracing::error!(error = %e, action, "audit record not written");
    }
}

/// The manager routes: [`authorize`] with what the method needs; the actor goes to the
/// handler as an extension.
pub(super) async fn require_manager(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match authorize(&state, &parts, need_of(&parts.method)) {
        Ok(actor) => {
            parts.extensions.insert(actor);
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(e) => refusal(e),
    }
}

/// The device-or-manager routes (devices, printers, print jobs): a device token, or
/// [`authorize`] with what the method needs.
pub(super) async fn require_staff(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Some(token) = bearer_of(&parts.headers)
        && !token_is_manager(&state, token)
    {
        return match state.floor.authenticate(token) {
            Ok(Some(id)) => {
                parts.extensions.insert(DeviceId(id));
                next.run(axum::extract::Request::from_parts(parts, body))
                    .await
            }
            Ok(None) => unauthorized("a device or manager token is required"),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    match authorize(&state, &parts, need_of(&parts.method)) {
        Ok(actor) => {
            parts.extensions.insert(actor);
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(e) => refusal(e),
    }
}
