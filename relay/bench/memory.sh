#!/usr/bin/env bash
# The catch-up memory benchmark (issue 11): builds the relay, then runs
# catchup-memory.mjs against it twice under `wrangler dev`, one after the other:
#   - paged: the shipped limits (CATCH_UP_PAGE_BYTES 1 MiB; a SYNC needs the last page's token),
#   - one page: CATCH_UP_PAGE_BYTES 1 GiB, so that a page is the whole history (what the
#     relay did before pages: every catch-up was all of it).
# Prints one markdown row per run for BENCHMARKS.md. MEM_* knobs pass through (see
# catchup-memory.mjs). Linux only (it reads /proc).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RELAY_DIR=$(cd "$BENCH_DIR/.." && pwd)
ROOT=$(cd "$RELAY_DIR/.." && pwd)
die() { echo "memory: $*" >&2; exit 1; }
NODE_MODULES=$ROOT/tools/node_modules
[ -x "$NODE_MODULES/.bin/wrangler" ] || die "wrangler not found; run ./run setup"
command -v worker-build >/dev/null || die "worker-build not found; run ./run setup"
export ESBUILD_BIN=${ESBUILD_BIN:-$NODE_MODULES/.bin/esbuild}
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}
export WRANGLER_SEND_METRICS=false

echo "memory: building the relay" >&2
(cd "$RELAY_DIR" && worker-build --release >/dev/null)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sealsync-memory.XXXXXX")
PGID=
stop() { [ -n "$PGID" ] && kill -TERM -- "-$PGID" 2>/dev/null; sleep 1; [ -n "$PGID" ] && kill -KILL -- "-$PGID" 2>/dev/null; PGID=; true; }
trap 'stop; rm -rf "$TMP"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "| run | history | attackers × SYNCs | relay RSS before | peak during the attack | growth | honest p50 / max |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for run in paged one-page; do
  port=$(free_port)
  extra=()
  [ "$run" = one-page ] && extra=(--var CATCH_UP_PAGE_BYTES:1073741824)
  setsid "$NODE_MODULES/.bin/wrangler" dev -c "$RELAY_DIR/wrangler.toml" --ip 127.0.0.1 --port "$port" \
    --persist-to "$TMP/$run" --inspector-port "$(free_port)" --show-interactive-dev-session=false \
    "${extra[@]}" > "$TMP/$run.log" 2>&1 < /dev/null &
  PGID=$!
  for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.5; done
  out=$(node "$BENCH_DIR/catchup-memory.mjs" "http://127.0.0.1:$port" "$PGID") || { cat "$TMP/$run.log" >&2; die "$run failed"; }
  node -e '
    const r = JSON.parse(process.argv[1]); const m = (b) => (b / 1048576).toFixed(0) + " MiB";
    console.log(`| ${process.argv[2]} | ${m(r.history_bytes)} | ${r.attackers} × ${r.syncs_each} | ${m(r.rss_before)} | ${m(r.rss_peak)} | ${m(r.growth)} | ${r.honest_p50_ms} / ${r.honest_max_ms} ms |`);
  ' "$out" "$run"
  stop
done
