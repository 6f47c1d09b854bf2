// An HTTP API over a room's todos, as a backend holding the room password runs it:
//
//   POST /todos {"title": "…"}     creates a todo; 201 {"id", "pending"}
//   PATCH /todos/<id> {"done": true} updates it; 204
//   GET /todos                     the todos as the room has them now; 200 [...]
//
// It also reacts to what members do: every change another member makes is logged.
//
//   SEALSYNC_URL=ws://127.0.0.1:8787 SEALSYNC_ROOM=team-todos SEALSYNC_PASSWORD=… \
//     PORT=3000 node todo-api.mjs
import { createServer } from "node:http";
import { joinFromEnv } from "./room.mjs";

const room = await joinFromEnv({
  // The others see the API in who is online under this name.
  profile: { name: "Todo API", bot: true },
  onProgress: (p) => {
    if (p.state === "key-ready") console.log(`key derived in ${p.ms} ms, in a ${p.inWorker ? "worker thread" : "the main thread"}`);
  },
});
room.on("change", (c) => {
  if (!c.fromSelf) console.log(`member change: ${c.type} ${c.collection}/${c.id} ${JSON.stringify(c.fields)}`);
});

async function body(req) {
  let text = "";
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 64 * 1024) throw new Error("body too large");
  }
  return JSON.parse(text || "{}");
}

function send(res, status, value) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(value === undefined ? "" : JSON.stringify(value));
}

const server = createServer(async (req, res) => {
  try {
    const [, collection, id] = new URL(req.url, "http://x").pathname.split("/");
    if (collection !== "todos") return send(res, 404, { error: "not found" });
    if (req.method === "GET" && !id) return send(res, 200, room.get("todos"));
    if (req.method === "POST" && !id) {
      const { title } = await body(req);
      if (typeof title !== "string" || !title) return send(res, 400, { error: "title must be a non-empty string" });
      const created = room.create("todos", { title, done: false });
      return send(res, 201, { id: created, pending: room.pendingChanges });
    }
    if (req.method === "PATCH" && id) {
      const { done } = await body(req);
      room.update("todos", id, { done: Boolean(done) });
      return send(res, 204);
    }
    send(res, 405, { error: "method not allowed" });
  } catch (e) {
    // A SealsyncError has a code (INVALID_VALUE, READ_ONLY, …).
    send(res, 400, { error: e.message, code: e.code });
  }
});
server.listen(Number(process.env.PORT || 3000), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    server.close();
    await room.leave(); // unsent changes stay in SEALSYNC_STORE, when set
    process.exit(0);
  });
}
