//! Quantities as Odoo counts them: multiples of the unit's rounding, within the site's bounds.
//!
//! A quantity reaches a step from a number the operator entered (`HF:QTY:<n>`, the handheld's
//! quantity field) or from what a scan carries (a packaging, a GS1 count or weight). Before
//! it is journalled it must be:
//!
//! - a finite number without a sign (`-0` is refused like `-1`);
//! - no more than `floor.max_quantity` (a typo of a few extra digits, `1e308` or
//!   `99999999999999999999` is refused, never journalled and pushed);
//! - a whole multiple of the product's unit rounding (`uom.uom.rounding`, mirrored; Odoo's
//!   default 0.01 until the product is pulled with it): `1.005` of a unit counted in
//!   hundredths is refused with the two nearest quantities, not silently rounded.
//!
//! The quantity kept is snapped to the decimal it stands for ([`snap`]), and so are the
//! differences the steps journal: a line set from 0.3 to 0.1 journals exactly −0.2, and the
//! journal's sum of a line is the decimal sum of what the operator was told.

use super::{Cx, StepError, refuse};

/// Odoo's default unit rounding (the "Product Unit" decimal precision, 2 digits).
pub const DEFAULT_ROUNDING: f64 = 0.01;

/// Finest step a quantity is kept to (Odoo's unit precisions are 0 to 6 digits); a double
/// holds every multiple of it exactly up to 9·10⁹.
const GRAIN: f64 = 1e6;

/// `q` as the nearest double to its decimal at [`GRAIN`] (`0.1 + 0.2` becomes `0.3`).
pub fn snap(q: f64) -> f64 {
    if !q.is_finite() || q.abs() >= 9e15 / GRAIN {
        return q;
    }
    let snapped = (q * GRAIN).round() / GRAIN;
    if snapped == 0.0 { 0.0 } else { snapped }
}

/// A quantity typed as text (`HF:QTY:<n>`): plain decimal digits with at most one point,
/// no sign, no exponent, at most 16 characters. `1e308`, `-0`, `inf` and
/// `99999999999999999999` are not quantities.
pub fn parse(text: &str) -> Option<f64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if text.len() > 16 || int.is_empty() && frac.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    text.parse().ok()
}

/// Whether zero is a quantity this step takes (setting a line or a count to zero is; a scan
/// or a transfer of nothing is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zero {
    Allowed,
    Refused,
}

/// The product's unit rounding.
pub fn rounding(cx: &Cx<'_, '_>, product_id: i64) -> Result<f64, StepError> {
    Ok(usable(
        cx.reader.product(product_id)?.and_then(|p| p.uom_rounding),
    ))
}

/// A mirrored rounding, or Odoo's default when there is none (or it is not usable).
fn usable(rounding: Option<f64>) -> f64 {
    rounding
        .filter(|r| r.is_finite() && *r > 0.0)
        .unwrap_or(DEFAULT_ROUNDING)
}

/// [`checked`] for a move of the picking in hand: its product's rounding came with the move.
pub fn checked_move(
    cx: &Cx<'_, '_>,
    m: &crate::store::MoveDetail,
    q: f64,
    zero: Zero,
) -> Result<f64, StepError> {
    check(
        q,
        usable(m.uom_rounding),
        f64::from(cx.policy.max_quantity),
        zero,
    )
}

/// Checks a quantity of `product_id` (see the module docs) and gives it back snapped.
pub fn checked(cx: &Cx<'_, '_>, product_id: i64, q: f64, zero: Zero) -> Result<f64, StepError> {
    let max = f64::from(cx.policy.max_quantity);
    check(q, rounding(cx, product_id)?, max, zero)
}

/// [`checked`] with the rounding and the bound given.
pub fn check(q: f64, rounding: f64, max: f64, zero: Zero) -> Result<f64, StepError> {
    if !q.is_finite() || q.is_sign_negative() {
        return Err(refuse(
            "bad_quantity",
            "a quantity is a number of zero or more, without a sign",
        ));
    }
    if q == 0.0 && zero == Zero::Refused {
        return Err(refuse("bad_quantity", "enter a quantity greater than zero"));
    }
    if q > max {
        return Err(refuse(
            "quantity_too_large",
            format!(
                "{} is more than this site takes at once ({}); check the number",
                super::fmt_qty(q),
                super::fmt_qty(max)
            ),
        ));
    }
    let steps = q / rounding;
    let whole = steps.round();
    // Relative to the number of steps: a double carries ~16 digits, a quantity at most 15.
    if (steps - whole).abs() > 1e-6 {
        let below = snap((steps.floor() * rounding).max(0.0));
        let above = snap(steps.ceil() * rounding);
        return Err(refuse(
            "quantity_precision",
            format!(
                "this unit counts in steps of {}: enter {} or {}",
                super::fmt_qty(rounding),
                super::fmt_qty(below),
                super::fmt_qty(above)
            ),
        ));
    }
    Ok(snap(whole * rounding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(r: Result<f64, StepError>) -> Result<f64, &'static str> {
        r.map_err(|e| match e {
            StepError::Refused(r) => r.code,
            StepError::Store(_) => "store",
        })
    }

    #[test]
    fn what_the_floor_has_typed_is_refused_or_kept_exactly() {
        let max = 1_000_000.0;
        let cases: &[(f64, f64, Zero, Result<f64, &str>)] = &[
            (12.0, 0.01, Zero::Refused, Ok(12.0)),
            (0.1, 0.01, Zero::Refused, Ok(0.1)),
            (1.25, 0.01, Zero::Refused, Ok(1.25)),
            (1.005, 0.01, Zero::Refused, Err("quantity_precision")),
            (2.5, 1.0, Zero::Refused, Err("quantity_precision")),
            (0.0, 0.01, Zero::Allowed, Ok(0.0)),
            (0.0, 0.01, Zero::Refused, Err("bad_quantity")),
            (-0.0, 0.01, Zero::Allowed, Err("bad_quantity")),
            (-1.0, 0.01, Zero::Allowed, Err("bad_quantity")),
            (1e308, 0.01, Zero::Refused, Err("quantity_too_large")),
            (1e20, 0.01, Zero::Refused, Err("quantity_too_large")),
            (f64::INFINITY, 0.01, Zero::Refused, Err("bad_quantity")),
            (f64::NAN, 0.01, Zero::Refused, Err("bad_quantity")),
            (1_000_000.0, 0.01, Zero::Refused, Ok(1_000_000.0)),
            (1_000_000.01, 0.01, Zero::Refused, Err("quantity_too_large")),
            (0.333, 0.001, Zero::Refused, Ok(0.333)),
        ];
        for (q, rounding, zero, want) in cases {
            assert_eq!(
                &code(check(*q, *rounding, max, *zero)),
                want,
                "{q} by {rounding}"
            );
        }
        let Err(StepError::Refused(r)) = check(1.005, 0.01, max, Zero::Refused) else {
            panic!("refused");
        };
        assert!(r.message.contains("enter 1 or 1.01"), "{}", r.message);
    }

    #[test]
    fn typed_quantities_are_plain_decimals() {
        for (text, want) in [
            ("12", Some(12.0)),
            ("0.5", Some(0.5)),
            ("1.", Some(1.0)),
            (".25", Some(0.25)),
            ("0", Some(0.0)),
            ("-0", None),
            ("+5", None),
            ("1e308", None),
            ("inf", None),
            ("NaN", None),
            ("99999999999999999999", None),
            ("1.2.3", None),
            ("", None),
            (".", None),
            ("1 2", None),
        ] {
            assert_eq!(parse(text), want, "{text:?}");
        }
    }

    proptest! {
        /// Whatever the text, parsing never panics, and what it accepts is finite and signless.
        #[test]
        fn parsing_any_text_is_safe(text in "\\PC{0,24}") {
            if let Some(q) = parse(&text) {
                prop_assert!(q.is_finite() && !q.is_sign_negative());
            }
        }

        /// A quantity of whole hundredths is kept as exactly that decimal; sums of kept
        /// quantities, snapped, are the decimal sums.
        #[test]
        fn hundredths_are_kept_exactly(cents in prop::collection::vec(0u64..100_000_000, 1..40)) {
            let mut total = 0.0;
            let mut decimal: u64 = 0;
            for c in &cents {
                let q: f64 = format!("{}.{:02}", c / 100, c % 100).parse().unwrap();
                let kept = check(q, 0.01, 1_000_000.0, Zero::Allowed).unwrap();
                prop_assert_eq!(kept, q);
                total = snap(total + kept);
                decimal += c;
            }
            let want: f64 = format!("{}.{:02}", decimal / 100, decimal % 100).parse().unwrap();
            prop_assert_eq!(total, want);
        }
    }
}
