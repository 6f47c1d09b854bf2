// The key-derivation thread of sealsync/node (node.js starts it with worker_threads). It
// gives kdf-worker.js, the browser's worker, the `self` it expects, so both run the same
// code: `self.onmessage` receives { module, room, password }, `self.postMessage` answers.
import { parentPort } from "node:worker_threads";

globalThis.self = globalThis;
globalThis.postMessage = (message, transfer) => parentPort.postMessage(message, transfer);
await import("./kdf-worker.js");
// Node queues the messages posted before this listener exists.
parentPort.on("message", (data) => globalThis.onmessage({ data }));
