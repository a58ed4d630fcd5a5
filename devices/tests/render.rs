//! Every built-in label rendered as a printer would (labelize, a ZPL renderer) and its
//! barcodes read back as a scanner would (rxing): what the emitter means by FNC1, subsets,
//! escapes, check digits and resolution is what a reader decodes. The images are kept under
//! the test target directory (`target/tmp/label-renders/`) for a look.

#![allow(clippy::unwrap_used)]

use holdfast_devices::label::{Address, Label, sscc};
use holdfast_devices::zpl::{Dpi, LabelSize, Zpl};
use rxing::{RXingResultMetadataType, RXingResultMetadataValue};

/// A barcode as read: format, symbology identifier (`]C1` GS1-128, `]d2` GS1 DataMatrix,
/// `]E0` EAN-13...), text (FNC1 separators as 0x1D).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Read {
    format: String,
    symbology: String,
    text: String,
}

fn read(format: &str, symbology: &str, text: &str) -> Read {
    Read {
        format: format.into(),
        symbology: symbology.into(),
        text: text.into(),
    }
}

/// Renders `zpl` at `size` (saved as `<name>.png`) and returns every barcode found on it.
fn read_back(name: &str, zpl: &str, size: &LabelSize) -> Vec<Read> {
    let dpmm = match size.dpi {
        Dpi::D203 => 8,
        Dpi::D300 => 12,
        Dpi::D600 => 24,
    };
    let png = labelize::render_png(
        zpl.as_bytes(),
        labelize::RenderOptions {
            language: Some(labelize::Language::Zpl),
            width_mm: Some(f64::from(size.width_mm)),
            height_mm: Some(f64::from(size.height_mm)),
            dpmm,
            antialias: false,
        },
    )
    .unwrap_or_else(|e| panic!("{name}: the ZPL does not render: {e}\n{zpl}"));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("label-renders");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png.bytes).unwrap();
    // As a GS1 scanner reads: FNC1 after the first position is a GS (0x1D).
    let mut hints = rxing::DecodeHints::default().with(rxing::DecodeHintValue::AssumeGs1(true));
    let mut found: Vec<Read> =
        rxing::helpers::detect_multiple_in_buffer_with_hints(&png.bytes, &mut hints)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let format = format!("{:?}", r.getBarcodeFormat());
                let text = r.getText();
                // With the GS1 hint a Code 128 that opens with FNC1 reads as "]C1..." — the
                // reliable sign: rxing's symbology metadata also counts the check character,
                // and a check value of 97 (FNC2 in subset B) turns it into "]C4".
                if let Some(gs1) = text.strip_prefix("]C1") {
                    return read(&format, "]C1", gs1);
                }
                let symbology = match r
                    .getRXingResultMetadata()
                    .get(&RXingResultMetadataType::SYMBOLOGY_IDENTIFIER)
                {
                    Some(RXingResultMetadataValue::SymbologyIdentifier(s)) => s.clone(),
                    _ => String::new(),
                };
                read(&format, &symbology, text)
            })
            .collect();
    found.sort();
    found
}

fn render(label: &Label, size: &LabelSize) -> Vec<Read> {
    read_back(label.name(), &label.render(size, 1).unwrap(), size)
}

fn small() -> LabelSize {
    LabelSize::default() // 100 × 50 mm, 203 dpi
}

#[test]
fn product_labels_read_back_as_ean13_gtin_or_code128() {
    let ean = Label::Product {
        name: "Cordless drill ^XZ~JR".into(),
        code: Some("DRL-18V".into()),
        barcode: Some("5901234123457".into()),
    };
    assert_eq!(
        render(&ean, &small()),
        vec![read("EAN_13", "]E0", "5901234123457")]
    );
    let gtin = Label::Product {
        name: "Pallet of drills".into(),
        code: None,
        barcode: Some("15901234123454".into()),
    };
    let found = read_back(
        "product-gtin14",
        &gtin.render(&small(), 1).unwrap(),
        &small(),
    );
    assert_eq!(found, vec![read("CODE_128", "]C1", "0115901234123454")]);
    // Characters that mean something to ZPL (`^`, `~`, `_` as the hex escape) print and scan
    // as written. (A `>` is written `><`, Code 128's invocation for it in ZPL; labelize does
    // not implement that invocation, so it is checked on the ZPL text in `zpl.rs` instead.)
    let hostile = Label::Product {
        name: "Hex bolt M8".into(),
        code: None,
        barcode: Some("A^B~C_1\\x".into()),
    };
    let found = read_back(
        "product-code128",
        &hostile.render(&small(), 1).unwrap(),
        &small(),
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].format.as_str(), found[0].text.as_str()),
        ("CODE_128", "A^B~C_1\\x")
    );
}

#[test]
fn location_and_test_labels_read_back() {
    let location = Label::Location {
        name: "WH/Stock/A-01-10".into(),
        barcode: "WH-A-01-10".into(),
    };
    let found = render(&location, &small());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].text, "WH-A-01-10");
    let test = Label::Test {
        printer: "dock-zebra".into(),
        at: "2026-11-24 08:00".into(),
    };
    let found = render(&test, &small());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].text, "dock-zebra");
}

#[test]
fn lot_label_carries_gs1_128_and_gs1_datamatrix_at_each_resolution() {
    let lot = Label::Lot {
        product: "Sealant 310 ml".into(),
        code: Some("SEAL-310".into()),
        gtin: Some("05901234123457".into()),
        lot: "L0T-7".into(),
        serial: false,
        expiry: Some("2027-03-31".into()),
    };
    let data = "01059012341234571727033110L0T-7";
    let expected = vec![
        read("CODE_128", "]C1", data),
        read("DATA_MATRIX", "]d2", data),
    ];
    assert_eq!(render(&lot, &small()), expected);
    let fine = LabelSize {
        dpi: Dpi::D300,
        ..small()
    };
    let found = read_back("lot-300dpi", &lot.render(&fine, 1).unwrap(), &fine);
    assert_eq!(found, expected);
    let finest = LabelSize {
        dpi: Dpi::D600,
        ..small()
    };
    let found = read_back("lot-600dpi", &lot.render(&finest, 1).unwrap(), &finest);
    assert_eq!(found, expected);
}

#[test]
fn package_and_delivery_labels_carry_the_sscc() {
    let code = sscc(0, "5901234", 42).unwrap();
    let package = Label::Sscc {
        sscc: code.clone(),
        picking: Some("WH/OUT/00001".into()),
        content: Some("3 items".into()),
    };
    assert_eq!(
        render(&package, &small()),
        vec![read("CODE_128", "]C1", &format!("00{code}"))]
    );
    let tall = LabelSize {
        width_mm: 100.0,
        height_mm: 150.0,
        dpi: Dpi::D203,
    };
    let delivery = Label::Delivery {
        ship_to: Address {
            name: "Baltic Tools SIA".into(),
            street: Some("Krasta iela 1".into()),
            street2: Some("Gate 4".into()),
            zip: Some("LV-1003".into()),
            city: Some("Rīga".into()),
            country: Some("Latvia".into()),
        },
        picking: "WH/OUT/00001".into(),
        origin: Some("S00042".into()),
        sscc: Some(code.clone()),
        carrier: Some("DHL Freight".into()),
    };
    assert_eq!(
        render(&delivery, &tall),
        vec![read("CODE_128", "]C1", &format!("00{code}"))]
    );
}

/// FNC1 between a variable-length element and the next one, and data characters that are
/// escapes to ZPL (`_`, `~`, `^`) or to the DataMatrix encoder (`_`), in both symbologies.
#[test]
fn gs1_separators_and_escape_characters_survive_printing() {
    let elements = [
        ("10".to_owned(), "A_B%".to_owned()),
        ("21".to_owned(), "S/1".to_owned()),
    ];
    let mut z = Zpl::begin(&small());
    z.gs1_128(3.0, 3.0, 12.0, 60.0, &elements)
        .gs1_datamatrix(70.0, 3.0, 5, &elements)
        .datamatrix(70.0, 30.0, 5, "x_~^y\tz");
    let found = read_back("gs1-separators", &z.finish(), &small());
    let data = "10A_B%\u{1d}21S/1";
    assert_eq!(
        found,
        vec![
            read("CODE_128", "]C1", data),
            read("DATA_MATRIX", "]d1", "x_~^y\tz"),
            read("DATA_MATRIX", "]d2", data),
        ]
    );
}

/// Long names and addresses are set smaller rather than run off the label or over the
/// barcodes: every barcode still reads.
#[test]
fn long_texts_leave_the_barcodes_readable() {
    let lot = Label::Lot {
        product: "Two-component polyurethane sealant, grey, 600 ml sausage".into(),
        code: Some("SEAL-PU-600-GREY-BOX12".into()),
        gtin: Some("05901234123457".into()),
        lot: "2026-11-24-LINE3-B07".into(),
        serial: false,
        expiry: Some("2027-03-31".into()),
    };
    let data = "0105901234123457172703311020261124-LINE3-B07".replace("1020261124", "102026-11-24");
    assert_eq!(
        read_back("lot-long", &lot.render(&small(), 1).unwrap(), &small()),
        vec![
            read("CODE_128", "]C1", &data),
            read("DATA_MATRIX", "]d2", &data),
        ]
    );
    let location = Label::Location {
        name: "WH/Stock/Cold room 2/Rack 14/Shelf C/Bin 07".into(),
        barcode: "WH-CR2-14-C-07".into(),
    };
    let found = read_back(
        "location-long",
        &location.render(&small(), 1).unwrap(),
        &small(),
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].text, "WH-CR2-14-C-07");
    let code = sscc(0, "5901234", 44).unwrap();
    let delivery = Label::Delivery {
        ship_to: Address {
            name: "Baltic Industrial Tools and Fasteners Wholesale SIA".into(),
            street: Some("Maskavas iela 250, Logistics Park Building C".into()),
            street2: Some("Receiving dock 12 (ring the bell twice)".into()),
            zip: Some("LV-1063".into()),
            city: Some("Riga".into()),
            country: Some("Latvia".into()),
        },
        picking: "WH/OUT/00001".into(),
        origin: Some("S00042 / PO-BALTIC-2026-11-000981".into()),
        sscc: Some(code.clone()),
        carrier: Some("DHL Freight Euroconnect (pallet, tail lift)".into()),
    };
    for (name, size) in [
        ("delivery-long-small", small()),
        (
            "delivery-long",
            LabelSize {
                width_mm: 100.0,
                height_mm: 150.0,
                dpi: Dpi::D203,
            },
        ),
    ] {
        assert_eq!(
            read_back(name, &delivery.render(&size, 1).unwrap(), &size),
            vec![read("CODE_128", "]C1", &format!("00{code}"))],
            "{name}"
        );
    }
}

/// A site template built from the values a template gets prints barcodes that read back as
/// the built-in layout's do.
#[test]
fn a_site_template_prints_readable_gs1_symbols() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lot.zpl"),
        "^XA^CI28^PW{{ width_dots }}^LL{{ height_dots }}\n\
         ^FO20,20^A0N,36,36^FH_^FD{{ product }}^FS\n\
         ^FO20,70^BY2^BCN,120,N,N,N^FH_^FD{{ gs1_128 }}^FS\n\
         ^FO20,200^A0N,24,24^FH_^FD{{ gs1_text }}^FS\n\
         ^FO600,180^BXN,6,200,0,0,6,_^FH_^FD{{ gs1_datamatrix }}^FS\n\
         ^XZ\n",
    )
    .unwrap();
    let templates = holdfast_devices::template::Templates::load(dir.path()).unwrap();
    let lot = Label::Lot {
        product: "Sealant ^XZ".into(),
        code: None,
        gtin: Some("05901234123457".into()),
        lot: "A_1".into(),
        serial: true,
        expiry: None,
    };
    let zpl = templates.render(&lot, &small(), 1).unwrap();
    let data = "010590123412345721A_1";
    assert_eq!(
        read_back("site-template-lot", &zpl, &small()),
        vec![
            read("CODE_128", "]C1", data),
            read("DATA_MATRIX", "]d2", data),
        ]
    );
}
