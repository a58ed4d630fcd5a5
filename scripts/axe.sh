#!/usr/bin/env bash
# Fetches axe-core (Deque's accessibility rules engine) from the npm registry into
# target/axe/axe.min.js for the console's accessibility test, which injects it into each page.
# Pinned version, checked against the registry's published integrity hash; fetched once.
set -euo pipefail
cd "$(dirname "$0")/.."

version="4.14.1"
integrity="sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
dir="target/axe"
out="$dir/axe.min.js"
stamp="$dir/version"

if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    exit 0
fi
mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp/axe.tgz" "https://registry.npmjs.org/axe-core/-/axe-core-$version.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tmp/axe.tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
    echo "axe.sh: axe-core $version does not match its published integrity hash" >&2
    exit 1
fi
tar -xzf "$tmp/axe.tgz" -C "$tmp" package/axe.min.js
mv "$tmp/package/axe.min.js" "$out"
echo "$version" > "$stamp"
echo "axe.sh: axe-core $version in $out" >&2
