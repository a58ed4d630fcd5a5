//! Deterministic warehouse data sets: the demo warehouse and the benchmark-sized ones.
//!
//! The same seed always gives the same records, ids included, so tests, benchmarks and the
//! demo talk about the same bins and products. Records follow Odoo 18's stock model: two
//! companies with a warehouse each, vendor/customer/inventory locations, bins with barcodes,
//! products with EAN-13 barcodes (GS1 GTINs), packagings with GTIN-14s, lot- and
//! serial-tracked products, quants, and receipts, deliveries and internal transfers in the
//! states a real site has them.

use std::collections::HashMap;

use crate::records::*;

/// How big a data set to make, and from which seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    pub seed: u64,
    pub products: usize,
    pub quants: usize,
    pub pickings: usize,
}

impl DatasetSpec {
    /// The built-in demo warehouse.
    pub fn demo() -> DatasetSpec {
        DatasetSpec {
            seed: 7,
            products: 40,
            quants: 120,
            // Ten in the site's warehouse (WH), two in the other company's.
            pickings: 12,
        }
    }
}

/// A generated warehouse, model by model.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub companies: Vec<Company>,
    pub warehouses: Vec<Warehouse>,
    pub partners: Vec<Partner>,
    pub products: Vec<Product>,
    pub packagings: Vec<Packaging>,
    pub lots: Vec<Lot>,
    pub locations: Vec<Location>,
    pub packages: Vec<Package>,
    pub quants: Vec<Quant>,
    pub picking_types: Vec<PickingType>,
    /// Types Odoo creates with every warehouse but archives without multi-step routes (the
    /// "Pick" type): not pulled, not in [`Dataset::records`], but in the simulated Odoo, with
    /// ids before "Internal Transfers" as Odoo creates them.
    pub archived_picking_types: Vec<PickingType>,
    pub pickings: Vec<Picking>,
    pub moves: Vec<Move>,
    pub move_lines: Vec<MoveLine>,
}

const PRODUCT_NAMES: [&str; 40] = [
    "Stretch wrap 500 mm",
    "Pallet label 100x150",
    "Cable tie 300 mm (100)",
    "Safety gloves, size L",
    "Hi-vis vest",
    "Carton 600x400x400",
    "Carton 400x300x200",
    "Packing tape, brown",
    "Void fill paper roll",
    "Hand pallet truck wheel",
    "Barcode scanner battery",
    "Thermal ribbon 110 mm",
    "Direct thermal labels 4x6",
    "Forklift fork extension",
    "Shelf divider, steel",
    "Bin box, blue, size 3",
    "Bin box, red, size 2",
    "Euro pallet EPAL",
    "Industrial fuse 32 A",
    "LED floodlight 100 W",
    "Hydraulic oil 5 L",
    "Nitrile gloves (200)",
    "First aid kit, refill",
    "Ear plugs (50 pairs)",
    "Steel strapping 16 mm",
    "Strapping seal 16 mm",
    "Corner board 50x50",
    "Silica gel sachet (500)",
    "Desiccant bag 1 kg",
    "Temperature logger",
    "RFID tag, UHF",
    "Handheld terminal strap",
    "Dock bumper",
    "Anti-slip mat",
    "Box cutter, safety",
    "Marker pen, black",
    "Document pouch A5",
    "Shrink hood 1200",
    "Paper pallet cover",
    "Pallet collar, pine",
];

/// GS1 check digit (mod 10, weights 3 and 1 from the right) of a string of digits.
/// (`holdfast_devices::gs1::check_digit` is the same rule; the two crates stay independent.)
pub fn gs1_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10
}

fn with_check_digit(body: String) -> String {
    let check = gs1_check_digit(&body);
    format!("{body}{check}")
}

/// The EAN-13 (GTIN-13) of the product with the given index.
fn product_ean(index: usize) -> String {
    with_check_digit(format!("590123{index:06}"))
}

struct Ids(i64);

impl Ids {
    fn next(&mut self) -> i64 {
        self.0 += 1;
        self.0
    }
}

impl Dataset {
    /// Makes the data set the spec describes.
    pub fn generate(spec: &DatasetSpec) -> Dataset {
        let mut rng = fastrand::Rng::with_seed(spec.seed);
        let mut d = Dataset::default();
        let mut ids = Ids(0);

        d.companies = vec![
            Company {
                id: CompanyId(1),
                name: "Holdfast Demo Logistics".into(),
            },
            Company {
                id: CompanyId(2),
                name: "Holdfast Demo North".into(),
            },
        ];
        for (i, (name, street, zip, city, country)) in [
            (
                "Acme Retail",
                "12 Market Street",
                "1011 AB",
                "Amsterdam",
                "Netherlands",
            ),
            (
                "Baltic Tools",
                "Ul. Portowa 4",
                "80-001",
                "Gdansk",
                "Poland",
            ),
            (
                "Corvid Foods",
                "7 Mill Lane",
                "M1 1AA",
                "Manchester",
                "United Kingdom",
            ),
            (
                "Delta Pharma",
                "Hauptstrasse 99",
                "10115",
                "Berlin",
                "Germany",
            ),
            (
                "Élan Café & Co",
                "3 rue du Port",
                "13002",
                "Marseille",
                "France",
            ),
            ("Fjord Supply", "Bryggen 21", "5003", "Bergen", "Norway"),
        ]
        .into_iter()
        .enumerate()
        {
            d.partners.push(Partner {
                id: PartnerId(i as i64 + 1),
                name: name.into(),
                street: Some(street.into()),
                street2: None,
                zip: Some(zip.into()),
                city: Some(city.into()),
                country: Some(country.into()),
            });
        }

        // Locations shared by both companies, then one warehouse per company.
        let vendors = LocationId(ids.next());
        let customers = LocationId(ids.next());
        let inventory = LocationId(ids.next());
        for (id, name, usage) in [
            (vendors, "Partners/Vendors", LocationUsage::Supplier),
            (customers, "Partners/Customers", LocationUsage::Customer),
            (
                inventory,
                "Virtual Locations/Inventory adjustment",
                LocationUsage::Inventory,
            ),
        ] {
            d.locations.push(Location {
                id,
                name: name.rsplit('/').next().unwrap_or(name).into(),
                complete_name: name.into(),
                barcode: None,
                usage,
                parent_id: None,
                warehouse_id: None,
                active: true,
            });
        }

        // Enough bins that each product's quants land in distinct bins; never a multiple
        // of 17, the stride used to spread a product's quants.
        let mut bins_per_wh = (spec.quants / 200).clamp(24, 5000);
        if bins_per_wh.is_multiple_of(17) {
            bins_per_wh += 1;
        }
        let mut bins: Vec<Vec<LocationId>> = Vec::new();
        for (w, code) in ["WH", "WH2"].into_iter().enumerate() {
            let wh_id = WarehouseId(w as i64 + 1);
            let view = LocationId(ids.next());
            let stock = LocationId(ids.next());
            d.locations.push(Location {
                id: view,
                name: code.into(),
                complete_name: code.into(),
                barcode: None,
                usage: LocationUsage::View,
                parent_id: None,
                warehouse_id: Some(wh_id),
                active: true,
            });
            d.locations.push(Location {
                id: stock,
                name: "Stock".into(),
                complete_name: format!("{code}/Stock"),
                barcode: Some(format!("{code}STOCK")),
                usage: LocationUsage::Internal,
                parent_id: Some(view),
                warehouse_id: Some(wh_id),
                active: true,
            });
            d.warehouses.push(Warehouse {
                id: wh_id,
                name: if w == 0 {
                    "Main Warehouse".into()
                } else {
                    "North Depot".into()
                },
                code: code.into(),
                company_id: CompanyId(w as i64 + 1),
                view_location_id: view,
                lot_stock_id: stock,
            });
            let mut wh_bins = Vec::with_capacity(bins_per_wh);
            for b in 0..bins_per_wh {
                let aisle = (b'A' + (b / 400 % 26) as u8) as char;
                let rack = b / 10 % 40 + 1;
                let level = b % 10 + 1;
                let name = format!("{aisle}-{rack:02}-{level:02}");
                let id = LocationId(ids.next());
                d.locations.push(Location {
                    id,
                    name: name.clone(),
                    complete_name: format!("{code}/Stock/{name}"),
                    barcode: Some(format!("{code}-{name}")),
                    usage: LocationUsage::Internal,
                    parent_id: Some(stock),
                    warehouse_id: Some(wh_id),
                    active: true,
                });
                wh_bins.push(id);
            }
            bins.push(wh_bins);

            for (code_kind, name, kind_code, src, dest) in [
                ("IN", "Receipts", PickingCode::Incoming, vendors, stock),
                (
                    "OUT",
                    "Delivery Orders",
                    PickingCode::Outgoing,
                    stock,
                    customers,
                ),
                ("PICK", "Pick", PickingCode::Internal, stock, stock),
                (
                    "INT",
                    "Internal Transfers",
                    PickingCode::Internal,
                    stock,
                    stock,
                ),
            ] {
                let t = PickingType {
                    id: PickingTypeId(
                        (d.picking_types.len() + d.archived_picking_types.len()) as i64 + 1,
                    ),
                    name: name.into(),
                    code: kind_code,
                    barcode: Some(format!("{code}{code_kind}")),
                    warehouse_id: Some(wh_id),
                    default_location_src_id: Some(src),
                    default_location_dest_id: Some(dest),
                };
                if code_kind == "PICK" {
                    d.archived_picking_types.push(t);
                } else {
                    d.picking_types.push(t);
                }
            }
        }

        // Products, with a packaging on every fourth and some lot/serial tracking.
        for i in 0..spec.products {
            let base = PRODUCT_NAMES[i % PRODUCT_NAMES.len()];
            let name = if i < PRODUCT_NAMES.len() {
                base.to_owned()
            } else {
                format!("{base} #{}", i / PRODUCT_NAMES.len())
            };
            let tracking = match i % 8 {
                3 => Tracking::Lot,
                6 => Tracking::Serial,
                _ => Tracking::None,
            };
            let ean = product_ean(i);
            let id = ProductId(i as i64 + 1);
            d.products.push(Product {
                id,
                default_code: Some(format!("HF-{:05}", i + 1)),
                barcode: (i % 10 != 9).then(|| ean.clone()),
                name,
                tracking,
                uom: "Units".into(),
                uom_rounding: Some(0.01),
                active: i % 50 != 49,
            });
            if i % 4 == 0 {
                d.packagings.push(Packaging {
                    id: PackagingId(d.packagings.len() as i64 + 1),
                    product_id: id,
                    name: "Box of 12".into(),
                    barcode: Some(with_check_digit(format!("1{}", &ean[..12]))),
                    qty: 12.0,
                });
            }
            if tracking == Tracking::Lot {
                for (suffix, month) in [("A", 3), ("B", 9)] {
                    d.lots.push(Lot {
                        id: LotId(d.lots.len() as i64 + 1),
                        product_id: id,
                        name: format!("LOT-{:05}-{suffix}", i + 1),
                        expiration_date: Some(format!("2027-{month:02}-15 00:00:00")),
                    });
                }
            }
        }

        // Quants: the n-th quant of a product goes to warehouse n % 2, spread over bins.
        let lot_of: HashMap<(ProductId, usize), (LotId, String)> = d
            .lots
            .iter()
            .enumerate()
            .map(|(i, lot)| ((lot.product_id, i % 2), (lot.id, lot.name.clone())))
            .collect();
        let mut stock_at: HashMap<(ProductId, usize), Vec<usize>> = HashMap::new();
        if spec.products > 0 {
            for k in 0..spec.quants {
                let p = k % spec.products;
                let n = k / spec.products;
                let wh = n % 2;
                let bin = bins[wh][(p * 31 + (n / 2) * 17) % bins_per_wh];
                let product = &d.products[p];
                let (lot_id, lot_name, quantity) = match product.tracking {
                    Tracking::None => (None, None, f64::from(rng.u32(1..=240))),
                    Tracking::Lot => {
                        let (id, name) = lot_of[&(product.id, n % 2)].clone();
                        (Some(id), Some(name), f64::from(rng.u32(1..=120)))
                    }
                    Tracking::Serial => {
                        let id = LotId(d.lots.len() as i64 + 1);
                        let name = format!("SN-{:05}-{n:04}", p + 1);
                        d.lots.push(Lot {
                            id,
                            product_id: product.id,
                            name: name.clone(),
                            expiration_date: None,
                        });
                        (Some(id), Some(name), 1.0)
                    }
                };
                stock_at.entry((product.id, wh)).or_default().push(k);
                d.quants.push(Quant {
                    id: QuantId(k as i64 + 1),
                    product_id: product.id,
                    location_id: bin,
                    lot_id,
                    lot_name,
                    package_id: None,
                    quantity,
                    reserved: 0.0,
                });
            }
        }

        // One pallet package per warehouse, holding nothing yet (labels and scans know it).
        for (w, code) in ["WH", "WH2"].into_iter().enumerate() {
            d.packages.push(Package {
                id: PackageId(w as i64 + 1),
                name: format!("PACK-{code}-0001"),
                location_id: Some(d.warehouses[w].lot_stock_id),
            });
        }

        d.generate_pickings(spec, &mut rng, &stock_at, customers, vendors);
        d
    }

    fn generate_pickings(
        &mut self,
        spec: &DatasetSpec,
        rng: &mut fastrand::Rng,
        stock_at: &HashMap<(ProductId, usize), Vec<usize>>,
        customers: LocationId,
        vendors: LocationId,
    ) {
        if self.products.is_empty() {
            return;
        }
        let mut counters: HashMap<(usize, usize), usize> = HashMap::new();
        for j in 0..spec.pickings {
            let kind = j % 3;
            let wh = usize::from(j % 5 == 4);
            let warehouse = self.warehouses[wh].clone();
            let picking_type = self.picking_types[wh * 3 + kind].clone();
            let stock = warehouse.lot_stock_id;
            let (prefix, states): (&str, &[PickingState]) = match kind {
                0 => (
                    "IN",
                    &[
                        PickingState::Assigned,
                        PickingState::Done,
                        PickingState::Assigned,
                        PickingState::Draft,
                    ],
                ),
                1 => (
                    "OUT",
                    &[
                        PickingState::Assigned,
                        PickingState::Confirmed,
                        PickingState::Done,
                        PickingState::Assigned,
                    ],
                ),
                _ => ("INT", &[PickingState::Assigned, PickingState::Draft]),
            };
            let number = counters.entry((wh, kind)).or_insert(0);
            *number += 1;
            let state = states[(*number - 1) % states.len()];
            let picking_id = PickingId(j as i64 + 1);
            let (src, dest, partner) = match kind {
                0 => (
                    vendors,
                    stock,
                    Some(self.partners[j % self.partners.len()].id),
                ),
                1 => (
                    stock,
                    customers,
                    Some(self.partners[j % self.partners.len()].id),
                ),
                _ => (stock, stock, None),
            };
            self.pickings.push(Picking {
                id: picking_id,
                name: format!("{}/{prefix}/{:05}", warehouse.code, *number),
                state,
                picking_type_id: picking_type.id,
                location_id: src,
                location_dest_id: dest,
                partner_id: partner,
                origin: (kind != 2).then(|| format!("SO{:05}", 1000 + j)),
                scheduled_date: Some(format!("2026-11-{:02} {:02}:00:00", 1 + j % 28, 8 + j % 9)),
                backorder_id: None,
                company_id: warehouse.company_id,
            });

            let n_moves = 1 + rng.usize(0..4);
            let first = rng.usize(0..self.products.len());
            for m in 0..n_moves {
                let product = self.products[(first + m * 7) % self.products.len()].clone();
                if !product.active {
                    continue;
                }
                let demand = match product.tracking {
                    Tracking::Serial => f64::from(rng.u32(1..=2)),
                    _ => f64::from(rng.u32(1..=20)),
                };
                let move_id = MoveId(self.moves.len() as i64 + 1);
                let move_state = match state {
                    PickingState::Draft => MoveState::Draft,
                    PickingState::Waiting => MoveState::Waiting,
                    PickingState::Confirmed => MoveState::Confirmed,
                    PickingState::Assigned => MoveState::Assigned,
                    PickingState::Done => MoveState::Done,
                    PickingState::Cancel => MoveState::Cancel,
                };
                let mut reserved = 0.0;
                match (kind, state) {
                    (_, PickingState::Draft | PickingState::Confirmed) => {}
                    (0, _) => {
                        // Receipts reserve their whole demand from the vendor location.
                        reserved = demand;
                        self.push_line(move_id, picking_id, &product, vendors, dest, demand);
                    }
                    (_, _) => {
                        // Reserve from this warehouse's quants of the product, bin by bin.
                        for &q in stock_at.get(&(product.id, wh)).into_iter().flatten() {
                            if reserved >= demand {
                                break;
                            }
                            let quant = &mut self.quants[q];
                            let take = (quant.quantity - quant.reserved).min(demand - reserved);
                            if take <= 0.0 {
                                continue;
                            }
                            if state != PickingState::Done {
                                quant.reserved += take;
                            }
                            reserved += take;
                            let (src_bin, lot_id) = (quant.location_id, quant.lot_id);
                            let line =
                                self.push_line(move_id, picking_id, &product, src_bin, dest, take);
                            // As Odoo reserves an existing lot: `lot_id` set, `lot_name` empty.
                            line.lot_id = lot_id;
                        }
                    }
                }
                let done = state == PickingState::Done;
                if done {
                    for line in self
                        .move_lines
                        .iter_mut()
                        .filter(|l| l.move_id == Some(move_id))
                    {
                        line.picked = true;
                    }
                }
                let move_state = match move_state {
                    MoveState::Assigned if reserved < demand => MoveState::PartiallyAvailable,
                    other => other,
                };
                self.moves.push(Move {
                    id: move_id,
                    picking_id: Some(picking_id),
                    product_id: product.id,
                    product_uom_qty: demand,
                    quantity: reserved,
                    picked: done,
                    state: move_state,
                    location_id: src,
                    location_dest_id: dest,
                });
            }
        }
    }

    fn push_line(
        &mut self,
        move_id: MoveId,
        picking_id: PickingId,
        product: &Product,
        src: LocationId,
        dest: LocationId,
        quantity: f64,
    ) -> &mut MoveLine {
        self.move_lines.push(MoveLine {
            id: MoveLineId(self.move_lines.len() as i64 + 1),
            move_id: Some(move_id),
            picking_id: Some(picking_id),
            product_id: product.id,
            lot_id: None,
            lot_name: None,
            package_id: None,
            result_package_id: None,
            location_id: src,
            location_dest_id: dest,
            quantity,
            picked: false,
        });
        let last = self.move_lines.len() - 1;
        &mut self.move_lines[last]
    }

    /// Every record, parents before children, as a pull would deliver them.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        let d = self;
        d.companies
            .iter()
            .cloned()
            .map(Record::Company)
            .chain(d.warehouses.iter().cloned().map(Record::Warehouse))
            .chain(d.partners.iter().cloned().map(Record::Partner))
            .chain(d.products.iter().cloned().map(Record::Product))
            .chain(d.packagings.iter().cloned().map(Record::Packaging))
            .chain(d.lots.iter().cloned().map(Record::Lot))
            .chain(d.locations.iter().cloned().map(Record::Location))
            .chain(d.packages.iter().cloned().map(Record::Package))
            .chain(d.quants.iter().cloned().map(Record::Quant))
            .chain(d.picking_types.iter().cloned().map(Record::PickingType))
            .chain(d.pickings.iter().cloned().map(Record::Picking))
            .chain(d.moves.iter().cloned().map(Record::Move))
            .chain(d.move_lines.iter().cloned().map(Record::MoveLine))
    }

    /// Number of records of every model together.
    pub fn len(&self) -> usize {
        self.companies.len()
            + self.warehouses.len()
            + self.partners.len()
            + self.products.len()
            + self.packagings.len()
            + self.lots.len()
            + self.locations.len()
            + self.packages.len()
            + self.quants.len()
            + self.picking_types.len()
            + self.pickings.len()
            + self.moves.len()
            + self.move_lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open deliveries and internal transfers (assigned, confirmed or waiting) with the codes
    /// a handheld can scan on them: the barcode, else the internal reference, of each untracked
    /// active product of their moves, once each. Pickings with none are left out. What the
    /// floor and LAN benchmarks give their devices to scan.
    pub fn scannable_pickings(&self) -> Vec<(&Picking, Vec<String>)> {
        let mut out = Vec::new();
        for p in &self.pickings {
            let kind = self
                .picking_types
                .iter()
                .find(|t| t.id == p.picking_type_id)
                .map_or(PickingCode::Internal, |t| t.code);
            let open = matches!(
                p.state,
                PickingState::Assigned | PickingState::Confirmed | PickingState::Waiting
            );
            if !open || kind == PickingCode::Incoming {
                continue;
            }
            let mut codes: Vec<String> = Vec::new();
            for m in self
                .moves
                .iter()
                .filter(|m| m.picking_id == Some(p.id) && m.state != MoveState::Cancel)
            {
                let Some(pr) = self.products.iter().find(|pr| pr.id == m.product_id) else {
                    continue;
                };
                if pr.active && pr.tracking == Tracking::None {
                    let code = pr.barcode.clone().or_else(|| pr.default_code.clone());
                    if let Some(code) = code.filter(|c| !codes.contains(c)) {
                        codes.push(code);
                    }
                }
            }
            if !codes.is_empty() {
                out.push((p, codes));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn check_digits_match_known_gtins() {
        // Published GS1 examples.
        assert_eq!(gs1_check_digit("400638133393"), 1);
        assert_eq!(gs1_check_digit("0950600013435"), 2);
        assert_eq!(gs1_check_digit("37610425002123456"), 9);
    }

    #[test]
    fn demo_has_what_the_quick_start_promises() {
        let d = Dataset::generate(&DatasetSpec::demo());
        assert_eq!(d.products.len(), 40);
        assert!(d.products.iter().any(|p| p.tracking == Tracking::Lot));
        assert!(d.products.iter().any(|p| p.tracking == Tracking::Serial));
        assert_eq!(d.warehouses.len(), 2);
        assert_eq!(d.pickings.len(), 12);
        assert_eq!(
            d.pickings
                .iter()
                .filter(|p| p.company_id == CompanyId(1))
                .count(),
            10
        );
        let codes: HashSet<_> = d
            .pickings
            .iter()
            .filter_map(|p| d.picking_types.iter().find(|t| t.id == p.picking_type_id))
            .map(|t| t.code)
            .collect();
        assert_eq!(
            codes.len(),
            3,
            "receipts, deliveries and internal transfers"
        );
        assert!(d.pickings.iter().any(|p| p.state == PickingState::Assigned));
        assert!(d.pickings.iter().any(|p| p.state == PickingState::Done));
        for p in &d.products {
            if let Some(b) = &p.barcode {
                assert_eq!(b.len(), 13);
                assert_eq!(
                    gs1_check_digit(&b[..12]),
                    u32::from(b.as_bytes()[12] - b'0')
                );
            }
        }
        for p in d
            .pickings
            .iter()
            .filter(|p| p.state == PickingState::Assigned)
        {
            assert!(d.moves.iter().any(|m| m.picking_id == Some(p.id)));
        }
    }

    #[test]
    fn scannable_pickings_are_open_outgoing_work_with_untracked_codes_of_their_own_moves() {
        let d = Dataset::generate(&DatasetSpec {
            seed: 1,
            products: 2_000,
            quants: 10_000,
            pickings: 1_500,
        });
        let found = d.scannable_pickings();
        assert!(found.len() > 400, "{} pickings", found.len());
        for (p, codes) in &found {
            assert!(matches!(
                p.state,
                PickingState::Assigned | PickingState::Confirmed | PickingState::Waiting
            ));
            let kind = d.picking_types.iter().find(|t| t.id == p.picking_type_id);
            assert_ne!(kind.map(|t| t.code), Some(PickingCode::Incoming));
            assert!(!codes.is_empty());
            let unique: HashSet<_> = codes.iter().collect();
            assert_eq!(unique.len(), codes.len(), "each code once");
            for code in codes {
                let product = d
                    .products
                    .iter()
                    .find(|pr| {
                        pr.barcode.as_ref() == Some(code)
                            || (pr.barcode.is_none() && pr.default_code.as_ref() == Some(code))
                    })
                    .unwrap();
                assert!(product.active && product.tracking == Tracking::None);
                assert!(d.moves.iter().any(|m| m.picking_id == Some(p.id)
                    && m.product_id == product.id
                    && m.state != MoveState::Cancel));
            }
        }
    }

    #[test]
    fn same_seed_same_data_and_unique_keys() {
        let spec = DatasetSpec {
            seed: 42,
            products: 500,
            quants: 3000,
            pickings: 60,
        };
        let a = Dataset::generate(&spec);
        let b = Dataset::generate(&spec);
        assert_eq!(a.quants, b.quants);
        assert_eq!(a.moves, b.moves);
        assert_eq!(a.quants.len(), 3000);
        let keys: HashSet<_> = a
            .quants
            .iter()
            .map(|q| {
                (
                    q.product_id,
                    q.location_id,
                    q.lot_name.clone(),
                    q.package_id,
                )
            })
            .collect();
        assert_eq!(keys.len(), a.quants.len(), "quant keys are unique");
        let barcodes: Vec<_> = a
            .products
            .iter()
            .filter_map(|p| p.barcode.clone())
            .collect();
        let unique: HashSet<_> = barcodes.iter().collect();
        assert_eq!(unique.len(), barcodes.len(), "barcodes are unique");
        for q in &a.quants {
            assert!(q.reserved <= q.quantity, "{q:?}");
        }
    }
}
