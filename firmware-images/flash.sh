#!/usr/bin/env bash
# Writes the image to an appliance's disk (or a disk image file) and gives the data
# partition the rest of the disk: the GPT's backup header moved to the disk's end, the last
# partition grown to it. Its file system grows to fill it at the first mount
# (x-systemd.growfs in the image's /etc/fstab). Everything happens before the first boot,
# with nothing mounted.
#
#   firmware-images/flash.sh IMAGE DEVICE_OR_FILE
#
# A file is written sparse and keeps its size when it is larger than the image (make it
# with `truncate -s 64G disk.img` first).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '8,9p' "$0" >&2; exit 2; }
image=$1
target=$2
fail() { echo "flash.sh: FAIL: $*" >&2; exit 1; }
[ -f "$image" ] || fail "no image $image"
command -v sfdisk >/dev/null || fail "sfdisk (Debian's fdisk) is needed"
if [ -b "$target" ]; then
    size=$(blockdev --getsize64 "$target")
    if grep -q "^$target" /proc/mounts || grep -q "^${target}p\?[0-9]" /proc/mounts; then
        fail "$target or one of its partitions is mounted"
    fi
    dd if="$image" of="$target" bs=4M conv=fsync status=progress
else
    dd if="$image" of="$target" bs=4M conv=notrunc,sparse status=none
    size=$(stat -c %s "$target")
fi
[ "$size" -ge "$(stat -c %s "$image")" ] || fail "$target ($size bytes) is smaller than the image"
sfdisk --quiet --relocate gpt-bak-std "$target"
echo ", +" | sfdisk --quiet --no-reread --no-tell-kernel -N 4 "$target" >/dev/null
data=$(sfdisk -J "$target" | python3 -c "import json,sys; p=json.load(sys.stdin)['partitiontable']['partitions'][3]; print(p['size'] // 2048)")
echo "flash.sh: $image written to $target; the data partition has ${data} MiB" >&2
if [ -b "$target" ]; then
    blockdev --rereadpt "$target" 2>/dev/null || true
fi
