// Argon2id off the main thread: the main-thread half. `Room.join` calls deriveInWorker with
// the compiled wasm module; it starts a module worker, hands it the module, the room and the
// password, and resolves with the 32-byte room key the worker posts back.
//
// The worker itself is a separate file at the package root, `kdf-worker.js` (source:
// js/package/kdf-worker.js). This snippet never names it: the package's entry, `index.js`
// (js/package/index.js), registers the factory that starts it, with the literal
// `new Worker(new URL("./kdf-worker.js", import.meta.url), { type: "module" })` bundlers
// detect. The worker imports the wasm-bindgen glue, and the glue imports this snippet: were
// the `new Worker(...)` here, the worker's own module graph would start the worker again
// (a cycle some bundlers never finish). An application can pass its own factory instead
// (`Room.join({ kdfWorker })`).
//
// Only the core's derivation errors pass through (a bad password or room id fails the same
// way on the main thread). Every other failure (no factory, a worker that does not load,
// throws, cannot read the message, posts something else, or does not accept the job in
// time) rejects with KDF_WORKER_FAILED, and the caller derives on the main thread.

import { SealsyncError } from "./error.js";

/** The core's codes for a derivation that failed on its own terms (src/kdf.rs lists the same). */
const CORE_CODES = ["EMPTY_PASSWORD", "INVALID_ROOM_ID", "KDF_FAILED"];

/**
 * How long a started worker has to acknowledge the job (load its script and the glue, and
 * receive the message) before the derivation moves to the main thread. The derivation
 * itself has no time limit.
 */
const ACCEPT_TIMEOUT_MS = 15000;

let defaultFactory;

/** Sets the factory `deriveInWorker` uses when `Room.join` was given none (index.js does). */
export function setDefaultKdfWorker(factory) {
  defaultFactory = factory;
}

/**
 * Derives the room key in a module worker. Resolves with a Uint8Array of 32 bytes; rejects
 * with a SealsyncError whose `code` is one of CORE_CODES, or KDF_WORKER_FAILED for anything else.
 */
export function deriveInWorker(module, room, password, factory) {
  return new Promise((resolve, reject) => {
    let worker;
    let timer;
    let settled = false;
    const finish = () => {
      settled = true;
      clearTimeout(timer);
      if (worker) {
        worker.onmessage = worker.onerror = worker.onmessageerror = null;
        try { worker.terminate(); } catch (_) { /* not a Worker: nothing to stop */ }
      }
    };
    const fail = (message, code) => {
      if (settled) return;
      finish();
      const passes = typeof code === "string" && CORE_CODES.includes(code);
      reject(new SealsyncError(passes ? code : "KDF_WORKER_FAILED", message));
    };
    const make = typeof factory === "function" ? factory : defaultFactory;
    if (typeof make !== "function") {
      fail("no key-derivation worker: import the package through its entry (\"sealsync\"), or pass Room.join({ kdfWorker })");
      return;
    }
    try {
      worker = make();
    } catch (e) {
      fail(`could not start the key-derivation worker: ${describe(e)}`);
      return;
    }
    if (!worker || typeof worker.postMessage !== "function") {
      worker = undefined;
      fail("the kdfWorker factory returned no Worker");
      return;
    }
    worker.onmessage = (e) => {
      const data = e && e.data;
      if (data && data.accepted === true) {
        clearTimeout(timer);
        return;
      }
      if (data && data.ok === true && data.key instanceof Uint8Array) {
        if (settled) return;
        finish();
        resolve(data.key);
        return;
      }
      if (data && data.ok === false) {
        fail(`key derivation in the worker failed: ${data.message || "no reason given"}`, data.code);
        return;
      }
      fail("the key-derivation worker answered with something else (is the kdfWorker factory starting sealsync/kdf-worker?)");
    };
    worker.onerror = (e) => {
      if (e && typeof e.preventDefault === "function") e.preventDefault();
      fail(`the key-derivation worker failed: ${(e && e.message) || "its script did not load"}`);
    };
    worker.onmessageerror = () => fail("the key-derivation worker could not read a message");
    timer = setTimeout(
      () => fail(`the key-derivation worker did not accept the job within ${ACCEPT_TIMEOUT_MS / 1000} s`),
      ACCEPT_TIMEOUT_MS,
    );
    try {
      worker.postMessage({ module, room, password });
    } catch (e) {
      fail(`could not send the job to the key-derivation worker: ${describe(e)}`);
    }
  });
}

function describe(e) {
  return String((e && e.message) || e);
}
