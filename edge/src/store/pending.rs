//! The effects of a step not yet written, seen through a [`Reader`]: a scan's answer shows the
//! view as its own decision left it, from the one snapshot the decision was made on, instead
//! of a second read after the commit (which would find every page of its cache invalidated
//! by that very commit).
//!
//! Every sum of the view adds what the pending effects add to it: on hand per stock key and
//! per lot across internal locations, picked per move and per picking. The overlay is for
//! the step's own effects only; nothing is written through it.

use holdfast_sync::ops::Effect;
use rusqlite::OptionalExtension;

use super::StoreError;
use super::read::Reader;

impl<'c> Reader<'c> {
    /// This reader with `effects` counted as if they were committed.
    pub fn with_pending<'p>(&'p self, effects: &'p [Effect]) -> Reader<'p> {
        self.over(effects)
    }

    /// What pending effects add to a stock key.
    pub(super) fn pending_stock(&self, product_id: i64, location_id: i64, lot_name: &str) -> f64 {
        self.pending()
            .iter()
            .map(|e| match e {
                Effect::Stock {
                    product_id: p,
                    location_id: l,
                    lot_name: lot,
                    delta,
                } if p.0 == product_id && l.0 == location_id && lot == lot_name => *delta,
                _ => 0.0,
            })
            .sum()
    }

    /// What pending effects add to a move's picked quantity.
    pub(super) fn pending_move(&self, move_id: i64) -> f64 {
        self.pending()
            .iter()
            .map(|e| match e {
                Effect::MovePicked { move_id: m, delta } if m.0 == move_id => *delta,
                _ => 0.0,
            })
            .sum()
    }

    /// What pending effects add to the picked total of these moves.
    pub(super) fn pending_moves(&self, move_ids: &[i64]) -> f64 {
        self.pending()
            .iter()
            .map(|e| match e {
                Effect::MovePicked { move_id, delta } if move_ids.contains(&move_id.0) => *delta,
                _ => 0.0,
            })
            .sum()
    }

    /// What pending effects add to the picked total of a picking's moves.
    pub(super) fn pending_picking(&self, picking_id: i64) -> Result<f64, StoreError> {
        let mut total = 0.0;
        for e in self.pending() {
            if let Effect::MovePicked { move_id, delta } = e {
                let picking: Option<Option<i64>> = self
                    .conn()
                    .prepare_cached("SELECT picking_id FROM move WHERE id = ?1")?
                    .query_row([move_id.0], |r| r.get(0))
                    .optional()?;
                if picking.flatten() == Some(picking_id) {
                    total += delta;
                }
            }
        }
        Ok(total)
    }

    /// What pending effects add to a lot's on-hand quantity across internal locations.
    pub(super) fn pending_lot(&self, product_id: i64, lot_name: &str) -> Result<f64, StoreError> {
        let mut total = 0.0;
        for e in self.pending() {
            if let Effect::Stock {
                product_id: p,
                location_id,
                lot_name: lot,
                delta,
            } = e
                && p.0 == product_id
                && lot == lot_name
            {
                let internal: Option<bool> = self
                    .conn()
                    .prepare_cached("SELECT usage = 'internal' FROM location WHERE id = ?1")?
                    .query_row([location_id.0], |r| r.get(0))
                    .optional()?;
                if internal == Some(true) {
                    total += delta;
                }
            }
        }
        Ok(total)
    }
}
