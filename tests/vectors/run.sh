#!/usr/bin/env bash
# The protocol vectors, checked by an independent implementation: tests/vectors/sealsync.mjs
# (Node built-ins only, written from PROTOCOL.md) must derive the same keys, seal and open
# the same envelopes, decode the same event bodies and merge to the same states as
# core/tests/data/vectors-v2.json, which the Rust core writes (core/tests/protocol_vectors.rs).
# Exits non-zero, naming what differs, on any mismatch; fails when the vector file is
# missing or empty.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VECTORS="$HERE/../../core/tests/data/vectors-v2.json"
if [ ! -s "$VECTORS" ]; then
  echo "tests/vectors: $VECTORS is missing or empty; write it with" >&2
  echo "  SEALSYNC_WRITE_VECTORS=1 cargo test -p sealsync-core --test protocol_vectors" >&2
  exit 1
fi
command -v node >/dev/null || { echo "tests/vectors: node is not installed" >&2; exit 1; }
exec node --test "$HERE/vectors.test.mjs"
