//! Which Odoo models and fields this server has: asked once per connection, so a version
//! difference is a decision made at connect time, not a 404 from deep inside a pull.
//!
//! Odoo 19 renamed or removed models Holdfast reads (ODOO.md): `stock.quant.package` is
//! `stock.package`, `product.packaging` is gone (a packaging is a `product.uom` record: a
//! product, a unit and a barcode, its quantity given by the units' factors), and
//! `stock.move.name` no longer exists. The map is built from `ir.model` (which of the
//! candidate models exist) and `fields_get` (which fields each model read has), never from
//! the version number alone: a `saas~18.x` server may already have 19's models.
//!
//! Required models and fields missing make [`ModelMapError`] (the connection is refused
//! with the name of what is missing). Optional ones missing turn a feature off: it is listed
//! by [`ModelMap::degraded`] and logged once per connection.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Value, json};

use super::client::{Call, OdooClient};
use super::error::OdooError;
use super::mapping::fields;
use crate::records::Model;

/// A server lacking something Holdfast cannot work without.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelMapError {
    #[error("odoo is missing required model {0}")]
    MissingModel(String),
    #[error("odoo is missing required field {model}.{field}")]
    MissingField { model: String, field: String },
}

/// Where the mirror's packagings come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackagingSource {
    /// Odoo 18: `product.packaging` with `name` and `qty`.
    Packaging,
    /// Odoo 19: `product.uom` (product, unit, barcode); the name is the unit's and the
    /// quantity is the unit's `factor` over the product's own unit's `factor`.
    ProductUom,
}

/// A feature turned off because the server lacks an optional model or field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Degraded {
    /// What the floor loses, e.g. `packagings`.
    pub feature: &'static str,
    /// Which model or field is missing.
    pub reason: String,
}

impl fmt::Display for Degraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.feature, self.reason)
    }
}

/// The Odoo model behind each mirrored one on this server, the fields to read from it, and
/// the field differences the push must respect.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMap {
    major: u32,
    /// Per mirrored model: the Odoo model and fields read; absent when degraded away.
    read: BTreeMap<ModelKey, (&'static str, Vec<&'static str>)>,
    packaging: Option<PackagingSource>,
    move_name: bool,
    degraded: Vec<Degraded>,
}

/// `Model` in a stable order (it has no `Ord` of its own).
type ModelKey = usize;

fn key(model: Model) -> ModelKey {
    Model::ALL
        .iter()
        .position(|m| *m == model)
        .unwrap_or(usize::MAX)
}

/// The models every supported version has under one name.
fn fixed_name(model: Model) -> Option<&'static str> {
    match model {
        Model::Packaging | Model::Package => None,
        other => Some(other.odoo_name()),
    }
}

const QUANT_PACKAGE: &str = "stock.quant.package";
const PACKAGE: &str = "stock.package";
const PACKAGING: &str = "product.packaging";
const PRODUCT_UOM: &str = "product.uom";
const UOM: &str = "uom.uom";

/// Fields read for 19's packagings, and what the quantity needs.
pub const PRODUCT_UOM_FIELDS: &[&str] = &["id", "product_id", "uom_id", "barcode"];
const UOM_FIELDS: &[&str] = &["factor"];

/// Fields a server may lack without breaking the mirror: (model, field, feature lost).
const OPTIONAL_FIELDS: &[(Model, &str, &str)] = &[(
    Model::Lot,
    "expiration_date",
    "lot expiry dates (product_expiry)",
)];

/// Fields the push writes or searches without reading them in a pull (same names on 18 and
/// 19): without them counts cannot be applied or found again, so they are required.
const PUSH_FIELDS: &[(Model, &str)] = &[
    (Model::Quant, "inventory_quantity"),
    (Model::Move, "reference"),
    (Model::Move, "is_inventory"),
];

/// Every model name asked about in `ir.model`.
pub fn candidate_models() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Model::ALL.iter().filter_map(|m| fixed_name(*m)).collect();
    names.extend([QUANT_PACKAGE, PACKAGE, PACKAGING, PRODUCT_UOM, UOM]);
    names
}

impl ModelMap {
    /// The map a server of `major` has when it has everything of its version (18's names
    /// before 19, 19's from 19 on); what a caller assumes before asking.
    pub fn assumed(major: u32) -> ModelMap {
        let nineteen = major >= 19;
        let mut read = BTreeMap::new();
        for &model in Model::ALL {
            let name = match model {
                Model::Package if nineteen => PACKAGE,
                Model::Package => QUANT_PACKAGE,
                Model::Packaging if nineteen => PRODUCT_UOM,
                Model::Packaging => PACKAGING,
                other => other.odoo_name(),
            };
            let wanted = if model == Model::Packaging && nineteen {
                PRODUCT_UOM_FIELDS.to_vec()
            } else {
                fields(model).to_vec()
            };
            read.insert(key(model), (name, wanted));
        }
        ModelMap {
            major,
            read,
            packaging: Some(if nineteen {
                PackagingSource::ProductUom
            } else {
                PackagingSource::Packaging
            }),
            move_name: !nineteen,
            degraded: Vec::new(),
        }
    }

    /// Asks the server: `ir.model` for the candidate models, then `fields_get` for each
    /// model read. Logs each degraded feature once.
    pub async fn detect(client: &OdooClient) -> Result<ModelMap, OdooError> {
        let major = client.version().major;
        let answer = client
            .call(
                Call::new("ir.model", "search_read")
                    .arg("domain", json!([["model", "in", candidate_models()]]))
                    .arg("fields", json!(["model"]))
                    .arg("order", "id"),
            )
            .await?;
        let present = present_models(&answer)?;
        let mut described = BTreeMap::new();
        for name in to_describe(&present) {
            let answer = client
                .call(Call::new(name, "fields_get").arg("attributes", json!(["type"])))
                .await?;
            described.insert(name.to_owned(), field_names(name, &answer)?);
        }
        let map = ModelMap::decide(major, &present, &described)?;
        for d in map.degraded() {
            tracing::warn!(
                feature = d.feature,
                reason = %d.reason,
                "odoo lacks an optional model or field; this feature is off"
            );
        }
        Ok(map)
    }

    /// [`ModelMap::decide`] from the raw answers: `ir.model`'s `search_read` and each
    /// model's `fields_get`, as Odoo sends them.
    pub fn from_answers(
        major: u32,
        ir_model: &Value,
        fields_get: &BTreeMap<String, Value>,
    ) -> Result<ModelMap, OdooError> {
        let present = present_models(ir_model)?;
        let mut described = BTreeMap::new();
        for (name, answer) in fields_get {
            described.insert(name.clone(), field_names(name, answer)?);
        }
        Ok(ModelMap::decide(major, &present, &described)?)
    }

    /// Chooses, per mirrored model, what to read: `present` is the candidate models the
    /// server has, `described` each described model's field names.
    pub fn decide(
        major: u32,
        present: &BTreeSet<String>,
        described: &BTreeMap<String, BTreeSet<String>>,
    ) -> Result<ModelMap, ModelMapError> {
        let has_model = |name: &str| present.contains(name);
        let has_field = |model: &str, field: &str| {
            field == "id" || described.get(model).is_some_and(|f| f.contains(field))
        };
        let mut map = ModelMap {
            major,
            read: BTreeMap::new(),
            packaging: None,
            move_name: false,
            degraded: Vec::new(),
        };
        for &model in Model::ALL {
            let Some(name) = fixed_name(model) else {
                continue;
            };
            if !has_model(name) {
                return Err(ModelMapError::MissingModel(name.to_owned()));
            }
            let mut wanted = Vec::new();
            for &field in fields(model) {
                if has_field(name, field) {
                    wanted.push(field);
                    continue;
                }
                match OPTIONAL_FIELDS
                    .iter()
                    .find(|(m, f, _)| *m == model && *f == field)
                {
                    Some((_, _, feature)) => map.degraded.push(Degraded {
                        feature,
                        reason: format!("odoo has no field {name}.{field}"),
                    }),
                    None => {
                        return Err(ModelMapError::MissingField {
                            model: name.to_owned(),
                            field: field.to_owned(),
                        });
                    }
                }
            }
            map.read.insert(key(model), (name, wanted));
        }
        for (model, field) in PUSH_FIELDS {
            let name = model.odoo_name();
            if !has_field(name, field) {
                return Err(ModelMapError::MissingField {
                    model: name.to_owned(),
                    field: (*field).to_owned(),
                });
            }
        }

        // Packages: the version's own name first, the other when a server has only that.
        let packages = if major >= 19 {
            [PACKAGE, QUANT_PACKAGE]
        } else {
            [QUANT_PACKAGE, PACKAGE]
        };
        match packages.into_iter().find(|n| has_model(n)) {
            Some(name) => match missing(name, fields(Model::Package), &has_field) {
                None => {
                    map.read
                        .insert(key(Model::Package), (name, fields(Model::Package).to_vec()));
                }
                Some(field) => map.degraded.push(Degraded {
                    feature: "packages",
                    reason: format!("odoo has no field {name}.{field}"),
                }),
            },
            None => map.degraded.push(Degraded {
                feature: "packages",
                reason: format!("odoo has neither {QUANT_PACKAGE} nor {PACKAGE}"),
            }),
        }

        // Packagings: 18's model, or 19's units of measure per product.
        let uom_ready = || {
            has_model(PRODUCT_UOM)
                && has_model(UOM)
                && missing(PRODUCT_UOM, PRODUCT_UOM_FIELDS, &has_field).is_none()
                && missing(UOM, UOM_FIELDS, &has_field).is_none()
                && has_field(Model::Product.odoo_name(), "uom_id")
        };
        let packaging_ready = || {
            has_model(PACKAGING)
                && missing(PACKAGING, fields(Model::Packaging), &has_field).is_none()
        };
        let choice = if major >= 19 {
            if uom_ready() {
                Some(PackagingSource::ProductUom)
            } else if packaging_ready() {
                Some(PackagingSource::Packaging)
            } else {
                None
            }
        } else if packaging_ready() {
            Some(PackagingSource::Packaging)
        } else if uom_ready() {
            Some(PackagingSource::ProductUom)
        } else {
            None
        };
        match choice {
            Some(PackagingSource::Packaging) => {
                map.read.insert(
                    key(Model::Packaging),
                    (PACKAGING, fields(Model::Packaging).to_vec()),
                );
            }
            Some(PackagingSource::ProductUom) => {
                map.read.insert(
                    key(Model::Packaging),
                    (PRODUCT_UOM, PRODUCT_UOM_FIELDS.to_vec()),
                );
            }
            None => map.degraded.push(Degraded {
                feature: "packagings",
                reason: packaging_gap(&has_model, &has_field),
            }),
        }
        map.packaging = choice;

        // 18 requires a move's `name` on create; 19 has no such field and refuses it.
        map.move_name = has_field(Model::Move.odoo_name(), "name");
        Ok(map)
    }

    /// The server's major version.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The Odoo model read for `model`; `None` when the server lacks it (degraded).
    pub fn odoo_name(&self, model: Model) -> Option<&'static str> {
        self.read.get(&key(model)).map(|(name, _)| *name)
    }

    /// The fields read for `model` (empty when degraded).
    pub fn read_fields(&self, model: Model) -> &[&'static str] {
        self.read
            .get(&key(model))
            .map_or(&[], |(_, fields)| fields.as_slice())
    }

    /// How packagings are read; `None` when the server has no packagings.
    pub fn packaging(&self) -> Option<PackagingSource> {
        self.packaging
    }

    /// Whether a new `stock.move` takes a `name` (required on 18, an invalid field on 19).
    pub fn moves_take_name(&self) -> bool {
        self.move_name
    }

    /// Features turned off on this server.
    pub fn degraded(&self) -> &[Degraded] {
        &self.degraded
    }

    /// The degraded features as text, for status.
    pub fn degraded_features(&self) -> Vec<String> {
        self.degraded.iter().map(ToString::to_string).collect()
    }
}

/// The first of `wanted` that `model` lacks.
fn missing<'a>(
    model: &str,
    wanted: &[&'a str],
    has_field: &impl Fn(&str, &str) -> bool,
) -> Option<&'a str> {
    wanted.iter().copied().find(|f| !has_field(model, f))
}

fn packaging_gap(
    has_model: &impl Fn(&str) -> bool,
    has_field: &impl Fn(&str, &str) -> bool,
) -> String {
    if has_model(PACKAGING)
        && let Some(f) = missing(PACKAGING, fields(Model::Packaging), has_field)
    {
        return format!("odoo has no field {PACKAGING}.{f}");
    }
    if has_model(PRODUCT_UOM) && has_model(UOM) {
        if let Some(f) = missing(PRODUCT_UOM, PRODUCT_UOM_FIELDS, has_field) {
            return format!("odoo has no field {PRODUCT_UOM}.{f}");
        }
        if let Some(f) = missing(UOM, UOM_FIELDS, has_field) {
            return format!("odoo has no field {UOM}.{f}");
        }
        return format!("odoo has no field {}.uom_id", Model::Product.odoo_name());
    }
    format!("odoo has neither {PACKAGING} nor {PRODUCT_UOM} with {UOM}")
}

/// The models to describe with `fields_get`: every one read, and the units for 19's
/// packagings.
fn to_describe(present: &BTreeSet<String>) -> Vec<&'static str> {
    candidate_models()
        .into_iter()
        .filter(|name| present.contains(*name))
        .collect()
}

/// The `model` values of an `ir.model` `search_read` answer.
fn present_models(answer: &Value) -> Result<BTreeSet<String>, OdooError> {
    let bad = |reason: String| OdooError::Protocol {
        status: 200,
        reason: format!("ir.model answer: {reason}"),
    };
    let rows = answer
        .as_array()
        .ok_or_else(|| bad("expected a list of records".into()))?;
    rows.iter()
        .map(|row| {
            row.get("model")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad("a record without a model name".into()))
        })
        .collect()
}

/// The field names of a `fields_get` answer (an object keyed by field name).
fn field_names(model: &str, answer: &Value) -> Result<BTreeSet<String>, OdooError> {
    answer
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .ok_or_else(|| OdooError::Protocol {
            status: 200,
            reason: format!("{model}.fields_get answer is not an object"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fields_get` answers with these fields (typed, as Odoo answers).
    fn described(fields: &[&str]) -> Value {
        Value::Object(
            fields
                .iter()
                .map(|f| ((*f).to_owned(), json!({"type": "char"})))
                .collect(),
        )
    }

    /// A server with `models`, each with the mapping's fields plus `extra` ones, minus
    /// `without`.
    fn server(
        models: &[&str],
        extra: &[(&str, &[&str])],
        without: &[(&str, &str)],
    ) -> (Value, BTreeMap<String, Value>) {
        let ir_model = Value::Array(
            models
                .iter()
                .enumerate()
                .map(|(i, m)| json!({"id": i + 1, "model": m}))
                .collect(),
        );
        let mut answers = BTreeMap::new();
        for name in models {
            let mut names: Vec<&str> = Model::ALL
                .iter()
                .filter(|m| {
                    fixed_name(**m) == Some(*name)
                        || (*name == QUANT_PACKAGE || *name == PACKAGE) && **m == Model::Package
                        || *name == PACKAGING && **m == Model::Packaging
                })
                .flat_map(|m| fields(*m).iter().copied())
                .collect();
            names.extend(
                PUSH_FIELDS
                    .iter()
                    .filter(|(m, _)| m.odoo_name() == *name)
                    .map(|(_, f)| *f),
            );
            if *name == PRODUCT_UOM {
                names.extend(PRODUCT_UOM_FIELDS);
            }
            if *name == UOM {
                names.extend(["name", "factor", "relative_factor"]);
            }
            for (m, fs) in extra {
                if m == name {
                    names.extend(fs.iter());
                }
            }
            names.retain(|f| !without.contains(&(*name, *f)));
            answers.insert((*name).to_owned(), described(&names));
        }
        (ir_model, answers)
    }

    fn base() -> Vec<&'static str> {
        Model::ALL.iter().filter_map(|m| fixed_name(*m)).collect()
    }

    fn odoo18() -> (Value, BTreeMap<String, Value>) {
        let mut models = base();
        models.extend([QUANT_PACKAGE, PACKAGING, UOM]);
        server(&models, &[("stock.move", &["name"])], &[])
    }

    fn odoo19() -> (Value, BTreeMap<String, Value>) {
        let mut models = base();
        models.extend([PACKAGE, PRODUCT_UOM, UOM]);
        server(&models, &[("stock.move", &["inventory_name"])], &[])
    }

    #[test]
    fn an_odoo_18_server_reads_18s_models_and_names_its_moves() {
        let (ir, fg) = odoo18();
        let map = ModelMap::from_answers(18, &ir, &fg).unwrap();
        assert_eq!(map.odoo_name(Model::Package), Some("stock.quant.package"));
        assert_eq!(map.odoo_name(Model::Packaging), Some("product.packaging"));
        assert_eq!(map.packaging(), Some(PackagingSource::Packaging));
        assert_eq!(map.read_fields(Model::Packaging), fields(Model::Packaging));
        assert!(map.moves_take_name());
        assert_eq!(map.degraded(), &[]);
        assert_eq!(map, ModelMap::assumed(18));
    }

    #[test]
    fn an_odoo_19_server_reads_packages_and_packagings_under_their_new_models() {
        let (ir, fg) = odoo19();
        let map = ModelMap::from_answers(19, &ir, &fg).unwrap();
        assert_eq!(map.odoo_name(Model::Package), Some("stock.package"));
        assert_eq!(map.odoo_name(Model::Packaging), Some("product.uom"));
        assert_eq!(map.packaging(), Some(PackagingSource::ProductUom));
        assert_eq!(map.read_fields(Model::Packaging), PRODUCT_UOM_FIELDS);
        assert_eq!(map.read_fields(Model::Package), fields(Model::Package));
        assert!(!map.moves_take_name(), "19 has no stock.move.name");
        assert_eq!(map.degraded(), &[]);
        assert_eq!(map, ModelMap::assumed(19));
    }

    #[test]
    fn a_server_is_judged_by_what_it_has_not_by_its_number() {
        // A saas~18.x server that already moved to 19's models.
        let (ir, fg) = odoo19();
        let map = ModelMap::from_answers(18, &ir, &fg).unwrap();
        assert_eq!(map.odoo_name(Model::Package), Some("stock.package"));
        assert_eq!(map.packaging(), Some(PackagingSource::ProductUom));
        assert!(!map.moves_take_name());
    }

    #[test]
    fn missing_optional_models_and_fields_degrade_their_feature_only() {
        let models = base();
        let (ir, fg) = server(&models, &[], &[("stock.lot", "expiration_date")]);
        let map = ModelMap::from_answers(19, &ir, &fg).unwrap();
        assert_eq!(map.odoo_name(Model::Package), None);
        assert_eq!(map.odoo_name(Model::Packaging), None);
        assert_eq!(map.read_fields(Model::Packaging), &[] as &[&str]);
        assert_eq!(map.packaging(), None);
        assert!(!map.read_fields(Model::Lot).contains(&"expiration_date"));
        assert!(map.read_fields(Model::Lot).contains(&"name"));
        let features: Vec<&str> = map.degraded().iter().map(|d| d.feature).collect();
        assert_eq!(
            features,
            [
                "lot expiry dates (product_expiry)",
                "packages",
                "packagings"
            ]
        );
        let text = map.degraded_features();
        assert!(text[0].contains("stock.lot.expiration_date"), "{text:?}");
        assert!(text[1].contains("stock.quant.package") && text[1].contains("stock.package"));

        // 19's units without a factor: packagings cannot be computed, so they are off.
        let mut models = base();
        models.extend([PACKAGE, PRODUCT_UOM, UOM]);
        let (ir, fg) = server(&models, &[], &[("uom.uom", "factor")]);
        let map = ModelMap::from_answers(19, &ir, &fg).unwrap();
        assert_eq!(map.packaging(), None);
        assert_eq!(map.odoo_name(Model::Package), Some("stock.package"));
        assert_eq!(
            map.degraded_features(),
            ["packagings (odoo has no field uom.uom.factor)"]
        );
    }

    #[test]
    fn missing_required_models_and_fields_are_named_errors() {
        let mut models = base();
        models.retain(|m| *m != "stock.move");
        let (ir, fg) = server(&models, &[], &[]);
        let err = ModelMap::from_answers(19, &ir, &fg).unwrap_err();
        assert_eq!(err.to_string(), "odoo is missing required model stock.move");
        assert_eq!(err.class(), super::super::ErrorClass::Permanent);

        let (ir, fg) = server(&base(), &[], &[("stock.move.line", "picked")]);
        let err = ModelMap::from_answers(18, &ir, &fg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "odoo is missing required field stock.move.line.picked"
        );
        // A field only the push uses is as required as those the pull reads.
        let (ir, fg) = server(&base(), &[], &[("stock.quant", "inventory_quantity")]);
        let err = ModelMap::from_answers(19, &ir, &fg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "odoo is missing required field stock.quant.inventory_quantity"
        );
    }

    #[test]
    fn hostile_answers_are_protocol_errors() {
        let (_, fg) = odoo18();
        for ir in [json!({"model": "x"}), json!([{"model": 3}]), json!(null)] {
            let err = ModelMap::from_answers(18, &ir, &fg).unwrap_err();
            assert!(matches!(err, OdooError::Protocol { .. }), "{err}");
        }
        let (ir, mut fg) = odoo18();
        fg.insert("stock.move".into(), json!(["name"]));
        let err = ModelMap::from_answers(18, &ir, &fg).unwrap_err();
        assert!(err.to_string().contains("stock.move.fields_get"), "{err}");
    }
}
