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
    #[error("reading {model}: {source}")]
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

/// Reads the page of `model` after id `after` (at most `limit` records), mapped.
pub async fn read_page(
    client: &OdooClient,
    scope: &Scope,
    model: Model,
    after: i64,
    limit: usize,
) -> Result<Vec<Record>, PullError> {
    let mut domain = scope.domain(model);
    if let Value::Array(terms) = &mut domain {
        terms.push(json!(["id", ">", after]));
    }
    let rows = client
        .search_read(
            model.odoo_name(),
            domain,
            fields(model),
            "id asc",
            Some(limit),
        )
        .await
        .map_err(|source| PullError::Odoo {
            model: model.odoo_name(),
            source,
        })?;
    rows.iter()
        .map(|row| map_record(model, row).map_err(PullError::from))
        .collect()
}
