#!/usr/bin/env bash
# Browser SDK benchmarks (writes nothing; prints what BENCHMARKS.md "Browser SDK" quotes):
#  1. seal+open per event at 256 B, 4 KiB, 64 KiB through the SDK (wasm) vs WebCrypto
#     AES-GCM, and Argon2id on the main thread vs in Room.join's worker, in headless Chromium;
#  2. the size of the published package (wasm + JS glue), raw and gzip -9, before and after
#     binaryen's wasm-opt -O3 (the flags ./run uses);
#  3. with BENCH_NATIVE=1, native Argon2id (criterion, `cargo bench --bench crypto kdf`);
#  4. with BENCH_SIMD=1, step 1 again with RUSTFLAGS="-C target-feature=+simd128" (in its
#     own target directory, so the normal build cache stays valid).
#  5. with BENCH_RELEASE=1, step 1 again on a `--release` build (opt-level 3 everywhere),
#     alternating with the shipped `sdk` profile (opt-level "z" but the crypto crates), three
#     rounds each, so both sit side by side in one run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
TOOLS=${SEALSYNC_TOOLS:-$ROOT/tools}
WASM_OPT=${WASM_OPT_BIN:-$TOOLS/node_modules/.bin/wasm-opt}
OUT=$CARGO_TARGET_DIR/bench-sdk
mkdir -p "$OUT"

echo "== building the SDK with the bench hooks ($OUT/pkg)" >&2
wasm-pack build --mode no-install --target web --profile sdk --out-dir "$OUT/pkg" "$ROOT" -- --features bench >&2
node scripts/finish-pkg.mjs "$OUT/pkg" >&2

echo "== in Chromium" >&2
node tests/bench/bench.mjs "$OUT/pkg"

if [[ "${BENCH_RELEASE:-0}" == 1 ]]; then
  echo "== the same on a --release build, alternating with the sdk build" >&2
  wasm-pack build --mode no-install --target web --release --out-dir "$OUT/pkg-release" "$ROOT" -- --features bench >&2
  node scripts/finish-pkg.mjs "$OUT/pkg-release" >&2
  for round in 1 2 3; do
    for build in pkg pkg-release; do
      echo "== round $round: $build" >&2
      node tests/bench/bench.mjs "$OUT/$build"
    done
  done
fi

if [[ "${BENCH_SIMD:-0}" == 1 ]]; then
  echo "== the same with +simd128" >&2
  CARGO_TARGET_DIR=$CARGO_TARGET_DIR/simd128 RUSTFLAGS="-C target-feature=+simd128" \
    wasm-pack build --mode no-install --target web --profile sdk --out-dir "$OUT/pkg-simd" "$ROOT" -- --features bench >&2
  node tests/bench/bench.mjs "$OUT/pkg-simd"
fi

echo "== package size: the shipped sdk profile, and --release for comparison" >&2
gz() { cat "$@" | gzip -9 -c | wc -c; }
raw() { cat "$@" | wc -c; }
for profile in sdk release; do
  dir=$OUT/size-$profile
  rm -rf "$dir"
  wasm-pack build --mode no-install --target web --profile "$profile" --out-dir "$dir" "$ROOT" >&2
  wasm=$dir/sealsync_bg.wasm
  js_files=("$dir/sealsync.js" "$dir"/snippets/*/js/*.js)
  echo "[$profile] wasm (no wasm-opt): $(raw "$wasm") bytes, gzip -9 $(gz "$wasm")"
  if "$WASM_OPT" -O3 --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd \
    "$wasm" -o "$dir/opt.wasm"; then
    echo "[$profile] wasm (wasm-opt -O3, $("$WASM_OPT" --version)): $(raw "$dir/opt.wasm") bytes, gzip -9 $(gz "$dir/opt.wasm")"
  else
    echo "wasm-opt failed" >&2
  fi
  echo "[$profile] JS glue + snippets: $(raw "${js_files[@]}") bytes, gzip -9 $(gz "${js_files[@]}")"
done
echo "(./run size prints what the package ships, file by file, against sdk-size-budget)"

if [[ "${BENCH_NATIVE:-0}" == 1 ]]; then
  echo "== native Argon2id (criterion)" >&2
  cargo bench -p sealsync-core --bench crypto -- --quick kdf 2>&1 | grep -E "time:|from_password" || true
fi
