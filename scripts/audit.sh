#!/usr/bin/env bash
# Checks Cargo.lock and fuzz/Cargo.lock against the RustSec advisory database.
#   scripts/audit.sh                 fetches the current database (needs github.com)
#   scripts/audit.sh DIR             uses a database snapshot in DIR, offline
# Deliberate exceptions, each with its reason, are in .cargo/audit.toml.
# Installs cargo-audit under target/tools when it is not on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

tool=cargo-audit
if ! command -v cargo-audit >/dev/null; then
    tool=target/tools/bin/cargo-audit
    if [ ! -x "$tool" ]; then
        echo "audit.sh: installing cargo-audit into target/tools" >&2
        cargo install --locked cargo-audit --version 0.22.2 --root target/tools
    fi
fi

args=()
if [ $# -ge 1 ]; then
    args=(--db "$1" --no-fetch --stale)
fi
"$tool" audit "${args[@]}"
"$tool" audit "${args[@]}" --file fuzz/Cargo.lock
