//! What the console's record pages (conflicts, journal, floor sessions, audit) share: times as
//! the console shows them, filters read from a plain GET form, catalogue labels for stored
//! codes, and the links of keyset paging.

use super::*;

/// Rows on one page of a record list.
pub(super) const PAGE_ROWS: usize = 50;

/// The page for a record that does not exist (404): the layout, what is missing, a way back.
pub(super) fn missing(
    state: &AppState,
    viewer: &Viewer,
    current: &str,
    what: String,
    back: &str,
) -> Result<Response, ApiError> {
    let mut response = render_page(
        state,
        viewer,
        "missing.html",
        current,
        minijinja::context! { what => what, back => back },
    )?;
    *response.status_mut() = StatusCode::NOT_FOUND;
    Ok(response)
}

/// A unix-ms time as the console shows it, in UTC: `2026-12-06 03:12:54`.
pub(super) fn at(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// How long ago `ms` was, as `12 s`, `4 min`.
pub(super) fn ago(ms: i64) -> String {
    duration((crate::store::now_ms() - ms) as f64 / 1000.0)
}

/// A filter's value from the query string: trimmed, `None` when left empty.
pub(super) fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A stored code (`picking_cancelled`, `in_flight`) in the viewer's language: the message
/// `<prefix>-<code>` when the catalogue has it, else the code itself (a code newer than the
/// catalogue is shown as it is, never as a key).
pub(super) fn label(lang: crate::i18n::Lang, prefix: &str, code: &str) -> String {
    // Fluent names take no dots: `conflict.resolve` is `audit-action-conflict-resolve`.
    let key = format!("{prefix}-{}", code.replace('.', "-"));
    if crate::i18n::catalogue().has(crate::i18n::Lang::En, &key) {
        tr(lang, &key, &[])
    } else {
        code.to_owned()
    }
}

/// `(code, label)` pairs for a filter's `<select>`.
pub(super) fn options(
    lang: crate::i18n::Lang,
    prefix: &str,
    codes: impl IntoIterator<Item = &'static str>,
) -> Vec<minijinja::Value> {
    codes
        .into_iter()
        .map(|code| minijinja::context! { code => code, label => label(lang, prefix, code) })
        .collect()
}

/// A time filter typed in a `datetime-local` field (or a bare date), read as UTC: unix ms.
pub(super) fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let civil = text.parse::<jiff::civil::DateTime>().ok().or_else(|| {
        text.parse::<jiff::civil::Date>()
            .ok()
            .map(|d| d.at(0, 0, 0, 0))
    })?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

/// A value of a stored JSON document as one line of text (strings without quotes).
pub(super) fn plain(value: &Value) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A quantity as a person writes it: `12`, `0.5`.
pub(super) fn quantity(q: f64) -> String {
    let text = format!("{q:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The query string of a list's link: the filters in force and one more pair (`before`),
/// each percent-encoded.
pub(super) fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    fn encode(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}={}", encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// The picking a filter names, by its name (`WH/OUT/00012`), its id or its causal key (a
/// list links a picking the mirror no longer holds by its key): the journal's causal key
/// `picking:<id>`. `Err` carries the message for the page when no picking has that name.
pub(super) fn picking_key(
    state: &AppState,
    lang: crate::i18n::Lang,
    picking: &str,
) -> Result<String, String> {
    if let Ok(id) = picking
        .strip_prefix("picking:")
        .unwrap_or(picking)
        .parse::<i64>()
    {
        return Ok(format!("picking:{id}"));
    }
    match state.store.read(|r| r.picking_by_name(picking)) {
        Ok(Some(id)) => Ok(format!("picking:{id}")),
        _ => Err(tr(
            lang,
            "records-no-picking",
            &[("name", picking.to_owned())],
        )),
    }
}

/// What a causal key names, for a list: a picking's name, else the key as it is.
pub(super) fn key_label(r: &crate::store::Reader<'_>, key: &str) -> Result<String, StoreError> {
    if let Some(id) = key.strip_prefix("picking:").and_then(|p| p.parse().ok())
        && let Some((name, _, _)) = r.picking_header(id)?
    {
        return Ok(name);
    }
    Ok(key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_quantities_read_as_a_person_writes_them() {
        assert_eq!(at(0), "1970-01-01 00:00:00");
        assert_eq!(parse_time("1970-01-01T00:01"), Some(60_000));
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(quantity(12.0), "12");
        assert_eq!(quantity(0.5), "0.5");
        assert_eq!(
            query_string(&[("picking", Some("WH/OUT 1".into())), ("kind", None)]),
            "picking=WH%2FOUT%201"
        );
    }
}
