//! Product exclusion: two batches that take stock of the same products are never in flight
//! at once.
//!
//! Odoo validates a picking, applies a count or moves stock under a lock on the products'
//! quants. Two such calls in parallel on one product make PostgreSQL refuse one with a
//! serialization failure; Odoo retries it a few times and may leave split quants and
//! reservations that point at stock gone meanwhile. So a batch that takes stock **claims**
//! what it touches, and a batch whose claims meet those of a batch in flight waits:
//!
//! - a picking batch that validates claims every product of the picking (its moves in the
//!   mirror and its own lines): validation moves them all;
//! - a count claims its product and its bin; a transfer its product and both bins;
//! - a re-created picking claims the products of its lines;
//! - picks and receipts without their validation only write the picking's lines (no stock
//!   moves yet) and claim nothing, nor do local decisions.
//!
//! A waiting batch is skipped for now, never reordered within its causal key (a key has one
//! batch at a time anyway). Within one pass of the scheduler, a batch that waits also holds
//! off later batches that meet it, so a busy product cannot starve the validation that
//! waited first.

use std::collections::{BTreeSet, HashMap};

use holdfast_sync::ops::Operation;

/// What one batch holds while in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    Product(i64),
    Bin(i64),
}

/// A set of claims.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims(BTreeSet<Claim>);

impl Claims {
    /// What a batch of one causal key claims; `picking_products` are the mirror's products
    /// of the picking the batch validates (if it does).
    pub fn of(batch: &[&Operation], picking_products: &[i64]) -> Claims {
        let mut claims = BTreeSet::new();
        let validates = batch.iter().any(|op| matches!(op, Operation::Validate(_)));
        for op in batch {
            match op {
                Operation::Pick(p) if validates => {
                    claims.insert(Claim::Product(p.product_id));
                }
                Operation::Receive(r) if validates => {
                    claims.insert(Claim::Product(r.product_id));
                }
                Operation::Validate(_) => {
                    claims.extend(picking_products.iter().map(|&p| Claim::Product(p)));
                }
                Operation::Count(c) => {
                    claims.insert(Claim::Product(c.product_id));
                    claims.insert(Claim::Bin(c.location_id));
                }
                Operation::Transfer(t) => {
                    claims.insert(Claim::Product(t.product_id));
                    claims.insert(Claim::Bin(t.from_location_id));
                    claims.insert(Claim::Bin(t.to_location_id));
                }
                Operation::Resolve(r) => {
                    if let Some(spec) = &r.recreate {
                        claims.extend(spec.lines.iter().map(|l| Claim::Product(l.product_id)));
                    }
                }
                Operation::Pick(_) | Operation::Receive(_) | Operation::Print(_) => {}
            }
        }
        Claims(claims)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn meets(&self, other: &Claims) -> bool {
        // Both sorted: walk the smaller, look up in the larger.
        let (small, large) = if self.0.len() <= other.0.len() {
            (&self.0, &other.0)
        } else {
            (&other.0, &self.0)
        };
        small.iter().any(|c| large.contains(c))
    }

    pub fn extend(&mut self, other: &Claims) {
        self.0.extend(other.0.iter().copied());
    }
}

/// The claims of the batches in flight, by causal key.
#[derive(Debug, Default)]
pub struct Exclusion {
    held: HashMap<String, Claims>,
}

impl Exclusion {
    /// Whether a batch with `claims` would take stock someone in flight is taking.
    pub fn blocks(&self, claims: &Claims) -> bool {
        !claims.is_empty() && self.held.values().any(|h| h.meets(claims))
    }

    /// Holds `claims` for `key`'s batch until [`Exclusion::release`].
    pub fn hold(&mut self, key: &str, claims: Claims) {
        if !claims.is_empty() {
            self.held.insert(key.to_owned(), claims);
        }
    }

    pub fn release(&mut self, key: &str) {
        self.held.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use holdfast_sync::ops::{
        BackorderChoice, CountOp, NewPicking, NewPickingLine, PickOp, ResolveAction, ResolveOp,
        Side, TransferOp, ValidateOp,
    };

    use super::*;

    fn pick(picking: i64, product: i64) -> Operation {
        Operation::Pick(PickOp {
            picking_id: picking,
            move_id: 1,
            product_id: product,
            location_id: 10,
            lot_name: None,
            package_id: None,
            quantity: 1.0,
            view_quantity: 5.0,
        })
    }

    fn validate(picking: i64) -> Operation {
        Operation::Validate(ValidateOp {
            picking_id: picking,
            backorder: BackorderChoice::Backorder,
        })
    }

    fn count(product: i64, bin: i64) -> Operation {
        Operation::Count(CountOp {
            product_id: product,
            location_id: bin,
            lot_name: None,
            counted: 1.0,
            expected: 2.0,
        })
    }

    fn transfer(product: i64, from: i64, to: i64) -> Operation {
        Operation::Transfer(TransferOp {
            product_id: product,
            lot_name: None,
            from_location_id: from,
            to_location_id: to,
            quantity: 1.0,
        })
    }

    fn claims(ops: &[Operation], picking_products: &[i64]) -> Claims {
        Claims::of(&ops.iter().collect::<Vec<_>>(), picking_products)
    }

    /// A batch, the mirror's products of the picking it validates, and what it claims.
    struct Case {
        name: &'static str,
        batch: Vec<Operation>,
        picking_products: Vec<i64>,
        expect: Vec<Claim>,
    }

    #[test]
    fn batches_claim_what_they_take_stock_of() {
        use Claim::*;
        let cases = [
            Case {
                name: "picks alone write lines only",
                batch: vec![pick(1, 7), pick(1, 8)],
                picking_products: vec![7, 8, 9],
                expect: vec![],
            },
            Case {
                name: "a validation claims the picking's products and its own lines'",
                batch: vec![pick(1, 7), pick(1, 42), validate(1)],
                picking_products: vec![7, 8],
                expect: vec![Product(7), Product(8), Product(42)],
            },
            Case {
                name: "a count: product and bin",
                batch: vec![count(7, 20)],
                picking_products: vec![],
                expect: vec![Product(7), Bin(20)],
            },
            Case {
                name: "a transfer: product and both bins",
                batch: vec![transfer(7, 20, 21)],
                picking_products: vec![],
                expect: vec![Product(7), Bin(20), Bin(21)],
            },
            Case {
                name: "a re-created picking: its lines' products",
                batch: vec![Operation::Resolve(ResolveOp {
                    conflict_id: 1,
                    action: ResolveAction::Recreate,
                    note: String::new(),
                    entries: vec![3],
                    recreate: Some(NewPicking {
                        picking_type_id: 2,
                        location_id: 10,
                        location_dest_id: 11,
                        side: Side::Source,
                        lines: vec![NewPickingLine {
                            product_id: 7,
                            lot_name: None,
                            location_id: 10,
                            quantity: 1.0,
                        }],
                        partner_id: None,
                        origin: None,
                        note: None,
                    }),
                })],
                picking_products: vec![],
                expect: vec![Product(7)],
            },
            Case {
                name: "a decision without re-creation is local",
                batch: vec![Operation::Resolve(ResolveOp {
                    conflict_id: 1,
                    action: ResolveAction::Discard,
                    note: String::new(),
                    entries: vec![3],
                    recreate: None,
                })],
                picking_products: vec![],
                expect: vec![],
            },
        ];
        for case in cases {
            let got = claims(&case.batch, &case.picking_products);
            assert_eq!(
                got,
                Claims(case.expect.into_iter().collect()),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn held_claims_block_only_what_they_meet() {
        let mut ex = Exclusion::default();
        let a = claims(&[validate(1)], &[7, 8]);
        assert!(!ex.blocks(&a));
        ex.hold("picking:1", a);
        let cases = [
            (
                "the same product in another picking",
                claims(&[validate(2)], &[8, 9]),
                true,
            ),
            (
                "unrelated products",
                claims(&[validate(3)], &[10, 11]),
                false,
            ),
            (
                "a count of a held product",
                claims(&[count(7, 99)], &[]),
                true,
            ),
            (
                "a count of another product in any bin",
                claims(&[count(12, 20)], &[]),
                false,
            ),
            (
                "picks without validation",
                claims(&[pick(4, 7)], &[7]),
                false,
            ),
        ];
        for (name, c, blocked) in &cases {
            assert_eq!(ex.blocks(c), *blocked, "{name}");
        }
        ex.hold("count:20", claims(&[count(12, 20)], &[]));
        assert!(
            ex.blocks(&claims(&[transfer(13, 30, 20)], &[])),
            "a transfer into a counted bin"
        );
        ex.release("picking:1");
        assert!(!ex.blocks(&claims(&[validate(2)], &[8, 9])), "released");
    }
}
