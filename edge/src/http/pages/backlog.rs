//! `/console/backlog`: the queue over the last 24 hours from the appliance's own samples
//! (see [`crate::backlog`]): queue depth, the oldest open entry's age and the drain per
//! minute, as three small server-drawn charts with a text summary each.

use super::chart::{Chart, clock, nice_ceiling, nice_duration};
use super::*;
use crate::store::BacklogSample;

/// The window the page shows.
const WINDOW_MS: i64 = 24 * 3600 * 1000;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/console/backlog", get(backlog_page))
}

/// The three series of the samples: queue depth, oldest age (s), applied per minute.
pub(crate) fn series(samples: &[BacklogSample]) -> [Vec<(i64, f64)>; 3] {
    let at = |s: &BacklogSample| s.minute * 60_000;
    let depth = samples
        .iter()
        .map(|s| (at(s), (s.pending + s.in_flight) as f64))
        .collect();
    let age = samples
        .iter()
        .map(|s| (at(s), s.oldest_pending_age_s.unwrap_or(0) as f64))
        .collect();
    // Applied since the sample before, per minute between them (a gap after a stop is
    // averaged over the gap).
    let drain = samples
        .windows(2)
        .map(|w| {
            let minutes = (w[1].minute - w[0].minute).max(1) as f64;
            let applied = (w[1].applied_total - w[0].applied_total).max(0) as f64;
            (at(&w[1]), applied / minutes)
        })
        .collect();
    [depth, age, drain]
}

/// A chart of the page: its id, title and summary keys, points and value format.
type Spec<'a> = (
    &'static str,
    &'static str,
    &'static str,
    &'a [(i64, f64)],
    fn(f64) -> f64,
    &'a dyn Fn(f64) -> String,
);

/// A count's axis: at least 0 to 4, so a quiet queue draws whole numbers.
fn count_top(max: f64) -> f64 {
    nice_ceiling(max.max(4.0))
}

fn count(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `GET /console/backlog`.
async fn backlog_page(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(viewer) = page_session(&state, &headers) else {
        return Ok(to_login());
    };
    let lang = viewer.lang;
    let to_ms = crate::store::now_ms();
    let from_ms = to_ms - WINDOW_MS;
    let samples = state
        .store
        .read(|r| r.backlog_since(from_ms.div_euclid(60_000)))?;
    let [depth, age, drain] = series(&samples);
    let time_label = |ms: i64| clock(ms, "%H:%M");
    let as_duration = |v: f64| duration(v);
    let specs: [Spec<'_>; 3] = [
        (
            "depth",
            "backlog-depth",
            "backlog-depth-summary",
            &depth,
            count_top,
            &count,
        ),
        (
            "age",
            "backlog-age",
            "backlog-age-summary",
            &age,
            nice_duration,
            &as_duration,
        ),
        (
            "drain",
            "backlog-drain",
            "backlog-drain-summary",
            &drain,
            count_top,
            &count,
        ),
    ];
    let mut charts = Vec::new();
    if !samples.is_empty() {
        for (id, title_key, summary_key, points, top, value_label) in specs {
            let title = tr(lang, title_key, &[]);
            let latest = points
                .last()
                .map_or_else(|| "—".to_owned(), |p| value_label(p.1));
            let highest = points
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|p| (value_label(p.1), clock(p.0, "%H:%M")));
            let (max, max_at) = highest.unwrap_or_else(|| ("—".to_owned(), "—".to_owned()));
            let summary = tr(
                lang,
                summary_key,
                &[("now", latest), ("max", max), ("at", max_at)],
            );
            let svg = Chart {
                id,
                title: &title,
                summary: &summary,
                from_ms,
                to_ms,
                points,
                top,
                value_label,
                time_label: &time_label,
            }
            .svg();
            charts.push(minijinja::context! {
                id => id,
                title => title,
                summary => summary,
                // Built by `Chart::svg`, which escapes every text it writes.
                svg => minijinja::Value::from_safe_string(svg),
            });
        }
    }
    let last = samples
        .last()
        .map(|s| clock(s.minute * 60_000, "%Y-%m-%d %H:%M"));
    render_page(
        &state,
        &viewer,
        "backlog.html",
        "backlog",
        minijinja::context! {
            charts => charts,
            n_samples => samples.len(),
            last_sample => last,
            every => crate::backlog::EVERY.as_secs(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_are_depth_age_and_the_drain_between_samples() {
        let s = |minute, pending, in_flight, age, applied| BacklogSample {
            minute,
            pending,
            in_flight,
            conflicts: 0,
            oldest_pending_age_s: age,
            applied_total: applied,
        };
        let samples = [
            s(10, 5, 1, Some(30), 100),
            s(11, 2, 1, Some(90), 104),
            // Two minutes later (a restart): 6 applied, 3 a minute.
            s(13, 0, 0, None, 110),
        ];
        let [depth, age, drain] = series(&samples);
        assert_eq!(depth, vec![(600_000, 6.0), (660_000, 3.0), (780_000, 0.0)]);
        assert_eq!(age, vec![(600_000, 30.0), (660_000, 90.0), (780_000, 0.0)]);
        assert_eq!(drain, vec![(660_000, 4.0), (780_000, 3.0)]);
        let [depth, _, drain] = series(&samples[..1]);
        assert_eq!(depth.len(), 1);
        assert!(drain.is_empty(), "one sample has no drain yet");
    }
}
