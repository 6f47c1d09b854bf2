#!/usr/bin/env bash
# The browser targets in one run (issue 13; BENCHMARKS.md "The browser targets in one
# run"). Run it through `./run bench-browser [ROUNDS]`, which first builds what it measures:
# pkg/ (the package as shipped), OUT/pkg (the same with the bench hooks) and relay/build.
#
#   bash tests/bench/browser.sh OUT [ROUNDS]
#
# 1. the package's size: gzip -9 of every .wasm and .js file in pkg/ (as ./run size counts);
# 2. tests/bench/bench.mjs on OUT/pkg: seal+open per event through the SDK vs WebCrypto
#    AES-GCM at 256 B, 4 KiB, 64 KiB and 1,000,000 B, and Argon2id (19 MiB, t = 2) on the
#    main thread and through Room.join's worker;
# 3. tests/bench/join.mjs ROUNDS 4 (default 3 rounds): joining a 10,000-event room, cold and
#    warm, against the relay under `wrangler dev`;
# 4. tests/bench/summary.mjs: one table, every figure beside its target.
# The machine and the load are printed at the start and the end; the JSON of steps 2 and 3
# and the table are kept in OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${1:?usage: tests/bench/browser.sh OUT [ROUNDS]}
ROUNDS=${2:-3}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 WRANGLER_SEND_METRICS=false

echo "== $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" >&2
echo "== load at start: $(uptime)" >&2
{
  echo "start $(date -u +%FT%TZ)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "cpu $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores"
  echo "load-start $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"

total=0
while IFS= read -r -d '' f; do
  total=$((total + $(gzip -9 -n <"$f" | wc -c)))
done < <(find "$ROOT/pkg" -type f \( -name '*.wasm' -o -name '*.js' \) -print0)
echo "$total" >"$OUT/size.txt"
echo "== package: $total B gzip -9" >&2

echo "== seal+open and Argon2id in Chromium" >&2
node tests/bench/bench.mjs "$OUT/pkg" >"$OUT/sdk.json"

echo "== joining a 10,000-event room, $ROUNDS rounds" >&2
node tests/bench/join.mjs "$ROUNDS" 4 >"$OUT/join.json"

echo "load-end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "== load at end: $(uptime)" >&2
node tests/bench/summary.mjs "$OUT" | tee "$OUT/summary.md"
