// The SDK on the server: `sealsync/node` beside the browser SDK, against the real relay.
// The package (a copy of pkg/) and `ws` are installed into a temporary app directory, as
// npm would, and the examples in examples/node/ run there unchanged as child processes:
// the API server (todo-api.mjs) and the import script (import-todos.mjs). A page in headless
// Chromium holds the same room. Run with tests/e2e/run.sh (node --test).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";

import { ROOT, freePort, readyPage, roomName, useScene, waitCount, waitLive } from "./harness.mjs";

const PASSWORD = "node and browser, one room";
const PAGE = `<!doctype html><meta charset="utf-8"><title>node</title>
<script type="module">
import init, * as sealsync from "/pkg/index.js";
await init();
window.sealsync = sealsync;
window.ready = true;
</script>`;

let app; // the app directory, in scene.dir

// A relay, the test page (with pkg/ as built), Chromium, and the app directory.
const scene = useScene({
  relays: { relay: [] },
  page: PAGE,
  async setup() {
    app = join(scene.dir, "app");
    mkdirSync(join(app, "node_modules"), { recursive: true });
    cpSync(join(ROOT, "pkg"), join(app, "node_modules", "sealsync"), { recursive: true });
    symlinkSync(join(ROOT, "tools", "node_modules", "ws"), join(app, "node_modules", "ws"), "dir");
    writeFileSync(join(app, "package.json"), JSON.stringify({ type: "module", private: true }));
    for (const f of readdirSync(join(ROOT, "examples", "node"))) cpSync(join(ROOT, "examples", "node", f), join(app, f));
  },
});

/** A page that joined `room` with the password; `window.room` is the room, live. */
async function member(room) {
  const tab = await readyPage(scene.browser, scene.site.url + "/");
  await tab.page.evaluate(async ({ url, room, password }) => {
    window.room = await window.sealsync.Room.join({ url, room, password, persist: false });
  }, { url: scene.relay.url, room, password: PASSWORD });
  await waitLive(tab.page);
  return tab;
}

function titles(page) {
  return page.evaluate(() => window.room.get("todos").map((t) => t.title).sort());
}

/** Starts `node <script> ...args` in the app directory; resolves with the process and a reader of its output. */
function run(script, args, env) {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: app,
    env: { ...process.env, SEALSYNC_URL: scene.relay.url, SEALSYNC_PASSWORD: PASSWORD, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  child.stderr.on("data", (d) => { out += d; });
  const exited = new Promise((ok) => child.once("exit", (code) => ok(code)));
  return {
    child,
    exited,
    output: () => out,
    /** Resolves with the first match of `pattern` in the output (fails after 60 s). */
    async waitFor(pattern) {
      for (let i = 0; i < 600; i++) {
        const m = out.match(pattern);
        if (m) return m;
        const code = await Promise.race([exited, new Promise((ok) => setTimeout(() => ok(undefined), 100))]);
        if (code !== undefined) break;
      }
      throw new Error(`${script}: no ${pattern} in its output:\n${out}`);
    },
  };
}

test("the API example and a browser tab write the same room: each change reaches the other", async () => {
  const room = roomName("node-api");
  const tab = await member(room);
  const api = run("todo-api.mjs", [], { SEALSYNC_ROOM: room, PORT: "0" });
  try {
    const [, base] = await api.waitFor(/listening on (http:\/\/\S+)/);
    // Argon2id ran in a worker_threads thread, not on the server's event loop.
    await api.waitFor(/key derived in \d+ ms, in a worker thread/);
    const res = await fetch(`${base}/todos`, { method: "POST", body: JSON.stringify({ title: "from the API" }) });
    assert.equal(res.status, 201);
    const { id } = await res.json();
    await tab.page.waitForFunction((id) => window.room.get("todos").some((t) => t.id === id), id, { timeout: 10_000 });

    const fromTab = await tab.page.evaluate(() => window.room.create("todos", { title: "from the tab", done: false }));
    await api.waitFor(new RegExp(`member change: created todos/${fromTab}`));
    const listed = await (await fetch(`${base}/todos`)).json();
    assert.deepEqual(listed.map((t) => t.title).sort(), ["from the API", "from the tab"]);

    await tab.page.evaluate((id) => window.room.update("todos", id, { done: true }), id);
    await api.waitFor(new RegExp(`member change: updated todos/${id} \\{"done":true\\}`));
    assert.equal((await fetch(`${base}/todos`, { method: "POST", body: "{}" })).status, 400);
    assert.doesNotMatch(api.output(), /warning|Error/, api.output());
    assert.deepEqual(tab.errors, []);
  } finally {
    api.child.kill("SIGTERM");
    assert.equal(await api.exited, 0, api.output());
    await tab.close();
  }
});

test("the import example writes 300 todos a tab sees, and exits 1 on a wrong password", async () => {
  const room = roomName("node-import");
  const tab = await member(room);
  try {
    const todos = Array.from({ length: 300 }, (_, i) => ({ title: `imported ${String(i).padStart(3, "0")}`, done: i % 2 === 0 }));
    writeFileSync(join(app, "todos.json"), JSON.stringify(todos));
    const ok = run("import-todos.mjs", ["todos.json"], { SEALSYNC_ROOM: room });
    assert.equal(await ok.exited, 0, ok.output());
    assert.match(ok.output(), /imported 300 todos/);
    await waitCount(tab.page, 300, "todos", 20_000);
    assert.deepEqual(await titles(tab.page), todos.map((t) => t.title));

    const wrong = run("import-todos.mjs", ["todos.json"], { SEALSYNC_ROOM: room, SEALSYNC_PASSWORD: "not the password" });
    assert.equal(await wrong.exited, 1, wrong.output());
    assert.match(wrong.output(), /import failed: the room is wrong-password/);
    assert.equal((await titles(tab.page)).length, 300);
  } finally {
    await tab.close();
  }
});

test("fileStorage: changes made while the relay is unreachable are sent by the next process", async () => {
  const room = roomName("node-offline");
  const store = join(scene.dir, "store");
  const { Room, fileStorage } = await import(pathToFileURL(join(app, "node_modules", "sealsync", "node.js")).href);
  const dead = `ws://127.0.0.1:${await freePort()}`;
  const offline = await Room.join({ url: dead, room, password: PASSWORD, storage: fileStorage(store) });
  offline.create("todos", { title: "written offline", done: false });
  assert.equal(offline.pendingChanges, 1);
  await offline.leave();
  assert.equal(readdirSync(store).length, 1, "one room directory");

  const tab = await member(room);
  try {
    const api = run("todo-api.mjs", [], { SEALSYNC_ROOM: room, PORT: "0", SEALSYNC_STORE: store });
    try {
      await tab.page.waitForFunction(() => window.room.get("todos").some((t) => t.title === "written offline"), null, { timeout: 20_000 });
    } finally {
      api.child.kill("SIGTERM");
      assert.equal(await api.exited, 0, api.output());
    }
    // Sent and acknowledged: no outbox file is left.
    assert.deepEqual(readdirSync(join(store, readdirSync(store)[0])), []);
  } finally {
    await tab.close();
  }
});

test("sealsync/node in this process: concurrent joins of a new room, storage options and failures", async () => {
  const { Room, SealsyncError } = await import(pathToFileURL(join(app, "node_modules", "sealsync", "node.js")).href);
  // The WebSocket the SDK gets sends the bytes it was given when send() was called: the SDK
  // sends views of wasm memory, which it reuses at once and which a growing memory detaches.
  // (`ws` as it comes compresses when the server offers it and reads a queued view later:
  // one in a few concurrent joins failed with WRONG_VERIFIER or WIRE_VERSION.)
  const { WebSocketServer } = await import(pathToFileURL(join(app, "node_modules", "ws", "wrapper.mjs")).href);
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: true });
  await new Promise((ok) => server.once("listening", ok));
  const received = [];
  const two = new Promise((ok) => server.once("connection", (s) => s.on("message", (data) => {
    received.push(new Uint8Array(data));
    if (received.length === 2) ok();
  })));
  const socket = new globalThis.WebSocket(`ws://127.0.0.1:${server.address().port}`);
  await new Promise((ok, fail) => { socket.onopen = ok; socket.onclose = () => fail(new Error("closed")); });
  const memory = new Uint8Array(8192).fill(7);
  socket.send(memory.subarray(100, 5100));
  memory.fill(9);
  socket.send(memory.subarray(100, 200));
  structuredClone(memory.buffer, { transfer: [memory.buffer] }); // detaches it, as memory.grow does
  await two;
  assert.deepEqual(received, [new Uint8Array(5000).fill(7), new Uint8Array(100).fill(9)]);
  socket.close();
  await new Promise((ok) => server.close(ok));

  // Three sessions joining a new room at once all go live.
  for (let round = 0; round < 3; round++) {
    const secret = Room.generateSecret();
    const rooms = await Promise.all([0, 1, 2].map(() => Room.join({ url: scene.relay.url, room: roomName(`node-race-${round}`), secret })));
    const states = await Promise.all(rooms.map((r) => new Promise((ok) => {
      const check = () => { if (!["idle", "connecting", "syncing"].includes(r.status.state)) ok(r.status.state); };
      r.on("status", check);
      check();
    })));
    await Promise.all(rooms.map((r) => r.leave()));
    assert.deepEqual(states, ["live", "live", "live"], `round ${round}`);
  }

  const dead = `ws://127.0.0.1:${await freePort()}`;
  const secret = Room.generateSecret();
  for (const [label, options] of [
    ["not an object", { storage: "files" }],
    ["no save", { storage: { load: async () => [] } }],
    ["with persist: false", { storage: { load: async () => [], save: async () => {} }, persist: false }],
  ]) {
    await assert.rejects(Room.join({ url: dead, room: "node-options", secret, ...options }), (e) => {
      assert.ok(e instanceof SealsyncError, label);
      assert.equal(e.code, "INVALID_OPTIONS", `${label}: ${e.message}`);
      return true;
    });
  }

  // Saves never overlap (each waits for the previous one), so the last one written is the
  // newest outbox, even when an earlier save takes longer than a later one would.
  let inFlight = 0;
  let most = 0;
  let saved = null;
  let delays = [40, 5, 30, 1, 20, 1, 1, 1];
  const slow = {
    load: async () => [],
    save: async (_room, _session, envelopes) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((ok) => setTimeout(ok, delays.shift() ?? 1));
      saved = envelopes.length;
      inFlight--;
    },
  };
  const offline = await Room.join({ url: dead, room: roomName("node-slow"), secret, storage: slow });
  for (let i = 0; i < 5; i++) {
    offline.create("todos", { title: `slow ${i}` });
    await new Promise((ok) => setTimeout(ok, 2)); // a new task: one envelope, one save each
  }
  await offline.leave();
  assert.equal(most, 1, "two saves overlapped");
  assert.equal(saved, 5, "the last save holds all five envelopes");

  // A storage that fails: a STORAGE_FAILED warning, and the room works in memory.
  const warnings = [];
  const broken = { load: async () => { throw new Error("disk on fire"); }, save: async () => {} };
  const room = await Room.join({ url: scene.relay.url, room: roomName("node-broken"), secret, storage: broken, onWarning: (w) => warnings.push(w) });
  room.create("todos", { title: "still works" });
  await new Promise((ok) => { const off = room.on("pending", (n) => { if (n === 0) { off(); ok(); } }); });
  await room.leave();
  assert.equal(warnings.length, 1, JSON.stringify(warnings));
  assert.equal(warnings[0].code, "STORAGE_FAILED");
  assert.match(warnings[0].message, /storage\.load failed.*disk on fire/);
});
