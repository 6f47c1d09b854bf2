// Type-level test of pkg/node.d.ts (`sealsync/node`) and the `storage` option; tests/bundlers/run.sh
// runs it like usage.ts.
import init, { Room, fileStorage, SealsyncError } from "../../pkg/node.js";
import type { OutboxStorage } from "../../pkg/node.js";

await init();
const files: OutboxStorage = fileStorage(".sealsync");
const room = await Room.join({ url: "ws://x", room: "r", password: "p", storage: files });
room.create("todos", { title: "x", done: false });
const memory = new Map<string, Uint8Array[]>();
const own: OutboxStorage = {
  load: async (name) => [...memory].filter(([k]) => k.startsWith(name + "/")).map(([k, envelopes]) => ({ session: k.slice(name.length + 1), envelopes })),
  save: async (name, session, envelopes, forget) => {
    memory.set(`${name}/${session}`, envelopes);
    for (const s of forget) memory.delete(`${name}/${s}`);
  },
};
await Room.join({ url: "ws://x", room: "r", secret: "s", storage: own });
console.log(new SealsyncError("STORAGE_FAILED", "x").code);
// @ts-expect-error fileStorage takes a directory path
fileStorage();
// @ts-expect-error a storage needs save
await Room.join({ url: "ws://x", room: "r", secret: "s", storage: { load: async () => [] } });
