// Type-level test of pkg/sealsync.d.ts: compiles under --strict, and the @ts-expect-error
// lines prove misuse is rejected. tests/bundlers/run.sh runs it with the typescript pinned there:
//   tsc --noEmit --strict --target es2022 --module esnext --moduleResolution bundler \
//       --lib es2022,dom tests/types/usage.ts
import init, { Room, SealsyncError, type Status, type Change, type Rejected, type Operation, type ErrorCode, type Entity, type Warning, type SyncState, type Member } from "../../pkg/sealsync.js";
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
// Objects typed by an interface are accepted; values JSON cannot hold are not.
interface Task { title: string; done: boolean; note?: string; tags?: string[]; meta?: { at: number } }
const task: Task = { title: "typed", done: false, tags: ["a"] };
const taskId: string = room.create("tasks", task);
room.update("tasks", taskId, { done: true } as Partial<Task>);
// @ts-expect-error a Date is not JSON
room.create("tasks", { title: "x", due: new Date() });
// @ts-expect-error a bigint is not JSON
room.update("tasks", taskId, { n: 1n });
// @ts-expect-error a function is not JSON
room.create("tasks", { title: "x", run: () => 1 });
// @ts-expect-error undefined inside an array is not JSON
room.create("tasks", { list: [1, undefined] });
room.broadcast({ x: 1, y: 2 });
// @ts-expect-error broadcast takes a JSON value
room.broadcast(undefined);
// Who is online: a profile in, a typed member list out.
await Room.join({ url: "ws://x", room: "r", password: "p", profile: { name: "Ada", color: "#c33" } });
await Room.join({ url: "ws://x", room: "r", password: "p", members: false });
room.setProfile({ name: "Ada", color: "#c33" });
// @ts-expect-error a profile is JSON
room.setProfile({ since: new Date() });
const online: readonly Member[] = room.members;
for (const m of online) { const s: string = m.session; const me: boolean = m.isSelf; console.log(s, me, m.profile); }
room.on("members", (list) => { const n: number = list.length; console.log(n, list[0]?.profile); });
// @ts-expect-error the member list is read-only
room.members.push(online[0]);
// get<T>: typed, read-only entities in a read-only array.
const tasks: readonly Entity<Task>[] = room.get<Task>("tasks");
const first = tasks[0]; if (first) { const title: string = first.title; const id2: string = first.id; console.log(title, id2, first.tags?.[0]); }
// @ts-expect-error the array is frozen
room.get("tasks").push(first);
// @ts-expect-error entities are frozen
if (first) first.title = "changed";
// A runtime class with the exact union of codes.
try { room.delete("tasks", taskId); } catch (e) {
  if (e instanceof SealsyncError) {
    const code: ErrorCode = e.code;
    const name: "SealsyncError" = e.name;
    console.log(code, name, e.message, e instanceof Error);
    // @ts-expect-error not a code the SDK produces
    if (e.code === "NOT_A_CODE") console.log("never");
  }
}
const idle: Status = { state: "idle" };
console.log(idle);
await Room.join({ url: "ws://x", room: "r", secret: "s", onWarning: (w: Warning) => console.log(w.code === "KDF_WORKER_FAILED", w.message) });
// The local copy and where changes are (issue 12).
const sync: SyncState = room.sync;
const since: number | null = sync.offlineSince;
room.on("sync", (s) => console.log(s.pending, s.savedLocally, s.savedOnRelay, since));
const where: "persistent" | "memory" = room.storage;
await Room.forget("r");
await Room.join({ url: "ws://x", room: "r", secret: "s", requestPersistence: true });
console.log(where);
// @ts-expect-error storage is read-only
room.storage = "memory";
