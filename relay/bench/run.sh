#!/usr/bin/env bash
# Fan-out benchmark: builds the relay, then starts four targets on free local ports:
#   - the sealsync relay under `wrangler dev`,
#   - the JS echo Durable Object (js-do/) under `wrangler dev`,
#   - the same JS DO with STORE=1, which writes each message to its SQLite database
#     before rebroadcasting it (the storing echo), under `wrangler dev`,
#   - y-websocket's Node server (@y/websocket-server, from relay/bench/node_modules),
# runs fanout.mjs against all four (latency 1 → N and sustained msgs/s), and stops them.
# Prints markdown tables (with relay ÷ echo, relay ÷ storing echo and relay ÷ y-websocket
# ratios) for BENCHMARKS.md. fanout.mjs documents its FANOUT_* knobs; they pass through
# from the environment. Respects CARGO_TARGET_DIR for the relay build.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RELAY_DIR=$(cd "$BENCH_DIR/.." && pwd)
ROOT=$(cd "$RELAY_DIR/.." && pwd)

die() { echo "bench: $*" >&2; exit 1; }

NODE_MODULES=""
for dir in "$ROOT/tools/node_modules"; do
  if [ -x "$dir/.bin/wrangler" ]; then NODE_MODULES=$dir; break; fi
done
[ -n "$NODE_MODULES" ] || die "wrangler not found; run ./run setup"
command -v worker-build >/dev/null || die "worker-build not found; run ./run setup"
WRANGLER=$NODE_MODULES/.bin/wrangler
export ESBUILD_BIN=${ESBUILD_BIN:-$NODE_MODULES/.bin/esbuild}
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}
export WRANGLER_SEND_METRICS=false
WRANGLER_VERSION=$("$WRANGLER" --version 2>/dev/null | tail -n 1) || die "$WRANGLER --version failed"
export WRANGLER_VERSION

# The benchmark's own npm dependencies (y-websocket server, Yjs, ws): pinned in
# package-lock.json, installed once, never part of tools/ (which CI installs).
if [ ! -d "$BENCH_DIR/node_modules" ]; then
  echo "bench: installing relay/bench/node_modules (npm ci)" >&2
  npm ci --prefix "$BENCH_DIR" --ignore-scripts --no-audit --no-fund >&2 \
    || die "npm ci --prefix relay/bench failed"
fi
YWS_BIN=$BENCH_DIR/node_modules/.bin/y-websocket-server
[ -x "$YWS_BIN" ] || die "$YWS_BIN missing; delete relay/bench/node_modules and run again"

echo "bench: building the relay (worker-build --release)" >&2
(cd "$RELAY_DIR" && worker-build --release >/dev/null) || die "worker-build failed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sealsync-bench.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RELAY_PORT=$(free_port); ECHO_PORT=$(free_port); STORE_PORT=$(free_port); YWS_PORT=$(free_port)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# Each target runs in its own process group (setsid) so cleanup stops all its children.
start_wrangler() { # dir config port state inspector-port extra...
  local dir=$1 config=$2 port=$3 state=$4 inspector=$5; shift 5
  (cd "$dir" && exec setsid "$WRANGLER" dev -c "$config" --ip 127.0.0.1 --port "$port" \
    --persist-to "$state" --inspector-port "$inspector" --show-interactive-dev-session=false "$@" \
    >"$state.log" 2>&1 </dev/null) &
  PIDS+=($!)
}
# Rate limits (per socket and per room), the socket caps (per room, per address, unjoined)
# and the history caps raised far above what the benchmark reaches, so none of them shapes
# the numbers: every client of the benchmark has one address.
RELAY_INSPECTOR=$(free_port)
start_wrangler "$RELAY_DIR" wrangler.toml "$RELAY_PORT" "$TMP/relay" "$RELAY_INSPECTOR" \
  --var RATE_BURST:1000000 --var RATE_PER_SECOND:1000000 \
  --var ROOM_RATE_BURST:1000000 --var ROOM_RATE_PER_SECOND:1000000 \
  --var MAX_SOCKETS_PER_ROOM:100000 --var MAX_SOCKETS_PER_ADDRESS:100000 \
  --var MAX_UNJOINED_SOCKETS:100000 \
  --var MAX_HISTORY_EVENTS:100000000 --var MAX_HISTORY_BYTES:1000000000000
start_wrangler "$BENCH_DIR/js-do" wrangler.toml "$ECHO_PORT" "$TMP/echo" "$(free_port)"
start_wrangler "$BENCH_DIR/js-do" wrangler.toml "$STORE_PORT" "$TMP/store" "$(free_port)" \
  --name sealsync-bench-store --var STORE:1
# y-websocket's own server (its package bin), in-memory (no YPERSISTENCE).
(cd "$TMP" && HOST=127.0.0.1 PORT=$YWS_PORT exec setsid node "$YWS_BIN" \
  >"$TMP/yws.log" 2>&1 </dev/null) &
PIDS+=($!)

wait_up() { # name port pid log
  local name=$1 port=$2 pid=$3 log=$4
  for _ in $(seq 1 240); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "bench: $name did not start on port $port; last lines of $log:" >&2
  tail -n 30 "$log" >&2 || true
  exit 1
}
wait_up "sealsync relay" "$RELAY_PORT" "${PIDS[0]}" "$TMP/relay.log"
wait_up "JS echo DO" "$ECHO_PORT" "${PIDS[1]}" "$TMP/echo.log"
wait_up "storing JS DO" "$STORE_PORT" "${PIDS[2]}" "$TMP/store.log"
wait_up "y-websocket server" "$YWS_PORT" "${PIDS[3]}" "$TMP/yws.log"

# BENCH_PROFILE=1: a CPU profile of the relay's isolate over the whole run (profile.mjs).
# It says it records by creating $PROFILE.recording.
PROFILE=$ROOT/target/bench-relay.cpuprofile
if [ -n "${BENCH_PROFILE:-}" ]; then
  mkdir -p "$ROOT/target"
  rm -f "$PROFILE.recording"
  node "$BENCH_DIR/profile.mjs" "$RELAY_INSPECTOR" "$PROFILE" &
  PROFILER=$!
  for _ in $(seq 1 60); do
    [ -e "$PROFILE.recording" ] && break
    kill -0 "$PROFILER" 2>/dev/null || die "the profiler did not start"
    sleep 0.5
  done
  [ -e "$PROFILE.recording" ] || die "the profiler did not start recording"
fi

status=0
node "$BENCH_DIR/fanout.mjs" \
  "http://127.0.0.1:$RELAY_PORT" "http://127.0.0.1:$ECHO_PORT" "http://127.0.0.1:$YWS_PORT" \
  "http://127.0.0.1:$STORE_PORT" || status=$?
if [ -n "${BENCH_PROFILE:-}" ]; then
  kill -TERM "$PROFILER"
  wait "$PROFILER" || die "the profiler failed"
fi
# Each Durable Object target's runtime: the peak resident memory (VmHWM) of the workerd
# process in its process group, for the whole run (all its rooms, the runtime included).
peak() { # process group
  local pid kb=0
  local one
  for pid in $(pgrep -g "$1" workerd 2>/dev/null); do
    one=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null)
    kb=$((kb + ${one:-0}))
  done
  if [ "$kb" -eq 0 ]; then echo "(no workerd process left)"; else echo "$((kb / 1024)) MiB"; fi
}
echo
echo "Peak resident memory of each target's workerd process over the run (VmHWM): sealsync" \
  "relay $(peak "${PIDS[0]}"), JS echo DO $(peak "${PIDS[1]}"), storing JS DO $(peak "${PIDS[2]}")."
exit "$status"
