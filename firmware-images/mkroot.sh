#!/usr/bin/env bash
# Makes a root slot's ext4 file system image from a root tree, without mounting anything.
#
#   firmware-images/mkroot.sh ROOT_TREE OUT.ext4 SIZE_MIB
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 ROOT_TREE OUT.ext4 SIZE_MIB" >&2; exit 2; }
rm -f "$2"
mkfs.ext4 -q -L holdfast-root -d "$1" "$2" "${3}M"
