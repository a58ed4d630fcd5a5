//! Names the build for `holdfast --version`: the commit and the build date, as
//! `HOLDFAST_COMMIT` and `HOLDFAST_BUILD_DATE` for `env!`.
//!
//! The commit comes from `git` when the source is a checkout (`-dirty` when it has changes),
//! else from `HOLDFAST_COMMIT` in the environment (a source tarball's build), else `unknown`.
//! The date is `SOURCE_DATE_EPOCH`'s when set (reproducible builds, Debian's packaging), else
//! today's (UTC).

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Days since 1970-01-01 as a civil date (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn main() {
    println!("cargo:rerun-if-env-changed=HOLDFAST_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit, a checkout or a change to the index names a new build.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        for file in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={dir}/{file}");
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])
        .map(|c| {
            let dirty = Command::new("git")
                .args(["diff-index", "--quiet", "HEAD", "--"])
                .status()
                .is_ok_and(|s| !s.success());
            if dirty { format!("{c}-dirty") } else { c }
        })
        .or_else(|| std::env::var("HOLDFAST_COMMIT").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    let (y, m, d) = civil(secs.div_euclid(86_400));
    println!("cargo:rustc-env=HOLDFAST_COMMIT={commit}");
    println!("cargo:rustc-env=HOLDFAST_BUILD_DATE={y:04}-{m:02}-{d:02}");
}
