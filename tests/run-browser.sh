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
# A browser session that never starts is cut and the whole suite runs again, up to 3
# attempts, said loudly. What it looks like: the runner printed "Running headless tests"
# and Chromium opened the page, but the page never printed "Loading Wasm module" (seen
# in about half the sessions on this 2-core machine on 2026-11-30, quiet or loaded: two
# of Chromium's connections to the runner's test server held requests the server had not
# read). Such an attempt is cut PAGE_START_TIMEOUT seconds (default 60; a working page
# prints it within a second or two) after the runner started, with every process it
# started (chromedriver and Chromium included, found with pgrep: a leftover one could
# hold the next attempt up). An attempt also ends after BROWSER_SESSION_TIMEOUT seconds
# in all (default 300: a cold CI run compiles and runs the suite in about 160 s). A test
# that fails or hangs inside the page is not retried (its own timeout above fails it).
limit=${BROWSER_SESSION_TIMEOUT:-300}
page_limit=${PAGE_START_TIMEOUT:-60}
attempts=3
# Stops a process and everything it started, children first.
kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do kill_tree "$child"; done
  kill -"${2:-TERM}" "$1" 2>/dev/null || true
}
for attempt in $(seq 1 $attempts); do
  log=$(mktemp "${TMPDIR:-/tmp}/sealsync-browser.XXXXXX")
  wasm-pack test --headless --chrome --chromedriver "$CHROMEDRIVER" \
    --mode no-install "$@" -- --test browser >"$log" 2>&1 &
  pid=$!
  tail -f --pid="$pid" "$log" &
  tailer=$!
  rc=
  runner_since=
  for second in $(seq 1 "$limit"); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" && rc=0 || rc=$?
      break
    fi
    if [[ -z $runner_since ]] && grep -q 'Running headless tests' "$log"; then
      runner_since=$second
    fi
    if [[ -n $runner_since ]] && ((second - runner_since >= page_limit)) &&
      ! grep -q 'Loading Wasm module' "$log"; then
      break # the page never started: cut below
    fi
    sleep 1
  done
  if [[ -z $rc ]]; then
    kill_tree "$pid"
    sleep 5
    kill_tree "$pid" KILL
    wait "$pid" 2>/dev/null || true
    rc=124
  fi
  wait "$tailer" 2>/dev/null || true
  if [[ $rc -eq 124 ]] && ! grep -q '^test ' "$log"; then
    rm -f "$log"
    if [[ $attempt -lt $attempts ]]; then
      echo "run-browser: no test ran (the browser session never started); attempt $((attempt + 1)) of $attempts" >&2
      continue
    fi
    echo "run-browser: FAILED: no test ran, $attempts times (the browser session never started)" >&2
    exit 1
  fi
  if [[ $rc -eq 124 ]]; then
    echo "run-browser: FAILED: the suite did not finish within ${limit} s" >&2
  fi
  rm -f "$log"
  exit "$rc"
done
