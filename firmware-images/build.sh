#!/usr/bin/env bash
# Builds the appliance's bootable disk image: Debian (mmdebstrap) with the Holdfast package,
# systemd-boot with boot counting, two read-only root slots (A and B) updated by RAUC, and a
# data partition for what survives updates. No loop devices and no mounts: the file systems
# are made from directories (mkfs.ext4 -d, mkfs.vfat + mtools) and laid into a GPT (sfdisk).
#
#   firmware-images/build.sh x86_64|arm64 OUT [--deb FILE] [--version V] [--boot-tries N]
#
#   --deb FILE        the holdfast .deb to install (default for x86_64: scripts/deb.sh's
#                     newest package, built when missing; for arm64 there is no default: see
#                     firmware-images/README.md, "arm64")
#   --version V       the image version (default: the package's version)
#   --boot-tries N    tries an updated slot gets before systemd-boot falls back (default 3)
#
# Writes OUT/holdfast-ARCH.img (raw GPT disk), OUT/root-ARCH/ (the root tree, which
# bundle.sh makes update bundles from) and, on first use, OUT/keys/ (a development signing
# key and certificate, which the image trusts; give your own in OUT/keys before building for
# a fleet). Needs root (mmdebstrap's root mode) and installs the Debian tools it uses when
# missing. Environment: HOLDFAST_IMAGE_SUITE (bookworm), HOLDFAST_IMAGE_MIRROR.
set -euo pipefail
main() {
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

usage() {
    sed -n '6,13p' "$0" >&2
    exit 2
}
[ $# -ge 2 ] || usage
arch=$1
out=$2
shift 2
deb=""
version=""
tries=3
while [ $# -gt 0 ]; do
    case "$1" in
    --deb) deb=$(realpath "$2"); shift 2 ;;
    --version) version=$2; shift 2 ;;
    --boot-tries) tries=$2; shift 2 ;;
    *) usage ;;
    esac
done
suite=${HOLDFAST_IMAGE_SUITE:-bookworm}
mirror=${HOLDFAST_IMAGE_MIRROR:-http://deb.debian.org/debian}

step() { echo "build.sh: $*" >&2; }
fail() {
    echo "build.sh: FAIL: $*" >&2
    exit 1
}

# --- The architecture's names.
case "$arch" in
x86_64)
    debarch=amd64 efi=systemd-bootx64.efi removable=BOOTX64.EFI
    root_type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709 console=ttyS0,115200
    ;;
arm64)
    debarch=arm64 efi=systemd-bootaa64.efi removable=BOOTAA64.EFI
    root_type=b921b045-1df0-41c3-af44-4c6f280d3fae console=ttyAMA0,115200
    ;;
*) usage ;;
esac
[[ "$tries" =~ ^[1-9]$ ]] || fail "--boot-tries is 1 to 9, not $tries"
[ "$(id -u)" = 0 ] || fail "run as root (mmdebstrap's root mode, and the root tree's owners)"

# --- Tools (Debian's packages), installed when missing.
need=()
for tool in mmdebstrap:mmdebstrap sfdisk:fdisk mkfs.vfat:dosfstools mcopy:mtools \
    mkfs.ext4:e2fsprogs openssl:openssl; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
foreign=""
if [ "$arch" != "$(uname -m | sed 's/aarch64/arm64/')" ]; then
    # The root's maintainer scripts run through qemu-user, registered with binfmt_misc.
    foreign=qemu-${arch/arm64/aarch64}
    command -v "$foreign-static" >/dev/null || need+=(qemu-user-static binfmt-support)
    command -v arch-test >/dev/null || need+=(arch-test)
fi
if [ "${#need[@]}" -gt 0 ]; then
    step "installing ${need[*]}"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${need[@]}"; } >&2 || fail "could not install ${need[*]}"
fi
if [ -n "$foreign" ] && [ ! -e "/proc/sys/fs/binfmt_misc/$foreign" ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
        fail "binfmt_misc is not available: a $arch root cannot be made on this $(uname -m) host"
    update-binfmts --enable "$foreign" >&2 || true
    [ -e "/proc/sys/fs/binfmt_misc/$foreign" ] || fail "$foreign is not registered with binfmt_misc"
fi

# --- The package.
if [ -z "$deb" ]; then
    if [ "$arch" = x86_64 ]; then
        deb=$(find "$repo/target/debian" -name 'holdfast_*_amd64.deb' -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-)
        if [ -z "$deb" ]; then
            step "no package yet: scripts/deb.sh"
            "$repo/scripts/deb.sh" >&2
            deb=$(find "$repo/target/debian" -name 'holdfast_*_amd64.deb' -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2-)
        fi
    else
        cat >&2 <<EOF
build.sh: ################################################################################
build.sh: WARNING: no --deb for arm64: this image has NO HOLDFAST in it. It boots to
build.sh: multi-user and takes updates, but serves nothing. Build the arm64 package first
build.sh: (firmware-images/README.md, "arm64") and pass it with --deb.
build.sh: ################################################################################
EOF
    fi
fi
if [ -n "$deb" ]; then
    deb_arch=$(dpkg-deb -f "$deb" Architecture)
    [ "$deb_arch" = "$debarch" ] || fail "$deb is for $deb_arch, the image is $debarch"
    version=${version:-$(dpkg-deb -f "$deb" Version)}
fi
version=${version:-0.0.0}

mkdir -p "$out"
out=$(realpath "$out")
root=$out/root-$arch
img=$out/holdfast-$arch.img

# --- The signing key the image trusts (a development one unless OUT/keys has the fleet's).
keys=$out/keys
if [ ! -e "$keys/signing.cert.pem" ]; then
    step "no signing key in $keys: making a development one (never ship it to a fleet)"
    mkdir -p "$keys"
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -keyout "$keys/signing.key.pem" \
        -out "$keys/signing.cert.pem" -subj "/O=Holdfast development/CN=holdfast-update-signing" 2>/dev/null
    chmod 0600 "$keys/signing.key.pem"
fi

# --- The root tree: Debian, the package, the image's own files.
SECONDS=0
rm -rf "$root"
packages=systemd,systemd-sysv,systemd-boot,systemd-resolved,systemd-timesyncd,udev,dbus,kmod
packages+=,linux-image-$debarch,initramfs-tools,zstd,rauc,e2fsprogs,ca-certificates,curl
packages+=,iproute2,qemu-guest-agent
step "mmdebstrap $suite $debarch ($mirror)"
export HOLDFAST_DEB=$deb HOLDFAST_IMAGE_VERSION=$version HOLDFAST_ARCH=$arch HOLDFAST_BOOT_TRIES=$tries
export HOLDFAST_KEYRING=$keys/signing.cert.pem HOLDFAST_IMAGE_FILES=$here/rootfs
mmdebstrap --mode=root --variant=apt --arch="$debarch" --components=main \
    --include="$packages" \
    --essential-hook="$here/hooks/essential.sh" \
    --customize-hook="$here/hooks/customize.sh" \
    "$suite" "$root" "$mirror" >&2 ||
    fail "mmdebstrap"
root_secs=$SECONDS
step "root tree in ${root_secs}s: $(du -sh "$root" | cut -f1)"

# --- The disk: ESP, root A, root B, data.
# shellcheck source=SCRIPTDIR/layout.sh
. "$here/layout.sh"
slot_img=$out/rootfs-$arch.ext4
"$here/mkroot.sh" "$root" "$slot_img" "$slot_mib"

total_mib=$((1 + esp_mib + 2 * slot_mib + data_mib + 1))
rm -f "$img"
truncate -s "${total_mib}M" "$img"
sfdisk -q "$img" <<EOF
label: gpt
start=1MiB, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
size=${slot_mib}MiB, type=$root_type, name=holdfast-root-a
size=${slot_mib}MiB, type=$root_type, name=holdfast-root-b
size=${data_mib}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=holdfast-data
EOF
partuuid() { sfdisk --part-uuid "$img" "$1" | tr '[:upper:]' '[:lower:]'; }
start_mib() { sfdisk -J "$img" | python3 -c "import json,sys; print(json.load(sys.stdin)['partitiontable']['partitions'][$1 - 1]['start'] // 2048)"; }

# The ESP: systemd-boot at the removable path (no firmware boot entry needed), both slots'
# kernels, their entries (blessed, A primary), and the kernel options every entry shares.
esp_tree=$out/esp-$arch
rm -rf "$esp_tree"
mkdir -p "$esp_tree/EFI/BOOT" "$esp_tree/loader/entries" "$esp_tree/holdfast/a" "$esp_tree/holdfast/b"
cp "$root/usr/lib/systemd/boot/efi/$efi" "$esp_tree/EFI/BOOT/$removable"
cat >"$esp_tree/loader/loader.conf" <<EOF
timeout 0
editor no
auto-entries no
auto-firmware no
random-seed-mode off
EOF
echo "console=tty0 console=$console panic=10" >"$esp_tree/holdfast/cmdline"
for slot in a b; do
    cp -L "$root/vmlinuz" "$esp_tree/holdfast/$slot/vmlinuz"
    cp -L "$root/initrd.img" "$esp_tree/holdfast/$slot/initrd.img"
    echo "$version" >"$esp_tree/holdfast/$slot/version"
done
HOLDFAST_ESP=$esp_tree HOLDFAST_PARTUUID_A=$(partuuid 2) HOLDFAST_PARTUUID_B=$(partuuid 3) \
    sh "$here/rootfs/usr/lib/holdfast-image/boot-backend" factory
esp_img=$out/esp-$arch.vfat
rm -f "$esp_img"
mkfs.vfat -F 32 -n ESP -C "$esp_img" $((esp_mib * 1024)) >/dev/null
mcopy -s -i "$esp_img" "$esp_tree"/* ::/

data_img=$out/data-$arch.ext4
rm -f "$data_img"
mkfs.ext4 -q -L holdfast-data "$data_img" "${data_mib}M"

dd if="$esp_img" of="$img" bs=1M seek="$(start_mib 1)" conv=notrunc,sparse status=none
dd if="$slot_img" of="$img" bs=1M seek="$(start_mib 2)" conv=notrunc,sparse status=none
dd if="$slot_img" of="$img" bs=1M seek="$(start_mib 3)" conv=notrunc,sparse status=none
dd if="$data_img" of="$img" bs=1M seek="$(start_mib 4)" conv=notrunc,sparse status=none
rm -f "$esp_img" "$data_img"

step "built $img in ${SECONDS}s (root tree ${root_secs}s): version $version, $(du -h --apparent-size "$img" | cut -f1) disk, $(du -h "$img" | cut -f1) allocated"
step "slot image $slot_img: $(du -h "$slot_img" | cut -f1) allocated; root tree $(du -sh "$root" | cut -f1)"
[ -n "$deb" ] || step "WARNING: this image has no Holdfast package in it (see above)"
}
# The whole script is read before it runs (editing it during a build cannot change the build).
main "$@"
