//! The journal browser: `/console/journal` lists what the floor recorded, newest first, by
//! state, kind, device, operator, picking and time, a page at a time (keyset on the sequence
//! number, see [`crate::store::JOURNAL_WINDOW`]); `/console/journal/{seq or id}` shows one
//! entry as `holdfast journal show` does: its payload, effects, push attempts, last error and
//! Odoo's reference.

use super::records::*;
use super::*;
use crate::store::{JournalEntry, OpState, Reader};
use holdfast_sync::ops::Operation;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console/journal", get(journal_page))
        .route("/console/journal/{id}", get(entry_page))
}

/// The browser's filters, as the page's GET form sends them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct JournalParams {
    state: Option<String>,
    kind: Option<String>,
    device: Option<String>,
    operator: Option<String>,
    /// A picking's name or id.
    picking: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` field) or `YYYY-MM-DD`, UTC.
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
}

const KINDS: [&str; 7] = [
    "pick", "receive", "validate", "count", "transfer", "print", "resolve",
];

/// What an entry did, in a line: the product and quantity, the decision and its note.
fn summary(r: &Reader<'_>, lang: crate::i18n::Lang, e: &JournalEntry) -> String {
    let product = |id: i64| {
        r.product(id)
            .ok()
            .flatten()
            .map_or_else(|| format!("#{id}"), |p| p.name)
    };
    let location = |id: i64| {
        r.location(id)
            .ok()
            .flatten()
            .map_or_else(|| format!("#{id}"), |l| l.name)
    };
    let lot = |lot: &Option<String>| {
        lot.as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default()
    };
    match e.operation() {
        Ok(Operation::Pick(p)) => format!(
            "{} × {}{} ← {}",
            quantity(p.quantity),
            product(p.product_id),
            lot(&p.lot_name),
            location(p.location_id)
        ),
        Ok(Operation::Receive(p)) => format!(
            "{} × {}{} → {}",
            quantity(p.quantity),
            product(p.product_id),
            lot(&p.lot_name),
            location(p.location_dest_id)
        ),
        Ok(Operation::Count(c)) => tr(
            lang,
            "journal-summary-count",
            &[
                (
                    "product",
                    format!("{}{}", product(c.product_id), lot(&c.lot_name)),
                ),
                ("location", location(c.location_id)),
                ("counted", quantity(c.counted)),
                ("expected", quantity(c.expected)),
            ],
        ),
        Ok(Operation::Transfer(t)) => format!(
            "{} × {}{}: {} → {}",
            quantity(t.quantity),
            product(t.product_id),
            lot(&t.lot_name),
            location(t.from_location_id),
            location(t.to_location_id)
        ),
        Ok(Operation::Validate(_)) => tr(lang, "journal-summary-validate", &[]),
        Ok(Operation::Resolve(d)) => tr(
            lang,
            "journal-summary-resolve",
            &[
                ("conflict", d.conflict_id.to_string()),
                ("action", label(lang, "resolve-action", d.action.as_str())),
                ("note", d.note),
            ],
        ),
        Ok(Operation::Print(_)) => tr(lang, "journal-summary-print", &[]),
        Err(_) => String::new(),
    }
}

/// An entry as a row of a list (the journal browser, a conflict's entries).
pub(super) fn entry_row(
    r: &Reader<'_>,
    lang: crate::i18n::Lang,
    e: &JournalEntry,
) -> Result<minijinja::Value, StoreError> {
    let key = key_label(r, &e.causal_key)?;
    // A picking's entries, one click away.
    let key_link = e.causal_key.starts_with("picking:").then(|| {
        format!(
            "/console/journal?{}",
            query_string(&[("picking", Some(key.clone()))])
        )
    });
    Ok(minijinja::context! {
        key_link => key_link,
        seq => e.seq,
        recorded => at(e.created_at),
        kind => label(lang, "journal-kind", &e.kind),
        state => label(lang, "journal-state", e.state.as_str()),
        device => e.device.clone(),
        operator => e.operator.clone(),
        key => key,
        summary => summary(r, lang, e),
        attempts => e.attempts,
        note => e.note.clone(),
    })
}

/// `GET /console/journal`: a page of entries, newest first.
async fn journal_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<JournalParams>,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let mut problems = Vec::new();
    let state_filter = given(&q.state);
    let op_state = match state_filter.as_deref().map(str::parse::<OpState>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            problems.push(tr(lang, "records-bad-filter", &[]));
            None
        }
    };
    let kind = given(&q.kind).filter(|k| KINDS.contains(&k.as_str()));
    let picking = given(&q.picking);
    let causal_key = match picking.as_deref().map(|p| picking_key(&state, lang, p)) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(message)) => {
            problems.push(message);
            None
        }
    };
    let mut time = |text: &Option<String>| match given(text) {
        None => None,
        Some(t) => {
            let ms = parse_time(&t);
            if ms.is_none() {
                problems.push(tr(lang, "records-bad-time", &[("text", t)]));
            }
            ms
        }
    };
    let (from_ms, to_ms) = (time(&q.from), time(&q.to));
    let filters = minijinja::context! {
        state => state_filter, kind => kind.clone(), device => given(&q.device),
        operator => given(&q.operator), picking => picking.clone(), from => given(&q.from), to => given(&q.to),
    };
    let query = crate::store::JournalQuery {
        state: op_state,
        kind: kind.clone(),
        device: given(&q.device),
        operator: given(&q.operator),
        causal_key,
        from_ms,
        to_ms,
        before_seq: q.before,
        limit: PAGE_ROWS,
        window: None,
    };
    let (rows, page) = if problems.is_empty() {
        state.store.read(|r| {
            let page = r.journal_page(&query)?;
            let rows = page
                .entries
                .iter()
                .map(|e| entry_row(r, lang, e))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((rows, page))
        })?
    } else {
        (Vec::new(), crate::store::JournalPage::default())
    };
    let next = page.next_before.map(|before| {
        format!(
            "/console/journal?{}",
            query_string(&[
                ("state", given(&q.state)),
                ("kind", kind.clone()),
                ("device", given(&q.device)),
                ("operator", given(&q.operator)),
                ("picking", picking.clone()),
                ("from", given(&q.from)),
                ("to", given(&q.to)),
                ("before", Some(before.to_string())),
            ])
        )
    });
    // A page shorter than a full one that still offers older history stopped at its window.
    let searched_to = (rows.len() < PAGE_ROWS && next.is_some()).then_some(page.searched_to);
    render_page(
        &state,
        &viewer,
        "journal.html",
        "journal",
        minijinja::context! {
            rows => rows,
            problems => problems,
            next => next,
            searched_to => searched_to,
            f => filters,
            states => options(lang, "journal-state", OpState::ALL.iter().map(|s| s.as_str())),
            kinds => options(lang, "journal-kind", KINDS),
        },
    )
}

/// `GET /console/journal/{seq or id}`: one entry, as `holdfast journal show` shows it.
async fn entry_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let found = state.store.read(|r| {
        let Some(e) = r.journal_entry(&key)? else {
            return Ok(None);
        };
        let attempts: Vec<_> = r
            .push_attempts(e.seq)?
            .into_iter()
            .map(|a| {
                minijinja::context! {
                    attempt => a.attempt,
                    started => at(a.started_at),
                    ended => a.ended_at.map(at),
                    outcome => a.outcome.as_deref().map(|o| label(lang, "attempt-outcome", o)),
                    call => a.call,
                    class => a.class,
                    message => a.message,
                }
            })
            .collect();
        let effects: Vec<_> = r
            .effects(e.seq)?
            .into_iter()
            .map(|x| {
                minijinja::context! {
                    target => plain(&x["target"]),
                    product => plain(&x["product_id"]),
                    location => plain(&x["location_id"]),
                    lot => plain(&x["lot_name"]),
                    delta => x["delta"].as_f64().map(quantity),
                    live => x["live"].as_bool().unwrap_or(false),
                }
            })
            .collect();
        let conflicts = r.conflicts_of_entry(e.seq)?;
        let row = entry_row(r, lang, &e)?;
        Ok(Some((e, row, attempts, effects, conflicts)))
    })?;
    let Some((e, row, attempts, effects, conflicts)) = found else {
        let what = tr(lang, "records-missing-entry", &[("entry", key)]);
        return missing(&state, &viewer, "journal", what, "/console/journal");
    };
    let payload = serde_json::to_string_pretty(&e.payload).unwrap_or_default();
    render_page(
        &state,
        &viewer,
        "entry.html",
        "journal",
        minijinja::context! {
            e => row,
            id => e.id,
            causal_key => e.causal_key,
            last_error => e.last_error,
            remote_ref => e.remote_ref,
            next_attempt => e.next_attempt_at.map(at),
            acked => e.acked_at.map(at),
            ambiguous => e.ambiguous,
            payload => payload,
            attempts => attempts,
            effects => effects,
            conflicts => conflicts,
        },
    )
}
