// The app every bundler builds: joins the room named in the page's query
// (?relay=ws://…&room=…&password=…) and exposes what the test checks on `window.app`.
// It does what an application would: `import … from "sealsync"` and nothing else.
import init, { Room } from "sealsync";

export async function start(initArg, joinOptions = {}) {
  const app = (window.app = { progress: [], warnings: [], changes: [], error: null, room: null });
  try {
    await init(initArg);
    const q = new URLSearchParams(location.search);
    const room = await Room.join({
      url: q.get("relay"),
      room: q.get("room"),
      password: q.get("password"),
      persist: false,
      onProgress: (p) => app.progress.push(p),
      ...joinOptions,
    });
    room.on("warning", (w) => app.warnings.push(w));
    room.on("change", (c) => app.changes.push(c));
    room.on("status", (s) => (document.body.dataset.status = s.state));
    app.room = room;
  } catch (e) {
    app.error = { code: e.code, message: String(e.message || e) };
  }
  document.body.dataset.ready = "1";
}
