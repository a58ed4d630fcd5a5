//! Plain records of the Odoo models a site mirrors.
//!
//! These are the shapes the mirror stores and the pull produces: one struct per Odoo model,
//! holding only the fields the floor needs. They know nothing of SQLite or of the wire; the
//! wire client maps Odoo's JSON into them and the store maps them into rows.

use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl $name {
            /// The Odoo database id.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// `res.company` id.
    CompanyId,
    /// `stock.warehouse` id.
    WarehouseId,
    /// `res.partner` id.
    PartnerId,
    /// `product.product` id.
    ProductId,
    /// `product.packaging` id.
    PackagingId,
    /// `stock.lot` id.
    LotId,
    /// `stock.location` id.
    LocationId,
    /// `stock.quant.package` (Odoo 19: `stock.package`) id.
    PackageId,
    /// `stock.quant` id.
    QuantId,
    /// `stock.picking.type` id.
    PickingTypeId,
    /// `stock.picking` id.
    PickingId,
    /// `stock.move` id.
    MoveId,
    /// `stock.move.line` id.
    MoveLineId,
);

/// An Odoo selection value that did not match any value this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {field} value {value:?}")]
pub struct UnknownValue {
    pub field: &'static str,
    pub value: String,
}

macro_rules! selection {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            /// All values, in Odoo's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The value as Odoo spells it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(UnknownValue { field: $field, value: other.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

selection!(
    /// `product.product.tracking`.
    Tracking, "tracking" { None => "none", Lot => "lot", Serial => "serial" }
);
selection!(
    /// `stock.location.usage`.
    LocationUsage, "usage" {
        Supplier => "supplier", View => "view", Internal => "internal", Customer => "customer",
        Inventory => "inventory", Production => "production", Transit => "transit",
    }
);
selection!(
    /// `stock.picking.type.code`.
    PickingCode, "code" { Incoming => "incoming", Outgoing => "outgoing", Internal => "internal" }
);
selection!(
    /// `stock.picking.state`.
    PickingState, "state" {
        Draft => "draft", Waiting => "waiting", Confirmed => "confirmed",
        Assigned => "assigned", Done => "done", Cancel => "cancel",
    }
);
selection!(
    /// `stock.move.state`.
    MoveState, "state" {
        Draft => "draft", Waiting => "waiting", Confirmed => "confirmed",
        PartiallyAvailable => "partially_available", Assigned => "assigned",
        Done => "done", Cancel => "cancel",
    }
);

impl PickingState {
    /// A picking the floor can still work on.
    pub fn is_open(self) -> bool {
        !matches!(self, PickingState::Done | PickingState::Cancel)
    }
}

/// `res.company`.
#[derive(Clone, Debug, PartialEq)]
pub struct Company {
    pub id: CompanyId,
    pub name: String,
}

/// `stock.warehouse`.
#[derive(Clone, Debug, PartialEq)]
pub struct Warehouse {
    pub id: WarehouseId,
    pub name: String,
    pub code: String,
    pub company_id: CompanyId,
    pub view_location_id: LocationId,
    pub lot_stock_id: LocationId,
}

/// `res.partner`: what a delivery label needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Partner {
    pub id: PartnerId,
    pub name: String,
    pub street: Option<String>,
    pub street2: Option<String>,
    pub zip: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
}

/// `product.product`.
#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub id: ProductId,
    pub default_code: Option<String>,
    pub barcode: Option<String>,
    pub name: String,
    pub tracking: Tracking,
    pub uom: String,
    /// The unit's `rounding` (`uom.uom.rounding`): quantities of this product are multiples of
    /// it. `None` when Odoo did not give it.
    pub uom_rounding: Option<f64>,
    pub active: bool,
}

/// `product.packaging`: a barcode that stands for a quantity of a product.
#[derive(Clone, Debug, PartialEq)]
pub struct Packaging {
    pub id: PackagingId,
    pub product_id: ProductId,
    pub name: String,
    pub barcode: Option<String>,
    pub qty: f64,
}

/// `stock.lot`: a lot or serial number of one product.
#[derive(Clone, Debug, PartialEq)]
pub struct Lot {
    pub id: LotId,
    pub product_id: ProductId,
    pub name: String,
    /// `YYYY-MM-DD HH:MM:SS` in UTC, as Odoo reads it.
    pub expiration_date: Option<String>,
}

/// `stock.location`.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub id: LocationId,
    pub name: String,
    pub complete_name: String,
    pub barcode: Option<String>,
    pub usage: LocationUsage,
    pub parent_id: Option<LocationId>,
    pub warehouse_id: Option<WarehouseId>,
    pub active: bool,
}

/// `stock.quant.package`.
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    pub id: PackageId,
    pub name: String,
    pub location_id: Option<LocationId>,
}

/// `stock.quant`: a quantity of a product (lot, package) at a location.
#[derive(Clone, Debug, PartialEq)]
pub struct Quant {
    pub id: QuantId,
    pub product_id: ProductId,
    pub location_id: LocationId,
    pub lot_id: Option<LotId>,
    /// The lot's name, from the many2one's display name; the view keys stock by it so that
    /// lots created on the floor (not yet known to Odoo) line up with Odoo's later.
    pub lot_name: Option<String>,
    pub package_id: Option<PackageId>,
    pub quantity: f64,
    pub reserved: f64,
}

/// `stock.picking.type`.
#[derive(Clone, Debug, PartialEq)]
pub struct PickingType {
    pub id: PickingTypeId,
    pub name: String,
    pub code: PickingCode,
    pub barcode: Option<String>,
    pub warehouse_id: Option<WarehouseId>,
    pub default_location_src_id: Option<LocationId>,
    pub default_location_dest_id: Option<LocationId>,
}

/// `stock.picking`.
#[derive(Clone, Debug, PartialEq)]
pub struct Picking {
    pub id: PickingId,
    pub name: String,
    pub state: PickingState,
    pub picking_type_id: PickingTypeId,
    pub location_id: LocationId,
    pub location_dest_id: LocationId,
    pub partner_id: Option<PartnerId>,
    pub origin: Option<String>,
    pub scheduled_date: Option<String>,
    pub backorder_id: Option<PickingId>,
    pub company_id: CompanyId,
}

/// `stock.move`: a demand for one product in a picking.
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    pub id: MoveId,
    pub picking_id: Option<PickingId>,
    pub product_id: ProductId,
    /// Demand.
    pub product_uom_qty: f64,
    /// Reserved or picked quantity (Odoo 17+ semantics).
    pub quantity: f64,
    pub picked: bool,
    pub state: MoveState,
    pub location_id: LocationId,
    pub location_dest_id: LocationId,
}

/// `stock.move.line`: a reservation or pick of a move at a location (lot, package).
#[derive(Clone, Debug, PartialEq)]
pub struct MoveLine {
    pub id: MoveLineId,
    pub move_id: Option<MoveId>,
    pub picking_id: Option<PickingId>,
    pub product_id: ProductId,
    pub lot_id: Option<LotId>,
    pub lot_name: Option<String>,
    pub package_id: Option<PackageId>,
    pub result_package_id: Option<PackageId>,
    pub location_id: LocationId,
    pub location_dest_id: LocationId,
    pub quantity: f64,
    pub picked: bool,
}

/// Any mirrored record: the unit a pull hands to the store.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Company(Company),
    Warehouse(Warehouse),
    Partner(Partner),
    Product(Product),
    Packaging(Packaging),
    Lot(Lot),
    Location(Location),
    Package(Package),
    Quant(Quant),
    PickingType(PickingType),
    Picking(Picking),
    Move(Move),
    MoveLine(MoveLine),
}

/// The mirrored Odoo models, by the name Odoo gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Model {
    Company,
    Warehouse,
    Partner,
    Product,
    Packaging,
    Lot,
    Location,
    Package,
    Quant,
    PickingType,
    Picking,
    Move,
    MoveLine,
}

impl Model {
    /// Every mirrored model, parents before children (the order a full pull takes).
    pub const ALL: &'static [Model] = &[
        Model::Company,
        Model::Warehouse,
        Model::Partner,
        Model::Product,
        Model::Packaging,
        Model::Lot,
        Model::Location,
        Model::Package,
        Model::Quant,
        Model::PickingType,
        Model::Picking,
        Model::Move,
        Model::MoveLine,
    ];

    /// Odoo's technical model name (Odoo 18).
    pub fn odoo_name(self) -> &'static str {
        match self {
            Model::Company => "res.company",
            Model::Warehouse => "stock.warehouse",
            Model::Partner => "res.partner",
            Model::Product => "product.product",
            Model::Packaging => "product.packaging",
            Model::Lot => "stock.lot",
            Model::Location => "stock.location",
            Model::Package => "stock.quant.package",
            Model::Quant => "stock.quant",
            Model::PickingType => "stock.picking.type",
            Model::Picking => "stock.picking",
            Model::Move => "stock.move",
            Model::MoveLine => "stock.move.line",
        }
    }
}

impl Record {
    /// The Odoo database id.
    pub fn id(&self) -> i64 {
        match self {
            Record::Company(r) => r.id.0,
            Record::Warehouse(r) => r.id.0,
            Record::Partner(r) => r.id.0,
            Record::Product(r) => r.id.0,
            Record::Packaging(r) => r.id.0,
            Record::Lot(r) => r.id.0,
            Record::Location(r) => r.id.0,
            Record::Package(r) => r.id.0,
            Record::Quant(r) => r.id.0,
            Record::PickingType(r) => r.id.0,
            Record::Picking(r) => r.id.0,
            Record::Move(r) => r.id.0,
            Record::MoveLine(r) => r.id.0,
        }
    }

    /// Which model this record belongs to.
    pub fn model(&self) -> Model {
        match self {
            Record::Company(_) => Model::Company,
            Record::Warehouse(_) => Model::Warehouse,
            Record::Partner(_) => Model::Partner,
            Record::Product(_) => Model::Product,
            Record::Packaging(_) => Model::Packaging,
            Record::Lot(_) => Model::Lot,
            Record::Location(_) => Model::Location,
            Record::Package(_) => Model::Package,
            Record::Quant(_) => Model::Quant,
            Record::PickingType(_) => Model::PickingType,
            Record::Picking(_) => Model::Picking,
            Record::Move(_) => Model::Move,
            Record::MoveLine(_) => Model::MoveLine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_round_trip_and_reject_unknown_values() {
        for state in PickingState::ALL {
            assert_eq!(state.as_str().parse::<PickingState>(), Ok(*state));
        }
        for usage in LocationUsage::ALL {
            assert_eq!(usage.as_str().parse::<LocationUsage>(), Ok(*usage));
        }
        let err = "product".parse::<Tracking>().unwrap_err();
        assert_eq!(err.to_string(), "unknown tracking value \"product\"");
    }
}
