// The `kdfWorker` option, for a tool that does not bundle the package's own worker: a
// factory starting `sealsync/kdf-worker` (webpack 5 resolves the package path in `new URL`).
import { start } from "./main.js";

window.kdfWorkerCalls = 0;
start(undefined, {
  kdfWorker: () => {
    window.kdfWorkerCalls++;
    return new Worker(new URL("sealsync/kdf-worker", import.meta.url), { type: "module" });
  },
});
