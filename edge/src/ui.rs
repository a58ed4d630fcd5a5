//! The handheld UI: a small web app served by the appliance itself, so it works with no
//! internet. Its three files are compiled into the binary (no CDN, no build step) and
//! speak only the device API (`/api/v1/`), like any other device.
//!
//! The page may not be framed by another site (`frame-ancestors 'none'`, and
//! `X-Frame-Options: DENY` for older browsers): a page that framed it could trick an
//! operator into tapping its buttons (clickjacking).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change only with the binary; a handheld re-checks after an upgrade.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct StringsQuery {
    lang: Option<String>,
}

/// `GET /ui/strings.json[?lang=de]`: the handheld's strings in the language asked for, or
/// else the best match of the browser's `Accept-Language`; every shipped language's name for
/// the language menu. Variables appear as `{name}` for the script to fill in. No token: the
/// strings are the same for everyone, and the sign-in screen needs them.
async fn strings(
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<StringsQuery>,
) -> Response {
    use crate::i18n::{Lang, catalogue, negotiate};
    let lang = q.lang.as_deref().and_then(Lang::parse).unwrap_or_else(|| {
        negotiate(
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        )
    });
    let languages: Vec<_> = Lang::ALL
        .iter()
        .map(|l| serde_json::json!({"code": l.code(), "name": l.name()}))
        .collect();
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            (header::VARY, "Accept-Language"),
        ],
        axum::Json(serde_json::json!({
            "lang": lang.code(),
            "languages": languages,
            "strings": catalogue().area_strings(lang, "ui"),
        })),
    )
        .into_response()
}

/// Routes of the handheld UI, merged into the main router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", get(|| async { Redirect::temporary("/ui/") }))
        .route(
            "/ui/",
            get(|| async {
                let mut response = asset("text/html; charset=utf-8", INDEX);
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_SECURITY_POLICY,
                    axum::http::HeaderValue::from_static(
                        "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                    ),
                );
                headers.insert(
                    header::X_FRAME_OPTIONS,
                    axum::http::HeaderValue::from_static("DENY"),
                );
                response
            }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route("/ui/strings.json", get(strings))
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}
