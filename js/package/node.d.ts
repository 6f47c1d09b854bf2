// sealsync/node: the browser entry's API, in Node 20+ (see node.js).
export * from "./sealsync.js";
import type { OutboxStorage } from "./sealsync.js";

/** The wasm was loaded when `sealsync/node` was imported: resolves at once. */
export default function init(): Promise<void>;

/**
 * Unsent changes kept in files under `dir` (sealed envelopes only), for
 * `Room.join({ storage: fileStorage(dir) })`. Without `storage`, Node keeps them in memory.
 */
export function fileStorage(dir: string): OutboxStorage;
