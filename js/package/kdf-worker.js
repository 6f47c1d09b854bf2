// The key-derivation worker (exported as `sealsync/kdf-worker`). `Room.join` starts it as a
// module worker and posts { module, room, password }: `module` is the page's compiled
// WebAssembly.Module, so nothing is fetched here. It answers { accepted: true } at once,
// then { ok: true, key } (32 bytes) or { ok: false, code, message }.
//
// It imports only the wasm-bindgen glue, which never starts a worker itself (the package's
// index.js does), so a bundler following this file's imports meets no `new Worker` again.
import init, { deriveRoomKey } from "./sealsync.js";

self.onmessage = async (e) => {
  self.postMessage({ accepted: true });
  const { module, room, password } = e.data || {};
  try {
    await init({ module_or_path: module });
    const key = deriveRoomKey(room, password);
    self.postMessage({ ok: true, key }, [key.buffer]);
  } catch (err) {
    self.postMessage({
      ok: false,
      code: err && typeof err.code === "string" ? err.code : undefined,
      message: String((err && err.message) || err),
    });
  }
};
