#!/usr/bin/env bash
# Runs the whole test suite: unit, property, crash and end-to-end tests.
# Installs nothing today; tests that need system packages (a browser, a broker) will have
# them installed here, so a fresh machine needs no manual steps.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace --locked "$@"
