//! The audit trail: `/console/audit` lists what managers did and every sign-in outcome, newest
//! first, by actor and action, a page at a time (keyset on the record's sequence number). The
//! same records as `GET /api/v1/audit` and `holdfast audit`.

use super::records::*;
use super::*;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/console/audit", get(audit_page))
}

/// The page's filters, as its GET form sends them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    before: Option<i64>,
}

/// A record's detail as one line: `key: value` pairs of its JSON object.
pub(super) fn detail_text(detail: &Value) -> String {
    match detail {
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null() && v.as_str() != Some(""))
            .map(|(k, v)| format!("{k}: {}", plain(v)))
            .collect::<Vec<_>>()
            .join(" · "),
        other => plain(other),
    }
}

/// Where a record's target is shown in the console, when it is.
fn target_link(target: &str) -> Option<String> {
    if let Some(id) = target.strip_prefix("conflict:") {
        return id
            .parse::<i64>()
            .ok()
            .map(|id| format!("/console/conflicts/{id}"));
    }
    // Only an entry's number or id goes into the path: a stored target is data, and `../`,
    // `?` or `#` in it would lead elsewhere in the console.
    target
        .strip_prefix("journal:")
        .filter(|key| {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(|key| format!("/console/journal/{key}"))
}

/// `GET /console/audit`: a page of the audit trail, newest first.
async fn audit_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<AuditParams>,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let (actor, action) = (given(&q.actor), given(&q.action));
    // A page reads at most `AUDIT_WINDOW` records: a filter matching few of them ends the
    // page early, with a link further back.
    let (records, below) = state.store.read(|r| {
        let below = r.audit_below_window(q.before, crate::store::AUDIT_WINDOW)?;
        let query = crate::store::AuditQuery {
            actor: actor.clone(),
            action: action.clone(),
            target: None,
            before_seq: q.before,
            from_seq: below.map(|seq| seq.saturating_add(1)),
            limit: PAGE_ROWS,
        };
        Ok((r.audit_page(&query)?, below))
    })?;
    let full = records.len() >= PAGE_ROWS;
    let searched_to = (!full)
        .then_some(below)
        .flatten()
        .map(|s| s.saturating_add(1));
    let next = if full {
        records.last().map(|a| a.seq)
    } else {
        searched_to
    }
    .map(|before| {
        format!(
            "/console/audit?{}",
            query_string(&[
                ("actor", actor.clone()),
                ("action", action.clone()),
                ("before", Some(before.to_string())),
            ])
        )
    });
    let rows: Vec<_> = records
        .into_iter()
        .map(|a| {
            minijinja::context! {
                seq => a.seq,
                at => at(a.at),
                actor => a.actor,
                action => label(lang, "audit-action", &a.action),
                code => a.action,
                link => a.target.as_deref().and_then(target_link),
                target => a.target,
                detail => detail_text(&a.detail),
            }
        })
        .collect();
    render_page(
        &state,
        &viewer,
        "audit.html",
        "audit",
        minijinja::context! {
            rows => rows,
            next => next,
            searched_to => searched_to,
            f => minijinja::context! { actor => actor, action => action },
        },
    )
}
