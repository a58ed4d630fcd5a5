#!/usr/bin/env bash
# The package's life in a throwaway Debian root: install, reinstall over a configured site,
# remove, purge, install again. Run by scripts/deb.sh (HOLDFAST_DEB_INSTALL_TEST=1) as an
# mmdebstrap customize hook, with the root as $1 and the package as $HOLDFAST_DEB; nothing
# outside that root is touched.
set -euo pipefail
root=$1
deb=${HOLDFAST_DEB:?the package to test}

fail() {
    echo "install-test: FAIL: $*" >&2
    exit 1
}
in_root() { chroot "$root" "$@"; }
# Owner names are looked up in the root's own user database.
mode_in_root() { in_root stat -c '%a %U %G' "$1"; }
expect_mode() {
    local got
    got=$(mode_in_root "$1")
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2 ($3)"
}
wants=/etc/systemd/system/multi-user.target.wants/holdfast.service

cp "$deb" "$root/tmp/holdfast.deb"
export DEBIAN_FRONTEND=noninteractive

# --- A fresh install, dependencies from the mirror (Depends must be installable).
echo "install-test: apt-get install ./holdfast.deb" >&2
in_root apt-get install -y -q --no-install-recommends /tmp/holdfast.deb >"$root/tmp/install.log" 2>&1 ||
    { cat "$root/tmp/install.log" >&2; fail "apt-get install"; }
sed 's/^/  | /' "$root/tmp/install.log" | tail -n 20 >&2
grep -q 'installed and enabled, but not started' "$root/tmp/install.log" ||
    fail "the install did not say what to do next"

in_root getent passwd holdfast >/dev/null || fail "no user holdfast"
in_root id -nG holdfast | grep -qw dialout || fail "holdfast is not in group dialout (serial scanners)"
shell=$(in_root getent passwd holdfast | cut -d: -f7)
case "$shell" in */nologin | */false) ;; *) fail "holdfast has a login shell: $shell" ;; esac
expect_mode /etc/holdfast "750 root holdfast" "tmpfiles"
expect_mode /etc/holdfast/credentials "700 root root" "the API key's directory"
expect_mode /etc/holdfast/devices "750 root holdfast" "tmpfiles"
[ -L "$root$wants" ] || fail "holdfast.service is not enabled ($wants)"
# So is every other unit of the package with an [Install] section (a timer, say).
for unit in "$root"/usr/lib/systemd/system/holdfast*; do
    for target in $(sed -n 's/^WantedBy=//p' "$unit"); do
        [ -L "$root/etc/systemd/system/$target.wants/${unit##*/}" ] ||
            fail "${unit##*/} is not enabled (no link in /etc/systemd/system/$target.wants)"
    done
done
case "$(readlink "$root$wants")" in
*/systemd/system/holdfast.service) ;;
*) fail "$wants points at $(readlink "$root$wants")" ;;
esac
[ -f "$root/etc/holdfast/holdfast.toml" ] || fail "no /etc/holdfast/holdfast.toml"
in_root dpkg-query -W -f='${Conffiles}\n' holdfast | grep -q '/etc/holdfast/holdfast.toml ' ||
    fail "/etc/holdfast/holdfast.toml is not a conffile of the installed package"
in_root holdfast --version >/dev/null || fail "the installed binary does not run in the test root"

# --- A configured site: its edits, its API key and its database, then the same package again
# (an upgrade's path: unpack over, configure with the old version).
echo "# site edit" >>"$root/etc/holdfast/holdfast.toml"
install -m 0600 /dev/null "$root/etc/holdfast/credentials/odoo-api-key"
echo "key" >"$root/etc/holdfast/credentials/odoo-api-key"
mkdir -p "$root/var/lib/holdfast"
echo "journal" >"$root/var/lib/holdfast/holdfast.db"
in_root chown -R holdfast:holdfast /var/lib/holdfast
echo "install-test: reinstall over a configured site" >&2
in_root dpkg -i /tmp/holdfast.deb >"$root/tmp/reinstall.log" 2>&1 ||
    { cat "$root/tmp/reinstall.log" >&2; fail "dpkg -i again"; }
! grep -q 'not started' "$root/tmp/reinstall.log" ||
    fail "the reinstall asked for configuration a configured site has"
grep -q '^# site edit$' "$root/etc/holdfast/holdfast.toml" || fail "the reinstall lost the site's config edit"
[ -s "$root/etc/holdfast/credentials/odoo-api-key" ] || fail "the reinstall lost the API key"
expect_mode /etc/holdfast "750 root holdfast" "after the reinstall"
expect_mode /etc/holdfast/credentials "700 root root" "after the reinstall"
[ -L "$root$wants" ] || fail "holdfast.service is no longer enabled after the reinstall"

# --- Removal keeps configuration and data.
echo "install-test: remove" >&2
in_root apt-get remove -y -q holdfast >"$root/tmp/remove.log" 2>&1 ||
    { cat "$root/tmp/remove.log" >&2; fail "apt-get remove"; }
[ ! -e "$root/usr/bin/holdfast" ] || fail "/usr/bin/holdfast is still there after removal"
[ -f "$root/etc/holdfast/holdfast.toml" ] || fail "removal deleted the config"
[ -s "$root/etc/holdfast/credentials/odoo-api-key" ] || fail "removal deleted the API key"
[ -f "$root/var/lib/holdfast/holdfast.db" ] || fail "removal deleted the database"

# --- Purge: configuration and credentials go, the database stays (and the site is told).
echo "install-test: purge" >&2
in_root dpkg --purge holdfast >"$root/tmp/purge.log" 2>&1 ||
    { cat "$root/tmp/purge.log" >&2; fail "dpkg --purge"; }
sed 's/^/  | /' "$root/tmp/purge.log" >&2
[ ! -e "$root/etc/holdfast" ] || fail "purge left /etc/holdfast: $(find "$root/etc/holdfast")"
[ -f "$root/var/lib/holdfast/holdfast.db" ] || fail "purge deleted the database"
grep -q 'data is kept in /var/lib/holdfast' "$root/tmp/purge.log" || fail "purge did not say the data was kept"
[ ! -e "$root$wants" ] || fail "purge left $wants"
[ ! -e "$root/etc/systemd/system/holdfast.service" ] || fail "purge left holdfast.service masked"

# --- Installed again: enabled again, a fresh config, the kept database untouched.
echo "install-test: install after purge" >&2
in_root dpkg -i /tmp/holdfast.deb >"$root/tmp/again.log" 2>&1 ||
    { cat "$root/tmp/again.log" >&2; fail "dpkg -i after purge"; }
[ -L "$root$wants" ] || fail "holdfast.service is not enabled after installing again"
! grep -q '^# site edit$' "$root/etc/holdfast/holdfast.toml" || fail "the purged config came back"
expect_mode /etc/holdfast/credentials "700 root root" "after installing again"
[ "$(cat "$root/var/lib/holdfast/holdfast.db")" = journal ] || fail "the kept database changed"
echo "install-test: passed" >&2
