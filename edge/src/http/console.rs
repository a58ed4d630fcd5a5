//! The console's sign-in, sign-out and who is signed in, and the audit trail's listing: the
//! manager's side of the HTTP API (the pages come on top of these).

use super::*;

/// A console sign-in, as JSON or a form post.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    name: String,
    password: String,
}

/// Decodes an `application/x-www-form-urlencoded` body into a sign-in (`name`, `password`).
pub(super) fn login_form(body: &[u8]) -> Result<LoginBody, String> {
    fn decode(s: &str) -> Result<String, String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or("a bad %-escape in the form")?;
                    out.push(hex);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| "the form is not UTF-8".to_owned())
    }
    let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8".to_owned())?;
    let (mut name, mut password) = (None, None);
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key)?.as_str() {
            "name" => name = Some(decode(value)?),
            "password" => password = Some(decode(value)?),
            other => return Err(format!("unknown form field {other:?}")),
        }
    }
    match (name, password) {
        (Some(name), Some(password)) => Ok(LoginBody { name, password }),
        _ => Err("the form needs name and password".into()),
    }
}

/// `POST /console/login`: signs a manager in (JSON `{"name", "password"}` or a form post),
/// sets the session cookie and answers the name, role and the session's CSRF token. Failures
/// are counted per account and per client address; locked out, the answer is 429 with
/// `Retry-After`. Every outcome is audited (a lock-out once a minute per account or address).
///
/// A form posted by the sign-in page (a browser asking for HTML) is answered with a 303
/// instead: to `/console/` once signed in, back to `/console/login?error=…` otherwise.
pub(super) async fn console_login(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
) -> Response {
    let from_page = request
        .headers()
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if let Err(e) = same_origin(request.headers()) {
        return e.into_response();
    }
    let answer = sign_in(state, request).await;
    if !from_page {
        return answer.unwrap_or_else(IntoResponse::into_response);
    }
    let to = |path: &str| axum::response::Redirect::to(path).into_response();
    match answer {
        Ok(signed_in) if signed_in.status() == StatusCode::OK => {
            let mut response = to("/console/");
            if let Some(cookie) = signed_in.headers().get(axum::http::header::SET_COOKIE) {
                response
                    .headers_mut()
                    .insert(axum::http::header::SET_COOKIE, cookie.clone());
            }
            response
        }
        Ok(_) => to("/console/login?error=locked"),
        Err(e) if e.code == "login_failed" => to("/console/login?error=failed"),
        Err(_) => to("/console/login?error=invalid"),
    }
}

/// Refuses a sign-in posted by another site's page (login CSRF: a form elsewhere signing the
/// browser into an account of the attacker's choosing, whose pages it then trusts). A
/// browser names the page's origin in `Origin` and says `Sec-Fetch-Site`; scripts and
/// `curl` send neither and are let through.
pub(super) fn same_origin(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let refuse = || {
        Err(ApiError::forbidden(
            "cross_origin",
            "a sign-in must come from the console's own page",
        ))
    };
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    if header("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return refuse();
    }
    let Some(origin) = header("origin") else {
        return Ok(());
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = header("host");
    match (authority, host) {
        (Some(a), Some(h)) if !a.is_empty() && a.eq_ignore_ascii_case(h) => Ok(()),
        _ => refuse(),
    }
}

async fn sign_in(
    state: Arc<AppState>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    use crate::floor::lockout::Kind;
    use crate::managers::{decoy_hash, verify_password};
    use crate::store::{ManagerCmd, NewAudit};
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("the request body could not be read: {e}")))?;
    let form = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let login = if form {
        login_form(&body).map_err(ApiError::bad_request)?
    } else {
        serde_json::from_slice::<LoginBody>(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "body must be {{\"name\": \"...\", \"password\": \"...\"}}: {e}"
            ))
        })?
    };
    crate::managers::valid_name(&login.name).map_err(ApiError::bad_request)?;
    if login.password.is_empty() || login.password.len() > crate::managers::MAX_PASSWORD {
        return Err(ApiError::bad_request(format!(
            "password: 1 to {} bytes",
            crate::managers::MAX_PASSWORD
        )));
    }
    let addr = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let from = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let account_key = format!("manager:{}", login.name);
    let addr_key = format!("addr:{from}");
    let audit = |action: &str, detail: Value| NewAudit {
        actor: format!("addr:{from}"),
        action: action.into(),
        target: Some(account_key.clone()),
        detail,
    };
    let guard = &state.managers.guard;
    // The account counts towards the site-wide window; the address only for itself (the
    // account already counts each failure once there).
    let attempts = guard
        .attempt(&account_key, Kind::SignIn)
        .map_err(|locked| (locked, &account_key))
        .and_then(|account| match addr {
            Some(_) => guard
                .attempt(&addr_key, Kind::Takeover)
                .map(|a| (account, Some(a)))
                .map_err(|locked| (locked, &addr_key)),
            None => Ok((account, None)),
        });
    let (account, by_addr) = match attempts {
        Ok(attempts) => attempts,
        Err((locked, key)) => {
            if state.managers.lock_to_audit(key) {
                record(&state, audit("login.locked", json!({"key": key}))).await;
            }
            let secs = locked.wait().as_secs() + 1;
            let mut response = ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "locked_out",
                message: format!("too many failed sign-ins; try again in {secs} s"),
            }
            .into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            return Ok(response);
        }
    };
    let row = state.store.read(|r| r.manager(&login.name))?;
    // An unknown name costs as much as a wrong password: no telling which names exist.
    // The decoy is made on the blocking pool too (once, at the first use if the appliance
    // has not made it at start), never on an async worker.
    let stored = row.as_ref().map(|r| r.password_hash.clone());
    let password = login.password;
    let ok = tokio::task::spawn_blocking(move || {
        let hash = stored.unwrap_or_else(|| decoy_hash().to_owned());
        verify_password(&password, &hash)
    })
    .await
    .unwrap_or(false);
    let (Some(row), true) = (row, ok) else {
        drop((account, by_addr));
        tracing::warn!(manager = %login.name, addr = %from, "console sign-in refused");
        record(&state, audit("login.failure", json!({}))).await;
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "login_failed",
            message: "unknown name or wrong password".into(),
        });
    };
    account.succeeded();
    if let Some(a) = by_addr {
        a.succeeded();
    }
    let role = Role::parse(&row.role)
        .ok_or_else(|| StoreError::Data(format!("manager role {:?}", row.role)))?;
    let token = crate::floor::new_token();
    let now = crate::store::now_ms();
    let (stale_before, born_before) = state.managers.sessions.cutoffs(now);
    state
        .store
        .managers(ManagerCmd::OpenSession {
            token_sha256: crate::floor::sha256_hex(token.as_bytes()),
            manager: row.name.clone(),
            now,
            stale_before,
            born_before,
            audit: NewAudit {
                actor: format!("manager:{}", row.name),
                action: "login.success".into(),
                target: Some(account_key.clone()),
                detail: json!({"addr": from, "role": role.as_str()}),
            },
        })
        .await?;
    // The browser's previous session (its cookie is replaced now) ends here, not at its
    // idle time-out: a sign-in leaves one live session per browser.
    if let Some(previous) = parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(crate::managers::session_cookie)
    {
        let cmd = ManagerCmd::CloseSession {
            token_sha256: crate::floor::sha256_hex(previous.as_bytes()),
            audit: None,
        };
        if let Err(e) = state.store.managers(cmd).await {
            tracing::warn!(error = %e, "console sign-in: the previous session not removed");
        }
    }
    tracing::info!(manager = %row.name, addr = %from, "console sign-in");
    let mut response = Json(json!({
        "name": row.name,
        "role": role.as_str(),
        "csrf_token": crate::managers::csrf_token(&token),
    }))
    .into_response();
    let cookie = crate::managers::set_cookie(&token, state.tls.is_some());
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `GET /console/me`: who is signed in (with the session's CSRF token, for a page reloaded).
pub(super) async fn console_me(
    axum::Extension(actor): axum::Extension<Actor>,
    headers: axum::http::HeaderMap,
) -> Json<Value> {
    match actor {
        Actor::Token => Json(json!({"name": "token", "role": "manager"})),
        Actor::Session { name, role, .. } => {
            let csrf = headers
                .get_all(axum::http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(crate::managers::session_cookie)
                .map(crate::managers::csrf_token);
            Json(json!({"name": name, "role": role.as_str(), "csrf_token": csrf}))
        }
    }
}

/// `POST /console/logout`: ends the session of the cookie. Any role may sign out, so it
/// needs [`Need::View`] only, but as a state change made with the cookie it needs the CSRF
/// token all the same. A cookie whose session has already ended is removed as well (401).
pub(super) async fn console_logout(
    State(state): State<Arc<AppState>>,
    parts: axum::http::request::Parts,
) -> Response {
    match authorize(&state, &parts, Need::View) {
        Ok(actor) => logout(&state, &actor, &parts.headers)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Err(e) => {
            // Only a cookie the request carried (so never on a cross-site post, which a
            // SameSite=Strict cookie does not go with): no page elsewhere signs anyone out.
            let carried = parts
                .headers
                .get_all(axum::http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|c| crate::managers::session_cookie(c).is_some());
            let ended = carried && e.status == StatusCode::UNAUTHORIZED;
            let mut response = refusal(e);
            if ended
                && let Ok(v) = axum::http::HeaderValue::from_str(&crate::managers::clear_cookie(
                    state.tls.is_some(),
                ))
            {
                response
                    .headers_mut()
                    .insert(axum::http::header::SET_COOKIE, v);
            }
            response
        }
    }
}

pub(super) async fn logout(
    state: &AppState,
    actor: &Actor,
    headers: &axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let token = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(crate::managers::session_cookie);
    let (Actor::Session { name, .. }, Some(token)) = (actor, token) else {
        return Err(ApiError::bad_request(
            "no console session to end (the manager token has none)".into(),
        ));
    };
    state
        .store
        .managers(crate::store::ManagerCmd::CloseSession {
            token_sha256: crate::floor::sha256_hex(token.as_bytes()),
            audit: Some(crate::store::NewAudit {
                actor: actor.audit_name(),
                action: "logout".into(),
                target: Some(format!("manager:{name}")),
                detail: json!({}),
            }),
        })
        .await?;
    let mut response = Json(json!({"signed_out": name})).into_response();
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&crate::managers::clear_cookie(state.tls.is_some()))
    {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/audit?limit=N`: the newest audit records first (100 by default, 1000 at most).
pub(super) async fn audit(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state.store.read(|r| r.audit(limit))?;
    Ok(Json(json!({"audit": rows})))
}

/// The body of `POST /console/language`: a shipped language's code, or `null` for "as the
/// browser asks".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LanguageBody {
    language: Option<String>,
}

/// `POST /console/language`: the signed-in manager's console language, kept with the account.
/// Any role may choose its own (the CSRF token is still required: it is a change).
pub(super) async fn console_language(
    State(state): State<Arc<AppState>>,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Response {
    let answer = async {
        let actor = authorize(&state, &parts, Need::View)?;
        let Actor::Session { name, .. } = &actor else {
            return Err(ApiError::bad_request(
                "the manager token has no account to keep a language for".into(),
            ));
        };
        let body: LanguageBody = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("body must be {{\"language\": \"de\"}}: {e}"))
        })?;
        let language =
            crate::i18n::Lang::choice(body.language.as_deref()).map_err(ApiError::bad_request)?;
        state
            .store
            .managers(crate::store::ManagerCmd::Language {
                name: name.clone(),
                language: language.map(|l| l.code().to_owned()),
                audit: crate::store::NewAudit {
                    actor: actor.audit_name(),
                    action: "manager.language".into(),
                    target: Some(format!("manager:{name}")),
                    detail: serde_json::json!({ "language": language.map(|l| l.code()) }),
                },
            })
            .await?;
        Ok(Json(serde_json::json!({ "language": language.map(|l| l.code()) })).into_response())
    };
    answer.await.unwrap_or_else(|e: ApiError| refusal(e))
}
