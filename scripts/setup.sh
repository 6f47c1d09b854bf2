#!/usr/bin/env bash
# Idempotent set-up of everything ./run needs on a Debian 12 machine (see README.md and
# ../shared/TOOLCHAIN.md for why each step looks the way it does):
#
#   1. the wasm32-unknown-unknown target: rustup (with a timeout), else Debian's rustc-web
#      with a wasm32 std built once from its source ("debian-web" toolchain);
#   2. Chromium and chromedriver from apt (browser tests);
#   3. npm tools pinned in tools/package-lock.json (wrangler, esbuild, wasm-opt, ...);
#   4. cargo tools: wasm-bindgen-cli (version from Cargo.lock), wasm-pack, worker-build.
#
# Every step checks first and skips itself when its result is present, so a second run
# takes seconds. Nothing here downloads a binary at build time: later steps use the local
# binaries this script installs.
#
# Usage: scripts/setup.sh            (or ./run setup)
#        source scripts/setup.sh     (defines the functions; ./run does this)
#
# Environment knobs:
#   SEALSYNC_WASM_ROUTE=debian   skip the rustup attempt and take the Debian route
#   SEALSYNC_RUSTUP_TIMEOUT=120  seconds to give `rustup target add`

SEALSYNC_ROOT=${SEALSYNC_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SETUP_DIR=$SEALSYNC_ROOT/.setup
WASM_TARGET=wasm32-unknown-unknown
WASM_PACK_VERSION=0.15.1
WORKER_BUILD_DEFAULT_VERSION=0.8.7
NODE_MIN_VERSION=20.3.0
# Debian's Rust with its library source and the wasm linker (rust-lld comes from
# rust-web-llvm, which rustc-web only recommends: name it so it is there either way).
DEBIAN_WEB_PACKAGES=(rustc-web cargo-web rust-web-src lld-22 rust-web-llvm)
DEBIAN_WEB_TOOLCHAIN=debian-web
DEBIAN_WEB_LIBDIR=/usr/lib/rustlib/$WASM_TARGET/lib
DEBIAN_WEB_STAMP=$DEBIAN_WEB_LIBDIR/.sealsync-std-built-by

say() { printf 'setup: %s\n' "$*"; }
fail() {
  printf 'setup: FAILED: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf 'setup:   %s\n' "$line" >&2; done
  return 1
}

# ---------------------------------------------------------------------------- helpers

# Run a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    fail "this step needs root: $*" \
      "run ./run setup as root, or install sudo, or run that command as root yourself"
  fi
}

# version_ge A B: true when version A >= version B (dotted numbers).
version_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]; }

# lock_version NAME: the version of package NAME in Cargo.lock (first match).
lock_version() {
  awk -v name="$1" '
    /^\[\[package\]\]/ { inpkg = 1; found = 0; next }
    inpkg && $1 == "name" && $3 == "\"" name "\"" { found = 1; next }
    inpkg && found && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
  ' "$SEALSYNC_ROOT/Cargo.lock"
}

APT_UPDATED=
# apt_update [force]: `apt-get update` once per run, when the package lists are missing or
# older than a day (or when forced after an install could not find a package).
apt_update() {
  [ -n "$APT_UPDATED" ] && return 0
  if [ "${1:-}" != force ] &&
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1)" ]; then
    return 0
  fi
  say "apt: updating the package lists (apt-get update) ..."
  # Some configured sources may be unreachable; apt then warns or exits non-zero while the
  # Debian lists are fine. The install below is the real test.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    say "apt: apt-get update reported errors (continuing; the install will tell)"
  APT_UPDATED=1
}

# apt_install PKG...: install Debian packages non-interactively.
apt_install() {
  apt_update
  local log=$SETUP_DIR/logs/apt.log
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$log" 2>&1; then
    if [ -z "$APT_UPDATED" ]; then
      apt_update force
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$log" 2>&1 && return 0
    fi
    tail -n 15 "$log" >&2
    fail "apt-get install $* failed (log: ${log#"$SEALSYNC_ROOT"/})" \
      "install them by hand: apt-get update && apt-get install -y $*"
    return 1
  fi
}

# ------------------------------------------------------------------- 0. prerequisites

setup_prereqs() {
  local missing=()
  command -v cargo >/dev/null 2>&1 || missing+=("cargo (rustup: https://rustup.rs, then 'rustup default stable')")
  command -v rustup >/dev/null 2>&1 || missing+=("rustup (https://rustup.rs)")
  command -v node >/dev/null 2>&1 || missing+=("node >= $NODE_MIN_VERSION (Node 20 LTS)")
  command -v npm >/dev/null 2>&1 || missing+=("npm (comes with Node)")
  if [ ${#missing[@]} -gt 0 ]; then
    fail "missing prerequisites:" "${missing[@]}"
    return 1
  fi
  local nv
  nv=$(node --version | sed 's/^v//')
  version_ge "$nv" "$NODE_MIN_VERSION" ||
    { fail "node $nv is too old: wrangler 4.86 needs >= $NODE_MIN_VERSION" "install Node 20 LTS"; return 1; }
  mkdir -p "$SETUP_DIR/logs"
  say "prerequisites: $(cargo --version | cut -d' ' -f1-2), rustup, node v$nv, npm $(npm --version 2>/dev/null) ... ok"
}

# -------------------------------------------------------------- 1. the wasm32 target

rustup_has_wasm32() { rustup target list --installed 2>/dev/null | grep -qx "$WASM_TARGET"; }

debian_web_ready() {
  rustup toolchain list 2>/dev/null | grep -q "^$DEBIAN_WEB_TOOLCHAIN" &&
    [ -x /usr/bin/rustc ] &&
    compgen -G "$DEBIAN_WEB_LIBDIR/libstd-*.rlib" >/dev/null &&
    [ "$(cat "$DEBIAN_WEB_STAMP" 2>/dev/null)" = "$(/usr/bin/rustc -V 2>/dev/null)" ]
}

setup_wasm_target() {
  local recorded
  recorded=$(cat "$SETUP_DIR/wasm-toolchain" 2>/dev/null || true)
  if [ "${SEALSYNC_WASM_ROUTE:-}" != debian ]; then
    if rustup_has_wasm32; then
      say "wasm32 target: $WASM_TARGET already present in rustup's default toolchain"
      printf '' >"$SETUP_DIR/wasm-toolchain"
      return 0
    fi
    if [ "$recorded" = "$DEBIAN_WEB_TOOLCHAIN" ] && debian_web_ready; then
      say "wasm32 target: '$DEBIAN_WEB_TOOLCHAIN' toolchain (Debian route) already present"
      return 0
    fi
    local t=${SEALSYNC_RUSTUP_TIMEOUT:-120}
    say "wasm32 target: installing with 'rustup target add $WASM_TARGET' (timeout ${t}s) ..."
    timeout "$t" rustup target add "$WASM_TARGET" || say "wasm32 target: rustup did not finish (exit $?)"
    if rustup_has_wasm32; then
      say "wasm32 target: installed by rustup"
      printf '' >"$SETUP_DIR/wasm-toolchain"
      return 0
    fi
    say "wasm32 target: rustup could not install it; taking the Debian route"
  else
    say "wasm32 target: SEALSYNC_WASM_ROUTE=debian, taking the Debian route"
  fi
  setup_wasm_debian_route || return 1
  printf '%s\n' "$DEBIAN_WEB_TOOLCHAIN" >"$SETUP_DIR/wasm-toolchain"
}

# The Debian route: rustc-web + its library source, a wasm32 std built once into /usr's
# sysroot, and `rustup toolchain link debian-web /usr`. Later builds are plain stable builds
# with RUSTUP_TOOLCHAIN=debian-web.
setup_wasm_debian_route() {
  local p missing=()
  for p in "${DEBIAN_WEB_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "debian route: installing ${missing[*]} (apt, ~1-2 min) ..."
    apt_install "${DEBIAN_WEB_PACKAGES[@]}" || return 1
  else
    say "debian route: ${DEBIAN_WEB_PACKAGES[*]} already installed"
  fi
  local src=/usr/lib/rustlib/src/rust/library
  [ -d "$src" ] || { fail "no Rust library source at $src" "apt-get install -y rust-web-src"; return 1; }

  local want
  want=$(/usr/bin/rustc -V)
  if compgen -G "$DEBIAN_WEB_LIBDIR/libstd-*.rlib" >/dev/null &&
    [ "$(cat "$DEBIAN_WEB_STAMP" 2>/dev/null)" = "$want" ]; then
    say "debian route: wasm32 std for $want already in $DEBIAN_WEB_LIBDIR"
  else
    say "debian route: building the wasm32 std from $src with $want (~40 s) ..."
    local tmp log=$SETUP_DIR/logs/wasm32-std.log
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/sealsync-wasm-std.XXXXXX")
    mkdir -p "$tmp/src"
    cat >"$tmp/Cargo.toml" <<'EOF'
[package]
name = "sealsync_wasm_std_build"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "src/lib.rs"

[profile.release]
opt-level = 3
codegen-units = 1

[workspace]
EOF
    : >"$tmp/src/lib.rs"
    if ! (cd "$tmp" && env -u RUSTUP_TOOLCHAIN -u RUSTC -u RUSTDOC -u RUSTFLAGS -u CARGO_BUILD_TARGET \
      PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$tmp/target" \
      /usr/bin/cargo build --release --target "$WASM_TARGET" -Zbuild-std=std,panic_abort) >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      fail "building the wasm32 std failed (log: ${log#"$SEALSYNC_ROOT"/}; crate kept in $tmp)"
      return 1
    fi
    local deps=$tmp/target/$WASM_TARGET/release/deps rlibs=() f
    for f in "$deps"/*.rlib; do
      case ${f##*/} in libsealsync_wasm_std_build-*) ;; *) rlibs+=("$f") ;; esac
    done
    [ ${#rlibs[@]} -gt 0 ] || { fail "no rlibs in $deps"; return 1; }
    as_root mkdir -p "$DEBIAN_WEB_LIBDIR" || return 1
    as_root find "$DEBIAN_WEB_LIBDIR" -maxdepth 1 -name '*.rlib' -delete || return 1
    as_root cp "${rlibs[@]}" "$DEBIAN_WEB_LIBDIR/" || return 1
    printf '%s\n' "$want" | as_root tee "$DEBIAN_WEB_STAMP" >/dev/null || return 1
    rm -rf "$tmp"
    say "debian route: copied ${#rlibs[@]} rlibs into $DEBIAN_WEB_LIBDIR"
  fi

  if rustup toolchain list 2>/dev/null | grep -q "^$DEBIAN_WEB_TOOLCHAIN"; then
    say "debian route: rustup toolchain '$DEBIAN_WEB_TOOLCHAIN' already linked"
  else
    say "debian route: rustup toolchain link $DEBIAN_WEB_TOOLCHAIN /usr"
    rustup toolchain link "$DEBIAN_WEB_TOOLCHAIN" /usr || return 1
  fi

  # Smoke test: link a tiny cdylib for wasm32 with that toolchain (std + rust-lld).
  local smoke
  smoke=$(mktemp -d "${TMPDIR:-/tmp}/sealsync-wasm-smoke.XXXXXX")
  printf '#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 { a + b }\n' >"$smoke/lib.rs"
  if ! RUSTUP_TOOLCHAIN=$DEBIAN_WEB_TOOLCHAIN rustc --edition 2021 --target "$WASM_TARGET" \
    --crate-type cdylib -O -o "$smoke/smoke.wasm" "$smoke/lib.rs" 2>"$smoke/err"; then
    cat "$smoke/err" >&2
    fail "the $DEBIAN_WEB_TOOLCHAIN toolchain cannot build for $WASM_TARGET" \
      "check: RUSTUP_TOOLCHAIN=$DEBIAN_WEB_TOOLCHAIN rustc --print target-libdir --target $WASM_TARGET"
    return 1
  fi
  rm -rf "$smoke"
  say "debian route: '$DEBIAN_WEB_TOOLCHAIN' builds for $WASM_TARGET ... ok"
}

# ------------------------------------------------------------------- 2. apt packages

setup_apt() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    say "chromium: /usr/bin/chromium and /usr/bin/chromedriver already present"
    return 0
  fi
  say "chromium: installing chromium chromium-driver (apt, ~1 min) ..."
  apt_install chromium chromium-driver || return 1
  say "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
}

# --------------------------------------------------------------------- 3. npm tools

setup_npm_tools() {
  local tools=$SEALSYNC_ROOT/tools lock=$SEALSYNC_ROOT/tools/package-lock.json
  local stamp=$SETUP_DIR/npm-tools.sha256 want
  [ -f "$lock" ] || { fail "missing $lock (it is committed; restore it with git checkout)"; return 1; }
  want=$(cat "$tools/package.json" "$lock" | sha256sum | cut -d' ' -f1)
  if [ -f "$tools/node_modules/.package-lock.json" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
    [ -x "$tools/node_modules/.bin/wrangler" ]; then
    say "npm tools: tools/node_modules matches tools/package-lock.json"
    return 0
  fi
  say "npm tools: npm ci --prefix tools (wrangler, esbuild, binaryen, playwright-core, ws; ~30 s) ..."
  local log=$SETUP_DIR/logs/npm-ci.log
  if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$tools" --no-audit --no-fund >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    fail "npm ci --prefix tools failed (log: ${log#"$SEALSYNC_ROOT"/})" \
      "check that the npm registry is reachable: npm ping"
    return 1
  fi
  printf '%s\n' "$want" >"$stamp"
  say "npm tools: installed ($("$tools/node_modules/.bin/wrangler" --version 2>/dev/null | tail -n1 | sed 's/^ *//'))"
}

# -------------------------------------------------------------------- 4. cargo tools

# Wait while another `cargo install NAME` is running (a second concurrent build of the
# same tool would only race it for the same files).
wait_for_other_install() {
  local name=$1 waited=0 pids
  command -v pgrep >/dev/null 2>&1 || return 0 # no procps: nothing to look at
  while pids=$(pgrep -f "cargo install .*$name( |$)" 2>/dev/null) && [ -n "$pids" ]; do
    [ $((waited % 60)) = 0 ] && say "$name: another 'cargo install $name' is running (pid $(echo "$pids" | tr '\n' ' ')), waiting for it ..."
    sleep 10
    waited=$((waited + 10))
    [ "$waited" -ge 3600 ] && { fail "waited an hour for pid $pids to finish installing $name"; return 1; }
  done
  return 0
}

# tool_version BIN: the version `BIN --version` prints ("wasm-pack 0.15.1", or just "0.8.7").
tool_version() { "$1" --version 2>/dev/null | head -n1 | awk '{sub(/^v/, "", $NF); print $NF}'; }

# cargo_tool CRATE BIN VERSION: make sure `BIN --version` says VERSION, else cargo install.
cargo_tool() {
  local crate=$1 bin=$2 version=$3 have log
  have=$(tool_version "$bin") || true
  if [ "$have" = "$version" ]; then
    say "$crate: $bin $version already installed"
    return 0
  fi
  wait_for_other_install "$crate" || return 1
  have=$(tool_version "$bin") || true
  if [ "$have" = "$version" ]; then
    say "$crate: $bin $version installed (by the other install)"
    return 0
  fi
  log=$SETUP_DIR/logs/cargo-install-$crate.log
  say "$crate: installing $version${have:+ (found $have)} with cargo install (a few minutes; log: ${log#"$SEALSYNC_ROOT"/}) ..."
  if env -u CARGO_TARGET_DIR cargo install --locked "$crate" --version "$version" >"$log" 2>&1; then
    :
  else
    say "$crate: 'cargo install --locked' failed ($(grep -m1 '^error' "$log" || echo 'see log')); retrying without --locked ..."
    if ! env -u CARGO_TARGET_DIR cargo install "$crate" --version "$version" >>"$log" 2>&1; then
      tail -n 20 "$log" >&2
      fail "cargo install $crate --version $version failed (log: ${log#"$SEALSYNC_ROOT"/})" \
        "try it by hand: cargo install $crate --version $version"
      return 1
    fi
  fi
  have=$(tool_version "$bin") || true
  [ "$have" = "$version" ] || {
    fail "$bin --version says '${have:-nothing}' after installing $version" \
      "PATH finds $(command -v "$bin" || echo "no $bin"); cargo installs into ${CARGO_HOME:-$HOME/.cargo}/bin"
    return 1
  }
  say "$crate: $bin $version installed"
}

setup_cargo_tools() {
  local wb worker
  wb=$(lock_version wasm-bindgen)
  [ -n "$wb" ] || { fail "no wasm-bindgen in Cargo.lock" "run 'cargo generate-lockfile' (the SDK depends on wasm-bindgen)"; return 1; }
  worker=$(lock_version worker)
  if [ -z "$worker" ]; then
    worker=$WORKER_BUILD_DEFAULT_VERSION
    say "worker-build: no 'worker' crate in Cargo.lock yet; using $worker"
  fi
  cargo_tool wasm-bindgen-cli wasm-bindgen "$wb" || return 1
  cargo_tool wasm-pack wasm-pack "$WASM_PACK_VERSION" || return 1
  cargo_tool worker-build worker-build "$worker" || return 1
}

# ------------------------------------------------------------------ the environment

# Exports what the later steps of ./run (and the test hook scripts) use. Call after setup.
setup_export_env() {
  local cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin tools_bin=$SEALSYNC_ROOT/tools/node_modules/.bin
  case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH=$cargo_bin:$PATH ;; esac
  export PATH=$PATH:$tools_bin
  export SEALSYNC_ROOT
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SEALSYNC_ROOT/target}
  SEALSYNC_WASM_TOOLCHAIN=$(cat "$SETUP_DIR/wasm-toolchain" 2>/dev/null || true)
  export SEALSYNC_WASM_TOOLCHAIN
  export WRANGLER_BIN=$tools_bin/wrangler
  export WRANGLER_SEND_METRICS=false
  # esbuild's own binary for this architecture (the npm wrapper re-execs it).
  local arch
  case $(uname -m) in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
  esac
  local esb=$SEALSYNC_ROOT/tools/node_modules/@esbuild/linux-$arch/bin/esbuild
  [ -x "$esb" ] || esb=$tools_bin/esbuild
  export ESBUILD_BIN=$esb
  export WASM_OPT_BIN=$tools_bin/wasm-opt
  WASM_BINDGEN_BIN=$(command -v wasm-bindgen || true)
  export WASM_BINDGEN_BIN
  # A Chromium chosen by the caller stays chosen.
  export CHROMIUM_BIN=${CHROMIUM_BIN:-/usr/bin/chromium}
  export CHROME_BIN=${CHROME_BIN:-$CHROMIUM_BIN}
  export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  export NODE_PATH=$SEALSYNC_ROOT/tools/node_modules${NODE_PATH:+:$NODE_PATH}
}

setup_all() {
  local start=$SECONDS
  setup_prereqs || return 1
  setup_wasm_target || return 1
  setup_apt || return 1
  setup_npm_tools || return 1
  setup_cargo_tools || return 1
  setup_export_env
  say "done in $((SECONDS - start)) s (wasm32 toolchain: ${SEALSYNC_WASM_TOOLCHAIN:-rustup default})"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  setup_all
fi
