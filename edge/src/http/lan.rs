//! Devices on the LAN over HTTP: the registry, printers and the print spool.
//!
//! `GET /api/v1/devices` and `/printers` name serial ports, printer addresses and the last
//! error (which may quote a scanned code), so like `/api/v1/status` they take a device token
//! or a manager (the token, or a console session: see [`super::authorize`]). Print jobs carry
//! label data (ship-to addresses): listing them takes the same; reprinting and cancelling take
//! a device token (an operator at the printer reprints a jammed label) or a manager with the
//! right to act (a viewer may not), and are audited; spooling a label (`POST /api/v1/print`)
//! takes a device token.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Json;
use holdfast_devices::label::Label;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, DeviceId};
use crate::managers::Actor;
use crate::printing::PrintError;
use crate::store::{DeviceCmd, NewAudit, PrintJobFilter, StoreError};

impl From<PrintError> for ApiError {
    fn from(e: PrintError) -> ApiError {
        match e {
            PrintError::Store(e) => e.into(),
            PrintError::UnknownPrinter(_) => ApiError {
                status: StatusCode::NOT_FOUND,
                code: "unknown_printer",
                message: e.to_string(),
            },
            PrintError::NoPrinter | PrintError::NoSsccPrefix => ApiError {
                status: StatusCode::CONFLICT,
                code: "printing_not_configured",
                message: e.to_string(),
            },
            PrintError::Label(_) | PrintError::Lot(_) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_label",
                message: e.to_string(),
            },
        }
    }
}

/// `GET /api/v1/devices`: every scanner, printer and broker link the appliance knows.
pub(super) async fn devices(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"devices": state.registry.list()}))
}

/// `GET /api/v1/printers`: configured printers, their state and queue.
pub(super) async fn printers(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let counts = state.store.read(|r| r.print_counts())?;
    let lan = state.printing.lan();
    let printers: Vec<Value> = lan
        .printers
        .iter()
        .map(|p| {
            let row = state.registry.get(&p.id);
            let count = |s: &str| {
                counts
                    .iter()
                    .find(|(printer, state, _)| printer == &p.id && state == s)
                    .map_or(0, |c| c.2)
            };
            json!({
                "id": p.id,
                "address": match &p.address {
                    holdfast_devices::printer::PrinterAddress::Tcp(a) => format!("tcp://{a}"),
                    holdfast_devices::printer::PrinterAddress::Serial(s) => format!("serial://{}", s.path.display()),
                },
                "dpi": p.size.dpi,
                "width_mm": p.size.width_mm,
                "height_mm": p.size.height_mm,
                "default": lan.printing.default_printer.as_deref() == Some(p.id.as_str()),
                "state": row.as_ref().map_or("unknown", |r| r.state.as_str()),
                "last_seen": row.as_ref().and_then(|r| r.last_seen),
                "last_error": row.as_ref().and_then(|r| r.last_error.clone()),
                "status": row.as_ref().and_then(|r| r.detail.as_deref()).and_then(|d| serde_json::from_str::<Value>(d).ok()),
                "queued": count("queued") + count("sending"),
                "unknown": count("unknown"),
            })
        })
        .collect();
    Ok(Json(json!({"printers": printers})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobsQuery {
    printer: Option<String>,
    /// `queued`, `sending`, `sent`, `unknown` or `cancelled`.
    state: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/print-jobs`: jobs, newest first.
pub(super) async fn print_jobs(
    State(state): State<Arc<AppState>>,
    Query(q): Query<JobsQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = &q.state
        && !["queued", "sending", "sent", "unknown", "cancelled"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "state {s:?} is not one of: queued, sending, sent, unknown, cancelled"
        )));
    }
    let filter = PrintJobFilter {
        printer: q.printer,
        state: q.state,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let jobs = state.store.read(|r| r.print_jobs(&filter))?;
    let jobs: Vec<Value> = jobs
        .into_iter()
        .map(|j| {
            let mut v = serde_json::to_value(&j).unwrap_or(Value::Null);
            // The label's data as an object, not a string inside a string.
            if let Ok(label) = serde_json::from_str::<Value>(&j.label) {
                v["label"] = label;
            }
            v
        })
        .collect();
    Ok(Json(json!({"jobs": jobs})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobAction {
    /// Who decided (defaults to the device).
    by: Option<String>,
}

/// Who acts on a job: a signed-in manager by name; otherwise `by` from the body, else the
/// device, else the manager's token.
fn who(device: Option<&DeviceId>, actor: Option<&Actor>, body: &[u8]) -> Result<String, ApiError> {
    let action: JobAction = if body.is_empty() {
        JobAction { by: None }
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
    };
    if let Some(Actor::Session { name, .. }) = actor {
        return Ok(format!("manager:{name}"));
    }
    Ok(match (action.by, device) {
        (Some(by), _) if !by.trim().is_empty() && by.len() <= 64 => by,
        (Some(_), _) => {
            return Err(ApiError::bad_request(
                "\"by\" must be 1-64 characters".into(),
            ));
        }
        (None, Some(d)) => format!("device:{}", d.0),
        (None, None) => "manager".into(),
    })
}

/// The audit trail's name for whoever acted on a job.
fn actor_name(device: Option<&DeviceId>, actor: Option<&Actor>) -> String {
    match (actor, device) {
        (Some(actor), _) => actor.audit_name(),
        (None, Some(d)) => format!("device:{}", d.0),
        (None, None) => "anonymous".into(),
    }
}

/// `POST /api/v1/print-jobs/{id}/reprint`: the same label again, as a new job.
pub(super) async fn reprint(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    device: Option<axum::Extension<DeviceId>>,
    actor: Option<axum::Extension<Actor>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let device = device.as_ref().map(|d| &d.0);
    let actor = actor.as_ref().map(|a| &a.0);
    let by = who(device, actor, &body)?;
    let new_id = state
        .store
        .devices(DeviceCmd::Reprint { id, by: by.clone() })
        .await
        .map_err(conflict_as_409)?;
    super::record(
        &state,
        NewAudit {
            actor: actor_name(device, actor),
            action: "print.reprint".into(),
            target: Some(format!("print_job:{id}")),
            detail: json!({"by": by, "new_job": new_id}),
        },
    )
    .await;
    let job = state.store.read(|r| r.print_job(new_id))?;
    if let Some(job) = &job {
        state.printing.wake(&job.printer);
    }
    Ok(Json(json!({"job": job, "reprint_of": id})))
}

/// `POST /api/v1/print-jobs/{id}/cancel`: a queued job, or one whose outcome is unknown.
pub(super) async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    device: Option<axum::Extension<DeviceId>>,
    actor: Option<axum::Extension<Actor>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let device = device.as_ref().map(|d| &d.0);
    let actor = actor.as_ref().map(|a| &a.0);
    let by = who(device, actor, &body)?;
    state
        .store
        .devices(DeviceCmd::Cancel { id, by: by.clone() })
        .await
        .map_err(conflict_as_409)?;
    super::record(
        &state,
        NewAudit {
            actor: actor_name(device, actor),
            action: "print.cancel".into(),
            target: Some(format!("print_job:{id}")),
            detail: json!({"by": by}),
        },
    )
    .await;
    let job = state.store.read(|r| r.print_job(id))?;
    Ok(Json(json!({"job": job})))
}

fn conflict_as_409(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(message) => ApiError {
            status: StatusCode::CONFLICT,
            code: "job_state",
            message,
        },
        other => other.into(),
    }
}

/// What a handheld asks to print.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "label", rename_all = "snake_case")]
pub(super) enum PrintRequest {
    Product {
        product_id: i64,
        printer: Option<String>,
    },
    Location {
        location_id: i64,
        printer: Option<String>,
    },
    /// A package (SSCC) or delivery label for a picking.
    Package {
        picking_id: i64,
        printer: Option<String>,
    },
}

/// `POST /api/v1/print`: a product, location or package label from a handheld.
pub(super) async fn print(
    State(state): State<Arc<AppState>>,
    axum::Extension(device): axum::Extension<DeviceId>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // A handheld retrying after a lost answer sends the same key: one label, not two.
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= crate::floor::MAX_KEY_LEN)
        .map(str::to_owned);
    let request: PrintRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid print request (label: product|location|package with its id): {e}"
        ))
    })?;
    let printing = &state.printing;
    let (label, named, source): (Label, Option<String>, String) = match request {
        PrintRequest::Product {
            product_id,
            printer,
        } => (
            state
                .store
                .read(|r| Ok(printing.product_label(r, product_id)))??,
            printer,
            format!("product:{product_id}"),
        ),
        PrintRequest::Location {
            location_id,
            printer,
        } => (
            state
                .store
                .read(|r| Ok(printing.location_label(r, location_id)))??,
            printer,
            format!("location:{location_id}"),
        ),
        PrintRequest::Package {
            picking_id,
            printer,
        } => (
            printing.package_label(picking_id).await?,
            printer,
            format!("picking:{picking_id}"),
        ),
    };
    let printer = printing.printer_for(named.as_deref(), Some(&device.0))?;
    let by = match state.floor.whoami(&device.0).body.pointer("/operator/id") {
        Some(Value::String(op)) => format!("operator:{op}"),
        _ => format!("device:{}", device.0),
    };
    // A package label takes a new SSCC each time it is made; a retried request keeps its job.
    let id = printing
        .enqueue_keyed(printer, &label, &by, Some(source), key)
        .await?;
    let job = state.store.read(|r| r.print_job(id))?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job": job}))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DemoScan {
    /// `serial` or `mqtt`.
    via: String,
    scan: String,
}

/// `POST /api/v1/demo/scan` (`holdfast demo` only): plays a scan on the demo's serial or MQTT
/// scanner, through the real transport, and says what the scanner heard back. For the serial
/// scanner (beeps only) the answer adds the device's prompt as the appliance now shows it.
pub(super) async fn demo_scan(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let lan = state
        .demo
        .as_ref()
        .and_then(|d| d.lan())
        .ok_or_else(super::not_demo)?;
    let request: DemoScan = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body must be {{\"via\": \"serial|mqtt\", \"scan\": \"...\"}}: {e}"
        ))
    })?;
    let mut heard = lan
        .scan(&request.via, &request.scan)
        .await
        .map_err(|e| ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: "scanner_failed",
            message: format!("{e:#}"),
        })?;
    if request.via == "serial" {
        let device = crate::demo::lan::SERIAL_SCANNER;
        let who = state.floor.whoami(device);
        let prompt = who
            .body
            .pointer("/session/prompt")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| match who.body.pointer("/operator/name") {
                Some(Value::String(name)) => format!("{name} signed in; scan a picking"),
                _ => "nobody signed in; scan a badge".into(),
            });
        heard["message"] = json!(prompt);
        if heard["ok"] == json!(false) {
            let last = state.registry.get(device).and_then(|r| r.last_error);
            if let Some(error) = last {
                heard["message"] = json!(error);
            }
        }
    }
    Ok(Json(heard))
}
