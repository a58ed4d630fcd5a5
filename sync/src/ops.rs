//! Warehouse operations: the intents the floor records in the journal.
//!
//! An operation says what a person did ("took 3 of lot L from bin B for move M, the view
//! showed 12"), never what Odoo should end up holding. Turning intents into Odoo calls is the
//! push's job, so the same journal can be replayed against a cloud that changed meanwhile.
//!
//! Operations are persisted as JSON with a payload version ([`PAYLOAD_VERSION`]); a change to
//! a payload's shape gets a new version and an explicit upgrade, never a silent reinterpretation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::records::{LocationId, MoveId, ProductId, UnknownValue};

/// Version of the payload shapes in this module.
pub const PAYLOAD_VERSION: u32 = 1;

/// The kinds of journal entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    Pick,
    Receive,
    Validate,
    Count,
    Transfer,
    Print,
    Resolve,
}

impl OpKind {
    pub const ALL: &'static [OpKind] = &[
        OpKind::Pick,
        OpKind::Receive,
        OpKind::Validate,
        OpKind::Count,
        OpKind::Transfer,
        OpKind::Print,
        OpKind::Resolve,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Pick => "pick",
            OpKind::Receive => "receive",
            OpKind::Validate => "validate",
            OpKind::Count => "count",
            OpKind::Transfer => "transfer",
            OpKind::Print => "print",
            OpKind::Resolve => "resolve",
        }
    }

    /// Whether entries of this kind may be sent to Odoo (labels are local only; a resolution
    /// only when it re-creates a picking, see [`Operation::goes_to_cloud`]).
    pub fn goes_to_cloud(self) -> bool {
        !matches!(self, OpKind::Print)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OpKind {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OpKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownValue {
                field: "kind",
                value: s.to_owned(),
            })
    }
}

/// What to do with the rest of a partially picked picking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackorderChoice {
    /// Keep the remainder open in a backorder.
    Backorder,
    /// Close the picking; the remainder is cancelled.
    NoBackorder,
}

/// Quantity of a product taken from a location for a picking's move.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PickOp {
    pub picking_id: i64,
    pub move_id: i64,
    pub product_id: i64,
    pub location_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_id: Option<i64>,
    /// Taken (positive), or put back by the same picker (negative: a correction of this
    /// picking's earlier picks at the same location and lot).
    pub quantity: f64,
    /// What the view showed at `location_id` for this product (and lot) when the pick was made.
    pub view_quantity: f64,
}

/// Quantity received on a receipt's move, with lot/serial and expiry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveOp {
    pub picking_id: i64,
    pub move_id: i64,
    pub product_id: i64,
    pub location_dest_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_name: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS` in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// Received (positive), or a correction of earlier receipts on this move (negative).
    pub quantity: f64,
}

/// A picking finished on the floor, with the backorder decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateOp {
    pub picking_id: i64,
    pub backorder: BackorderChoice,
}

/// A counted quantity at a location, with what the view showed when it was counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountOp {
    pub product_id: i64,
    pub location_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_name: Option<String>,
    pub counted: f64,
    /// The view's quantity at count time: the count is applied as `counted - expected`.
    pub expected: f64,
}

/// Stock moved between two locations without a prepared picking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferOp {
    pub product_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_name: Option<String>,
    pub from_location_id: i64,
    pub to_location_id: i64,
    pub quantity: f64,
}

/// A label job; local only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintOp {
    pub printer: String,
    pub template: String,
    #[serde(default)]
    pub copies: u32,
}

/// What a person decided about a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveAction {
    /// Drop the held-back entries (their effect leaves the view), with a note.
    Discard,
    /// Send the held-back entries again (after a fix in Odoo, or to apply anyway).
    Retry,
    /// Put what the floor did into a new picking in Odoo.
    Recreate,
    /// Seen: for conflicts already applied and flagged.
    Acknowledge,
}

impl ResolveAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveAction::Discard => "discard",
            ResolveAction::Retry => "retry",
            ResolveAction::Recreate => "recreate",
            ResolveAction::Acknowledge => "acknowledge",
        }
    }

    pub fn parse(s: &str) -> Option<ResolveAction> {
        [
            ResolveAction::Discard,
            ResolveAction::Retry,
            ResolveAction::Recreate,
            ResolveAction::Acknowledge,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// A conflict's resolution, recorded like any other floor action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveOp {
    pub conflict_id: i64,
    pub action: ResolveAction,
    pub note: String,
    /// The journal entries (seq) the conflict held back.
    pub entries: Vec<i64>,
    /// For `recreate`: the picking to create in Odoo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreate: Option<NewPicking>,
}

/// Which side of a move line the floor's location names: the source bin of a pick, the
/// destination bin of a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Destination,
}

/// A picking the appliance creates in Odoo, done in one go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewPicking {
    pub picking_type_id: i64,
    pub location_id: i64,
    pub location_dest_id: i64,
    /// Which side of each line the floor's bin names.
    pub side: Side,
    pub lines: Vec<NewPickingLine>,
    /// The customer or vendor: a re-created delivery keeps its customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<i64>,
    /// What `origin` says before the mark: a re-created picking names the original's source
    /// document and the original itself, so people can follow it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Text for the picking's `note` (a re-creation: why, by whom, the manager's words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One line of a [`NewPicking`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewPickingLine {
    pub product_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_name: Option<String>,
    /// The bin on the floor's side of the line.
    pub location_id: i64,
    pub quantity: f64,
}

impl NewPicking {
    /// A transfer as a one-line internal picking.
    pub fn transfer(op: &TransferOp, picking_type_id: i64) -> NewPicking {
        NewPicking {
            picking_type_id,
            location_id: op.from_location_id,
            location_dest_id: op.to_location_id,
            side: Side::Source,
            lines: vec![NewPickingLine {
                product_id: op.product_id,
                lot_name: op.lot_name.clone(),
                location_id: op.from_location_id,
                quantity: op.quantity,
            }],
            partner_id: None,
            origin: None,
            note: None,
        }
    }

    /// The `origin` the created picking carries: the context first, then the mark, found
    /// again with `ilike` on the mark.
    pub fn origin_with(&self, mark: &str) -> String {
        match self.origin.as_deref().map(str::trim) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix} {mark}"),
            _ => mark.to_owned(),
        }
    }
}

/// One warehouse operation, as recorded in the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    Pick(PickOp),
    Receive(ReceiveOp),
    Validate(ValidateOp),
    Count(CountOp),
    Transfer(TransferOp),
    Print(PrintOp),
    Resolve(ResolveOp),
}

/// An operation that cannot be recorded as it stands.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidOp {
    #[error("{field} must be a finite number, got {value}")]
    NotFinite { field: &'static str, value: f64 },
    #[error("{field} must be greater than zero, got {value}")]
    NotPositive { field: &'static str, value: f64 },
    #[error("{field} must not be zero")]
    Zero { field: &'static str },
    #[error("{field} must not be negative, got {value}")]
    Negative { field: &'static str, value: f64 },
    #[error("from and to location are the same ({0})")]
    SameLocation(i64),
    #[error("lot name must not be empty")]
    EmptyLot,
    #[error("lot name must be at most {MAX_LOT_LEN} characters without control characters")]
    BadLot,
    #[error("unsupported payload version {0} (this build reads version {PAYLOAD_VERSION})")]
    Version(u32),
    #[error("payload does not match kind {kind}: {reason}")]
    Payload { kind: String, reason: String },
}

/// What an operation does to the floor's picture until the cloud has confirmed it.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// On-hand quantity of a product (lot) at a location changes by `delta`.
    Stock {
        product_id: ProductId,
        location_id: LocationId,
        /// Empty for untracked stock.
        lot_name: String,
        delta: f64,
    },
    /// A move's picked quantity changes by `delta`.
    MovePicked { move_id: MoveId, delta: f64 },
    /// A lot becomes known for a product (created on the floor by a receipt).
    LotKnown {
        product_id: ProductId,
        lot_name: String,
        expiration_date: Option<String>,
    },
}

fn finite(field: &'static str, value: f64) -> Result<f64, InvalidOp> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(InvalidOp::NotFinite { field, value })
    }
}

fn positive(field: &'static str, value: f64) -> Result<(), InvalidOp> {
    if finite(field, value)? > 0.0 {
        Ok(())
    } else {
        Err(InvalidOp::NotPositive { field, value })
    }
}

fn non_zero(field: &'static str, value: f64) -> Result<(), InvalidOp> {
    if finite(field, value)? != 0.0 {
        Ok(())
    } else {
        Err(InvalidOp::Zero { field })
    }
}

fn non_negative(field: &'static str, value: f64) -> Result<(), InvalidOp> {
    if finite(field, value)? >= 0.0 {
        Ok(())
    } else {
        Err(InvalidOp::Negative { field, value })
    }
}

/// Longest lot or serial name an operation carries.
pub const MAX_LOT_LEN: usize = 128;

/// Checks a lot or serial name as every operation does.
pub fn check_lot_name(name: &str) -> Result<(), InvalidOp> {
    lot(&Some(name.to_owned())).map(|_| ())
}

fn lot(lot_name: &Option<String>) -> Result<String, InvalidOp> {
    match lot_name {
        Some(name) if name.trim().is_empty() => Err(InvalidOp::EmptyLot),
        Some(name) if name.chars().count() > MAX_LOT_LEN || name.chars().any(char::is_control) => {
            Err(InvalidOp::BadLot)
        }
        Some(name) => Ok(name.clone()),
        None => Ok(String::new()),
    }
}

impl Operation {
    pub fn kind(&self) -> OpKind {
        match self {
            Operation::Pick(_) => OpKind::Pick,
            Operation::Receive(_) => OpKind::Receive,
            Operation::Validate(_) => OpKind::Validate,
            Operation::Count(_) => OpKind::Count,
            Operation::Transfer(_) => OpKind::Transfer,
            Operation::Print(_) => OpKind::Print,
            Operation::Resolve(_) => OpKind::Resolve,
        }
    }

    /// Whether this entry is sent to Odoo: labels never are, a resolution only when it
    /// re-creates a picking.
    pub fn goes_to_cloud(&self) -> bool {
        match self {
            Operation::Print(_) => false,
            Operation::Resolve(r) => r.recreate.is_some(),
            _ => true,
        }
    }

    /// Entries with the same causal key reach Odoo in journal order; different keys may
    /// drain in parallel. Picking work is ordered per picking; stock corrections per
    /// product and location (a count after a transfer out of the same bin must follow it).
    pub fn causal_key(&self) -> String {
        match self {
            Operation::Pick(op) => format!("picking:{}", op.picking_id),
            Operation::Receive(op) => format!("picking:{}", op.picking_id),
            Operation::Validate(op) => format!("picking:{}", op.picking_id),
            Operation::Count(op) => format!("stock:{}:{}", op.product_id, op.location_id),
            Operation::Transfer(op) => format!("stock:{}:{}", op.product_id, op.from_location_id),
            Operation::Print(op) => format!("print:{}", op.printer),
            Operation::Resolve(op) => format!("conflict:{}", op.conflict_id),
        }
    }

    /// Checks what the type system cannot: finite, positive quantities and sane locations.
    pub fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            Operation::Pick(op) => {
                non_zero("quantity", op.quantity)?;
                finite("view_quantity", op.view_quantity)?;
                lot(&op.lot_name)?;
            }
            Operation::Receive(op) => {
                non_zero("quantity", op.quantity)?;
                lot(&op.lot_name)?;
            }
            Operation::Validate(_) => {}
            Operation::Count(op) => {
                non_negative("counted", op.counted)?;
                finite("expected", op.expected)?;
                lot(&op.lot_name)?;
            }
            Operation::Transfer(op) => {
                positive("quantity", op.quantity)?;
                lot(&op.lot_name)?;
                if op.from_location_id == op.to_location_id {
                    return Err(InvalidOp::SameLocation(op.from_location_id));
                }
            }
            Operation::Print(_) => {}
            Operation::Resolve(op) => {
                if op.note.chars().count() > 2000 || op.note.contains('\0') {
                    return Err(InvalidOp::Payload {
                        kind: "resolve".into(),
                        reason: "note must be at most 2000 characters".into(),
                    });
                }
                if let Some(spec) = &op.recreate {
                    for line in &spec.lines {
                        positive("quantity", line.quantity)?;
                        lot(&line.lot_name)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The operation's effect on the view while the cloud has not yet confirmed it.
    pub fn effects(&self) -> Vec<Effect> {
        let lot_name = |l: &Option<String>| l.clone().unwrap_or_default();
        match self {
            Operation::Pick(op) => vec![
                Effect::Stock {
                    product_id: ProductId(op.product_id),
                    location_id: LocationId(op.location_id),
                    lot_name: lot_name(&op.lot_name),
                    delta: -op.quantity,
                },
                Effect::MovePicked {
                    move_id: MoveId(op.move_id),
                    delta: op.quantity,
                },
            ],
            Operation::Receive(op) => {
                let mut effects = vec![
                    Effect::Stock {
                        product_id: ProductId(op.product_id),
                        location_id: LocationId(op.location_dest_id),
                        lot_name: lot_name(&op.lot_name),
                        delta: op.quantity,
                    },
                    Effect::MovePicked {
                        move_id: MoveId(op.move_id),
                        delta: op.quantity,
                    },
                ];
                if let Some(name) = &op.lot_name {
                    effects.push(Effect::LotKnown {
                        product_id: ProductId(op.product_id),
                        lot_name: name.clone(),
                        expiration_date: op.expiration_date.clone(),
                    });
                }
                effects
            }
            Operation::Count(op) => vec![Effect::Stock {
                product_id: ProductId(op.product_id),
                location_id: LocationId(op.location_id),
                lot_name: lot_name(&op.lot_name),
                delta: op.counted - op.expected,
            }],
            Operation::Transfer(op) => vec![
                Effect::Stock {
                    product_id: ProductId(op.product_id),
                    location_id: LocationId(op.from_location_id),
                    lot_name: lot_name(&op.lot_name),
                    delta: -op.quantity,
                },
                Effect::Stock {
                    product_id: ProductId(op.product_id),
                    location_id: LocationId(op.to_location_id),
                    lot_name: lot_name(&op.lot_name),
                    delta: op.quantity,
                },
            ],
            // A re-created picking carries the stock effect of the entries it replaces.
            Operation::Resolve(op) => op
                .recreate
                .iter()
                .flat_map(|spec| {
                    spec.lines.iter().map(move |l| Effect::Stock {
                        product_id: ProductId(l.product_id),
                        location_id: LocationId(l.location_id),
                        lot_name: lot_name(&l.lot_name),
                        delta: match spec.side {
                            Side::Source => -l.quantity,
                            Side::Destination => l.quantity,
                        },
                    })
                })
                .collect(),
            // Validation changes no quantity the floor has not already seen through its
            // picks; labels are local.
            Operation::Validate(_) | Operation::Print(_) => Vec::new(),
        }
    }

    /// The persisted payload (JSON of this version).
    pub fn to_payload(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Reads a persisted payload of the given version.
    pub fn from_payload(version: u32, payload: &str) -> Result<Operation, InvalidOp> {
        if version != PAYLOAD_VERSION {
            return Err(InvalidOp::Version(version));
        }
        serde_json::from_str(payload).map_err(|e| InvalidOp::Payload {
            kind: serde_json::from_str::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "?".to_owned()),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(quantity: f64) -> Operation {
        Operation::Pick(PickOp {
            picking_id: 7,
            move_id: 70,
            product_id: 3,
            location_id: 12,
            lot_name: Some("L1".into()),
            package_id: None,
            quantity,
            view_quantity: 10.0,
        })
    }

    #[test]
    fn payload_round_trips_and_names_its_kind() {
        let op = pick(2.0);
        let json = op.to_payload();
        assert!(json.starts_with(r#"{"kind":"pick""#), "{json}");
        assert_eq!(Operation::from_payload(PAYLOAD_VERSION, &json).unwrap(), op);
    }

    #[test]
    fn unknown_version_and_wrong_shape_are_refused() {
        let json = pick(1.0).to_payload();
        assert_eq!(
            Operation::from_payload(2, &json),
            Err(InvalidOp::Version(2))
        );
        let err = Operation::from_payload(1, r#"{"kind":"pick","quantity":"x"}"#).unwrap_err();
        assert!(matches!(err, InvalidOp::Payload { ref kind, .. } if kind == "pick"));
    }

    #[test]
    fn quantities_must_be_finite_and_not_zero() {
        assert!(pick(1.0).validate().is_ok());
        assert!(
            pick(-1.0).validate().is_ok(),
            "a correction puts stock back"
        );
        for bad in [0.0, f64::NAN, f64::INFINITY] {
            assert!(pick(bad).validate().is_err(), "{bad} accepted");
        }
        let transfer = Operation::Transfer(TransferOp {
            product_id: 1,
            lot_name: None,
            from_location_id: 5,
            to_location_id: 5,
            quantity: 1.0,
        });
        assert_eq!(transfer.validate(), Err(InvalidOp::SameLocation(5)));
    }

    #[test]
    fn effects_and_causal_keys_follow_the_intent() {
        let op = pick(2.0);
        assert_eq!(op.causal_key(), "picking:7");
        assert_eq!(
            op.effects(),
            vec![
                Effect::Stock {
                    product_id: ProductId(3),
                    location_id: LocationId(12),
                    lot_name: "L1".into(),
                    delta: -2.0
                },
                Effect::MovePicked {
                    move_id: MoveId(70),
                    delta: 2.0
                },
            ]
        );
        let count = Operation::Count(CountOp {
            product_id: 3,
            location_id: 12,
            lot_name: None,
            counted: 4.0,
            expected: 9.0,
        });
        assert_eq!(count.causal_key(), "stock:3:12");
        assert!(matches!(count.effects()[0], Effect::Stock { delta, .. } if delta == -5.0));
    }
}
