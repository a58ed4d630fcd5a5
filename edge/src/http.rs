//! The appliance's HTTP server: probes and the status API (the device API joins it under
//! `/api/v1/`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::status::{CloudStatus, RuntimeStatus, SiteStatus, Status};
use crate::store::{Store, StoreError};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        (self.status, body).into_response()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .fallback(not_found)
        .with_state(Arc::new(state))
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
