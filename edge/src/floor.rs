//! The floor service: devices, operators, sessions and their steps, over the store.
//!
//! Every transport (the HTTP device API today; serial, TCP and MQTT scanners later) comes
//! through here, so a scan means the same thing wherever it was made. A write request runs:
//!
//! 1. if the device already sent this idempotency key, the first answer is given again (a
//!    key reused for a different request is refused);
//! 2. the session's state machine ([`crate::workflow`]) reads the view and decides;
//! 3. a refused input writes nothing; an accepted one is written as one [`StepWrite`]: new
//!    session state, journal entries and the answer under the key, in one transaction. The
//!    device hears "ok" only after that commit.
//!
//! Concurrent steps on one session are serialised by the session's version: the second
//! writer finds the version moved and its step is not written (it gets the stored answer if
//! it was a retry, else `session_busy`).

use std::sync::Arc;
use std::time::Duration;

use holdfast_devices::gs1::{DecodeOptions, ScanData};
use holdfast_devices::scan::RawScan;
use holdfast_sync::ops::BackorderChoice;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::DeviceConfig;
use crate::resolve::Resolved;
use crate::store::{
    Current, FloorCmd, NewEntry, OperatorRow, Reader, RequestRecord, SessionRow, StepWrite, Store,
    StoreError,
};
use crate::workflow::{
    self, Cx, FloorPolicy, Input, Machine, PickState, ReceiveState, Scan, StepError, Workflow,
};

pub mod lockout;
mod secrets;

use lockout::{Attempt, Kind, Locked, SignInGuard};
pub use lockout::{LockoutPolicy, LockoutStatus};
pub use secrets::{hash_pin, new_token, sha256_hex, sha256_hex_of, verify_pin};

/// Longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 128;

/// A write request from a device.
#[derive(Clone, Debug)]
pub enum FloorRequest {
    Login(LoginBy),
    Logout,
    Start {
        workflow: Workflow,
        picking_id: Option<i64>,
    },
    Resume {
        session: String,
    },
    Cancel {
        session: String,
    },
    /// An input to a session (the device's current one when `session` is `None`).
    Input {
        session: Option<String>,
        input: RawInput,
    },
}

/// How an operator signs in.
#[derive(Clone)]
pub enum LoginBy {
    Badge(String),
    Pin { operator: String, pin: String },
}

impl std::fmt::Debug for LoginBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginBy::Badge(_) => f.write_str("Badge(***)"),
            LoginBy::Pin { operator, .. } => write!(f, "Pin({operator}, ***)"),
        }
    }
}

/// A session input as the device sent it.
#[derive(Clone, Debug)]
pub enum RawInput {
    Scan(Vec<u8>),
    Quantity(f64),
    Validate(Option<BackorderChoice>),
    Finish,
}

/// The answer to a device: an HTTP-like status and a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// The answer was given before, to the same idempotency key.
    pub replayed: bool,
}

impl Answer {
    fn new(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body,
            replayed: false,
        }
    }

    /// A failure in the API's error shape, `{"error": {"code", "message"}}`.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
        let message = message.into();
        Answer::new(
            status,
            json!({
                "status": "error", "code": code, "message": message,
                "error": {"code": code, "message": message},
            }),
        )
    }

    fn from_store(e: StoreError) -> Answer {
        let (status, code) = store_error_code(&e);
        Answer::error(status, code, e.to_string())
    }
}

/// The HTTP status and stable code a device sees for a store failure (one table for the
/// floor and the HTTP layer).
pub fn store_error_code(e: &StoreError) -> (u16, &'static str) {
    match e {
        StoreError::Full => (507, "store_full"),
        StoreError::ReadOnly => (503, "store_read_only"),
        StoreError::Closed => (503, "shutting_down"),
        StoreError::Busy => (503, "store_busy"),
        StoreError::NotFound(_) => (404, "not_found"),
        StoreError::Invalid(_) => (422, "invalid_operation"),
        StoreError::Conflict(_) => (409, "conflict"),
        StoreError::PickingBusy(_) => (409, "picking_busy"),
        _ => (500, "store_error"),
    }
}

/// Who is asking, and under which idempotency key.
#[derive(Clone, Debug)]
pub struct Caller {
    pub device: String,
    /// Required on writes from the HTTP API; scanners on other transports derive one.
    pub key: Option<String>,
    /// Digest of the request, to refuse a key reused for a different request.
    pub fingerprint: String,
}

/// A session as devices see it.
#[derive(Clone, Debug, Serialize)]
pub struct SessionView {
    pub id: String,
    pub workflow: Workflow,
    pub state: String,
    pub device: String,
    pub operator: String,
    pub picking: Option<Value>,
    pub expect: workflow::Expect,
    pub prompt: String,
    /// The bin in use (pick source, count bin, transfer source, receive put-away).
    pub location: Option<String>,
    /// The line or item in hand.
    pub current: Option<Value>,
    pub version: i64,
}

/// The floor service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Floor {
    inner: Arc<FloorInner>,
}

#[derive(Debug)]
struct FloorInner {
    store: Store,
    policy: FloorPolicy,
    decode: DecodeOptions,
    configured: Vec<DeviceConfig>,
    /// Failed sign-ins per device: (count, locked until).
    /// Sign-in lock-out, per device and per site, for every transport.
    guard: SignInGuard,
    /// Labels printed by steps (receipts' lot/serial labels), when printers are configured.
    printing: std::sync::OnceLock<crate::printing::Printing>,
}

/// Whether a step's receipts print their lot labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Labels {
    None,
    Receipts,
}

fn locked_answer(locked: &Locked) -> Answer {
    Answer::error(429, "too_many_attempts", locked.message())
}

fn operator_json(op: &OperatorRow) -> Value {
    json!({"id": op.id, "name": op.name, "language": op.language})
}

impl Floor {
    pub fn new(
        store: Store,
        policy: FloorPolicy,
        gs1_separator: Option<char>,
        configured: Vec<DeviceConfig>,
    ) -> Floor {
        Floor {
            inner: Arc::new(FloorInner {
                store,
                policy,
                decode: DecodeOptions {
                    separator: gs1_separator,
                },
                configured,
                guard: SignInGuard::new(LockoutPolicy::default()),
                printing: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Lets steps print labels (receipts' lot/serial labels when `printing.receive_labels`).
    pub fn set_printing(&self, printing: crate::printing::Printing) {
        let _ = self.inner.printing.set(printing);
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn policy(&self) -> FloorPolicy {
        self.inner.policy
    }

    /// The device a bearer token belongs to: configured devices (compared in constant time),
    /// then issued ones (by digest).
    pub fn authenticate(&self, token: &[u8]) -> Result<Option<String>, StoreError> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for device in &self.inner.configured {
            if bool::from(device.token.expose().as_bytes().ct_eq(token)) {
                found = Some(device.id.clone());
            }
        }
        if found.is_some() {
            return Ok(found);
        }
        // Tokens are 256-bit random: looking one up by its digest leaks nothing usable.
        let digest = sha256_hex(token);
        self.inner.store.read(|r| r.device_by_token(&digest))
    }

    /// Who is signed in on a device, and its current session.
    pub fn whoami(&self, device: &str) -> Answer {
        let result = self.inner.store.read(|r| {
            let Some(login) = r.device_login(device)? else {
                return Ok(Answer::new(
                    200,
                    json!({"device": device, "operator": null, "session": null}),
                ));
            };
            let operator = r.operator(&login.operator)?;
            let session = match &login.session_id {
                Some(id) => r.session(id)?.filter(|s| s.state == "active"),
                None => None,
            };
            let session = session.map(|s| self.view(r, &s)).transpose()?;
            let open = self.open_views(r, &login.operator)?;
            Ok(Answer::new(
                200,
                json!({
                    "device": device,
                    "operator": operator.as_ref().map(operator_json),
                    "session": session,
                    "sessions": open,
                }),
            ))
        });
        result.unwrap_or_else(Answer::from_store)
    }

    /// The handheld language of the operator signed in on `device` (`None`: as the device
    /// asks), kept with the operator: it follows them to any handheld. Setting it is
    /// idempotent (the same value twice is the same state), so it takes no idempotency key.
    pub async fn set_operator_language(&self, device: &str, language: Option<&str>) -> Answer {
        let language = match crate::i18n::Lang::choice(language) {
            Ok(l) => l.map(|l| l.code().to_owned()),
            Err(e) => return Answer::error(400, "bad_request", e),
        };
        let login = match self.inner.store.read(|r| r.device_login(device)) {
            Ok(Some(login)) => login,
            Ok(None) => {
                return Answer::error(
                    409,
                    "not_signed_in",
                    "sign in first: the language is kept with the operator",
                );
            }
            Err(e) => return Answer::from_store(e),
        };
        let cmd = FloorCmd::OperatorLanguage {
            id: login.operator.clone(),
            language: language.clone(),
        };
        match self.inner.store.floor(cmd).await {
            Ok(_) => Answer::new(
                200,
                json!({"operator": login.operator, "language": language}),
            ),
            Err(e) => Answer::from_store(e),
        }
    }

    /// One session, as its operator sees it.
    pub fn session(&self, device: &str, id: &str) -> Answer {
        let result = self.inner.store.read(|r| {
            let Some(login) = r.device_login(device)? else {
                return Ok(not_signed_in());
            };
            match r.session(id)? {
                Some(s) if s.operator == login.operator => {
                    Ok(Answer::new(200, json!({"session": self.view(r, &s)?})))
                }
                _ => Ok(Answer::error(404, "not_found", "no such session of yours")),
            }
        });
        result.unwrap_or_else(Answer::from_store)
    }

    fn open_views(&self, r: &Reader<'_>, operator: &str) -> Result<Vec<SessionView>, StoreError> {
        r.open_sessions(Some(operator))?
            .iter()
            .map(|s| self.view(r, s))
            .collect()
    }

    /// Builds what a device shows of a session.
    fn view(&self, r: &Reader<'_>, row: &SessionRow) -> Result<SessionView, StoreError> {
        let machine: Machine = serde_json::from_str(&row.data)
            .map_err(|e| StoreError::Data(format!("session {}: {e}", row.id)))?;
        let cx = Cx {
            reader: r,
            policy: self.inner.policy,
        };
        let picking = match row.picking_id {
            Some(id) => r.picking_header(id)?.map(
                |(name, state, kind)| json!({"id": id, "name": name, "state": state, "kind": kind}),
            ),
            None => None,
        };
        let name = |id: Option<i64>| -> Result<Option<String>, StoreError> {
            Ok(match id {
                Some(id) => r.location(id)?.map(|l| l.name),
                None => None,
            })
        };
        let product = |id: i64| -> Result<String, StoreError> {
            Ok(r.product(id)?.map(|p| p.name).unwrap_or_default())
        };
        // The bin in use, and the line or item in hand: (product, lot, quantity, move).
        type InHand<'a> = (i64, &'a Option<String>, Option<f64>, Option<i64>);
        let (location_id, in_hand): (Option<i64>, Option<InHand<'_>>) = match &machine {
            Machine::Pick(PickState {
                location_id, line, ..
            })
            | Machine::Receive(ReceiveState {
                dest_location_id: location_id,
                line,
                ..
            }) => (
                *location_id,
                line.as_ref()
                    .map(|l| (l.product_id, &l.lot_name, Some(l.quantity), Some(l.move_id))),
            ),
            Machine::Count(s) => (
                s.location_id,
                s.counting
                    .as_ref()
                    .map(|i| (i.product_id, &i.lot_name, None, None)),
            ),
            Machine::Transfer(s) => (
                s.from_location_id,
                s.item
                    .as_ref()
                    .map(|i| (i.product_id, &i.lot_name, Some(i.quantity), None)),
            ),
        };
        let location = name(location_id)?;
        let current = match in_hand {
            Some((product_id, lot_name, quantity, move_id)) => {
                let mut item = json!({
                    "product_id": product_id, "product": product(product_id)?, "lot_name": lot_name,
                });
                if let Some(q) = quantity {
                    item["quantity"] = json!(q);
                }
                if let Some(m) = move_id {
                    item["move_id"] = json!(m);
                }
                Some(item)
            }
            None => None,
        };
        let active = row.state == "active";
        Ok(SessionView {
            id: row.id.clone(),
            workflow: machine.workflow(),
            state: row.state.clone(),
            device: row.device.clone(),
            operator: row.operator.clone(),
            picking,
            expect: if active {
                machine.expect(&self.inner.policy)
            } else {
                workflow::Expect::Nothing
            },
            prompt: if active {
                machine.prompt(&cx)?
            } else {
                format!("Session {}", row.state)
            },
            location,
            current,
            version: row.version,
        })
    }

    /// Handles a write request, exactly once per idempotency key.
    pub async fn handle(&self, caller: &Caller, request: FloorRequest) -> Answer {
        // Input (a scan) looks for its key in the read it decides in: one snapshot per scan.
        if let Some(key) = caller
            .key
            .as_ref()
            .filter(|_| !matches!(request, FloorRequest::Input { .. }))
        {
            match self.replay(caller, key) {
                Ok(Some(answer)) => return answer,
                Ok(None) => {}
                Err(e) => return Answer::from_store(e),
            }
        }
        let answer = match request {
            FloorRequest::Login(by) => self.login(caller, by).await,
            FloorRequest::Logout => self.logout(caller).await,
            FloorRequest::Start {
                workflow,
                picking_id,
            } => self.start(caller, workflow, picking_id).await,
            FloorRequest::Resume { session } => self.resume(caller, &session).await,
            FloorRequest::Cancel { session } => self.cancel(caller, &session).await,
            FloorRequest::Input { session, input } => {
                self.input(caller, session.as_deref(), input).await
            }
        };
        match answer {
            Ok(answer) => answer,
            // Lost a race: if it was against the same key, that answer stands.
            Err(StoreError::Conflict(message)) => match &caller.key {
                Some(key) => match self.replay(caller, key) {
                    Ok(Some(answer)) => answer,
                    Ok(None) => Answer::error(409, "session_busy", message),
                    Err(e) => Answer::from_store(e),
                },
                None => Answer::error(409, "session_busy", message),
            },
            Err(e) => Answer::from_store(e),
        }
    }

    /// The answer already given to this key, with the session as it is now.
    fn replay(&self, caller: &Caller, key: &str) -> Result<Option<Answer>, StoreError> {
        self.inner.store.read(|r| self.replay_in(r, caller, key))
    }

    /// [`Floor::replay`] within a read.
    fn replay_in(
        &self,
        r: &Reader<'_>,
        caller: &Caller,
        key: &str,
    ) -> Result<Option<Answer>, StoreError> {
        let Some(stored) = r.stored_answer(&caller.device, key)? else {
            return Ok(None);
        };
        if stored.fingerprint != caller.fingerprint {
            return Ok(Some(Answer::error(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request; use a new key per request",
            )));
        }
        let mut body: Value = serde_json::from_str(&stored.response)
            .map_err(|e| StoreError::Data(format!("stored answer: {e}")))?;
        self.refresh_session(r, &mut body)?;
        Ok(Some(Answer {
            status: stored.status,
            body,
            replayed: true,
        }))
    }

    /// Puts the session's current view into an answer body that names a session.
    fn refresh_session(&self, r: &Reader<'_>, body: &mut Value) -> Result<(), StoreError> {
        let id = body
            .get("session_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        if let Some(id) = id
            && let Some(row) = r.session(&id)?
        {
            body["session"] = serde_json::to_value(self.view(r, &row)?)
                .map_err(|e| StoreError::Data(e.to_string()))?;
        }
        Ok(())
    }

    fn record(caller: &Caller, status: u16, body: &Value) -> Option<RequestRecord> {
        caller.key.as_ref().map(|key| RequestRecord {
            device: caller.device.clone(),
            key: key.clone(),
            fingerprint: caller.fingerprint.clone(),
            status,
            response: body.to_string(),
        })
    }

    /// The site's sign-in lock-out policy (`[floor]`).
    pub fn set_lockout(&self, policy: LockoutPolicy) {
        self.inner.guard.set_policy(policy);
    }

    /// Sign-in lock-out figures, for status.
    pub fn lockout(&self) -> LockoutStatus {
        self.inner.guard.status()
    }

    async fn login(&self, caller: &Caller, by: LoginBy) -> Result<Answer, StoreError> {
        // Counted before the lookup, so parallel guesses count too.
        match self.inner.guard.attempt(&caller.device, Kind::SignIn) {
            Ok(attempt) => self.login_counted(caller, by, attempt).await,
            Err(locked) => Ok(locked_answer(&locked)),
        }
    }

    async fn login_counted(
        &self,
        caller: &Caller,
        by: LoginBy,
        attempt: Attempt<'_>,
    ) -> Result<Answer, StoreError> {
        let operator = match &by {
            LoginBy::Badge(badge) => self.inner.store.read(|r| r.operator_by_badge(badge))?,
            LoginBy::Pin { operator, pin } => {
                let row = self
                    .inner
                    .store
                    .read(|r| r.operator(operator))?
                    .filter(|o| o.active);
                let hash = row.as_ref().and_then(|o| o.pin_hash.clone());
                let pin = pin.clone();
                // argon2 takes tens of milliseconds by design: keep it off the async workers.
                let ok = tokio::task::spawn_blocking(move || match hash {
                    Some(hash) => verify_pin(&pin, &hash),
                    None => false,
                })
                .await
                .unwrap_or(false);
                row.filter(|_| ok)
            }
        };
        let Some(operator) = operator else {
            tracing::warn!(device = %caller.device, "operator sign-in refused");
            return Ok(Answer::error(
                401,
                "login_failed",
                "unknown badge, or wrong operator or PIN",
            ));
        };
        attempt.succeeded();
        let sessions = self
            .inner
            .store
            .read(|r| self.open_views(r, &operator.id))?;
        let body = json!({
            "status": "ok",
            "code": "signed_in",
            "message": format!("Hello {}", operator.name),
            "operator": operator_json(&operator),
            "sessions": sessions,
        });
        // Sign-ins are not kept under their idempotency key: the request's digest would keep
        // a PIN or badge guessable on disk, and signing in twice is harmless.
        self.inner
            .store
            .floor(FloorCmd::Login {
                device: caller.device.clone(),
                operator: operator.id.clone(),
                request: None,
            })
            .await?;
        tracing::info!(device = %caller.device, operator = %operator.id, "operator signed in");
        Ok(Answer::new(200, body))
    }

    async fn logout(&self, caller: &Caller) -> Result<Answer, StoreError> {
        let body = json!({"status": "ok", "code": "signed_out", "message": "Signed out"});
        self.inner
            .store
            .floor(FloorCmd::Logout {
                device: caller.device.clone(),
                request: Self::record(caller, 200, &body),
            })
            .await?;
        Ok(Answer::new(200, body))
    }

    fn signed_in(&self, device: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .inner
            .store
            .read(|r| r.device_login(device))?
            .map(|l| l.operator))
    }

    async fn start(
        &self,
        caller: &Caller,
        workflow: Workflow,
        picking_id: Option<i64>,
    ) -> Result<Answer, StoreError> {
        let Some(operator) = self.signed_in(&caller.device)? else {
            return Ok(not_signed_in());
        };
        // An open session of the same operator on this picking is resumed, not duplicated.
        if let Some(picking_id) = picking_id {
            let open = self
                .inner
                .store
                .read(|r| r.open_session_of_picking(picking_id))?;
            if let Some(open) = open {
                if open.operator == operator {
                    return self.resume(caller, &open.id).await;
                }
                return Ok(Answer::error(
                    409,
                    "picking_busy",
                    format!(
                        "this picking is open on device {} by operator {}",
                        open.device, open.operator
                    ),
                ));
            }
        }
        let started = self.inner.store.read(|r| {
            let cx = Cx {
                reader: r,
                policy: self.inner.policy,
            };
            match workflow::start(&cx, workflow, picking_id) {
                Ok(ok) => Ok(Ok(ok)),
                Err(StepError::Refused(refusal)) => Ok(Err(refusal)),
                Err(StepError::Store(e)) => Err(e),
            }
        })?;
        let (machine, message) = match started {
            Ok(ok) => ok,
            Err(refusal) => {
                return Ok(Answer::error(422, refusal.code, refusal.message));
            }
        };
        let id = Uuid::now_v7().to_string();
        let row = SessionRow {
            id: id.clone(),
            device: caller.device.clone(),
            operator,
            workflow: workflow.as_str().into(),
            picking_id: machine.picking_id(),
            state: "active".into(),
            data: serde_json::to_string(&machine).map_err(|e| StoreError::Data(e.to_string()))?,
            version: 1,
            created_at: 0,
            updated_at: 0,
        };
        let body = json!({
            "status": "ok", "code": "started", "message": message,
            "session_id": id, "entries": [],
        });
        let current = Current::Set {
            device: caller.device.clone(),
            session: Some(id.clone()),
        };
        self.write_session(caller, row, None, body, 201, current)
            .await
    }

    async fn resume(&self, caller: &Caller, id: &str) -> Result<Answer, StoreError> {
        let mut row = match self.inner.store.read(|r| {
            let Some(login) = r.device_login(&caller.device)? else {
                return Ok(Err(not_signed_in()));
            };
            own_open_session(r, &login.operator, id)
        })? {
            Ok(row) => row,
            Err(answer) => return Ok(answer),
        };
        let expected = row.version;
        row.version += 1;
        row.device = caller.device.clone();
        let body = json!({
            "status": "ok", "code": "resumed", "message": "Session resumed",
            "session_id": id, "entries": [],
        });
        let current = Current::Set {
            device: caller.device.clone(),
            session: Some(id.to_owned()),
        };
        self.write_session(caller, row, Some(expected), body, 200, current)
            .await
    }

    async fn cancel(&self, caller: &Caller, id: &str) -> Result<Answer, StoreError> {
        let mut row = match self.inner.store.read(|r| {
            let Some(login) = r.device_login(&caller.device)? else {
                return Ok(Err(not_signed_in()));
            };
            own_open_session(r, &login.operator, id)
        })? {
            Ok(row) => row,
            Err(answer) => return Ok(answer),
        };
        let expected = row.version;
        row.version += 1;
        row.state = "cancelled".into();
        let body = json!({
            "status": "ok", "code": "cancelled",
            "message": "Session cancelled; what was recorded stays in the journal",
            "session_id": id, "entries": [],
        });
        // The store clears whichever device pointed at it.
        let current = Current::Keep;
        self.write_session(caller, row, Some(expected), body, 200, current)
            .await
    }

    /// Decodes and resolves a scan from the view.
    fn scan(&self, r: &Reader<'_>, bytes: &[u8]) -> Result<Result<Scan, Answer>, StoreError> {
        let raw = match RawScan::parse(bytes) {
            Ok(raw) => raw,
            Err(e) => return Ok(Err(Answer::error(422, "bad_scan", e.to_string()))),
        };
        let decoded = match holdfast_devices::gs1::decode(raw.as_str(), &self.inner.decode) {
            Ok(d) => d,
            Err(e) => return Ok(Err(Answer::error(422, "bad_scan", e.to_string()))),
        };
        let resolved = crate::resolve::resolve(r, &decoded)?;
        let (text, gs1_lot) = match &decoded.data {
            ScanData::Plain(code) => (code.clone(), None),
            ScanData::Gs1(elements) => (
                elements
                    .iter()
                    .map(|e| format!("({}){}", e.ai, e.raw))
                    .collect(),
                Some(crate::resolve::gs1_lot(elements)),
            ),
        };
        Ok(Ok(Scan {
            text,
            resolved,
            gs1_lot,
        }))
    }

    async fn input(
        &self,
        caller: &Caller,
        session: Option<&str>,
        input: RawInput,
    ) -> Result<Answer, StoreError> {
        // The key's earlier answer, sign-in, session and decision in one read: one snapshot.
        let (login, row, accepted, next, view) = match self.inner.store.read(|r| {
            if let Some(key) = &caller.key
                && let Some(answer) = self.replay_in(r, caller, key)?
            {
                return Ok(Pre::Answered(answer));
            }
            self.decide(r, caller, session, &input)
        })? {
            Pre::Decided(decision) => {
                let Decision {
                    login,
                    row,
                    accepted,
                    next,
                    view,
                } = *decision;
                (login, row, accepted, next, view)
            }
            Pre::Answered(answer) => return Ok(answer),
            Pre::Badge(badge) => return self.login(caller, LoginBy::Badge(badge)).await,
            Pre::NotSignedIn => return self.sign_in_by_scan(caller, &input).await,
            Pre::NoSession => return self.start_by_scan(caller, &input).await,
        };
        let entries: Vec<NewEntry> = accepted
            .ops
            .iter()
            .map(|op| NewEntry {
                id: Some(Uuid::now_v7()),
                device: caller.device.clone(),
                operator: Some(login.operator.clone()),
                op: op.clone(),
            })
            .collect();
        let entry_json: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.id.map(|i| i.to_string()),
                    "kind": e.op.kind().as_str(),
                    "payload": serde_json::to_value(&e.op).unwrap_or(Value::Null),
                })
            })
            .collect();
        let expected = row.version;
        let body = json!({
            "status": accepted.status,
            "code": accepted.code,
            "message": accepted.message,
            "session_id": next.id,
            "entries": entry_json,
        });
        // The device's current session changes only when this one ends or was named
        // explicitly; most scans leave it as it is (one write less).
        let current = if accepted.finished {
            // The store clears whichever device pointed at it.
            Current::Keep
        } else if login.session_id.as_deref() != Some(next.id.as_str()) {
            Current::Set {
                device: caller.device.clone(),
                session: Some(next.id.clone()),
            }
        } else {
            Current::Keep
        };
        // A quantity entered for a received line changes how many came; its label was printed
        // when the line was scanned (with the lot's expiry), not again for the difference.
        let labels = match input {
            RawInput::Quantity(_) => Labels::None,
            _ => Labels::Receipts,
        };
        self.write_step(
            caller,
            next,
            Some(expected),
            (entries, labels),
            (body, Some(view)),
            200,
            current,
        )
        .await
    }

    /// Everything a session input needs to know before anything is written.
    fn decide(
        &self,
        r: &Reader<'_>,
        caller: &Caller,
        session: Option<&str>,
        input: &RawInput,
    ) -> Result<Pre, StoreError> {
        let Some(login) = r.device_login(&caller.device)? else {
            return Ok(Pre::NotSignedIn);
        };
        let Some(session_id) = session.or(login.session_id.as_deref()) else {
            return Ok(Pre::NoSession);
        };
        let row = match own_open_session(r, &login.operator, session_id)? {
            Ok(row) => row,
            Err(answer) => return Ok(Pre::Answered(answer)),
        };
        if row.device != caller.device {
            return Ok(Pre::Answered(Answer::error(
                409,
                "session_elsewhere",
                format!(
                    "that session is open on device {}: resume it here first",
                    row.device
                ),
            )));
        }
        let machine: Machine = serde_json::from_str(&row.data)
            .map_err(|e| StoreError::Data(format!("session {}: {e}", row.id)))?;
        let cx = Cx {
            reader: r,
            policy: self.inner.policy,
        };
        let input = match input {
            RawInput::Scan(bytes) => match self.scan(r, bytes)? {
                // Another operator's badge: they take over the device (shift change).
                Ok(scan)
                    if scan.resolved.is_empty()
                        && self.takeover_badge(r, caller, &scan.text, &login.operator)? =>
                {
                    return Ok(Pre::Badge(scan.text));
                }
                Ok(scan) => Input::Scan(scan),
                Err(answer) => return Ok(Pre::Answered(answer)),
            },
            RawInput::Quantity(q) => Input::Quantity(*q),
            RawInput::Validate(c) => Input::Validate(*c),
            RawInput::Finish => Input::Finish,
        };
        match machine.step(&cx, &input) {
            Ok(accepted) => {
                let mut next = row.clone();
                next.version += 1;
                next.data = serde_json::to_string(&accepted.machine)
                    .map_err(|e| StoreError::Data(e.to_string()))?;
                if accepted.finished {
                    next.state = "done".into();
                }
                let effects: Vec<_> = accepted.ops.iter().flat_map(|op| op.effects()).collect();
                let view = self.view(&r.with_pending(&effects), &next)?;
                Ok(Pre::Decided(Box::new(Decision {
                    login,
                    row,
                    accepted,
                    next,
                    view,
                })))
            }
            Err(StepError::Refused(refusal)) => {
                let view = self.view(r, &row)?;
                Ok(Pre::Answered(Answer::new(
                    422,
                    json!({
                        "status": "error",
                        "code": refusal.code,
                        "message": refusal.message,
                        "error": {"code": refusal.code, "message": refusal.message},
                        "session_id": row.id,
                        "session": view,
                    }),
                )))
            }
            Err(StepError::Store(e)) => Err(e),
        }
    }

    /// Whether a scan that matched nothing is another operator's badge (a shift change). The
    /// lookup is a sign-in attempt: counted for the device, and skipped while it is locked
    /// (the scan then goes to the session, which refuses it as unknown).
    fn takeover_badge(
        &self,
        r: &Reader<'_>,
        caller: &Caller,
        text: &str,
        signed_in: &str,
    ) -> Result<bool, StoreError> {
        let Ok(attempt) = self.inner.guard.attempt(&caller.device, Kind::Takeover) else {
            return Ok(false);
        };
        match r.operator_by_badge(text)? {
            Some(o) => {
                // A real badge is no guess, whoever's it is; the sign-in counts on its own.
                attempt.succeeded();
                Ok(o.id != signed_in)
            }
            None => Ok(false),
        }
    }

    /// Nobody is signed in on the device: a scanner's first scan of the shift may be the
    /// operator's badge.
    async fn sign_in_by_scan(
        &self,
        caller: &Caller,
        input: &RawInput,
    ) -> Result<Answer, StoreError> {
        let RawInput::Scan(bytes) = input else {
            return Ok(not_signed_in());
        };
        // Any scan here may be a badge guess: counted before the lookup, whatever it is.
        let attempt = match self.inner.guard.attempt(&caller.device, Kind::SignIn) {
            Ok(attempt) => attempt,
            Err(locked) => return Ok(locked_answer(&locked)),
        };
        if let Ok(raw) = RawScan::parse(bytes) {
            let badge = raw.as_str().to_owned();
            if self
                .inner
                .store
                .read(|r| r.operator_by_badge(&badge))?
                .is_some()
            {
                return self
                    .login_counted(caller, LoginBy::Badge(badge), attempt)
                    .await;
            }
        }
        tracing::debug!(device = %caller.device, "scan on a signed-out device is no badge");
        Ok(not_signed_in())
    }

    /// No session open on the device: scanning a picking's name starts one.
    async fn start_by_scan(&self, caller: &Caller, input: &RawInput) -> Result<Answer, StoreError> {
        if let RawInput::Scan(bytes) = input {
            let picking = self.inner.store.read(|r| {
                let scan = match self.scan(r, bytes)? {
                    Ok(scan) => scan,
                    Err(answer) => return Ok(Err(answer)),
                };
                let Some(id) = scan.resolved.iter().find_map(|x| match x {
                    Resolved::Picking { picking_id, .. } => Some(*picking_id),
                    _ => None,
                }) else {
                    return Ok(Ok(None));
                };
                let kind = r.picking_header(id)?.map(|(_, _, kind)| kind);
                Ok(Ok(Some((id, kind))))
            })?;
            match picking {
                Err(answer) => return Ok(answer),
                Ok(Some((id, kind))) => {
                    let workflow = if kind.as_deref() == Some("incoming") {
                        Workflow::Receive
                    } else {
                        Workflow::Pick
                    };
                    return self.start(caller, workflow, Some(id)).await;
                }
                Ok(None) => {}
            }
        }
        Ok(Answer::error(
            409,
            "no_session",
            "no task open: choose one (pick, receive, count, transfer) or scan a picking",
        ))
    }

    /// Writes a change of the session alone (started, resumed, cancelled): no entries.
    async fn write_session(
        &self,
        caller: &Caller,
        row: SessionRow,
        expected_version: Option<i64>,
        body: Value,
        status: u16,
        current: Current,
    ) -> Result<Answer, StoreError> {
        self.write_step(
            caller,
            row,
            expected_version,
            (Vec::new(), Labels::None),
            (body, None),
            status,
            current,
        )
        .await
    }

    /// Writes a step and answers with the session as it now stands.
    #[allow(clippy::too_many_arguments)]
    async fn write_step(
        &self,
        caller: &Caller,
        row: SessionRow,
        expected_version: Option<i64>,
        (entries, labels): (Vec<NewEntry>, Labels),
        (mut body, view): (Value, Option<SessionView>),
        status: u16,
        current: Current,
    ) -> Result<Answer, StoreError> {
        let request = Self::record(caller, status, &body);
        let written = row.clone();
        let n_entries = entries.len();
        // Labels go into the same transaction as the step: a receipt acknowledged is a label
        // spooled. A printer missing does not stop the receipt; a lot whose label cannot be
        // made (characters a GS1 barcode cannot carry) is refused, never received unlabelled.
        let prints = match self.inner.printing.get() {
            Some(printing) if labels == Labels::Receipts && printing.labels_receipts(&entries) => {
                let made = self
                    .inner
                    .store
                    .read(|r| Ok(printing.receipt_labels(r, &caller.device, &entries)))?;
                match made {
                    Ok(prints) => prints,
                    Err(e @ crate::printing::PrintError::Lot(_)) => {
                        return Ok(Answer::error(
                            422,
                            "bad_lot",
                            format!(
                                "{e}: use at most 20 letters, digits and - . / _ ( ) : in a lot name"
                            ),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(device = %caller.device, error = %e, "receipt label not printed");
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        let printers: Vec<String> = prints.iter().map(|p| p.printer.clone()).collect();
        self.inner
            .store
            .step(StepWrite {
                session: row,
                expected_version,
                entries,
                current,
                request,
                prints,
            })
            .await?;
        if let Some(printing) = self.inner.printing.get() {
            for printer in &printers {
                printing.wake(printer);
            }
        }
        tracing::debug!(device = %caller.device, session = %written.id, n_entries, "step recorded");
        // The view decided on, else (sign-in and start steps) the session read again.
        let view = match view {
            Some(view) => view,
            None => self.inner.store.read(|r| self.view(r, &written))?,
        };
        body["session"] =
            serde_json::to_value(view).map_err(|e| StoreError::Data(e.to_string()))?;
        Ok(Answer::new(status, body))
    }

    /// Forgets idempotent answers older than `age` (a device retries within seconds).
    pub async fn prune_answers(&self, age: Duration) -> Result<(), StoreError> {
        let before = crate::store::now_ms() - age.as_millis() as i64;
        self.inner
            .store
            .floor(FloorCmd::PruneRequests { before })
            .await
    }
}

/// What [`Floor::decide`] found.
#[derive(Debug)]
enum Pre {
    NotSignedIn,
    NoSession,
    /// An operator's badge was scanned.
    Badge(String),
    Answered(Answer),
    Decided(Box<Decision>),
}

/// An accepted input, ready to be written.
#[derive(Debug)]
struct Decision {
    login: crate::store::DeviceLogin,
    row: SessionRow,
    accepted: workflow::Accepted,
    /// The session as the step leaves it, and its view: the snapshot the decision was made on
    /// with the step's effects counted (the answer needs no read after the commit).
    next: SessionRow,
    view: SessionView,
}

/// An open session of this operator, or the answer saying why not.
fn own_open_session(
    r: &Reader<'_>,
    operator: &str,
    id: &str,
) -> Result<Result<SessionRow, Answer>, StoreError> {
    let Some(row) = r.session(id)? else {
        return Ok(Err(Answer::error(404, "not_found", "no such session")));
    };
    if row.operator != operator {
        return Ok(Err(Answer::error(
            403,
            "not_your_session",
            format!("that session belongs to operator {}", row.operator),
        )));
    }
    if row.state != "active" {
        // A session the pull closed because Odoo cancelled its picking says so: the
        // operator must stop picking, and "cancelled" alone reads as someone's tap.
        if row.state == "cancelled"
            && let Some(picking_id) = row.picking_id
            && let Some((p, _)) = r.picking(picking_id)?
            && p.state == "cancel"
        {
            return Ok(Err(Answer::error(
                409,
                "picking_cancelled",
                format!(
                    "{} was cancelled in Odoo: this session is closed; put back what you picked",
                    p.name
                ),
            )));
        }
        return Ok(Err(Answer::error(
            409,
            "session_closed",
            format!("that session is {}", row.state),
        )));
    }
    Ok(Ok(row))
}

fn not_signed_in() -> Answer {
    Answer::error(
        401,
        "not_signed_in",
        "no operator signed in on this device: scan your badge or enter your PIN",
    )
}
