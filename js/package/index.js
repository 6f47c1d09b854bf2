// The package's entry: everything the wasm-bindgen glue exports, plus the default
// key-derivation worker. `new Worker(new URL("./kdf-worker.js", import.meta.url), ...)` is
// written out literally so bundlers (Vite, webpack 5, Turbopack) see the worker, bundle
// kdf-worker.js as its own entry and rewrite the URL. The factory runs only when a password
// room is joined. (Generated into pkg/ by scripts/finish-pkg.mjs from js/package/index.js.)
import { setDefaultKdfWorker } from "./snippets/__SNIPPET_DIR__/js/kdf.js";

export * from "./sealsync.js";
export { default } from "./sealsync.js";

setDefaultKdfWorker(
  () => new Worker(new URL("./kdf-worker.js", import.meta.url), { type: "module", name: "sealsync-kdf" }),
);
