//! An Odoo simulator speaking Odoo's real wire formats on `127.0.0.1:<port>`, for tests,
//! benchmarks and the demo: `/jsonrpc` (common + object services), `/json/2/<model>/<method>`,
//! `/web/health`, `/web/webclient/version_info` and, when simulating 19+, `/web/version`.
//!
//! Like Odoo's threaded server it answers `Connection: close`. Errors have Odoo's shapes:
//! HTTP 200 with an `error` object on JSON-RPC, status code + JSON object on JSON-2, HTML for
//! the few cases Odoo answers in HTML. It is built on hyper directly: this crate does not use
//! the appliance's HTTP framework.
//!
//! Today it implements the generic ORM methods (`search_read`, `read`, `search`,
//! `search_count`, `write`, `create`) with domains, Odoo's read format, `write_date` and
//! company scoping; Odoo's stock semantics (see `stock`); and faults on command ([`Fault`]).

pub mod load;
mod orm;
pub mod proxy;
mod stock;
pub mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::dataset::Dataset;
use store::{SimError, Tables};

/// Largest request body the simulator reads.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Who the simulated Odoo is.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Major version: 18 (JSON-RPC only) or 19 (JSON-2 and a deprecated JSON-RPC).
    pub version: u32,
    pub database: String,
    pub login: String,
    pub api_key: String,
    /// Whether the first delivery validated without `skip_sms` answers with the
    /// `confirm.stock.sms` wizard (stock_sms is auto-installed with stock + sms).
    pub sms_wizard: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            version: 18,
            database: "holdfast".into(),
            login: "holdfast@example.com".into(),
            api_key: "sim-api-key-0123456789".into(),
            sms_wizard: true,
        }
    }
}

const UID: i64 = 2;

struct Shared {
    config: SimConfig,
    tables: Mutex<Tables>,
    faults: Mutex<FaultQueue>,
    /// Added to every call (a WAN in front of Odoo).
    latency: Mutex<Duration>,
    /// The SMS wizard has not been answered yet.
    sms_pending: Mutex<bool>,
    /// Capacity cap (see [`Cloud::set_capacity`]).
    pace: Mutex<Pace>,
    /// Service times under concurrent load and serialization failures (see
    /// [`Cloud::set_load`]); off unless a test or benchmark turns it on.
    load: Mutex<Option<Arc<load::Load>>>,
    /// Model calls answered.
    calls: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct FaultQueue {
    queue: std::collections::VecDeque<Fault>,
}

/// A running simulator; stops when dropped or on [`Simulator::stop`]. It derefs to its
/// [`Cloud`], the records and the knobs tests turn.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    cloud: Cloud,
    stop: CancellationToken,
}

/// The simulated Odoo's state, shared by its HTTP server and in-process callers; cheap to
/// clone. It also answers calls in-process ([`crate::push::Odoo`]), without HTTP, which is
/// what the seeded reconciliation simulation drives.
#[derive(Clone, Debug)]
pub struct Cloud {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, truncated to the second (Odoo's `write_date`).
pub fn odoo_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl std::ops::Deref for Simulator {
    type Target = Cloud;
    fn deref(&self) -> &Cloud {
        &self.cloud
    }
}

impl Simulator {
    /// Starts a simulator holding `data` on `127.0.0.1:<free port>`.
    pub async fn start(config: SimConfig, data: &Dataset) -> std::io::Result<Simulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config, data).await
    }

    /// Starts a simulator holding `data` on `addr`.
    pub async fn start_on(
        addr: SocketAddr,
        config: SimConfig,
        data: &Dataset,
    ) -> std::io::Result<Simulator> {
        Self::serve(addr, Cloud::new(config, data)).await
    }

    /// Starts a simulator holding `tables` (e.g. read back from a state file) on `addr`.
    pub async fn start_with(
        addr: SocketAddr,
        config: SimConfig,
        tables: Tables,
    ) -> std::io::Result<Simulator> {
        Self::serve(addr, Cloud::with_tables_of(config, tables)).await
    }

    /// Serves `cloud` over HTTP on `addr`.
    pub async fn serve(addr: SocketAddr, cloud: Cloud) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        tokio::spawn(run_accept(listener, cloud.shared.clone(), stop.clone()));
        Ok(Simulator { addr, cloud, stop })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (also reachable through `Deref`).
    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Cloud {
    /// A simulated Odoo holding `data`, not yet served.
    pub fn new(config: SimConfig, data: &Dataset) -> Cloud {
        let mut tables = Tables::default();
        tables.load(data, &odoo_now());
        Cloud::with_tables_of(config, tables)
    }

    /// A simulated Odoo holding `tables`, shaped for the configured version's models (on
    /// 19: packagings as `product.uom`, `stock.package`, moves without `name`).
    pub fn with_tables_of(config: SimConfig, mut tables: Tables) -> Cloud {
        tables.prepare(config.version, &odoo_now());
        Cloud {
            shared: Arc::new(Shared {
                sms_pending: Mutex::new(config.sms_wizard),
                config,
                tables: Mutex::new(tables),
                faults: Mutex::default(),
                latency: Mutex::default(),
                pace: Mutex::default(),
                load: Mutex::default(),
                calls: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Runs `f` on the records, as another Odoo user would (edits stamp `write_date`
    /// themselves through [`odoo_now`]).
    pub fn with_tables<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        let mut tables = self.shared.tables.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut tables)
    }

    /// Cancels a picking from the cloud side (reservations released, moves cancelled).
    pub fn cancel_picking(&self, picking: i64) {
        self.with_tables(|t| stock::cancel(t, picking, &odoo_now()));
    }

    /// Validates a picking from the cloud side as it stands (lines as they are, no backorder
    /// question), as a user in Odoo's web client would.
    pub fn validate_picking(&self, picking: i64) -> Result<(), String> {
        let ctx = serde_json::Map::from_iter([
            ("skip_backorder".to_owned(), Value::Bool(true)),
            ("skip_sms".to_owned(), Value::Bool(true)),
        ]);
        self.with_tables(|t| {
            let mut sms = false;
            stock::button_validate(t, &[picking], &ctx, t.version(), &odoo_now(), &mut sms)
                .map(|_| ())
                .map_err(|e| e.message)
        })
    }

    /// Drops and redoes a picking's reservations, as Odoo's scheduler does: move lines are
    /// re-created with new ids.
    pub fn rereserve(&self, picking: i64) {
        self.with_tables(|t| {
            let now = odoo_now();
            stock::do_unreserve(t, picking, &now);
            stock::action_assign(t, picking, &now);
        });
    }

    /// Sets a quant's quantity from the cloud side (another site, a manual adjustment).
    pub fn set_quantity(&self, quant: i64, quantity: f64) -> bool {
        self.with_tables(|t| {
            t.write(
                "stock.quant",
                quant,
                serde_json::json!({"quantity": quantity}),
                &odoo_now(),
            )
        })
    }

    /// Archives a product from the cloud side.
    pub fn archive_product(&self, product: i64) -> bool {
        self.with_tables(|t| {
            t.write(
                "product.product",
                product,
                serde_json::json!({"active": false}),
                &odoo_now(),
            )
        })
    }

    /// Writes every record to `path` (JSON), for a later [`Simulator::start_with`].
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let doc = self.with_tables(|t| t.to_json());
        let tmp = path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&doc).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }

    /// Queues faults: each of the next HTTP requests takes one, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        let mut queue = self.shared.faults.lock().unwrap_or_else(|p| p.into_inner());
        queue.queue.extend(faults);
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.shared
            .faults
            .lock()
            .map(|q| q.queue.len())
            .unwrap_or(0)
    }

    /// Adds `latency` to every HTTP answer from now on.
    pub fn set_latency(&self, latency: Duration) {
        if let Ok(mut l) = self.shared.latency.lock() {
            *l = latency;
        }
    }

    /// Caps the HTTP calls served per second, as a saturated Odoo does: calls beyond the
    /// cap queue (their latency grows); `None` lifts the cap.
    pub fn set_capacity(&self, calls_per_second: Option<f64>) {
        if let Ok(mut p) = self.shared.pace.lock() {
            p.interval = calls_per_second
                .filter(|c| *c > 0.0)
                .map(|c| Duration::from_secs_f64(1.0 / c));
        }
    }

    /// Turns the load model on (`Some`, fresh counters) or off (`None`) for model calls
    /// over HTTP from now on: each call takes its kind's service time, stretched while more
    /// calls are in progress than the model has cores, and validations sharing products
    /// fail and retry as in Odoo (see [`load`]).
    pub fn set_load(&self, model: Option<load::LoadModel>) {
        let mut l = self.shared.load.lock().unwrap_or_else(|p| p.into_inner());
        *l = model.map(|m| Arc::new(load::Load::new(m)));
    }

    /// The load model's counters, while it is on.
    pub fn load_stats(&self) -> Option<load::LoadStats> {
        let l = self.shared.load.lock().unwrap_or_else(|p| p.into_inner());
        l.as_ref().map(|l| l.stats())
    }

    /// Model calls answered so far (HTTP and in-process).
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one call in-process (no HTTP, no faults, no latency), as JSON-2 would run it.
    pub fn execute(&self, call: crate::odoo::Call) -> Result<Value, crate::odoo::OdooError> {
        let crate::odoo::Call {
            model,
            method,
            ids,
            kwargs,
            context,
        } = call;
        self::call(
            &self.shared,
            &model,
            &method,
            ids.unwrap_or_default(),
            kwargs,
            context,
        )
        .map_err(|e| crate::odoo::OdooError::Server {
            name: e.name.to_owned(),
            message: e.message,
            status: None,
        })
    }
}

impl crate::push::Odoo for Cloud {
    fn call(
        &self,
        call: crate::odoo::Call,
    ) -> impl std::future::Future<Output = Result<Value, crate::odoo::OdooError>> + Send {
        std::future::ready(self.execute(call))
    }

    fn major(&self) -> u32 {
        self.shared.config.version
    }

    fn probe(
        &self,
    ) -> impl std::future::Future<Output = Result<(), crate::odoo::OdooError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// When the next call may start under a capacity cap.
#[derive(Debug, Default)]
struct Pace {
    interval: Option<Duration>,
    next: Option<tokio::time::Instant>,
}

async fn run_accept(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "simulator accept failed");
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let stop = stop.clone();
                async move { with_faults(&shared, req, &stop).await }
            });
            // Odoo's threaded server closes the connection after every answer.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A fault to inject into the next request(s).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer normally (to place the next fault later in a sequence of calls).
    Pass,
    /// Answer after an extra delay.
    Latency(Duration),
    /// Answer with this HTTP status and an HTML page (a proxy or a crashed worker).
    Status(u16),
    /// 429 Too Many Requests with `Retry-After` in seconds.
    TooManyRequests(u64),
    /// Close the connection without answering; nothing is processed.
    Reset,
    /// Never answer (until the simulator stops); nothing is processed.
    BlackHole,
    /// Process the call (and commit it), then close the connection without answering.
    CommitThenDrop,
    /// Answer 200 with an HTML page (a captive portal or a proxy's login page).
    HtmlPage,
    /// Process the call, then send only the first half of the answer and close.
    Truncated,
}

/// A body that sends its first half and then fails, so the connection closes mid-answer.
#[derive(Debug)]
struct TruncatedBody(Option<Bytes>);

impl hyper::body::Body for TruncatedBody {
    type Data = Bytes;
    type Error = Dropped;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Dropped>>> {
        std::task::Poll::Ready(Some(match self.0.take() {
            Some(half) => Ok(hyper::body::Frame::data(half)),
            None => Err(Dropped),
        }))
    }
}

type SimBody = http_body_util::Either<Full<Bytes>, TruncatedBody>;

/// Why a connection was closed without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

async fn with_faults(
    shared: &Shared,
    req: Request<Incoming>,
    stop: &CancellationToken,
) -> Result<Response<SimBody>, Dropped> {
    let full = |r: Response<Full<Bytes>>| r.map(http_body_util::Either::Left);
    let fault = {
        let mut faults = shared.faults.lock().unwrap_or_else(|p| p.into_inner());
        faults.queue.pop_front()
    };
    let latency = shared.latency.lock().map(|l| *l).unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let slot = {
        let mut pace = shared.pace.lock().unwrap_or_else(|p| p.into_inner());
        pace.interval.map(|interval| {
            let now = tokio::time::Instant::now();
            let slot = pace.next.filter(|n| *n > now).unwrap_or(now);
            pace.next = Some(slot + interval);
            slot
        })
    };
    if let Some(slot) = slot {
        tokio::time::sleep_until(slot).await;
    }
    match fault {
        None | Some(Fault::Pass) => Ok(full(handle(shared, req).await)),
        Some(Fault::Latency(d)) => {
            tokio::time::sleep(d).await;
            Ok(full(handle(shared, req).await))
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(full(html(
                status,
                status.canonical_reason().unwrap_or("Error"),
            )))
        }
        Some(Fault::TooManyRequests(secs)) => {
            let mut r = html(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests");
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            Ok(full(r))
        }
        Some(Fault::Reset) => Err(Dropped),
        Some(Fault::HtmlPage) => Ok(full(html(StatusCode::OK, "Sign in to continue"))),
        Some(Fault::Truncated) => {
            let answer = handle(shared, req).await;
            let (mut parts, body) = answer.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            // Promise the whole length, deliver half.
            if let Ok(v) = bytes.len().to_string().parse() {
                parts.headers.insert(hyper::header::CONTENT_LENGTH, v);
            }
            let half = bytes.slice(..bytes.len() / 2);
            Ok(Response::from_parts(
                parts,
                http_body_util::Either::Right(TruncatedBody(Some(half))),
            ))
        }
        Some(Fault::BlackHole) => {
            stop.cancelled().await;
            Err(Dropped)
        }
        Some(Fault::CommitThenDrop) => {
            let _ = handle(shared, req).await;
            Err(Dropped)
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", value.to_string())
}

fn html(status: StatusCode, title: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        "text/html; charset=utf-8",
        format!("<!doctype html>\n<html lang=en>\n<title>{title}</title>\n<h1>{title}</h1>\n"),
    )
}

fn is_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/web/health") => json_response(StatusCode::OK, &json!({"status": "pass"})),
        (Method::GET, "/web/version") if shared.config.version >= 19 => json_response(
            StatusCode::OK,
            &json!({"version_info": version_info(&shared.config), "version": format!("{}.0+e", shared.config.version)}),
        ),
        (Method::POST, "/web/webclient/version_info") => {
            let id = read_json(req)
                .await
                .ok()
                .and_then(|v| v.get("id").cloned())
                .unwrap_or(Value::Null);
            json_response(
                StatusCode::OK,
                &json!({"jsonrpc": "2.0", "id": id, "result": version(&shared.config)}),
            )
        }
        (Method::POST, "/jsonrpc") => {
            if !is_json(&req) {
                return html(StatusCode::BAD_REQUEST, "400 Bad Request");
            }
            match read_json(req).await {
                Ok(body) => {
                    if let Err(e) = jsonrpc_load(shared, &body).await {
                        let id = body.get("id").cloned().unwrap_or(Value::Null);
                        return rpc_error(&shared.config, &id, &e);
                    }
                    jsonrpc(shared, body)
                }
                Err(_) => html(StatusCode::BAD_REQUEST, "400 Bad Request"),
            }
        }
        (Method::POST, p) if p.starts_with("/json/2/") && shared.config.version >= 19 => {
            json2(shared, req, p.trim_start_matches("/json/2/").to_owned()).await
        }
        _ => html(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}

/// The load model's time for a model call (when it is on): the service time under the load
/// of the moment, or the serialization failure Odoo gives after its own retries.
async fn under_load(
    shared: &Shared,
    model: &str,
    method: &str,
    ids: &[i64],
) -> Result<(), SimError> {
    let Some(load) = shared
        .load
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    else {
        return Ok(());
    };
    let kind = load::CallKind::of(method);
    let products =
        if kind == load::CallKind::Validate && model == "stock.picking" && load.model().conflicts {
            let tables = shared.tables.lock().unwrap_or_else(|p| p.into_inner());
            load::products_of(&tables, ids)
        } else {
            std::collections::BTreeSet::new()
        };
    load.serve(kind, &products).await
}

/// [`under_load`] for a JSON-RPC body: only `object.execute_kw` calls are model calls.
async fn jsonrpc_load(shared: &Shared, body: &Value) -> Result<(), SimError> {
    let params = body.get("params");
    let field = |name: &str| params.and_then(|p| p.get(name)).and_then(Value::as_str);
    if field("service") != Some("object") || field("method") != Some("execute_kw") {
        return Ok(());
    }
    let args = params.and_then(|p| p.get("args")).and_then(Value::as_array);
    let arg = |i: usize| args.and_then(|a| a.get(i));
    let (Some(model), Some(method)) = (
        arg(3).and_then(Value::as_str),
        arg(4).and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    let ids: Vec<i64> = match arg(5).and_then(|p| p.get(0)) {
        Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_i64).collect(),
        Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
        _ => Vec::new(),
    };
    under_load(shared, model, method, &ids).await
}

async fn read_json(req: Request<Incoming>) -> Result<Value, ()> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| ())?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|_| ())
}

fn version_info(config: &SimConfig) -> Value {
    json!([config.version, 0, 0, "final", 0, ""])
}

fn version(config: &SimConfig) -> Value {
    json!({
        "server_version": format!("{}.0-20251101", config.version),
        "server_version_info": version_info(config),
        "server_serie": format!("{}.0", config.version),
        "protocol_version": 1,
    })
}

fn rpc_error(config: &SimConfig, id: &Value, error: &SimError) -> Response<Full<Bytes>> {
    // Odoo 19 reports code 0 where 18 reported 200.
    let code = if config.version >= 19 { 0 } else { 200 };
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": code, "message": "Odoo Server Error",
            "data": {"name": error.name, "message": error.message, "arguments": [error.message], "context": {},
                     "debug": format!("Traceback (most recent call last):\n{}: {}", error.name, error.message)},
        }}),
    )
}

fn jsonrpc(shared: &Shared, body: Value) -> Response<Full<Bytes>> {
    let config = &shared.config;
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let params = body.get("params").cloned().unwrap_or(Value::Null);
    let service = params
        .get("service")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let method = params
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let args = params
        .get("args")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let result = match (service, method) {
        ("common", "version") => Ok(version(config)),
        ("common", "authenticate" | "login") => {
            let ok = args.first().and_then(Value::as_str) == Some(config.database.as_str())
                && args.get(1).and_then(Value::as_str) == Some(config.login.as_str())
                && args.get(2).and_then(Value::as_str) == Some(config.api_key.as_str());
            // Refused credentials are `false`, not an error.
            Ok(if ok { json!(UID) } else { Value::Bool(false) })
        }
        ("object", "execute_kw") => execute_kw(shared, &args),
        _ => Err(SimError {
            name: "werkzeug.exceptions.NotFound",
            message: format!("unknown service/method {service}.{method}"),
        }),
    };
    match result {
        // A method that returns None: no `result` key at all.
        Ok(Value::Null) => json_response(StatusCode::OK, &json!({"jsonrpc": "2.0", "id": id})),
        Ok(value) => json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id, "result": value}),
        ),
        Err(e) => rpc_error(config, &id, &e),
    }
}

fn execute_kw(shared: &Shared, args: &[Value]) -> Result<Value, SimError> {
    let config = &shared.config;
    let access_denied = || SimError {
        name: "odoo.exceptions.AccessDenied",
        message: "Access Denied".into(),
    };
    if args.first().and_then(Value::as_str) != Some(config.database.as_str())
        || args.get(1).and_then(Value::as_i64) != Some(UID)
        || args.get(2).and_then(Value::as_str) != Some(config.api_key.as_str())
    {
        return Err(access_denied());
    }
    let model = args
        .get(3)
        .and_then(Value::as_str)
        .ok_or_else(|| SimError::value("model name missing"))?;
    let method = args
        .get(4)
        .and_then(Value::as_str)
        .ok_or_else(|| SimError::value("method name missing"))?;
    let positional = args
        .get(5)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut kwargs = args
        .get(6)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let context = match kwargs.remove("context") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    // `execute_kw` looks the model up before anything else (odoo/service/model.py).
    let known = shared
        .tables
        .lock()
        .map(|t| t.has_model(model))
        .unwrap_or_else(|p| p.into_inner().has_model(model));
    if !known {
        return Err(SimError::user(format!("Object {model} doesn't exist")));
    }
    if method == "create" && positional.is_empty() {
        // Odoo 18's call_kw reads args[0] for create.
        return Err(SimError {
            name: "builtins.IndexError",
            message: "tuple index out of range".into(),
        });
    }
    let (ids, rest) = if orm::is_multi(method) {
        let ids = match positional.first() {
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_i64).collect(),
            Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
            _ => Vec::new(),
        };
        (ids, positional.get(1..).unwrap_or_default().to_vec())
    } else {
        (Vec::new(), positional)
    };
    orm::name_positional(method, &rest, &mut kwargs)?;
    let single_create =
        method == "create" && matches!(kwargs.get("vals_list"), Some(Value::Object(_)));
    let result = call(shared, model, method, ids, kwargs, context)?;
    // `create` with one dict answers one id on JSON-RPC.
    Ok(match (single_create, result) {
        (true, Value::Array(ids)) if ids.len() == 1 => ids[0].clone(),
        (_, other) => other,
    })
}

/// Runs a method with Odoo's refusals for private methods and unknown models/methods.
fn call(
    shared: &Shared,
    model: &str,
    method: &str,
    ids: Vec<i64>,
    kwargs: Map<String, Value>,
    context: Map<String, Value>,
) -> Result<Value, SimError> {
    if method.starts_with('_') {
        return Err(SimError::access(format!(
            "Private methods (such as '{method}') cannot be called remotely."
        )));
    }
    let now = odoo_now();
    let mut tables = shared.tables.lock().unwrap_or_else(|p| p.into_inner());
    if !tables.has_model(model) {
        // JSON-2's answer (odoo/addons/rpc/controllers/json2.py); JSON-RPC refused it
        // before (see `execute_kw`).
        return Err(SimError {
            name: "werkzeug.exceptions.NotFound",
            message: format!("the model '{model}' does not exist"),
        });
    }
    shared
        .calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let orm_call = orm::OrmCall {
        model,
        method,
        ids,
        kwargs,
        context,
        now: &now,
    };
    let mut sms_pending = shared.sms_pending.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(result) = stock::execute(
        &mut tables,
        &orm_call,
        shared.config.version,
        &mut sms_pending,
    ) {
        return result;
    }
    orm::execute(&mut tables, &orm_call).unwrap_or_else(|| {
        Err(SimError {
            name: "builtins.AttributeError",
            message: format!("The method '{method}' does not exist on the model '{model}'"),
        })
    })
}

async fn json2(shared: &Shared, req: Request<Incoming>, route: String) -> Response<Full<Bytes>> {
    let config = &shared.config;
    if !is_json(&req) {
        return html(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "415 Unsupported Media Type",
        );
    }
    let headers = req.headers();
    let bearer = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim().to_owned());
    let database = headers
        .get("x-odoo-database")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if database.as_deref().is_some_and(|d| d != config.database) {
        return html(StatusCode::NOT_FOUND, "404 Not Found");
    }
    if bearer.as_deref() != Some(config.api_key.as_str()) {
        let mut r = error2(
            StatusCode::UNAUTHORIZED,
            &SimError {
                name: "werkzeug.exceptions.Unauthorized",
                message: "Invalid apikey".into(),
            },
        );
        if let Ok(v) = "Bearer".parse() {
            r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
        }
        return r;
    }
    let Some((model, method)) = route.split_once('/') else {
        return html(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let (model, method) = (model.to_owned(), method.to_owned());
    let body = match read_json(req).await {
        Ok(body) => body,
        Err(()) => {
            return error2(
                StatusCode::BAD_REQUEST,
                &SimError {
                    name: "werkzeug.exceptions.BadRequest",
                    message: "invalid JSON".into(),
                },
            );
        }
    };
    // A JSON array body is silently ignored by Odoo 19.
    let Value::Object(mut kwargs) = body else {
        return json_response(StatusCode::OK, &json!([]));
    };
    let ids: Vec<i64> = kwargs
        .remove("ids")
        .and_then(|v| {
            v.as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
        })
        .unwrap_or_default();
    let context = match kwargs.remove("context") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    let served = match under_load(shared, &model, &method, &ids).await {
        Ok(()) => call(shared, &model, &method, ids, kwargs, context),
        Err(e) => Err(e),
    };
    match served {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(e) => {
            let status = match e.name {
                "odoo.exceptions.AccessError" => StatusCode::FORBIDDEN,
                "odoo.exceptions.MissingError"
                | "werkzeug.exceptions.NotFound"
                | "builtins.AttributeError" => StatusCode::NOT_FOUND,
                "odoo.exceptions.UserError"
                | "odoo.exceptions.ValidationError"
                | "builtins.TypeError" => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error2(status, &e)
        }
    }
}

fn error2(status: StatusCode, e: &SimError) -> Response<Full<Bytes>> {
    // A werkzeug HTTP exception's arguments are its description and its status code (Odoo
    // 19: `["the model 'x' does not exist", 404]`); Odoo's own exceptions carry the message.
    let arguments = if e.name.starts_with("werkzeug.exceptions.") {
        json!([e.message, status.as_u16()])
    } else {
        json!([e.message])
    };
    json_response(
        status,
        &json!({"name": e.name, "message": e.message, "arguments": arguments, "context": {}, "debug": ""}),
    )
}
