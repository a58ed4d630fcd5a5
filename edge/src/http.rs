//! The appliance's HTTP server: probes, the status API, the handheld UI (`/ui/`), and the
//! device API under `/api/v1/` (bearer device tokens, bodies of at most 64 KiB, JSON errors
//! with stable codes, an `Idempotency-Key` header on every write).
//!
//! Only `/healthz` and `/readyz` are open, and they say nothing about the site (no paths, no
//! URLs). The status, devices and printers name the Odoo URL, the database path, serial
//! ports, printer addresses and scanned text in errors: they take a device token or a
//! manager (see below). `http.public_status` opens a minimal status (mode and queue counts)
//! for a wall screen. Connections are capped and timed out in [`conn`].
//!
//! Managers: every manager route passes one check, [`authorize`], which takes the site
//! manager's bearer token or a console session cookie (`POST /console/login`, see
//! [`crate::managers`]). A read needs [`Need::View`] (viewers and managers), anything else
//! [`Need::Manage`]; a state change made with the cookie must carry the session's CSRF token
//! in `X-CSRF-Token`. [`MANAGER_ROUTES`] lists the routes behind it (a test walks the list).
//! Manager actions and sign-ins are written to the audit trail (`GET /api/v1/audit`).
//!
//! Device endpoints answer from the local store only, never by asking the cloud. Workflow
//! logic lives in [`crate::floor`]; this module only translates HTTP to it and back.

mod auth;
mod conn;
mod console;
mod pages;

use auth::*;
pub use auth::{
    CONSOLE_PAGES, CSRF_HEADER, DEVICE_ROUTES, MANAGER_ROUTES, METRICS_ROUTES, PUBLIC_ROUTES,
    SELF_SERVICE_ROUTES, authorize, has_rule, need_of,
};
use console::*;
use pages::*;
pub use pages::{CONSOLE_CSP, Overview};
mod lan;
mod metrics;
mod ops;

pub use metrics::{render as render_metrics, scrape_allowed};

pub use conn::{ConnLimits, FD_RESERVE};

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::floor::{Answer, Caller, Floor, FloorRequest, LoginBy, RawInput};
use crate::managers::{Actor, Managers, Need, Role};
use crate::status::{CloudStatus, RuntimeStatus, SiteStatus, Status};
use crate::store::{Store, StoreError};
use crate::workflow::Workflow;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// Devices, operators and workflow sessions.
    pub floor: Floor,
    pub site: SiteStatus,
    pub cloud: CloudStatus,
    pub started: Instant,
    /// Progress of the pull, when an Odoo is configured.
    pub pull: Option<crate::pull::ProgressHandle>,
    /// Wakes the pull task for a pull now (`POST /api/v1/pull`); `None` without an Odoo.
    pub pull_now: Option<crate::pull::PullNowHandle>,
    /// The push's figures, when an Odoo is configured.
    pub push: Option<Arc<crate::push::PushStats>>,
    pub connectivity: crate::connectivity::Connectivity,
    /// The site manager's token (conflicts inbox); `None`: CLI only.
    pub manager_token: Option<crate::config::Secret>,
    /// The demo's simulated cloud link, switchable over the API (`holdfast demo` only).
    pub demo: Option<crate::demo::DemoCloud>,
    /// Scanners, printers and broker links, as last seen.
    pub registry: crate::registry::Registry,
    /// Label printing (spool and printers).
    pub printing: crate::printing::Printing,
    /// Manager sign-in: the lock-out and how long console sessions last.
    pub managers: Managers,
    /// The HTTPS certificate when `http.tls` is on (then every request came over TLS, and
    /// the session cookie is marked `Secure`); `None`: plain HTTP.
    pub tls: Option<crate::tls::TlsHandle>,
    /// What the configuration keeps working offline, and the site's procedure file.
    pub runbook: Arc<crate::runbook::Runbook>,
    /// The bearer token a scraper on the LAN presents for `/metrics`
    /// (`telemetry.metrics_token`); `None`: loopback only.
    pub metrics_token: Option<crate::config::Secret>,
    /// The MQTT telemetry, when `[telemetry.mqtt]` is configured.
    pub telemetry: Option<crate::telemetry::Telemetry>,
}

impl AppState {
    /// A site's state with nothing running beside the HTTP server: no Odoo (no pull or
    /// push), no demo, no printers, no manager token, plain HTTP. The appliance sets what it
    /// runs on top (`AppState { pull: ..., ..AppState::new(...) }`); tests and benchmarks
    /// set only what they exercise.
    pub fn new(store: Store, floor: Floor, site: SiteStatus) -> AppState {
        AppState {
            connectivity: crate::connectivity::Connectivity::new(store.clone()),
            printing: crate::printing::Printing::new(
                store.clone(),
                crate::config::LanConfig::default(),
            ),
            store,
            floor,
            site,
            cloud: CloudStatus { target: None },
            started: Instant::now(),
            pull: None,
            pull_now: None,
            push: None,
            manager_token: None,
            demo: None,
            registry: crate::registry::Registry::default(),
            managers: Managers::default(),
            tls: None,
            runbook: Arc::default(),
            metrics_token: None,
            telemetry: None,
        }
    }
}

/// A JSON error with a stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let (status, code) = crate::floor::store_error_code(&e);
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: e.to_string(),
        }
    }
}

impl ApiError {
    fn bad_request(message: String) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message,
        }
    }

    fn unauthorized(message: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
        }
    }

    fn forbidden(code: &'static str, message: &str) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code,
            message: message.into(),
        }
    }

    fn bad_scan(message: String) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "bad_scan",
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The same shape as the floor's refusals: status, code and message at the top, and
        // under "error" for clients that only look there.
        let body = Json(json!({
            "status": "error",
            "code": self.code,
            "message": self.message,
            "error": {"code": self.code, "message": self.message},
        }));
        (self.status, body).into_response()
    }
}

/// Largest request body accepted on the device API.
pub const MAX_BODY: usize = 64 * 1024;

/// How the server runs, beside what handlers reach ([`AppState`]).
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    pub limits: ConnLimits,
    /// `GET /api/v1/status` without a token answers mode and queue counts (no URLs, paths).
    pub public_status: bool,
}

/// The router with the default options (see [`router_with`]).
pub fn router(state: AppState) -> Router {
    router_with(state, &ServeOptions::default())
}

pub fn router_with(state: AppState, options: &ServeOptions) -> Router {
    let state = Arc::new(state);
    let public_status = options.public_status;
    let devices = Router::new()
        .route("/api/v1/pickings", get(pickings))
        .route("/api/v1/pickings/{id}", get(picking))
        .route("/api/v1/lookup", post(lookup))
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/language", axum::routing::put(me_language))
        .route("/api/v1/journal", get(device_journal))
        .route("/api/v1/sessions/{id}", get(session))
        .route("/api/v1/print", post(lan::print))
        .merge(write_routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_device,
        ));
    let managers = Router::new()
        .route("/api/v1/conflicts", get(conflicts))
        .route("/api/v1/conflicts/{id}", get(conflict))
        .route("/api/v1/conflicts/{id}/resolve", post(resolve_conflict))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/floor-sessions/{id}/cancel", post(cancel_session))
        .route("/api/v1/demo/cloud", get(demo_cloud).post(set_demo_cloud))
        .route("/api/v1/demo/scan", post(lan::demo_scan))
        .route("/console/me", get(console_me))
        .route("/console/overview.json", get(overview_json))
        .route("/api/v1/devices/{id}/token", post(ops::issue_device_token))
        .route("/api/v1/devices/{id}/revoke", post(ops::revoke_device))
        .route("/api/v1/pull", post(ops::pull_now))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_manager,
        ));
    let staff = Router::new()
        .route("/api/v1/devices", get(lan::devices))
        .route("/api/v1/printers", get(lan::printers))
        .route("/api/v1/print-jobs", get(lan::print_jobs))
        .route("/api/v1/print-jobs/{id}/reprint", post(lan::reprint))
        .route("/api/v1/print-jobs/{id}/cancel", post(lan::cancel))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_staff,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/api/v1/status",
            get(
                move |State(s): State<Arc<AppState>>,
                      parts: axum::http::request::Parts,
                      Query(q): Query<StatusQuery>| async move {
                    status(s, &parts, q, public_status).await
                },
            ),
        )
        .route("/console/logout", post(console_logout))
        .route("/console/language", post(console_language))
        .merge(staff)
        .merge(crate::ui::routes())
        .merge(pages::routes())
        .merge(devices)
        .merge(managers)
        .layer(axum::middleware::from_fn(auth::route_rule))
        .layer(axum::middleware::from_fn(no_store_by_default))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            options.limits.body_timeout,
            read_body,
        ))
        .fallback(not_found)
        .with_state(state)
}

/// The router of connections over the caps (see [`conn`]): probes only.
fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(busy)
        .with_state(Arc::new(state))
}

/// The answer to a connection over the caps that is not a probe.
async fn busy() -> Response {
    let mut response = ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "busy",
        message: "too many connections; try again shortly".into(),
    }
    .into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// Reads the whole body (at most [`MAX_BODY`]) within `limit` of the head, before any
/// handler runs: a client that trickles its body is answered 408 and its connection closed,
/// instead of holding it for as long as it likes.
async fn read_body(
    State(limit): State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use http_body_util::BodyExt;
    let too_large = || ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "body_too_large",
        message: format!("the request body is larger than {MAX_BODY} bytes"),
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return close(too_large().into_response());
    }
    let (parts, mut body) = request.into_parts();
    let collect = async {
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::bad_request(format!("the request body could not be read: {e}"))
            })?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > MAX_BODY {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes)
    };
    match tokio::time::timeout(limit, collect).await {
        Ok(Ok(bytes)) => {
            let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(request).await
        }
        Ok(Err(e)) => close(e.into_response()),
        Err(_) => close(
            ApiError {
                status: StatusCode::REQUEST_TIMEOUT,
                code: "body_timeout",
                message: format!(
                    "the request body did not arrive within {} s",
                    limit.as_secs_f64()
                ),
            }
            .into_response(),
        ),
    }
}

/// An answer that says nothing of caching is not stored: the API's and the console's JSON
/// carry site data, and the sign-in answer and `/console/me` a session's CSRF token. Static
/// files say `no-cache` themselves. No answer is sniffed for another type than it names
/// (axum's plain-text refusals quote the path or query they refuse).
async fn no_store_by_default(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    if !response
        .headers()
        .contains_key(axum::http::header::CACHE_CONTROL)
    {
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// Marks an answer as the last on its connection (its body may be unread).
fn close(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// The device a request came from (set by [`require_device`]).
#[derive(Clone, Debug)]
pub struct DeviceId(pub String);

/// Accepts a request only with `Authorization: Bearer <token>` of a configured device. A
/// refusal says nothing about why (no hint whether the device or the token was wrong).
async fn require_device(
    State(state): State<Arc<AppState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match device_of(&state, &request) {
        Ok(Some(id)) => {
            request.extensions_mut().insert(DeviceId(id));
            next.run(request).await
        }
        Ok(None) => unauthorized("missing or invalid device token"),
        Err(e) => e.into_response(),
    }
}

/// The `Authorization: Bearer` token of a request.
fn bearer(request: &axum::extract::Request) -> Option<&[u8]> {
    bearer_of(request.headers())
}

/// The `Authorization: Bearer` token in `headers`.
fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&[u8]> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().as_bytes())
        .filter(|token| !token.is_empty())
}

/// The device whose token the request carries.
fn device_of(
    state: &AppState,
    request: &axum::extract::Request,
) -> Result<Option<String>, ApiError> {
    match bearer(request) {
        Some(token) => Ok(state.floor.authenticate(token)?),
        None => Ok(None),
    }
}

/// A 401 that asks for a bearer token.
fn unauthorized(message: &str) -> Response {
    let mut response = ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: message.into(),
    }
    .into_response();
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
}

#[derive(Debug, serde::Deserialize)]
struct PickingsQuery {
    /// `open` (default) or `all`.
    #[serde(default)]
    show: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// The picking list (open ones by default).
async fn pickings(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<PickingsQuery>,
) -> Result<Response, ApiError> {
    let open_only = match query.show.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "show={other:?} is not one of: open, all"
            )));
        }
    };
    let limit = query.limit.unwrap_or(200).min(1000);
    let list = state.store.read(|r| r.pickings(open_only, limit))?;
    Ok(Json(json!({"pickings": list})).into_response())
}

/// One picking with its moves and progress.
async fn picking(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a picking id")))?;
    match state.store.read(|r| r.picking(id))? {
        Some((summary, moves)) => {
            Ok(Json(json!({"picking": summary, "moves": moves})).into_response())
        }
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("no picking {id} on this site"),
        }),
    }
}

/// What a scanned code means here: decoded (AIM, GS1) and resolved from the local view.
async fn lookup(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LookupBody {
        code: String,
    }
    let request: LookupBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body must be {{\"code\": \"...\"}}: {e}")))?;
    let raw = holdfast_devices::scan::RawScan::parse(request.code.as_bytes())
        .map_err(|e| ApiError::bad_scan(e.to_string()))?;
    let decoded = holdfast_devices::gs1::decode(raw.as_str(), &Default::default())
        .map_err(|e| ApiError::bad_scan(e.to_string()))?;
    let matches = state.store.read(|r| crate::resolve::resolve(r, &decoded))?;
    let elements: Vec<_> = match &decoded.data {
        holdfast_devices::gs1::ScanData::Gs1(elements) => elements
            .iter()
            .map(|e| json!({"ai": e.ai, "value": e.raw}))
            .collect(),
        holdfast_devices::gs1::ScanData::Plain(_) => Vec::new(),
    };
    Ok(Json(json!({
        "symbology": decoded.symbology.map(|s| s.to_string()),
        "gs1": elements,
        "matches": matches,
    }))
    .into_response())
}

/// An answer from the floor, as HTTP.
fn answer(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(a.body)).into_response();
    if a.replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}

/// The body of a write, or why it cannot be read.
fn body_bytes(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| ApiError {
        status: e.status(),
        code: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_request"
        },
        message: format!("{e} (at most {MAX_BODY} bytes)"),
    })
}

/// Parses a JSON body; an empty body reads as `{}`.
fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("body must be {shape}: {e}")))
}

/// Who is writing, and under which idempotency key (required on every write).
fn caller(
    device: &DeviceId,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
    body: &[u8],
) -> Result<Caller, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if key.is_empty() {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "idempotency_key_required",
            message: "send an Idempotency-Key header (a new random value per action, the same on a retry)".into(),
        });
    }
    if key.len() > crate::floor::MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {} visible ASCII characters",
            crate::floor::MAX_KEY_LEN
        )));
    }
    Ok(Caller {
        device: device.0.clone(),
        key: Some(key.to_owned()),
        // The path, a zero byte and the body.
        fingerprint: crate::floor::sha256_hex_of(&[uri.path().as_bytes(), &[0], body]),
    })
}

type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

/// Who is signed in on this device, and its sessions.
async fn me(
    State(state): State<Arc<AppState>>,
    axum::Extension(device): axum::Extension<DeviceId>,
) -> Response {
    answer(state.floor.whoami(&device.0))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LanguageBody {
    language: Option<String>,
}

/// `PUT /api/v1/me/language`: the signed-in operator's handheld language, `{"language":
/// "de"}` (or `null`: as the device asks).
async fn me_language(
    State(state): State<Arc<AppState>>,
    axum::Extension(device): axum::Extension<DeviceId>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<LanguageBody>(&body) {
        Ok(b) => answer(
            state
                .floor
                .set_operator_language(&device.0, b.language.as_deref())
                .await,
        ),
        Err(e) => ApiError::bad_request(format!("body must be {{\"language\": \"de\"}}: {e}"))
            .into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct JournalQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// This device's latest journal entries, newest first.
async fn device_journal(
    State(state): State<Arc<AppState>>,
    axum::Extension(device): axum::Extension<DeviceId>,
    axum::extract::Query(query): axum::extract::Query<JournalQuery>,
) -> Result<Response, ApiError> {
    let filter = crate::store::JournalFilter {
        device: Some(device.0.clone()),
        limit: query.limit.unwrap_or(20).min(200),
        ..Default::default()
    };
    let entries = state.store.read(|r| r.journal(&filter))?;
    Ok(Json(json!({"entries": entries})).into_response())
}

/// One session, as its operator sees it.
async fn session(
    State(state): State<Arc<AppState>>,
    axum::Extension(device): axum::Extension<DeviceId>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    answer(state.floor.session(&device.0, &id))
}

/// The device API's write endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteEndpoint {
    Login,
    Logout,
    Start,
    Scan,
    Resume(String),
    Cancel(String),
    Quantity(String),
    Validate(String),
    Finish(String),
}

/// Reads a write request's body into what the floor understands. Every device body goes
/// through here (fuzzed by `fuzz/fuzz_targets/device_request.rs`); an empty body reads as
/// `{}`, unknown fields are refused.
pub fn parse_write(endpoint: WriteEndpoint, bytes: &[u8]) -> Result<FloorRequest, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LoginBody {
        badge: Option<String>,
        operator: Option<String>,
        pin: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StartBody {
        workflow: String,
        picking_id: Option<i64>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ScanBody {
        code: String,
        session_id: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct QuantityBody {
        quantity: f64,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ValidateBody {
        backorder: Option<holdfast_sync::ops::BackorderChoice>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}

    Ok(match endpoint {
        WriteEndpoint::Login => {
            let shape = r#"{"badge": "..."} or {"operator": "...", "pin": "..."}"#;
            match json_body::<LoginBody>(bytes, shape)? {
                LoginBody {
                    badge: Some(badge),
                    operator: None,
                    pin: None,
                } => FloorRequest::Login(LoginBy::Badge(badge)),
                LoginBody {
                    badge: None,
                    operator: Some(operator),
                    pin: Some(pin),
                } => FloorRequest::Login(LoginBy::Pin { operator, pin }),
                _ => return Err(ApiError::bad_request(format!("body must be {shape}"))),
            }
        }
        WriteEndpoint::Logout => {
            json_body::<Empty>(bytes, "empty")?;
            FloorRequest::Logout
        }
        WriteEndpoint::Start => {
            let b: StartBody = json_body(bytes, r#"{"workflow": "pick", "picking_id": 12}"#)?;
            let workflow = Workflow::parse(&b.workflow).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "workflow {:?} is not one of: pick, receive, count, transfer",
                    b.workflow
                ))
            })?;
            FloorRequest::Start {
                workflow,
                picking_id: b.picking_id,
            }
        }
        WriteEndpoint::Scan => {
            let b: ScanBody = json_body(bytes, r#"{"code": "...", "session_id": "..."}"#)?;
            FloorRequest::Input {
                session: b.session_id,
                input: RawInput::Scan(b.code.into_bytes()),
            }
        }
        WriteEndpoint::Resume(session) => {
            json_body::<Empty>(bytes, "empty")?;
            FloorRequest::Resume { session }
        }
        WriteEndpoint::Cancel(session) => {
            json_body::<Empty>(bytes, "empty")?;
            FloorRequest::Cancel { session }
        }
        WriteEndpoint::Quantity(session) => {
            let b: QuantityBody = json_body(bytes, r#"{"quantity": 3}"#)?;
            FloorRequest::Input {
                session: Some(session),
                input: RawInput::Quantity(b.quantity),
            }
        }
        WriteEndpoint::Validate(session) => {
            let b: ValidateBody = json_body(
                bytes,
                r#"{} or {"backorder": "backorder" | "no_backorder"}"#,
            )?;
            FloorRequest::Input {
                session: Some(session),
                input: RawInput::Validate(b.backorder),
            }
        }
        WriteEndpoint::Finish(session) => {
            json_body::<Empty>(bytes, "empty")?;
            FloorRequest::Input {
                session: Some(session),
                input: RawInput::Finish,
            }
        }
    })
}

/// The handler of every write endpoint: body, idempotency key, then the floor.
async fn write_endpoint(
    state: Arc<AppState>,
    device: DeviceId,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    body: Body,
    endpoint: WriteEndpoint,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let is_scan = endpoint == WriteEndpoint::Scan;
    let bytes = body_bytes(body)?;
    let request = parse_write(endpoint, &bytes)?;
    let caller = caller(&device, &headers, &uri, &bytes)?;
    let answered = state.floor.handle(&caller, request).await;
    if is_scan {
        // The same test as a scanner's beep (`scanners::feedback`): 2xx is a good scan.
        crate::metrics::scan("http", answered.status < 300, started.elapsed());
    }
    Ok(answer(answered))
}

/// Routes of the write endpoints (all behind the device token).
fn write_routes() -> Router<Arc<AppState>> {
    use axum::extract::{Extension, Path};
    type S = State<Arc<AppState>>;
    type H = axum::http::HeaderMap;
    type U = axum::http::Uri;
    type D = Extension<DeviceId>;
    // An endpoint whose body alone says what to do.
    let fixed = |endpoint: WriteEndpoint| {
        post(move |State(s): S, Extension(d): D, h: H, u: U, b: Body| {
            write_endpoint(s, d, h, u, b, endpoint.clone())
        })
    };
    Router::new()
        .route("/api/v1/login", fixed(WriteEndpoint::Login))
        .route("/api/v1/logout", fixed(WriteEndpoint::Logout))
        .route("/api/v1/sessions", fixed(WriteEndpoint::Start))
        .route("/api/v1/scan", fixed(WriteEndpoint::Scan))
        .route(
            "/api/v1/sessions/{id}/{action}",
            post(
                |State(s): S,
                 Extension(d): D,
                 Path((id, action)): Path<(String, String)>,
                 h: H,
                 u: U,
                 b: Body| async move {
                    let endpoint = match action.as_str() {
                        "resume" => WriteEndpoint::Resume(id),
                        "cancel" => WriteEndpoint::Cancel(id),
                        "quantity" => WriteEndpoint::Quantity(id),
                        "validate" => WriteEndpoint::Validate(id),
                        "finish" => WriteEndpoint::Finish(id),
                        _ => return Err(not_found().await),
                    };
                    write_endpoint(s, d, h, u, b, endpoint).await
                },
            ),
        )
}

/// Serves with the default options until `shutdown` is cancelled (see [`serve_with`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, state, ServeOptions::default(), shutdown).await
}

/// Serves until `shutdown` is cancelled, then lets requests in hand finish; connections are
/// capped and timed out as `options.limits` says (see [`conn`]).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let tls = state.tls.clone();
    let routers = conn::Routers {
        health: health_router(state.clone()),
        main: router_with(state, &options),
    };
    conn::run_accept_loop(listener, routers, options.limits, tls, shutdown).await
}

/// Serves the plain-HTTP redirect listener (`http.redirect_listen`) until `shutdown`: every
/// request is answered 308 to the same path and query over HTTPS on `https_port`.
pub async fn serve_redirects(
    listener: TcpListener,
    https_port: u16,
    limits: ConnLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let redirect = crate::tls::redirect_router(https_port);
    let routers = conn::Routers {
        health: redirect.clone(),
        main: redirect,
    };
    conn::run_accept_loop(listener, routers, limits, None, shutdown).await
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such endpoint".into(),
    }
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The store accepts writes: the writer committed a no-op within a second, and a write would
/// be taken (not full, not read-only; see [`Store::writable`]). The reason, when not ready,
/// names no path.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let ready = async {
        state.store.ping().await?;
        state.store.writable()
    };
    match tokio::time::timeout(Duration::from_secs(1), ready).await {
        Ok(Ok(())) => Json(json!({"ready": true})).into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": e.to_string()})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "store writer did not answer within 1 s"})),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    /// `text`: the lines `holdfast status` prints (the CLI asks for them).
    format: Option<String>,
}

/// `GET /api/v1/status`: everything for a device or a manager ([`authorize`], a viewer
/// too); mode and queue counts without credentials when `public` (`http.public_status`);
/// otherwise 401.
async fn status(
    state: Arc<AppState>,
    parts: &axum::http::request::Parts,
    query: StatusQuery,
    public: bool,
) -> Result<Response, ApiError> {
    let device = match bearer_of(&parts.headers) {
        Some(token) if !token_is_manager(&state, token) => {
            state.floor.authenticate(token)?.is_some()
        }
        _ => false,
    };
    if !device && let Err(refused) = authorize(&state, parts, Need::View) {
        if !public {
            return Ok(refusal(refused));
        }
        return public_status(&state, &query);
    }
    let status = full_status(&state)?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(status).into_response()),
        Some("text") => Ok(status.to_text().into_response()),
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?} is not one of: json, text"
        ))),
    }
}

/// The whole status snapshot of the running appliance: what `GET /api/v1/status` answers and
/// the console's overview shows, built in one place so the two never disagree.
pub fn full_status(state: &AppState) -> Result<Status, ApiError> {
    let store = &state.store;
    let mut status = store.read(|r| {
        Status::collect(
            r,
            state.site.clone(),
            state.cloud.clone(),
            &store.path().display().to_string(),
        )
    })?;
    let (device_queue, background_queue) = store.queue_depths();
    let stats = store.stats();
    status.runtime = Some(RuntimeStatus {
        uptime_secs: state.started.elapsed().as_secs_f64(),
        writer_commits: stats.commits.load(std::sync::atomic::Ordering::Relaxed),
        writer_commands: stats.commands.load(std::sync::atomic::Ordering::Relaxed),
        device_queue,
        background_queue,
    });
    status.pull = state
        .pull
        .as_ref()
        .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone());
    status.degraded_features = status
        .pull
        .as_ref()
        .map(|p| p.degraded_features.clone())
        .unwrap_or_default();
    status.push = state.push.as_ref().map(|p| {
        let rate = p.drain_rate();
        let open = ["pending", "in_flight"]
            .iter()
            .map(|s| status.queue.get(*s).copied().unwrap_or(0))
            .sum::<i64>();
        crate::status::PushStatus {
            paused: state.connectivity.paused(),
            calls: p.calls.load(std::sync::atomic::Ordering::Relaxed),
            applied: p.applied.load(std::sync::atomic::Ordering::Relaxed),
            drain_rate_per_sec: rate,
            eta_drain_secs: (rate > 0.0 && open > 0).then(|| open as f64 / rate),
            limit: p.limit(),
            waited_on_claims: p
                .waited_on_claims
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    });
    status.sign_in = Some(state.floor.lockout());
    status.tls = state.tls.as_ref().map(crate::tls::TlsHandle::status);
    status.telemetry = state
        .telemetry
        .as_ref()
        .map(crate::telemetry::Telemetry::health);
    status.with_live(&state.connectivity.now(), status.pull.clone().as_ref());
    Ok(status)
}

/// The status anyone on the LAN may read when `http.public_status` is on: the mode and the
/// queue counts, nothing that names a host, a path or a device.
fn public_status(state: &AppState, query: &StatusQuery) -> Result<Response, ApiError> {
    let queue = state.store.read(|r| r.queue_stats())?.by_state;
    let live = state.connectivity.now();
    let mode = live.mode.as_str();
    let mode_since = crate::status::rfc3339(live.since_ms);
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(json!({
            "mode": mode,
            "mode_since": mode_since,
            "queue": queue,
        }))
        .into_response()),
        Some("text") => {
            let mut text = format!("mode: {mode} since {mode_since}\n");
            for (state, n) in &queue {
                text.push_str(&format!("queue {state}: {n}\n"));
            }
            Ok(text.into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?} is not one of: json, text"
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct ConflictQuery {
    /// `open`, `flagged`, `resolved` or `all`; default: open and flagged.
    status: Option<String>,
    limit: Option<usize>,
}

async fn conflicts(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ConflictQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state.store.read(|r| match q.status.as_deref() {
        None => {
            let mut rows = r.conflicts(Some("open"), limit)?;
            rows.extend(r.conflicts(Some("flagged"), limit)?);
            Ok(rows)
        }
        Some("all") => r.conflicts(None, limit),
        Some(s @ ("open" | "flagged" | "resolved")) => r.conflicts(Some(s), limit),
        Some(other) => Err(StoreError::Conflict(format!(
            "status {other:?} is not one of: open, flagged, resolved, all"
        ))),
    });
    let rows = rows.map_err(|e| match e {
        StoreError::Conflict(m) => ApiError::bad_request(m),
        other => other.into(),
    })?;
    Ok(Json(json!({"conflicts": rows})))
}

async fn conflict(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let (row, entries, changes) = state.store.read(|r| {
        let Some(row) = r.conflict(id)? else {
            return Err(StoreError::NotFound(format!("conflict {id}")));
        };
        let entries = r.entries(&row.seqs)?;
        let changes = match row
            .causal_key
            .strip_prefix("picking:")
            .and_then(|p| p.parse().ok())
        {
            Some(picking) => r.cloud_changes_of(picking)?,
            None => Vec::new(),
        };
        Ok((row, entries, changes))
    })?;
    Ok(Json(
        json!({"conflict": row, "entries": entries, "cloud_changes": changes}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    action: String,
    #[serde(default)]
    note: String,
    /// Who decides: required with the manager token; a signed-in manager is who decides.
    #[serde(default)]
    by: Option<String>,
}

async fn resolve_conflict(
    State(state): State<Arc<AppState>>,
    axum::Extension(actor): axum::Extension<Actor>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ResolveBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid resolve body: {e}")))?;
    let action = holdfast_sync::ops::ResolveAction::parse(&body.action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "action {:?} is not one of: discard, retry, recreate, acknowledge",
            body.action
        ))
    })?;
    let by = match (&actor, body.by.as_deref().map(str::trim)) {
        (Actor::Session { name, .. }, _) => name.clone(),
        (Actor::Token, Some(by)) if !by.is_empty() && by.len() <= 100 => by.to_owned(),
        (Actor::Token, _) => {
            return Err(ApiError::bad_request(
                "by: who decides (1 to 100 characters)".into(),
            ));
        }
    };
    if body.note.len() > 2000 {
        return Err(ApiError::bad_request(
            "note: at most 2000 characters".into(),
        ));
    }
    let seq = crate::push::resolve(&state.store, id, action, &body.note, &by).await?;
    record(
        &state,
        crate::store::NewAudit {
            actor: actor.audit_name(),
            action: "conflict.resolve".into(),
            target: Some(format!("conflict:{id}")),
            detail: json!({
                "action": body.action,
                "note": body.note,
                "by": by,
                "resolution_seq": seq,
            }),
        },
    )
    .await;
    let row = state.store.read(|r| r.conflict(id))?;
    Ok(Json(json!({"resolution_seq": seq, "conflict": row})))
}

async fn demo_cloud(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let demo = state.demo.as_ref().ok_or_else(not_demo)?;
    Ok(Json(json!({"link": demo.link().as_str()})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoCloudBody {
    /// `up`, `down`, `blackhole`, `reset`.
    link: Option<String>,
    /// Cancel this picking in the simulated Odoo.
    cancel_picking: Option<i64>,
    /// Validate this picking in the simulated Odoo as its lines stand.
    validate_picking: Option<i64>,
}

async fn set_demo_cloud(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let demo = state.demo.as_ref().ok_or_else(not_demo)?;
    let shape = r#"{"link": "up|down|blackhole|reset|stall"}, {"cancel_picking": ID} or {"validate_picking": ID}"#;
    let body: DemoCloudBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body must be {shape}: {e}")))?;
    match body {
        DemoCloudBody {
            link: Some(link),
            cancel_picking: None,
            validate_picking: None,
        } => {
            let link = holdfast_sync::sim::proxy::Link::parse(&link).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "link {link:?} is not one of: up, down, blackhole, reset, stall"
                ))
            })?;
            demo.set(link);
            tracing::info!(link = link.as_str(), "demo: simulated cloud link switched");
            Ok(Json(json!({"link": link.as_str()})))
        }
        DemoCloudBody {
            link: None,
            cancel_picking: Some(id),
            validate_picking: None,
        } => {
            demo.cancel_picking(id);
            tracing::info!(
                picking = id,
                "demo: picking cancelled in the simulated Odoo"
            );
            Ok(Json(json!({"link": demo.link().as_str(), "cancelled": id})))
        }
        DemoCloudBody {
            link: None,
            cancel_picking: None,
            validate_picking: Some(id),
        } => {
            demo.validate_picking(id).map_err(|e| ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "cloud_refused",
                message: format!("the simulated Odoo refused: {e}"),
            })?;
            tracing::info!(
                picking = id,
                "demo: picking validated in the simulated Odoo"
            );
            Ok(Json(json!({"link": demo.link().as_str(), "validated": id})))
        }
        _ => Err(ApiError::bad_request(format!("body must be {shape}"))),
    }
}

fn not_demo() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "the simulated cloud exists only in `holdfast demo`".into(),
    }
}
