//! The conflicts inbox: `/console/conflicts` lists the disagreements between the floor and
//! Odoo (filtered by state, kind and picking), `/console/conflicts/{id}` shows one with both
//! sides, the policy that applied, what the pulls saw change in the cloud, the entries it holds
//! back, its audit trail, and (for a manager) the decisions `POST
//! /api/v1/conflicts/{id}/resolve` takes.

use super::records::*;
use super::*;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console/conflicts", get(inbox_page))
        .route("/console/conflicts/{id}", get(conflict_page))
}

/// The inbox's filters, as the page's GET form sends them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct InboxParams {
    /// `open` (the default: open and flagged), `resolved`, `all`.
    state: Option<String>,
    kind: Option<String>,
    /// A picking's name or id.
    picking: Option<String>,
    before: Option<i64>,
}

/// The conflicts' kinds, for the filter.
fn kinds() -> impl Iterator<Item = &'static str> {
    holdfast_sync::push::ConflictKind::ALL
        .iter()
        .map(|k| k.as_str())
}

/// `GET /console/conflicts`: the inbox, newest first.
async fn inbox_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<InboxParams>,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let status = given(&q.state).unwrap_or_else(|| "open".to_owned());
    let status = match status.as_str() {
        "open" | "resolved" | "all" => status,
        _ => "open".to_owned(),
    };
    let kind = given(&q.kind);
    let picking = given(&q.picking);
    let mut problems = Vec::new();
    let causal_key = match picking.as_deref().map(|p| picking_key(&state, lang, p)) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(message)) => {
            problems.push(message);
            None
        }
    };
    let query = crate::store::ConflictQuery {
        status: (status != "all").then(|| status.clone()),
        kind: kind.clone(),
        causal_key,
        before_id: q.before,
        limit: PAGE_ROWS,
    };
    let rows = if problems.is_empty() {
        state.store.read(|r| {
            r.conflict_page(&query)?
                .into_iter()
                .map(|c| {
                    Ok(minijinja::context! {
                        id => c.id,
                        kind => label(lang, "conflict-kind", &c.kind),
                        status => label(lang, "conflict-status", &c.status),
                        key => key_label(r, &c.causal_key)?,
                        message => c.message,
                        created => at(c.created_at),
                        entries => c.seqs.len(),
                        resolution => c.resolution.as_deref().map(|a| label(lang, "resolve-action", a)),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?
    } else {
        Vec::new()
    };
    let next = (rows.len() >= PAGE_ROWS)
        .then(|| {
            rows.last()
                .and_then(|r| r.get_attr("id").ok())
                .and_then(|id| id.as_i64())
        })
        .flatten()
        .map(|before| {
            format!(
                "/console/conflicts?{}",
                query_string(&[
                    ("state", Some(status.clone())),
                    ("kind", kind.clone()),
                    ("picking", picking.clone()),
                    ("before", Some(before.to_string())),
                ])
            )
        });
    render_page(
        &state,
        &viewer,
        "inbox.html",
        "conflicts",
        minijinja::context! {
            rows => rows,
            problems => problems,
            next => next,
            f => minijinja::context! { state => status, kind => kind, picking => picking },
            states => options(lang, "inbox-state", ["open", "resolved", "all"]),
            kinds => options(lang, "conflict-kind", kinds()),
        },
    )
}

/// One row of a side-by-side table: a field, the floor's value and Odoo's.
fn sides(lang: crate::i18n::Lang, edge: &Value, cloud: &Value) -> Vec<minijinja::Value> {
    match (edge, cloud) {
        (Value::Object(e), Value::Object(c)) => {
            let mut fields: Vec<&String> = e.keys().collect();
            fields.extend(c.keys().filter(|k| !e.contains_key(*k)));
            fields
                .into_iter()
                .map(|f| {
                    minijinja::context! {
                        field => f,
                        edge => e.get(f).map_or_else(|| "—".to_owned(), plain),
                        cloud => c.get(f).map_or_else(|| "—".to_owned(), plain),
                    }
                })
                .collect()
        }
        _ => vec![minijinja::context! {
            field => tr(lang, "conflict-value", &[]), edge => plain(edge), cloud => plain(cloud),
        }],
    }
}

/// `GET /console/conflicts/{id}`: one conflict, its context and its history.
async fn conflict_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let found = state.store.read(|r| {
        let Some(c) = r.conflict(id)? else {
            return Ok(None);
        };
        let mut seqs = c.seqs.clone();
        seqs.extend(c.resolution_seq);
        let entries = r
            .entries(&seqs)?
            .iter()
            .map(|e| super::journal::entry_row(r, lang, e))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let picking = c
            .causal_key
            .strip_prefix("picking:")
            .and_then(|p| p.parse::<i64>().ok());
        let changes = match picking {
            Some(p) => r.cloud_changes_of(p)?,
            None => Vec::new(),
        };
        let audit = r.audit_of(&format!("conflict:{id}"), 200)?;
        Ok(Some((
            c.clone(),
            key_label(r, &c.causal_key)?,
            entries,
            changes,
            audit,
        )))
    })?;
    let Some((c, key, entries, changes, audit)) = found else {
        let what = tr(lang, "records-missing-conflict", &[("id", id.to_string())]);
        return missing(&state, &viewer, "conflicts", what, "/console/conflicts");
    };
    let actions: &[&str] = match c.status.as_str() {
        "open" => &["retry", "discard", "recreate"],
        "flagged" => &["acknowledge"],
        _ => &[],
    };
    let actions: Vec<_> = actions
        .iter()
        .map(|&a| {
            minijinja::context! {
                code => a,
                label => label(lang, "resolve-action", a),
                help => label(lang, "resolve-help", a),
            }
        })
        .collect();
    let changes: Vec<_> = changes
        .into_iter()
        .map(|ch| {
            minijinja::context! {
                seen => at(ch.seen_at), model => ch.model, record => ch.record_id, summary => ch.summary,
            }
        })
        .collect();
    let audit: Vec<_> = audit
        .into_iter()
        .map(|a| {
            minijinja::context! {
                at => at(a.at),
                actor => a.actor,
                action => label(lang, "audit-action", &a.action),
                note => a.detail.get("note").map(plain),
                detail => super::audit::detail_text(&a.detail),
            }
        })
        .collect();
    let journal_link = c.causal_key.starts_with("picking:").then(|| {
        format!(
            "/console/journal?{}",
            query_string(&[("picking", Some(key.clone()))])
        )
    });
    render_page(
        &state,
        &viewer,
        "conflict.html",
        "conflicts",
        minijinja::context! {
            c => minijinja::context! {
                id => c.id,
                kind => label(lang, "conflict-kind", &c.kind),
                status_code => c.status.clone(),
                status => label(lang, "conflict-status", &c.status),
                policy => label(lang, "conflict-policy", &c.policy),
                policy_help => label(lang, "policy-help", &c.policy),
                key => key,
                message => c.message,
                created => at(c.created_at),
                resolution => c.resolution.as_deref().map(|a| label(lang, "resolve-action", a)),
                note => c.note,
                resolved_by => c.resolved_by,
                resolved_at => c.resolved_at.map(at),
                resolution_seq => c.resolution_seq,
            },
            journal_link => journal_link,
            sides => sides(lang, &c.edge, &c.cloud),
            entries => entries,
            changes => changes,
            audit => audit,
            actions => actions,
        },
    )
}
