#!/usr/bin/env bash
# Runs the whole test suite: unit, property, crash and end-to-end tests.
# Installs the system packages the tests need first, so a fresh machine needs no manual steps.
set -euo pipefail
cd "$(dirname "$0")/.."

# Browser tests drive headless Chromium through chromedriver (W3C WebDriver over HTTP).
# Debian's packages: `chromium` (/usr/bin/chromium) and `chromium-driver` (/usr/bin/chromedriver).
# The MQTT scanner tests also run against Mosquitto, the broker sites use (`mosquitto`,
# /usr/sbin/mosquitto, started by the tests on loopback ports; its service is not needed).
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
# The metrics tests check the shipped alerting rules with promtool and let a real Prometheus
# scrape the appliance: Debian's `prometheus` (/usr/bin/promtool, /usr/bin/prometheus; its
# service is not needed).
{ [ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ]; } || missing+=(prometheus)
# axe-core (the console's accessibility test) is fetched from the npm registry with curl and
# checked with openssl against its published hash (scripts/axe.sh).
command -v curl >/dev/null || missing+=(curl)
# The shipped systemd units are checked offline (scripts/check-units.sh): Debian's `systemd`
# for systemd-analyze (nothing is started).
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "test.sh: installing ${missing[*]} for the browser, broker and metrics tests" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
    if ! { $sudo apt-get update -q &&
        $sudo env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}"; }; then
        if [ "${CI:-}" = "true" ]; then
            echo "test.sh: ERROR: could not install ${missing[*]}" >&2
            exit 1
        fi
        # Locally, run the rest anyway; the tests that need them say what is missing.
        echo "test.sh: WARNING: ${missing[*]} not installed; the tests that need them will skip or fail" >&2
    fi
fi

if ! scripts/axe.sh; then
    if [ "${CI:-}" = "true" ]; then
        echo "test.sh: ERROR: could not fetch axe-core" >&2
        exit 1
    fi
    echo "test.sh: WARNING: no axe-core; the accessibility test will skip" >&2
fi

# The units: `verify` clean, and each service's exposure at 2.0 or less.
scripts/check-units.sh

exec cargo test --workspace --locked "$@"
