#!/bin/sh
# mmdebstrap customize hook (build.sh): the Holdfast package and the image's own files
# (firmware-images/rootfs), then the settings a read-only, A/B-updated root needs.
set -eu
root=$1
in_root() { chroot "$root" "$@"; }

if [ -n "${HOLDFAST_DEB:-}" ]; then
    cp "$HOLDFAST_DEB" "$root/tmp/holdfast.deb"
    DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -q --no-install-recommends /tmp/holdfast.deb
    rm -f "$root/tmp/holdfast.deb"
    holdfast_version=$(in_root dpkg-query -W -f="\${Version}" holdfast)
else
    holdfast_version=none
fi

cp -a "$HOLDFAST_IMAGE_FILES/." "$root/"
sed -i "s/@COMPATIBLE@/holdfast-$HOLDFAST_ARCH/" "$root/etc/rauc/system.conf"
cp "$HOLDFAST_KEYRING" "$root/etc/rauc/keyring.pem"
cat >"$root/usr/lib/holdfast-image/release" <<EOR
IMAGE_VERSION=$HOLDFAST_IMAGE_VERSION
IMAGE_ARCH=$HOLDFAST_ARCH
HOLDFAST_VERSION=$holdfast_version
BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOR
cat >"$root/usr/lib/holdfast-image/image.conf" <<EOR
# Tries an updated slot gets before systemd-boot falls back to the other one.
BOOT_TRIES=$HOLDFAST_BOOT_TRIES
# How long the boot's health check waits for the appliance to be ready.
HEALTH_SECS=180
EOR
mkdir -p "$root/usr/share/doc/holdfast-image"
cp "$HOLDFAST_IMAGE_FILES/../README.md" "$root/usr/share/doc/holdfast-image/README.md"

# Mount points; the bound directories exist in the image too (the seed copies from them).
mkdir -p "$root/data" "$root/boot/efi" "$root/etc/holdfast" "$root/var/lib/holdfast"
# A transient machine id each boot (the root is read-only); nothing asks for one at boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo holdfast >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tholdfast\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# (The package enabled holdfast.service and holdfast-backup.timer.)
in_root systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
    holdfast-health.service holdfast-provision.service
# First-boot prompts would wait forever on a console nobody watches; apt's timers have no
# writable root to work on.
in_root systemctl mask systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer e2scrub_reap.service
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
rm -rf "$root/var/cache/apt/"*.bin "$root/var/lib/apt/lists/"* "$root/tmp/"*
