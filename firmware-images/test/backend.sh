#!/usr/bin/env bash
# The boot backend's bookkeeping on a scratch ESP (no machine needed): factory entries, the
# primary under boot counting, good and bad states, and what systemd-boot's renames mean to
# RAUC. Run by firmware-images/test.sh before the image is built.
set -euo pipefail
backend=$(cd "$(dirname "$0")/.." && pwd)/rootfs/usr/lib/holdfast-image/boot-backend
esp=$(mktemp -d)
trap 'rm -rf "$esp"' EXIT
export HOLDFAST_ESP=$esp HOLDFAST_PARTUUID_A=11111111-aaaa HOLDFAST_PARTUUID_B=22222222-bbbb
fail() { echo "backend test: FAIL: $*" >&2; exit 1; }
be() { sh "$backend" "$@"; }
entries() { (cd "$esp/loader/entries" && echo *); }
expect() { [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"; }

mkdir -p "$esp/holdfast/a" "$esp/holdfast/b"
echo 1.0 >"$esp/holdfast/a/version"
echo 1.0 >"$esp/holdfast/b/version"
echo "console=ttyS0,115200" >"$esp/holdfast/cmdline"
be factory
expect "factory entries" "$(entries)" "holdfast-a.conf holdfast-b.conf"
expect "factory primary" "$(be get-primary)" a
grep -qx 'options root=PARTUUID=11111111-aaaa ro rauc.slot=a console=ttyS0,115200' "$esp/loader/entries/holdfast-a.conf" ||
    fail "slot a's options: $(grep options "$esp/loader/entries/holdfast-a.conf")"
grep -qx 'sort-key holdfast-2' "$esp/loader/entries/holdfast-b.conf" || fail "slot b is not sorted second"

# An install into b: marked bad while written, then primary on trial (copy_kernel needs a
# slot device, so the trial entry is written as set-primary writes it).
be set-state b bad
expect "b while written" "$(be get-state b)" bad
expect "entries while written" "$(entries)" "holdfast-a.conf holdfast-b+0.conf"
expect "primary while b is written" "$(be get-primary)" a
mv "$esp/loader/entries/holdfast-b+0.conf" "$esp/loader/entries/holdfast-b+3.conf"
sed -i 's/^sort-key .*/sort-key holdfast-1/' "$esp/loader/entries/holdfast-b+3.conf"
sed -i 's/^sort-key .*/sort-key holdfast-2/' "$esp/loader/entries/holdfast-a.conf"
expect "primary on trial" "$(be get-primary)" b
expect "b on trial" "$(be get-state b)" good
# systemd-boot takes tries; with none left, a boots and b is bad.
mv "$esp/loader/entries/holdfast-b+3.conf" "$esp/loader/entries/holdfast-b+0-3.conf"
expect "primary after b's tries" "$(be get-primary)" a
expect "b after its tries" "$(be get-state b)" bad
# Blessing (what systemd-bless-boot does, and RAUC's mark-good).
be set-state b good
expect "b blessed" "$(entries)" "holdfast-a.conf holdfast-b.conf"
expect "b good" "$(be get-state b)" good
expect "the primary once blessed" "$(be get-primary)" b
grep -q '^sort-key holdfast-1' "$esp/loader/entries/holdfast-b.conf" || fail "blessing lost b's sort key"
# Refusals.
if be set-state c good 2>/dev/null; then fail "slot c accepted"; fi
if be set-state a maybe 2>/dev/null; then fail "state 'maybe' accepted"; fi
echo "backend test: passed"
