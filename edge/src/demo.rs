//! The built-in demo warehouse: a data directory with a config and a store seeded from the
//! deterministic demo data set, so a new user sees a working appliance with one command.
//!
//! Until the Odoo simulator exists the demo seeds the mirror directly; once it does, the
//! demo pulls the same data set from a simulator running in-process.

use std::path::{Path, PathBuf};

use anyhow::Context;
use holdfast_sync::dataset::{Dataset, DatasetSpec};

use crate::store::{MirrorBatch, Store};

/// Records per seeding transaction: large enough to be quick, small enough to keep the
/// writer responsive.
const SEED_PAGE: usize = 5_000;

/// The data directory `holdfast demo` uses when none is given. Kept after exit so the
/// journal can be inspected.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("holdfast-demo")
}

/// Writes the demo's config into `dir` (once) and returns its path.
pub fn write_config(dir: &Path, listen: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("holdfast.toml");
    let text = format!(
        "# Written by holdfast demo.\n[site]\nid = \"demo\"\nname = \"Demo warehouse\"\n\n[store]\npath = \"{}\"\n\n[http]\nlisten = \"{listen}\"\n",
        dir.join("holdfast.db").display()
    );
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Loads the demo data set into an empty mirror; leaves a seeded one alone (the demo keeps
/// its journal across restarts). Returns the number of records written.
pub async fn seed(store: &Store) -> anyhow::Result<usize> {
    let products = store.read(|r| r.mirror_counts())?["product"];
    if products > 0 {
        return Ok(0);
    }
    let data = Dataset::generate(&DatasetSpec::demo());
    load(store, &data).await
}

/// Writes a whole data set into the mirror, page by page.
pub async fn load(store: &Store, data: &Dataset) -> anyhow::Result<usize> {
    let mut records = data.records().peekable();
    let mut n = 0;
    while records.peek().is_some() {
        let page: Vec<_> = records.by_ref().take(SEED_PAGE).collect();
        n += page.len();
        store
            .apply_mirror(MirrorBatch {
                epoch: None,
                upserts: page,
                deletes: vec![],
            })
            .await
            .context("seeding the demo mirror")?;
    }
    Ok(n)
}
