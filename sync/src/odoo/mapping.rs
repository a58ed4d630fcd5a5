//! Odoo's JSON records → plain [`records`](crate::records), field by field, with Odoo's
//! conventions: `false` for empty values (never `null`), many2one as `[id, "display name"]`
//! or `false`, selections as strings. Anything else is a [`MappingError`] naming the model,
//! the record and the field, never a panic.

use serde_json::{Map, Value};

use crate::records::*;

/// A record Odoo sent that does not have the shape this build expects.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{model} record {id}: field {field}: {problem}")]
pub struct MappingError {
    pub model: &'static str,
    pub id: i64,
    pub field: &'static str,
    pub problem: String,
}

/// The fields read for each model (always explicit: Odoo is much slower without them).
pub fn fields(model: Model) -> &'static [&'static str] {
    match model {
        Model::Company => &["id", "name"],
        Model::Warehouse => &[
            "id",
            "name",
            "code",
            "company_id",
            "view_location_id",
            "lot_stock_id",
        ],
        Model::Partner => &[
            "id",
            "name",
            "street",
            "street2",
            "zip",
            "city",
            "country_id",
        ],
        Model::Product => &[
            "id",
            "default_code",
            "barcode",
            "name",
            "tracking",
            "uom_id",
            "active",
        ],
        Model::Packaging => &["id", "product_id", "name", "barcode", "qty"],
        Model::Lot => &["id", "product_id", "name", "expiration_date"],
        Model::Location => &[
            "id",
            "name",
            "complete_name",
            "barcode",
            "usage",
            "location_id",
            "warehouse_id",
            "active",
        ],
        Model::Package => &["id", "name", "location_id"],
        Model::Quant => &[
            "id",
            "product_id",
            "location_id",
            "lot_id",
            "package_id",
            "quantity",
            "reserved_quantity",
        ],
        Model::PickingType => &[
            "id",
            "name",
            "code",
            "barcode",
            "warehouse_id",
            "default_location_src_id",
            "default_location_dest_id",
        ],
        Model::Picking => &[
            "id",
            "name",
            "state",
            "picking_type_id",
            "location_id",
            "location_dest_id",
            "partner_id",
            "origin",
            "scheduled_date",
            "backorder_id",
            "company_id",
        ],
        Model::Move => &[
            "id",
            "picking_id",
            "product_id",
            "product_uom_qty",
            "quantity",
            "picked",
            "state",
            "location_id",
            "location_dest_id",
        ],
        Model::MoveLine => &[
            "id",
            "move_id",
            "picking_id",
            "product_id",
            "lot_id",
            "lot_name",
            "package_id",
            "result_package_id",
            "location_id",
            "location_dest_id",
            "quantity",
            "picked",
        ],
    }
}

struct Fields<'a> {
    model: &'static str,
    id: i64,
    rec: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &'static str, problem: String) -> MappingError {
        MappingError {
            model: self.model,
            id: self.id,
            field,
            problem,
        }
    }

    fn get(&self, field: &'static str) -> Result<&'a Value, MappingError> {
        self.rec
            .get(field)
            .ok_or_else(|| self.err(field, "missing".into()))
    }

    /// A char field: `false` (or absent for optional modules) is None.
    fn opt_str(&self, field: &'static str) -> Result<Option<String>, MappingError> {
        match self.rec.get(field) {
            None | Some(Value::Bool(false)) | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(field, format!("expected text or false, got {other}"))),
        }
    }

    fn string(&self, field: &'static str) -> Result<String, MappingError> {
        self.opt_str(field)?
            .ok_or_else(|| self.err(field, "required text is empty".into()))
    }

    fn float(&self, field: &'static str) -> Result<f64, MappingError> {
        match self.get(field)? {
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| self.err(field, format!("not a finite number: {n}"))),
            other => Err(self.err(field, format!("expected a number, got {other}"))),
        }
    }

    fn boolean(&self, field: &'static str) -> Result<bool, MappingError> {
        match self.get(field)? {
            Value::Bool(b) => Ok(*b),
            other => Err(self.err(field, format!("expected true or false, got {other}"))),
        }
    }

    /// A many2one: `[id, "name"]` or `false`.
    fn m2o(&self, field: &'static str) -> Result<Option<(i64, String)>, MappingError> {
        match self.rec.get(field) {
            None | Some(Value::Bool(false)) | Some(Value::Null) => Ok(None),
            Some(Value::Array(pair)) => match pair.as_slice() {
                [Value::Number(id), name] if id.as_i64().is_some_and(|i| i > 0) => Ok(Some((
                    id.as_i64().unwrap_or_default(),
                    name.as_str().unwrap_or_default().to_owned(),
                ))),
                _ => Err(self.err(field, format!("expected [id, name], got {pair:?}"))),
            },
            Some(other) => {
                Err(self.err(field, format!("expected [id, name] or false, got {other}")))
            }
        }
    }

    fn m2o_id(&self, field: &'static str) -> Result<Option<i64>, MappingError> {
        Ok(self.m2o(field)?.map(|(id, _)| id))
    }

    fn required_id(&self, field: &'static str) -> Result<i64, MappingError> {
        self.m2o_id(field)?
            .ok_or_else(|| self.err(field, "required reference is false".into()))
    }

    fn selection<T: std::str::FromStr<Err = UnknownValue>>(
        &self,
        field: &'static str,
    ) -> Result<T, MappingError> {
        self.string(field)?
            .parse()
            .map_err(|e: UnknownValue| self.err(field, e.to_string()))
    }
}

/// Maps one record of `model` as read with [`fields`].
pub fn map_record(model: Model, rec: &Map<String, Value>) -> Result<Record, MappingError> {
    let id = match rec.get("id").and_then(Value::as_i64) {
        Some(id) if id > 0 => id,
        _ => {
            return Err(MappingError {
                model: model.odoo_name(),
                id: 0,
                field: "id",
                problem: format!("missing or not a positive integer: {:?}", rec.get("id")),
            });
        }
    };
    let f = Fields {
        model: model.odoo_name(),
        id,
        rec,
    };
    Ok(match model {
        Model::Company => Record::Company(Company {
            id: CompanyId(id),
            name: f.string("name")?,
        }),
        Model::Warehouse => Record::Warehouse(Warehouse {
            id: WarehouseId(id),
            name: f.string("name")?,
            code: f.string("code")?,
            company_id: CompanyId(f.required_id("company_id")?),
            view_location_id: LocationId(f.required_id("view_location_id")?),
            lot_stock_id: LocationId(f.required_id("lot_stock_id")?),
        }),
        Model::Partner => Record::Partner(Partner {
            id: PartnerId(id),
            name: f.opt_str("name")?.unwrap_or_default(),
            street: f.opt_str("street")?,
            street2: f.opt_str("street2")?,
            zip: f.opt_str("zip")?,
            city: f.opt_str("city")?,
            country: f.m2o("country_id")?.map(|(_, name)| name),
        }),
        Model::Product => Record::Product(Product {
            id: ProductId(id),
            default_code: f.opt_str("default_code")?,
            barcode: f.opt_str("barcode")?,
            name: f.string("name")?,
            tracking: f.selection("tracking")?,
            uom: f
                .m2o("uom_id")?
                .map(|(_, n)| n)
                .unwrap_or_else(|| "Units".into()),
            // Joined in by the pull from `uom.uom` (see `pull::with_uom_rounding`).
            uom_rounding: match f.rec.get("uom_rounding") {
                None | Some(Value::Bool(false)) | Some(Value::Null) => None,
                Some(_) => Some(f.float("uom_rounding")?).filter(|r| *r > 0.0),
            },
            active: f.boolean("active")?,
        }),
        Model::Packaging => Record::Packaging(Packaging {
            id: PackagingId(id),
            product_id: ProductId(f.required_id("product_id")?),
            name: f.string("name")?,
            barcode: f.opt_str("barcode")?,
            qty: f.float("qty")?,
        }),
        Model::Lot => Record::Lot(Lot {
            id: LotId(id),
            product_id: ProductId(f.required_id("product_id")?),
            name: f.string("name")?,
            // Only with the product_expiry module; absent otherwise.
            expiration_date: f.opt_str("expiration_date")?,
        }),
        Model::Location => Record::Location(Location {
            id: LocationId(id),
            name: f.string("name")?,
            complete_name: f.opt_str("complete_name")?.unwrap_or_default(),
            barcode: f.opt_str("barcode")?,
            usage: f.selection("usage")?,
            parent_id: f.m2o_id("location_id")?.map(LocationId),
            warehouse_id: f.m2o_id("warehouse_id")?.map(WarehouseId),
            active: f.boolean("active")?,
        }),
        Model::Package => Record::Package(Package {
            id: PackageId(id),
            name: f.string("name")?,
            location_id: f.m2o_id("location_id")?.map(LocationId),
        }),
        Model::Quant => {
            let lot = f.m2o("lot_id")?;
            Record::Quant(Quant {
                id: QuantId(id),
                product_id: ProductId(f.required_id("product_id")?),
                location_id: LocationId(f.required_id("location_id")?),
                lot_id: lot.as_ref().map(|(i, _)| LotId(*i)),
                lot_name: lot.map(|(_, n)| n),
                package_id: f.m2o_id("package_id")?.map(PackageId),
                quantity: f.float("quantity")?,
                reserved: f.float("reserved_quantity")?,
            })
        }
        Model::PickingType => Record::PickingType(PickingType {
            id: PickingTypeId(id),
            name: f.string("name")?,
            code: f.selection("code")?,
            barcode: f.opt_str("barcode")?,
            warehouse_id: f.m2o_id("warehouse_id")?.map(WarehouseId),
            default_location_src_id: f.m2o_id("default_location_src_id")?.map(LocationId),
            default_location_dest_id: f.m2o_id("default_location_dest_id")?.map(LocationId),
        }),
        Model::Picking => Record::Picking(Picking {
            id: PickingId(id),
            name: f.string("name")?,
            state: f.selection("state")?,
            picking_type_id: PickingTypeId(f.required_id("picking_type_id")?),
            location_id: LocationId(f.required_id("location_id")?),
            location_dest_id: LocationId(f.required_id("location_dest_id")?),
            partner_id: f.m2o_id("partner_id")?.map(PartnerId),
            origin: f.opt_str("origin")?,
            scheduled_date: f.opt_str("scheduled_date")?,
            backorder_id: f.m2o_id("backorder_id")?.map(PickingId),
            company_id: CompanyId(f.required_id("company_id")?),
        }),
        Model::Move => Record::Move(Move {
            id: MoveId(id),
            picking_id: f.m2o_id("picking_id")?.map(PickingId),
            product_id: ProductId(f.required_id("product_id")?),
            product_uom_qty: f.float("product_uom_qty")?,
            quantity: f.float("quantity")?,
            picked: f.boolean("picked")?,
            state: f.selection("state")?,
            location_id: LocationId(f.required_id("location_id")?),
            location_dest_id: LocationId(f.required_id("location_dest_id")?),
        }),
        Model::MoveLine => Record::MoveLine(MoveLine {
            id: MoveLineId(id),
            move_id: f.m2o_id("move_id")?.map(MoveId),
            picking_id: f.m2o_id("picking_id")?.map(PickingId),
            product_id: ProductId(f.required_id("product_id")?),
            lot_id: f.m2o_id("lot_id")?.map(LotId),
            lot_name: f.opt_str("lot_name")?,
            package_id: f.m2o_id("package_id")?.map(PackageId),
            result_package_id: f.m2o_id("result_package_id")?.map(PackageId),
            location_id: LocationId(f.required_id("location_id")?),
            location_dest_id: LocationId(f.required_id("location_dest_id")?),
            quantity: f.float("quantity")?,
            picked: f.boolean("picked")?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(model: Model, v: Value) -> Result<Record, MappingError> {
        map_record(model, v.as_object().unwrap())
    }

    #[test]
    fn odoo_shapes_map_to_records() {
        let quant = map(
            Model::Quant,
            json!({"id": 9, "product_id": [3, "[HF-3] Tape"], "location_id": [21, "WH/Stock/A-01"],
                   "lot_id": [5, "LOT-7"], "package_id": false, "quantity": 12.0, "reserved_quantity": 2}),
        )
        .unwrap();
        assert_eq!(
            quant,
            Record::Quant(Quant {
                id: QuantId(9),
                product_id: ProductId(3),
                location_id: LocationId(21),
                lot_id: Some(LotId(5)),
                lot_name: Some("LOT-7".into()),
                package_id: None,
                quantity: 12.0,
                reserved: 2.0,
            })
        );
        let product = map(
            Model::Product,
            json!({"id": 3, "default_code": false, "barcode": false, "name": "Tape",
                   "tracking": "none", "uom_id": [1, "Units"], "active": true}),
        )
        .unwrap();
        assert!(matches!(
            product,
            Record::Product(Product {
                barcode: None,
                default_code: None,
                ..
            })
        ));
    }

    #[test]
    fn wrong_shapes_name_model_record_and_field() {
        let cases = [
            (
                Model::Quant,
                json!({"id": 9, "product_id": 3, "location_id": [1, "x"], "quantity": 1, "reserved_quantity": 0}),
                "stock.quant record 9: field product_id",
            ),
            (
                Model::Quant,
                json!({"id": 9, "product_id": [3, "x"], "location_id": [1, "x"], "quantity": "1", "reserved_quantity": 0}),
                "field quantity: expected a number",
            ),
            (
                Model::Product,
                json!({"id": 3, "name": "T", "tracking": "product", "active": true}),
                "field tracking: unknown tracking value",
            ),
            (
                Model::Picking,
                json!({"id": 4, "name": false}),
                "stock.picking record 4: field name: required text is empty",
            ),
            (
                Model::Move,
                json!({"id": "7"}),
                "stock.move record 0: field id",
            ),
            (
                Model::Lot,
                json!({"id": 2, "product_id": false, "name": "L"}),
                "field product_id: required reference is false",
            ),
        ];
        for (model, value, expected) in cases {
            let err = map(model, value).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} lacks {expected}");
        }
    }
}
