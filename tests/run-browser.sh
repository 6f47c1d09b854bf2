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
# A browser session that never starts (the runner waits on chromedriver with no test
# running; seen on a loaded machine) is cut after BROWSER_SESSION_TIMEOUT seconds and the
# whole suite is run once more, said loudly; a test that fails or hangs inside the page is
# not retried (its own timeout above fails it).
limit=${BROWSER_SESSION_TIMEOUT:-420}
for attempt in 1 2; do
  log=$(mktemp "${TMPDIR:-/tmp}/sealsync-browser.XXXXXX")
  rc=0
  timeout --kill-after=10 "$limit" wasm-pack test --headless --chrome --chromedriver "$CHROMEDRIVER" \
    --mode no-install "$@" -- --test browser 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
  if [[ $rc -eq 124 ]] && ! grep -q '^test ' "$log"; then
    rm -f "$log"
    if [[ $attempt -eq 1 ]]; then
      echo "run-browser: no test ran within ${limit} s (the browser session never started); running the suite again" >&2
      continue
    fi
    echo "run-browser: FAILED: no test ran within ${limit} s, twice" >&2
    exit 1
  fi
  rm -f "$log"
  exit "$rc"
done
