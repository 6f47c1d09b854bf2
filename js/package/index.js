// The package's entry: everything the wasm-bindgen glue exports, plus `SealsyncError`, the
// default key-derivation worker and the `NOT_INITIALIZED` guard.
// `new Worker(new URL("./kdf-worker.js", import.meta.url), ...)` is written out literally so
// bundlers (Vite, webpack 5, Turbopack) see the worker, bundle kdf-worker.js as its own entry
// and rewrite the URL. The factory runs only when a password room is joined. (Generated into
// pkg/ by scripts/finish-pkg.mjs from js/package/index.js.)
import { setDefaultKdfWorker } from "./snippets/__SNIPPET_DIR__/js/kdf.js";
import { SealsyncError } from "./snippets/__SNIPPET_DIR__/js/error.js";
import initGlue, { initSync as initSyncGlue, deriveRoomKey as deriveRoomKeyGlue, Room } from "./sealsync.js";

export * from "./sealsync.js";
export { SealsyncError };

// Calling into the wasm before `init()` resolved would fail deep in the glue with a
// TypeError; the calls that can come first fail with a coded error instead.
let ready = false;

function notInitialized(what) {
  return new SealsyncError(
    "NOT_INITIALIZED",
    `${what} was called before init() resolved: \`import init from "sealsync"; await init();\` first`,
  );
}

function initFailed(e) {
  return new SealsyncError("INIT_FAILED", `the wasm could not be loaded: ${(e && e.message) || e}`, { cause: e });
}

/**
 * Loads the wasm (once per page); see the glue's `__wbg_init`. A failure (fetch, compile)
 * rejects with a SealsyncError `INIT_FAILED` whose `cause` is the original error.
 */
export default async function init(moduleOrPath) {
  let exports;
  try {
    exports = await initGlue(moduleOrPath);
  } catch (e) {
    throw initFailed(e);
  }
  ready = true;
  return exports;
}

/** Synchronous variant of `init` (from a compiled `WebAssembly.Module` or bytes). */
export function initSync(module) {
  let exports;
  try {
    exports = initSyncGlue(module);
  } catch (e) {
    throw initFailed(e);
  }
  ready = true;
  return exports;
}

/** Argon2id of a room password (see the glue's `deriveRoomKey`). */
export function deriveRoomKey(room, password) {
  if (!ready) throw notInitialized("deriveRoomKey");
  return deriveRoomKeyGlue(room, password);
}

const join = Room.join;
Room.join = function (options) {
  if (!ready) return Promise.reject(notInitialized("Room.join"));
  return join.call(Room, options);
};
const forget = Room.forget;
Room.forget = function (room) {
  if (!ready) return Promise.reject(notInitialized("Room.forget"));
  return forget.call(Room, room);
};
for (const name of ["keyBetween", "generateSecret", "parseShareLink"]) {
  const original = Room[name];
  Room[name] = function (...args) {
    if (!ready) throw notInitialized(`Room.${name}`);
    return original.apply(Room, args);
  };
}

setDefaultKdfWorker(
  () => new Worker(new URL("./kdf-worker.js", import.meta.url), { type: "module", name: "sealsync-kdf" }),
);
