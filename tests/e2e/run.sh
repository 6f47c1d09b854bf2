#!/usr/bin/env bash
# End-to-end tests: the demo board (www/ + pkg/) in headless Chromium, against the real
# relay under `wrangler dev`, with node's built-in test runner (prints `# pass N`).
# Screenshots of each scene land in artifacts/. kdf.test.mjs (the key-derivation worker and
# its main-thread fallback) and api.test.mjs (SealsyncError, NOT_INITIALIZED, late warning
# listeners) need no relay. node.test.mjs runs sealsync/node and examples/node/ (with ws
# from tools/node_modules) beside a page; local-first.test.mjs reloads tabs while the relay
# is stopped. rotation.test.mjs moves a room to a new password with three members.
#
# Needs (./run setup installs them): pkg/ (wasm-pack build), relay/build (worker-build),
# tools/node_modules (playwright-core, wrangler), /usr/bin/chromium. Builds pkg/ and the
# relay first when they are missing (./run test rebuilds both before this step; run alone
# after a pull, rebuild them yourself: a stale relay/build tests old relay code).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export WRANGLER_SEND_METRICS=false

if [[ ! -f relay/wrangler.toml ]]; then
  echo "e2e: relay/wrangler.toml is missing: the relay is not in this tree yet" >&2
  exit 1
fi
if [[ ! -f pkg/sealsync.js || ! -f pkg/index.js ]]; then
  echo "e2e: building the SDK into pkg/"
  wasm-pack build --mode no-install --target web --profile sdk "$ROOT"
  node scripts/finish-pkg.mjs pkg
fi
if [[ ! -f relay/build/worker/shim.mjs ]]; then
  echo "e2e: building the relay"
  (cd relay && worker-build --release)
fi
exec node --test --test-concurrency=1 --test-timeout=600000 tests/e2e/kdf.test.mjs tests/e2e/api.test.mjs tests/e2e/node.test.mjs tests/e2e/board.test.mjs tests/e2e/auth.test.mjs tests/e2e/nothing-lost.test.mjs tests/e2e/local-first.test.mjs tests/e2e/members.test.mjs tests/e2e/rotation.test.mjs
