#!/bin/sh
# mmdebstrap essential hook (build.sh): before the image's packages are installed.
# - The appliance's user and group get fixed ids, the same in every build: both root slots
#   share the data partition, whose files they own (the package's sysusers entry then finds
#   the user there and leaves it).
# - The initramfs: compressed with zstd, no resume device.
set -eu
root=$1
id=990
grep -q '^holdfast:' "$root/etc/group" || echo "holdfast:x:$id:" >>"$root/etc/group"
[ ! -e "$root/etc/gshadow" ] || grep -q '^holdfast:' "$root/etc/gshadow" || echo "holdfast:!::" >>"$root/etc/gshadow"
grep -q '^holdfast:' "$root/etc/passwd" ||
    echo "holdfast:x:$id:$id:Holdfast appliance:/var/lib/holdfast:/usr/sbin/nologin" >>"$root/etc/passwd"
[ ! -e "$root/etc/shadow" ] || grep -q '^holdfast:' "$root/etc/shadow" || echo "holdfast:!*:19000::::::" >>"$root/etc/shadow"
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf 'COMPRESS=zstd\nRESUME=none\n' >"$root/etc/initramfs-tools/conf.d/holdfast-image"
