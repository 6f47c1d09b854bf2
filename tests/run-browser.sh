#!/usr/bin/env bash
# The SDK's wasm-bindgen tests (tests/*.rs of the root crate) in headless Chromium.
#
#   tests/run-browser.sh            # debug build
#   tests/run-browser.sh --release  # optimised (what ships; Argon2id is much faster)
#
# Needs: wasm-pack, wasm-bindgen-cli (wasm-bindgen-test-runner) at the locked version,
# chromium + chromedriver (CHROMEDRIVER overrides /usr/bin/chromedriver). Browser flags
# (--no-sandbox for root, headless) come from webdriver.json at the crate root, which
# wasm-bindgen-test-runner reads from the working directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver || echo /usr/bin/chromedriver)}"
export CHROMEDRIVER
if [[ ! -x "$CHROMEDRIVER" ]]; then
  echo "run-browser: no chromedriver at $CHROMEDRIVER (apt-get install chromium-driver)" >&2
  exit 1
fi
# The runner's default per-test timeout is 20 s; Argon2id in a debug build needs more.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-120}"
exec wasm-pack test --headless --chrome --chromedriver "$CHROMEDRIVER" --mode no-install "$@" -- --test browser
