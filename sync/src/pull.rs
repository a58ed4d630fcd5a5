//! Reading the site's slice of Odoo, page by page.
//!
//! Pages are keyset-paged by id (`id > last`, `order id asc`, explicit `fields`), so a page
//! costs the same at the end of a table as at its start and a pull can resume after the last
//! id it committed. The scope keeps a site to its company (the client sends
//! `allowed_company_ids`) and its warehouse (the domains below).

use serde_json::{Value, json};

use crate::odoo::mapping::{MappingError, fields, map_record};
use crate::odoo::{OdooClient, OdooError};
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
}

/// The fields of `model` this server has, among those the mapping reads: optional modules
/// add some (`stock.lot.expiration_date` comes with product_expiry).
pub async fn available_fields(
    client: &OdooClient,
    model: Model,
) -> Result<Vec<&'static str>, PullError> {
    let known = client
        .call(
            crate::odoo::Call::new(model.odoo_name(), "fields_get")
                .arg("attributes", json!(["type"])),
        )
        .await
        .map_err(|source| PullError::Odoo {
            model: model.odoo_name(),
            source,
        })?;
    Ok(fields(model)
        .iter()
        .copied()
        .filter(|f| *f == "id" || known.get(f).is_some())
        .collect())
}

/// Reads one page of `model`, mapped.
pub async fn read_page(
    client: &OdooClient,
    scope: &Scope,
    model: Model,
    query: &PageQuery,
    available: &[&'static str],
) -> Result<Page, PullError> {
    let mut domain = scope.domain(model);
    if let Value::Array(terms) = &mut domain {
        terms.push(json!(["id", ">", query.after]));
        terms.extend(query.extra.iter().cloned());
        if let Some(since) = &query.since {
            if model == Model::Picking {
                terms.push(json!("|"));
                terms.push(json!(["write_date", ">", since]));
                terms.push(json!(["move_ids.write_date", ">", since]));
            } else {
                terms.push(json!(["write_date", ">", since]));
            }
        }
    }
    let mut wanted: Vec<&str> = available.to_vec();
    wanted.push("write_date");
    let rows = client
        .search_read(
            model.odoo_name(),
            domain,
            &wanted,
            "id asc",
            Some(query.limit),
        )
        .await
        .map_err(|source| PullError::Odoo {
            model: model.odoo_name(),
            source,
        })?;
    let mut page = Page::default();
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
    client
        .search(model.odoo_name(), scope.domain(model), "id")
        .await
        .map_err(|source| PullError::Odoo {
            model: model.odoo_name(),
            source,
        })
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
