//! `/console/cache`: how fresh the mirror of Odoo is: per mirrored model its records and
//! last full and incremental pull, the pull running now, the last pull's outcome, and (for
//! managers) "Pull now" (`POST /api/v1/pull`).

use super::chart::clock;
use super::*;
use holdfast_sync::records::Model;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/console/cache", get(cache_page))
}

fn when(ms: Option<i64>, lang: crate::i18n::Lang) -> String {
    ms.map_or_else(|| tr(lang, "never", &[]), |t| clock(t, "%Y-%m-%d %H:%M:%S"))
}

/// `GET /console/cache`.
async fn cache_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let s = full_status(&state)?;
    let cursors = state.store.read(|r| {
        Model::ALL
            .iter()
            .map(|&m| r.cursor(m).map(|c| (m, c)))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let models: Vec<_> = cursors
        .iter()
        .map(|(model, c)| {
            minijinja::context! {
                model => model.odoo_name(),
                records => s.mirror.get(crate::store::mirror_table(*model)).copied().unwrap_or(0),
                full_at => when(c.full_at, lang),
                incremental_at => when(c.incremental_at, lang),
            }
        })
        .collect();
    let pull = s.pull.as_ref();
    let running = pull.and_then(|p| {
        p.running.map(|kind| {
            minijinja::context! {
                kind => match kind {
                    crate::pull::PullKind::Full => "full",
                    crate::pull::PullKind::Incremental => "incremental",
                },
                model => p.model,
                records => p.records,
                started => when(p.started_at, lang),
            }
        })
    });
    // The last pull that ended (the pull task's own record), else the newest cursor (a pull
    // of an earlier run).
    let newest_cursor = cursors
        .iter()
        .flat_map(|(_, c)| [c.full_at, c.incremental_at])
        .flatten()
        .max();
    let last_pull = pull.and_then(|p| p.last_finished_at).or(newest_cursor);
    render_page(
        &state,
        &viewer,
        "cache.html",
        "cache",
        minijinja::context! {
            odoo => s.cloud.target.clone(),
            configured => state.pull_now.is_some(),
            models => models,
            running => running,
            last_pull => when(last_pull, lang),
            last_pull_ms => last_pull,
            last_ok => pull.map(|p| when(p.last_ok_at, lang)),
            last_error => pull.and_then(|p| p.last_error.clone()),
            last_error_at => pull.and_then(|p| p.last_error_at).map(|t| clock(t, "%Y-%m-%d %H:%M:%S")),
            failures => pull.map_or(0, |p| p.failures_in_row),
            last_report => pull.and_then(|p| p.last_report.as_ref()).map(|r| minijinja::context! {
                records => r.records,
                deleted => r.deleted,
                held_back => r.held_back,
            }),
            mirror_age => s.mirror_age_secs.map(duration),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{Catalogue, Lang};

    /// The operations pages with every branch filled, in every language: no key of the
    /// `ops` catalogue may reach the page raw (a missing message renders as its key).
    #[test]
    fn the_operations_pages_render_in_every_language_without_a_raw_key() {
        let keys = Catalogue::keys(Lang::En, "ops");
        for lang in Lang::ALL {
            let layout = |current: &str, ctx: minijinja::Value| {
                minijinja::context! {
                    site => "s", name => "max", role => "manager", can_manage => true,
                    csrf => "x", lang => lang.code(), current => current,
                    languages => vec![minijinja::context! { code => "en", name => "English" }],
                    ..ctx
                }
            };
            let chart = minijinja::context! {
                id => "depth", title => "T", summary => "S",
                svg => minijinja::Value::from_safe_string("<svg></svg>".into()),
            };
            let pages = [
                (
                    "backlog.html",
                    layout(
                        "backlog",
                        minijinja::context! { charts => vec![chart], n_samples => 2, last_sample => "12:00", every => 60 },
                    ),
                ),
                (
                    "backlog.html",
                    layout(
                        "backlog",
                        minijinja::context! { charts => Vec::<i32>::new(), n_samples => 0, every => 60 },
                    ),
                ),
                (
                    "devices.html",
                    layout(
                        "devices",
                        minijinja::context! {
                            scanners => vec![minijinja::context! { id => "s1", kind => "scanner", transport => "tcp", state => "fault", last_seen => "x", last_error => "e" }],
                            printers => vec![minijinja::context! { id => "p1", kind => "printer", state => "offline", last_seen => "x", queued => 1, unknown => 1 }],
                            jobs => vec![
                                minijinja::context! { id => 1, state => "unknown", reprint_of => 3, can_reprint => true, can_cancel => true },
                                minijinja::context! { id => 2, state => "sent", can_reprint => true },
                            ],
                            handhelds => vec![
                                minijinja::context! { id => "h1", configured => true },
                                minijinja::context! { id => "h2", issued_at => "x" },
                                minijinja::context! { id => "h3", revoked => true, revoked_at => "x" },
                            ],
                        },
                    ),
                ),
                ("devices.html", layout("devices", minijinja::context! {})),
                (
                    "cache.html",
                    layout(
                        "cache",
                        minijinja::context! {
                            odoo => "http://odoo", configured => true, last_pull => "x", last_ok => "x",
                            mirror_age => "4 s", failures => 2, last_error => "boom", last_error_at => "x",
                            last_report => minijinja::context! { records => 1, deleted => 0, held_back => 0 },
                            running => minijinja::context! { kind => "full", model => "stock.quant", records => 3, started => "x" },
                            models => vec![minijinja::context! { model => "stock.quant", records => 3, full_at => "x", incremental_at => "x" }],
                        },
                    ),
                ),
                (
                    "cache.html",
                    layout(
                        "cache",
                        minijinja::context! { configured => false, last_pull => "x" },
                    ),
                ),
            ];
            for (name, ctx) in pages {
                let html = render(name, ctx).unwrap();
                for key in &keys {
                    assert!(
                        !html.contains(&format!(">{key}")) && !html.contains(&format!("=\"{key}")),
                        "{lang} {name}: raw key {key} in {html}"
                    );
                }
                assert_eq!(html.matches("<h1").count(), 1, "{name}: one h1");
            }
        }
    }
}
