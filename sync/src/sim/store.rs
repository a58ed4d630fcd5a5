//! The simulator's records: Odoo models as maps of stored fields, with Odoo's read format
//! (many2one as `[id, display_name]`, `false` for empty, one2many as id lists), domains,
//! `write_date` as the transaction's start truncated to the second, and company scoping.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::dataset::Dataset;
use crate::records::Record;

/// An exception the simulator raises, by Odoo class name.
#[derive(Debug, Clone, PartialEq)]
pub struct SimError {
    pub name: &'static str,
    pub message: String,
}

impl SimError {
    pub fn user(message: impl Into<String>) -> SimError {
        SimError {
            name: "odoo.exceptions.UserError",
            message: message.into(),
        }
    }
    pub fn value(message: impl Into<String>) -> SimError {
        SimError {
            name: "builtins.ValueError",
            message: message.into(),
        }
    }
    pub fn missing(message: impl Into<String>) -> SimError {
        SimError {
            name: "odoo.exceptions.MissingError",
            message: message.into(),
        }
    }
    pub fn access(message: impl Into<String>) -> SimError {
        SimError {
            name: "odoo.exceptions.AccessError",
            message: message.into(),
        }
    }
    pub fn validation(message: impl Into<String>) -> SimError {
        SimError {
            name: "odoo.exceptions.ValidationError",
            message: message.into(),
        }
    }
}

/// How a field relates to other records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rel {
    Plain,
    Many2one(&'static str),
    /// Target model and the inverse many2one on it.
    One2many(&'static str, &'static str),
}

/// The relational fields of the simulated models of Odoo `version`; every other field is
/// plain.
pub fn relation(version: u32, model: &str, field: &str) -> Rel {
    use Rel::*;
    match (model, field) {
        (_, "company_id") => Many2one("res.company"),
        (_, "product_id") => Many2one("product.product"),
        (_, "lot_id") => Many2one("stock.lot"),
        // Odoo 19 renamed the package model.
        (_, "package_id" | "result_package_id") if version >= 19 => Many2one("stock.package"),
        (_, "package_id" | "result_package_id") => Many2one("stock.quant.package"),
        ("uom.uom", "relative_uom_id") => Many2one("uom.uom"),
        (_, "picking_type_id" | "int_type_id" | "pick_type_id") => Many2one("stock.picking.type"),
        (_, "picking_id") => Many2one("stock.picking"),
        (_, "move_id") => Many2one("stock.move"),
        (_, "partner_id") => Many2one("res.partner"),
        (_, "warehouse_id") => Many2one("stock.warehouse"),
        (_, "uom_id") => Many2one("uom.uom"),
        (_, "country_id") => Many2one("res.country"),
        (_, "backorder_id") => Many2one("stock.picking"),
        (
            _,
            "location_id"
            | "location_dest_id"
            | "view_location_id"
            | "lot_stock_id"
            | "default_location_src_id"
            | "default_location_dest_id",
        ) => Many2one("stock.location"),
        ("stock.picking", "move_ids") => One2many("stock.move", "picking_id"),
        ("stock.picking", "move_line_ids") => One2many("stock.move.line", "picking_id"),
        ("stock.move", "move_line_ids") => One2many("stock.move.line", "move_id"),
        _ => Plain,
    }
}

/// Models every simulated version has (besides those holding records), wizards included.
const COMMON_MODELS: &[&str] = &[
    "res.company",
    "res.partner",
    "res.country",
    "res.users",
    "ir.model",
    "ir.model.data",
    "uom.uom",
    "product.product",
    "stock.warehouse",
    "stock.lot",
    "stock.location",
    "stock.quant",
    "stock.picking.type",
    "stock.picking",
    "stock.move",
    "stock.move.line",
    "stock.backorder.confirmation",
    "confirm.stock.sms",
    "stock.inventory.conflict",
];

/// Models only Odoo 18 has: 19 removed packagings (they are `product.uom` records now) and
/// renamed `stock.quant.package` to `stock.package`.
const MODELS_18: &[&str] = &["product.packaging", "stock.quant.package"];
const MODELS_19: &[&str] = &["product.uom", "stock.package"];

/// Fields Odoo 19 removed (ODOO.md): reading, writing or searching them is a `ValueError`.
fn removed_in_19(model: &str, field: &str) -> bool {
    matches!(
        (model, field),
        ("stock.move", "name" | "group_id")
            | (
                "stock.picking",
                "date" | "group_id" | "move_ids_without_package"
            )
            | ("product.product", "uom_po_id")
            | ("uom.uom", "category_id")
    )
}

/// Fields each simulated model declares besides what its records hold, so that
/// `fields_get` and field checks answer as Odoo does for a model with no records yet.
fn declared(version: u32, model: &str) -> &'static [&'static str] {
    use crate::odoo::mapping::fields;
    use crate::records::Model;
    match model {
        "stock.package" | "stock.quant.package" => fields(Model::Package),
        "product.packaging" => fields(Model::Packaging),
        "product.uom" => &["id", "product_id", "uom_id", "barcode", "company_id"],
        "uom.uom" if version >= 19 => &[
            "id",
            "name",
            "factor",
            "relative_factor",
            "relative_uom_id",
            "rounding",
        ],
        "uom.uom" => &["id", "name", "factor", "category_id", "rounding"],
        "stock.lot" => fields(Model::Lot),
        "stock.move" if version >= 19 => &["reference", "is_inventory", "inventory_name"],
        "stock.move" => &["name", "reference", "is_inventory"],
        "ir.model" => &["id", "model", "name"],
        // One2many fields hold nothing in the records: they are declared.
        "stock.picking" => &["move_ids", "move_line_ids"],
        _ => &[],
    }
}

/// Fields Odoo computes and stores from other records (related or computed, stored), which
/// the simulator derives on read instead of keeping in step.
pub fn is_computed(model: &str, field: &str) -> bool {
    matches!(
        (model, field),
        ("stock.move.line", "state") | ("stock.move", "reference" | "is_inventory")
    )
}

/// All records, by model.
#[derive(Debug, Default)]
pub struct Tables {
    pub models: HashMap<String, BTreeMap<i64, Map<String, Value>>>,
    /// Highest id ever given per model: ids are never reused, as with PostgreSQL sequences.
    sequences: HashMap<String, i64>,
    /// The Odoo major version whose models the records are shaped for (0: not yet set,
    /// 18's shapes, as [`Tables::load`] writes them).
    version: u32,
}

fn b(v: bool) -> Value {
    Value::Bool(v)
}

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map(Into::into).unwrap_or(Value::Bool(false))
}

impl Tables {
    /// All records as one JSON document (the simulator's optional state file).
    pub fn to_json(&self) -> Value {
        let models: Map<String, Value> = self
            .models
            .iter()
            .map(|(name, table)| {
                (
                    name.clone(),
                    Value::Array(table.values().cloned().map(Value::Object).collect()),
                )
            })
            .collect();
        json!({"models": models, "sequences": self.sequences, "version": self.version})
    }

    /// Reads what [`Tables::to_json`] wrote.
    pub fn from_json(value: &Value) -> Result<Tables, String> {
        let mut tables = Tables::default();
        let models = value
            .get("models")
            .and_then(Value::as_object)
            .ok_or("no \"models\" object")?;
        for (name, records) in models {
            let table = tables.table_mut(name);
            for record in records
                .as_array()
                .ok_or_else(|| format!("{name} is not a list"))?
            {
                let rec = record
                    .as_object()
                    .ok_or_else(|| format!("a {name} record is not an object"))?;
                let id = rec
                    .get("id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| format!("a {name} record has no id"))?;
                table.insert(id, rec.clone());
            }
        }
        if let Some(seqs) = value.get("sequences").and_then(Value::as_object) {
            for (name, n) in seqs {
                tables
                    .sequences
                    .insert(name.clone(), n.as_i64().unwrap_or(0));
            }
        }
        tables.version = value
            .get("version")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        Ok(tables)
    }

    /// The Odoo major version the records are shaped for (see [`Tables::prepare`]).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// A relational field of this version's models (see [`relation`]).
    pub fn relation(&self, model: &str, field: &str) -> Rel {
        relation(self.version, model, field)
    }

    /// Whether the simulated Odoo has `model` (an unknown one is refused as Odoo does).
    pub fn has_model(&self, model: &str) -> bool {
        let (own, other) = if self.version >= 19 {
            (MODELS_19, MODELS_18)
        } else {
            (MODELS_18, MODELS_19)
        };
        !other.contains(&model)
            && (COMMON_MODELS.contains(&model)
                || own.contains(&model)
                || self.table(model).is_some())
    }

    /// Whether `model` has `field` in this version: declared, or held by its records, and
    /// not removed by the version.
    pub fn has_field(&self, model: &str, field: &str) -> bool {
        if self.version >= 19 && removed_in_19(model, field) {
            return false;
        }
        field == "id"
            || field == "display_name"
            || declared(self.version, model).contains(&field)
            || self.relation(model, field) != Rel::Plain
            || is_computed(model, field)
            || self
                .table(model)
                .is_some_and(|t| t.values().any(|r| r.contains_key(field)))
    }

    /// Whether `field` is one Odoo `version` removed from `model`.
    pub fn removed(&self, model: &str, field: &str) -> bool {
        self.version >= 19 && removed_in_19(model, field)
    }

    /// The fields `fields_get` lists for `model`: declared ones and those its records hold.
    pub fn field_names(&self, model: &str) -> Vec<String> {
        let mut names: Vec<String> = declared(self.version, model)
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        for rec in self
            .table(model)
            .into_iter()
            .flat_map(|t| t.values().take(1))
        {
            names.extend(rec.keys().cloned());
        }
        names.sort();
        names.dedup();
        names.retain(|f| !self.removed(model, f));
        names
    }

    /// Shapes the records as Odoo `version` stores them, as Odoo's own upgrade would, and
    /// lists the models in `ir.model`. From 19 on: packagings become units of measure per
    /// product (`product.uom`, the same ids, each size a `uom.uom` relative to Units),
    /// `stock.quant.package` becomes `stock.package`, and moves lose `name` (an inventory
    /// move's name becomes its `inventory_name`).
    pub fn prepare(&mut self, version: u32, now: &str) {
        if version >= 19 && self.version < 19 {
            self.upgrade_to_19(now);
        }
        self.version = self.version.max(version);
        let listed: Vec<String> = self
            .table("ir.model")
            .into_iter()
            .flat_map(|t| t.values())
            .filter_map(|r| r.get("model").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let (own, _) = if self.version >= 19 {
            (MODELS_19, MODELS_18)
        } else {
            (MODELS_18, MODELS_19)
        };
        let mut models: Vec<String> = COMMON_MODELS
            .iter()
            .chain(own)
            .map(|m| (*m).to_owned())
            .chain(self.models.keys().cloned())
            .filter(|m| self.has_model(m) && !listed.contains(m))
            .collect();
        models.sort();
        models.dedup();
        for model in models {
            let id = self.next_id("ir.model");
            self.insert(
                "ir.model",
                id,
                Map::from_iter([
                    ("model".into(), json!(model)),
                    ("name".into(), json!(model)),
                ]),
                now,
            );
        }
    }

    fn upgrade_to_19(&mut self, now: &str) {
        // The reference unit gets 19's factors.
        if let Some(units) = self.table_mut("uom.uom").get_mut(&1) {
            units.remove("category_id");
            units.insert("factor".into(), json!(1.0));
            units.insert("relative_factor".into(), json!(1.0));
            units.insert("relative_uom_id".into(), Value::Bool(false));
        }
        let packagings = self.models.remove("product.packaging").unwrap_or_default();
        let mut units: Vec<(String, f64, i64)> = Vec::new();
        for (id, packaging) in packagings {
            let name = packaging
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("Pack")
                .to_owned();
            let qty = packaging.get("qty").and_then(Value::as_f64).unwrap_or(1.0);
            let uom = match units.iter().find(|(n, q, _)| *n == name && *q == qty) {
                Some((_, _, uom)) => *uom,
                None => {
                    let uom = self.next_id("uom.uom");
                    self.insert(
                        "uom.uom",
                        uom,
                        Map::from_iter([
                            ("name".into(), json!(name)),
                            ("relative_factor".into(), json!(qty)),
                            ("relative_uom_id".into(), json!(1)),
                            ("factor".into(), json!(qty)),
                            ("rounding".into(), json!(0.01)),
                        ]),
                        now,
                    );
                    units.push((name, qty, uom));
                    uom
                }
            };
            let written = packaging
                .get("write_date")
                .and_then(Value::as_str)
                .unwrap_or(now)
                .to_owned();
            self.insert(
                "product.uom",
                id,
                Map::from_iter([
                    (
                        "product_id".into(),
                        packaging
                            .get("product_id")
                            .cloned()
                            .unwrap_or(Value::Bool(false)),
                    ),
                    ("uom_id".into(), json!(uom)),
                    (
                        "barcode".into(),
                        packaging
                            .get("barcode")
                            .cloned()
                            .unwrap_or(Value::Bool(false)),
                    ),
                    ("company_id".into(), Value::Bool(false)),
                ]),
                &written,
            );
        }
        if let Some(packages) = self.models.remove("stock.quant.package") {
            self.models.insert("stock.package".into(), packages);
        }
        if let Some(n) = self.sequences.remove("stock.quant.package") {
            self.sequences.insert("stock.package".into(), n);
        }
        if let Some(n) = self.sequences.remove("product.packaging") {
            let seq = self.sequences.entry("product.uom".into()).or_insert(0);
            *seq = (*seq).max(n);
        }
        for mv in self.table_mut("stock.move").values_mut() {
            let name = mv.remove("name");
            let inventory = mv.get("picking_id").and_then(Value::as_i64).is_none()
                && mv.get("is_inventory") == Some(&Value::Bool(true));
            if let (true, Some(name)) = (inventory, name) {
                mv.insert("inventory_name".into(), name);
            }
        }
    }

    pub fn table(&self, model: &str) -> Option<&BTreeMap<i64, Map<String, Value>>> {
        self.models.get(model)
    }

    pub fn table_mut(&mut self, model: &str) -> &mut BTreeMap<i64, Map<String, Value>> {
        self.models.entry(model.to_owned()).or_default()
    }

    pub fn get(&self, model: &str, id: i64) -> Option<&Map<String, Value>> {
        self.models.get(model)?.get(&id)
    }

    pub fn next_id(&self, model: &str) -> i64 {
        let last = self
            .models
            .get(model)
            .and_then(|t| t.keys().next_back().copied())
            .unwrap_or(0);
        last.max(self.sequences.get(model).copied().unwrap_or(0)) + 1
    }

    /// Inserts a record as stored (many2one as ids), stamping `write_date`.
    pub fn insert(&mut self, model: &str, id: i64, mut rec: Map<String, Value>, now: &str) {
        rec.insert("id".into(), json!(id));
        rec.insert("write_date".into(), json!(now));
        rec.entry("create_date").or_insert_with(|| json!(now));
        let seq = self.sequences.entry(model.to_owned()).or_insert(0);
        *seq = (*seq).max(id);
        self.table_mut(model).insert(id, rec);
    }

    /// Writes fields of a record as an Odoo user would (stamping `write_date`); false when
    /// the record does not exist.
    pub fn write(&mut self, model: &str, id: i64, vals: Value, now: &str) -> bool {
        let Some(rec) = self.table_mut(model).get_mut(&id) else {
            return false;
        };
        if let Value::Object(vals) = vals {
            rec.extend(vals);
        }
        rec.insert("write_date".into(), json!(now));
        true
    }

    /// Changes fields without touching `write_date`, as Odoo's raw-SQL paths do (quant
    /// merges, some reservation updates).
    pub fn write_raw(&mut self, model: &str, id: i64, vals: Value) -> bool {
        let Some(rec) = self.table_mut(model).get_mut(&id) else {
            return false;
        };
        if let Value::Object(vals) = vals {
            rec.extend(vals);
        }
        true
    }

    /// Deletes a record; false when it did not exist.
    pub fn unlink(&mut self, model: &str, id: i64) -> bool {
        self.table_mut(model).remove(&id).is_some()
    }

    /// Loads a generated data set, as an Odoo database holding it would: records carry
    /// `write_date`s spread over the past (older than `now`), as records written over months
    /// do, so incremental pulls see only what changes afterwards.
    pub fn load(&mut self, data: &Dataset, now: &str) {
        let base = jiff::civil::date(2025, 1, 1).at(0, 0, 0, 0);
        let stamp = |id: i64| {
            base.checked_add(jiff::SignedDuration::from_secs(id * 37))
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|_| now.to_owned())
        };
        self.insert(
            "uom.uom",
            1,
            // Odoo's default rounding (18: stored per unit; 19: the "Product Unit" precision).
            Map::from_iter([
                ("name".into(), json!("Units")),
                ("rounding".into(), json!(0.01)),
            ]),
            // Installed with the database, long before any product was written.
            &stamp(0),
        );
        let mut countries: Vec<String> = data
            .partners
            .iter()
            .filter_map(|p| p.country.clone())
            .collect();
        countries.sort();
        countries.dedup();
        for (i, name) in countries.iter().enumerate() {
            self.insert(
                "res.country",
                i as i64 + 1,
                Map::from_iter([("name".into(), json!(name))]),
                now,
            );
        }
        for record in data.records() {
            let (model, id, mut rec) = stored(&record);
            if let Record::Partner(p) = &record {
                let country = p
                    .country
                    .as_ref()
                    .and_then(|c| countries.iter().position(|n| n == c));
                rec.insert("country_id".into(), opt(country.map(|i| i as i64 + 1)));
            }
            // A picking's moves and lines are written with it.
            let written = match &record {
                Record::Move(m) => m.picking_id.map_or(id, |p| p.0),
                Record::MoveLine(l) => l.picking_id.map_or(id, |p| p.0),
                _ => id,
            };
            self.insert(model, id, rec, &stamp(written));
        }
        // Odoo creates a warehouse's "Pick" type with it and archives it without multi-step
        // routes; the warehouse names its types (`int_type_id` is "Internal Transfers").
        for t in &data.archived_picking_types {
            let record = Record::PickingType(t.clone());
            let (model, id, mut rec) = stored(&record);
            rec.insert("active".into(), b(false));
            self.insert(model, id, rec, &stamp(id));
        }
        for w in &data.warehouses {
            let of = |types: &[crate::records::PickingType]| {
                types
                    .iter()
                    .find(|t| {
                        t.warehouse_id == Some(w.id)
                            && t.code == crate::records::PickingCode::Internal
                    })
                    .map(|t| t.id.0)
            };
            let vals = json!({"int_type_id": opt(of(&data.picking_types)),
                              "pick_type_id": opt(of(&data.archived_picking_types))});
            self.write_raw("stock.warehouse", w.id.0, vals);
        }
    }

    /// `display_name` of a record, as Odoo renders it in a many2one.
    pub fn display_name(&self, model: &str, id: i64) -> String {
        let Some(rec) = self.get(model, id) else {
            return String::new();
        };
        let text = |f: &str| {
            rec.get(f)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match model {
            "product.product" => match rec.get("default_code").and_then(Value::as_str) {
                Some(code) => format!("[{code}] {}", text("name")),
                None => text("name"),
            },
            "stock.location" => text("complete_name"),
            "stock.warehouse" => text("name"),
            // A 19 packaging is named by its barcode (`_rec_name`).
            "product.uom" => text("barcode"),
            _ => text("name"),
        }
    }

    /// The value of a computed stored field (see [`is_computed`]).
    pub fn computed(&self, model: &str, rec: &Map<String, Value>, field: &str) -> Option<Value> {
        if !is_computed(model, field) {
            return None;
        }
        let own = rec.get(field).filter(|v| !v.is_null()).cloned();
        Some(match (model, field) {
            // `state` is related to the move's state.
            ("stock.move.line", "state") => rec
                .get("move_id")
                .and_then(Value::as_i64)
                .and_then(|m| self.get("stock.move", m))
                .and_then(|m| m.get("state").cloned())
                .unwrap_or(b(false)),
            // `reference`: the picking's name, else the move's own (inventory) name: `name`
            // on 18, `inventory_name` on 19.
            ("stock.move", "reference") => own.unwrap_or_else(|| {
                rec.get("picking_id")
                    .and_then(Value::as_i64)
                    .and_then(|p| self.get("stock.picking", p))
                    .and_then(|p| p.get("name").cloned())
                    .or_else(|| rec.get("name").cloned())
                    .or_else(|| rec.get("inventory_name").cloned())
                    .unwrap_or(b(false))
            }),
            _ => own.unwrap_or(b(false)),
        })
    }

    /// A field in Odoo's read format.
    pub fn read_field(&self, model: &str, rec: &Map<String, Value>, field: &str) -> Value {
        if let Some(v) = self.computed(model, rec, field) {
            return v;
        }
        match self.relation(model, field) {
            Rel::Many2one(target) => match rec.get(field).and_then(Value::as_i64) {
                Some(id) => json!([id, self.display_name(target, id)]),
                None => b(false),
            },
            Rel::One2many(target, inverse) => {
                let id = rec.get("id").and_then(Value::as_i64).unwrap_or_default();
                Value::Array(
                    self.table(target)
                        .into_iter()
                        .flatten()
                        .filter(|(_, r)| r.get(inverse).and_then(Value::as_i64) == Some(id))
                        .map(|(i, _)| json!(i))
                        .collect(),
                )
            }
            Rel::Plain => match rec.get(field) {
                None | Some(Value::Null) => b(false),
                Some(v) => v.clone(),
            },
        }
    }
}

/// A record in the simulator's stored form: Odoo field names, many2one as ids.
pub fn stored(record: &Record) -> (&'static str, i64, Map<String, Value>) {
    let m = |pairs: Vec<(&str, Value)>| -> Map<String, Value> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    };
    let model = record.model().odoo_name();
    match record {
        Record::Company(r) => (model, r.id.0, m(vec![("name", json!(r.name))])),
        Record::Warehouse(r) => (
            model,
            r.id.0,
            m(vec![
                ("name", json!(r.name)),
                ("code", json!(r.code)),
                ("company_id", json!(r.company_id.0)),
                ("view_location_id", json!(r.view_location_id.0)),
                ("lot_stock_id", json!(r.lot_stock_id.0)),
            ]),
        ),
        Record::Partner(r) => (
            model,
            r.id.0,
            m(vec![
                ("name", json!(r.name)),
                ("street", opt(r.street.clone())),
                ("street2", opt(r.street2.clone())),
                ("zip", opt(r.zip.clone())),
                ("city", opt(r.city.clone())),
            ]),
        ),
        Record::Product(r) => (
            model,
            r.id.0,
            m(vec![
                ("default_code", opt(r.default_code.clone())),
                ("barcode", opt(r.barcode.clone())),
                ("name", json!(r.name)),
                ("tracking", json!(r.tracking.as_str())),
                ("uom_id", json!(1)),
                ("active", b(r.active)),
                ("is_storable", b(true)),
                ("type", json!("consu")),
            ]),
        ),
        Record::Packaging(r) => (
            model,
            r.id.0,
            m(vec![
                ("product_id", json!(r.product_id.0)),
                ("name", json!(r.name)),
                ("barcode", opt(r.barcode.clone())),
                ("qty", json!(r.qty)),
            ]),
        ),
        Record::Lot(r) => (
            model,
            r.id.0,
            m(vec![
                ("product_id", json!(r.product_id.0)),
                ("name", json!(r.name)),
                ("expiration_date", opt(r.expiration_date.clone())),
                ("company_id", json!(1)),
            ]),
        ),
        Record::Location(r) => (
            model,
            r.id.0,
            m(vec![
                ("name", json!(r.name)),
                ("complete_name", json!(r.complete_name)),
                ("barcode", opt(r.barcode.clone())),
                ("usage", json!(r.usage.as_str())),
                ("location_id", opt(r.parent_id.map(|v| v.0))),
                ("warehouse_id", opt(r.warehouse_id.map(|v| v.0))),
                ("company_id", opt(r.warehouse_id.map(|v| v.0))),
                ("active", b(r.active)),
            ]),
        ),
        Record::Package(r) => (
            model,
            r.id.0,
            m(vec![
                ("name", json!(r.name)),
                ("location_id", opt(r.location_id.map(|v| v.0))),
            ]),
        ),
        Record::Quant(r) => (
            model,
            r.id.0,
            m(vec![
                ("product_id", json!(r.product_id.0)),
                ("location_id", json!(r.location_id.0)),
                ("lot_id", opt(r.lot_id.map(|v| v.0))),
                ("package_id", opt(r.package_id.map(|v| v.0))),
                ("quantity", json!(r.quantity)),
                ("reserved_quantity", json!(r.reserved)),
                ("inventory_quantity", json!(0.0)),
                ("inventory_quantity_set", b(false)),
            ]),
        ),
        Record::PickingType(r) => (
            model,
            r.id.0,
            m(vec![
                ("name", json!(r.name)),
                ("code", json!(r.code.as_str())),
                ("barcode", opt(r.barcode.clone())),
                ("warehouse_id", opt(r.warehouse_id.map(|v| v.0))),
                ("company_id", opt(r.warehouse_id.map(|v| v.0))),
                (
                    "default_location_src_id",
                    opt(r.default_location_src_id.map(|v| v.0)),
                ),
                (
                    "default_location_dest_id",
                    opt(r.default_location_dest_id.map(|v| v.0)),
                ),
                ("active", b(true)),
            ]),
        ),
        Record::Picking(r) => (
            model,
            r.id.0,
            m(vec![
                ("name", json!(r.name)),
                ("state", json!(r.state.as_str())),
                ("picking_type_id", json!(r.picking_type_id.0)),
                ("location_id", json!(r.location_id.0)),
                ("location_dest_id", json!(r.location_dest_id.0)),
                ("partner_id", opt(r.partner_id.map(|v| v.0))),
                ("origin", opt(r.origin.clone())),
                // An Html field on 18 and 19; the dataset writes none.
                ("note", b(false)),
                ("scheduled_date", opt(r.scheduled_date.clone())),
                ("backorder_id", opt(r.backorder_id.map(|v| v.0))),
                ("company_id", json!(r.company_id.0)),
            ]),
        ),
        Record::Move(r) => (
            model,
            r.id.0,
            m(vec![
                ("picking_id", opt(r.picking_id.map(|v| v.0))),
                ("product_id", json!(r.product_id.0)),
                ("product_uom_qty", json!(r.product_uom_qty)),
                ("quantity", json!(r.quantity)),
                ("picked", b(r.picked)),
                ("state", json!(r.state.as_str())),
                ("location_id", json!(r.location_id.0)),
                ("location_dest_id", json!(r.location_dest_id.0)),
                ("name", json!("move")),
            ]),
        ),
        Record::MoveLine(r) => (
            model,
            r.id.0,
            m(vec![
                ("move_id", opt(r.move_id.map(|v| v.0))),
                ("picking_id", opt(r.picking_id.map(|v| v.0))),
                ("product_id", json!(r.product_id.0)),
                ("lot_id", opt(r.lot_id.map(|v| v.0))),
                ("lot_name", opt(r.lot_name.clone())),
                ("package_id", opt(r.package_id.map(|v| v.0))),
                ("result_package_id", opt(r.result_package_id.map(|v| v.0))),
                ("location_id", json!(r.location_id.0)),
                ("location_dest_id", json!(r.location_dest_id.0)),
                ("quantity", json!(r.quantity)),
                ("picked", b(r.picked)),
            ]),
        ),
    }
}

/// Evaluates an Odoo domain (prefix `&`, `|`, `!`; leaves `[path, op, value]`) on a record.
pub fn matches(
    tables: &Tables,
    model: &str,
    rec: &Map<String, Value>,
    domain: &[Value],
) -> Result<bool, SimError> {
    // A plain conjunction (no operators) short-circuits, plain fields before dotted paths,
    // as a database would evaluate the cheap, selective conditions first.
    if domain.iter().all(Value::is_array) {
        let dotted = |t: &&Value| {
            t.get(0)
                .and_then(Value::as_str)
                .is_some_and(|p| p.contains('.'))
        };
        for term in domain
            .iter()
            .filter(|t| !dotted(t))
            .chain(domain.iter().filter(dotted))
        {
            let leaf = term.as_array().filter(|l| l.len() == 3);
            let (Some(path), Some(op)) = (
                leaf.and_then(|l| l[0].as_str()),
                leaf.and_then(|l| l[1].as_str()),
            ) else {
                return Err(SimError::value(format!("invalid leaf {term}")));
            };
            if !leaf_matches(tables, model, rec, path, op, &term[2])? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    let mut stack: Vec<bool> = Vec::new();
    for term in domain.iter().rev() {
        match term {
            Value::String(op) if op == "!" => {
                let a = stack
                    .pop()
                    .ok_or_else(|| SimError::value("malformed domain: '!' without operand"))?;
                stack.push(!a);
            }
            Value::String(op) if op == "&" || op == "|" => {
                let (a, b) = match (stack.pop(), stack.pop()) {
                    (Some(a), Some(b)) => (a, b),
                    _ => {
                        return Err(SimError::value(format!(
                            "malformed domain: '{op}' needs two operands"
                        )));
                    }
                };
                stack.push(if op == "&" { a && b } else { a || b });
            }
            Value::Array(leaf) if leaf.len() == 3 => {
                let path = leaf[0]
                    .as_str()
                    .ok_or_else(|| SimError::value(format!("invalid leaf {term}")))?;
                let op = leaf[1]
                    .as_str()
                    .ok_or_else(|| SimError::value(format!("invalid leaf {term}")))?;
                stack.push(leaf_matches(tables, model, rec, path, op, &leaf[2])?);
            }
            other => return Err(SimError::value(format!("invalid domain term {other}"))),
        }
    }
    Ok(stack.into_iter().all(|x| x))
}

fn leaf_matches(
    tables: &Tables,
    model: &str,
    rec: &Map<String, Value>,
    path: &str,
    op: &str,
    value: &Value,
) -> Result<bool, SimError> {
    let (field, rest) = match path.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (path, None),
    };
    if tables.removed(model, field)
        || field != "id"
            && !rec.contains_key(field)
            && tables.relation(model, field) == Rel::Plain
            && !is_computed(model, field)
    {
        return Err(SimError::value(format!(
            "Invalid field {model}.{field} in leaf {path:?}"
        )));
    }
    if let Some(rest) = rest {
        let (target, related): (&str, Vec<i64>) = match tables.relation(model, field) {
            Rel::Many2one(target) => (
                target,
                rec.get(field).and_then(Value::as_i64).into_iter().collect(),
            ),
            Rel::One2many(target, _) => (
                target,
                tables
                    .read_field(model, rec, field)
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default(),
            ),
            Rel::Plain => {
                return Err(SimError::value(format!(
                    "{path:?}: {field} is not relational"
                )));
            }
        };
        for id in related {
            if let Some(r) = tables.get(target, id)
                && leaf_matches(tables, target, r, rest, op, value)?
            {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let actual = match tables.relation(model, field) {
        _ if is_computed(model, field) => tables.read_field(model, rec, field),
        Rel::One2many(..) => tables.read_field(model, rec, field),
        _ => rec.get(field).cloned().unwrap_or(Value::Bool(false)),
    };
    compare(&actual, op, value)
}

fn as_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn compare(actual: &Value, op: &str, expected: &Value) -> Result<bool, SimError> {
    let eq = |a: &Value, b: &Value| match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Bool(false), Value::Null) | (Value::Null, Value::Bool(false)) => true,
        _ => a == b,
    };
    let order = |a: &Value, b: &Value| -> Option<std::cmp::Ordering> {
        match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => as_f64(a)?.partial_cmp(&as_f64(b)?),
        }
    };
    Ok(match op {
        "=" => match actual {
            Value::Array(ids) => ids.iter().any(|i| eq(i, expected)),
            _ => eq(actual, expected),
        },
        "!=" => !eq(actual, expected),
        ">" | ">=" | "<" | "<=" => {
            if actual == &Value::Bool(false) {
                false
            } else {
                match order(actual, expected) {
                    Some(o) => match op {
                        ">" => o.is_gt(),
                        ">=" => o.is_ge(),
                        "<" => o.is_lt(),
                        _ => o.is_le(),
                    },
                    None => false,
                }
            }
        }
        "in" | "not in" => {
            let list = expected
                .as_array()
                .ok_or_else(|| SimError::value(format!("'{op}' needs a list, got {expected}")))?;
            let found = match actual {
                Value::Array(ids) => ids.iter().any(|i| list.iter().any(|l| eq(i, l))),
                _ => list.iter().any(|l| eq(actual, l)),
            };
            if op == "in" { found } else { !found }
        }
        "like" | "ilike" | "not ilike" => {
            let (a, e) = (
                actual.as_str().unwrap_or_default(),
                expected.as_str().unwrap_or_default(),
            );
            let found = if op == "like" {
                a.contains(e)
            } else {
                a.to_lowercase().contains(&e.to_lowercase())
            };
            if op == "not ilike" { !found } else { found }
        }
        "=like" | "=ilike" => {
            let (a, e) = (
                actual.as_str().unwrap_or_default(),
                expected.as_str().unwrap_or_default(),
            );
            if op == "=like" {
                sql_like(a, e)
            } else {
                sql_like(&a.to_lowercase(), &e.to_lowercase())
            }
        }
        other => {
            return Err(SimError::value(format!(
                "Invalid domain operator {other:?}"
            )));
        }
    })
}

/// SQL `LIKE`: `%` matches any run, `_` any one character.
fn sql_like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last `%`.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}
