// The React case (`sealsync/react`), built with esbuild in development mode (so that
// StrictMode mounts, unmounts and mounts again): a board of tasks from the room named in the
// page's query, with memoised items counting their renders. bundlers.test.mjs drives it
// through `window.probe`.
import { StrictMode, createElement as h, memo, useState } from "react";
import { createRoot } from "react-dom/client";
import { Room } from "sealsync";
import { useCollection, useMembers, usePresence, useRoom, useStatus } from "sealsync/react";
import wasmUrl from "sealsync/sealsync_bg.wasm";

const q = new URLSearchParams(location.search);
const probe = (window.probe = { joined: [], renders: {}, warnings: [], app: null });

// Count the joins the hook makes (Room.join is looked up when called).
const join = Room.join;
Room.join = (options) => join(options).then((room) => (probe.joined.push(room), room));

const Task = memo(function Task({ task }) {
  probe.renders[task.id] = (probe.renders[task.id] || 0) + 1;
  return h("li", { "data-id": task.id }, task.title);
});

function Board() {
  const [, setTick] = useState(0);
  probe.rerender = () => setTick((n) => n + 1);
  // Inline options object and function, new on every render: must not join again.
  const { room, error } = useRoom({
    url: q.get("relay"),
    room: q.get("room"),
    password: q.get("password"),
    persist: false,
    wasm: wasmUrl,
    onWarning: (w) => probe.warnings.push(w),
  });
  const tasks = useCollection(room, "tasks");
  const status = useStatus(room);
  const presence = usePresence(room);
  const members = useMembers(room);
  probe.app = { room, error: error && { code: error.code, message: error.message }, tasks, status, presence, members };
  return h(
    "div",
    null,
    h("p", { id: "status" }, status ? status.state : "none"),
    h("p", { id: "presence" }, presence === null ? "?" : String(presence)),
    h("p", { id: "members" }, String(members.length)),
    h("ul", null, tasks.map((t) => h(Task, { key: t.id, task: t }))),
  );
}

function App() {
  const [shown, setShown] = useState(true);
  probe.unmount = () => setShown(false);
  return shown ? h(Board) : h("p", { id: "status" }, "unmounted");
}

createRoot(document.getElementById("root")).render(h(StrictMode, null, h(App)));
