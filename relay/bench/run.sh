#!/usr/bin/env bash
# Fan-out benchmark: builds the relay, starts it and the JS echo Durable Object (js-do/)
# under `wrangler dev` on two free local ports, runs fanout.mjs against both, stops them.
# Prints a markdown table (relay / echo ratios) for BENCHMARKS.md.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RELAY_DIR=$(cd "$BENCH_DIR/.." && pwd)
ROOT=$(cd "$RELAY_DIR/.." && pwd)

NODE_MODULES=""
for dir in "$ROOT/tools/node_modules" "${NPM_TOOLS:-/work/npm-tools}/node_modules"; do
  if [ -x "$dir/.bin/wrangler" ]; then NODE_MODULES=$dir; break; fi
done
[ -n "$NODE_MODULES" ] || { echo "bench: wrangler not found; run ./run setup" >&2; exit 1; }
WRANGLER=$NODE_MODULES/.bin/wrangler
export ESBUILD_BIN=${ESBUILD_BIN:-$NODE_MODULES/.bin/esbuild}
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}
export WRANGLER_SEND_METRICS=false NODE_PATH=$NODE_MODULES

(cd "$RELAY_DIR" && env -u CARGO_TARGET_DIR worker-build --release >/dev/null)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sealsync-bench.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RELAY_PORT=$(free_port); ECHO_PORT=$(free_port)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  [ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

start() { # dir config port state extra...
  local dir=$1 config=$2 port=$3 state=$4; shift 4
  (cd "$dir" && exec setsid "$WRANGLER" dev -c "$config" --ip 127.0.0.1 --port "$port" \
    --persist-to "$state" --inspector-port "$(free_port)" --show-interactive-dev-session=false "$@" \
    >"$state.log" 2>&1 </dev/null) &
  PIDS+=($!)
}
start "$RELAY_DIR" wrangler.toml "$RELAY_PORT" "$TMP/relay" \
  --var RATE_BURST:1000000 --var RATE_PER_SECOND:1000000
start "$BENCH_DIR/js-do" wrangler.toml "$ECHO_PORT" "$TMP/echo"
for port in "$RELAY_PORT" "$ECHO_PORT"; do
  for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.5; done
done
node "$BENCH_DIR/fanout.mjs" "http://127.0.0.1:$RELAY_PORT" "http://127.0.0.1:$ECHO_PORT"
