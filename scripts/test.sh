#!/usr/bin/env bash
# Runs the whole test suite: unit, property, crash and end-to-end tests.
# Installs the system packages the tests need first, so a fresh machine needs no manual steps.
set -euo pipefail
cd "$(dirname "$0")/.."

# Browser tests drive headless Chromium through chromedriver (W3C WebDriver over HTTP).
# Debian's packages: `chromium` (/usr/bin/chromium) and `chromium-driver` (/usr/bin/chromedriver).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "test.sh: installing chromium and chromium-driver for the browser tests" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
    if ! { $sudo apt-get update -q &&
        $sudo env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends chromium chromium-driver; }; then
        if [ "${CI:-}" = "true" ]; then
            echo "test.sh: ERROR: could not install chromium/chromium-driver (browser tests)" >&2
            exit 1
        fi
        # Locally, run the rest anyway; the browser tests will say what is missing.
        echo "test.sh: WARNING: no chromium/chromium-driver; browser tests will fail" >&2
    fi
fi

exec cargo test --workspace --locked "$@"
