//! A ZPL II emitter that cannot be injected.
//!
//! Label data (product names, partner addresses, lots) comes from outside. In ZPL a `^` or `~`
//! anywhere starts a command — `^XZ^XA...` in a product name would end the label and start
//! another, `~JR` would reset the printer — so no field is ever written raw: every `^FD` is
//! preceded by `^FH_` and its data hex-escaped ([`escape_field`]): `^`, `~`, `_`, `\` and
//! control characters become `_XX`. The printer decodes them back into the field's bytes, so a
//! name prints as written and is never read as a command. Labels are UTF-8 (`^CI28`).
//!
//! Barcodes: Code 128 (`^BC`, `>` doubled as `><` so data cannot switch subsets or insert
//! function codes), EAN-13 (`^BE`), GS1-128 with a real FNC1 (`>8`) at the start and after each
//! variable-length element that is not last, with subset C for runs of digits, and GS1
//! DataMatrix (`^BX` quality 200 with its escape character named: `_`, with FNC1 as `_1` and a
//! literal `_` or control byte as `_dNNN`, before the field is hex-escaped — `^FH` decoding
//! comes first on the printer). The default escape character differs between firmware
//! versions (`_` on some, `~` on others), so it is always given.
//!
//! Positions and sizes are given in millimetres and converted to dots for the printer's
//! resolution (203, 300 or 600 dpi).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::gs1;

/// Printer resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dpi {
    #[serde(rename = "203")]
    D203,
    #[serde(rename = "300")]
    D300,
    #[serde(rename = "600")]
    D600,
}

impl Dpi {
    pub fn from_dpi(dpi: u32) -> Option<Dpi> {
        match dpi {
            203 => Some(Dpi::D203),
            300 => Some(Dpi::D300),
            600 => Some(Dpi::D600),
            _ => None,
        }
    }

    /// Dots per millimetre (8, 12 or 24).
    pub fn dots_per_mm(self) -> f32 {
        match self {
            Dpi::D203 => 8.0,
            Dpi::D300 => 12.0,
            Dpi::D600 => 24.0,
        }
    }
}

/// A label's size and the printer's resolution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelSize {
    pub width_mm: f32,
    pub height_mm: f32,
    pub dpi: Dpi,
}

impl Default for LabelSize {
    /// 100 × 50 mm at 203 dpi: the common shipping-label stock.
    fn default() -> LabelSize {
        LabelSize {
            width_mm: 100.0,
            height_mm: 50.0,
            dpi: Dpi::D203,
        }
    }
}

/// Escapes field data for `^FH_`: every `^`, `~`, `_`, `\` and control character becomes
/// `_XX` (its byte in uppercase hex). Everything else (all printable ASCII and UTF-8) passes.
pub fn escape_field(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && (matches!(c, '^' | '~' | '_' | '\\') || c.is_ascii_control()) {
            let _ = write!(out, "_{:02X}", c as u8);
        } else if c.is_control() {
            // C1 controls and the like: escape their UTF-8 bytes too.
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "_{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Code 128 data for `^BC` without a mode: `>` starts an invocation code there, so a literal
/// one is written `><`.
pub(crate) fn code128_data(text: &str) -> String {
    text.replace('>', "><")
}

/// Symbol characters of `^BC` data as written by [`code128_data`] and [`gs1_128_data`]: the
/// start, one per invocation (`>X`), one per digit pair in subset C or character otherwise,
/// and the check character.
fn code128_symbols(data: &str) -> usize {
    let chars: Vec<char> = data.chars().collect();
    let (mut i, mut subset_c) = match chars.get(..2) {
        Some(['>', ';']) => (2, true),
        Some(['>', ':' | '9']) => (2, false),
        _ => (0, false),
    };
    let mut symbols = 1;
    while i < chars.len() {
        if chars[i] == '>' && i + 1 < chars.len() {
            match chars[i + 1] {
                '5' => subset_c = true,
                '6' | '7' => subset_c = false,
                _ => {}
            }
            i += 2;
        } else {
            i += if subset_c { 2 } else { 1 };
        }
        symbols += 1;
    }
    symbols + 1
}

/// Modules of a Code 128 symbol: 11 per symbol character, 13 for the stop pattern.
fn code128_modules(data: &str) -> usize {
    code128_symbols(data) * 11 + 13
}

/// GS1-128 data for `^BC`: start code and FNC1, subset C for runs of 4+ digits (even part),
/// subset B otherwise, FNC1 (`>8`) where the element string has a separator.
pub(crate) fn gs1_128_data(elements: &[(String, String)]) -> String {
    let data = gs1::encode(elements);
    // Split into FNC1-separated parts; encode each part's characters.
    let chars: Vec<char> = data.chars().collect();
    let mut out = String::new();
    let mut subset_c = false;
    let digit_run = |from: usize| {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    // Start code: C when the data opens with an even run of 4+ digits (it always does for the
    // usual 00/01 first element), else B.
    let first = digit_run(0);
    if first >= 4 {
        out.push_str(">;>8");
        subset_c = true;
    } else {
        out.push_str(">:>8");
    }
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == gs1::GS {
            out.push_str(">8");
            i += 1;
            continue;
        }
        let run = digit_run(i);
        if subset_c {
            if run >= 2 {
                let even = run - run % 2;
                out.extend(&chars[i..i + even]);
                i += even;
                continue;
            }
            out.push_str(">6");
            subset_c = false;
            continue;
        }
        if run >= 4 {
            // Odd run: the first digit in B, the rest in C.
            if run % 2 == 1 {
                out.push(c);
                i += 1;
            }
            out.push_str(">5");
            subset_c = true;
            continue;
        }
        if c == '>' {
            out.push_str("><");
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// The escape character named in every `^BX` (its `g` parameter).
const DM_ESCAPE: char = '_';

/// GS1 DataMatrix data for `^BX` quality 200 with [`DM_ESCAPE`]: `_1` is FNC1 (first: GS1
/// mode; later: a separator); a literal `_` or control byte is `_dNNN`.
pub(crate) fn gs1_datamatrix_data(elements: &[(String, String)]) -> String {
    let mut out = format!("{DM_ESCAPE}1");
    for c in gs1::encode(elements).chars() {
        if c == gs1::GS {
            out.push(DM_ESCAPE);
            out.push('1');
        } else {
            push_dm_char(&mut out, c);
        }
    }
    out
}

fn push_dm_char(out: &mut String, c: char) {
    if c == DM_ESCAPE || c.is_ascii_control() {
        let _ = write!(out, "{DM_ESCAPE}d{:03}", c as u32);
    } else {
        out.push(c);
    }
}

/// Average advance of font 0 per character as a share of its height, with a margin (about
/// 0.55 for mixed text in rendered labels).
const FONT0_ADVANCE: f32 = 0.6;

/// Narrow-bar width (X-dimension) of Code 128 symbols unless a label asks for another:
/// 0.25 mm, the smallest GS1 allows for general scanning (0.495 mm for logistic labels).
pub const MODULE_MM: f32 = 0.25;
/// EAN-13's nominal X-dimension (100 % magnification).
const EAN13_MODULE_MM: f32 = 0.33;
/// Quiet zone of a linear symbol, in modules, on each side.
const QUIET_MODULES: usize = 10;

/// A label being written.
#[derive(Clone, Debug)]
pub struct Zpl {
    out: String,
    dots_per_mm: f32,
    module_mm: f32,
}

impl Zpl {
    /// Starts a label: `^XA`, UTF-8, print width and label length, home at 0,0.
    pub fn begin(size: &LabelSize) -> Zpl {
        let dpm = size.dpi.dots_per_mm();
        let mut zpl = Zpl {
            out: String::with_capacity(512),
            dots_per_mm: dpm,
            module_mm: MODULE_MM,
        };
        let _ = write!(
            zpl.out,
            "^XA^CI28^PW{}^LL{}^LH0,0",
            zpl.dots(size.width_mm),
            zpl.dots(size.height_mm)
        );
        zpl
    }

    fn dots(&self, mm: f32) -> u32 {
        let d = (mm.max(0.0) * self.dots_per_mm).round();
        if d.is_finite() {
            d.min(32_000.0) as u32
        } else {
            0
        }
    }

    /// The X-dimension for the Code 128 and GS1-128 symbols that follow.
    pub fn module(&mut self, mm: f32) -> &mut Zpl {
        self.module_mm = mm;
        self
    }

    /// `^BY` module width in dots: the X-dimension at this resolution (whole dots), narrowed
    /// when a symbol of `modules` (plus quiet zones) would not fit in `width_mm`.
    fn module_dots(&self, module_mm: f32, modules: usize, width_mm: f32) -> u32 {
        let target = self.dots(module_mm).max(1);
        let fit = self.dots(width_mm) as usize / (modules + 2 * QUIET_MODULES);
        target
            .min(u32::try_from(fit).unwrap_or(u32::MAX))
            .clamp(1, 10)
    }

    fn origin(&mut self, x: f32, y: f32) {
        let (x, y) = (self.dots(x), self.dots(y));
        let _ = write!(self.out, "^FO{x},{y}");
    }

    fn field(&mut self, data: &str) {
        let _ = write!(self.out, "^FH_^FD{}^FS", escape_field(data));
    }

    /// One line of text, `height_mm` high.
    pub fn text(&mut self, x: f32, y: f32, height_mm: f32, text: &str) -> &mut Zpl {
        self.origin(x, y);
        let h = self.dots(height_mm).max(10);
        let _ = write!(self.out, "^A0N,{h},{h}");
        self.field(text);
        self
    }

    /// One line of text at `height_mm`, made smaller (down to 2 mm) when it would not fit in
    /// `width_mm`: names and addresses come in any length.
    pub fn text_fit(
        &mut self,
        x: f32,
        y: f32,
        height_mm: f32,
        width_mm: f32,
        text: &str,
    ) -> &mut Zpl {
        let chars = text.chars().count().max(1) as f32;
        let height = height_mm.min(width_mm / (chars * FONT0_ADVANCE)).max(2.0);
        self.text(x, y, height, text)
    }

    /// Text wrapped into a block `width_mm` wide, at most `max_lines` lines.
    pub fn text_block(
        &mut self,
        x: f32,
        y: f32,
        width_mm: f32,
        max_lines: u32,
        height_mm: f32,
        text: &str,
    ) -> &mut Zpl {
        self.origin(x, y);
        let h = self.dots(height_mm).max(10);
        let w = self.dots(width_mm).max(1);
        let _ = write!(
            self.out,
            "^A0N,{h},{h}^FB{w},{},0,L,0",
            max_lines.clamp(1, 99)
        );
        self.field(text);
        self
    }

    /// Code 128 of arbitrary text, with the text printed under it when `human_readable`.
    /// At most `width_mm` wide (the bars narrow to fit, down to one dot).
    pub fn code128(
        &mut self,
        x: f32,
        y: f32,
        height_mm: f32,
        width_mm: f32,
        data: &str,
        human_readable: bool,
    ) -> &mut Zpl {
        self.origin(x, y);
        let h = self.dots(height_mm).max(10);
        let hr = if human_readable { 'Y' } else { 'N' };
        let data = code128_data(data);
        let module = self.module_dots(self.module_mm, code128_modules(&data), width_mm);
        let _ = write!(self.out, "^BY{module}^BCN,{h},{hr},N,N");
        self.field(&data);
        self
    }

    /// EAN-13 (12 or 13 digits; the printer computes the check digit from the first 12).
    /// At most `width_mm` wide.
    pub fn ean13(
        &mut self,
        x: f32,
        y: f32,
        height_mm: f32,
        width_mm: f32,
        digits: &str,
    ) -> &mut Zpl {
        self.origin(x, y);
        let h = self.dots(height_mm).max(10);
        // 95 modules; quiet zones of 11 and 7 modules are within the 2 × 10 allowed for.
        let module = self.module_dots(EAN13_MODULE_MM, 95, width_mm);
        let _ = write!(self.out, "^BY{module}^BEN,{h},Y,N");
        let data: String = digits
            .chars()
            .filter(char::is_ascii_digit)
            .take(12)
            .collect();
        self.field(&data);
        self
    }

    /// GS1-128 of element strings (AI, value), FNC1 where GS1 requires it.
    /// At most `width_mm` wide (the bars narrow to fit, down to one dot).
    pub fn gs1_128(
        &mut self,
        x: f32,
        y: f32,
        height_mm: f32,
        width_mm: f32,
        elements: &[(String, String)],
    ) -> &mut Zpl {
        self.origin(x, y);
        let h = self.dots(height_mm).max(10);
        let data = gs1_128_data(elements);
        let module = self.module_dots(self.module_mm, code128_modules(&data), width_mm);
        let _ = write!(self.out, "^BY{module}^BCN,{h},N,N,N");
        self.field(&data);
        self
    }

    /// GS1 DataMatrix of element strings.
    pub fn gs1_datamatrix(
        &mut self,
        x: f32,
        y: f32,
        module_dots: u32,
        elements: &[(String, String)],
    ) -> &mut Zpl {
        self.origin(x, y);
        let _ = write!(
            self.out,
            "^BXN,{},200,0,0,6,{DM_ESCAPE}",
            module_dots.clamp(1, 100)
        );
        self.field(&gs1_datamatrix_data(elements));
        self
    }

    /// DataMatrix of plain text.
    pub fn datamatrix(&mut self, x: f32, y: f32, module_dots: u32, data: &str) -> &mut Zpl {
        self.origin(x, y);
        let _ = write!(
            self.out,
            "^BXN,{},200,0,0,6,{DM_ESCAPE}",
            module_dots.clamp(1, 100)
        );
        let mut escaped = String::with_capacity(data.len());
        for c in data.chars() {
            push_dm_char(&mut escaped, c);
        }
        self.field(&escaped);
        self
    }

    /// A box (or a line, when one side is the thickness).
    pub fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, thickness_mm: f32) -> &mut Zpl {
        self.origin(x, y);
        let t = self.dots(thickness_mm).max(1);
        let (w, h) = (self.dots(w).max(t), self.dots(h).max(t));
        let _ = write!(self.out, "^GB{w},{h},{t}^FS");
        self
    }

    /// Copies of this label.
    pub fn copies(&mut self, n: u32) -> &mut Zpl {
        let _ = write!(self.out, "^PQ{}", n.clamp(1, 999));
        self
    }

    /// Ends the label (`^XZ`).
    pub fn finish(mut self) -> String {
        self.out.push_str("^XZ");
        self.out
    }
}

/// Decodes `_XX` escapes (what the printer does with `^FH_` data); for tests and previews.
pub fn unescape_field(data: &str) -> Option<String> {
    let bytes = data.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = data.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn els(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, v)| ((*a).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fields_are_escaped_and_labels_framed() {
        let mut z = Zpl::begin(&LabelSize::default());
        z.text(1.0, 2.0, 3.0, "A^XZ~JR_\\é\n");
        let out = z.finish();
        assert_eq!(
            out,
            "^XA^CI28^PW800^LL400^LH0,0^FO8,16^A0N,24,24^FH_^FDA_5EXZ_7EJR_5F_5Cé_0A^FS^XZ"
        );
    }

    #[test]
    fn code128_doubles_invocation_marks() {
        let mut z = Zpl::begin(&LabelSize::default());
        z.code128(0.0, 0.0, 10.0, 50.0, "A>8B", true);
        assert!(z.finish().contains("^FDA><8B^FS"));
    }

    #[test]
    fn gs1_128_has_real_fnc1_and_subset_c_for_digits() {
        // GTIN (fixed) + expiry (fixed) + lot (variable, last): FNC1 only at the start.
        let d = gs1_128_data(&els(&[
            ("01", "05901234123457"),
            ("17", "270228"),
            ("10", "LOT7"),
        ]));
        assert_eq!(d, ">;>801059012341234571727022810>6LOT7");
        // Lot not last: FNC1 after it.
        let d = gs1_128_data(&els(&[("10", "AB"), ("21", "X")]));
        assert_eq!(d, ">:>810AB>821X");
        // SSCC.
        let d = gs1_128_data(&els(&[("00", "006141411234567890")]));
        assert_eq!(d, ">;>800006141411234567890");
    }

    #[test]
    fn bars_are_sized_in_millimetres_and_narrowed_to_fit() {
        // SSCC: start C, FNC1, ten digit pairs, check.
        assert_eq!(code128_symbols(">;>800059012340000000420"), 13);
        assert_eq!(code128_symbols(">:>810AB>821X"), 11);
        assert_eq!(code128_symbols("A><B"), 5);
        assert_eq!(code128_modules(">;>800059012340000000420"), 156);
        let at = |dpi| {
            Zpl::begin(&LabelSize {
                dpi,
                ..LabelSize::default()
            })
        };
        // 0.25 mm at each resolution: 2, 3 and 6 dots.
        assert_eq!(at(Dpi::D203).module_dots(MODULE_MM, 156, 90.0), 2);
        assert_eq!(at(Dpi::D300).module_dots(MODULE_MM, 156, 90.0), 3);
        assert_eq!(at(Dpi::D600).module_dots(MODULE_MM, 156, 90.0), 6);
        // 600 modules do not fit 90 mm at 2 dots (203 dpi): one dot.
        assert_eq!(at(Dpi::D203).module_dots(MODULE_MM, 600, 90.0), 1);
        let mut z = at(Dpi::D600);
        z.module(0.5)
            .gs1_128(0.0, 0.0, 10.0, 90.0, &els(&[("00", "059012340000000420")]));
        assert!(
            z.finish().contains("^BY10^BCN"),
            "0.5 mm at 600 dpi is 12 dots, capped at 10"
        );
    }

    #[test]
    fn gs1_datamatrix_uses_fnc1_and_escapes_its_escape_character() {
        let d = gs1_datamatrix_data(&els(&[("10", "A_B~"), ("21", "S1")]));
        assert_eq!(d, "_110A_d095B~_121S1");
        let mut z = Zpl::begin(&LabelSize::default());
        z.gs1_datamatrix(1.0, 1.0, 4, &els(&[("10", "L")]));
        // The escape character is named (firmware defaults differ); the data is hex-escaped.
        assert!(z.finish().contains("^BXN,4,200,0,0,6,_^FH_^FD_5F110L^FS"));
    }

    #[test]
    fn unescape_round_trips() {
        for s in ["plain", "^XA~JR_\\", "tab\there", "Ünïcödé ^"] {
            assert_eq!(unescape_field(&escape_field(s)).as_deref(), Some(s));
        }
    }

    /// Every `^FD...^FS` section of a label.
    fn fields(zpl: &str) -> Vec<&str> {
        zpl.split("^FD")
            .skip(1)
            .map(|piece| piece.split("^FS").next().unwrap_or(""))
            .collect()
    }

    proptest! {
        #[test]
        fn no_field_value_can_inject_a_command(value in any::<String>(), lot in "[ -~]{0,20}") {
            let mut z = Zpl::begin(&LabelSize::default());
            z.text(1.0, 1.0, 3.0, &value)
                .text_block(1.0, 5.0, 50.0, 3, 3.0, &value)
                .code128(1.0, 10.0, 10.0, 90.0, &value, true)
                .datamatrix(1.0, 20.0, 4, &value)
                .gs1_128(1.0, 30.0, 10.0, 90.0, &[("10".into(), lot.clone()), ("21".into(), value.clone())])
                .gs1_datamatrix(1.0, 40.0, 4, &[("10".into(), lot.clone()), ("21".into(), value.clone())]);
            let out = z.finish();
            let fields = fields(&out);
            prop_assert_eq!(fields.len(), 6);
            prop_assert_eq!(out.matches("^FD").count(), out.matches("^FS").count());
            prop_assert!(out.ends_with("^XZ") && out.matches("^XZ").count() == 1);
            for f in &fields {
                prop_assert!(!f.contains('^') && !f.contains('~'), "raw command character in {:?}", f);
                prop_assert!(!f.chars().any(|c| c.is_control()), "control character in {:?}", f);
            }
            // Text prints as written.
            let printed = unescape_field(fields[0]);
            prop_assert_eq!(printed.as_deref(), Some(value.as_str()));
        }
    }
}
