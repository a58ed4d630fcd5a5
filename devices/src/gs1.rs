//! Barcode decoding: AIM symbology identifiers and GS1 element strings.
//!
//! A scan may start with an AIM symbology identifier (`]C1` GS1-128, `]d2` GS1 DataMatrix,
//! `]Q3` GS1 QR, `]e0` GS1 DataBar, `]E0` EAN-13, ...). It is stripped and tells whether the
//! data is GS1 element strings. Without one, data is read as GS1 when it carries group
//! separators or the human-readable `(01)…(10)…` form, or when it is all digits, longer than a
//! GTIN, and parses cleanly with valid check digits; anything else is plain text (an EAN-13,
//! a location code, a picking name).
//!
//! GS1 parsing follows the General Specifications: predefined fixed-length AIs need no
//! separator, variable-length ones end at FNC1 (GS, 0x1D) or the end of the data; check
//! digits are verified (00, 01, 02, 41x); dates with day `00` mean the last day of the month.
//! Keyboard-wedge scanners that lose GS can be configured to send another character instead
//! ([`DecodeOptions::separator`]).

use std::fmt;

/// ASCII group separator: FNC1 inside GS1 data.
pub const GS: char = '\u{1d}';

/// An AIM symbology identifier (`]` + code character + modifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbology {
    pub code: char,
    pub modifier: char,
}

impl Symbology {
    /// Whether this identifier announces GS1 element strings.
    pub fn is_gs1(self) -> bool {
        matches!(
            (self.code, self.modifier),
            ('C', '1') | ('e', '0') | ('d', '2') | ('Q', '3') | ('J', '1')
        )
    }
}

impl fmt::Display for Symbology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "]{}{}", self.code, self.modifier)
    }
}

/// How to decode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// A character the scanner sends in place of GS (keyboard wedges often lose 0x1D).
    pub separator: Option<char>,
}

/// A calendar date from a GS1 date AI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gs1Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl fmt::Display for Gs1Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A decoded element string's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Gs1Value {
    /// Digits or GS1 characters as sent (GTIN, SSCC, lot, serial, GLN, ...).
    Text(String),
    /// AI 11–17.
    Date(Gs1Date),
    /// AI 310n–369n: the value with its implied decimals applied.
    Measure { value: f64, decimals: u8 },
    /// AI 30 and 37.
    Count(u64),
}

/// One AI and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    pub ai: String,
    /// The raw data as scanned (digits for dates and measures).
    pub raw: String,
    pub value: Gs1Value,
}

/// What a scan holds.
#[derive(Clone, Debug, PartialEq)]
pub enum ScanData {
    Plain(String),
    Gs1(Vec<Element>),
}

/// A decoded scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub symbology: Option<Symbology>,
    pub data: ScanData,
}

impl Decoded {
    /// The first element with this AI.
    pub fn ai(&self, ai: &str) -> Option<&Element> {
        match &self.data {
            ScanData::Gs1(elements) => elements.iter().find(|e| e.ai == ai),
            ScanData::Plain(_) => None,
        }
    }
}

/// Why GS1 data could not be read; positions count characters after the symbology id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Gs1Error {
    #[error("no data after the symbology identifier")]
    Empty,
    #[error("unknown application identifier at position {position} (data {rest:?})")]
    UnknownAi { position: usize, rest: String },
    #[error("AI ({ai}) at position {position}: needs {expected} characters, only {found} left")]
    TooShort {
        ai: String,
        position: usize,
        expected: usize,
        found: usize,
    },
    #[error(
        "AI ({ai}) at position {position}: value longer than {max} characters (a missing separator?)"
    )]
    TooLong {
        ai: String,
        position: usize,
        max: usize,
    },
    #[error("AI ({ai}) at position {position}: {ch:?} is not allowed ({allowed})")]
    BadChar {
        ai: String,
        position: usize,
        ch: char,
        allowed: &'static str,
    },
    #[error("AI ({ai}): check digit is {found}, should be {expected}")]
    CheckDigit {
        ai: String,
        expected: u32,
        found: u32,
    },
    #[error("AI ({ai}): {value:?} is not a valid date (YYMMDD)")]
    BadDate { ai: String, value: String },
    #[error("AI ({ai}) at position {position}: empty value")]
    EmptyValue { ai: String, position: usize },
    #[error("malformed human-readable GS1 at position {position}")]
    BadBrackets { position: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Digits only.
    Numeric,
    /// GS1 character set 82.
    Alpha,
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Gtin,
    Date,
    Measure(u8),
    Count,
    Plain,
}

/// A row of the AI table: data length (fixed, or max when variable) and type.
#[derive(Clone, Copy, Debug)]
struct AiSpec {
    fixed: bool,
    len: usize,
    kind: Kind,
    shape: Shape,
}

const fn spec(fixed: bool, len: usize, kind: Kind, shape: Shape) -> AiSpec {
    AiSpec {
        fixed,
        len,
        kind,
        shape,
    }
}

/// Looks up the AI at the start of `s`: (ai, spec).
fn lookup(s: &str) -> Option<(&str, AiSpec)> {
    use Kind::*;
    use Shape::*;
    let two = s.get(..2)?;
    let table2 = match two {
        "00" => Some(spec(true, 18, Numeric, Gtin)),
        "01" | "02" => Some(spec(true, 14, Numeric, Gtin)),
        "10" | "21" | "22" => Some(spec(false, 20, Alpha, Plain)),
        "11" | "12" | "13" | "15" | "16" | "17" => Some(spec(true, 6, Numeric, Date)),
        "20" => Some(spec(true, 2, Numeric, Plain)),
        "30" | "37" => Some(spec(false, 8, Numeric, Count)),
        "90" => Some(spec(false, 30, Alpha, Plain)),
        "91" | "92" | "93" | "94" | "95" | "96" | "97" | "98" | "99" => {
            Some(spec(false, 90, Alpha, Plain))
        }
        _ => None,
    };
    if let Some(sp) = table2 {
        return Some((two, sp));
    }
    let three = s.get(..3)?;
    let table3 = match three {
        "240" | "241" | "250" | "251" | "400" | "401" | "403" => {
            Some(spec(false, 30, Alpha, Plain))
        }
        "254" => Some(spec(false, 20, Alpha, Plain)),
        "402" => Some(spec(true, 17, Numeric, Plain)),
        "410" | "411" | "412" | "413" | "414" | "415" | "416" | "417" => {
            Some(spec(true, 13, Numeric, Gtin))
        }
        "420" => Some(spec(false, 20, Alpha, Plain)),
        "422" | "424" | "426" => Some(spec(true, 3, Numeric, Plain)),
        _ => None,
    };
    if let Some(sp) = table3 {
        return Some((three, sp));
    }
    let four = s.get(..4)?;
    if four.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
        let head: u32 = four[..3].parse().ok()?;
        let decimals = four.as_bytes()[3];
        if (310..=369).contains(&head) && decimals.is_ascii_digit() {
            return Some((four, spec(true, 6, Numeric, Measure(decimals - b'0'))));
        }
    }
    match four {
        "7003" => Some((four, spec(true, 10, Numeric, Plain))),
        "8005" => Some((four, spec(true, 6, Numeric, Plain))),
        _ => None,
    }
}

/// Whether the first two digits make an AI of predefined length (no separator follows it).
fn predefined(ai: &str) -> bool {
    matches!(
        &ai[..2],
        "00" | "01"
            | "02"
            | "03"
            | "04"
            | "11"
            | "12"
            | "13"
            | "14"
            | "15"
            | "16"
            | "17"
            | "18"
            | "19"
            | "20"
            | "31"
            | "32"
            | "33"
            | "34"
            | "35"
            | "36"
            | "41"
    )
}

/// GS1 AI encodable character set 82.
fn set82(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!\"%&'()*+,-./:;<=>?_".contains(c)
}

/// GS1 check digit over a string of digits.
pub fn check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

/// YYMMDD, read as 20YY, with day 00 = the last day of the month.
fn date(ai: &str, raw: &str) -> Result<Gs1Date, Gs1Error> {
    let bad = || Gs1Error::BadDate {
        ai: ai.to_owned(),
        value: raw.to_owned(),
    };
    let n = |r: std::ops::Range<usize>| raw.get(r).and_then(|v| v.parse::<u16>().ok());
    let (yy, mm, dd) = (
        n(0..2).ok_or_else(bad)?,
        n(2..4).ok_or_else(bad)?,
        n(4..6).ok_or_else(bad)?,
    );
    // Warehouse dates sit near today: read YY as 2000-2099 (a scanner has no better clock).
    let year = 2000 + yy;
    let month = u8::try_from(mm).map_err(|_| bad())?;
    if !(1..=12).contains(&month) {
        return Err(bad());
    }
    let last = days_in_month(year, month);
    let day = match u8::try_from(dd).map_err(|_| bad())? {
        0 => last,
        d if d <= last => d,
        _ => return Err(bad()),
    };
    Ok(Gs1Date { year, month, day })
}

fn value(ai: &str, spec: AiSpec, raw: &str, position: usize) -> Result<Gs1Value, Gs1Error> {
    if raw.is_empty() {
        return Err(Gs1Error::EmptyValue {
            ai: ai.to_owned(),
            position,
        });
    }
    for (i, ch) in raw.chars().enumerate() {
        let ok = match spec.kind {
            Kind::Numeric => ch.is_ascii_digit(),
            Kind::Alpha => set82(ch),
        };
        if !ok {
            return Err(Gs1Error::BadChar {
                ai: ai.to_owned(),
                position: position + i,
                ch,
                allowed: match spec.kind {
                    Kind::Numeric => "digits only",
                    Kind::Alpha => "GS1 character set 82",
                },
            });
        }
    }
    Ok(match spec.shape {
        Shape::Gtin => {
            let (body, check) = raw.split_at(raw.len() - 1);
            let expected = check_digit(body);
            let found = u32::from(check.as_bytes()[0] - b'0');
            if expected != found {
                return Err(Gs1Error::CheckDigit {
                    ai: ai.to_owned(),
                    expected,
                    found,
                });
            }
            Gs1Value::Text(raw.to_owned())
        }
        Shape::Date => Gs1Value::Date(date(ai, raw)?),
        Shape::Measure(decimals) => {
            let n: u64 = raw.parse().map_err(|_| Gs1Error::BadChar {
                ai: ai.to_owned(),
                position,
                ch: '?',
                allowed: "digits only",
            })?;
            Gs1Value::Measure {
                value: n as f64 / 10f64.powi(i32::from(decimals)),
                decimals,
            }
        }
        Shape::Count => Gs1Value::Count(raw.parse().unwrap_or(0)),
        Shape::Plain => Gs1Value::Text(raw.to_owned()),
    })
}

/// Parses GS1 element strings with GS separators.
pub fn parse_gs1(data: &str) -> Result<Vec<Element>, Gs1Error> {
    let chars: Vec<char> = data.chars().collect();
    let mut pos = 0;
    // A leading FNC1 (some scanners transmit it) is not data.
    while pos < chars.len() && chars[pos] == GS {
        pos += 1;
    }
    if pos >= chars.len() {
        return Err(Gs1Error::Empty);
    }
    let mut out = Vec::new();
    while pos < chars.len() {
        let rest: String = chars[pos..].iter().collect();
        let Some((ai, spec)) = lookup(&rest) else {
            return Err(Gs1Error::UnknownAi {
                position: pos,
                rest: rest.chars().take(8).collect(),
            });
        };
        let ai = ai.to_owned();
        let start = pos + ai.len();
        let (raw, next) = if spec.fixed {
            let available = chars.len().saturating_sub(start);
            if available < spec.len {
                return Err(Gs1Error::TooShort {
                    ai,
                    position: start,
                    expected: spec.len,
                    found: available,
                });
            }
            let raw: String = chars[start..start + spec.len].iter().collect();
            if raw.contains(GS) {
                return Err(Gs1Error::TooShort {
                    ai,
                    position: start,
                    expected: spec.len,
                    found: raw.find(GS).unwrap_or(0),
                });
            }
            (raw, start + spec.len)
        } else {
            let end = chars[start..]
                .iter()
                .position(|c| *c == GS)
                .map_or(chars.len(), |i| start + i);
            if end - start > spec.len {
                return Err(Gs1Error::TooLong {
                    ai,
                    position: start,
                    max: spec.len,
                });
            }
            (chars[start..end].iter().collect(), end)
        };
        let value = value(&ai, spec, &raw, start)?;
        out.push(Element { ai, raw, value });
        pos = next;
        // A separator after a fixed-length AI is tolerated; after a variable one it is required.
        if pos < chars.len() && chars[pos] == GS {
            pos += 1;
        }
    }
    Ok(out)
}

/// Parses the human-readable form `(01)09501101530003(10)ABC`.
fn parse_brackets(data: &str) -> Result<Vec<Element>, Gs1Error> {
    let mut encoded = String::new();
    let mut rest = data;
    let mut position = 0;
    while !rest.is_empty() {
        let close = rest
            .strip_prefix('(')
            .and_then(|r| r.find(')').map(|i| i + 1))
            .ok_or(Gs1Error::BadBrackets { position })?;
        let ai = &rest[1..close];
        let after = &rest[close + 1..];
        let end = after.find('(').unwrap_or(after.len());
        if !encoded.is_empty() {
            encoded.push(GS);
        }
        encoded.push_str(ai);
        encoded.push_str(&after[..end]);
        position += close + 1 + end;
        rest = &after[end..];
    }
    parse_gs1(&encoded)
}

/// Writes elements as GS1 data: GS after every non-final element whose AI is not of
/// predefined length (the encoder the property tests and label printing share).
pub fn encode(elements: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (ai, raw)) in elements.iter().enumerate() {
        out.push_str(ai);
        out.push_str(raw);
        if i + 1 < elements.len() && !predefined(ai) {
            out.push(GS);
        }
    }
    out
}

/// Decodes a scan (already checked by [`crate::scan::RawScan`]).
pub fn decode(scan: &str, options: &DecodeOptions) -> Result<Decoded, Gs1Error> {
    let (symbology, data) = match scan.strip_prefix(']') {
        Some(rest) if rest.chars().count() >= 2 => {
            let mut it = rest.chars();
            let code = it.next().unwrap_or('?');
            let modifier = it.next().unwrap_or('?');
            (Some(Symbology { code, modifier }), it.as_str())
        }
        _ => (None, scan),
    };
    let data: String = match options.separator {
        Some(sep) => data.replace(sep, &GS.to_string()),
        None => data.to_owned(),
    };
    let gs1 = match symbology {
        Some(s) => s.is_gs1(),
        None => {
            data.contains(GS)
                || data.starts_with('(')
                || (data.len() > 14
                    && data.bytes().all(|b| b.is_ascii_digit())
                    && parse_gs1(&data).is_ok())
        }
    };
    if !gs1 {
        return Ok(Decoded {
            symbology,
            data: ScanData::Plain(data),
        });
    }
    let elements = if data.starts_with('(') {
        parse_brackets(&data)?
    } else {
        parse_gs1(&data)?
    };
    Ok(Decoded {
        symbology,
        data: ScanData::Gs1(elements),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn gs1(scan: &str) -> Vec<(String, Gs1Value)> {
        match decode(scan, &DecodeOptions::default()).unwrap().data {
            ScanData::Gs1(e) => e.into_iter().map(|e| (e.ai, e.value)).collect(),
            ScanData::Plain(p) => panic!("plain: {p:?}"),
        }
    }

    fn text(s: &str) -> Gs1Value {
        Gs1Value::Text(s.to_owned())
    }

    #[test]
    fn reads_gs1_with_symbology_separators_and_brackets() {
        let expected = vec![
            ("01".to_owned(), text("09501101530003")),
            (
                "17".to_owned(),
                Gs1Value::Date(Gs1Date {
                    year: 2027,
                    month: 2,
                    day: 28,
                }),
            ),
            ("10".to_owned(), text("LOT-7")),
            ("21".to_owned(), text("SN123")),
        ];
        for scan in [
            "]C1010950110153000317270200\u{1d}10LOT-7\u{1d}21SN123"
                .replacen("\u{1d}10", "10", 1)
                .as_str(),
            "]d2010950110153000317270200\u{1d}10LOT-7\u{1d}21SN123",
            "(01)09501101530003(17)270200(10)LOT-7(21)SN123",
            "\u{1d}010950110153000317270200\u{1d}10LOT-7\u{1d}21SN123",
        ] {
            assert_eq!(gs1(scan), expected, "{scan:?}");
        }
        // Keyboard wedge that turns GS into '|'.
        let options = DecodeOptions {
            separator: Some('|'),
        };
        let d = decode("]C1010950110153000310LOT-7|21SN123", &options).unwrap();
        assert_eq!(d.ai("21").map(|e| e.raw.as_str()), Some("SN123"));
        assert_eq!(
            d.symbology,
            Some(Symbology {
                code: 'C',
                modifier: '1'
            })
        );
    }

    #[test]
    fn measures_counts_sscc_and_glns() {
        let v = gs1("]C1000012345600000000183102001250\u{1d}3712\u{1d}4145901234123457");
        assert_eq!(v[0], ("00".to_owned(), text("001234560000000018")));
        assert_eq!(
            v[1],
            (
                "3102".to_owned(),
                Gs1Value::Measure {
                    value: 12.5,
                    decimals: 2
                }
            )
        );
        assert_eq!(v[2], ("37".to_owned(), Gs1Value::Count(12)));
        assert_eq!(v[3], ("414".to_owned(), text("5901234123457")));
    }

    #[test]
    fn plain_scans_stay_plain() {
        for (scan, sym) in [
            (
                "]E05901234123457",
                Some(Symbology {
                    code: 'E',
                    modifier: '0',
                }),
            ),
            ("5901234123457", None),
            ("WH-A-01-01", None),
            ("WH/OUT/00001", None),
            (
                "]A0ABC-123",
                Some(Symbology {
                    code: 'A',
                    modifier: '0',
                }),
            ),
        ] {
            let d = decode(scan, &DecodeOptions::default()).unwrap();
            assert!(matches!(d.data, ScanData::Plain(_)), "{scan}");
            assert_eq!(d.symbology, sym);
        }
    }

    #[test]
    fn errors_name_the_ai_and_position() {
        let cases = [
            (
                "]C10109501101530004",
                "AI (01): check digit is 4, should be 3",
            ),
            (
                "]C1010950110153",
                "AI (01) at position 2: needs 14 characters, only 10 left",
            ),
            ("]C1", "no data after the symbology identifier"),
            (
                "]C1880123",
                "unknown application identifier at position 0 (data \"880123\")",
            ),
            (
                "]C110ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                "AI (10) at position 2: value longer than 20 characters (a missing separator?)",
            ),
            (
                "]C110AB CD",
                "AI (10) at position 4: ' ' is not allowed (GS1 character set 82)",
            ),
            (
                "]C1171302",
                "AI (17) at position 2: needs 6 characters, only 4 left",
            ),
            (
                "]C117271301",
                "AI (17): \"271301\" is not a valid date (YYMMDD)",
            ),
            (
                "]C13102ABCDEF",
                "AI (3102) at position 4: 'A' is not allowed (digits only)",
            ),
            ("]C110\u{1d}21X", "AI (10) at position 2: empty value"),
        ];
        for (scan, expected) in cases {
            let err = decode(scan, &DecodeOptions::default())
                .expect_err(scan)
                .to_string();
            assert_eq!(err, expected, "{scan:?}");
        }
    }

    #[test]
    fn day_zero_is_the_last_day_of_the_month() {
        let d = |s: &str| date("17", s).unwrap();
        assert_eq!(d("280200").day, 29, "2028 is a leap year");
        assert_eq!(d("270200").day, 28);
        assert_eq!(d("270400").day, 30);
        assert!(date("17", "270230").is_err());
        assert!(date("17", "271301").is_err());
    }

    fn element() -> impl Strategy<Value = (String, String)> {
        let gtin = "[0-9]{13}".prop_map(|b| {
            let c = check_digit(&b);
            format!("{b}{c}")
        });
        let sscc = "[0-9]{17}".prop_map(|b| format!("{b}{}", check_digit(&b)));
        let lot = "[A-Za-z0-9!%&*+./:;<=>?_-]{1,20}";
        let date = (0u8..100, 1u8..13, 0u8..29).prop_map(|(y, m, d)| format!("{y:02}{m:02}{d:02}"));
        prop_oneof![
            gtin.clone().prop_map(|v| ("01".to_owned(), v)),
            gtin.prop_map(|v| ("02".to_owned(), v)),
            sscc.prop_map(|v| ("00".to_owned(), v)),
            lot.prop_map(|v| ("10".to_owned(), v)),
            "[A-Za-z0-9]{1,20}".prop_map(|v| ("21".to_owned(), v)),
            date.clone().prop_map(|v| ("17".to_owned(), v)),
            date.prop_map(|v| ("11".to_owned(), v)),
            (0u8..6, "[0-9]{6}").prop_map(|(n, v)| (format!("310{n}"), v)),
            "[0-9]{1,8}".prop_map(|v| ("37".to_owned(), v)),
            "[0-9]{12}".prop_map(|b| ("414".to_owned(), format!("{b}{}", check_digit(&b)))),
            "[A-Z0-9]{1,30}".prop_map(|v| ("400".to_owned(), v)),
            "[A-Z0-9]{1,90}".prop_map(|v| ("91".to_owned(), v)),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(elements in proptest::collection::vec(element(), 1..6)) {
            let scan = format!("]C1{}", encode(&elements));
            let decoded = decode(&scan, &DecodeOptions::default()).unwrap();
            let ScanData::Gs1(got) = decoded.data else { panic!("plain") };
            let got: Vec<(String, String)> = got.into_iter().map(|e| (e.ai, e.raw)).collect();
            prop_assert_eq!(got, elements);
        }

        #[test]
        fn any_text_decodes_or_fails_cleanly(s in "\\PC{0,60}") {
            let _ = decode(&s, &DecodeOptions::default());
            let _ = decode(&format!("]C1{s}"), &DecodeOptions { separator: Some('|') });
        }
    }
}
