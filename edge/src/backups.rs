//! Rotated backups of the store, as the backup timer takes them (`systemd/holdfast-backup.timer`
//! runs `holdfast db backup --into DIR --keep N`): a copy by SQLite's online backup (safe
//! while the appliance runs), the copy's integrity checked before it counts, then the oldest
//! copies beyond `keep` removed. A copy that fails its check is removed and the run fails,
//! so the timer's unit shows failed and nothing good is rotated away for a bad copy.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::{self, Reader};

/// Backups this module names: `holdfast-YYYYMMDDTHHMMSSZ.db`.
const PREFIX: &str = "holdfast-";
const SUFFIX: &str = ".db";

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    pub written: PathBuf,
    pub size_bytes: u64,
    pub removed: Vec<PathBuf>,
}

/// The file name for a backup taken at `at`.
fn name(at: jiff::Timestamp) -> String {
    format!("{PREFIX}{}{SUFFIX}", at.strftime("%Y%m%dT%H%M%SZ"))
}

/// This module's backups in `dir`, oldest first (the names sort by time).
fn existing(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Copies `db` into `dir` (created 0700 if missing), checks the copy, keeps the `keep` newest.
pub fn rotate(db: &Path, dir: &Path, keep: usize) -> anyhow::Result<Rotation> {
    use std::os::unix::fs::DirBuilderExt;
    anyhow::ensure!(keep >= 1, "--keep must be at least 1");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let written = dir.join(name(jiff::Timestamp::now()));
    let conn = store::open_read_only(db)?;
    store::backup(&conn, &written)
        .with_context(|| format!("backing up to {}", written.display()))?;
    drop(conn);
    let copy = store::open_read_only(&written)?;
    let problems = Reader::new(&copy).integrity_check()?;
    drop(copy);
    if !problems.is_empty() {
        let _ = std::fs::remove_file(&written);
        anyhow::bail!(
            "the copy {} failed its integrity check ({}); it was removed and older backups kept",
            written.display(),
            problems.join("; ")
        );
    }
    let size_bytes = std::fs::metadata(&written)?.len();
    let all = existing(dir)?;
    let mut removed = Vec::new();
    for old in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_file(old).with_context(|| format!("cannot remove {}", old.display()))?;
        removed.push(old.clone());
    }
    Ok(Rotation {
        written,
        size_bytes,
        removed,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{Store, StoreOptions};

    #[tokio::test]
    async fn backups_are_checked_and_the_newest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("holdfast.db");
        let store = Store::open(StoreOptions::new(&db, "s1")).unwrap();
        let backups = dir.path().join("backups");
        // Older backups of this name pattern, and a file that is not one of them.
        std::fs::create_dir(&backups).unwrap();
        for old in [
            "holdfast-20260101T000000Z.db",
            "holdfast-20260102T000000Z.db",
        ] {
            std::fs::write(backups.join(old), b"old").unwrap();
        }
        std::fs::write(backups.join("notes.txt"), b"keep me").unwrap();
        let r = rotate(&db, &backups, 2).unwrap();
        assert!(r.size_bytes > 0);
        assert_eq!(
            r.removed,
            [backups.join("holdfast-20260101T000000Z.db")],
            "the oldest beyond keep"
        );
        let left = existing(&backups).unwrap();
        assert_eq!(left.len(), 2);
        // Only the copies and the stranger: no `-wal` / `-shm` left beside a checked copy.
        assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 3);
        assert_eq!(left[1], r.written);
        assert!(backups.join("notes.txt").exists());
        // The copy is a sound database.
        let copy = store::open_read_only(&r.written).unwrap();
        assert!(Reader::new(&copy).integrity_check().unwrap().is_empty());
        store.shutdown().await.unwrap();
        assert!(rotate(&db, &backups, 0).is_err());
    }
}
