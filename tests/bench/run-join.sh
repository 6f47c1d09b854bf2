#!/usr/bin/env bash
# Joining a 10,000-event room in headless Chromium (issue 12; BENCHMARKS.md "Joining a
# 10,000-event room in Chromium"). Needs pkg/ and relay/build, as tests/e2e does (./run test
# or ./run demo builds both). Prints the machine and the load before and after, the
# benchmark's progress on stderr, and its JSON on stdout (also kept in
# artifacts/bench-join.json). Arguments: ROUNDS (default 5), BUILDERS (pages sharing the
# build of the room, default 4). Knobs: JOIN_CHANGES (saves measured, default 25),
# JOIN_WINDOW_MS (default 400).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
echo "== $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores" >&2
echo "== load at start: $(uptime)" >&2
mkdir -p artifacts
node tests/bench/join.mjs "${1:-5}" "${2:-4}" | tee artifacts/bench-join.json
echo "== load at end: $(uptime)" >&2
