// sealsync/node: the same `Room` API in Node 20+, for a backend that holds a room's password
// or secret (an import script, an API endpoint that writes a change, a bot that reacts to
// changes). What differs from the browser entry (index.js), and nothing else:
//
// - the wasm is loaded from the package directory when this module is imported, so `init()`
//   is not needed (it is exported, and resolves at once);
// - the WebSocket is Node's own (Node 22+) or, when Node has none, the `ws` package's (an
//   optional peer dependency); with neither, `Room.join` rejects with BROWSER_API;
// - the password's Argon2id runs in a `worker_threads` thread (kdf-worker-node.js);
// - unsent changes are kept in memory unless `storage` is given: `fileStorage(dir)` keeps
//   them in files, so a process that stops with unsent changes sends them when it (or
//   another process with the same directory) joins the room again.
//
// (Generated into pkg/ by scripts/finish-pkg.mjs from js/package/node.js.)
import { readFileSync } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import { join as joinPath } from "node:path";
import { Worker as ThreadWorker } from "node:worker_threads";
import { setDefaultKdfWorker } from "./snippets/__SNIPPET_DIR__/js/kdf.js";
import { SealsyncError } from "./snippets/__SNIPPET_DIR__/js/error.js";
import { initSync, Room } from "./index.js";

export * from "./index.js";

initSync({ module: readFileSync(new URL("./sealsync_bg.wasm", import.meta.url)) });

/** The wasm is already loaded (when this module was imported): resolves at once. */
export default async function init() {}

if (typeof globalThis.WebSocket !== "function") {
  let ws;
  try {
    ws = await import("ws");
  } catch {
    // Room.join says what to install.
  }
  if (ws) globalThis.WebSocket = browserLike(ws.WebSocket || ws.default);
}

// `ws` as the SDK needs a WebSocket to behave, as browsers' do:
// - `send` copies its bytes before returning. The SDK sends views of wasm memory, which
//   are reused at once; `ws` may read them later (compression is asynchronous), and a
//   HELLO whose proof was overwritten meanwhile fails with WRONG_VERIFIER.
// - no compression: frames are ciphertext, which does not compress.
// - an `error` with no listener does not throw (browsers report it as a `close`, 1006).
function browserLike(Base) {
  return class WebSocket extends Base {
    constructor(url, protocols) {
      super(url, protocols, { perMessageDeflate: false });
      this.on("error", () => {});
    }

    send(data) {
      super.send(ArrayBuffer.isView(data) ? data.slice() : data);
    }
  };
}

const join = Room.join;
Room.join = function (options) {
  if (typeof globalThis.WebSocket !== "function") {
    return Promise.reject(
      new SealsyncError("BROWSER_API", "this Node has no WebSocket: npm install ws (Node 22 and later have one built in)"),
    );
  }
  if (options && typeof options === "object" && options.storage == null && options.persist !== false && !globalThis.indexedDB) {
    // No IndexedDB here: without `storage`, unsent changes live in memory, as asked for.
    options = { ...options, persist: false };
  }
  return join.call(Room, options);
};

// The browser's module worker has the same job; this thread runs the same kdf-worker.js.
setDefaultKdfWorker(() => {
  const thread = new ThreadWorker(new URL("./kdf-worker-node.js", import.meta.url));
  const worker = {
    onmessage: null,
    onerror: null,
    onmessageerror: null,
    postMessage: (message, transfer) => thread.postMessage(message, transfer),
    terminate: () => thread.terminate(),
  };
  thread.on("message", (data) => worker.onmessage?.({ data }));
  thread.on("error", (e) => worker.onerror?.({ message: e && e.message }));
  thread.on("messageerror", () => worker.onmessageerror?.());
  return worker;
});

const SESSION = /^[0-9a-f]{1,64}$/;
const SUFFIX = ".outbox";

/**
 * Unsent changes kept in files under `dir`, for `Room.join({ storage })`: one directory per
 * room (named by a hash of the room id), one file per session with unsent changes, written
 * to a temporary file, flushed to disk and renamed over the old one. The files hold sealed
 * envelopes only (ciphertext). Processes sharing `dir` adopt each other's files when they
 * join (the relay drops what is sent twice).
 */
export function fileStorage(dir) {
  if (typeof dir !== "string" || dir === "") {
    throw new SealsyncError("INVALID_OPTIONS", "fileStorage(dir) takes a directory path");
  }
  const roomDir = (room) => joinPath(dir, createHash("sha256").update(room).digest("hex").slice(0, 32));
  const file = (room, session) => {
    if (!SESSION.test(session)) throw new SealsyncError("STORAGE_FAILED", `not a session id: ${JSON.stringify(session)}`);
    return joinPath(roomDir(room), session + SUFFIX);
  };
  return {
    async load(room) {
      let names;
      try {
        names = await readdir(roomDir(room));
      } catch (e) {
        if (e && e.code === "ENOENT") return [];
        throw e;
      }
      const records = [];
      for (const name of names) {
        const session = name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : "";
        if (!SESSION.test(session)) continue;
        records.push({ session, envelopes: decode(await readFile(joinPath(roomDir(room), name)), name) });
      }
      return records;
    },
    async save(room, session, envelopes, forget) {
      const target = file(room, session);
      if (envelopes.length === 0) {
        await rm(target, { force: true });
      } else {
        await mkdir(roomDir(room), { recursive: true });
        const temporary = `${target}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
        const handle = await open(temporary, "w");
        try {
          await handle.writeFile(encode(envelopes));
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(temporary, target);
      }
      for (const other of forget) await rm(file(room, other), { force: true });
    },
  };
}

// A record file: u32 count, then per envelope u32 length and its bytes (big-endian).
function encode(envelopes) {
  const total = 4 + envelopes.reduce((n, e) => n + 4 + e.length, 0);
  const out = Buffer.alloc(total);
  let at = out.writeUInt32BE(envelopes.length, 0);
  for (const e of envelopes) {
    at = out.writeUInt32BE(e.length, at);
    out.set(e, at);
    at += e.length;
  }
  return out;
}

function decode(bytes, name) {
  const bad = () => new SealsyncError("STORAGE_FAILED", `${name} is not an outbox file`);
  if (bytes.length < 4) throw bad();
  const count = bytes.readUInt32BE(0);
  const envelopes = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.length) throw bad();
    const length = bytes.readUInt32BE(at);
    at += 4;
    if (at + length > bytes.length) throw bad();
    envelopes.push(new Uint8Array(bytes.subarray(at, at + length)));
    at += length;
  }
  if (at !== bytes.length) throw bad();
  return envelopes;
}
