// esbuild emits no asset for `new URL("…wasm", import.meta.url)`: import the wasm file with
// `--loader:.wasm=file` and hand its URL to init.
import wasmUrl from "sealsync/sealsync_bg.wasm";
import { start } from "./main.js";

start({ module_or_path: wasmUrl });
