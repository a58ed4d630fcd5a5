#!/usr/bin/env bash
# Makes a signed RAUC update bundle (verity format) of a root slot from the root tree that
# build.sh left in OUT, stamped with a new image version.
#
#   firmware-images/bundle.sh x86_64|arm64 OUT VERSION BUNDLE.raucb [--overlay DIR]
#
#   --overlay DIR   files laid over the root tree first (e.g. a newer usr/bin/holdfast)
#
# Signed with OUT/keys/signing.{key,cert}.pem, the key the image trusts. Install on an
# appliance with `rauc install BUNDLE.raucb`, then reboot (firmware-images/README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 4 ] || { sed -n '5,8p' "$0" >&2; exit 2; }
arch=$1
out=$(realpath "$2")
version=$3
bundle=$4
shift 4
overlay=""
while [ $# -gt 0 ]; do
    case "$1" in
    --overlay) overlay=$(realpath "$2"); shift 2 ;;
    *) echo "bundle.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
fail() { echo "bundle.sh: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (the root tree's owners)"
root=$out/root-$arch
[ -d "$root" ] || fail "no root tree $root: run build.sh $arch $out first"
[[ "$version" =~ ^[A-Za-z0-9.+~_-]+$ ]] || fail "version '$version': letters, digits and .+~_- only"
if ! command -v rauc >/dev/null || ! command -v mksquashfs >/dev/null; then
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends rauc squashfs-tools; } >&2 || fail "could not install rauc squashfs-tools"
fi
# shellcheck source=SCRIPTDIR/layout.sh
. "$here/layout.sh"

SECONDS=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a "$root" "$work/root"
sed -i "s/^IMAGE_VERSION=.*/IMAGE_VERSION=$version/; s/^BUILT=.*/BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)/" \
    "$work/root/usr/lib/holdfast-image/release"
if [ -n "$overlay" ]; then cp -a "$overlay/." "$work/root/"; fi
mkdir "$work/bundle"
"$here/mkroot.sh" "$work/root" "$work/bundle/rootfs.ext4" "$slot_mib"
rm -rf "$work/root"
cat >"$work/bundle/manifest.raucm" <<EOM
[update]
compatible=holdfast-$arch
version=$version
description=Holdfast appliance image $version ($arch)

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
EOM
rm -f "$bundle"
# zstd at a low level: a third of gzip's time for about the same size (Debian's kernel reads it).
rauc bundle --cert="$out/keys/signing.cert.pem" --key="$out/keys/signing.key.pem" \
    --mksquashfs-args="-comp zstd -Xcompression-level 3" \
    "$work/bundle" "$bundle" >&2 || fail "rauc bundle"
echo "bundle.sh: $bundle ($version, $(du -h "$bundle" | cut -f1)) in ${SECONDS}s" >&2
