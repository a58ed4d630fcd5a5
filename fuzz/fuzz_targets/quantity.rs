//! Any quantity a scanner types (`HF:QTY:<text>`) or a device sends, against any unit rounding
//! and site bound: refused, or kept as a finite, signless multiple of the rounding within the
//! bound. Nothing may panic.
#![no_main]

use holdfast::workflow::{Zero, check_quantity, parse_quantity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let rounding = [0.01, 0.001, 1.0, 0.5, 0.000001, 12.0][usize::from(pick) % 6];
    let max = [1.0, 1_000_000.0, 1e9][usize::from(pick / 6) % 3];
    let zero = if pick & 0x80 == 0 { Zero::Allowed } else { Zero::Refused };
    let text = String::from_utf8_lossy(rest);
    let typed = parse_quantity(&text);
    // A device's JSON number reaches the step as any double at all.
    let sent = rest
        .get(..8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    for q in [typed, sent].into_iter().flatten() {
        if let Ok(kept) = check_quantity(q, rounding, max, zero) {
            assert!(kept.is_finite() && !kept.is_sign_negative() && kept <= max * (1.0 + 1e-12));
            let steps = kept / rounding;
            assert!((steps - steps.round()).abs() < 1e-6, "{kept} by {rounding}");
        }
    }
});
