//! Manager actions of the console's operations pages: a handheld's token issued or revoked
//! (as `holdfast device issue` / `revoke` do, with the same store commands and audit rows),
//! and a pull asked for now.

use super::*;
use crate::store::{FloorCmd, NewAudit};

/// `POST /api/v1/devices/{id}/token`: issues a new token for handheld `id` (a new device, or
/// a new token replacing the old one, which stops working). The token is in the answer once
/// and nowhere else: only its SHA-256 is stored.
pub(super) async fn issue_device_token(
    State(state): State<Arc<AppState>>,
    axum::Extension(actor): axum::Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::cli::valid_id(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let lan = state.printing.lan();
    if lan.http_devices.contains(&id) {
        // Its token is in the config file: a second one could not be revoked from here.
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "device_id_taken",
            message: format!(
                "{id:?} has its token in the config file ([[devices]]); change it there, or give the handheld another id"
            ),
        });
    }
    if let Some(owner) = lan.owner_of(&id) {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "device_id_taken",
            message: format!(
                "{id:?} is {owner} in the config: a device id belongs to one transport; give the handheld another id"
            ),
        });
    }
    let token = crate::floor::new_token();
    state
        .store
        .floor(FloorCmd::IssueDevice {
            id: id.clone(),
            token_sha256: crate::floor::sha256_hex(token.as_bytes()),
        })
        .await?;
    record(
        &state,
        NewAudit {
            actor: actor.audit_name(),
            action: "device.issue".into(),
            target: Some(format!("device:{id}")),
            detail: json!({}),
        },
    )
    .await;
    let mut response = Json(json!({"device": id, "token": token})).into_response();
    // A secret: no cache may keep it.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `POST /api/v1/devices/{id}/revoke`: the handheld's token stops working at once and its
/// operator is signed out.
pub(super) async fn revoke_device(
    State(state): State<Arc<AppState>>,
    axum::Extension(actor): axum::Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .store
        .floor(FloorCmd::RevokeDevice { id: id.clone() })
        .await?;
    record(
        &state,
        NewAudit {
            actor: actor.audit_name(),
            action: "device.revoke".into(),
            target: Some(format!("device:{id}")),
            detail: json!({}),
        },
    )
    .await;
    Ok(Json(json!({"device": id, "revoked": true})))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PullBody {
    /// A full pull instead of an incremental one.
    #[serde(default)]
    full: bool,
}

/// `POST /api/v1/pull` (body optional, `{"full": true}` for a full pull): wakes the pull
/// task; 202 once asked (the pull's progress is in status), 409 when no Odoo is configured.
pub(super) async fn pull_now(
    State(state): State<Arc<AppState>>,
    axum::Extension(actor): axum::Extension<Actor>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Lenient on purpose: a form without fields, an empty body and other keys all mean
    // "the usual pull, now".
    let body: PullBody = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let Some(now) = &state.pull_now else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "no_odoo",
            message: "no Odoo is configured ([odoo] in the config): there is nothing to pull from"
                .into(),
        });
    };
    now.request(body.full);
    let kind = if body.full { "full" } else { "incremental" };
    record(
        &state,
        NewAudit {
            actor: actor.audit_name(),
            action: "pull.now".into(),
            target: None,
            detail: json!({"kind": kind}),
        },
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(json!({"requested": kind}))).into_response())
}
