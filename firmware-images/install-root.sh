#!/usr/bin/env bash
# Installs a built holdfast binary and its systemd files into a root file system tree, the
# step every appliance image recipe shares (x86_64 and arm64 alike).
#
#   firmware-images/install-root.sh BINARY ROOT
#
# BINARY is target/release/holdfast (or target/<triple>/release/holdfast); ROOT is the image's
# root directory (debootstrap, mkosi or Yocto staging). Nothing outside ROOT is touched.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY ROOT" >&2
  exit 2
fi
bin=$1
root=$2
here=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 1; }
[ -d "$root" ] || { echo "error: $root is not a directory" >&2; exit 1; }

install -D -m 0755 "$bin" "$root/usr/bin/holdfast"
install -D -m 0644 "$here/systemd/holdfast.service" "$root/usr/lib/systemd/system/holdfast.service"
install -D -m 0644 "$here/systemd/holdfast.sysusers.conf" "$root/usr/lib/sysusers.d/holdfast.conf"
install -D -m 0644 "$here/systemd/holdfast.tmpfiles.conf" "$root/usr/lib/tmpfiles.d/holdfast.conf"
install -D -m 0644 "$here/systemd/holdfast.env.example" "$root/usr/share/doc/holdfast/holdfast.env.example"
install -D -m 0644 "$here/README.md" "$root/usr/share/doc/holdfast/README.md"
if [ ! -e "$root/etc/holdfast/holdfast.toml" ]; then
  mkdir -p "$root/etc/holdfast"
  "$bin" init "$root/etc/holdfast/holdfast.toml" >/dev/null
fi
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /usr/lib/systemd/system/holdfast.service \
  "$root/etc/systemd/system/multi-user.target.wants/holdfast.service"
echo "installed holdfast into $root"
