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

// ---------------------------------------------------------------------------------------
// Picks, receipts, validation
// ---------------------------------------------------------------------------------------

/// What a move line is keyed by: Odoo re-creates lines with new ids, so never the line id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LineKey {
    pub move_id: i64,
    pub product_id: i64,
    /// Empty when untracked.
    pub lot: String,
    /// The bin on the floor's side of the line (see [`Side`]).
    pub location_id: i64,
    /// 0 when none.
    pub package_id: i64,
    pub side: Side,
}

/// The quantity every key should hold, from the picking's entries (earlier ones that reached
/// Odoo, then this batch), and whether the batch validates.
pub fn targets(prior: &[Operation], batch: &[Operation]) -> BTreeMap<LineKey, f64> {
    let mut out: BTreeMap<LineKey, f64> = BTreeMap::new();
    for op in prior.iter().chain(batch) {
        let (key, q) = match op {
            Operation::Pick(p) => (
                LineKey {
                    move_id: p.move_id,
                    product_id: p.product_id,
                    lot: p.lot_name.clone().unwrap_or_default(),
                    location_id: p.location_id,
                    package_id: p.package_id.unwrap_or(0),
                    side: Side::Source,
                },
                p.quantity,
            ),
            Operation::Receive(r) => (
                LineKey {
                    move_id: r.move_id,
                    product_id: r.product_id,
                    lot: r.lot_name.clone().unwrap_or_default(),
                    location_id: r.location_dest_id,
                    package_id: 0,
                    side: Side::Destination,
                },
                r.quantity,
            ),
            _ => continue,
        };
        *out.entry(key).or_insert(0.0) += q;
    }
    // Corrections can take a key below zero in floating point noise; more put back than
    // was taken leaves nothing to ship.
    for q in out.values_mut() {
        if *q < EPS {
            *q = 0.0;
        }
    }
    out
}

/// A move line as the push reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudLine {
    pub id: i64,
    pub move_id: i64,
    pub product_id: i64,
    pub lot_id: Option<i64>,
    pub lot: String,
    pub location_id: i64,
    pub location_dest_id: i64,
    pub package_id: i64,
    pub quantity: f64,
    pub picked: bool,
    pub state: String,
}

const LINE_FIELDS: &[&str] = &[
    "move_id",
    "product_id",
    "lot_id",
    "lot_name",
    "location_id",
    "location_dest_id",
    "package_id",
    "quantity",
    "picked",
    "state",
];

impl CloudLine {
    fn from_record(r: &Map<String, Value>) -> Option<CloudLine> {
        let lot = r
            .get("lot_id")
            .and_then(m2o_name)
            .or_else(|| r.get("lot_name").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        Some(CloudLine {
            id: r.get("id")?.as_i64()?,
            move_id: r.get("move_id").and_then(m2o_id).unwrap_or(0),
            product_id: r.get("product_id").and_then(m2o_id)?,
            lot_id: r.get("lot_id").and_then(m2o_id),
            lot,
            location_id: r.get("location_id").and_then(m2o_id)?,
            location_dest_id: r.get("location_dest_id").and_then(m2o_id)?,
            package_id: r.get("package_id").and_then(m2o_id).unwrap_or(0),
            quantity: num(r, "quantity"),
            picked: r.get("picked").and_then(Value::as_bool).unwrap_or(false),
            state: text(r, "state"),
        })
    }

    fn key(&self, side: Side) -> LineKey {
        LineKey {
            move_id: self.move_id,
            product_id: self.product_id,
            lot: self.lot.clone(),
            location_id: match side {
                Side::Source => self.location_id,
                Side::Destination => self.location_dest_id,
            },
            package_id: self.package_id,
            side,
        }
    }
}

/// A line to create: Odoo needs the other side's location and the lot's id when it exists.
#[derive(Clone, Debug, PartialEq)]
pub struct NewLine {
    pub key: LineKey,
    pub quantity: f64,
}

/// The `move_line_ids` commands that bring the cloud's lines to the targets.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LinePlan {
    /// `[1, id, vals]` updates of existing lines.
    pub updates: Vec<(i64, Map<String, Value>)>,
    /// Lines to create (`[0, 0, vals]`) once their other side and lot are known.
    pub creates: Vec<NewLine>,
}

impl LinePlan {
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.creates.is_empty()
    }
}

/// Plans the line commands (pure): each key's first matching line gets the target with
/// `picked`, its other matching lines 0; keys with no line get a new one; when validating,
/// every line no key claims gets quantity 0 (Odoo would otherwise ship reserved lines nobody
/// touched).
pub fn plan_lines(
    targets: &BTreeMap<LineKey, f64>,
    lines: &[CloudLine],
    validating: bool,
) -> LinePlan {
    let mut plan = LinePlan::default();
    let sides: BTreeSet<Side> = targets.keys().map(|k| k.side).collect();
    let mut claimed: BTreeSet<i64> = BTreeSet::new();
    for (key, &target) in targets {
        let mut matching: Vec<&CloudLine> =
            lines.iter().filter(|l| l.key(key.side) == *key).collect();
        matching.sort_by_key(|l| l.id);
        let mut first = true;
        for line in &matching {
            claimed.insert(line.id);
            let (q, picked) = if first {
                (target, target > 0.0)
            } else {
                (0.0, false)
            };
            first = false;
            if (line.quantity - q).abs() > EPS || line.picked != picked {
                let mut vals = Map::new();
                vals.insert("quantity".into(), json!(q));
                vals.insert("picked".into(), json!(picked));
                plan.updates.push((line.id, vals));
            }
        }
        if matching.is_empty() && target > 0.0 {
            plan.creates.push(NewLine {
                key: key.clone(),
                quantity: target,
            });
        }
    }
    if validating {
        for line in lines {
            let claimed_by_other_side = sides.iter().any(|s| targets.contains_key(&line.key(*s)));
            if !claimed.contains(&line.id) && !claimed_by_other_side && line.quantity.abs() > EPS {
                let mut vals = Map::new();
                vals.insert("quantity".into(), json!(0.0));
                vals.insert("picked".into(), json!(false));
                plan.updates.push((line.id, vals));
            }
        }
    }
    plan
}

/// Compares a done picking's lines with the floor's targets: `Ok` when they agree.
pub fn compare_done(
    targets: &BTreeMap<LineKey, f64>,
    lines: &[CloudLine],
) -> Result<(), (Value, Value)> {
    let side = targets
        .keys()
        .next()
        .map(|k| k.side)
        .unwrap_or(Side::Source);
    let mut cloud: BTreeMap<LineKey, f64> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.quantity.abs() > EPS) {
        *cloud.entry(l.key(side)).or_insert(0.0) += l.quantity;
    }
    let edge: BTreeMap<&LineKey, f64> = targets
        .iter()
        .filter(|(_, q)| q.abs() > EPS)
        .map(|(k, q)| (k, *q))
        .collect();
    let same = edge.len() == cloud.len()
        && edge
            .iter()
            .all(|(k, q)| cloud.get(*k).is_some_and(|c| (c - q).abs() <= EPS));
    if same {
        Ok(())
    } else {
        let show = |m: Vec<(&LineKey, f64)>| -> Value {
            Value::Array(
                m.into_iter()
                    .map(|(k, q)| json!({"move_id": k.move_id, "product_id": k.product_id, "lot": k.lot, "location_id": k.location_id, "quantity": q}))
                    .collect(),
            )
        };
        Err((
            show(edge.into_iter().collect()),
            show(cloud.iter().map(|(k, q)| (k, *q)).collect()),
        ))
    }
}

async fn read_lines<O: Odoo>(
    odoo: &O,
    picking: i64,
    edge: &Value,
) -> Result<Vec<CloudLine>, Outcome> {
    let v = run(
        odoo,
        Call::new("stock.move.line", "search_read")
            .arg("domain", json!([["picking_id", "=", picking]]))
            .arg("fields", json!(LINE_FIELDS))
            .arg("order", "id"),
        edge,
    )
    .await?;
    Ok(records(v)
        .iter()
        .filter_map(CloudLine::from_record)
        .collect())
}

/// The picking's header, read when its lines do not tell enough.
#[derive(Clone, Debug)]
struct PickingHead {
    name: String,
    state: String,
    location_id: i64,
    location_dest_id: i64,
}

async fn read_picking<O: Odoo>(
    odoo: &O,
    picking: i64,
    edge: &Value,
) -> Result<Option<PickingHead>, Outcome> {
    let v = run(
        odoo,
        Call::new("stock.picking", "read").ids(&[picking]).arg(
            "fields",
            json!(["name", "state", "location_id", "location_dest_id"]),
        ),
        edge,
    )
    .await;
    let v = match v {
        Ok(v) => v,
        // A deleted picking: MissingError on some versions, an empty list on others.
        Err(Outcome::Conflict(f)) if f.message.contains("does not exist") => return Ok(None),
        Err(o) => return Err(o),
    };
    Ok(records(v).first().map(|r| PickingHead {
        name: text(r, "name"),
        state: text(r, "state"),
        location_id: r.get("location_id").and_then(m2o_id).unwrap_or(0),
        location_dest_id: r.get("location_dest_id").and_then(m2o_id).unwrap_or(0),
    }))
}

/// Pushes one batch of a picking: its pick/receive entries in order, optionally ending with
/// its validation. `prior` holds the picking's entries that reached Odoo before.
pub async fn push_picking<O: Odoo>(
    odoo: &O,
    picking: i64,
    prior: &[Operation],
    batch: &[PushEntry],
) -> Outcome {
    match push_picking_inner(odoo, picking, prior, batch).await {
        Ok(o) | Err(o) => o,
    }
}

async fn push_picking_inner<O: Odoo>(
    odoo: &O,
    picking: i64,
    prior: &[Operation],
    batch: &[PushEntry],
) -> Result<Outcome, Outcome> {
    let ops: Vec<Operation> = batch.iter().map(|e| e.op.clone()).collect();
    let validate = ops.iter().find_map(|op| match op {
        Operation::Validate(v) => Some(v.backorder),
        _ => None,
    });
    let targets = targets(prior, &ops);
    let edge = json!({
        "picking_id": picking,
        "lines": targets.iter().filter(|(_, q)| q.abs() > EPS).map(|(k, q)| json!({"move_id": k.move_id, "product_id": k.product_id, "lot": k.lot, "location_id": k.location_id, "quantity": q})).collect::<Vec<_>>(),
        "validate": validate.map(|b| match b { BackorderChoice::Backorder => "backorder", BackorderChoice::NoBackorder => "no_backorder" }),
    });
    let lines = read_lines(odoo, picking, &edge).await?;
    // Lines tell the state of a picking that has any; otherwise read its header.
    let mut head: Option<PickingHead> = None;
    let state = match lines.first() {
        Some(l) if !l.state.is_empty() => l.state.clone(),
        _ => {
            head = read_picking(odoo, picking, &edge).await?;
            match &head {
                Some(h) => h.state.clone(),
                None => {
                    return Ok(Outcome::Conflict(Finding {
                        kind: ConflictKind::PickingCancelled,
                        message: format!("picking {picking} no longer exists in Odoo"),
                        edge,
                        cloud: json!({"state": "deleted"}),
                    }));
                }
            }
        }
    };
    match state.as_str() {
        "done" => {
            return Ok(match compare_done(&targets, &lines) {
                Ok(()) => Outcome::Applied {
                    remote_ref: head.map(|h| h.name),
                    superseded: true,
                    flagged: Vec::new(),
                },
                Err((e, c)) => Outcome::Conflict(Finding {
                    kind: ConflictKind::PickingDoneDifferently,
                    message: "the picking was validated in Odoo with other quantities".into(),
                    edge: json!({"lines": e, "validate": edge["validate"]}),
                    cloud: json!({"state": "done", "lines": c}),
                }),
            });
        }
        "cancel" => {
            return Ok(Outcome::Conflict(Finding {
                kind: ConflictKind::PickingCancelled,
                message: "the picking was cancelled in Odoo".into(),
                edge,
                cloud: json!({"state": "cancel"}),
            }));
        }
        _ => {}
    }
    // Only serials this batch names: earlier batches' were checked when they were sent.
    let named: Vec<LineKey> = self::targets(&[], &ops)
        .into_keys()
        .filter(|k| {
            !k.lot.is_empty() && targets.get(k).is_some_and(|q| *q > EPS && *q <= 1.0 + EPS)
        })
        .collect();
    serials_in_use(odoo, &named, &edge).await?;
    let mut flagged = Vec::new();
    let plan = plan_lines(&targets, &lines, validate.is_some());
    if !plan.is_empty() {
        let mut commands: Vec<Value> = plan
            .updates
            .iter()
            .map(|(id, vals)| json!([1, id, vals]))
            .collect();
        if !plan.creates.is_empty() {
            archived(
                odoo,
                plan.creates.iter().map(|n| n.key.product_id).collect(),
                &edge,
            )
            .await?;
            let expiries: BTreeMap<(i64, String), String> = ops
                .iter()
                .filter_map(|op| match op {
                    Operation::Receive(r) => Some((
                        (r.product_id, r.lot_name.clone()?),
                        r.expiration_date.clone()?,
                    )),
                    _ => None,
                })
                .collect();
            let (lots, expiry_findings) = lot_ids(odoo, &plan.creates, &expiries, &edge).await?;
            flagged.extend(expiry_findings);
            flagged.extend(over_picks(odoo, &plan.creates, &edge).await?);
            for new in &plan.creates {
                let other = match lines.iter().find(|l| l.move_id == new.key.move_id) {
                    Some(l) => match new.key.side {
                        Side::Source => l.location_dest_id,
                        Side::Destination => l.location_id,
                    },
                    None => {
                        if head.is_none() {
                            head = read_picking(odoo, picking, &edge).await?;
                        }
                        match (&head, new.key.side) {
                            (Some(h), Side::Source) => h.location_dest_id,
                            (Some(h), Side::Destination) => h.location_id,
                            (None, _) => 0,
                        }
                    }
                };
                let (src, dest) = match new.key.side {
                    Side::Source => (new.key.location_id, other),
                    Side::Destination => (other, new.key.location_id),
                };
                let mut vals = json!({
                    "move_id": new.key.move_id,
                    "picking_id": picking,
                    "product_id": new.key.product_id,
                    "location_id": src,
                    "location_dest_id": dest,
                    "quantity": new.quantity,
                    "picked": true,
                });
                if new.key.package_id != 0 {
                    vals["package_id"] = json!(new.key.package_id);
                }
                if !new.key.lot.is_empty() {
                    match lots.get(&(new.key.product_id, new.key.lot.clone())) {
                        Some(id) => vals["lot_id"] = json!(id),
                        // Receipts name new lots; Odoo creates them on validation.
                        None => vals["lot_name"] = json!(new.key.lot),
                    }
                }
                commands.push(json!([0, 0, vals]));
            }
        }
        run(
            odoo,
            Call::new("stock.picking", "write")
                .ids(&[picking])
                .arg("vals", json!({"move_line_ids": commands})),
            &edge,
        )
        .await
        .map_err(reread_on_missing)?;
    }
    let Some(choice) = validate else {
        return Ok(Outcome::Applied {
            remote_ref: head.map(|h| h.name),
            superseded: false,
            flagged,
        });
    };
    if let Err(refused) = validate_picking(odoo, picking, choice, &edge).await {
        let refused = reread_on_missing(refused);
        // Odoo refuses to validate a picking that is already done (18: "no quantities are
        // reserved", 19: "zero quantity"): our own earlier attempt, killed with its answer
        // lost, may have still been committing when this one read the picking, or someone
        // validated it meanwhile. Its state, not the message, tells: done → the next attempt
        // compares the whole batch with what Odoo did, instead of splitting it up.
        if matches!(refused, Outcome::Conflict(_))
            && read_picking(odoo, picking, &edge)
                .await?
                .is_some_and(|h| h.state == "done")
        {
            return Err(Outcome::Failed(OdooError::Server {
                name: "odoo.exceptions.ConcurrencyError".into(),
                message: "the picking was validated while this attempt ran; reading again".into(),
                status: None,
            }));
        }
        return Err(refused);
    }
    Ok(Outcome::Applied {
        remote_ref: head
            .map(|h| h.name)
            .or_else(|| Some(format!("stock.picking,{picking}"))),
        superseded: false,
        flagged,
    })
}

/// A line we read was re-created by Odoo (re-reservation) before our write reached it:
/// nothing was applied; read again and retry.
fn reread_on_missing(o: Outcome) -> Outcome {
    match o {
        // ...or the picking was validated meanwhile (its lines are locked): read again, and
        // the next attempt compares with what Odoo did.
        Outcome::Conflict(f)
            if f.message.contains("does not exist") || f.message.contains("locked") =>
        {
            Outcome::Failed(OdooError::Server {
                name: "odoo.exceptions.ConcurrencyError".into(),
                message: format!(
                    "a move line changed under the write ({}); reading again",
                    f.message
                ),
                status: None,
            })
        }
        other => other,
    }
}

/// Ids of the existing lots the new lines name, by (product, lot name).
async fn lot_ids<O: Odoo>(
    odoo: &O,
    creates: &[NewLine],
    expiries: &BTreeMap<(i64, String), String>,
    edge: &Value,
) -> Result<(BTreeMap<(i64, String), i64>, Vec<Finding>), Outcome> {
    let names: BTreeSet<&str> = creates
        .iter()
        .map(|n| n.key.lot.as_str())
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        return Ok((BTreeMap::new(), Vec::new()));
    }
    let products: BTreeSet<i64> = creates.iter().map(|n| n.key.product_id).collect();
    let search = |fields: Value| {
        Call::new("stock.lot", "search_read")
            .arg(
                "domain",
                json!([["name", "in", names], ["product_id", "in", products]]),
            )
            .arg("fields", fields)
            .arg("order", "id")
    };
    // `expiration_date` exists only with product_expiry: without it, no expiry to compare.
    let v = if expiries.is_empty() {
        run(odoo, search(json!(["name", "product_id"])), edge).await?
    } else {
        match run(
            odoo,
            search(json!(["name", "product_id", "expiration_date"])),
            edge,
        )
        .await
        {
            Err(Outcome::Conflict(f)) if f.message.contains("Invalid field") => {
                run(odoo, search(json!(["name", "product_id"])), edge).await?
            }
            other => other?,
        }
    };
    let mut ids = BTreeMap::new();
    let mut flagged = Vec::new();
    for r in records(v) {
        let (Some(product), Some(id)) = (
            r.get("product_id").and_then(m2o_id),
            r.get("id").and_then(Value::as_i64),
        ) else {
            continue;
        };
        let name = text(&r, "name");
        let cloud = r.get("expiration_date").and_then(Value::as_str);
        if let (Some(floor), Some(cloud)) = (expiries.get(&(product, name.clone())), cloud)
            && floor.get(..10) != cloud.get(..10)
        {
            flagged.push(Finding {
                kind: ConflictKind::LotExpiry,
                message: format!(
                    "lot {name} of product {product} exists in Odoo with expiry {cloud}; the floor received it with {floor} (received into the existing lot)"
                ),
                edge: json!({"product_id": product, "lot": name, "expiration_date": floor}),
                cloud: json!({"lot_id": id, "expiration_date": cloud}),
            });
        }
        ids.insert((product, name), id);
    }
    Ok((ids, flagged))
}

/// Odoo refuses a duplicate serial only within one location: a serial received while the
/// cloud holds it in another bin, or picked from a bin while the cloud holds it in another,
/// would be applied and leave it in stock twice. Checked before anything is written: a
/// receipt's serial may be in stock nowhere, a pick's nowhere but its source bin.
async fn serials_in_use<O: Odoo>(odoo: &O, keys: &[LineKey], edge: &Value) -> Result<(), Outcome> {
    // A serial is one unit: a key holding more names a lot, and costs no call.
    let keys: Vec<&LineKey> = keys.iter().filter(|k| !k.lot.is_empty()).collect();
    let tracked: BTreeSet<i64> = keys.iter().map(|k| k.product_id).collect();
    if tracked.is_empty() {
        return Ok(());
    }
    let serial: BTreeSet<i64> = ids_of(
        &run(
            odoo,
            Call::new("product.product", "search")
                .arg(
                    "domain",
                    json!([
                        ["id", "in", tracked],
                        ["tracking", "=", "serial"],
                        ["active", "in", [true, false]]
                    ]),
                )
                .arg("order", "id"),
            edge,
        )
        .await?,
    )
    .into_iter()
    .collect();
    let keys: Vec<&LineKey> = keys
        .into_iter()
        .filter(|k| serial.contains(&k.product_id))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let names: BTreeSet<&str> = keys.iter().map(|k| k.lot.as_str()).collect();
    let quants = records(
        run(
            odoo,
            Call::new("stock.quant", "search_read")
                .arg(
                    "domain",
                    json!([
                        ["product_id", "in", serial],
                        ["lot_id.name", "in", names],
                        ["quantity", ">", 0],
                        ["location_id.usage", "=", "internal"]
                    ]),
                )
                .arg(
                    "fields",
                    json!(["product_id", "lot_id", "location_id", "quantity"]),
                )
                .arg("order", "id"),
            edge,
        )
        .await?,
    );
    for key in keys {
        let held: Vec<&Map<String, Value>> = quants
            .iter()
            .filter(|q| {
                q.get("product_id").and_then(m2o_id) == Some(key.product_id)
                    && q.get("lot_id").and_then(m2o_name).as_deref() == Some(key.lot.as_str())
                    && (key.side == Side::Destination
                        || q.get("location_id").and_then(m2o_id) != Some(key.location_id))
            })
            .collect();
        if held.is_empty() {
            continue;
        }
        let places: Vec<String> = held
            .iter()
            .map(|q| {
                q.get("location_id")
                    .and_then(m2o_name)
                    .unwrap_or_else(|| "an unnamed location".into())
            })
            .collect();
        let verb = match key.side {
            Side::Destination => "received",
            Side::Source => "picked",
        };
        return Err(Outcome::Conflict(Finding {
            kind: ConflictKind::SerialInUse,
            message: format!(
                "serial {} of product {} was {verb} on the floor but Odoo holds it in stock at {}",
                key.lot,
                key.product_id,
                places.join(", ")
            ),
            edge: json!({"product_id": key.product_id, "lot": key.lot, "location_id": key.location_id, "side": key.side}),
            cloud: json!({"quants": held.iter().map(|q| json!({
                "id": q.get("id"),
                "location_id": q.get("location_id").and_then(m2o_id),
                "location": q.get("location_id").and_then(m2o_name),
                "quantity": num(q, "quantity"),
            })).collect::<Vec<_>>()}),
        }));
    }
    Ok(())
}

/// Archived products are a person's decision (apply by id, or not): held back.
async fn archived<O: Odoo>(odoo: &O, products: BTreeSet<i64>, edge: &Value) -> Result<(), Outcome> {
    if products.is_empty() {
        return Ok(());
    }
    let v = run(
        odoo,
        Call::new("product.product", "search_read")
            .arg(
                "domain",
                json!([["id", "in", products], ["active", "=", false]]),
            )
            .arg("fields", json!(["display_name"]))
            .arg("order", "id"),
        edge,
    )
    .await?;
    let found = records(v);
    if found.is_empty() {
        return Ok(());
    }
    Err(Outcome::Conflict(Finding {
        kind: ConflictKind::ProductArchived,
        message: format!(
            "archived in Odoo: {}",
            found
                .iter()
                .map(|r| text(r, "display_name"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        edge: edge.clone(),
        cloud: json!({"archived": found.iter().filter_map(|r| r.get("id").cloned()).collect::<Vec<_>>()}),
    }))
}

/// New pick lines take stock nobody reserved for this picking: flag those taking more than
/// the cloud says is available (the physical pick is the warehouse's truth: it is applied).
async fn over_picks<O: Odoo>(
    odoo: &O,
    creates: &[NewLine],
    edge: &Value,
) -> Result<Vec<Finding>, Outcome> {
    let picks: Vec<&NewLine> = creates
        .iter()
        .filter(|n| n.key.side == Side::Source)
        .collect();
    if picks.is_empty() {
        return Ok(Vec::new());
    }
    let products: BTreeSet<i64> = picks.iter().map(|n| n.key.product_id).collect();
    let locations: BTreeSet<i64> = picks.iter().map(|n| n.key.location_id).collect();
    let v = run(
        odoo,
        Call::new("stock.quant", "search_read")
            .arg(
                "domain",
                json!([
                    ["product_id", "in", products],
                    ["location_id", "in", locations]
                ]),
            )
            .arg(
                "fields",
                json!([
                    "product_id",
                    "location_id",
                    "lot_id",
                    "quantity",
                    "reserved_quantity"
                ]),
            )
            .arg("order", "id"),
        edge,
    )
    .await?;
    let quants = records(v);
    let mut out = Vec::new();
    for n in picks {
        let available: f64 = quants
            .iter()
            .filter(|q| {
                q.get("product_id").and_then(m2o_id) == Some(n.key.product_id)
                    && q.get("location_id").and_then(m2o_id) == Some(n.key.location_id)
                    && q.get("lot_id").and_then(m2o_name).unwrap_or_default() == n.key.lot
            })
            .map(|q| num(q, "quantity") - num(q, "reserved_quantity"))
            .sum();
        if n.quantity > available + EPS {
            out.push(Finding {
                kind: ConflictKind::OverPick,
                message: format!(
                    "picked {} of product {} at location {}; Odoo has {} available there",
                    n.quantity, n.key.product_id, n.key.location_id, available
                ),
                edge: json!({"product_id": n.key.product_id, "location_id": n.key.location_id, "lot": n.key.lot, "picked": n.quantity}),
                cloud: json!({"available": available}),
            });
        }
    }
    Ok(out)
}

/// Validates without wizards (context shortcuts), answering any wizard that still comes back
/// with the context it carries.
async fn validate_picking<O: Odoo>(
    odoo: &O,
    picking: i64,
    choice: BackorderChoice,
    edge: &Value,
) -> Result<(), Outcome> {
    let mut call = Call::new("stock.picking", "button_validate")
        .ids(&[picking])
        .context("skip_backorder", true)
        .context("skip_sms", true);
    if choice == BackorderChoice::NoBackorder {
        call = call.context("picking_ids_not_to_backorder", json!([picking]));
    }
    let mut answer = run(odoo, call, edge).await?;
    // A wizard may answer with another wizard (SMS, then backorder); a handful is plenty.
    for _ in 0..3 {
        let Some(action) = answer.as_object() else {
            return Ok(());
        };
        let model = action
            .get("res_model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let context = action
            .get("context")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let method = match model.as_str() {
            "stock.backorder.confirmation" => match choice {
                BackorderChoice::Backorder => "process",
                BackorderChoice::NoBackorder => "process_cancel_backorder",
            },
            "confirm.stock.sms" => "dont_send_sms",
            other => {
                return Err(Outcome::Conflict(Finding {
                    kind: ConflictKind::Validation,
                    message: format!(
                        "Odoo asked for a decision the appliance does not make: {other}"
                    ),
                    edge: edge.clone(),
                    cloud: Value::Object(action.clone()),
                }));
            }
        };
        let mut create = Call::new(&model, "create").arg("vals_list", json!([{}]));
        let mut process = Call::new(&model, method);
        for (k, v) in &context {
            create = create.context(k, v.clone());
            process = process.context(k, v.clone());
        }
        let wizard = ids_of(&run(odoo, create, edge).await?);
        answer = run(odoo, process.ids(&wizard), edge).await?;
    }
    Err(Outcome::Conflict(Finding {
        kind: ConflictKind::Validation,
        message: "Odoo kept asking for confirmations on validation".into(),
        edge: edge.clone(),
        cloud: answer,
    }))
}

// ---------------------------------------------------------------------------------------
// Counts
// ---------------------------------------------------------------------------------------

/// Looks for the inventory move an earlier attempt of this entry left.
async fn find_inventory_move<O: Odoo>(
    odoo: &O,
    entry: &str,
    edge: &Value,
) -> Result<Option<i64>, Outcome> {
    // Odoo appends " (User Name)" to the move's reference when a user set the count.
    let v = run(
        odoo,
        Call::new("stock.move", "search")
            .arg(
                "domain",
                json!([
                    ["is_inventory", "=", true],
                    ["reference", "=like", format!("{}%", mark(entry))]
                ]),
            )
            .arg("order", "id"),
        edge,
    )
    .await?;
    Ok(ids_of(&v).first().copied())
}

async fn find_lot<O: Odoo>(
    odoo: &O,
    product: i64,
    name: &str,
    edge: &Value,
) -> Result<Option<i64>, Outcome> {
    let v = run(
        odoo,
        Call::new("stock.lot", "search")
            .arg(
                "domain",
                json!([["name", "=", name], ["product_id", "=", product]]),
            )
            .arg("order", "id"),
        edge,
    )
    .await?;
    Ok(ids_of(&v).first().copied())
}

/// How close an unmarked inventory move's quantity must be to a count's delta to be taken
/// for that count applied by someone else (Odoo rounds to the unit's precision, 0.01 or finer
/// for the units a warehouse counts in).
const COUNT_DELTA_TOLERANCE: f64 = 0.005;

/// An earlier attempt may have written `inventory_quantity` and lost its answer before
/// applying it: Odoo then shows a pending count, and a person's "Apply all" applies it under
/// their own reference, without our mark. Any inventory move on this quant since the entry
/// was first sent that carries no Holdfast mark may be that one: applying the count again
/// could count it twice, so the outcome is a person's call.
async fn unmarked_counts<O: Odoo>(
    odoo: &O,
    op: &CountOp,
    lot: Option<i64>,
    since_ms: i64,
    edge: &Value,
) -> Result<Option<Finding>, Outcome> {
    let since = jiff::Timestamp::from_millisecond(since_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let mut domain = vec![
        json!(["is_inventory", "=", true]),
        json!(["state", "=", "done"]),
        json!(["product_id", "=", op.product_id]),
        json!(["create_date", ">=", since]),
        json!("|"),
        json!(["location_id", "=", op.location_id]),
        json!(["location_dest_id", "=", op.location_id]),
    ];
    match lot {
        Some(l) => domain.push(json!(["move_line_ids.lot_id", "=", l])),
        // A lot Odoo did not know before this attempt has never been counted there.
        None if op.lot_name.is_some() => return Ok(None),
        None => {}
    }
    let moves = records(
        run(
            odoo,
            Call::new("stock.move", "search_read")
                .arg("domain", Value::Array(domain))
                .arg(
                    "fields",
                    json!([
                        "reference",
                        "product_uom_qty",
                        "location_id",
                        "location_dest_id",
                        "create_date"
                    ]),
                )
                .arg("order", "id"),
            edge,
        )
        .await?,
    );
    // Odoo fixes a pending count's difference when `inventory_quantity` is written
    // (`inventory_diff_quantity` depends on it alone), so someone applying *our* pending count
    // makes a move of exactly our delta, whatever moved since. A foreign move of another size
    // (stock set by hand, another count) cannot be ours and is no reason to stop.
    let ours = op.counted - op.expected;
    let foreign: Vec<Value> = moves
        .iter()
        .filter(|m| !text(m, "reference").starts_with("holdfast:"))
        .filter_map(|m| {
            let into = m.get("location_dest_id").and_then(m2o_id) == Some(op.location_id);
            let qty = num(m, "product_uom_qty");
            let delta = if into { qty } else { -qty };
            ((delta - ours).abs() < COUNT_DELTA_TOLERANCE).then(|| {
                json!({
                    "move_id": m.get("id"),
                    "reference": text(m, "reference"),
                    "delta": delta,
                    "create_date": text(m, "create_date"),
                })
            })
        })
        .collect();
    if foreign.is_empty() {
        return Ok(None);
    }
    Ok(Some(Finding {
        kind: ConflictKind::CountUnconfirmed,
        message: format!(
            "this count's earlier attempt may have left it pending in Odoo, and {} count(s) were applied there since without the appliance's mark (e.g. \"{}\"): check whether Odoo already holds it before retrying",
            foreign.len(),
            foreign
                .first()
                .and_then(|m| m["reference"].as_str())
                .unwrap_or_default()
        ),
        edge: edge.clone(),
        cloud: json!({"inventory_moves": foreign}),
    }))
}

/// Pushes a count as a delta merge onto the cloud's current quantity.
pub async fn push_count<O: Odoo>(odoo: &O, entry: &PushEntry, op: &CountOp) -> Outcome {
    match push_count_inner(odoo, entry, op).await {
        Ok(o) | Err(o) => o,
    }
}

async fn push_count_inner<O: Odoo>(
    odoo: &O,
    entry: &PushEntry,
    op: &CountOp,
) -> Result<Outcome, Outcome> {
    let delta = op.counted - op.expected;
    let edge = json!({"product_id": op.product_id, "location_id": op.location_id, "lot": op.lot_name, "counted": op.counted, "expected": op.expected, "delta": delta});
    if entry.ambiguous
        && let Some(id) = find_inventory_move(odoo, &entry.id, &edge).await?
    {
        return Ok(Outcome::Applied {
            remote_ref: Some(format!("stock.move,{id}")),
            superseded: true,
            flagged: Vec::new(),
        });
    }
    if delta.abs() > EPS {
        archived(odoo, BTreeSet::from([op.product_id]), &edge).await?;
    }
    if delta.abs() <= EPS {
        // The count confirmed what the view showed: nothing to move in Odoo.
        return Ok(Outcome::Applied {
            remote_ref: None,
            superseded: false,
            flagged: Vec::new(),
        });
    }
    let lot = match &op.lot_name {
        Some(name) => match find_lot(odoo, op.product_id, name, &edge).await? {
            Some(id) => Some(id),
            None => {
                let created = run(
                    odoo,
                    Call::new("stock.lot", "create").arg(
                        "vals_list",
                        json!([{"name": name, "product_id": op.product_id}]),
                    ),
                    &edge,
                )
                .await?;
                ids_of(&created).first().copied()
            }
        },
        None => None,
    };
    if entry.ambiguous
        && let Some(since) = entry.sent_since
        && let Some(finding) = unmarked_counts(odoo, op, lot, since, &edge).await?
    {
        return Ok(Outcome::Conflict(finding));
    }
    let mut domain = vec![
        json!(["product_id", "=", op.product_id]),
        json!(["location_id", "=", op.location_id]),
    ];
    domain.push(json!([
        "lot_id",
        "=",
        lot.map_or(Value::Bool(false), |l| json!(l))
    ]));
    let quants = records(
        run(
            odoo,
            Call::new("stock.quant", "search_read")
                .arg("domain", Value::Array(domain))
                .arg("fields", json!(["quantity"]))
                .arg("order", "id"),
            &edge,
        )
        .await?,
    );
    let current: f64 = quants.iter().map(|q| num(q, "quantity")).sum();
    let target = current + delta;
    let quant = match quants
        .first()
        .and_then(|q| q.get("id"))
        .and_then(Value::as_i64)
    {
        Some(id) => {
            run(
                odoo,
                Call::new("stock.quant", "write")
                    .ids(&[id])
                    .arg("vals", json!({"inventory_quantity": target - (current - num(&quants[0], "quantity"))}))
                    .context("inventory_mode", true),
                &edge,
            )
            .await?;
            id
        }
        None => {
            let mut vals = json!({"product_id": op.product_id, "location_id": op.location_id, "inventory_quantity": target});
            if let Some(l) = lot {
                vals["lot_id"] = json!(l);
            }
            let created = run(
                odoo,
                Call::new("stock.quant", "create")
                    .arg("vals_list", json!([vals]))
                    .context("inventory_mode", true),
                &edge,
            )
            .await?;
            match ids_of(&created).first() {
                Some(id) => *id,
                None => {
                    return Err(Outcome::Failed(OdooError::Protocol {
                        status: 200,
                        reason: format!("stock.quant create answered {created}"),
                    }));
                }
            }
        }
    };
    // Odoo fixes the count's difference when `inventory_quantity` is written, and its own
    // conflict check catches moves after that; a move between our read and that write would
    // slip through. Read again: if the quantity moved, start over on the new one.
    let again = records(
        run(
            odoo,
            Call::new("stock.quant", "read")
                .ids(&[quant])
                .arg("fields", json!(["quantity"])),
            &edge,
        )
        .await?,
    );
    let quantity_now = again.first().map(|q| num(q, "quantity"));
    let read_before = quants
        .iter()
        .find(|q| q.get("id").and_then(Value::as_i64) == Some(quant))
        .map(|q| num(q, "quantity"))
        .unwrap_or(0.0);
    if quantity_now.is_none_or(|q| (q - read_before).abs() > EPS) {
        return Err(Outcome::Failed(OdooError::Server {
            name: "odoo.exceptions.ConcurrencyError".into(),
            message: "the quant changed while the count was set; retrying on its new quantity"
                .into(),
            status: None,
        }));
    }
    let answer = run(
        odoo,
        Call::new("stock.quant", "action_apply_inventory")
            .ids(&[quant])
            .context("inventory_name", mark(&entry.id)),
        &edge,
    )
    .await?;
    if answer.get("res_model").and_then(Value::as_str) == Some("stock.inventory.conflict") {
        // The quant moved between our read and the apply: read again on the next attempt,
        // so the delta lands on the newest quantity.
        return Err(Outcome::Failed(OdooError::Server {
            name: "odoo.exceptions.ConcurrencyError".into(),
            message: "the quant changed while the count was applied; retrying on its new quantity"
                .into(),
            status: None,
        }));
    }
    Ok(Outcome::Applied {
        remote_ref: Some(format!("stock.quant,{quant}")),
        superseded: false,
        flagged: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------
// New pickings: transfers, and pickings re-created by a conflict's resolution
// ---------------------------------------------------------------------------------------

/// The site's internal picking type: the warehouse's `int_type_id` ("Internal Transfers").
/// Without multi-step routes a warehouse also has other internal types (Pick, Pack,
/// Storage...) that exist archived; a transfer must not land on one of those.
pub async fn internal_picking_type<O: Odoo>(
    odoo: &O,
    warehouse: i64,
) -> Result<Option<i64>, OdooError> {
    let v = odoo
        .call(
            Call::new("stock.warehouse", "read")
                .ids(&[warehouse])
                .arg("fields", json!(["int_type_id"])),
        )
        .await?;
    Ok(records(v)
        .first()
        .and_then(|r| r.get("int_type_id"))
        .and_then(m2o_id))
}

/// Plain text as the body of an Html field (`stock.picking.note`).
fn html_paragraphs(text: &str) -> String {
    text.lines()
        .map(|line| {
            let escaped = line
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!("<p>{escaped}</p>")
        })
        .collect()
}

/// Pushes a transfer: an internal picking carrying the mark in `origin`.
pub async fn push_transfer<O: Odoo>(
    odoo: &O,
    entry: &PushEntry,
    op: &TransferOp,
    picking_type: i64,
) -> Outcome {
    push_new_picking(odoo, entry, &NewPicking::transfer(op, picking_type)).await
}

/// Creates a picking whose `origin` is the entry's mark, in the same call as its moves, then
/// confirms, reserves, sets the lines and validates it (no backorder). A retry after an
/// unknown outcome finds it by origin and carries on from its state.
pub async fn push_new_picking<O: Odoo>(odoo: &O, entry: &PushEntry, spec: &NewPicking) -> Outcome {
    match push_new_picking_inner(odoo, entry, spec).await {
        Ok(o) | Err(o) => o,
    }
}

async fn push_new_picking_inner<O: Odoo>(
    odoo: &O,
    entry: &PushEntry,
    spec: &NewPicking,
) -> Result<Outcome, Outcome> {
    let mark = mark(&entry.id);
    let origin = spec.origin_with(&mark);
    let edge = serde_json::to_value(spec).unwrap_or(Value::Null);
    let mut found = None;
    if entry.ambiguous {
        // `ilike`: the mark ends an origin that may name the original first.
        let v = run(
            odoo,
            Call::new("stock.picking", "search_read")
                .arg("domain", json!([["origin", "ilike", mark]]))
                .arg("fields", json!(["state", "name"]))
                .arg("order", "id"),
            &edge,
        )
        .await?;
        found = records(v).into_iter().next();
    }
    let (picking, state, name) = match found {
        Some(r) => (
            r.get("id").and_then(Value::as_i64).unwrap_or(0),
            text(&r, "state"),
            text(&r, "name"),
        ),
        None => {
            archived(
                odoo,
                spec.lines.iter().map(|l| l.product_id).collect(),
                &edge,
            )
            .await?;
            let serials: Vec<LineKey> = spec
                .lines
                .iter()
                .filter(|l| {
                    l.lot_name.as_deref().is_some_and(|n| !n.is_empty())
                        && l.quantity > EPS
                        && l.quantity <= 1.0 + EPS
                })
                .map(|l| LineKey {
                    move_id: 0,
                    product_id: l.product_id,
                    lot: l.lot_name.clone().unwrap_or_default(),
                    location_id: l.location_id,
                    package_id: 0,
                    side: spec.side,
                })
                .collect();
            serials_in_use(odoo, &serials, &edge).await?;
            let mut per_product: BTreeMap<i64, f64> = BTreeMap::new();
            for l in &spec.lines {
                *per_product.entry(l.product_id).or_insert(0.0) += l.quantity;
            }
            let moves: Vec<Value> = per_product
                .iter()
                .map(|(product, qty)| {
                    let mut mv = json!({"product_id": product, "product_uom_qty": qty,
                                        "location_id": spec.location_id, "location_dest_id": spec.location_dest_id});
                    if odoo.moves_take_name() {
                        // `stock.move.name` is required on 18 and gone on 19.
                        mv["name"] = json!(origin);
                    }
                    json!([0, 0, mv])
                })
                .collect();
            let mut vals = json!({"picking_type_id": spec.picking_type_id, "location_id": spec.location_id,
                                  "location_dest_id": spec.location_dest_id, "origin": origin,
                                  "move_ids": moves});
            if let Some(partner) = spec.partner_id {
                vals["partner_id"] = json!(partner);
            }
            if let Some(note) = spec.note.as_deref().filter(|n| !n.trim().is_empty()) {
                vals["note"] = json!(html_paragraphs(note));
            }
            let created = run(
                odoo,
                Call::new("stock.picking", "create").arg("vals_list", json!([vals])),
                &edge,
            )
            .await?;
            let Some(id) = ids_of(&created).first().copied() else {
                return Err(Outcome::Failed(OdooError::Protocol {
                    status: 200,
                    reason: format!("stock.picking create answered {created}"),
                }));
            };
            (id, "draft".to_owned(), String::new())
        }
    };
    let remote_ref = Some(if name.is_empty() {
        format!("stock.picking,{picking}")
    } else {
        name
    });
    match state.as_str() {
        "done" => {
            return Ok(Outcome::Applied {
                remote_ref,
                superseded: true,
                flagged: Vec::new(),
            });
        }
        "cancel" => {
            return Ok(Outcome::Conflict(Finding {
                kind: ConflictKind::PickingCancelled,
                message: "the picking the appliance created was cancelled in Odoo".into(),
                edge,
                cloud: json!({"state": "cancel", "picking_id": picking}),
            }));
        }
        "draft" => {
            run(
                odoo,
                Call::new("stock.picking", "action_confirm").ids(&[picking]),
                &edge,
            )
            .await?;
        }
        _ => {}
    }
    run(
        odoo,
        Call::new("stock.picking", "action_assign").ids(&[picking]),
        &edge,
    )
    .await?;
    let lines = read_lines(odoo, picking, &edge).await?;
    // Moves by product: from the lines when reserved, else read them.
    let mut move_of: BTreeMap<i64, i64> = lines
        .iter()
        .filter(|l| l.move_id != 0)
        .map(|l| (l.product_id, l.move_id))
        .collect();
    if spec
        .lines
        .iter()
        .any(|l| !move_of.contains_key(&l.product_id))
    {
        let v = run(
            odoo,
            Call::new("stock.move", "search_read")
                .arg("domain", json!([["picking_id", "=", picking]]))
                .arg("fields", json!(["product_id"]))
                .arg("order", "id"),
            &edge,
        )
        .await?;
        for r in records(v) {
            if let (Some(id), Some(product)) = (
                r.get("id").and_then(Value::as_i64),
                r.get("product_id").and_then(m2o_id),
            ) {
                move_of.entry(product).or_insert(id);
            }
        }
    }
    let mut targets: BTreeMap<LineKey, f64> = BTreeMap::new();
    for l in &spec.lines {
        let Some(move_id) = move_of.get(&l.product_id).copied() else {
            return Ok(Outcome::Conflict(Finding {
                kind: ConflictKind::Validation,
                message: format!(
                    "the created picking has no move for product {}",
                    l.product_id
                ),
                edge,
                cloud: json!({"picking_id": picking}),
            }));
        };
        *targets
            .entry(LineKey {
                move_id,
                product_id: l.product_id,
                lot: l.lot_name.clone().unwrap_or_default(),
                location_id: l.location_id,
                package_id: 0,
                side: spec.side,
            })
            .or_insert(0.0) += l.quantity;
    }
    let plan = plan_lines(&targets, &lines, true);
    let mut commands: Vec<Value> = plan
        .updates
        .iter()
        .map(|(id, vals)| json!([1, id, vals]))
        .collect();
    let (lots, _) = lot_ids(odoo, &plan.creates, &BTreeMap::new(), &edge).await?;
    let flagged = over_picks(odoo, &plan.creates, &edge).await?;
    for new in &plan.creates {
        let (src, dest) = match spec.side {
            Side::Source => (new.key.location_id, spec.location_dest_id),
            Side::Destination => (spec.location_id, new.key.location_id),
        };
        let mut vals = json!({"move_id": new.key.move_id, "picking_id": picking, "product_id": new.key.product_id,
                              "location_id": src, "location_dest_id": dest,
                              "quantity": new.quantity, "picked": true});
        if !new.key.lot.is_empty() {
            match lots.get(&(new.key.product_id, new.key.lot.clone())) {
                Some(id) => vals["lot_id"] = json!(id),
                None => vals["lot_name"] = json!(new.key.lot),
            }
        }
        commands.push(json!([0, 0, vals]));
    }
    if !commands.is_empty() {
        run(
            odoo,
            Call::new("stock.picking", "write")
                .ids(&[picking])
                .arg("vals", json!({"move_line_ids": commands})),
            &edge,
        )
        .await?;
    }
    validate_picking(odoo, picking, BackorderChoice::NoBackorder, &edge).await?;
    Ok(Outcome::Applied {
        remote_ref,
        superseded: false,
        flagged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::PickOp;

    fn pick(move_id: i64, location: i64, lot: Option<&str>, q: f64) -> Operation {
        Operation::Pick(PickOp {
            picking_id: 1,
            move_id,
            product_id: 10,
            location_id: location,
            lot_name: lot.map(str::to_owned),
            package_id: None,
            quantity: q,
            view_quantity: 100.0,
        })
    }

    fn line(id: i64, move_id: i64, location: i64, lot: &str, q: f64, picked: bool) -> CloudLine {
        CloudLine {
            id,
            move_id,
            product_id: 10,
            lot_id: None,
            lot: lot.into(),
            location_id: location,
            location_dest_id: 99,
            package_id: 0,
            quantity: q,
            picked,
            state: "assigned".into(),
        }
    }

    #[test]
    fn targets_are_absolute_sums_and_corrections_subtract() {
        let t = targets(
            &[pick(1, 5, None, 3.0)],
            &[
                pick(1, 5, None, 2.0),
                pick(1, 5, None, -1.0),
                pick(2, 6, Some("L1"), 1.0),
            ],
        );
        let q: Vec<f64> = t.values().copied().collect();
        assert_eq!(q, vec![4.0, 1.0]);
    }

    #[test]
    fn plan_sets_keyed_lines_creates_missing_and_zeroes_the_rest_on_validation() {
        let t = targets(&[], &[pick(1, 5, None, 4.0), pick(2, 6, Some("L1"), 1.0)]);
        // Move 1 was re-reserved into two lines at bin 5 plus one at bin 7 nobody picked.
        let lines = vec![
            line(30, 1, 5, "", 3.0, false),
            line(31, 1, 5, "", 2.0, false),
            line(32, 1, 7, "", 1.0, false),
        ];
        let plan = plan_lines(&t, &lines, false);
        assert_eq!(plan.updates.len(), 2);
        assert_eq!(plan.updates[0].0, 30);
        assert_eq!(plan.updates[0].1["quantity"], json!(4.0));
        assert_eq!(plan.updates[0].1["picked"], json!(true));
        assert_eq!(plan.updates[1].1["quantity"], json!(0.0));
        assert_eq!(plan.creates.len(), 1);
        assert_eq!(plan.creates[0].key.lot, "L1");
        let plan = plan_lines(&t, &lines, true);
        assert!(
            plan.updates
                .iter()
                .any(|(id, v)| *id == 32 && v["quantity"] == json!(0.0))
        );
    }

    #[test]
    fn planning_twice_after_the_write_is_a_no_op() {
        let t = targets(&[], &[pick(1, 5, None, 4.0)]);
        let lines = vec![line(30, 1, 5, "", 4.0, true)];
        assert!(plan_lines(&t, &lines, false).is_empty());
    }

    #[test]
    fn done_pickings_compare_by_key_not_by_line() {
        let t = targets(&[], &[pick(1, 5, None, 4.0)]);
        let same = vec![
            line(40, 1, 5, "", 1.0, true),
            line(41, 1, 5, "", 3.0, true),
            line(42, 1, 6, "", 0.0, false),
        ];
        assert!(compare_done(&t, &same).is_ok());
        let other = vec![line(40, 1, 5, "", 3.0, true)];
        assert!(compare_done(&t, &other).is_err());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn key(m: i64, loc: i64, lot: u8) -> LineKey {
            LineKey {
                move_id: m,
                product_id: 10,
                lot: if lot == 0 {
                    String::new()
                } else {
                    format!("L{lot}")
                },
                location_id: loc,
                package_id: 0,
                side: Side::Source,
            }
        }

        /// Applies a plan the way Odoo would (updates, then creates with fresh ids).
        fn apply(lines: &mut Vec<CloudLine>, plan: &LinePlan) {
            for (id, vals) in &plan.updates {
                if let Some(l) = lines.iter_mut().find(|l| l.id == *id) {
                    l.quantity = vals["quantity"].as_f64().unwrap_or(l.quantity);
                    l.picked = vals["picked"].as_bool().unwrap_or(l.picked);
                }
            }
            let first = lines.iter().map(|l| l.id).max().unwrap_or(0) + 1;
            for (next, c) in (first..).zip(&plan.creates) {
                lines.push(CloudLine {
                    id: next,
                    move_id: c.key.move_id,
                    product_id: c.key.product_id,
                    lot_id: None,
                    lot: c.key.lot.clone(),
                    location_id: c.key.location_id,
                    location_dest_id: 99,
                    package_id: 0,
                    quantity: c.quantity,
                    picked: true,
                    state: "assigned".into(),
                });
            }
        }

        proptest! {
            /// Whatever Odoo holds (re-reserved, split, partly picked), one plan brings its
            /// lines to the floor's targets, and planning again sends nothing: pushing twice
            /// is harmless.
            #[test]
            fn one_plan_reaches_the_targets_and_a_second_is_empty(
                targets in proptest::collection::vec((1i64..4, 1i64..4, 0u8..3, 0u32..6), 0..8),
                cloud in proptest::collection::vec((1i64..4, 1i64..4, 0u8..3, 0u32..6, any::<bool>()), 0..10),
                validating in any::<bool>(),
            ) {
                let mut t: BTreeMap<LineKey, f64> = BTreeMap::new();
                for (m, loc, lot, q) in targets {
                    t.insert(key(m, loc, lot), q as f64);
                }
                let mut lines: Vec<CloudLine> = cloud
                    .into_iter()
                    .enumerate()
                    .map(|(i, (m, loc, lot, q, picked))| {
                        let k = key(m, loc, lot);
                        CloudLine {
                            id: i as i64 + 1,
                            move_id: k.move_id,
                            product_id: k.product_id,
                            lot_id: None,
                            lot: k.lot,
                            location_id: k.location_id,
                            location_dest_id: 99,
                            package_id: 0,
                            quantity: q as f64,
                            picked,
                            state: "assigned".into(),
                        }
                    })
                    .collect();
                let plan = plan_lines(&t, &lines, validating);
                apply(&mut lines, &plan);
                prop_assert!(plan_lines(&t, &lines, validating).is_empty());
                // Every key holds its target, picked (lines no key claims are left alone
                // unless validating).
                for (k, q) in &t {
                    let held: f64 = lines.iter().filter(|l| l.picked && l.key(k.side) == *k).map(|l| l.quantity).sum();
                    prop_assert!((held - q).abs() < 1e-9, "{k:?} holds {held}, target {q}");
                }
                if validating {
                    let picked: Vec<CloudLine> = lines.iter().filter(|l| l.picked).cloned().collect();
                    prop_assert!(compare_done(&t, &picked).is_ok());
                    // Nothing the floor did not pick would ship.
                    for l in &lines {
                        let claimed = t.get(&l.key(Side::Source)).is_some_and(|q| *q > 0.0);
                        prop_assert!(claimed || l.quantity == 0.0, "{l:?} ships unpicked stock");
                    }
                }
            }
        }
    }
}
