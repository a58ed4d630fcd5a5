//! The Odoo wire client: one interface, two transports.
//!
//! - **JSON-RPC** (`POST /jsonrpc`, Odoo 16–18, still served by 19): authenticate once with
//!   login + API key and reuse the uid; every call is `object.execute_kw`. Errors arrive with
//!   HTTP 200 and an `error` object; a method returning `None` gives no `result` key at all.
//! - **JSON-2** (`POST /json/2/<model>/<method>`, Odoo 19+): bearer API key, `X-Odoo-Database`,
//!   named arguments, bare JSON results, HTTP status codes for errors.
//!
//! Both take the same [`Call`]: a model, a method, optional record ids and *named*
//! arguments. JSON-RPC passes the ids as the one positional argument and the rest as kwargs,
//! which Odoo binds by name exactly as JSON-2 does (except `create`, whose `vals_list` Odoo
//! 18's `call_kw` requires positionally), so callers never care which is in use.
//! Every call carries `allowed_company_ids` for the site's company.
//!
//! The API key is only ever put in request bodies and headers; it is not in any error,
//! log line or `Debug` output.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use super::error::OdooError;

/// An API key: never shown (`Debug` says `ApiKey(***)`), wiped from memory when dropped.
#[derive(Clone)]
pub struct ApiKey(secrecy::SecretString);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(secrecy::SecretString::from(key.into()))
    }

    /// The key itself, for the wire (and nothing else).
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Which API to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiChoice {
    /// JSON-2 on Odoo 19+, JSON-RPC before.
    Auto,
    JsonRpc,
    Json2,
}

/// How to reach one Odoo database.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://mycompany.odoo.com` (no trailing slash needed).
    pub url: String,
    pub database: String,
    pub login: String,
    pub api_key: ApiKey,
    pub api: ApiChoice,
    /// The site's company: sent as `allowed_company_ids` on every call.
    pub company_id: i64,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Calls in flight at once.
    pub max_concurrency: usize,
    /// Extra CA certificates (PEM) trusted besides the built-in roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key (PEM, concatenated) for mutual TLS.
    pub identity_pem: Option<Vec<u8>>,
    /// Largest answer accepted.
    pub max_response_bytes: usize,
    /// Time-out of a health probe (`GET /web/health`), well under `timeout`: Odoo answers
    /// it without touching the database, so a probe this slow means the link is gone.
    pub probe_timeout: Duration,
    /// Connect to a major version other than the verified ones (18, 19) instead of
    /// refusing it.
    pub allow_unverified_version: bool,
}

impl ClientConfig {
    pub fn new(url: &str, database: &str, login: &str, api_key: &str, company_id: i64) -> Self {
        ClientConfig {
            url: url.trim_end_matches('/').to_owned(),
            database: database.to_owned(),
            login: login.to_owned(),
            api_key: ApiKey::new(api_key),
            api: ApiChoice::Auto,
            company_id,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 4,
            ca_pem: None,
            identity_pem: None,
            max_response_bytes: 256 * 1024 * 1024,
            probe_timeout: Duration::from_secs(3),
            allow_unverified_version: false,
        }
    }
}

/// The server's version, as detected at connect time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerVersion {
    /// Major version (`saas~18.4` reads as 18).
    pub major: u32,
    /// What the server said, e.g. `18.0-20250101`.
    pub raw: String,
}

/// The major versions Holdfast has been verified against (ODOO.md).
pub const VERIFIED_MAJORS: &[u32] = &[18, 19];

impl ServerVersion {
    /// The version as people name it: `17.0` from `17.0-20240101`, `saas~17.4` as is.
    pub fn label(&self) -> String {
        let label: String = self
            .raw
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '~'))
            .collect();
        if label.chars().any(|c| c.is_ascii_digit()) {
            label
        } else {
            format!("{}.0", self.major)
        }
    }
}

/// The transport chosen at connect time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    JsonRpc { uid: i64 },
    Json2,
}

/// One call: `model.method(ids, **kwargs)` with a context.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub model: String,
    pub method: String,
    pub ids: Option<Vec<i64>>,
    pub kwargs: Map<String, Value>,
    pub context: Map<String, Value>,
}

impl Call {
    pub fn new(model: &str, method: &str) -> Call {
        Call {
            model: model.to_owned(),
            method: method.to_owned(),
            ids: None,
            kwargs: Map::new(),
            context: Map::new(),
        }
    }

    /// Records the method runs on (`button_validate`, `write`, `read`, ...).
    pub fn ids(mut self, ids: &[i64]) -> Call {
        self.ids = Some(ids.to_vec());
        self
    }

    /// A named argument (`domain`, `fields`, `vals`, `vals_list`, ...).
    pub fn arg(mut self, name: &str, value: impl Into<Value>) -> Call {
        self.kwargs.insert(name.to_owned(), value.into());
        self
    }

    /// A context key (`skip_backorder`, `inventory_mode`, ...).
    pub fn context(mut self, key: &str, value: impl Into<Value>) -> Call {
        self.context.insert(key.to_owned(), value.into());
        self
    }
}

/// A connected client; cheap to clone.
#[derive(Clone, Debug)]
pub struct OdooClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    protocol: Protocol,
    version: ServerVersion,
    /// The server's models and fields, asked once at connect.
    models: super::models::ModelMap,
    permits: Semaphore,
    next_id: AtomicU64,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn send_error(e: reqwest::Error, url: &str, timeout: Duration) -> OdooError {
    if e.is_connect() {
        OdooError::Unreachable {
            url: url.to_owned(),
            reason: chain(&e),
        }
    } else if e.is_timeout() {
        OdooError::Timeout(timeout)
    } else if e.is_builder() {
        OdooError::Config(chain(&e))
    } else {
        OdooError::Lost(chain(&e))
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The first characters of a body, for error messages (HTML error pages are long).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses a major version from `18`, `"18.0"` or `"saas~18.4"`.
pub fn parse_major(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n as u32),
        Value::String(s) => {
            let s = s.rsplit('~').next().unwrap_or(s);
            s.split(|c: char| !c.is_ascii_digit())
                .find(|p| !p.is_empty())?
                .parse()
                .ok()
        }
        _ => None,
    }
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

async fn exchange(
    request: reqwest::RequestBuilder,
    url: &str,
    config: &ClientConfig,
) -> Result<Answer, OdooError> {
    let (http, request) = request.build_split();
    let request = request.map_err(|e| send_error(e, url, config.timeout))?;
    // Only with HOLDFAST_ODOO_TRANSCRIPT set: the exchange as sent and as answered.
    let recording = super::transcript::begin(&request, config.api_key.expose());
    let received = receive(&http, request, url, config).await;
    if let Some(recording) = recording {
        recording.finish(match &received {
            Ok((status, _, body)) => Ok((*status, body.as_slice())),
            Err(e) => Err(e.to_string()),
        });
    }
    let (status, headers, body) = received?;
    if matches!(status, 429 | 502 | 503 | 504) {
        return Err(OdooError::Busy {
            status,
            retry_after: retry_after(&headers),
        });
    }
    Ok(Answer { status, body })
}

/// Sends `request` and reads the whole answer: status, headers, body.
async fn receive(
    http: &reqwest::Client,
    request: reqwest::Request,
    url: &str,
    config: &ClientConfig,
) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), OdooError> {
    let mut response = http
        .execute(request)
        .await
        .map_err(|e| send_error(e, url, config.timeout))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| send_error(e, url, config.timeout))?
    {
        if body.len() + chunk.len() > config.max_response_bytes {
            return Err(OdooError::TooLarge {
                limit: config.max_response_bytes,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, body))
}

/// Reads a JSON-RPC answer (status and body as received); public for the fuzz targets.
pub fn parse_jsonrpc_answer(status: u16, body: &[u8]) -> Result<Value, OdooError> {
    jsonrpc_result(Answer {
        status,
        body: body.to_vec(),
    })
}

/// Reads a JSON-2 answer (status and body as received); public for the fuzz targets.
pub fn parse_json2_answer(status: u16, body: &[u8]) -> Result<Value, OdooError> {
    json2_result(Answer {
        status,
        body: body.to_vec(),
    })
}

/// Reads a JSON-RPC envelope: `result`, `error`, or neither (Python `None`).
fn jsonrpc_result(answer: Answer) -> Result<Value, OdooError> {
    let status = answer.status;
    if (400..500).contains(&status) {
        // Refused before any processing (wrong content type, malformed request).
        return Err(OdooError::Server {
            name: format!("http.{status}"),
            message: snippet(&answer.body),
            status: Some(status),
        });
    }
    if status != 200 {
        // The worker died mid-call: nobody can say what was committed.
        return Err(OdooError::Protocol {
            status,
            reason: snippet(&answer.body),
        });
    }
    let envelope: Value =
        serde_json::from_slice(&answer.body).map_err(|e| OdooError::Protocol {
            status,
            reason: format!("not JSON ({e}): {}", snippet(&answer.body)),
        })?;
    let Value::Object(mut envelope) = envelope else {
        return Err(OdooError::Protocol {
            status,
            reason: "JSON-RPC answer is not an object".into(),
        });
    };
    if let Some(error) = envelope.remove("error") {
        let data = error.get("data");
        let name = data
            .and_then(|d| d.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("odoo.exceptions.UnknownError")
            .to_owned();
        let message = data
            .and_then(|d| d.get("message"))
            .or_else(|| error.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned();
        if name == "odoo.exceptions.AccessDenied" {
            return Err(OdooError::Auth(message));
        }
        return Err(OdooError::Server {
            name,
            message,
            status: None,
        });
    }
    // "No result and no error" is success with None.
    Ok(envelope.remove("result").unwrap_or(Value::Null))
}

/// Reads a JSON-2 answer: bare JSON on 200, an error object otherwise.
fn json2_result(answer: Answer) -> Result<Value, OdooError> {
    let status = answer.status;
    let parsed: Result<Value, _> = serde_json::from_slice(&answer.body);
    if status == 200 {
        return parsed.map_err(|e| OdooError::Protocol {
            status,
            reason: format!("not JSON ({e}): {}", snippet(&answer.body)),
        });
    }
    let (name, message) = match &parsed {
        Ok(v) => (
            v.get("name").and_then(Value::as_str).map(str::to_owned),
            v.get("message").and_then(Value::as_str).map(str::to_owned),
        ),
        Err(_) => (None, None),
    };
    if status == 401 {
        return Err(OdooError::Auth(
            message.unwrap_or_else(|| "API key refused (HTTP 401)".into()),
        ));
    }
    match name {
        Some(name) => Err(OdooError::Server {
            name,
            message: message.unwrap_or_default(),
            status: Some(status),
        }),
        // A 4xx without Odoo's JSON (wrong content type, database not served): refused.
        None if (400..500).contains(&status) => Err(OdooError::Server {
            name: format!("http.{status}"),
            message: snippet(&answer.body),
            status: Some(status),
        }),
        // A 5xx without Odoo's JSON: the server died mid-call; we cannot know what happened.
        None => Err(OdooError::Protocol {
            status,
            reason: snippet(&answer.body),
        }),
    }
}

/// How long a pooled connection may sit idle before it is closed. Reverse proxies in front
/// of Odoo close idle keep-alive connections on their own (AWS ALB after 60 s, nginx after
/// 75 s, Azure's load balancers drop them silently after 4 min): reusing one the proxy has
/// just dropped either fails a call that may have been sent (an ambiguous write) or waits
/// for the time-out. Closing ours first avoids both.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// TCP keepalive on every connection: probes after this much silence keep a middlebox's
/// flow state alive and let the kernel find a connection whose path died silently...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// ...probing this often...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// ...and giving up after this many unanswered probes (an idle dead connection is dropped
/// from the pool after about 30 s instead of being handed to the next call).
const KEEPALIVE_RETRIES: u32 = 3;
/// Data sent and not acknowledged for this long closes the connection (`TCP_USER_TIMEOUT`):
/// a call written into a path that died silently fails well before the call time-out.
const UNACKED_LIMIT: Duration = Duration::from_secs(15);

/// The HTTP client every Odoo connection is made with: TLS settings, time-outs, a bounded
/// idle pool and TCP keepalive (see the constants above).
fn http_client(config: &ClientConfig) -> Result<reqwest::Client, OdooError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        .pool_idle_timeout(POOL_IDLE)
        .tcp_keepalive(KEEPALIVE_IDLE)
        .tcp_keepalive_interval(KEEPALIVE_INTERVAL)
        .tcp_keepalive_retries(KEEPALIVE_RETRIES)
        .user_agent(concat!("holdfast/", env!("CARGO_PKG_VERSION")));
    #[cfg(target_os = "linux")]
    {
        builder = builder.tcp_user_timeout(UNACKED_LIMIT);
    }
    if let Some(pem) = &config.ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| OdooError::Config(format!("CA bundle: {}", chain(&e))))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(pem) = &config.identity_pem {
        let identity = reqwest::Identity::from_pem(pem)
            .map_err(|e| OdooError::Config(format!("client certificate: {}", chain(&e))))?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| OdooError::Config(chain(&e)))
}

/// `GET /web/health` within `config.probe_timeout`.
async fn health(http: &reqwest::Client, config: &ClientConfig) -> Result<(), OdooError> {
    let url = format!("{}/web/health", config.url);
    let limit = config.probe_timeout.min(config.timeout);
    let probe = ClientConfig {
        // So that a probe's time-out reads as the probe's, not the call's.
        timeout: limit,
        ..config.clone()
    };
    let answer = exchange(http.get(&url).timeout(limit), &url, &probe).await?;
    if answer.status == 200 {
        Ok(())
    } else {
        Err(OdooError::Protocol {
            status: answer.status,
            reason: snippet(&answer.body),
        })
    }
}

/// A health probe that needs no login: the connectivity probe runs it from the start, while
/// Odoo may still be unreachable or refuse the credentials. It has its own connections.
#[derive(Clone, Debug)]
pub struct HealthProbe {
    http: reqwest::Client,
    config: ClientConfig,
}

impl HealthProbe {
    pub fn new(config: ClientConfig) -> Result<HealthProbe, OdooError> {
        Ok(HealthProbe {
            http: http_client(&config)?,
            config,
        })
    }

    /// Whether Odoo answers `GET /web/health` within the probe time-out.
    pub async fn check(&self) -> Result<(), OdooError> {
        health(&self.http, &self.config).await
    }
}

impl OdooClient {
    /// Builds the HTTP client, detects the server version, picks the transport and checks the
    /// credentials.
    pub async fn connect(config: ClientConfig) -> Result<OdooClient, OdooError> {
        let http = http_client(&config)?;
        let version = detect_version(&http, &config).await?;
        if !VERIFIED_MAJORS.contains(&version.major) {
            if !config.allow_unverified_version {
                return Err(OdooError::UnverifiedVersion(version.label()));
            }
            tracing::warn!(
                version = %version.raw,
                "odoo version not verified with holdfast; connecting because allow_unverified_version is set"
            );
        }
        let use_json2 = match config.api {
            ApiChoice::Json2 => true,
            ApiChoice::JsonRpc => false,
            ApiChoice::Auto => version.major >= 19,
        };
        let protocol = if use_json2 {
            Protocol::Json2
        } else {
            Protocol::JsonRpc {
                uid: authenticate(&http, &config).await?,
            }
        };
        let mut client = OdooClient {
            inner: Arc::new(Inner {
                http,
                permits: Semaphore::new(config.max_concurrency.max(1)),
                config,
                protocol,
                models: super::models::ModelMap::assumed(version.major),
                version,
                next_id: AtomicU64::new(1),
            }),
        };
        if use_json2 {
            // JSON-2 has no login step: check the key now, not on the first real call.
            client.call(Call::new("res.users", "context_get")).await?;
        }
        // Which models and fields this server has decides what is read and written; a
        // server lacking a required one is refused here, by name.
        let models = super::models::ModelMap::detect(&client).await?;
        match Arc::get_mut(&mut client.inner) {
            Some(inner) => inner.models = models,
            None => {
                return Err(OdooError::Config(
                    "client shared before it connected".into(),
                ));
            }
        }
        Ok(client)
    }

    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    pub fn version(&self) -> &ServerVersion {
        &self.inner.version
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The server's models and fields (see [`super::models`]).
    pub fn models(&self) -> &super::models::ModelMap {
        &self.inner.models
    }

    /// Runs one call.
    pub async fn call(&self, call: Call) -> Result<Value, OdooError> {
        let inner = &*self.inner;
        let config = &inner.config;
        let mut context = call.context;
        context
            .entry("allowed_company_ids")
            .or_insert_with(|| json!([config.company_id]));
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| OdooError::Config("client closed".into()))?;
        match inner.protocol {
            Protocol::JsonRpc { uid } => {
                let url = format!("{}/jsonrpc", config.url);
                let mut kwargs = call.kwargs;
                let args = match (&call.ids, call.method.as_str()) {
                    (Some(ids), _) => json!([ids]),
                    // Odoo's call_kw reads create's first positional argument to decide
                    // between one id and a list (IndexError when it is a kwarg).
                    (None, "create") => match kwargs.remove("vals_list") {
                        Some(vals_list) => json!([vals_list]),
                        None => json!([]),
                    },
                    (None, _) => json!([]),
                };
                kwargs.insert("context".into(), Value::Object(context));
                let body = json!({
                    "jsonrpc": "2.0",
                    "method": "call",
                    "params": {
                        "service": "object",
                        "method": "execute_kw",
                        "args": [config.database, uid, config.api_key.expose(), call.model, call.method, args, kwargs],
                    },
                    "id": inner.next_id.fetch_add(1, Ordering::Relaxed),
                });
                let answer = exchange(inner.http.post(&url).json(&body), &url, config).await?;
                jsonrpc_result(answer)
            }
            Protocol::Json2 => {
                let url = format!("{}/json/2/{}/{}", config.url, call.model, call.method);
                let mut body = call.kwargs;
                if let Some(ids) = call.ids {
                    body.insert("ids".into(), json!(ids));
                }
                body.insert("context".into(), Value::Object(context));
                let request = inner
                    .http
                    .post(&url)
                    .bearer_auth(config.api_key.expose())
                    .header("X-Odoo-Database", &config.database)
                    .json(&body);
                let answer = exchange(request, &url, config).await?;
                json2_result(answer)
            }
        }
    }

    /// `GET /web/health`: whether the server answers at all (no credentials involved).
    /// Bounded by `probe_timeout`, not the call time-out: a probe that waits as long as a
    /// call would find a dead link no sooner than the calls do.
    pub async fn health(&self) -> Result<(), OdooError> {
        health(&self.inner.http, &self.inner.config).await
    }

    /// `search_read` with explicit fields and order (Odoo is ~30x slower without `fields`).
    pub async fn search_read(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        order: &str,
        limit: Option<usize>,
    ) -> Result<Vec<Map<String, Value>>, OdooError> {
        let mut call = Call::new(model, "search_read")
            .arg("domain", domain)
            .arg("fields", json!(fields))
            .arg("order", order);
        if let Some(limit) = limit {
            call = call.arg("limit", limit);
        }
        records(self.call(call).await?)
    }

    /// `read` of the given ids; missing ids are simply absent from the answer.
    pub async fn read(
        &self,
        model: &str,
        ids: &[i64],
        fields: &[&str],
    ) -> Result<Vec<Map<String, Value>>, OdooError> {
        records(
            self.call(
                Call::new(model, "read")
                    .ids(ids)
                    .arg("fields", json!(fields)),
            )
            .await?,
        )
    }

    /// Ids matching a domain, in `order`.
    pub async fn search(
        &self,
        model: &str,
        domain: Value,
        order: &str,
    ) -> Result<Vec<i64>, OdooError> {
        ids(self
            .call(
                Call::new(model, "search")
                    .arg("domain", domain)
                    .arg("order", order),
            )
            .await?)
    }

    /// `write(ids, vals)`.
    pub async fn write(&self, model: &str, ids: &[i64], vals: Value) -> Result<(), OdooError> {
        self.call(Call::new(model, "write").ids(ids).arg("vals", vals))
            .await
            .map(|_| ())
    }

    /// `create(vals_list)`: the new ids, in order.
    pub async fn create(&self, model: &str, vals_list: Value) -> Result<Vec<i64>, OdooError> {
        let value = self
            .call(Call::new(model, "create").arg("vals_list", vals_list))
            .await?;
        match value {
            // A single dict makes Odoo answer with one id.
            Value::Number(_) => ids(Value::Array(vec![value])),
            other => ids(other),
        }
    }
}

fn records(value: Value) -> Result<Vec<Map<String, Value>>, OdooError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                other => Err(OdooError::Protocol {
                    status: 200,
                    reason: format!("expected records, got {other}"),
                }),
            })
            .collect(),
        other => Err(OdooError::Protocol {
            status: 200,
            reason: format!("expected a list of records, got {}", short(&other)),
        }),
    }
}

fn ids(value: Value) -> Result<Vec<i64>, OdooError> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_i64().ok_or_else(|| OdooError::Protocol {
                    status: 200,
                    reason: format!("expected record ids, got {}", short(v)),
                })
            })
            .collect(),
        other => Err(OdooError::Protocol {
            status: 200,
            reason: format!("expected a list of ids, got {}", short(&other)),
        }),
    }
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 80 {
        format!("{}...", &text[..text.floor_char_boundary(80)])
    } else {
        text
    }
}

async fn detect_version(
    http: &reqwest::Client,
    config: &ClientConfig,
) -> Result<ServerVersion, OdooError> {
    // Odoo 19+: GET /web/version (404 HTML on 18).
    let url = format!("{}/web/version", config.url);
    let answer = exchange(http.get(&url), &url, config).await?;
    let parsed = (answer.status == 200)
        .then(|| serde_json::from_slice::<Value>(&answer.body).ok())
        .flatten();
    if let Some(v) = parsed
        && let Some(major) = v
            .get("version_info")
            .and_then(|i| i.get(0))
            .and_then(parse_major)
    {
        let raw = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        return Ok(ServerVersion { major, raw });
    }
    // Every version: the JSON-RPC envelope on /web/webclient/version_info.
    let url = format!("{}/web/webclient/version_info", config.url);
    let body = json!({"jsonrpc": "2.0", "method": "call", "params": {}, "id": 0});
    let answer = exchange(http.post(&url).json(&body), &url, config).await?;
    let result = jsonrpc_result(answer)?;
    let major = result
        .get("server_version_info")
        .and_then(|i| i.get(0))
        .and_then(parse_major)
        .ok_or_else(|| OdooError::Protocol {
            status: 200,
            reason: format!("no server_version_info in {}", short(&result)),
        })?;
    let raw = result
        .get("server_version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(ServerVersion { major, raw })
}

/// `common.authenticate`: the uid, or `false` for refused credentials (not an error in Odoo).
async fn authenticate(http: &reqwest::Client, config: &ClientConfig) -> Result<i64, OdooError> {
    let url = format!("{}/jsonrpc", config.url);
    let body = json!({
        "jsonrpc": "2.0",
        "method": "call",
        "params": {
            "service": "common",
            "method": "authenticate",
            "args": [config.database, config.login, config.api_key.expose(), {}],
        },
        "id": 0,
    });
    let answer = exchange(http.post(&url).json(&body), &url, config).await?;
    match jsonrpc_result(answer)? {
        Value::Number(n) if n.as_i64().is_some_and(|uid| uid > 0) => {
            Ok(n.as_i64().unwrap_or_default())
        }
        Value::Bool(false) => Err(OdooError::Auth(format!(
            "login {:?} or its API key refused by database {:?} (expired or revoked key?)",
            config.login, config.database
        ))),
        other => Err(OdooError::Protocol {
            status: 200,
            reason: format!("authenticate answered {}", short(&other)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_parse_from_every_shape_odoo_uses() {
        assert_eq!(parse_major(&json!(18)), Some(18));
        assert_eq!(parse_major(&json!("19.0")), Some(19));
        assert_eq!(parse_major(&json!("saas~18.4")), Some(18));
        assert_eq!(parse_major(&json!("final")), None);
        assert_eq!(parse_major(&json!(null)), None);
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn jsonrpc_envelopes_are_read_as_odoo_writes_them() {
        assert_eq!(
            jsonrpc_result(answer(200, r#"{"jsonrpc":"2.0","id":1,"result":[1,2]}"#)).unwrap(),
            json!([1, 2])
        );
        // A method returning None: no result key at all.
        assert_eq!(
            jsonrpc_result(answer(200, r#"{"jsonrpc":"2.0","id":1}"#)).unwrap(),
            Value::Null
        );
        let err = jsonrpc_result(answer(
            200,
            r#"{"jsonrpc":"2.0","id":6,"error":{"code":200,"message":"Odoo Server Error","data":{"name":"odoo.exceptions.UserError","message":"You cannot validate a transfer if no quantities are reserved.","arguments":[],"context":{},"debug":"Traceback"}}}"#,
        ))
        .unwrap_err();
        assert_eq!(err.exception(), Some("UserError"));
        assert!(err.to_string().contains("no quantities are reserved"));
        let err = jsonrpc_result(answer(
            200,
            r#"{"jsonrpc":"2.0","id":6,"error":{"code":200,"message":"Odoo Server Error","data":{"name":"odoo.exceptions.AccessDenied","message":"Access Denied"}}}"#,
        ))
        .unwrap_err();
        assert!(matches!(err, OdooError::Auth(_)));
        for (status, body) in [
            (200, "<html><body>Bad gateway</body></html>"),
            (200, r#"{"jsonrpc":"2.0","result":"#),
            (200, "[1,2]"),
        ] {
            let err = jsonrpc_result(answer(status, body)).unwrap_err();
            assert!(matches!(err, OdooError::Protocol { .. }), "{body}: {err}");
        }
        let err = jsonrpc_result(answer(400, "<html>Bad Request</html>")).unwrap_err();
        assert_eq!(err.class(), super::super::ErrorClass::Permanent);
    }

    #[test]
    fn json2_answers_branch_on_status_then_name() {
        assert_eq!(json2_result(answer(200, "null")).unwrap(), Value::Null);
        assert_eq!(json2_result(answer(200, "[15]")).unwrap(), json!([15]));
        let err = json2_result(answer(
            422,
            r#"{"name":"odoo.exceptions.ValidationError","message":"lot required","arguments":[],"context":{},"debug":""}"#,
        ))
        .unwrap_err();
        assert_eq!(err.exception(), Some("ValidationError"));
        assert!(matches!(
            json2_result(answer(
                401,
                r#"{"name":"werkzeug.exceptions.Unauthorized","message":"Invalid apikey"}"#
            ))
            .unwrap_err(),
            OdooError::Auth(_)
        ));
        let err = json2_result(answer(415, "<html>Unsupported Media Type</html>")).unwrap_err();
        assert_eq!(err.class(), super::super::ErrorClass::Permanent);
        let err = json2_result(answer(500, "<html>Internal Server Error</html>")).unwrap_err();
        assert_eq!(err.class(), super::super::ErrorClass::Ambiguous);
        let err = json2_result(answer(200, "<html>")).unwrap_err();
        assert!(matches!(err, OdooError::Protocol { .. }));
    }

    #[test]
    fn versions_are_named_as_people_name_them() {
        let v = |major, raw: &str| ServerVersion {
            major,
            raw: raw.to_owned(),
        };
        assert_eq!(v(17, "17.0-20240101").label(), "17.0");
        assert_eq!(v(17, "saas~17.4+e").label(), "saas~17.4");
        assert_eq!(v(20, "").label(), "20.0");
        assert_eq!(v(16, "<script>").label(), "16.0");
    }

    #[test]
    fn the_api_key_never_shows() {
        let config = ClientConfig::new("https://x.example/", "db", "me", "0123secret", 1);
        assert!(!format!("{config:?}").contains("0123secret"));
        assert_eq!(config.url, "https://x.example");
    }
}
