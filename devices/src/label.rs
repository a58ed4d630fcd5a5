//! The built-in label templates, rendered with the [`crate::zpl`] emitter.
//!
//! - **product**: name, internal reference, barcode (EAN-13, GTIN-14 as GS1-128, or Code 128);
//! - **location**: the bin's name, large, and its barcode;
//! - **lot**: product, lot or serial, expiry; GS1-128 and GS1 DataMatrix with (01) GTIN,
//!   (17) expiry, (10) lot or (21) serial;
//! - **sscc**: a package's SSCC as GS1-128 (00), with its picking;
//! - **delivery**: the fallback shipping label when the carrier's cannot be fetched from the
//!   cloud: ship-to address from the mirrored partner, picking, origin, SSCC;
//! - **test**: a test pattern naming the printer.
//!
//! Layouts scale with the label size (positions are fractions of width and height), so one
//! template serves 100×50 mm and 100×150 mm stock at any resolution.

use serde::{Deserialize, Serialize};

use crate::gs1;
use crate::zpl::{self, LabelSize, Zpl};

/// X-dimension of SSCC symbols: GS1's minimum for logistic labels (0.495 mm); narrower
/// only when the label is too small for it.
const LOGISTIC_MODULE_MM: f32 = 0.5;

/// A ship-to address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    pub street: Option<String>,
    pub street2: Option<String>,
    pub zip: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
}

/// What a label shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "template", rename_all = "snake_case")]
pub enum Label {
    Product {
        name: String,
        code: Option<String>,
        barcode: Option<String>,
    },
    Location {
        name: String,
        barcode: String,
    },
    Lot {
        product: String,
        code: Option<String>,
        /// 14 digits.
        gtin: Option<String>,
        lot: String,
        /// A serial number (AI 21) rather than a lot (AI 10).
        serial: bool,
        /// `YYYY-MM-DD`.
        expiry: Option<String>,
    },
    Sscc {
        /// 18 digits.
        sscc: String,
        picking: Option<String>,
        content: Option<String>,
    },
    Delivery {
        ship_to: Address,
        picking: String,
        origin: Option<String>,
        sscc: Option<String>,
        carrier: Option<String>,
    },
    Test {
        printer: String,
        at: String,
    },
}

/// Why a label cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("GTIN {0:?} must be 14 digits with a valid check digit")]
    Gtin(String),
    #[error("SSCC {0:?} must be 18 digits with a valid check digit")]
    Sscc(String),
    #[error("expiry {0:?} must be a date YYYY-MM-DD")]
    Expiry(String),
    #[error("{0}")]
    Prefix(String),
    #[error(
        "{what} {value:?} cannot be encoded in GS1 (characters outside GS1's set, or too long)"
    )]
    Gs1 { what: &'static str, value: String },
    #[error("template {template}: {message}")]
    Template {
        template: &'static str,
        message: String,
    },
}

fn digits_with_check(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes().all(|b| b.is_ascii_digit())
        && gs1::check_digit(&s[..len - 1]) == u32::from(s.as_bytes()[len - 1] - b'0')
}

/// An SSCC: extension digit, GS1 company prefix (7 to 10 digits), serial reference padded to
/// fill 17 digits, check digit.
pub fn sscc(extension: u8, company_prefix: &str, serial: u64) -> Result<String, LabelError> {
    if extension > 9 {
        return Err(LabelError::Prefix("the extension digit must be 0-9".into()));
    }
    if !(7..=10).contains(&company_prefix.len())
        || !company_prefix.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(LabelError::Prefix(format!(
            "GS1 company prefix {company_prefix:?} must be 7 to 10 digits"
        )));
    }
    let width = 16 - company_prefix.len();
    let serial_text = format!("{serial:0width$}");
    if serial_text.len() > width {
        return Err(LabelError::Prefix(format!(
            "serial reference {serial} does not fit in {width} digits after prefix {company_prefix}: the prefix's SSCCs are used up"
        )));
    }
    let body = format!("{extension}{company_prefix}{serial_text}");
    Ok(format!("{body}{}", gs1::check_digit(&body)))
}

/// GS1 values are bounded and in character set 82; label data is checked before it is encoded.
/// Whether a lot or serial number fits a GS1 element (AI 10 / 21: 1 to 20 characters of GS1's
/// character set 82), and so can be printed on a lot label.
pub fn lot_printable(lot: &str) -> bool {
    gs1_value("lot", lot, 20).is_ok()
}

fn gs1_value(what: &'static str, value: &str, max: usize) -> Result<String, LabelError> {
    let ok = !value.is_empty()
        && value.chars().count() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!\"%&'()*+,-./:;<=>?_".contains(c));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(LabelError::Gs1 {
            what,
            value: value.to_owned(),
        })
    }
}

/// `YYYY-MM-DD` → `YYMMDD`.
fn yymmdd(date: &str) -> Result<String, LabelError> {
    let bad = || LabelError::Expiry(date.to_owned());
    let b = date.as_bytes();
    if b.len() != 10 || !b.is_ascii() || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (&date[2..4], &date[5..7], &date[8..10]);
    if ![y, m, d]
        .iter()
        .all(|p| p.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    let (month, day): (u8, u8) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&month) || day > 31 {
        return Err(bad());
    }
    Ok(format!("{y}{m}{d}"))
}

fn non_empty(what: &'static str, s: &str) -> Result<(), LabelError> {
    if s.trim().is_empty() {
        Err(LabelError::Empty { what })
    } else {
        Ok(())
    }
}

/// The human-readable form of element strings: `(01)0590…(10)LOT`.
fn human(elements: &[(String, String)]) -> String {
    elements
        .iter()
        .map(|(ai, v)| format!("({ai}){v}"))
        .collect()
}

impl Label {
    /// The template's name.
    pub fn name(&self) -> &'static str {
        match self {
            Label::Product { .. } => "product",
            Label::Location { .. } => "location",
            Label::Lot { .. } => "lot",
            Label::Sscc { .. } => "sscc",
            Label::Delivery { .. } => "delivery",
            Label::Test { .. } => "test",
        }
    }

    /// One line for lists.
    pub fn summary(&self) -> String {
        match self {
            Label::Product { name, .. } => format!("product {name}"),
            Label::Location { name, .. } => format!("location {name}"),
            Label::Lot {
                product,
                lot,
                serial,
                ..
            } => format!(
                "{} {lot} of {product}",
                if *serial { "serial" } else { "lot" }
            ),
            Label::Sscc { sscc, .. } => format!("SSCC {sscc}"),
            Label::Delivery {
                picking, ship_to, ..
            } => format!("delivery {picking} to {}", ship_to.name),
            Label::Test { printer, .. } => format!("test page for {printer}"),
        }
    }

    /// Checks the label's data (names present, check digits, dates, GS1's character set) and
    /// returns its GS1 element strings (none for labels without a GS1 symbol).
    pub fn gs1_elements(&self) -> Result<Vec<(String, String)>, LabelError> {
        match self {
            Label::Product { name, barcode, .. } => {
                non_empty("product name", name)?;
                Ok(match barcode {
                    Some(b) if digits_with_check(b, 14) => vec![("01".into(), b.clone())],
                    _ => vec![],
                })
            }
            Label::Location { name, barcode } => {
                non_empty("location name", name)?;
                non_empty("location barcode", barcode)?;
                Ok(vec![])
            }
            Label::Lot {
                product,
                gtin,
                lot,
                serial,
                expiry,
                ..
            } => {
                non_empty("product name", product)?;
                let mut elements = Vec::new();
                if let Some(g) = gtin {
                    if !digits_with_check(g, 14) {
                        return Err(LabelError::Gtin(g.clone()));
                    }
                    elements.push(("01".to_owned(), g.clone()));
                }
                if let Some(e) = expiry {
                    elements.push(("17".to_owned(), yymmdd(e)?));
                }
                let (ai, what) = if *serial {
                    ("21", "serial")
                } else {
                    ("10", "lot")
                };
                elements.push((ai.to_owned(), gs1_value(what, lot, 20)?));
                Ok(elements)
            }
            Label::Sscc { sscc, .. } => {
                if !digits_with_check(sscc, 18) {
                    return Err(LabelError::Sscc(sscc.clone()));
                }
                Ok(vec![("00".to_owned(), sscc.clone())])
            }
            Label::Delivery {
                ship_to,
                picking,
                sscc,
                ..
            } => {
                non_empty("ship-to name", &ship_to.name)?;
                non_empty("picking", picking)?;
                match sscc {
                    Some(s) if !digits_with_check(s, 18) => Err(LabelError::Sscc(s.clone())),
                    Some(s) => Ok(vec![("00".to_owned(), s.clone())]),
                    None => Ok(vec![]),
                }
            }
            Label::Test { .. } => Ok(vec![]),
        }
    }

    /// What a site template sees: the label's fields (as in its JSON form, `template` naming
    /// it), the label size (`width_dots`, `height_dots`, `dpmm`), `copies`, and the barcode
    /// data ready for ZPL — `gs1_128` (for `^BC` without a mode: start code, FNC1 `>8`,
    /// subsets), `gs1_datamatrix` (for `^BX` quality 200 with escape character `_`),
    /// `gs1_text` (the bracketed human-readable line), `code128` (for `^BC`, `>` written
    /// `><`) and `ean13` (12 digits for `^BE`). Checked as for the built-in layouts.
    pub fn context(&self, size: &LabelSize, copies: u32) -> Result<serde_json::Value, LabelError> {
        let elements = self.gs1_elements()?;
        let mut ctx = serde_json::to_value(self).unwrap_or_default();
        let Some(map) = ctx.as_object_mut() else {
            return Ok(ctx);
        };
        let dpmm = size.dpi.dots_per_mm();
        map.insert(
            "width_dots".into(),
            ((size.width_mm * dpmm).round() as u32).into(),
        );
        map.insert(
            "height_dots".into(),
            ((size.height_mm * dpmm).round() as u32).into(),
        );
        map.insert("dpmm".into(), (dpmm as u32).into());
        map.insert("copies".into(), copies.clamp(1, 999).into());
        let (gs1_128, gs1_datamatrix, gs1_text) = if elements.is_empty() {
            (None, None, None)
        } else {
            (
                Some(zpl::gs1_128_data(&elements)),
                Some(zpl::gs1_datamatrix_data(&elements)),
                Some(human(&elements)),
            )
        };
        let (code128, ean13) = match self {
            Label::Product { code, barcode, .. } => match barcode.as_deref() {
                Some(b) if digits_with_check(b, 13) => (None, Some(b[..12].to_owned())),
                Some(b) if digits_with_check(b, 14) => (None, None),
                Some(b) if !b.is_empty() => (Some(zpl::code128_data(b)), None),
                _ => (code.as_deref().map(zpl::code128_data), None),
            },
            Label::Location { barcode, .. } => (Some(zpl::code128_data(barcode)), None),
            Label::Test { printer, .. } => (Some(zpl::code128_data(printer)), None),
            _ => (None, None),
        };
        for (key, value) in [
            ("gs1_128", gs1_128),
            ("gs1_datamatrix", gs1_datamatrix),
            ("gs1_text", gs1_text),
            ("code128", code128),
            ("ean13", ean13),
        ] {
            map.insert(key.into(), value.into());
        }
        Ok(ctx)
    }

    /// A label of each template with made-up data: for checking site templates at start.
    pub fn samples() -> Vec<Label> {
        let sscc = "059012340000000420".to_owned();
        vec![
            Label::Product {
                name: "Sample product".into(),
                code: Some("SAMPLE".into()),
                barcode: Some("5901234123457".into()),
            },
            Label::Location {
                name: "WH/Stock/A-01-01".into(),
                barcode: "WH-A-01-01".into(),
            },
            Label::Lot {
                product: "Sample product".into(),
                code: Some("SAMPLE".into()),
                gtin: Some("05901234123457".into()),
                lot: "LOT-1".into(),
                serial: false,
                expiry: Some("2030-01-31".into()),
            },
            Label::Sscc {
                sscc: sscc.clone(),
                picking: Some("WH/OUT/00001".into()),
                content: Some("1 item".into()),
            },
            Label::Delivery {
                ship_to: Address {
                    name: "Sample customer".into(),
                    street: Some("1 Sample street".into()),
                    street2: None,
                    zip: Some("1000".into()),
                    city: Some("Sample city".into()),
                    country: Some("Sample country".into()),
                },
                picking: "WH/OUT/00001".into(),
                origin: Some("S00001".into()),
                sscc: Some(sscc),
                carrier: Some("Sample carrier".into()),
            },
            Label::Test {
                printer: "printer".into(),
                at: "2030-01-31 12:00".into(),
            },
        ]
    }

    /// The label's ZPL for a label size, `copies` times (the built-in layouts).
    pub fn render(&self, size: &LabelSize, copies: u32) -> Result<String, LabelError> {
        let elements = self.gs1_elements()?;
        let (w, h) = (size.width_mm, size.height_mm);
        let m = (w.min(h) * 0.04).max(2.0); // margin
        let inner = w - 2.0 * m;
        let mut z = Zpl::begin(size);
        match self {
            Label::Product {
                name,
                code,
                barcode,
            } => {
                z.text_block(m, m, inner, 2, h * 0.12, name);
                if let Some(code) = code {
                    z.text_fit(m, m + h * 0.28, h * 0.09, inner, &format!("[{code}]"));
                }
                let y = h * 0.45;
                let bh = h * 0.3;
                match barcode.as_deref() {
                    Some(b) if digits_with_check(b, 13) => {
                        z.ean13(m + inner * 0.1, y, bh, inner * 0.9, b);
                    }
                    Some(b) if digits_with_check(b, 14) => {
                        z.gs1_128(m, y, bh, inner, &elements);
                        z.text_fit(m, y + bh + 1.0, h * 0.07, inner, &format!("(01){b}"));
                    }
                    Some(b) if !b.is_empty() => {
                        z.code128(m, y, bh, inner, b, true);
                    }
                    _ => {
                        if let Some(code) = code {
                            z.code128(m, y, bh, inner, code, true);
                        }
                    }
                }
            }
            Label::Location { name, barcode } => {
                z.text_fit(m, m, h * 0.22, inner, name);
                z.code128(m, h * 0.4, h * 0.4, inner, barcode, true);
            }
            Label::Lot {
                product,
                code,
                lot,
                serial,
                expiry,
                ..
            } => {
                z.text_block(m, m, inner * 0.7, 2, h * 0.1, product);
                if let Some(code) = code {
                    z.text_fit(m, m + h * 0.22, h * 0.08, inner * 0.7, &format!("[{code}]"));
                }
                let what = if *serial { "SN" } else { "LOT" };
                z.text_fit(m, h * 0.34, h * 0.1, inner * 0.5, &format!("{what} {lot}"));
                if let Some(e) = expiry {
                    z.text_fit(
                        m + inner * 0.55,
                        h * 0.34,
                        h * 0.1,
                        inner * 0.45,
                        &format!("EXP {e}"),
                    );
                }
                z.gs1_128(m, h * 0.5, h * 0.28, inner, &elements);
                z.text_fit(m, h * 0.82, h * 0.07, inner, &human(&elements));
                let module = (size.dpi.dots_per_mm() * 0.5).round().max(2.0) as u32;
                z.gs1_datamatrix(m + inner * 0.78, m, module, &elements);
            }
            Label::Sscc {
                sscc,
                picking,
                content,
            } => {
                z.text(m, m, h * 0.08, "SSCC");
                z.text(m, m + h * 0.1, h * 0.12, sscc);
                if let Some(p) = picking {
                    z.text_fit(m, m + h * 0.25, h * 0.09, inner * 0.5, p);
                }
                if let Some(c) = content {
                    z.text_block(m + inner * 0.5, m + h * 0.25, inner * 0.5, 1, h * 0.07, c);
                }
                z.module(LOGISTIC_MODULE_MM)
                    .gs1_128(m, h * 0.45, h * 0.35, inner, &elements);
                z.text_fit(m, h * 0.84, h * 0.07, inner, &human(&elements));
            }
            Label::Delivery {
                ship_to,
                picking,
                origin,
                sscc,
                carrier,
            } => {
                z.text(m, m, h * 0.05, "SHIP TO");
                let lines: Vec<String> = [
                    Some(ship_to.name.clone()),
                    ship_to.street.clone(),
                    ship_to.street2.clone(),
                    match (&ship_to.zip, &ship_to.city) {
                        (Some(z), Some(c)) => Some(format!("{z} {c}")),
                        (z, c) => z.clone().or_else(|| c.clone()),
                    },
                    ship_to.country.clone(),
                ]
                .into_iter()
                .flatten()
                .filter(|l| !l.trim().is_empty())
                .collect();
                for (i, line) in lines.iter().enumerate() {
                    z.text_fit(m, m + h * (0.07 + 0.075 * i as f32), h * 0.065, inner, line);
                }
                // Picking, order, carrier and the fallback note, one line each.
                let mut y = m + h * 0.46;
                z.rect(m, y - 1.0, inner, 0.3, 0.3);
                let mut line = |z: &mut Zpl, height: f32, text: &str| {
                    z.text_fit(m, y, height, inner, text);
                    y += height + h * 0.012;
                };
                line(&mut z, h * 0.055, &format!("Picking {picking}"));
                if let Some(o) = origin {
                    line(&mut z, h * 0.045, &format!("Order {o}"));
                }
                if let Some(c) = carrier {
                    line(&mut z, h * 0.045, &format!("Carrier {c}"));
                }
                line(
                    &mut z,
                    h * 0.035,
                    "Fallback label - carrier label unavailable",
                );
                if sscc.is_some() {
                    let top = m + h * 0.72;
                    z.module(LOGISTIC_MODULE_MM)
                        .gs1_128(m, top, h * 0.16, inner, &elements);
                    z.text_fit(m, top + h * 0.18, h * 0.045, inner, &human(&elements));
                }
            }
            Label::Test { printer, at } => {
                z.rect(m, m, inner, h - 2.0 * m, 0.5);
                z.text(2.0 * m, 2.0 * m, h * 0.12, "Holdfast test label");
                z.text_fit(
                    2.0 * m,
                    2.0 * m + h * 0.15,
                    h * 0.08,
                    inner - 2.0 * m,
                    &format!("Printer {printer}"),
                );
                z.text_fit(2.0 * m, 2.0 * m + h * 0.26, h * 0.07, inner - 2.0 * m, at);
                z.code128(2.0 * m, h * 0.55, h * 0.2, inner - 2.0 * m, printer, false);
            }
        }
        if copies > 1 {
            z.copies(copies);
        }
        Ok(z.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size() -> LabelSize {
        LabelSize::default()
    }

    #[test]
    fn sscc_has_its_check_digit() {
        assert_eq!(sscc(0, "0614141", 123456789).unwrap(), "006141411234567890");
        assert_eq!(sscc(3, "5901230", 1).unwrap().len(), 18);
        assert!(
            sscc(0, "0614141", 1_000_000_000).is_err(),
            "does not fit 9 digits"
        );
        assert!(sscc(0, "12", 1).is_err());
        assert!(sscc(10, "0614141", 1).is_err());
    }

    #[test]
    fn expiry_dates_are_checked_not_sliced_blindly() {
        assert_eq!(yymmdd("2027-03-31").unwrap(), "270331");
        assert_eq!(yymmdd("2027-03-00").unwrap(), "270300");
        // Ten bytes with a multi-byte character: refused, not a panic on a char boundary.
        for bad in [
            "1\u{e9}3-05-01",
            "2027-13-01",
            "2027/03/31",
            "27-03-31",
            "2027-0a-01",
        ] {
            assert!(yymmdd(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_template_renders() {
        let labels = [
            Label::Product {
                name: "Widget ^XA injected~".into(),
                code: Some("HF-00037".into()),
                barcode: Some("5901230000363".into()),
            },
            Label::Product {
                name: "Boxed".into(),
                code: None,
                barcode: Some("05901230000363".into()),
            },
            Label::Location {
                name: "WH/Stock/WH-A-02-03".into(),
                barcode: "WH-A-02-03".into(),
            },
            Label::Lot {
                product: "Yoghurt".into(),
                code: None,
                gtin: Some("05901230000035".into()),
                lot: "LOT-7".into(),
                serial: false,
                expiry: Some("2027-02-28".into()),
            },
            Label::Sscc {
                sscc: sscc(0, "5901230", 42).unwrap(),
                picking: Some("WH/OUT/00001".into()),
                content: None,
            },
            Label::Delivery {
                ship_to: Address {
                    name: "Acme".into(),
                    street: Some("1 Main St".into()),
                    zip: Some("1000".into()),
                    city: Some("Brussels".into()),
                    ..Default::default()
                },
                picking: "WH/OUT/00001".into(),
                origin: Some("S00042".into()),
                sscc: Some(sscc(0, "5901230", 43).unwrap()),
                carrier: None,
            },
            Label::Test {
                printer: "dock".into(),
                at: "2026-11-24T10:00:00Z".into(),
            },
        ];
        for label in &labels {
            let z = label.render(&size(), 2).unwrap();
            assert!(z.starts_with("^XA^CI28") && z.ends_with("^PQ2^XZ"), "{z}");
            assert_eq!(z.matches("^XZ").count(), 1, "{z}");
        }
        let lot = labels[3].render(&size(), 1).unwrap();
        assert!(
            lot.contains(">;>801059012300000351727022810>6LOT-7"),
            "{lot}"
        );
        assert!(
            lot.contains("^FD_5F10105901230000035172702281"),
            "GS1 DataMatrix, {lot}"
        );
        assert!(
            labels[0].render(&size(), 1).unwrap().contains("^BEN"),
            "EAN-13"
        );
        assert!(
            labels[0]
                .render(&size(), 1)
                .unwrap()
                .contains("_5EXA injected_7E")
        );
    }

    #[test]
    fn bad_data_is_refused_with_a_reason() {
        let lot = |gtin: &str, lot: &str, expiry: &str| Label::Lot {
            product: "P".into(),
            code: None,
            gtin: Some(gtin.into()),
            lot: lot.into(),
            serial: false,
            expiry: Some(expiry.into()),
        };
        assert_eq!(
            lot("05901230000036", "L", "2027-01-01").render(&size(), 1),
            Err(LabelError::Gtin("05901230000036".into()))
        );
        assert!(matches!(
            lot("05901230000035", "L^X", "2027-01-01").render(&size(), 1),
            Err(LabelError::Gs1 { .. })
        ));
        assert!(matches!(
            lot("05901230000035", "L", "27-1-1").render(&size(), 1),
            Err(LabelError::Expiry(_))
        ));
        let s = Label::Sscc {
            sscc: "123".into(),
            picking: None,
            content: None,
        };
        assert!(matches!(s.render(&size(), 1), Err(LabelError::Sscc(_))));
        let p = Label::Product {
            name: " ".into(),
            code: None,
            barcode: None,
        };
        assert!(matches!(
            p.render(&size(), 1),
            Err(LabelError::Empty { .. })
        ));
    }
}
