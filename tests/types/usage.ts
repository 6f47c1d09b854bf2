// Type-level test of pkg/sealsync.d.ts: compiles under --strict, and the @ts-expect-error
// lines prove misuse is rejected. Run (with typescript installed anywhere):
//   tsc --noEmit --strict --target es2022 --module esnext --moduleResolution bundler \
//       --lib es2022,dom tests/types/usage.ts
import init, { Room, type Status, type Change, type SealsyncError, type Rejected, type Operation } from "../../pkg/sealsync.js";
await init();
const room = await Room.join({ url: "ws://x", room: "r", password: "p", onProgress: (p) => { if (p.state === "key-ready") console.log(p.ms, p.inWorker); } });
const off: () => void = room.on("status", (s: Status) => { if (s.state === "reconnecting") console.log(s.inMs + s.attempt); });
room.on("change", (c: Change) => console.log(c.type, c.fields, c.fromSelf));
room.on("presence", (n) => n.toFixed());
room.on("pending", (n) => n.toFixed());
const id: string = room.create("tasks", { title: "x", done: false });
room.update("tasks", id, { done: true });
room.reorder("tasks", [{ id, sortOrder: Room.keyBetween(null, null) }]);
room.claim("tasks", id, { claimedBy: "u" });
room.claim("tasks", id, null);
const moved: number = room.transact(() => {
  room.update("tasks", id, { done: true });
  room.transact(() => room.create("tasks", { title: "nested" }));
  return 2;
});
console.log(moved);
room.on("rejected", (r: Rejected) => {
  if (r.code === "READ_ONLY" || r.code === "TOO_LARGE") console.log(r.message);
  for (const op of r.ops) {
    const o: Operation = op;
    if (o.type === "created" || o.type === "updated") console.log(o.collection, o.id, o.fields);
    else if (o.type === "reordered") console.log(o.items.map((i) => i.sortOrder));
    else if (o.type === "claimed") console.log(o.claimedBy);
    else console.log(o.type === "deleted" && o.id);
  }
});
try { room.create("tasks", { title: "y" }); } catch (e) { console.log((e as SealsyncError).code === "READ_ONLY"); }
const t = room.get("tasks")[0]; console.log(t.id, t.sortOrder, t.title);
const link = Room.parseShareLink(room.shareLink()); if (link) console.log(link.secret);
try { room.delete("tasks", id); } catch (e) { console.log((e as SealsyncError).code === "ROOM_CLOSED"); }
await room.leave();
// @ts-expect-error unknown event
room.on("nope", () => {});
// @ts-expect-error transact takes a function
room.transact(42);
// @ts-expect-error a rejected event has no fromSelf
room.on("rejected", (r) => r.fromSelf);
// @ts-expect-error password and secret are exclusive
await Room.join({ url: "ws://x", room: "r", password: "p", secret: "s" });
await Room.join({ url: "ws://x", room: "r", password: "p", kdfWorker: () => new Worker(new URL("./kdf-worker.js", import.meta.url), { type: "module" }) });
// @ts-expect-error kdfWorker is a function returning a Worker, not a URL
await Room.join({ url: "ws://x", room: "r", password: "p", kdfWorker: "kdf-worker.js" });
off();
