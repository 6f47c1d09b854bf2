// Argon2id off the main thread. This one file is both the helper the SDK calls on the main
// thread (deriveInWorker) and the worker script it starts (the `self.onmessage` below): the
// worker loads the same wasm module and calls its `deriveRoomKey` export, then posts the
// 32-byte room key back. wasm-bindgen copies this file to
// pkg/snippets/sealsync-<hash>/js/kdf-worker.js, so the package's glue is three levels up.

const GLUE = "../../../sealsync.js";

const inWorker =
  typeof WorkerGlobalScope !== "undefined" && globalThis instanceof WorkerGlobalScope;

/**
 * Derives the room key in a module worker. Resolves with a Uint8Array of 32 bytes; rejects
 * with an Error whose `code` is the core's error code, or KDF_WORKER_FAILED when the worker
 * could not run at all (the caller then derives on the main thread).
 */
export function deriveInWorker(module, room, password) {
  return new Promise((resolve, reject) => {
    const fail = (message, code) =>
      reject(Object.assign(new Error(message), { code: code || "KDF_WORKER_FAILED" }));
    let worker;
    try {
      worker = new Worker(new URL(import.meta.url), { type: "module", name: "sealsync-kdf" });
    } catch (e) {
      fail(`could not start the key-derivation worker: ${e && e.message}`);
      return;
    }
    worker.onmessage = (e) => {
      worker.terminate();
      if (e.data && e.data.ok) resolve(e.data.key);
      else fail((e.data && e.data.message) || "key derivation failed", e.data && e.data.code);
    };
    worker.onerror = (e) => {
      worker.terminate();
      fail(`the key-derivation worker failed: ${(e && e.message) || "it did not load"}`);
    };
    worker.postMessage({ module, room, password });
  });
}

if (inWorker) {
  globalThis.onmessage = async (e) => {
    const { module, room, password } = e.data || {};
    try {
      const glue = await import(new URL(GLUE, import.meta.url).href);
      await glue.default({ module_or_path: module });
      const key = glue.deriveRoomKey(room, password);
      globalThis.postMessage({ ok: true, key }, [key.buffer]);
    } catch (err) {
      globalThis.postMessage({
        ok: false,
        code: (err && err.code) || "KDF_WORKER_FAILED",
        message: String((err && err.message) || err),
      });
    }
  };
}
