#!/usr/bin/env bash
# Bundler tests: the SDK as an application installs it (`npm pack` of pkg/), built into a
# small app with Vite, webpack 5, esbuild, Rollup and Next.js (versions pinned in
# tests/bundlers/package.json and package-lock.json) and served by the Vite dev server, each
# run in headless Chromium against the relay under `wrangler dev` (bundlers.test.mjs); first,
# `tsc --strict` over the type-level tests in tests/types/.
#
# Needs (./run bundlers builds them first): pkg/ finished by scripts/finish-pkg.mjs,
# relay/build (worker-build), tools/node_modules (playwright-core, wrangler),
# /usr/bin/chromium, and the npm registry the first time (npm ci of this directory; skipped
# while node_modules matches package-lock.json). Build output goes to
# $CARGO_TARGET_DIR/bundlers/ (default target/bundlers/).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/bundlers
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export WRANGLER_SEND_METRICS=false
OUT=$CARGO_TARGET_DIR/bundlers

if [[ ! -f pkg/index.js || ! -f pkg/kdf-worker.js ]]; then
  echo "bundlers: pkg/ is missing or not finished: build it with ./run bundlers (or build_sdk in ./run)" >&2
  exit 1
fi
if [[ ! -f relay/build/worker/shim.mjs ]]; then
  echo "bundlers: relay/build is missing: build the relay (worker-build --release in relay/)" >&2
  exit 1
fi

want=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)
stamp=$HERE/node_modules/.sealsync-lock.sha256
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "bundlers: npm ci in tests/bundlers (vite, webpack, esbuild, rollup, next; ~30 s) ..."
  npm ci --prefix "$HERE" --no-audit --no-fund
  printf '%s\n' "$want" >"$stamp"
fi

# The package exactly as npm would publish it, installed without touching package.json or
# the lock file.
rm -rf "$OUT/pack"
mkdir -p "$OUT/pack"
npm pack "$ROOT/pkg" --pack-destination "$OUT/pack" --silent >/dev/null
tarball=$(echo "$OUT"/pack/sealsync-*.tgz)
[[ -f "$tarball" ]] || { echo "bundlers: npm pack wrote no tarball into $OUT/pack" >&2; exit 1; }
echo "bundlers: installing $(tar -tzf "$tarball" | wc -l) files of ${tarball#"$ROOT"/} into tests/bundlers/node_modules"
npm install --prefix "$HERE" --no-save --no-audit --no-fund "$tarball" >/dev/null
# npm install may remove files it does not know in node_modules: write the stamp again.
printf '%s\n' "$want" >"$stamp"

# The type-level tests of the package's .d.ts files (typescript pinned here): misuse marked
# @ts-expect-error must stay an error, everything else must compile under --strict.
echo "bundlers: tsc --strict tests/types/usage.ts tests/types/react-usage.ts tests/types/node-usage.ts"
"$HERE/node_modules/.bin/tsc" --noEmit --strict --target es2022 --module esnext \
  --moduleResolution bundler --lib es2022,dom tests/types/usage.ts tests/types/react-usage.ts tests/types/node-usage.ts

exec node --test --test-concurrency=1 tests/bundlers/bundlers.test.mjs
