#!/usr/bin/env bash
# Checks the shipped systemd units: `systemd-analyze verify` must say nothing, and
# `systemd-analyze security` must rate each service at MAX_EXPOSURE or less (the appliance
# asks for 2.0; lower is safer). Offline: no systemd needs to run here.
#   scripts/check-units.sh        (also run by .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=2.0
units=(holdfast.service holdfast-backup.service holdfast-backup.timer)

if ! command -v systemd-analyze >/dev/null; then
    if [ "${CI:-}" = true ]; then
        echo "check-units.sh: systemd-analyze is missing (Debian package systemd)" >&2
        exit 1
    fi
    echo "check-units.sh: skipped: systemd-analyze is missing" >&2
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify checks that ExecStart= is executable: stand the binary in with /bin/true.
for unit in "${units[@]}"; do
    sed 's|/usr/bin/holdfast|/bin/true|g' "systemd/$unit" >"$work/$unit"
done
out=$(cd "$work" && systemd-analyze verify --man=no "${units[@]/#/$work/}" 2>&1 || true)
# Outside a booted systemd (a build container) verify also looks at the host's own units
# (`/` has none to see, or warns about its own); only lines naming ours count.
ours=$(printf '%s\n' "$out" | grep -E 'holdfast(-backup)?\.(service|timer)' || true)
if [ -n "$ours" ]; then
    echo "systemd-analyze verify:" >&2
    printf '%s\n' "$ours" >&2
    exit 1
fi
echo "verify: ${units[*]} clean"
for unit in holdfast.service holdfast-backup.service; do
    score=$( (systemd-analyze security --offline=yes --root=/ "$work/$unit" 2>/dev/null || true) |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] || { echo "no exposure level for $unit" >&2; exit 1; }
    echo "security: $unit exposure $score (at most $MAX_EXPOSURE)"
    awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' || {
        systemd-analyze security --offline=yes --root=/ "$work/$unit" | grep '✗' >&2
        echo "$unit: exposure $score is over $MAX_EXPOSURE" >&2
        exit 1
    }
done
