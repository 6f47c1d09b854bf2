#!/usr/bin/env node
// Completes what `wasm-pack build --target web` wrote into a package directory (pkg/ by
// default), so that bundlers can use it as it is:
//
//   index.js        the package entry (js/package/index.js): re-exports the glue and
//                   registers the key-derivation worker, written as the literal
//                   `new Worker(new URL("./kdf-worker.js", import.meta.url), ...)` that
//                   Vite, webpack 5 and Turbopack detect;
//   kdf-worker.js   the worker (js/package/kdf-worker.js), also exported as
//                   `sealsync/kdf-worker` for a `kdfWorker` factory;
//   react.js        React hooks (js/package/react.js, types react.d.ts), exported as
//                   `sealsync/react`; React is an optional peer dependency;
//   node.js         the Node entry (js/package/node.js, types node.d.ts), exported as
//                   `sealsync/node`, with its key-derivation thread kdf-worker-node.js;
//                   `ws` is an optional peer dependency (for Node without a WebSocket);
//   package.json    `exports` (types, the entry, ./kdf-worker, the wasm file), `module`,
//                   `files` and `sideEffects` to match.
//
// wasm-bindgen copies only the snippets named by `#[wasm_bindgen(module = ...)]`, to
// snippets/<crate>-<hash>/js/, so index.js learns that directory here.
//
// Usage: node scripts/finish-pkg.mjs [PKG_DIR]    (./run's build_sdk calls it)
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const SOURCES = join(ROOT, "js", "package");
const pkgDir = resolve(process.argv[2] || join(ROOT, "pkg"));

function die(message) {
  console.error(`finish-pkg: ${message}`);
  process.exit(1);
}

const pkgJsonPath = join(pkgDir, "package.json");
if (!existsSync(pkgJsonPath)) die(`${pkgJsonPath} is missing: run wasm-pack build first`);
const pkg = JSON.parse(readFileSync(pkgJsonPath, "utf8"));
const glue = pkg.main;
if (glue !== "sealsync.js" && glue !== "index.js") die(`unexpected "main" in ${pkgJsonPath}: ${glue}`);
for (const f of ["sealsync.js", "sealsync.d.ts", "sealsync_bg.wasm"]) {
  if (!existsSync(join(pkgDir, f))) die(`${f} is missing in ${pkgDir}`);
}

// wasm-pack leaves files of earlier builds in snippets/ (the directory's hash names the
// crate, not the content): keep only the snippets the glue imports, so none is published.
const snippets = join(pkgDir, "snippets");
const imported = new Set(
  [...readFileSync(join(pkgDir, "sealsync.js"), "utf8").matchAll(/from '\.\/(snippets\/[^']+)'/g)].map((m) => m[1]),
);
for (const f of existsSync(snippets) ? readdirSync(snippets, { recursive: true }) : []) {
  const rel = `snippets/${f}`;
  if (statSync(join(pkgDir, rel)).isFile() && !imported.has(rel)) rmSync(join(pkgDir, rel));
}
// The snippet directory holding js/kdf.js (exactly one).
const dirs = [...imported].filter((f) => f.endsWith("/js/kdf.js")).map((f) => f.split("/")[1]);
if (dirs.length !== 1) die(`expected the glue to import one snippets/*/js/kdf.js, found ${dirs.length}`);

for (const entry of ["index.js", "node.js"]) {
  const source = readFileSync(join(SOURCES, entry), "utf8");
  if (!source.includes("__SNIPPET_DIR__")) die(`js/package/${entry} lost its __SNIPPET_DIR__ placeholder`);
  writeFileSync(join(pkgDir, entry), source.replaceAll("__SNIPPET_DIR__", dirs[0]));
}
for (const f of ["kdf-worker.js", "kdf-worker-node.js", "react.js", "react.d.ts", "node.d.ts"]) {
  copyFileSync(join(SOURCES, f), join(pkgDir, f));
}

pkg.main = "index.js";
pkg.module = "index.js";
pkg.types = "sealsync.d.ts";
pkg.exports = {
  ".": { types: "./sealsync.d.ts", default: "./index.js" },
  "./kdf-worker": "./kdf-worker.js",
  "./react": { types: "./react.d.ts", default: "./react.js" },
  "./node": { types: "./node.d.ts", default: "./node.js" },
  "./sealsync_bg.wasm": "./sealsync_bg.wasm",
  "./package.json": "./package.json",
};
const files = new Set(pkg.files || []);
for (const f of [
  "index.js", "kdf-worker.js", "react.js", "react.d.ts", "node.js", "node.d.ts", "kdf-worker-node.js",
  "sealsync.js", "sealsync.d.ts", "sealsync_bg.wasm", "snippets",
]) {
  files.add(f);
}
pkg.files = [...files];
// Only sealsync/react needs React, and only sealsync/node on a Node without a WebSocket
// needs ws; the SDK itself needs neither.
pkg.peerDependencies = { ...pkg.peerDependencies, react: ">=18", ws: ">=8" };
pkg.peerDependenciesMeta = { ...pkg.peerDependenciesMeta, react: { optional: true }, ws: { optional: true } };
// index.js registers the worker when it is evaluated; the snippets keep module state.
pkg.sideEffects = ["./index.js", "./node.js", "./snippets/*"];
writeFileSync(pkgJsonPath, JSON.stringify(pkg, null, 2) + "\n");
console.log(`finish-pkg: ${pkgDir}: index.js (snippets/${dirs[0]}), kdf-worker.js, react.js, node.js, package.json exports`);
