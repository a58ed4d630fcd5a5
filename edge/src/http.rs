//! The appliance's HTTP server: probes, the status API, and the device API under
//! `/api/v1/` (bearer device tokens, bodies of at most 64 KiB, JSON errors with stable codes).
//!
//! Device endpoints answer from the local store only, never by asking the cloud.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::status::{CloudStatus, RuntimeStatus, SiteStatus, Status};
use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// Devices allowed on the device API, with their tokens.
    pub devices: Arc<Vec<crate::config::DeviceConfig>>,
    pub site: SiteStatus,
    pub cloud: CloudStatus,
    pub started: Instant,
    /// Progress of the pull, when an Odoo is configured.
    pub pull: Option<crate::pull::ProgressHandle>,
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
        let (status, code) = match e {
            StoreError::Full => (StatusCode::INSUFFICIENT_STORAGE, "store_full"),
            StoreError::ReadOnly => (StatusCode::SERVICE_UNAVAILABLE, "store_read_only"),
            StoreError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            StoreError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "store_busy"),
            StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            StoreError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_operation"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
        };
        ApiError {
            status,
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
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        (self.status, body).into_response()
    }
}

/// Largest request body accepted on the device API.
pub const MAX_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let state = Arc::new(state);
    let devices = Router::new()
        .route("/api/v1/pickings", get(pickings))
        .route("/api/v1/pickings/{id}", get(picking))
        .route("/api/v1/lookup", post(lookup))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_device,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .merge(devices)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .fallback(not_found)
        .with_state(state)
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
    use subtle::ConstantTimeEq;
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().as_bytes().to_vec());
    // Compare against every device in constant time, so timing tells nothing either.
    let mut found: Option<String> = None;
    if let Some(token) = &presented {
        for device in state.devices.iter() {
            if bool::from(device.token.expose().as_bytes().ct_eq(token)) {
                found = Some(device.id.clone());
            }
        }
    }
    match found {
        Some(id) => {
            request.extensions_mut().insert(DeviceId(id));
            next.run(request).await
        }
        None => {
            let mut response = ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthorized",
                message: "missing or invalid device token".into(),
            }
            .into_response();
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
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
    let body = body.map_err(|e| ApiError {
        status: e.status(),
        code: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_request"
        },
        message: format!("{e} (at most {MAX_BODY} bytes)"),
    })?;
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

/// Serves until `shutdown` is cancelled, then lets requests in hand finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
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

/// The store accepts writes: the writer committed a no-op within a second.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
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

async fn status(State(state): State<Arc<AppState>>) -> Result<Json<Status>, ApiError> {
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
    Ok(Json(status))
}
