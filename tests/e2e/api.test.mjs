// The JavaScript API through the package entry (pkg/index.js) as an application sees it, in
// headless Chromium: `SealsyncError` is a class every thrown or rejected error is an
// instance of (errors from the key-derivation worker and a failed `init()` included), a call
// before `init()` fails with NOT_INITIALIZED, and warnings reported before the first `warning` listener
// reach it when it comes late (as in a React effect). No relay is needed: the rooms point
// at a closed port and join offline. Run with tests/e2e/run.sh (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { SECRET, readyPage, useScene } from "./harness.mjs";

// The page imports the package but does not call init(): the tests decide when.
const PAGE = `<!doctype html><meta charset="utf-8"><title>api</title>
<script type="module">
import * as sealsync from "/pkg/index.js";
window.sealsync = sealsync;
window.describe = (e) => ({
  instance: e instanceof sealsync.SealsyncError,
  isError: e instanceof Error,
  name: e && e.name,
  code: e && e.code,
  message: e && e.message,
});
window.ready = true;
</script>`;

// The test page (with a copy of pkg/), Chromium, and a closed port for the rooms.
const scene = useScene({ page: PAGE, copyPkg: true, deadRelay: true });

/** A fresh test page, `window.DEAD_RELAY` the closed port; `errors` are its uncaught errors. */
function page() {
  return readyPage(scene.browser, scene.site.url + "/", { globals: { DEAD_RELAY: scene.deadRelay } });
}

test("before init(): Room.join rejects and the statics throw NOT_INITIALIZED; after it they work", async () => {
  const p = await page();
  const r = await p.page.evaluate(async () => {
    const { Room, deriveRoomKey } = window.sealsync;
    const out = {};
    try { await Room.join({ url: window.DEAD_RELAY, room: "r", secret: "x" }); out.join = "resolved"; } catch (e) { out.join = window.describe(e); }
    for (const [name, call] of [
      ["keyBetween", () => Room.keyBetween(null, null)],
      ["generateSecret", () => Room.generateSecret()],
      ["parseShareLink", () => Room.parseShareLink("#room=a&secret=b")],
      ["deriveRoomKey", () => deriveRoomKey("r", "pw")],
    ]) {
      try { call(); out[name] = "returned"; } catch (e) { out[name] = window.describe(e); }
    }
    await window.sealsync.default();
    out.after = typeof Room.keyBetween(null, null);
    return out;
  });
  for (const name of ["join", "keyBetween", "generateSecret", "parseShareLink", "deriveRoomKey"]) {
    assert.equal(r[name].code, "NOT_INITIALIZED", `${name}: ${JSON.stringify(r[name])}`);
    assert.equal(r[name].instance, true, name);
    assert.match(r[name].message, /init\(\)/);
  }
  assert.equal(r.after, "string");
  assert.deepEqual(p.errors, []);
  await p.close();
});

test("init() that cannot load the wasm rejects with INIT_FAILED, the browser's error as cause", async () => {
  const p = await page();
  const r = await p.page.evaluate(async () => {
    try { await window.sealsync.default({ module_or_path: "/pkg/no-such.wasm" }); return "resolved"; } catch (e) {
      return { ...window.describe(e), cause: e.cause instanceof Error };
    }
  });
  assert.equal(r.code, "INIT_FAILED", JSON.stringify(r));
  assert.equal(r.instance, true);
  assert.equal(r.cause, true);
  await p.close();
});

test("every error is a SealsyncError: join options, calls, values, a left room, the worker", async () => {
  const p = await page();
  const r = await p.page.evaluate(async (secret) => {
    const { Room, SealsyncError } = window.sealsync;
    await window.sealsync.default();
    const out = {};
    const rejects = async (label, promise) => { try { await promise; out[label] = "resolved"; } catch (e) { out[label] = window.describe(e); } };
    const throws = (label, call) => { try { call(); out[label] = "returned"; } catch (e) { out[label] = window.describe(e); } };
    await rejects("bothCredentials", Room.join({ url: window.DEAD_RELAY, room: "r", password: "pw", secret: "s" }));
    await rejects("badSecret", Room.join({ url: window.DEAD_RELAY, room: "r", secret: "short" }));
    // Through the package's worker: the core's EMPTY_PASSWORD comes back from it.
    await rejects("emptyPasswordInWorker", Room.join({ url: window.DEAD_RELAY, room: "r", password: "", persist: false }));
    const room = await Room.join({ url: window.DEAD_RELAY, room: "api-" + Date.now(), secret, persist: false });
    throws("date", () => room.create("tasks", { title: "x", due: new Date() }));
    throws("badName", () => room.create("bad name!", {}));
    throws("notAString", () => room.get(undefined));
    throws("unknownEvent", () => room.on("nope", () => {}));
    throws("keyBetween", () => Room.keyBetween("b", "a"));
    await room.leave();
    throws("closed", () => room.get("tasks"));
    const made = new SealsyncError("READ_ONLY", "made by hand");
    out.constructed = window.describe(made);
    return out;
  }, SECRET);
  const expected = {
    bothCredentials: "INVALID_OPTIONS", badSecret: "INVALID_SECRET", emptyPasswordInWorker: "EMPTY_PASSWORD",
    date: "INVALID_VALUE", badName: "INVALID_OPERATION", notAString: "INVALID_ARGUMENT",
    unknownEvent: "INVALID_ARGUMENT", keyBetween: "INVALID_OPERATION", closed: "ROOM_CLOSED", constructed: "READ_ONLY",
  };
  for (const [label, code] of Object.entries(expected)) {
    const e = r[label];
    assert.equal(e.code, code, `${label}: ${JSON.stringify(e)}`);
    assert.equal(e.instance, true, `${label} is a SealsyncError`);
    assert.equal(e.isError, true, `${label} is an Error`);
    assert.equal(e.name, "SealsyncError", label);
  }
  assert.match(r.date.message, /^fields\.due is a Date/);
  assert.deepEqual(p.errors, []);
  await p.close();
});

test("a warning fired right after join reaches a listener attached later, and onWarning", async () => {
  const p = await page();
  const r = await p.page.evaluate(async () => {
    const { Room } = window.sealsync;
    await window.sealsync.default();
    const failing = () => { throw new Error("no workers here"); };
    const base = { url: window.DEAD_RELAY, password: "hunter2", persist: false, kdfWorker: failing };
    // As React does: the listener is attached in an effect, well after join resolved.
    const room = await Room.join({ ...base, room: "late-" + Date.now() });
    await new Promise((ok) => setTimeout(ok, 300));
    const late = [];
    room.on("warning", (w) => late.push(w));
    const insideOn = late.length;
    await Promise.resolve();
    await new Promise((ok) => setTimeout(ok, 0));
    await room.leave();
    const early = [];
    const second = await Room.join({ ...base, room: "early-" + Date.now(), onWarning: (w) => early.push(w) });
    await new Promise((ok) => setTimeout(ok, 100));
    await second.leave();
    return { insideOn, late, early };
  });
  assert.equal(r.insideOn, 0, "delivered after on() returned");
  const kdf = (list) => list.filter((w) => w.code === "KDF_WORKER_FAILED");
  assert.equal(kdf(r.late).length, 1, JSON.stringify(r.late));
  assert.match(kdf(r.late)[0].message, /no workers here/);
  assert.equal(kdf(r.early).length, 1, JSON.stringify(r.early));
  await p.close();
});
