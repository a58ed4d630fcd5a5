//! Scan resolution: what a decoded scan stands for on this site, answered from the view.
//!
//! Follows the meaning Odoo's barcode nomenclatures give: a GTIN (AI 01/02, or a plain
//! EAN-13/UPC-A/EAN-8/GTIN-14) is a product or a packaging of it (the packaging's quantity);
//! AI 10/21 a lot or serial of that product, 17 its expiry, 30/37/310n a quantity; AI 00 an
//! SSCC (a package, by name); AI 414 a location's GLN. Plain codes are looked up as product,
//! packaging, location, lot, package, picking and picking type barcodes in one query; numeric
//! codes also in their other GTIN lengths (a product stored as EAN-13 scanned as GTIN-14).

use holdfast_devices::gs1::{Decoded, Gs1Date, Gs1Value, ScanData};
use serde::Serialize;

use crate::store::{BarcodeHit, Reader, StoreError};

/// One thing a scan can mean.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resolved {
    /// A product, with what the scan says about quantity, lot/serial and expiry.
    Product {
        product_id: i64,
        quantity: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        lot_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expiration_date: Option<String>,
    },
    Location {
        location_id: i64,
        name: String,
    },
    Lot {
        lot_id: i64,
        product_id: i64,
    },
    Package {
        package_id: i64,
    },
    Picking {
        picking_id: i64,
        state: String,
    },
    PickingType {
        picking_type_id: i64,
    },
}

/// The other lengths a numeric GTIN may be stored in (zeros padded or stripped).
fn gtin_forms(code: &str) -> Vec<String> {
    if !code.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 13, 14].contains(&code.len()) {
        return vec![code.to_owned()];
    }
    let full = format!("{code:0>14}");
    let mut forms = vec![code.to_owned()];
    for len in [14, 13, 12, 8] {
        let cut = 14 - len;
        if full[..cut].bytes().all(|b| b == b'0') {
            let form = full[cut..].to_owned();
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

fn from_hits(hits: Vec<BarcodeHit>) -> Vec<Resolved> {
    hits.into_iter()
        .map(|hit| match hit {
            BarcodeHit::Product { id, .. } => Resolved::Product {
                product_id: id,
                quantity: 1.0,
                lot_name: None,
                expiration_date: None,
            },
            BarcodeHit::Packaging { product_id, qty } => Resolved::Product {
                product_id,
                quantity: qty,
                lot_name: None,
                expiration_date: None,
            },
            BarcodeHit::Location { id, name } => Resolved::Location {
                location_id: id,
                name,
            },
            BarcodeHit::Lot { id, product_id } => Resolved::Lot {
                lot_id: id,
                product_id,
            },
            BarcodeHit::Package { id } => Resolved::Package { package_id: id },
            BarcodeHit::Picking { id, state } => Resolved::Picking {
                picking_id: id,
                state,
            },
            BarcodeHit::PickingType { id } => Resolved::PickingType {
                picking_type_id: id,
            },
        })
        .collect()
}

/// Looks a code up in every GTIN length it may be stored in; the first length with hits wins.
fn lookup(reader: &Reader<'_>, code: &str) -> Result<Vec<Resolved>, StoreError> {
    for form in gtin_forms(code) {
        let hits = reader.lookup_barcode(&form)?;
        if !hits.is_empty() {
            return Ok(from_hits(hits));
        }
    }
    Ok(Vec::new())
}

fn odoo_date(d: Gs1Date) -> String {
    format!("{d} 00:00:00")
}

/// The lot or serial (AI 10, else 21) and expiry (AI 17, else 15) a GS1 label carries.
pub fn gs1_lot(elements: &[holdfast_devices::gs1::Element]) -> crate::workflow::Gs1Lot {
    let text = |ai: &str| elements.iter().find(|e| e.ai == ai).map(|e| e.raw.clone());
    crate::workflow::Gs1Lot {
        lot_name: text("10").or_else(|| text("21")),
        expiration_date: expiry(elements),
    }
}

fn expiry(elements: &[holdfast_devices::gs1::Element]) -> Option<String> {
    ["17", "15"].iter().find_map(|ai| {
        elements.iter().find_map(|e| match (&e.value, e.ai == *ai) {
            (Gs1Value::Date(d), true) => Some(odoo_date(*d)),
            _ => None,
        })
    })
}

/// Everything the scan can mean here; empty when nothing matches.
pub fn resolve(reader: &Reader<'_>, decoded: &Decoded) -> Result<Vec<Resolved>, StoreError> {
    let elements = match &decoded.data {
        ScanData::Plain(code) => return lookup(reader, code),
        ScanData::Gs1(elements) => elements,
    };
    let text = |ai: &str| elements.iter().find(|e| e.ai == ai).map(|e| e.raw.clone());
    let mut out = Vec::new();
    if let Some(gtin) = text("01").or_else(|| text("02")) {
        let lot_name = text("10").or_else(|| text("21"));
        let expiration_date = expiry(elements);
        let counted = elements.iter().find_map(|e| match &e.value {
            Gs1Value::Count(n) if e.ai == "30" || e.ai == "37" => Some(*n as f64),
            Gs1Value::Measure { value, .. } if e.ai.starts_with("310") => Some(*value),
            _ => None,
        });
        for hit in lookup(reader, &gtin)? {
            if let Resolved::Product {
                product_id,
                quantity,
                ..
            } = hit
            {
                // A packaging GTIN's quantity times a count of packagings, or the count alone.
                let quantity = match counted {
                    Some(n) if text("02").is_some() => n * quantity,
                    Some(n) => n,
                    None => quantity,
                };
                out.push(Resolved::Product {
                    product_id,
                    quantity,
                    lot_name: lot_name.clone(),
                    expiration_date: expiration_date.clone(),
                });
            }
        }
    }
    if let Some(sscc) = text("00") {
        out.extend(
            lookup(reader, &sscc)?
                .into_iter()
                .filter(|r| matches!(r, Resolved::Package { .. })),
        );
    }
    if let Some(gln) = text("414") {
        out.extend(
            lookup(reader, &gln)?
                .into_iter()
                .filter(|r| matches!(r, Resolved::Location { .. })),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use holdfast_devices::gs1::{DecodeOptions, decode};
    use holdfast_sync::dataset::{Dataset, DatasetSpec};

    use super::*;
    use crate::store::{MirrorBatch, Store, StoreOptions};

    #[test]
    fn gtin_forms_cover_every_stored_length() {
        assert_eq!(
            gtin_forms("05901234123457"),
            vec!["05901234123457", "5901234123457"]
        );
        assert_eq!(
            gtin_forms("0012345678905"),
            vec!["0012345678905", "00012345678905", "012345678905"]
        );
        assert_eq!(gtin_forms("WH-A-01-01"), vec!["WH-A-01-01"]);
    }

    #[test]
    fn scans_resolve_as_odoo_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "t")).unwrap();
        let data = Dataset::generate(&DatasetSpec::demo());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.apply_mirror(MirrorBatch {
            epoch: None,
            upserts: data.records().collect(),
            deletes: vec![],
        }))
        .unwrap();
        let scan = |s: &str| {
            let d = decode(s, &DecodeOptions::default()).unwrap();
            store.read(|r| resolve(r, &d)).unwrap()
        };
        let lot_product = data
            .products
            .iter()
            .find(|p| p.tracking == holdfast_sync::records::Tracking::Lot && p.barcode.is_some())
            .unwrap();
        let ean = lot_product.barcode.clone().unwrap();

        // Plain EAN-13, and the same product as GS1 GTIN-14 with lot and expiry.
        assert!(
            matches!(scan(&ean)[..], [Resolved::Product { product_id, quantity, .. }] if product_id == lot_product.id.0 && quantity == 1.0)
        );
        let got = scan(&format!("]C1010{ean}17270300\u{1d}10LOT-9"));
        assert_eq!(
            got,
            vec![Resolved::Product {
                product_id: lot_product.id.0,
                quantity: 1.0,
                lot_name: Some("LOT-9".into()),
                expiration_date: Some("2027-03-31 00:00:00".into()),
            }]
        );
        // A packaging GTIN-14: its quantity; with AI 37, that many packagings.
        let packaging = &data.packagings[0];
        let box_gtin = packaging.barcode.clone().unwrap();
        assert!(
            matches!(scan(&box_gtin)[..], [Resolved::Product { quantity, .. }] if quantity == 12.0)
        );
        assert!(
            matches!(scan(&format!("]C102{box_gtin}373"))[..], [Resolved::Product { quantity, .. }] if quantity == 36.0)
        );
        // Locations, pickings, packages, picking types.
        let bin = data.locations.iter().find(|l| l.barcode.is_some()).unwrap();
        assert!(
            matches!(scan(bin.barcode.as_deref().unwrap())[..], [Resolved::Location { location_id, .. }] if location_id == bin.id.0)
        );
        assert!(
            matches!(scan(&data.pickings[0].name)[..], [Resolved::Picking { picking_id, .. }] if picking_id == data.pickings[0].id.0)
        );
        assert!(matches!(
            scan(&data.packages[0].name)[..],
            [Resolved::Package { .. }]
        ));
        assert!(matches!(scan("WHOUT")[..], [Resolved::PickingType { .. }]));
        assert!(scan("NO-SUCH-CODE").is_empty());
        assert!(
            scan("]C10109501101530003").is_empty(),
            "a GTIN the site does not know"
        );
    }
}
