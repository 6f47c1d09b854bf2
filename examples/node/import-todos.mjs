// Imports todos from a JSON file (`[{ "title": "…", "done": false }, …]`) into a room, as a
// backend holding the room password does: every member's board shows them within a second.
//
//   SEALSYNC_URL=ws://127.0.0.1:8787 SEALSYNC_ROOM=team-todos SEALSYNC_PASSWORD=… \
//     node import-todos.mjs todos.json
//
// Exits once the relay has every todo (status 0), or with status 1 when the room refuses
// (a wrong password, say). With SEALSYNC_STORE set, todos not yet sent when the process is
// stopped are sent by the next run with the same directory.
import { readFileSync } from "node:fs";
import { allSent, joinFromEnv } from "./room.mjs";

const file = process.argv[2];
if (!file) {
  console.error("usage: node import-todos.mjs todos.json");
  process.exit(2);
}
const todos = JSON.parse(readFileSync(file, "utf8"));
// A one-off import: it does not show up in who is online.
const room = await joinFromEnv({ members: false });
try {
  for (const todo of todos) {
    room.create("todos", { title: String(todo.title), done: Boolean(todo.done) });
  }
  await allSent(room);
  console.log(`imported ${todos.length} todos`);
} catch (e) {
  console.error(`import failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  await room.leave();
}
