#!/usr/bin/env bash
# The image's proofs (firmware-images/test/proofs.py) on a freshly built image: boot,
# update, rollback and power cut in a QEMU machine under software emulation. Run by .ci/run
# after scripts/deb.sh (whose package the image installs); as root.
#
#   firmware-images/test.sh [x86_64|arm64] [proofs.py options, e.g. --only boot]
#
# For arm64 (opt-in: HOLDFAST_IMAGE_ARM64=1 in .ci/run) the image is built (without a
# package unless HOLDFAST_ARM64_DEB names one) and booted to multi-user only.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-x86_64}
shift || true
out=${HOLDFAST_IMAGE_OUT:-target/images}
step() { echo "image test: $*" >&2; }

case "$arch" in
x86_64) tools=(qemu-system-x86 ovmf) ;;
arm64) tools=(qemu-system-arm qemu-efi-aarch64) ;;
*) echo "usage: $0 [x86_64|arm64] [proofs.py options]" >&2; exit 2 ;;
esac
tools+=(mtools dosfstools fdisk rauc squashfs-tools e2fsprogs python3)
missing=()
for pkg in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]}"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2
fi

SECONDS=0
firmware-images/test/backend.sh
if [ "$arch" = x86_64 ]; then
    deb=$(find target/debian -name 'holdfast_*_amd64.deb' -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-)
    [ -n "$deb" ] || { step "no package: scripts/deb.sh first"; exit 1; }
    # Two tries per updated slot keep the rollback proof to three boots (sites get three).
    firmware-images/build.sh x86_64 "$out" --deb "$deb" --boot-tries 2
    step "image built in ${SECONDS}s"
    # The simulator runs on the host from the packaged binary (the same build the image has).
    host=$(mktemp -d)
    trap 'rm -rf "$host"' EXIT
    dpkg-deb -x "$deb" "$host"
    python3 firmware-images/test/proofs.py --out "$out" --holdfast "$host/usr/bin/holdfast" "$@"
else
    args=()
    if [ -n "${HOLDFAST_ARM64_DEB:-}" ]; then args=(--deb "$HOLDFAST_ARM64_DEB"); fi
    firmware-images/build.sh arm64 "$out" "${args[@]}"
    step "image built in ${SECONDS}s"
    python3 firmware-images/test/proofs.py --out "$out" --arch arm64 --only multi-user "$@"
fi
step "done in ${SECONDS}s"
