//! Hot rows of the mirror kept in memory: what a barcode stands for, a picking's mirror side
//! (header, moves with their products and bins, reserved lines), products, locations, the
//! location tree, and the rows per mirrored table (status figures).
//!
//! Every commit drops each reader's SQLite page cache (a WAL reader cannot keep pages across
//! another connection's commit), and the floor commits with every scan, so each scan would
//! read again from the file every page its lookups touch: resolving one barcode alone probes
//! eight indexes (product barcode and internal reference, packaging, location, lot, package,
//! picking, operation type), and a pick reads its picking's moves twice (the step and the
//! prompt).
//!
//! The mirror changes only when a pull writes it, and each such write bumps
//! `mirror_generation.n` in the same transaction ([`super::mirror::apply`]). A reader reads
//! the generation in its own snapshot and uses an entry only if it was read at that same
//! generation, so an answer from memory is exactly what its snapshot holds: a reader on an
//! older snapshot than the cache's finds no entry for its generation and reads SQLite (and
//! keeps nothing), a newer generation clears the cache. Another process writing the mirror
//! (a pull from the command line) bumps the same row. What the journal adds (picked totals,
//! on hand) is never kept here: it changes with every scan and is read from the snapshot.
//! Absent rows and unknown codes are kept too; each map holds at most [`MAX_ENTRIES`] keys
//! and starts over when full.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use super::read::{BarcodeHit, LocationInfo, PickingMirror, ProductInfo};

/// Keys kept per map and generation before the map starts over (a site's products, bins and
/// open pickings fit; a scanner fed random codes cannot grow it without bound).
pub(super) const MAX_ENTRIES: usize = 50_000;

/// The store's in-memory copy of hot mirror rows (one per store, shared by its readers).
#[derive(Debug, Default)]
pub(super) struct HotRows {
    state: Mutex<Generation>,
}

/// What was read from the mirror at one generation.
#[derive(Debug, Default)]
pub(super) struct Generation {
    /// The `mirror_generation.n` these entries were read at.
    n: i64,
    pub barcodes: Kept<String, Vec<BarcodeHit>>,
    pub pickings: Kept<i64, Option<Arc<PickingMirror>>>,
    pub products: Kept<i64, Option<ProductInfo>>,
    pub locations: Kept<i64, Option<LocationInfo>>,
    /// (location, ancestor) → whether the location lies at or below the ancestor.
    pub within: Kept<(i64, i64), bool>,
    /// Rows per mirrored table (status figures).
    pub mirror_counts: Option<BTreeMap<String, i64>>,
}

impl Generation {
    fn clear(&mut self) {
        self.barcodes.0.clear();
        self.pickings.0.clear();
        self.products.0.clear();
        self.locations.0.clear();
        self.within.0.clear();
        self.mirror_counts = None;
    }
}

/// One kind of row, by key.
#[derive(Debug)]
pub(super) struct Kept<K, V>(HashMap<K, V>);

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Kept(HashMap::new())
    }
}

impl<K: Eq + Hash, V: Clone> Kept<K, V> {
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.0.get(key).cloned()
    }

    pub fn keep(&mut self, key: K, value: V) {
        if self.0.len() >= MAX_ENTRIES {
            self.0.clear();
        }
        self.0.insert(key, value);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl HotRows {
    fn state(&self) -> std::sync::MutexGuard<'_, Generation> {
        // Entries are inserted whole; a panic elsewhere while holding the lock leaves them valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `get` finds among the rows read at generation `n` (none from another generation).
    pub(super) fn get<T>(&self, n: i64, get: impl FnOnce(&Generation) -> Option<T>) -> Option<T> {
        let state = self.state();
        if state.n != n {
            return None;
        }
        get(&state)
    }

    /// Keeps rows read in a snapshot at generation `n`.
    pub(super) fn keep(&self, n: i64, keep: impl FnOnce(&mut Generation)) {
        let mut state = self.state();
        if n > state.n {
            state.n = n;
            state.clear();
        }
        // An older snapshot's rows are not kept: newer readers must not see them.
        if n == state.n {
            keep(&mut state);
        }
    }

    /// The generation held and the number of codes (for tests).
    #[cfg(test)]
    pub(super) fn barcodes_held(&self) -> (i64, usize) {
        let state = self.state();
        (state.n, state.barcodes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: i64) -> Vec<BarcodeHit> {
        vec![BarcodeHit::Product {
            id,
            name: format!("P{id}"),
        }]
    }

    fn keep(hot: &HotRows, n: i64, code: &str, hits: Vec<BarcodeHit>) {
        hot.keep(n, |g| g.barcodes.keep(code.to_owned(), hits));
    }

    fn get(hot: &HotRows, n: i64, code: &str) -> Option<Vec<BarcodeHit>> {
        hot.get(n, |g| g.barcodes.get(code))
    }

    #[test]
    fn an_entry_serves_only_its_own_generation() {
        let hot = HotRows::default();
        keep(&hot, 3, "A", product(1));
        hot.keep(3, |g| g.within.keep((1, 2), true));
        assert_eq!(get(&hot, 3, "A"), Some(product(1)));
        assert_eq!(get(&hot, 2, "A"), None, "an older snapshot reads SQLite");
        assert_eq!(get(&hot, 4, "A"), None, "a newer snapshot reads SQLite");
        // An older snapshot's answer is not kept over the newer generation's.
        keep(&hot, 2, "A", product(9));
        assert_eq!(get(&hot, 3, "A"), Some(product(1)));
        // A newer generation starts over, every kind of row.
        keep(&hot, 4, "B", product(2));
        assert_eq!(get(&hot, 4, "A"), None);
        assert_eq!(hot.get(4, |g| g.within.get(&(1, 2))), None);
        assert_eq!(hot.barcodes_held(), (4, 1));
    }

    /// Only `mirror.rs` writes the mirror's tables, and it bumps the generation with what it
    /// writes: a statement writing one anywhere else would leave readers answering from
    /// memory what the database no longer says.
    #[test]
    fn only_the_mirror_module_writes_mirror_tables() {
        const TABLES: &[&str] = &[
            "company",
            "warehouse",
            "partner",
            "product",
            "packaging",
            "lot",
            "location",
            "package",
            "quant",
            "picking_type",
            "picking",
            "move",
            "move_line",
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // The mirror itself, the migrations and the tests that build mirrors by hand.
            if ["mirror.rs", "schema.rs", "tests.rs"].contains(&name.as_str()) {
                continue;
            }
            let sql = std::fs::read_to_string(&path).unwrap().to_lowercase();
            let words: Vec<&str> = sql
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .collect();
            for (i, w) in words.iter().enumerate() {
                let target = match (*w, words.get(i + 1), words.get(i + 2)) {
                    ("into" | "update", Some(t), _) => Some(*t),
                    ("delete", Some(&"from"), Some(t)) => Some(*t),
                    _ => None,
                };
                if let Some(t) = target {
                    assert!(
                        !TABLES.contains(&t),
                        "{name} writes the mirror table {t}: only mirror.rs may (it bumps mirror_generation)"
                    );
                }
            }
            checked += 1;
        }
        assert!(checked > 5, "the store's modules were not found in {dir:?}");
    }

    #[test]
    fn a_map_starts_over_when_full() {
        let hot = HotRows::default();
        for i in 0..MAX_ENTRIES {
            keep(&hot, 0, &format!("C{i}"), Vec::new());
        }
        assert_eq!(hot.barcodes_held(), (0, MAX_ENTRIES));
        keep(&hot, 0, "one more", Vec::new());
        assert_eq!(hot.barcodes_held(), (0, 1));
        assert_eq!(get(&hot, 0, "one more"), Some(Vec::new()));
    }
}
