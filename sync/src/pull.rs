//! Reading the site's slice of Odoo, page by page.
//!
//! Pages are keyset-paged by id (`id > last`, `order id asc`, explicit `fields`), so a page
//! costs the same at the end of a table as at its start and a pull can resume after the last
//! id it committed. The scope keeps a site to its company (the client sends
//! `allowed_company_ids`) and its warehouse (the domains below).
//!
//! Which Odoo model and fields stand behind each mirrored model comes from the client's
//! [`ModelMap`](crate::odoo::ModelMap): a model the server lacks reads as empty (its feature
//! is degraded), and Odoo 19's packagings are read from `product.uom` with their quantity
//! computed from the units' factors.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use crate::odoo::mapping::{MappingError, map_record};
use crate::odoo::{OdooClient, OdooError, PackagingSource};
use crate::records::{Model, Record};

/// Which slice of Odoo a site mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    pub company_id: i64,
    pub warehouse_id: i64,
}

/// A pull that could not read a page.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PullError {
    #[error("reading {model}")]
    Odoo {
        model: &'static str,
        #[source]
        source: OdooError,
    },
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

impl Scope {
    /// The domain selecting a model's records for this site.
    pub fn domain(&self, model: Model) -> Value {
        let wh = self.warehouse_id;
        match model {
            Model::Company => json!([["id", "=", self.company_id]]),
            Model::Warehouse => json!([["id", "=", wh]]),
            // Archived products and locations are mirrored too: a pending entry may name one.
            Model::Product | Model::Location => json!([["active", "in", [true, false]]]),
            Model::Quant => json!([["location_id.warehouse_id", "=", wh]]),
            Model::PickingType => json!([["warehouse_id", "=", wh]]),
            Model::Picking => json!([["picking_type_id.warehouse_id", "=", wh]]),
            Model::Move | Model::MoveLine => {
                json!([["picking_id.picking_type_id.warehouse_id", "=", wh]])
            }
            Model::Partner | Model::Packaging | Model::Lot | Model::Package => json!([]),
        }
    }
}

/// One keyset page to read.
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    /// Only ids above this (the last id of the previous page).
    pub after: i64,
    /// Only records changed after this `write_date` (incremental pulls); for pickings, also
    /// those whose moves changed (a move line write does not touch the picking).
    pub since: Option<String>,
    /// More domain terms, ANDed (e.g. a set of locations).
    pub extra: Vec<Value>,
    pub limit: usize,
}

/// A page of records and the newest `write_date` among them.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub records: Vec<Record>,
    /// Each record's `write_date`, in the same order.
    pub stamps: Vec<Option<String>>,
    pub max_write_date: Option<String>,
    /// Rows Odoo returned: a page shorter than the limit is the last one. It can exceed
    /// `records` when a row vanished half-way (a packaging whose product was deleted
    /// between two reads).
    pub fetched: usize,
    /// The highest id Odoo returned: where the next page starts.
    pub last_id: Option<i64>,
}

/// Reads one page of `model`, mapped, from the Odoo model the server has for it; a model
/// the server lacks (a degraded feature) reads as an empty page.
pub async fn read_page(
    client: &OdooClient,
    scope: &Scope,
    model: Model,
    query: &PageQuery,
) -> Result<Page, PullError> {
    let map = client.models();
    let Some(odoo_name) = map.odoo_name(model) else {
        return Ok(Page::default());
    };
    let mut domain = scope.domain(model);
    if let Value::Array(terms) = &mut domain {
        terms.push(json!(["id", ">", query.after]));
        terms.extend(query.extra.iter().cloned());
        if let Some(since) = &query.since {
            if model == Model::Picking {
                terms.push(json!("|"));
                terms.push(json!(["write_date", ">", since]));
                terms.push(json!(["move_ids.write_date", ">", since]));
            } else if model == Model::Packaging
                && map.packaging() == Some(PackagingSource::ProductUom)
            {
                // 19's packaging quantity comes from the units' factors: a unit (or the
                // product's own unit) changed leaves the `product.uom` row's stamp alone.
                terms.push(json!("|"));
                terms.push(json!("|"));
                terms.push(json!(["write_date", ">", since]));
                terms.push(json!(["uom_id.write_date", ">", since]));
                terms.push(json!(["product_id.uom_id.write_date", ">", since]));
            } else if model == Model::Product {
                // A product's rounding is its unit's: a unit changed leaves the product alone.
                terms.push(json!("|"));
                terms.push(json!(["write_date", ">", since]));
                terms.push(json!(["uom_id.write_date", ">", since]));
            } else {
                terms.push(json!(["write_date", ">", since]));
            }
        }
    }
    let mut wanted: Vec<&str> = map.read_fields(model).to_vec();
    wanted.push("write_date");
    let odoo_error = |source| PullError::Odoo {
        model: odoo_name,
        source,
    };
    let mut rows = client
        .search_read(odoo_name, domain, &wanted, "id asc", Some(query.limit))
        .await
        .map_err(odoo_error)?;
    let mut page = Page {
        fetched: rows.len(),
        last_id: rows.iter().filter_map(|r| r.get("id")?.as_i64()).max(),
        ..Page::default()
    };
    if model == Model::Packaging && map.packaging() == Some(PackagingSource::ProductUom) {
        rows = packagings_from_units(client, rows).await?;
    }
    if model == Model::Product {
        with_uom_rounding(client, &mut rows).await?;
    }
    for row in &rows {
        if let Some(stamp) = row.get("write_date").and_then(Value::as_str)
            && page.max_write_date.as_deref().is_none_or(|m| stamp > m)
        {
            page.max_write_date = Some(stamp.to_owned());
        }
        page.stamps.push(
            row.get("write_date")
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        page.records.push(map_record(model, row)?);
    }
    Ok(page)
}

/// Every id of `model` in scope (deletions are invisible to `write_date`: compare id sets).
pub async fn scope_ids(
    client: &OdooClient,
    scope: &Scope,
    model: Model,
) -> Result<Vec<i64>, PullError> {
    let Some(odoo_name) = client.models().odoo_name(model) else {
        return Ok(Vec::new());
    };
    client
        .search(odoo_name, scope.domain(model), "id")
        .await
        .map_err(|source| PullError::Odoo {
            model: odoo_name,
            source,
        })
}

/// A many2one of a raw row: `[id, "name"]`, else nothing.
fn m2o(row: &Map<String, Value>, field: &str) -> Option<(i64, String)> {
    let pair = row.get(field)?.as_array()?;
    let id = pair.first()?.as_i64().filter(|id| *id > 0)?;
    let name = pair.get(1).and_then(Value::as_str).unwrap_or_default();
    Some((id, name.to_owned()))
}

/// Joins each product row's unit `rounding` (`uom.uom.rounding`: a stored field on 18, on 19
/// computed from the "Product Unit" decimal precision) in as `uom_rounding`: one batched read
/// per page.
async fn with_uom_rounding(
    client: &OdooClient,
    rows: &mut [Map<String, Value>],
) -> Result<(), PullError> {
    const UOM: &str = "uom.uom";
    let uoms: BTreeSet<i64> = rows
        .iter()
        .filter_map(|r| m2o(r, "uom_id").map(|(id, _)| id))
        .collect();
    if uoms.is_empty() {
        return Ok(());
    }
    let uoms: Vec<i64> = uoms.into_iter().collect();
    let uom_rows = client
        .read(UOM, &uoms, &["rounding"])
        .await
        .map_err(|source| PullError::Odoo { model: UOM, source })?;
    let rounding: HashMap<i64, Value> = uom_rows
        .into_iter()
        .filter_map(|r| Some((r.get("id")?.as_i64()?, r.get("rounding")?.clone())))
        .collect();
    for row in rows {
        if let Some(r) = m2o(row, "uom_id").and_then(|(id, _)| rounding.get(&id)) {
            row.insert("uom_rounding".into(), r.clone());
        }
    }
    Ok(())
}

/// Odoo 19's packagings: `product.uom` rows (product, unit, barcode) made into the rows
/// `product.packaging` gave on 18: `name` is the unit's, `qty` the unit's quantity in the
/// product's own unit (`uom.factor / product.uom_id.factor`, as `uom.uom._compute_quantity`
/// converts). Two batched reads per page: the products' units, then every unit's factor.
/// A row whose product or unit vanished between the reads is left out (Odoo deletes the
/// packaging with them).
async fn packagings_from_units(
    client: &OdooClient,
    rows: Vec<Map<String, Value>>,
) -> Result<Vec<Map<String, Value>>, PullError> {
    const PRODUCT: &str = "product.product";
    const UOM: &str = "uom.uom";
    let products: BTreeSet<i64> = rows
        .iter()
        .filter_map(|r| m2o(r, "product_id").map(|(id, _)| id))
        .collect();
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let products: Vec<i64> = products.into_iter().collect();
    let product_rows = client
        .read(PRODUCT, &products, &["uom_id"])
        .await
        .map_err(|source| PullError::Odoo {
            model: PRODUCT,
            source,
        })?;
    let product_uom: HashMap<i64, i64> = product_rows
        .iter()
        .filter_map(|r| Some((r.get("id")?.as_i64()?, m2o(r, "uom_id")?.0)))
        .collect();
    let uoms: BTreeSet<i64> = rows
        .iter()
        .filter_map(|r| m2o(r, "uom_id").map(|(id, _)| id))
        .chain(product_uom.values().copied())
        .collect();
    let uoms: Vec<i64> = uoms.into_iter().collect();
    let uom_rows = client
        .read(UOM, &uoms, &["factor"])
        .await
        .map_err(|source| PullError::Odoo { model: UOM, source })?;
    let factor: HashMap<i64, &Value> = uom_rows
        .iter()
        .filter_map(|r| Some((r.get("id")?.as_i64()?, r.get("factor")?)))
        .collect();
    let positive = |v: &Value| v.as_f64().filter(|f| f.is_finite() && *f > 0.0);
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows {
        let id = row.get("id").and_then(Value::as_i64).unwrap_or(0);
        let bad = |problem: String| MappingError {
            model: "product.uom",
            id,
            field: "uom_id",
            problem,
        };
        let Some((product, _)) = m2o(&row, "product_id") else {
            // Required on product.uom: the mapping names what is wrong with it.
            out.push(row);
            continue;
        };
        let Some((uom, uom_name)) = m2o(&row, "uom_id") else {
            return Err(PullError::Mapping(bad(format!(
                "expected [id, name], got {}",
                row.get("uom_id").unwrap_or(&Value::Null)
            ))));
        };
        let Some(product_unit) = product_uom.get(&product) else {
            continue;
        };
        let (Some(pack), Some(base)) = (factor.get(&uom), factor.get(product_unit)) else {
            continue;
        };
        let (Some(pack), Some(base)) = (positive(pack), positive(base)) else {
            return Err(PullError::Mapping(bad(format!(
                "unit factors must be positive numbers, got {pack} for unit {uom} and {base} for the product's unit {product_unit}"
            ))));
        };
        let qty = pack / base;
        if !qty.is_finite() {
            return Err(PullError::Mapping(bad(format!(
                "quantity {pack} / {base} is not a finite number"
            ))));
        }
        row.insert("name".into(), json!(uom_name));
        row.insert("qty".into(), json!(qty));
        out.push(row);
    }
    Ok(out)
}

/// `write_date` minus a safety overlap: Odoo stamps the transaction's start, so a long
/// transaction can commit rows older than a cursor taken meanwhile.
pub fn with_overlap(write_date: &str, overlap: std::time::Duration) -> String {
    match jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", write_date) {
        Ok(t) => t
            .checked_sub(jiff::SignedDuration::try_from(overlap).unwrap_or_default())
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| write_date.to_owned()),
        // Not Odoo's format: start from the beginning rather than miss changes.
        Err(_) => "1970-01-01 00:00:00".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_goes_back_and_survives_odd_cursors() {
        let d = std::time::Duration::from_secs(90);
        assert_eq!(
            with_overlap("2026-01-01 00:01:00", d),
            "2025-12-31 23:59:30"
        );
        assert_eq!(with_overlap("garbage", d), "1970-01-01 00:00:00");
    }
}
