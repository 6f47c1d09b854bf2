#!/usr/bin/env bash
# Builds the relay, runs it in workerd (`wrangler dev`) with test limits on a free local
# port, runs the integration tests against it, and stops it.
#
#   relay/tests/run.sh            # all integration tests
#   relay/tests/run.sh many       # only tests whose name contains "many"
#
# Tools: worker-build and wasm-bindgen (cargo install), wrangler + esbuild (npm). Looked up
# in tools/node_modules (the project's setup), then $NPM_TOOLS/node_modules, then PATH.
# SEALSYNC_FANOUT sets how many sockets the many-sockets test opens (default 1000).
set -euo pipefail

RELAY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$RELAY_DIR/.." && pwd)
FILTER=${1:-}

find_bin() {
  local name=$1
  for dir in "$ROOT/tools/node_modules/.bin"; do
    if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
  done
  command -v "$name" || { echo "run.sh: $name not found (install it: see relay/README.md)" >&2; exit 1; }
}
WRANGLER=$(find_bin wrangler)
export ESBUILD_BIN=${ESBUILD_BIN:-$(find_bin esbuild)}
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}
export WRANGLER_SEND_METRICS=false

echo "== building the relay (worker-build --release)"
(cd "$RELAY_DIR" && env -u CARGO_TARGET_DIR worker-build --release >/dev/null)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sealsync-relay-test.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
INSPECTOR_PORT=$(free_port)
FANOUT=${SEALSYNC_FANOUT:-1000}
# Test limits. The frame limit is the smallest a relay accepts
# (sealsync_core::limits::MIN_RELAY_FRAME_LIMIT), so that a frame over it still fits
# under the 1 MiB the runtime delivers.
MAX_FRAME=1016024
RATE_BURST=200
RATE_PER_SECOND=100
MAX_HISTORY=60
# Sockets without an accepted HELLO: at most this many per room (the oldest is closed to
# make room), each closed this many seconds after it opened.
MAX_UNJOINED=64
UNJOINED_TIMEOUT=10
PAGE_BYTES=65536
ROOM_BURST=300
ROOM_RATE=150
PER_ADDRESS=100

# The deploy config, pointing at the worker built above by absolute path.
sed -e "s#^main = .*#main = \"$RELAY_DIR/build/worker/shim.mjs\"#" \
  "$RELAY_DIR/wrangler.toml" > "$TMP/wrangler.toml"

cat > "$TMP/start.sh" <<START
#!/usr/bin/env bash
set -euo pipefail
cd "$TMP"
setsid "$WRANGLER" dev -c "$TMP/wrangler.toml" --ip 127.0.0.1 --port $PORT \\
  --persist-to "$TMP/state" --inspector-port $INSPECTOR_PORT --show-interactive-dev-session=false \\
  --var MAX_FRAME_BYTES:$MAX_FRAME --var RATE_BURST:$RATE_BURST --var RATE_PER_SECOND:$RATE_PER_SECOND \\
  --var MAX_SOCKETS_PER_ROOM:$FANOUT --var MAX_HISTORY_EVENTS:$MAX_HISTORY \\
  --var MAX_UNJOINED_SOCKETS:$MAX_UNJOINED --var UNJOINED_TIMEOUT_SECONDS:$UNJOINED_TIMEOUT \\
  --var CATCH_UP_PAGE_BYTES:$PAGE_BYTES --var ROOM_RATE_BURST:$ROOM_BURST \\
  --var ROOM_RATE_PER_SECOND:$ROOM_RATE --var MAX_SOCKETS_PER_ADDRESS:$PER_ADDRESS \\
  --var IDLE_ROOM_TTL_SECONDS:12 --var ALLOWED_ORIGINS:http://allowed.test "\$@" \\
  >> "$TMP/wrangler.log" 2>&1 < /dev/null &
echo \$! > "$TMP/pid"
for _ in \$(seq 1 120); do
  if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then exit 0; fi
  sleep 0.5
done
echo "wrangler did not answer on port $PORT; see $TMP/wrangler.log" >&2
exit 1
START
cat > "$TMP/stop.sh" <<STOP
#!/usr/bin/env bash
[ -f "$TMP/pid" ] || exit 0
pid=\$(cat "$TMP/pid")
kill -TERM -- -\$pid 2>/dev/null || true
for _ in \$(seq 1 40); do kill -0 -- -\$pid 2>/dev/null || break; sleep 0.25; done
kill -KILL -- -\$pid 2>/dev/null || true
rm -f "$TMP/pid"
STOP
printf '#!/usr/bin/env bash\nset -e\n"%s/stop.sh"\n"%s/start.sh"\n' "$TMP" "$TMP" > "$TMP/restart.sh"
chmod +x "$TMP"/*.sh

cleanup() {
  "$TMP/stop.sh"
  if [ "${KEEP_TMP:-}" = "" ]; then rm -rf "$TMP"; else echo "kept $TMP"; fi
}
trap cleanup EXIT

# Secrets for `wrangler dev` come from .dev.vars beside the config.
NOTIFY_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
printf 'NOTIFY_SERVICE_ID=integration-tests\nNOTIFY_SERVICE_SECRET=%s\n' "$NOTIFY_SECRET" > "$TMP/.dev.vars"
# A signing key for the jwt phase (the backend's side is the mint_token example).
KEYS=$(cd "$ROOT" && cargo run -q -p sealsync-relay --example mint_token -- keygen)
JWT_SEED=$(echo "$KEYS" | sed -n 's/^SEED=//p')
JWT_PUBLIC_KEY=$(echo "$KEYS" | sed -n 's/^JWT_PUBLIC_KEYS=//p')
# Beside it, the PEM (SPKI) public keys of tests/fixtures/pem (made by its make.sh), line
# breaks written as \n as a one-line secret holds them: the tests sign with the private ones.
PEM_KEYS=$(cat "$RELAY_DIR"/tests/fixtures/pem/{ed25519,es256,rs256}.pem | awk '{printf "%s\\n", $0}')
# The notify types of the typed phase (NOTIFY_TYPES).
NOTIFY_TYPES=todo.assigned,chat.mention

echo "== starting wrangler dev on 127.0.0.1:$PORT (state in $TMP/state)"
"$TMP/start.sh"

export SEALSYNC_RELAY_URL="http://127.0.0.1:$PORT"
export SEALSYNC_RELAY_PERSIST="$TMP/state"
export SEALSYNC_RELAY_RESTART="$TMP/restart.sh"
export SEALSYNC_RELAY_MAX_FRAME=$MAX_FRAME
export SEALSYNC_RELAY_RATE_BURST=$RATE_BURST
export SEALSYNC_RELAY_RATE_PER_SECOND=$RATE_PER_SECOND
export SEALSYNC_RELAY_MAX_SOCKETS=$FANOUT
export SEALSYNC_RELAY_MAX_HISTORY=$MAX_HISTORY
export SEALSYNC_RELAY_MAX_UNJOINED=$MAX_UNJOINED
export SEALSYNC_RELAY_IDLE_TTL=12
export SEALSYNC_RELAY_PAGE_BYTES=$PAGE_BYTES
export SEALSYNC_RELAY_ROOM_BURST=$ROOM_BURST
export SEALSYNC_RELAY_PER_ADDRESS=$PER_ADDRESS
export SEALSYNC_RELAY_ALLOWED_ORIGIN=http://allowed.test
export SEALSYNC_RELAY_NOTIFY_ID=integration-tests SEALSYNC_RELAY_NOTIFY_SECRET=$NOTIFY_SECRET

# Tests use rooms of their own, so they run side by side (THREADS), except the one that
# restarts the relay under the others' feet, which runs alone afterwards.
THREADS=${SEALSYNC_RELAY_TEST_THREADS:-4}
RESTART=relay_restart_keeps_the_log_and_the_session_resumes
status=0
echo "== integration tests, AUTH_MODE=none ($THREADS at a time)"
(cd "$ROOT" && cargo test -p sealsync-relay --test integration -- --include-ignored \
  --test-threads="$THREADS" --skip auth_ --skip typed_ --skip "$RESTART" $FILTER) || status=$?
if [ $status -eq 0 ] && { [ -z "$FILTER" ] || [[ $RESTART == *"$FILTER"* ]]; }; then
  echo "== integration tests, AUTH_MODE=none: the relay restart, alone"
  (cd "$ROOT" && cargo test -p sealsync-relay --test integration -- --include-ignored \
    --exact "$RESTART") || status=$?
fi
if [ $status -eq 0 ] && { [ -z "$FILTER" ] || [[ auth_ == *"$FILTER"* ]] || [[ "$FILTER" == auth_* ]]; }; then
  echo "== integration tests, AUTH_MODE=jwt"
  "$TMP/stop.sh"
  "$TMP/start.sh" --var AUTH_MODE:jwt --var "JWT_PUBLIC_KEYS:$JWT_PUBLIC_KEY,$PEM_KEYS"
  (cd "$ROOT" && SEALSYNC_RELAY_JWT_SEED=$JWT_SEED cargo test -p sealsync-relay --test integration \
    -- --include-ignored --test-threads="$THREADS" auth_ $FILTER) || status=$?
fi
if [ $status -eq 0 ] && { [ -z "$FILTER" ] || [[ typed_ == *"$FILTER"* ]] || [[ "$FILTER" == typed_* ]]; }; then
  echo "== integration tests, AUTH_MODE=jwt with NOTIFY_TYPES=$NOTIFY_TYPES"
  "$TMP/stop.sh"
  "$TMP/start.sh" --var AUTH_MODE:jwt --var "JWT_PUBLIC_KEYS:$JWT_PUBLIC_KEY" \
    --var "NOTIFY_TYPES:$NOTIFY_TYPES"
  (cd "$ROOT" && SEALSYNC_RELAY_JWT_SEED=$JWT_SEED SEALSYNC_RELAY_NOTIFY_TYPES=$NOTIFY_TYPES \
    cargo test -p sealsync-relay --test integration \
    -- --include-ignored --test-threads="$THREADS" typed_ $FILTER) || status=$?
fi
if [ $status -ne 0 ]; then
  echo "== last wrangler log lines ($TMP/wrangler.log)"
  tail -40 "$TMP/wrangler.log" || true
fi
exit $status
