#!/usr/bin/env bash
# Builds the site's Debian package (target/debian/holdfast_<version>-1_<arch>.deb), checks it
# with lintian and checks what is in it; with HOLDFAST_DEB_INSTALL_TEST=1 also installs,
# upgrades, removes and purges it in a throwaway Debian root (mmdebstrap), never on this host.
#
#   scripts/deb.sh
#
# The package's metadata is [package.metadata.deb] in edge/Cargo.toml; its maintainer scripts
# and the default config are in packaging/. Installs what it needs first: cargo-deb (pinned,
# into ${CARGO_HOME:-~/.cargo}) and Debian's lintian (and mmdebstrap for the install test).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

cargo_deb_version=3.8.0
# The Debian release of the install test: the appliance images' (firmware-images/README.md).
suite=${HOLDFAST_DEB_SUITE:-bookworm}
mirror=${HOLDFAST_DEB_MIRROR:-http://deb.debian.org/debian}

fail() {
    echo "deb.sh: FAIL: $*" >&2
    exit 1
}
step() {
    echo "deb.sh: $*" >&2
}

# Debian's tools, installed as scripts/test.sh installs its packages.
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
# cargo-deb's $auto asks dpkg-shlibdeps for the libraries' packages (libc6's version).
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
if [ "${HOLDFAST_DEB_INSTALL_TEST:-}" = 1 ]; then
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
    { $sudo apt-get update -q &&
        $sudo env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}"; } ||
        fail "could not install ${missing[*]}"
fi

if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    step "installing cargo-deb $cargo_deb_version"
    cargo install --locked cargo-deb --version "$cargo_deb_version"
fi

# The site build (default-features = false in the metadata: no demo MQTT broker), release
# profile, the lock file as committed.
SECONDS=0
step "building the package"
deb=$(cargo deb -p holdfast --locked | tail -n 1)
[ -f "$deb" ] || fail "cargo deb printed no package path (got: $deb)"
step "built in ${SECONDS}s"

# --- lintian: errors and warnings fail; overrides (with their reasons) in
# packaging/lintian-overrides, shipped at /usr/share/lintian/overrides/holdfast.
SECONDS=0
step "lintian"
# (Not --show-overrides: with it, lintian 2.116 exits non-zero for overridden tags.)
lintian --fail-on error,warning --display-info "$deb" ||
    fail "lintian found problems in $deb (fix them, or override one with its reason in packaging/lintian-overrides)"
step "lintian clean in ${SECONDS}s (informational tags above; overridden: $(grep -c '^holdfast: ' packaging/lintian-overrides), see packaging/lintian-overrides)"

# --- What is in the package.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -c "$deb" >"$work/contents"
dpkg-deb -e "$deb" "$work/control"
dpkg-deb -x "$deb" "$work/root"
field() { dpkg-deb -f "$deb" "$1"; }

for path in \
    ./usr/bin/holdfast \
    ./usr/lib/systemd/system/holdfast.service \
    ./usr/lib/systemd/system/holdfast-backup.service \
    ./usr/lib/systemd/system/holdfast-backup.timer \
    ./usr/lib/sysusers.d/holdfast.conf \
    ./usr/lib/tmpfiles.d/holdfast.conf \
    ./etc/holdfast/holdfast.toml \
    ./usr/share/doc/holdfast/README.md \
    ./usr/share/doc/holdfast/holdfast.env.example \
    ./usr/share/doc/holdfast/copyright \
    ./usr/share/lintian/overrides/holdfast; do
    grep -q " $path\$" "$work/contents" || fail "$path is not in the package"
done
grep -Eq '^-rwxr-xr-x (root/root|0/0) .* ./usr/bin/holdfast$' "$work/contents" ||
    fail "/usr/bin/holdfast is not root-owned mode 0755"

# Every unit in systemd/ ships, byte for byte (a new one is one line in the metadata's assets).
for unit in systemd/*.service systemd/*.timer; do
    [ -e "$unit" ] || continue
    name=$(basename "$unit")
    cmp -s "$unit" "$work/root/usr/lib/systemd/system/$name" ||
        fail "$unit is not in the package as /usr/lib/systemd/system/$name: add it to assets in edge/Cargo.toml"
done
cmp -s systemd/holdfast.sysusers.conf "$work/root/usr/lib/sysusers.d/holdfast.conf" ||
    fail "the packaged sysusers.d entry differs from systemd/holdfast.sysusers.conf"
cmp -s systemd/holdfast.tmpfiles.conf "$work/root/usr/lib/tmpfiles.d/holdfast.conf" ||
    fail "the packaged tmpfiles.d entry differs from systemd/holdfast.tmpfiles.conf"

# The config is a conffile, and it is what `holdfast init` writes.
grep -qx /etc/holdfast/holdfast.toml "$work/control/conffiles" ||
    fail "/etc/holdfast/holdfast.toml is not listed in conffiles"
"$work/root/usr/bin/holdfast" init "$work/init.toml" >/dev/null
cmp -s "$work/init.toml" "$work/root/etc/holdfast/holdfast.toml" ||
    fail "packaging/holdfast.toml is not what 'holdfast init' writes: target/release/holdfast init --force packaging/holdfast.toml"

# The site build: no demo MQTT broker compiled in. Crates leave their source paths in the
# binary (panic locations): the MQTT client's must be there, the broker's must not.
grep -aq 'rumqttc-[0-9.]*/src' "$work/root/usr/bin/holdfast" ||
    fail "no crate source paths in the binary (paths trimmed?): this check needs another marker"
if grep -aq 'rumqttd-[0-9.]*/src' "$work/root/usr/bin/holdfast"; then
    fail "the packaged binary contains the demo's MQTT broker (rumqttd): it is not the site build (default-features = false)"
fi

version=$(field Version)
changelog_version=$(sed -n '1s/^holdfast (\([^)]*\)).*/\1/p' packaging/changelog)
[ "$changelog_version" = "$version" ] ||
    fail "packaging/changelog's first entry is $changelog_version, the package is $version: add an entry"

depends=$(field Depends)
for dep in libc6 ca-certificates systemd; do
    [[ ", $depends," == *", $dep "* || ", $depends," == *", $dep,"* ]] ||
        fail "Depends lacks $dep: $depends"
done

# Maintainer scripts: the user and directories made, the unit enabled, never started by a
# fresh install (only a running service is restarted after an upgrade), stopped on removal.
for script in postinst prerm postrm; do
    [ -x "$work/control/$script" ] || fail "no $script in the package"
    ! grep -q '#DEBHELPER#' "$work/control/$script" || fail "$script still has #DEBHELPER#"
done
postinst=$work/control/postinst
grep -q 'systemd-sysusers .*holdfast.conf' "$postinst" || fail "postinst does not run systemd-sysusers holdfast.conf"
grep -q 'systemd-tmpfiles --create holdfast.conf' "$postinst" || fail "postinst does not run systemd-tmpfiles --create holdfast.conf"
grep -q 'deb-systemd-helper enable holdfast.service' "$postinst" || fail "postinst does not enable holdfast.service"
grep -q 'deb-systemd-helper enable .*holdfast-backup.timer' "$postinst" || fail "postinst does not enable holdfast-backup.timer"
grep -Eq 'deb-systemd-invoke try-restart .*holdfast.service' "$postinst" || fail "postinst does not restart a running service after an upgrade"
if grep -Eq '^\s*(deb-systemd-invoke (start|restart|\$_dh_action)|systemctl (--system )?(start|restart|enable --now))' "$postinst"; then
    fail "postinst starts the service: a fresh install must wait for the site's configuration"
fi
grep -Eq 'deb-systemd-invoke stop .*holdfast.service' "$work/control/prerm" || fail "prerm does not stop the service on removal"

dpkg-deb -I "$deb" | sed -n '/^ Package:/,$p' >&2
echo "deb.sh: conffiles: $(tr '\n' ' ' <"$work/control/conffiles")" >&2
echo "deb.sh: contents:" >&2
sed 's/^/  /' "$work/contents" >&2
step "package checks passed"

if [ "${HOLDFAST_DEB_INSTALL_TEST:-}" = 1 ]; then
    # mmdebstrap's root mode (a chroot, with /proc and /dev mounted for the maintainer
    # scripts): as root, or through sudo as scripts/test.sh installs packages.
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || fail "the install test needs root (mmdebstrap in root mode), or sudo"
        sudo="sudo"
    fi
    SECONDS=0
    step "install test in a throwaway $suite root ($mirror)"
    # The root is made, used by packaging/install-test.sh and deleted (format null).
    $sudo env HOLDFAST_DEB="$(realpath "$deb")" mmdebstrap --quiet --mode=root --variant=apt \
        --format=null --customize-hook="$here/packaging/install-test.sh" \
        "$suite" /dev/null "$mirror" ||
        fail "install test (packaging/install-test.sh in a $suite root)"
    step "install test passed in ${SECONDS}s"
fi

size=$(stat -c %s "$deb")
echo "deb.sh: $deb ($((size / 1024)) KiB)"
