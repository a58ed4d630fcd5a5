//! Push translation: journal entries → Odoo calls, exactly once.
//!
//! The floor records intents ([`crate::ops`]); this module turns a *batch* of them (the
//! pending entries of one causal key, in journal order) into calls on Odoo's standard
//! external API and classifies what came back. It knows nothing of the store or of
//! scheduling: the appliance's push scheduler decides what to send when, and moves the
//! entries through their states from the [`Outcome`] returned here.
//!
//! Every call made here is either an idempotent state assignment or carries the entry's
//! [`mark`] into the record it creates in the same call:
//!
//! - **picks and receipts** re-read the picking's move lines first (Odoo re-creates them on
//!   re-reservation), then set *absolute* quantities and `picked`, keyed by (move, product,
//!   lot, location, package), in one `write` on the picking with `move_line_ids` commands.
//!   The targets are the sums of every entry of the picking that reached Odoo before plus
//!   this batch, so sending the same batch twice assigns the same values twice. Odoo refuses
//!   a duplicate serial only within one location, so a serial the batch receives (or picks)
//!   is first checked against the cloud's stock in every other bin (`serial_in_use`);
//! - **validation** checks the picking's state first (already done → compare and call it
//!   superseded or a conflict), sets quantity 0 on lines nobody picked, and validates with
//!   the wizard-free context; any wizard that still comes back is answered with its context;
//! - **counts** are delta merges: the count's difference (counted − what the view showed) is
//!   added to the cloud's current quantity through `inventory_quantity` +
//!   `action_apply_inventory`, with the mark in `inventory_name` (the inventory move's
//!   reference); a retry after an unknown outcome looks for that move first. An attempt cut
//!   off between the write and the apply leaves a pending count that a person's "Apply all"
//!   applies without the mark: a retry that finds unmarked counts on the quant since the
//!   entry was first sent does not apply again but asks a person (`count_unconfirmed`);
//! - **transfers** create a picking of the warehouse's `int_type_id` whose `origin` ends with
//!   the mark, in the same call as its move; a retry finds it by origin (`ilike`) and carries
//!   on from its state. A re-created picking keeps the original's type and partner, names the
//!   original (and its origin) before the mark, and carries the manager's note.
//!
//! The pure parts ([`plan_lines`], [`compare_done`]) are separate from the calls so they can
//! be tested on their own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::odoo::{Call, ErrorClass, OdooClient, OdooError};
use crate::ops::{BackorderChoice, CountOp, Operation, TransferOp};
// The payload of a re-creation lives with the journal's operations (it is persisted there);
// the push keeps offering it under its old path.
pub use crate::ops::{NewPicking, NewPickingLine, Side};

/// Anything that runs Odoo calls: the wire client, or the simulator in-process.
pub trait Odoo: Send + Sync {
    /// Runs one call.
    fn call(&self, call: Call) -> impl Future<Output = Result<Value, OdooError>> + Send;
    /// Odoo's major version (18 over JSON-RPC, 19+ over JSON-2: a few fields differ).
    fn major(&self) -> u32;
    /// A cheap check that the server answers (no credentials involved).
    fn probe(&self) -> impl Future<Output = Result<(), OdooError>> + Send;
    /// Whether a new `stock.move` takes `name` (required on 18, refused as an invalid field
    /// on 19); the wire client knows it from the server's fields.
    fn moves_take_name(&self) -> bool {
        self.major() < 19
    }
}

impl Odoo for OdooClient {
    fn call(&self, call: Call) -> impl Future<Output = Result<Value, OdooError>> + Send {
        OdooClient::call(self, call)
    }

    fn major(&self) -> u32 {
        self.version().major
    }

    fn probe(&self) -> impl Future<Output = Result<(), OdooError>> + Send {
        self.health()
    }

    fn moves_take_name(&self) -> bool {
        self.models().moves_take_name()
    }
}

/// The text an entry leaves in the records it creates (`origin`, `inventory_name`).
pub fn mark(entry_id: &str) -> String {
    format!("holdfast:{entry_id}")
}

/// One journal entry handed to the push.
#[derive(Clone, Debug, PartialEq)]
pub struct PushEntry {
    pub seq: i64,
    /// The entry's UUID (its mark in Odoo).
    pub id: String,
    pub op: Operation,
    /// An earlier attempt's outcome is unknown: look for its mark before sending anything.
    pub ambiguous: bool,
    /// From when (unix ms, on Odoo's clock as far as the caller can tell) records in Odoo
    /// may be this entry's own work: about when it was first sent. A count's retry takes
    /// Odoo's unmarked counts from then on as possibly its own, applied by someone else;
    /// `None` skips that (a first attempt, or a person decided to send it again).
    pub sent_since: Option<i64>,
}

/// What kind of disagreement a conflict is (the policy is chosen per kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// The picking was validated in the cloud with other quantities.
    PickingDoneDifferently,
    /// The picking was cancelled (or deleted) in the cloud.
    PickingCancelled,
    /// More was picked from a bin than the cloud says is there.
    OverPick,
    /// A received serial number is already in stock elsewhere.
    SerialInUse,
    /// A count's earlier attempt left it pending in Odoo and someone applied counts there
    /// without the appliance's mark: Odoo may already hold it.
    CountUnconfirmed,
    /// A received lot already exists in Odoo with another expiry date.
    LotExpiry,
    /// The product is archived in Odoo.
    ProductArchived,
    /// Odoo refused the call as invalid (`UserError`, `ValidationError`).
    Validation,
}

impl ConflictKind {
    pub const ALL: &'static [ConflictKind] = &[
        ConflictKind::PickingDoneDifferently,
        ConflictKind::PickingCancelled,
        ConflictKind::OverPick,
        ConflictKind::SerialInUse,
        ConflictKind::CountUnconfirmed,
        ConflictKind::LotExpiry,
        ConflictKind::ProductArchived,
        ConflictKind::Validation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::PickingDoneDifferently => "picking_done_differently",
            ConflictKind::PickingCancelled => "picking_cancelled",
            ConflictKind::OverPick => "over_pick",
            ConflictKind::SerialInUse => "serial_in_use",
            ConflictKind::CountUnconfirmed => "count_unconfirmed",
            ConflictKind::LotExpiry => "lot_expiry",
            ConflictKind::ProductArchived => "product_archived",
            ConflictKind::Validation => "validation",
        }
    }

    pub fn parse(s: &str) -> Option<ConflictKind> {
        ConflictKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A disagreement between the floor and the cloud, with both sides' values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub kind: ConflictKind,
    pub message: String,
    /// What the floor recorded.
    pub edge: Value,
    /// What the cloud holds.
    pub cloud: Value,
}

/// What pushing a batch came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Odoo holds the batch's effect.
    Applied {
        /// The Odoo record that carries it (picking name, inventory move, created picking).
        remote_ref: Option<String>,
        /// Odoo already held it without our call (done in the cloud with the same quantities,
        /// or an earlier attempt whose answer was lost).
        superseded: bool,
        /// Disagreements applied anyway and flagged (over-picks, lot expiry).
        flagged: Vec<Finding>,
    },
    /// Not applied: needs a decision (or a policy) before it can go further.
    Conflict(Finding),
    /// The call failed without a verdict on the batch; the error's class says what next.
    Failed(OdooError),
}

const EPS: f64 = 1e-6;

fn err_class(e: &OdooError) -> ErrorClass {
    e.class()
}

/// Turns a permanent Odoo refusal into a conflict with its message kept.
fn refusal(e: &OdooError, edge: Value) -> Outcome {
    let message = match e {
        OdooError::Server { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let lower = message.to_lowercase();
    let kind = if lower.contains("serial number") && lower.contains("already") {
        ConflictKind::SerialInUse
    } else if lower.contains("archived") {
        ConflictKind::ProductArchived
    } else {
        ConflictKind::Validation
    };
    Outcome::Conflict(Finding {
        kind,
        message,
        edge,
        cloud: json!({"error": e.to_string()}),
    })
}

/// Runs a call; a permanent refusal becomes `Err(Outcome::Conflict)`, any other failure
/// `Err(Outcome::Failed)`.
async fn run<O: Odoo>(odoo: &O, call: Call, edge: &Value) -> Result<Value, Outcome> {
    odoo.call(call).await.map_err(|e| match err_class(&e) {
        ErrorClass::Permanent => refusal(&e, edge.clone()),
        _ => Outcome::Failed(e),
    })
}

fn m2o_id(v: &Value) -> Option<i64> {
    match v {
        Value::Array(a) => a.first().and_then(Value::as_i64),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn m2o_name(v: &Value) -> Option<String> {
    match v {
        Value::Array(a) => a.get(1).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn ids_of(v: &Value) -> Vec<i64> {
    match v {
        Value::Array(a) => a.iter().filter_map(Value::as_i64).collect(),
        Value::Number(n) => n.as_i64().into_iter().collect(),
        _ => Vec::new(),
    }
}

fn records(v: Value) -> Vec<Map<String, Value>> {
    match v {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|r| match r {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn num(r: &Map<String, Value>, field: &str) -> f64 {
    r.get(field).and_then(Value::as_f64).unwrap_or(0.0)
}

fn text(r: &Map<String, Value>, field: &str) -> String {
    r.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

mod count;
mod create;
mod picking;
#[cfg(test)]
mod tests;

// Shared between the sections: reading lines, lots, archived products and serials, and
// validating.
use picking::{archived, lot_ids, over_picks, read_lines, serials_in_use, validate_picking};

pub use count::push_count;
pub use create::{internal_picking_type, push_new_picking, push_transfer};
pub use picking::{
    CloudLine, LineKey, LinePlan, NewLine, compare_done, plan_lines, push_picking, targets,
};
