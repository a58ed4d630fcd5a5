#!/usr/bin/env bash
# Supply-chain gate: cargo-deny's licence, ban, source and advisory checks (deny.toml) on the
# main workspace and on fuzz/ (its own Cargo.lock), offline.
#   scripts/deny.sh          advisories from the RustSec snapshot kept beside the repository
#                            (../shared/advisory-db)
#   scripts/deny.sh DIR      advisories from the snapshot in DIR (the same plain-file layout)
# Nothing is fetched from the advisory database's home: the snapshot is laid out where
# deny.toml's db-path expects it and cargo-deny runs with --offline. Crates themselves come
# from crates.io as for any build. Exceptions, each with its reason, are in deny.toml.
# Installs the pinned cargo-deny into ${CARGO_HOME:-$HOME/.cargo} when it is not on the PATH
# (a later run on the same machine finds it there).
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.20.2
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

deny=""
for candidate in cargo-deny "$cargo_home/bin/cargo-deny"; do
    if command -v "$candidate" >/dev/null &&
        [ "$("$candidate" --version 2>/dev/null)" = "cargo-deny $version" ]; then
        deny="$candidate"
        break
    fi
done
if [ -z "$deny" ]; then
    if command -v cargo-deny >/dev/null; then
        echo "deny.sh: $(cargo-deny --version 2>/dev/null || echo cargo-deny) on the PATH is not $version" >&2
    fi
    echo "deny.sh: installing cargo-deny $version into $cargo_home" >&2
    start=$SECONDS
    cargo install --locked cargo-deny --version "$version" --root "$cargo_home"
    echo "deny.sh: cargo-deny installed in $((SECONDS - start)) s" >&2
    deny="$cargo_home/bin/cargo-deny"
fi

# The advisory database. cargo-deny keeps each database under db-path in a directory named
# after its URL (the last path segment and a hash of the URL; this is the name for the URL in
# deny.toml under cargo-deny $version), and takes the modification time of .git/FETCH_HEAD as
# the moment it was fetched. The snapshot is plain files, so it is copied there with that
# file dated to the snapshot's own date.
snapshot="${1:-../shared/advisory-db}"
db_dir=target/advisory-dbs/advisory-db-3157b0e258782691
checks=(advisories bans licenses sources)
if [ ! -d "$snapshot/crates" ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "deny.sh: ERROR: no RustSec advisory snapshot at $snapshot (expected $snapshot/crates);" \
            "CI checks advisories against it and fetches no database" >&2
        exit 1
    fi
    echo "deny.sh: WARNING: no RustSec advisory snapshot at $snapshot; checking licences, bans and" \
        "sources only (pass the snapshot's directory to check advisories)" >&2
    checks=(bans licenses sources)
else
    rm -rf "$db_dir"
    mkdir -p "$db_dir"
    cp -R "$snapshot/." "$db_dir/"
    # The snapshot may be read-only; the copy is ours to replace next time.
    chmod -R u+w "$db_dir"
    snapshot_date=""
    if [ -f "$snapshot/SNAPSHOT" ]; then
        snapshot_date="$(grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}' "$snapshot/SNAPSHOT" | head -n 1 || true)"
        echo "deny.sh: advisories from $snapshot: $(head -n 1 "$snapshot/SNAPSHOT")" >&2
    fi
    if [ -z "$snapshot_date" ]; then
        snapshot_date="$(date -u -r "$snapshot/crates" +%Y-%m-%d)"
    fi
    mkdir -p "$db_dir/.git"
    touch -d "$snapshot_date" "$db_dir/.git/FETCH_HEAD"
    age_days=$((($(date -u +%s) - $(date -u -d "$snapshot_date" +%s)) / 86400))
    if [ "$age_days" -gt 90 ]; then
        echo "deny.sh: WARNING: the advisory snapshot is $age_days days old ($snapshot_date);" \
            "advisories published since are not checked" >&2
    fi
fi

# cargo-deny reads the crate graph with `cargo metadata --offline`: bring every locked crate
# (all platforms) from crates.io first, as a build would.
cargo fetch --locked --quiet
cargo fetch --locked --quiet --manifest-path fuzz/Cargo.toml

# Both workspaces are checked even when the first fails, so one run shows every finding.
failed=()
echo "deny.sh: main workspace" >&2
"$deny" --offline --locked --workspace check "${checks[@]}" || failed+=("main workspace")
echo "deny.sh: fuzz/" >&2
# One deny.toml serves both workspaces: an advisory ignored for a crate only the main
# workspace has is not a finding here.
"$deny" --offline --locked --workspace --manifest-path fuzz/Cargo.toml --config deny.toml \
    check --allow advisory-not-detected "${checks[@]}" || failed+=("fuzz/")
if [ "${#failed[@]}" -gt 0 ]; then
    echo "deny.sh: FAILED: ${failed[*]} (see above; exceptions go in deny.toml, each with its reason)" >&2
    exit 1
fi
