//! Floor sessions: `/console/sessions` shows who (operator, device) works on what (a picking,
//! a count, a transfer), since when and when their last step was; a manager can cancel a
//! session whose operator left (`POST /api/v1/floor-sessions/{id}/cancel`, a manager route:
//! what `holdfast session cancel` does, audited as `session.cancel`). What a cancelled session
//! recorded stays in the journal.

use super::records::*;
use super::*;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/console/sessions", get(sessions_page))
}

/// `GET /console/sessions`: the open sessions, the most recently active first.
async fn sessions_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let rows = state.store.read(|r| {
        let names: std::collections::HashMap<String, String> = r
            .operators()?
            .into_iter()
            .map(|o| (o.id, o.name))
            .collect();
        r.open_sessions(None)?
            .into_iter()
            .map(|s| {
                let picking = match s.picking_id {
                    Some(id) => Some(
                        r.picking_header(id)?
                            .map_or_else(|| format!("#{id}"), |(name, _, _)| name),
                    ),
                    None => None,
                };
                let journal = picking.as_ref().map(|p| {
                    format!(
                        "/console/journal?{}",
                        query_string(&[("picking", Some(p.clone()))])
                    )
                });
                Ok(minijinja::context! {
                    journal => journal,
                    id => s.id,
                    operator => names.get(&s.operator).cloned().unwrap_or_else(|| s.operator.clone()),
                    operator_id => s.operator,
                    device => s.device,
                    workflow => label(lang, "session-workflow", &s.workflow),
                    picking => picking,
                    since => at(s.created_at),
                    last_step => at(s.updated_at),
                    last_step_ago => ago(s.updated_at),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
    })?;
    render_page(
        &state,
        &viewer,
        "sessions.html",
        "sessions",
        minijinja::context! { rows => rows },
    )
}

/// The body of a manager's cancel: nothing, or a note for the audit trail.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/floor-sessions/{id}/cancel`: a manager closes an open floor session (its
/// operator left, the handheld is lost). The same store command as `holdfast session cancel`;
/// audited as `session.cancel` on `session:<id>`.
pub(in crate::http) async fn cancel_session(
    State(state): State<Arc<AppState>>,
    axum::Extension(actor): axum::Extension<Actor>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("body must be empty or {{\"note\": \"...\"}}: {e}"))
        })?
    };
    if body.note.chars().count() > 2000 {
        return Err(ApiError::bad_request(
            "note: at most 2000 characters".into(),
        ));
    }
    let session = state
        .store
        .read(|r| r.session(&id))?
        .filter(|s| s.state == "active")
        .ok_or_else(|| StoreError::NotFound(format!("open session {id:?}")))?;
    state
        .store
        .floor(crate::store::FloorCmd::CancelSession { id: id.clone() })
        .await?;
    record(
        &state,
        crate::store::NewAudit {
            actor: actor.audit_name(),
            action: "session.cancel".into(),
            target: Some(format!("session:{id}")),
            detail: json!({
                "operator": session.operator,
                "device": session.device,
                "workflow": session.workflow,
                "picking_id": session.picking_id,
                "note": body.note,
            }),
        },
    )
    .await;
    tracing::info!(session = %id, by = %actor.audit_name(), "floor session cancelled by a manager");
    Ok(Json(json!({"cancelled": id})))
}
