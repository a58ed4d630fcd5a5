//! `GET /console/runbook`: the degraded-mode runbook: what keeps working at this site while
//! the cloud is away, what waits for it, how the queue is reconciled (the conflict policies
//! in force), and the site's own procedure text.

use super::*;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/console/runbook", get(runbook_page))
}

async fn runbook_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let book = &state.runbook;
    let (procedure, procedure_error) = match book.procedure_html() {
        // pulldown-cmark wrote it with raw HTML turned into text and unsafe links dropped
        // (see `runbook::markdown_html`): the one string a console page takes as markup.
        Ok(html) => (html.map(minijinja::Value::from_safe_string), None),
        Err(e) => (None, Some(e)),
    };
    let status = full_status(&state)?;
    let headroom = state
        .store
        .size_cap()
        .map(|cap| megabytes(cap.total_bytes.saturating_sub(status.database.size_bytes)));
    let policies: Vec<_> = book
        .policies
        .iter()
        .map(|&(kind, policy)| minijinja::context! { kind => kind, policy => policy })
        .collect();
    render_page(
        &state,
        &viewer,
        "runbook.html",
        "runbook",
        minijinja::context! {
            book => minijinja::Value::from(minijinja::value::Serde(&**book)),
            policies => policies,
            procedure => procedure,
            procedure_file => book.procedure_file.as_ref().map(|p| p.display().to_string()),
            procedure_error => procedure_error,
            mode => status.mode.clone(),
            mirror_as_of => status.mirror_as_of.clone(),
            stale_after => duration(book.stale_after_secs as f64),
            headroom => headroom,
        },
    )
}
