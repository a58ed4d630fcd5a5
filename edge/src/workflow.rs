//! Floor workflows: one state machine per session (pick, receive, count, transfer).
//!
//! A step takes the session's state, one input (a resolved scan, a quantity, a validation,
//! "finish") and read access to the view, and returns the outcome for the device (`ok` /
//! `warning` / `error` with a stable code and a message fit for a small screen), the new state
//! and the operations to journal. It does no I/O of its own: the caller ([`crate::floor`])
//! writes the state and the operations in one transaction, or nothing when the step was
//! refused — a refused input leaves the session exactly as it was.
//!
//! Operations are intents (DESIGN.md, "Operations"): a product scan on a pick is "took 1 of lot
//! L from bin B for move M, the view showed 12", written when it is scanned. Entering a number
//! sets the quantity of the current line at that bin: the difference is journalled (negative
//! when the picker puts some back).

use holdfast_sync::ops::{
    BackorderChoice, CountOp, Operation, PickOp, ReceiveOp, TransferOp, ValidateOp,
};
use serde::{Deserialize, Serialize};

use crate::resolve::Resolved;
use crate::store::{MoveDetail, PickingSummary, Reader, StoreError};

mod quantity;

pub use quantity::{
    DEFAULT_ROUNDING, Zero, check as check_quantity, parse as parse_quantity, snap,
};

/// Quantities closer than this are equal (Odoo's default UoM rounding is 0.01 and finer).
const EPSILON: f64 = 1e-6;

/// What the site wants from its pickers (`[floor]` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloorPolicy {
    /// Pickers must scan the source bin before the product.
    pub require_source_location: bool,
    /// What happens when a line gets more than its demand.
    pub over_pick: OverPick,
    /// The most one quantity may be (`floor.max_quantity`).
    pub max_quantity: u32,
    /// Where over-picks are allowed or warned of, a line's total stays within its demand
    /// times this (`floor.over_pick_factor`).
    pub over_pick_factor: u32,
}

impl Default for FloorPolicy {
    fn default() -> FloorPolicy {
        FloorPolicy {
            require_source_location: true,
            over_pick: OverPick::Warn,
            max_quantity: 1_000_000,
            over_pick_factor: 10,
        }
    }
}

/// Over-pick (and over-receive) policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverPick {
    Refuse,
    Warn,
    Allow,
}

/// The four workflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    Pick,
    Receive,
    Count,
    Transfer,
}

impl Workflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Workflow::Pick => "pick",
            Workflow::Receive => "receive",
            Workflow::Count => "count",
            Workflow::Transfer => "transfer",
        }
    }

    pub fn parse(s: &str) -> Option<Workflow> {
        [
            Workflow::Pick,
            Workflow::Receive,
            Workflow::Count,
            Workflow::Transfer,
        ]
        .into_iter()
        .find(|w| w.as_str() == s)
    }
}

/// The next input a session waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// A source location (pick, transfer, count) or a destination (receive, optional).
    Location,
    Product,
    /// The lot or serial of the product just scanned.
    Lot,
    /// A quantity: scan the product again (+1) or enter a number.
    Quantity,
    /// Where the goods in hand go (transfer).
    Destination,
    /// The session has ended.
    Nothing,
}

/// Step outcome shown to the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Error,
}

/// A line in progress: what was recorded for one move at one bin and lot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub move_id: i64,
    pub product_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_name: Option<String>,
    /// The bin taken from (pick) or put to (receive).
    pub location_id: i64,
    /// Recorded for this line so far.
    pub quantity: f64,
}

/// A product scanned whose lot or serial is still to come.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwaitingLot {
    pub product_id: i64,
    pub quantity: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
}

/// Goods in hand during a transfer, or the product being counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub product_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_name: Option<String>,
    pub quantity: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PickState {
    pub picking_id: i64,
    /// The bin scanned last.
    pub location_id: Option<i64>,
    pub line: Option<Line>,
    pub awaiting: Option<AwaitingLot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveState {
    pub picking_id: i64,
    /// Put-away bin chosen by the operator (else each move's destination).
    pub dest_location_id: Option<i64>,
    pub line: Option<Line>,
    pub awaiting: Option<AwaitingLot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountState {
    pub location_id: Option<i64>,
    /// Scanned, waiting for its counted quantity (`quantity` unused).
    pub counting: Option<Item>,
    pub awaiting: Option<AwaitingLot>,
    pub n_counted: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferState {
    pub from_location_id: Option<i64>,
    pub item: Option<Item>,
    pub awaiting: Option<AwaitingLot>,
    pub n_moved: u32,
}

/// A session's persisted state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "workflow", rename_all = "snake_case")]
pub enum Machine {
    Pick(PickState),
    Receive(ReceiveState),
    Count(CountState),
    Transfer(TransferState),
}

/// An input to a session.
#[derive(Clone, Debug)]
pub enum Input {
    Scan(Scan),
    Quantity(f64),
    Validate(Option<BackorderChoice>),
    /// End a count or transfer session.
    Finish,
}

/// A scan, decoded and resolved against the view.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The code as scanned (symbology identifier stripped; GS1 in its bracketed form).
    pub text: String,
    pub resolved: Vec<Resolved>,
    /// A GS1 scan's lot or serial (AI 10 / 21) and expiry (AI 17 / 15, Odoo's format);
    /// `None` for plain codes.
    pub gs1_lot: Option<Gs1Lot>,
}

/// What a GS1 label says about a lot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gs1Lot {
    pub lot_name: Option<String>,
    pub expiration_date: Option<String>,
}

impl Scan {
    /// The scan as the lot/serial of `product_id` a step is waiting for: a label of that
    /// product with AI 10/21, or, where nothing else matched, the label itself (a receipt
    /// brings new lots, which no lookup can know). Returns the lot and any expiry.
    fn lot_of(&self, product_id: i64) -> Result<(String, Option<String>), StepError> {
        let products = self.products();
        match products.iter().find(|p| p.0 == product_id) {
            Some((_, _, Some(lot), expiry)) => Ok((lot.clone(), expiry.clone())),
            Some((_, _, None, _)) => Err(refuse(
                "lot_required",
                "scan the lot/serial label, not the product",
            )),
            None if products.is_empty() && self.resolved.is_empty() => self.lot_label(),
            None => Err(unusable(self, "the lot/serial")),
        }
    }

    /// The scan read as a lot/serial label where nothing else matched: a plain code is the
    /// lot's name; a GS1 label must carry AI 10 or 21.
    fn lot_label(&self) -> Result<(String, Option<String>), StepError> {
        match &self.gs1_lot {
            None => Ok((self.text.clone(), None)),
            Some(Gs1Lot {
                lot_name: Some(lot),
                expiration_date,
            }) => Ok((lot.clone(), expiration_date.clone())),
            Some(_) => Err(refuse(
                "lot_required",
                "that GS1 label carries no lot or serial (AI 10 or 21)",
            )),
        }
    }

    fn location(&self) -> Option<i64> {
        self.resolved.iter().find_map(|r| match r {
            Resolved::Location { location_id, .. } => Some(*location_id),
            _ => None,
        })
    }

    /// Products the scan names: (product, quantity, lot, expiry). A lot barcode names its
    /// product with the scanned text as the lot.
    fn products(&self) -> Vec<(i64, f64, Option<String>, Option<String>)> {
        self.resolved
            .iter()
            .filter_map(|r| match r {
                Resolved::Product {
                    product_id,
                    quantity,
                    lot_name,
                    expiration_date,
                } => Some((
                    *product_id,
                    *quantity,
                    lot_name.clone(),
                    expiration_date.clone(),
                )),
                Resolved::Lot { product_id, .. } => {
                    Some((*product_id, 1.0, Some(self.text.clone()), None))
                }
                _ => None,
            })
            .collect()
    }

    fn package(&self) -> Option<i64> {
        self.resolved.iter().find_map(|r| match r {
            Resolved::Package { package_id } => Some(*package_id),
            _ => None,
        })
    }

    fn is_picking(&self) -> bool {
        self.resolved
            .iter()
            .any(|r| matches!(r, Resolved::Picking { .. }))
    }
}

/// A refused input: nothing is written and the session stays as it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// Why a step could not run: refused by the rules, or the store failed.
#[derive(Debug)]
pub enum StepError {
    Refused(Refusal),
    Store(StoreError),
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> StepError {
        StepError::Store(e)
    }
}

fn refuse(code: &'static str, message: impl Into<String>) -> StepError {
    StepError::Refused(Refusal {
        code,
        message: message.into(),
    })
}

/// An accepted step.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    pub status: Status,
    pub code: &'static str,
    pub message: String,
    pub machine: Machine,
    pub ops: Vec<Operation>,
    /// The session has ended (validated or finished).
    pub finished: bool,
}

/// What a step reads: the view, and the site's policy.
#[derive(Debug)]
pub struct Cx<'a, 'c> {
    pub reader: &'a Reader<'c>,
    pub policy: FloorPolicy,
}

impl Cx<'_, '_> {
    fn product_name(&self, id: i64) -> Result<String, StoreError> {
        Ok(self
            .reader
            .product(id)?
            .map(|p| match p.default_code {
                Some(code) => format!("[{code}] {}", p.name),
                None => p.name,
            })
            .unwrap_or_else(|| format!("product {id}")))
    }

    fn tracking(&self, id: i64) -> Result<String, StoreError> {
        Ok(self
            .reader
            .product(id)?
            .map(|p| p.tracking)
            .unwrap_or_else(|| "none".into()))
    }

    fn location_name(&self, id: i64) -> Result<String, StoreError> {
        Ok(self
            .reader
            .location(id)?
            .map(|l| l.name)
            .unwrap_or_else(|| format!("location {id}")))
    }

    fn internal_location(&self, id: i64) -> Result<String, StepError> {
        match self.reader.location(id)? {
            Some(l) if l.usage == "internal" => Ok(l.name),
            Some(l) => Err(refuse(
                "wrong_location",
                format!("{} is not a stock location", l.name),
            )),
            None => Err(refuse("wrong_location", format!("unknown location {id}"))),
        }
    }

    fn picking(&self, id: i64) -> Result<(PickingSummary, Vec<MoveDetail>), StepError> {
        self.reader.picking(id)?.ok_or_else(|| {
            refuse(
                "not_found",
                format!("picking {id} is no longer on this site"),
            )
        })
    }
}

/// Starts a session's state machine. Pickings must be open and of the right kind.
pub fn start(
    cx: &Cx<'_, '_>,
    workflow: Workflow,
    picking_id: Option<i64>,
) -> Result<(Machine, String), StepError> {
    match (workflow, picking_id) {
        (Workflow::Pick | Workflow::Receive, None) => Err(refuse(
            "picking_required",
            "choose a picking: scan its name or pick it from the list",
        )),
        (Workflow::Pick | Workflow::Receive, Some(id)) => {
            let (picking, _) = cx.picking(id)?;
            if matches!(picking.state.as_str(), "done" | "cancel" | "draft") {
                return Err(refuse(
                    "picking_closed",
                    format!("{} is {}: nothing to do", picking.name, picking.state),
                ));
            }
            if cx.reader.validated_on_floor(id)? {
                return Err(refuse(
                    "picking_closed",
                    format!("{} was validated here already", picking.name),
                ));
            }
            let receipt = picking.kind == "incoming";
            match (workflow, receipt) {
                (Workflow::Pick, true) => Err(refuse(
                    "wrong_workflow",
                    format!("{} is a receipt: use Receive", picking.name),
                )),
                (Workflow::Receive, false) => Err(refuse(
                    "wrong_workflow",
                    format!("{} is not a receipt: use Pick", picking.name),
                )),
                (Workflow::Pick, false) => Ok((
                    Machine::Pick(PickState {
                        picking_id: id,
                        location_id: None,
                        line: None,
                        awaiting: None,
                    }),
                    format!("Picking {}", picking.name),
                )),
                _ => Ok((
                    Machine::Receive(ReceiveState {
                        picking_id: id,
                        dest_location_id: None,
                        line: None,
                        awaiting: None,
                    }),
                    format!("Receiving {}", picking.name),
                )),
            }
        }
        (Workflow::Count, _) => Ok((
            Machine::Count(CountState {
                location_id: None,
                counting: None,
                awaiting: None,
                n_counted: 0,
            }),
            "Cycle count".into(),
        )),
        (Workflow::Transfer, _) => Ok((
            Machine::Transfer(TransferState {
                from_location_id: None,
                item: None,
                awaiting: None,
                n_moved: 0,
            }),
            "Transfer".into(),
        )),
    }
}

impl Machine {
    pub fn workflow(&self) -> Workflow {
        match self {
            Machine::Pick(_) => Workflow::Pick,
            Machine::Receive(_) => Workflow::Receive,
            Machine::Count(_) => Workflow::Count,
            Machine::Transfer(_) => Workflow::Transfer,
        }
    }

    pub fn picking_id(&self) -> Option<i64> {
        match self {
            Machine::Pick(s) => Some(s.picking_id),
            Machine::Receive(s) => Some(s.picking_id),
            _ => None,
        }
    }

    /// Runs one input. On refusal the caller keeps the old state.
    pub fn step(&self, cx: &Cx<'_, '_>, input: &Input) -> Result<Accepted, StepError> {
        let mut next = self.clone();
        let mut out = Out::default();
        match (&mut next, input) {
            (Machine::Pick(s), Input::Scan(scan)) => pick_scan(s, scan, cx, &mut out)?,
            (Machine::Pick(s), Input::Quantity(q)) => {
                line_quantity(&mut s.line, *q, cx, Workflow::Pick, s.picking_id, &mut out)?
            }
            (Machine::Pick(s), Input::Validate(choice)) => {
                validate(s.picking_id, *choice, cx, &mut out)?
            }
            (Machine::Receive(s), Input::Scan(scan)) => receive_scan(s, scan, cx, &mut out)?,
            (Machine::Receive(s), Input::Quantity(q)) => line_quantity(
                &mut s.line,
                *q,
                cx,
                Workflow::Receive,
                s.picking_id,
                &mut out,
            )?,
            (Machine::Receive(s), Input::Validate(choice)) => {
                validate(s.picking_id, *choice, cx, &mut out)?
            }
            (Machine::Pick(_) | Machine::Receive(_), Input::Finish) => {
                return Err(refuse(
                    "wrong_step",
                    "a picking ends by validating it (or cancel the session)",
                ));
            }
            (Machine::Count(s), Input::Scan(scan)) => count_scan(s, scan, cx, &mut out)?,
            (Machine::Count(s), Input::Quantity(q)) => count_quantity(s, *q, cx, &mut out)?,
            (Machine::Count(s), Input::Finish) => {
                if let Some(item) = &s.counting {
                    return Err(refuse(
                        "count_pending",
                        format!(
                            "enter the counted quantity of {} first",
                            cx.product_name(item.product_id)?
                        ),
                    ));
                }
                out.finish(
                    "finished",
                    format!("Count finished: {} counted", s.n_counted),
                );
            }
            (Machine::Transfer(s), Input::Scan(scan)) => transfer_scan(s, scan, cx, &mut out)?,
            (Machine::Transfer(s), Input::Quantity(q)) => {
                let Some(item) = &mut s.item else {
                    return Err(refuse("product_first", "scan a product first"));
                };
                let q = quantity::checked(cx, item.product_id, *q, Zero::Refused)?;
                serial_quantity(cx, item.product_id, q)?;
                item.quantity = q;
                out.ok(
                    "quantity_set",
                    format!(
                        "{} x {}: scan the destination",
                        fmt_qty(q),
                        cx.product_name(item.product_id)?
                    ),
                );
            }
            (Machine::Transfer(s), Input::Finish) => {
                if let Some(item) = &s.item {
                    return Err(refuse(
                        "item_pending",
                        format!(
                            "scan the destination of {} first",
                            cx.product_name(item.product_id)?
                        ),
                    ));
                }
                out.finish(
                    "finished",
                    format!("Transfer finished: {} moved", s.n_moved),
                );
            }
            (Machine::Count(_) | Machine::Transfer(_), Input::Validate(_)) => {
                return Err(refuse(
                    "wrong_step",
                    "only pickings are validated; use Finish",
                ));
            }
        }
        Ok(Accepted {
            status: out.status,
            code: out.code,
            message: out.message,
            machine: next,
            ops: out.ops,
            finished: out.finished,
        })
    }

    /// The input the session waits for.
    pub fn expect(&self, policy: &FloorPolicy) -> Expect {
        match self {
            Machine::Pick(s) => {
                if s.awaiting.is_some() {
                    Expect::Lot
                } else if s.line.is_some() {
                    Expect::Quantity
                } else if s.location_id.is_none() && policy.require_source_location {
                    Expect::Location
                } else {
                    Expect::Product
                }
            }
            Machine::Receive(s) => {
                if s.awaiting.is_some() {
                    Expect::Lot
                } else if s.line.is_some() {
                    Expect::Quantity
                } else {
                    Expect::Product
                }
            }
            Machine::Count(s) => {
                if s.awaiting.is_some() {
                    Expect::Lot
                } else if s.counting.is_some() {
                    Expect::Quantity
                } else if s.location_id.is_none() {
                    Expect::Location
                } else {
                    Expect::Product
                }
            }
            Machine::Transfer(s) => {
                if s.awaiting.is_some() {
                    Expect::Lot
                } else if s.item.is_some() {
                    Expect::Destination
                } else if s.from_location_id.is_none() {
                    Expect::Location
                } else {
                    Expect::Product
                }
            }
        }
    }

    /// A one-line prompt for the next input.
    pub fn prompt(&self, cx: &Cx<'_, '_>) -> Result<String, StoreError> {
        let expect = self.expect(&cx.policy);
        let awaiting = match self {
            Machine::Pick(PickState { awaiting, .. })
            | Machine::Receive(ReceiveState { awaiting, .. })
            | Machine::Count(CountState { awaiting, .. })
            | Machine::Transfer(TransferState { awaiting, .. }) => awaiting.as_ref(),
        };
        Ok(match (self, expect) {
            (_, Expect::Lot) => match awaiting {
                Some(a) => format!("Scan the lot/serial of {}", cx.product_name(a.product_id)?),
                None => "Scan the lot/serial".into(),
            },
            (Machine::Pick(s), Expect::Location | Expect::Product) => {
                match next_move(cx, s.picking_id)? {
                    Some((m, bin)) => {
                        let left = fmt_qty(m.demand - m.picked);
                        if expect == Expect::Location {
                            format!("Go to {bin}, scan the bin ({left} x {})", m.product)
                        } else {
                            format!("Scan {} ({left} to pick, {bin})", m.product)
                        }
                    }
                    None => "All lines picked: validate".into(),
                }
            }
            (Machine::Receive(s), Expect::Product) => {
                let (_, moves) = match cx.reader.picking(s.picking_id)? {
                    Some(p) => p,
                    None => return Ok("Picking no longer on this site".into()),
                };
                match moves.iter().find(|m| m.picked + EPSILON < m.demand) {
                    Some(m) => format!(
                        "Scan a product ({} x {} expected)",
                        fmt_qty(m.demand - m.picked),
                        m.product
                    ),
                    None => "Everything received: validate".into(),
                }
            }
            (_, Expect::Quantity) => "Scan again (+1) or enter the quantity".into(),
            (Machine::Count(_), Expect::Location) => "Scan the bin to count".into(),
            (Machine::Count(s), Expect::Product) => format!(
                "Scan a product in {}",
                cx.location_name(s.location_id.unwrap_or_default())?
            ),
            (Machine::Transfer(_), Expect::Location) => "Scan the bin to take from".into(),
            (Machine::Transfer(s), Expect::Product) => format!(
                "Scan a product in {}",
                cx.location_name(s.from_location_id.unwrap_or_default())?
            ),
            (Machine::Transfer(_), Expect::Destination) => {
                "Scan again (+1), enter the quantity, or scan the destination bin".into()
            }
            _ => "Scan".into(),
        })
    }
}

/// The first move with something left to pick, and where to take it from.
pub fn next_move(
    cx: &Cx<'_, '_>,
    picking_id: i64,
) -> Result<Option<(MoveDetail, String)>, StoreError> {
    let Some((_, moves)) = cx.reader.picking(picking_id)? else {
        return Ok(None);
    };
    let Some(m) = moves.into_iter().find(|m| m.picked + EPSILON < m.demand) else {
        return Ok(None);
    };
    let bin = m
        .reserved
        .first()
        .map(|(loc, _, _)| loc.clone())
        .or_else(|| m.location.clone())
        .unwrap_or_default();
    Ok(Some((m, bin)))
}

/// The accumulating answer of a step.
#[derive(Debug)]
struct Out {
    status: Status,
    code: &'static str,
    message: String,
    ops: Vec<Operation>,
    finished: bool,
}

impl Default for Out {
    fn default() -> Out {
        Out {
            status: Status::Ok,
            code: "ok",
            message: String::new(),
            ops: Vec::new(),
            finished: false,
        }
    }
}

impl Out {
    fn ok(&mut self, code: &'static str, message: String) {
        self.code = code;
        self.message = message;
    }

    fn warn(&mut self, code: &'static str, message: String) {
        self.status = Status::Warning;
        self.code = code;
        self.message = message;
    }

    fn finish(&mut self, code: &'static str, message: String) {
        self.ok(code, message);
        self.finished = true;
    }
}

/// Shows a quantity without a pointless ".0".
pub fn fmt_qty(q: f64) -> String {
    // Quantities are kept to millionths (see `quantity::snap`): six places show them all.
    let text = format!("{:.6}", snap(q));
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_owned()
    }
}

fn serial_quantity(cx: &Cx<'_, '_>, product_id: i64, quantity: f64) -> Result<(), StepError> {
    if cx.tracking(product_id)? == "serial" && (quantity - 1.0).abs() > EPSILON {
        return serial_quantity_of("serial", &cx.product_name(product_id)?, quantity);
    }
    Ok(())
}

/// [`serial_quantity`] with the product's tracking and name at hand (a move's).
fn serial_quantity_of(tracking: &str, name: &str, quantity: f64) -> Result<(), StepError> {
    if tracking == "serial" && (quantity - 1.0).abs() > EPSILON {
        return Err(refuse(
            "serial_quantity",
            format!("{name} is tracked by serial number: scan each serial (quantity 1)"),
        ));
    }
    Ok(())
}

/// A scan that no step of this workflow can use.
fn unusable(scan: &Scan, wanted: &str) -> StepError {
    if scan.resolved.is_empty() {
        refuse("unknown_barcode", format!("unknown barcode {}", scan.text))
    } else if scan.is_picking() {
        refuse(
            "wrong_step",
            "that is a picking: finish or leave this session first",
        )
    } else {
        refuse("wrong_step", format!("expected {wanted}"))
    }
}

/// The move of a picking a product scan belongs to: the first with something left, else the
/// first at all (an over-pick, judged by the policy).
fn move_for(moves: &[MoveDetail], product_id: i64) -> Option<&MoveDetail> {
    moves
        .iter()
        .filter(|m| m.product_id == product_id)
        .find(|m| m.picked + EPSILON < m.demand)
        .or_else(|| moves.iter().find(|m| m.product_id == product_id))
}

/// Checks a new total of a move against its demand, by policy.
fn over_check(
    cx: &Cx<'_, '_>,
    m: &MoveDetail,
    added: f64,
    verb: &str,
) -> Result<Option<String>, StepError> {
    let total = m.picked + added;
    if added <= 0.0 || total <= m.demand + EPSILON {
        return Ok(None);
    }
    let ceiling = m.demand * f64::from(cx.policy.over_pick_factor.max(1));
    if cx.policy.over_pick != OverPick::Refuse && m.demand > 0.0 && total > ceiling + EPSILON {
        return Err(refuse(
            "over_pick_limit",
            format!(
                "{} x {} would be more than {} times the {} ordered; check the number",
                fmt_qty(total),
                m.product,
                cx.policy.over_pick_factor.max(1),
                fmt_qty(m.demand)
            ),
        ));
    }
    let message = format!(
        "{} {}/{} {}: more than ordered",
        verb,
        fmt_qty(total),
        fmt_qty(m.demand),
        m.product
    );
    match cx.policy.over_pick {
        OverPick::Refuse => Err(refuse(
            "over_pick",
            format!(
                "only {} x {} left on this line",
                fmt_qty((m.demand - m.picked).max(0.0)),
                m.product
            ),
        )),
        OverPick::Warn => Ok(Some(message)),
        OverPick::Allow => Ok(None),
    }
}

fn pick_scan(
    s: &mut PickState,
    scan: &Scan,
    cx: &Cx<'_, '_>,
    out: &mut Out,
) -> Result<(), StepError> {
    let (picking, moves) = cx.picking(s.picking_id)?;
    if let Some(loc) = scan.location() {
        let name = cx.internal_location(loc)?;
        if !cx.reader.location_within(loc, picking.location_id)? {
            return Err(refuse(
                "wrong_location",
                format!(
                    "{name} is not a source of this picking ({})",
                    cx.location_name(picking.location_id)?
                ),
            ));
        }
        s.location_id = Some(loc);
        s.line = None;
        s.awaiting = None;
        out.ok("location", format!("At {name}: scan a product"));
        return Ok(());
    }
    if let Some(awaiting) = s.awaiting.clone() {
        let (lot, _) = scan.lot_of(awaiting.product_id)?;
        let m = move_for(&moves, awaiting.product_id)
            .ok_or_else(|| refuse("wrong_product", "that product is not on this picking"))?
            .clone();
        s.awaiting = None;
        return record_pick(s, cx, &m, Some(lot), awaiting.quantity, None, out);
    }
    if s.location_id.is_none() && cx.policy.require_source_location {
        if scan.products().is_empty() && scan.package().is_none() {
            return Err(unusable(scan, "a bin"));
        }
        return Err(refuse("location_first", "scan the source bin first"));
    }
    if let Some(package_id) = scan.package() {
        return pick_package(s, cx, &moves, package_id, out);
    }
    let products = scan.products();
    if products.is_empty() {
        return Err(unusable(scan, "a product"));
    }
    let Some((product_id, quantity, lot, _)) = products
        .iter()
        .find(|p| moves.iter().any(|m| m.product_id == p.0))
        .cloned()
    else {
        return Err(refuse(
            "wrong_product",
            format!(
                "{} is not on {}",
                cx.product_name(products[0].0)?,
                picking.name
            ),
        ));
    };
    let m = move_for(&moves, product_id)
        .ok_or_else(|| refuse("wrong_product", "that product is not on this picking"))?
        .clone();
    // A batch on the label of a product Odoo does not track by lot means nothing here.
    let lot = lot.filter(|_| m.tracking != "none");
    if lot.is_none() && m.tracking != "none" {
        serial_quantity(cx, product_id, quantity)?;
        s.awaiting = Some(AwaitingLot {
            product_id,
            quantity,
            expiration_date: None,
        });
        s.line = None;
        out.ok(
            "lot_required",
            format!("{}: scan its lot/serial", m.product),
        );
        return Ok(());
    }
    record_pick(s, cx, &m, lot, quantity, None, out)
}

/// Picks a whole package: every quant in it must belong to a move of the picking.
fn pick_package(
    s: &mut PickState,
    cx: &Cx<'_, '_>,
    moves: &[MoveDetail],
    package_id: i64,
    out: &mut Out,
) -> Result<(), StepError> {
    let contents = cx.reader.package_contents(package_id)?;
    if contents.is_empty() {
        return Err(refuse("empty_package", "that package holds nothing here"));
    }
    // Each quant is judged against the move as the earlier quants of the package left it.
    let mut moves = moves.to_vec();
    for (product_id, location_id, lot_name, quantity) in contents {
        let m = move_for(&moves, product_id)
            .ok_or_else(|| {
                refuse(
                    "wrong_product",
                    "the package holds a product that is not on this picking",
                )
            })?
            .clone();
        s.location_id = Some(location_id);
        let lot = (!lot_name.is_empty()).then_some(lot_name);
        let mut item = Out::default();
        record_pick(s, cx, &m, lot, quantity, Some(package_id), &mut item)?;
        out.ops.append(&mut item.ops);
        if item.status == Status::Warning {
            out.warn(item.code, item.message);
        }
        if let Some(picked) = moves.iter_mut().find(|x| x.move_id == m.move_id) {
            picked.picked += quantity;
        }
    }
    s.line = None;
    if out.status == Status::Ok {
        out.ok("package_picked", "Package picked".into());
    }
    Ok(())
}

fn record_pick(
    s: &mut PickState,
    cx: &Cx<'_, '_>,
    m: &MoveDetail,
    lot: Option<String>,
    quantity: f64,
    package_id: Option<i64>,
    out: &mut Out,
) -> Result<(), StepError> {
    let quantity = quantity::checked_move(cx, m, quantity, Zero::Refused)?;
    serial_quantity_of(&m.tracking, &m.product, quantity)?;
    let lot_key = lot.clone().unwrap_or_default();
    // The bin: scanned, else where Odoo reserved this lot, else the move's source.
    let location_id = match s.location_id {
        Some(l) => l,
        None => cx
            .reader
            .reservations(m.move_id)?
            .into_iter()
            .find(|(_, l, _)| lot.is_none() || *l == lot_key)
            .map(|(loc, _, _)| loc)
            .unwrap_or(m.location_id),
    };
    if !cx.reader.location_within(location_id, m.location_id)? {
        return Err(refuse(
            "wrong_location",
            format!(
                "{} is not taken from {}",
                m.product,
                cx.location_name(location_id)?
            ),
        ));
    }
    if let Some(lot) = &lot
        && cx.reader.lot(m.product_id, lot)?.is_none()
    {
        return Err(refuse(
            "unknown_lot",
            format!("lot/serial {lot} of {} is not known here", m.product),
        ));
    }
    let view_quantity = cx.reader.on_hand(m.product_id, location_id, &lot_key)?;
    if m.tracking == "serial" && view_quantity < 1.0 - EPSILON {
        return Err(refuse(
            "serial_not_here",
            format!(
                "serial {lot_key} is not in stock at {} (already picked?)",
                cx.location_name(location_id)?
            ),
        ));
    }
    let over = over_check(cx, m, quantity, "Picked")?;
    let short = (view_quantity + EPSILON < quantity).then(|| {
        format!(
            "the view shows only {} here; recorded anyway",
            fmt_qty(view_quantity.max(0.0))
        )
    });
    out.ops.push(Operation::Pick(PickOp {
        picking_id: s.picking_id,
        move_id: m.move_id,
        product_id: m.product_id,
        location_id,
        lot_name: lot.clone(),
        package_id,
        quantity,
        view_quantity,
    }));
    let same_line = s.line.as_ref().is_some_and(|l| {
        l.move_id == m.move_id && l.location_id == location_id && l.lot_name == lot
    });
    match &mut s.line {
        Some(line) if same_line => line.quantity = snap(line.quantity + quantity),
        _ => {
            s.line = Some(Line {
                move_id: m.move_id,
                product_id: m.product_id,
                lot_name: lot,
                location_id,
                quantity,
            })
        }
    }
    let done = format!(
        "Picked {}/{} {}",
        fmt_qty(m.picked + quantity),
        fmt_qty(m.demand),
        m.product
    );
    match (over, short) {
        (Some(w), _) => out.warn("over_pick", w),
        (None, Some(w)) => out.warn("short_stock", format!("{done}: {w}")),
        (None, None) => out.ok("picked", done),
    }
    Ok(())
}

/// A number entered for the current line: sets its quantity at this bin (and lot).
fn line_quantity(
    line: &mut Option<Line>,
    quantity: f64,
    cx: &Cx<'_, '_>,
    workflow: Workflow,
    picking_id: i64,
    out: &mut Out,
) -> Result<(), StepError> {
    let Some(l) = line.as_mut() else {
        return Err(refuse("product_first", "scan a product first"));
    };
    let quantity = quantity::checked(cx, l.product_id, quantity, Zero::Allowed)?;
    if cx.tracking(l.product_id)? == "serial" {
        return Err(refuse(
            "serial_quantity",
            "serial numbers are scanned one by one",
        ));
    }
    let (_, moves) = cx.picking(picking_id)?;
    let m = moves
        .iter()
        .find(|m| m.move_id == l.move_id)
        .ok_or_else(|| refuse("not_found", "that line is no longer on the picking"))?;
    let delta = snap(quantity - l.quantity);
    let verb = if workflow == Workflow::Pick {
        "Picked"
    } else {
        "Received"
    };
    if delta.abs() <= EPSILON {
        out.ok(
            "quantity_set",
            format!(
                "{verb} {}/{} {}",
                fmt_qty(m.picked),
                fmt_qty(m.demand),
                m.product
            ),
        );
        return Ok(());
    }
    let over = over_check(cx, m, delta, verb)?;
    let op = match workflow {
        Workflow::Pick => Operation::Pick(PickOp {
            picking_id,
            move_id: l.move_id,
            product_id: l.product_id,
            location_id: l.location_id,
            lot_name: l.lot_name.clone(),
            package_id: None,
            quantity: delta,
            view_quantity: cx.reader.on_hand(
                l.product_id,
                l.location_id,
                l.lot_name.as_deref().unwrap_or(""),
            )?,
        }),
        _ => Operation::Receive(ReceiveOp {
            picking_id,
            move_id: l.move_id,
            product_id: l.product_id,
            location_dest_id: l.location_id,
            lot_name: l.lot_name.clone(),
            expiration_date: None,
            quantity: delta,
        }),
    };
    out.ops.push(op);
    l.quantity = quantity;
    let message = format!(
        "{verb} {}/{} {}",
        fmt_qty(m.picked + delta),
        fmt_qty(m.demand),
        m.product
    );
    match over {
        Some(w) => out.warn("over_pick", w),
        None => out.ok("quantity_set", message),
    }
    Ok(())
}

fn validate(
    picking_id: i64,
    choice: Option<BackorderChoice>,
    cx: &Cx<'_, '_>,
    out: &mut Out,
) -> Result<(), StepError> {
    let (picking, moves) = cx.picking(picking_id)?;
    if cx.reader.validated_on_floor(picking_id)? {
        return Err(refuse(
            "picking_closed",
            format!("{} was validated here already", picking.name),
        ));
    }
    if moves.iter().all(|m| m.picked <= EPSILON) {
        return Err(refuse(
            "nothing_done",
            format!("nothing recorded on {} yet", picking.name),
        ));
    }
    let short = moves.iter().any(|m| m.picked + EPSILON < m.demand);
    let backorder = match (short, choice) {
        (true, None) => {
            return Err(refuse(
                "backorder_choice_required",
                "some lines are short: create a backorder, or close without one?",
            ));
        }
        (true, Some(c)) => c,
        // Nothing is left over: there is no backorder to make either way.
        (false, c) => c.unwrap_or(BackorderChoice::NoBackorder),
    };
    out.ops.push(Operation::Validate(ValidateOp {
        picking_id,
        backorder,
    }));
    let tail = match (short, backorder) {
        (false, _) => "",
        (true, BackorderChoice::Backorder) => " (backorder for the rest)",
        (true, BackorderChoice::NoBackorder) => " (no backorder)",
    };
    out.finish("validated", format!("{} validated{tail}", picking.name));
    Ok(())
}

fn receive_scan(
    s: &mut ReceiveState,
    scan: &Scan,
    cx: &Cx<'_, '_>,
    out: &mut Out,
) -> Result<(), StepError> {
    let (picking, moves) = cx.picking(s.picking_id)?;
    if let Some(loc) = scan.location() {
        let name = cx.internal_location(loc)?;
        if !cx.reader.location_within(loc, picking.location_dest_id)? {
            return Err(refuse(
                "wrong_location",
                format!(
                    "{name} is not a destination of this receipt ({})",
                    cx.location_name(picking.location_dest_id)?
                ),
            ));
        }
        s.dest_location_id = Some(loc);
        // The put-away bin may come after the line (product → quantity → lot → bin): what
        // the line recorded moves there, as two entries (out of the old bin, into the new).
        match s.line.as_mut() {
            Some(line) if line.location_id != loc && line.quantity.abs() > EPSILON => {
                for (location_dest_id, quantity) in
                    [(line.location_id, -line.quantity), (loc, line.quantity)]
                {
                    out.ops.push(Operation::Receive(ReceiveOp {
                        picking_id: s.picking_id,
                        move_id: line.move_id,
                        product_id: line.product_id,
                        location_dest_id,
                        lot_name: line.lot_name.clone(),
                        expiration_date: None,
                        quantity,
                    }));
                }
                line.location_id = loc;
                out.ok(
                    "location",
                    format!("Putting away to {name}, this line included"),
                );
            }
            _ => out.ok("location", format!("Putting away to {name}")),
        }
        return Ok(());
    }
    let products = scan.products();
    if let Some(awaiting) = s.awaiting.clone() {
        let (lot, expiry) = scan.lot_of(awaiting.product_id)?;
        let m = move_for(&moves, awaiting.product_id)
            .ok_or_else(|| refuse("wrong_product", "that product is not on this receipt"))?
            .clone();
        s.awaiting = None;
        let expiry = expiry.or(awaiting.expiration_date);
        return record_receive(s, cx, &m, Some(lot), expiry, awaiting.quantity, out);
    }
    if products.is_empty() {
        return Err(unusable(scan, "a product"));
    }
    let Some((product_id, quantity, lot, expiry)) = products
        .iter()
        .find(|p| moves.iter().any(|m| m.product_id == p.0))
        .cloned()
    else {
        return Err(refuse(
            "wrong_product",
            format!(
                "{} is not on {}",
                cx.product_name(products[0].0)?,
                picking.name
            ),
        ));
    };
    let m = move_for(&moves, product_id)
        .ok_or_else(|| refuse("wrong_product", "that product is not on this receipt"))?
        .clone();
    // A batch (and its expiry) on the label of an untracked product means nothing here.
    let (lot, expiry) = if m.tracking == "none" {
        (None, None)
    } else {
        (lot, expiry)
    };
    if lot.is_none() && m.tracking != "none" {
        serial_quantity(cx, product_id, quantity)?;
        s.awaiting = Some(AwaitingLot {
            product_id,
            quantity,
            expiration_date: expiry,
        });
        s.line = None;
        out.ok(
            "lot_required",
            format!("{}: scan or type its lot/serial", m.product),
        );
        return Ok(());
    }
    record_receive(s, cx, &m, lot, expiry, quantity, out)
}

fn record_receive(
    s: &mut ReceiveState,
    cx: &Cx<'_, '_>,
    m: &MoveDetail,
    lot: Option<String>,
    expiration_date: Option<String>,
    quantity: f64,
    out: &mut Out,
) -> Result<(), StepError> {
    let quantity = quantity::checked_move(cx, m, quantity, Zero::Refused)?;
    serial_quantity_of(&m.tracking, &m.product, quantity)?;
    let dest = s.dest_location_id.unwrap_or(m.location_dest_id);
    let mut warning = None;
    if let Some(lot) = &lot {
        holdfast_sync::ops::check_lot_name(lot).map_err(|e| refuse("bad_lot", e.to_string()))?;
        if m.tracking == "serial" && cx.reader.lot_on_hand(m.product_id, lot)? > EPSILON {
            return Err(refuse(
                "serial_exists",
                format!("serial {lot} of {} is already in stock", m.product),
            ));
        }
        if let (Some(known), Some(new)) = (cx.reader.lot(m.product_id, lot)?, &expiration_date)
            && known.expiration_date.as_ref().is_some_and(|k| k != new)
        {
            warning = Some(format!(
                "lot {lot} already exists with expiry {}; recorded with the existing lot",
                known.expiration_date.unwrap_or_default()
            ));
        }
    }
    let over = over_check(cx, m, quantity, "Received")?;
    out.ops.push(Operation::Receive(ReceiveOp {
        picking_id: s.picking_id,
        move_id: m.move_id,
        product_id: m.product_id,
        location_dest_id: dest,
        lot_name: lot.clone(),
        expiration_date,
        quantity,
    }));
    let same_line = s
        .line
        .as_ref()
        .is_some_and(|l| l.move_id == m.move_id && l.location_id == dest && l.lot_name == lot);
    match &mut s.line {
        Some(line) if same_line => line.quantity += quantity,
        _ => {
            s.line = Some(Line {
                move_id: m.move_id,
                product_id: m.product_id,
                lot_name: lot,
                location_id: dest,
                quantity,
            })
        }
    }
    let done = format!(
        "Received {}/{} {}",
        fmt_qty(m.picked + quantity),
        fmt_qty(m.demand),
        m.product
    );
    match (over, warning) {
        (Some(w), _) => out.warn("over_pick", w),
        (None, Some(w)) => out.warn("lot_expiry_differs", w),
        (None, None) => out.ok("received", done),
    }
    Ok(())
}

fn count_scan(
    s: &mut CountState,
    scan: &Scan,
    cx: &Cx<'_, '_>,
    out: &mut Out,
) -> Result<(), StepError> {
    if let Some(loc) = scan.location() {
        let name = cx.internal_location(loc)?;
        s.location_id = Some(loc);
        s.counting = None;
        s.awaiting = None;
        out.ok("location", format!("Counting {name}: scan a product"));
        return Ok(());
    }
    let products = scan.products();
    if let Some(awaiting) = s.awaiting.clone() {
        let (lot, _) = scan.lot_of(awaiting.product_id)?;
        s.awaiting = None;
        s.counting = Some(Item {
            product_id: awaiting.product_id,
            lot_name: Some(lot.clone()),
            quantity: 0.0,
        });
        out.ok(
            "counting",
            format!(
                "{} lot {lot}: enter the counted quantity",
                cx.product_name(awaiting.product_id)?
            ),
        );
        return Ok(());
    }
    if s.location_id.is_none() {
        return Err(refuse("location_first", "scan the bin to count first"));
    }
    if let Some(item) = &s.counting {
        return Err(refuse(
            "count_pending",
            format!(
                "enter the counted quantity of {} first",
                cx.product_name(item.product_id)?
            ),
        ));
    }
    let Some((product_id, _, lot, _)) = products.first().cloned() else {
        return Err(unusable(scan, "a product"));
    };
    let lot = lot.filter(|_| cx.tracking(product_id).is_ok_and(|t| t != "none"));
    let name = cx.product_name(product_id)?;
    if lot.is_none() && cx.tracking(product_id)? != "none" {
        s.awaiting = Some(AwaitingLot {
            product_id,
            quantity: 0.0,
            expiration_date: None,
        });
        out.ok("lot_required", format!("{name}: scan its lot/serial"));
        return Ok(());
    }
    s.counting = Some(Item {
        product_id,
        lot_name: lot,
        quantity: 0.0,
    });
    out.ok("counting", format!("{name}: enter the counted quantity"));
    Ok(())
}

fn count_quantity(
    s: &mut CountState,
    counted: f64,
    cx: &Cx<'_, '_>,
    out: &mut Out,
) -> Result<(), StepError> {
    let (Some(item), Some(location_id)) = (s.counting.take(), s.location_id) else {
        return Err(refuse("product_first", "scan a product to count first"));
    };
    let counted = match quantity::checked(cx, item.product_id, counted, Zero::Allowed) {
        Ok(counted) => counted,
        Err(e) => {
            // Still counting the same item: the operator enters the number again.
            s.counting = Some(item);
            return Err(e);
        }
    };
    let lot_key = item.lot_name.clone().unwrap_or_default();
    let expected = cx.reader.on_hand(item.product_id, location_id, &lot_key)?;
    out.ops.push(Operation::Count(CountOp {
        product_id: item.product_id,
        location_id,
        lot_name: item.lot_name.clone(),
        counted,
        expected,
    }));
    s.n_counted += 1;
    let name = cx.product_name(item.product_id)?;
    let diff = snap(counted - expected);
    if diff.abs() <= EPSILON {
        out.ok("counted", format!("Counted {} x {name}", fmt_qty(counted)));
    } else {
        out.warn(
            "count_difference",
            format!(
                "Counted {} x {name}: {}{} against the records",
                fmt_qty(counted),
                if diff > 0.0 { "+" } else { "" },
                fmt_qty(diff)
            ),
        );
    }
    Ok(())
}

fn transfer_scan(
    s: &mut TransferState,
    scan: &Scan,
    cx: &Cx<'_, '_>,
    out: &mut Out,
) -> Result<(), StepError> {
    if let Some(loc) = scan.location() {
        let name = cx.internal_location(loc)?;
        let (Some(item), Some(from)) = (s.item.clone(), s.from_location_id) else {
            s.from_location_id = Some(loc);
            s.awaiting = None;
            out.ok("location", format!("Taking from {name}: scan a product"));
            return Ok(());
        };
        if loc == from {
            return Err(refuse(
                "same_location",
                "that is the bin you are taking from: scan the destination",
            ));
        }
        let lot_key = item.lot_name.clone().unwrap_or_default();
        let available = cx.reader.on_hand(item.product_id, from, &lot_key)?;
        out.ops.push(Operation::Transfer(TransferOp {
            product_id: item.product_id,
            lot_name: item.lot_name.clone(),
            from_location_id: from,
            to_location_id: loc,
            quantity: item.quantity,
        }));
        s.item = None;
        s.n_moved += 1;
        let message = format!(
            "Moved {} x {} to {name}",
            fmt_qty(item.quantity),
            cx.product_name(item.product_id)?
        );
        if available + EPSILON < item.quantity {
            out.warn(
                "short_stock",
                format!(
                    "{message}; the view showed only {} in the source",
                    fmt_qty(available.max(0.0))
                ),
            );
        } else {
            out.ok("moved", message);
        }
        return Ok(());
    }
    let products = scan.products();
    if let Some(awaiting) = s.awaiting.clone() {
        let (lot, _) = scan.lot_of(awaiting.product_id)?;
        s.awaiting = None;
        return take_item(
            s,
            cx,
            awaiting.product_id,
            Some(lot),
            awaiting.quantity,
            out,
        );
    }
    if s.from_location_id.is_none() {
        return Err(refuse("location_first", "scan the bin to take from first"));
    }
    let Some((product_id, quantity, lot, _)) = products.first().cloned() else {
        return Err(unusable(scan, "a product or the destination bin"));
    };
    let lot = lot.filter(|_| cx.tracking(product_id).is_ok_and(|t| t != "none"));
    if lot.is_none() && cx.tracking(product_id)? != "none" {
        serial_quantity(cx, product_id, quantity)?;
        if s.item.as_ref().is_some_and(|i| i.product_id != product_id) {
            return Err(refuse(
                "item_pending",
                "scan the destination of what you hold first",
            ));
        }
        s.awaiting = Some(AwaitingLot {
            product_id,
            quantity,
            expiration_date: None,
        });
        out.ok(
            "lot_required",
            format!("{}: scan its lot/serial", cx.product_name(product_id)?),
        );
        return Ok(());
    }
    take_item(s, cx, product_id, lot, quantity, out)
}

fn take_item(
    s: &mut TransferState,
    cx: &Cx<'_, '_>,
    product_id: i64,
    lot: Option<String>,
    quantity: f64,
    out: &mut Out,
) -> Result<(), StepError> {
    let quantity = quantity::checked(cx, product_id, quantity, Zero::Refused)?;
    let name = cx.product_name(product_id)?;
    let total = match &s.item {
        Some(item) if item.product_id == product_id && item.lot_name == lot => {
            if cx.tracking(product_id)? == "serial" {
                return Err(refuse(
                    "serial_quantity",
                    "that serial is already in hand: scan the destination",
                ));
            }
            let total = snap(item.quantity + quantity);
            quantity::checked(cx, product_id, total, Zero::Refused)?
        }
        Some(item) => {
            return Err(refuse(
                "item_pending",
                format!(
                    "scan the destination of {} first",
                    cx.product_name(item.product_id)?
                ),
            ));
        }
        None => {
            serial_quantity(cx, product_id, quantity)?;
            quantity
        }
    };
    s.item = Some(Item {
        product_id,
        lot_name: lot,
        quantity: total,
    });
    out.ok(
        "in_hand",
        format!("{} x {name} in hand: scan the destination", fmt_qty(total)),
    );
    Ok(())
}
