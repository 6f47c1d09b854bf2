// Local-first: the room's local copy in IndexedDB (src/replica.rs), in headless Chromium
// against the real relay under `wrangler dev`. The scene of issue 12: two tabs of one
// browser share 20 tasks, the relay goes down, tab A deletes one, edits one and adds 10,
// and is reloaded while the relay is still down: it must show all 29 without the relay,
// then converge with the other tab when the relay is back. A tab closed while offline
// leaves its changes to the tab still open. Also: a warm join asks the relay only for what
// came after the local copy, a wrong secret neither uses nor destroys it, and Room.forget
// deletes it. Run with tests/e2e/run.sh (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { SECRET, openBare, roomName, useScene, waitCount, waitLive, waitSynced } from "./harness.mjs";

const OTHER_SECRET = "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA";
const CONVERGE_MS = 30_000;

// A relay (stopped and started again by the tests), the site, Chromium.
const scene = useScene({ relays: { relay: [] } });

/**
 * Joins `room` in `page` (persisted, the default): `window.room`, and every warning code in
 * `window.warnings`, every `debug` line in `lines`. Does not wait for the relay.
 */
async function join(page, room, { secret = SECRET, debug = false } = {}) {
  await openBare(page, scene.site);
  await page.evaluate(async ({ url, room, secret, debug }) => {
    const { default: init, Room } = await import("/pkg/index.js");
    await init();
    window.Room = Room;
    window.warnings = [];
    window.room = await Room.join({ url, room, secret, debug, onWarning: (w) => window.warnings.push(w.code) });
  }, { url: scene.relay.url, room, secret, debug });
}

async function newTab(context, room, options) {
  const page = await context.newPage();
  const lines = [];
  page.on("console", (m) => { if (m.type() === "debug") lines.push(m.text()); });
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await join(page, room, options);
  return { page, lines };
}

const titles = (page) => page.evaluate(() => window.room.get("tasks").map((t) => t.title).sort());
const leave = (page) => page.evaluate(() => window.room.leave());

/**
 * A new browser context with a live tab in `room` that created `count` tasks (t0, t1, …),
 * all acknowledged by the relay: `{ context, page, lines }`.
 */
async function seeded(room, count) {
  const context = await scene.browser.newContext();
  const tab = await newTab(context, room);
  await waitLive(tab.page);
  await tab.page.evaluate((count) => { for (let i = 0; i < count; i++) window.room.create("tasks", { title: `t${i}` }); }, count);
  await waitSynced(tab.page);
  return { context, ...tab };
}

/**
 * With the relay stopped: joins `room` from a new tab of `context`, leaves, and returns the
 * titles the tab showed when join resolved (what the local copy held). The relay is started
 * again after, even on failure.
 */
async function titlesWhileRelayDown(context, room) {
  await scene.relay.stop();
  try {
    const tab = await newTab(context, room);
    const shown = await titles(tab.page);
    await leave(tab.page);
    return shown;
  } finally {
    await scene.relay.start();
  }
}

test("a tab reloaded while the relay is down shows the whole board without the relay, then converges", async () => {
  const room = roomName("reload-offline");
  const context = await scene.browser.newContext();
  const a = await newTab(context, room);
  const b = await newTab(context, room);
  await waitLive(a.page);
  await waitLive(b.page);
  await a.page.evaluate(() => { for (let i = 0; i < 20; i++) window.room.create("tasks", { title: `task ${String(i).padStart(2, "0")}` }); });
  await waitSynced(a.page);
  await waitCount(b.page, 20);
  assert.equal(await a.page.evaluate(() => window.room.storage), "persistent");
  // The local copy holds event 1 (the 20 creates were one envelope).
  await a.page.waitForFunction(async (room) => {
    const db = await new Promise((ok, fail) => { const r = indexedDB.open("sealsync"); r.onsuccess = () => ok(r.result); r.onerror = fail; });
    const get = (store, key) => new Promise((ok) => { const r = db.transaction(store).objectStore(store).get(key); r.onsuccess = () => ok(r.result); });
    const [snapshot, event] = await Promise.all([get("replica", room), get("history", [room, 1])]);
    db.close();
    return (snapshot && snapshot.seq >= 1) || event !== undefined;
  }, room, { timeout: CONVERGE_MS, polling: 50 });

  await scene.relay.stop();
  // Whatever fails below, the relay runs again for the file's next tests.
  try {
    await a.page.waitForFunction(() => window.room.status.state !== "live", null, { timeout: CONVERGE_MS });
    await a.page.evaluate(() => {
      const tasks = window.room.get("tasks");
      window.room.delete("tasks", tasks[0].id);
      window.room.update("tasks", tasks[1].id, { title: "task 01 (edited offline)" });
      for (let i = 0; i < 10; i++) window.room.create("tasks", { title: `offline ${i}` });
    });
    const before = await titles(a.page);
    assert.equal(before.length, 29);
    // What the UI can tell the user: 12 changes waiting, on this device, offline since when.
    await a.page.waitForFunction(() => window.room.sync.savedLocally === true, null, { timeout: CONVERGE_MS });
    const offline = await a.page.evaluate(() => window.room.sync);
    assert.equal(offline.pending, 12);
    assert.equal(offline.savedOnRelay, false);
    assert.equal(typeof offline.offlineSince, "number");

    await a.page.reload();
    await join(a.page, room);
    // With the relay still down: the local copy plus the unsent changes (adopted at join,
    // or as soon as the old document releases its session's lock, when it had not yet).
    assert.notEqual(await a.page.evaluate(() => window.room.status.state), "live");
    const shown = await a.page
      .waitForFunction((want) => {
        const now = window.room.get("tasks").map((t) => t.title).sort();
        return JSON.stringify(now) === JSON.stringify(want);
      }, before, { timeout: 5_000, polling: 20 })
      .then(() => before, () => titles(a.page));
    const warnings = await a.page.evaluate(() => window.warnings);
    // On a failure, what the local copy held then (to tell a lost copy from an unread one).
    const stored = shown === before ? null : await a.page.evaluate(async (room) => {
      const db = await new Promise((ok, fail) => { const r = indexedDB.open("sealsync"); r.onsuccess = () => ok(r.result); r.onerror = fail; });
      const tx = db.transaction(["replica", "history"]);
      const read = (r) => new Promise((ok) => { r.onsuccess = () => ok(r.result); });
      const range = IDBKeyRange.bound([room, 0], [room, Infinity]);
      const [snapshot, seqs] = await Promise.all([read(tx.objectStore("replica").get(room)), read(tx.objectStore("history").getAllKeys(range))]);
      db.close();
      return { snapshotSeq: snapshot ? snapshot.seq : null, events: seqs.map((k) => k[1]) };
    }, room);
    assert.deepEqual(shown, before, `warnings after the reload: ${JSON.stringify(warnings)}; local copy: ${JSON.stringify(stored)}`);
    assert.notEqual(await a.page.evaluate(() => window.room.status.state), "live");

    await scene.relay.start();
    await waitLive(a.page);
    await waitSynced(a.page);
    assert.deepEqual(await a.page.evaluate(() => window.room.sync), {
      pending: 0, savedLocally: true, savedOnRelay: true, offlineSince: null,
    });
    await waitCount(b.page, 29);
    assert.deepEqual(await titles(b.page), before);
    assert.deepEqual(await titles(a.page), before);
  } finally {
    if (!scene.relay.proc) await scene.relay.start();
    await context.close();
  }
});

test("the changes of a tab closed while offline go out through the tab still open", async () => {
  const room = roomName("closed-offline");
  const context = await scene.browser.newContext();
  const a = await newTab(context, room);
  const b = await newTab(context, room);
  await waitLive(a.page);
  await waitLive(b.page);
  await scene.relay.stop();
  try {
    for (const tab of [a, b]) {
      await tab.page.waitForFunction(() => window.room.status.state !== "live", null, { timeout: CONVERGE_MS });
    }
    await a.page.evaluate(() => { for (let i = 0; i < 5; i++) window.room.create("tasks", { title: `from a ${i}` }); });
    await a.page.waitForFunction(() => window.room.sync.savedLocally === true, null, { timeout: CONVERGE_MS });
    // Closed without leaving: its session's record stays on disk, and b never saw it.
    await a.page.close();
    assert.deepEqual(await titles(b.page), []);
  } finally {
    await scene.relay.start();
  }
  // b is live again, finds the ended session's changes and sends them.
  await waitLive(b.page);
  await waitCount(b.page, 5);
  await waitSynced(b.page);
  const other = await scene.browser.newContext();
  try {
    const c = await newTab(other, room);
    await waitLive(c.page);
    await waitCount(c.page, 5);
    assert.deepEqual(await titles(c.page), ["from a 0", "from a 1", "from a 2", "from a 3", "from a 4"]);
  } finally {
    await other.close();
    await context.close();
  }
});

test("a tab that joined while another had unsent changes adopts them when that tab closes", async () => {
  const room = roomName("adopt-on-close");
  const context = await scene.browser.newContext();
  const a = await newTab(context, room);
  await waitLive(a.page);
  await scene.relay.stop();
  try {
    await a.page.waitForFunction(() => window.room.status.state !== "live", null, { timeout: CONVERGE_MS });
    await a.page.evaluate(() => { for (let i = 0; i < 3; i++) window.room.create("tasks", { title: `from a ${i}` }); });
    await a.page.waitForFunction(() => window.room.sync.savedLocally === true, null, { timeout: CONVERGE_MS });
    // b joins while a runs: a's record is a's, not b's.
    const b = await newTab(context, room);
    assert.deepEqual(await titles(b.page), []);
    await a.page.close();
    // Once a's lock is released, b takes a's changes over, with the relay still down.
    await waitCount(b.page, 3);
    assert.equal(await b.page.evaluate(() => window.room.sync.pending), 3);
    assert.notEqual(await b.page.evaluate(() => window.room.status.state), "live");
  } finally {
    await scene.relay.start();
    await context.close();
  }
});

test("sync: without persistence, pending changes are not saved on the device; events follow the state", async () => {
  const room = roomName("sync");
  const context = await scene.browser.newContext();
  const page = await context.newPage();
  await openBare(page, scene.site);
  const seen = await page.evaluate(async ({ url, room, secret }) => {
    const { default: init, Room } = await import("/pkg/index.js");
    await init();
    const r = await Room.join({ url, room, secret, persist: false });
    const events = [];
    r.on("sync", (s) => events.push(s));
    await new Promise((ok) => { const off = r.on("status", (s) => { if (s.state === "live") { off(); ok(); } }); });
    r.create("tasks", { title: "x" });
    const during = r.sync;
    await new Promise((ok) => { const off = r.on("pending", (n) => { if (n === 0) { off(); ok(); } }); });
    const after = r.sync;
    const storage = r.storage;
    const untilLeave = events.slice();
    await r.leave();
    return { during, after, storage, events: untilLeave, left: r.sync };
  }, { url: scene.relay.url, room, secret: SECRET });
  assert.deepEqual(seen.during, { pending: 1, savedLocally: false, savedOnRelay: false, offlineSince: null });
  assert.deepEqual(seen.after, { pending: 0, savedLocally: true, savedOnRelay: true, offlineSince: null });
  assert.equal(seen.storage, "memory");
  assert.deepEqual(seen.events.at(-1), seen.after);
  assert.ok(seen.events.some((e) => e.pending === 1 && !e.savedLocally), JSON.stringify(seen.events));
  assert.equal(typeof seen.left.offlineSince, "number", "left: not live any more");
  await context.close();
});

test("a warm join asks the relay only for what came after the local copy", async () => {
  const room = roomName("warm");
  const { context, page } = await seeded(room, 30);
  await leave(page);

  const again = await newTab(context, room, { debug: true });
  assert.equal((await titles(again.page)).length, 30, "shown when join resolves");
  await waitLive(again.page);
  const hello = again.lines.find((l) => l.includes("HELLO"));
  assert.match(hello, /HELLO after [1-9]\d*/, `the HELLO: ${hello}`);
  assert.ok(!again.lines.some((l) => /← EVENT/.test(l)), `no event was sent again:\n${again.lines.join("\n")}`);
  await context.close();
});

test("a wrong secret neither uses nor destroys the local copy; Room.forget deletes it", async () => {
  const room = roomName("forget");
  const { context, page } = await seeded(room, 5);
  await leave(page);

  const wrong = await newTab(context, room, { secret: OTHER_SECRET });
  assert.deepEqual(await titles(wrong.page), []);
  await wrong.page.waitForFunction(() => window.room.status.state === "wrong-password", null, { timeout: CONVERGE_MS });
  assert.ok((await wrong.page.evaluate(() => window.warnings)).includes("STORAGE_FAILED"));
  await leave(wrong.page);

  const right = await newTab(context, room);
  assert.equal((await titles(right.page)).length, 5, "the local copy is intact");
  await leave(right.page);

  await right.page.evaluate((room) => window.Room.forget(room), room);
  assert.deepEqual(await titlesWhileRelayDown(context, room), [], "nothing is kept after forget");
  await context.close();
});

/** Every byte IndexedDB holds for the sealsync database, as one Latin-1 string per record. */
function storedBytes(page) {
  return page.evaluate(async () => {
    const db = await new Promise((ok, fail) => { const r = indexedDB.open("sealsync"); r.onsuccess = () => ok(r.result); r.onerror = fail; });
    const out = [];
    const text = (bytes) => Array.from(bytes, (b) => String.fromCharCode(b)).join("");
    const walk = (v) => {
      if (v instanceof Uint8Array) out.push(text(v));
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") Object.values(v).forEach(walk);
      else if (typeof v === "string") out.push(v);
    };
    for (const name of db.objectStoreNames) {
      const rows = await new Promise((ok) => { const r = db.transaction(name).objectStore(name).getAll(); r.onsuccess = () => ok(r.result); });
      rows.forEach(walk);
    }
    db.close();
    return out;
  });
}

test("two tabs writing at once (no Web Locks) leave a copy that loads; what is stored holds no plaintext", async () => {
  const room = roomName("two-writers");
  const context = await scene.browser.newContext();
  // Without Web Locks every tab writes the copy.
  await context.addInitScript(() => { Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined }); });
  const a = await newTab(context, room);
  const b = await newTab(context, room);
  await waitLive(a.page);
  await waitLive(b.page);
  assert.equal(await a.page.evaluate(() => navigator.locks), undefined);
  await Promise.all([a, b].map((t, i) => t.page.evaluate((i) => {
    for (let n = 0; n < 40; n++) window.room.create("tasks", { title: `secret plan ${i}-${n}` });
  }, i)));
  await Promise.all([waitSynced(a.page), waitSynced(b.page)]);
  await waitCount(a.page, 80);
  await waitCount(b.page, 80);
  const all = await titles(a.page);
  await Promise.all([a, b].map((t) => leave(t.page)));

  const stored = await storedBytes(a.page);
  assert.ok(stored.length > 0, "something is stored");
  assert.ok(!stored.some((s) => s.includes("secret plan")), "no title appears in IndexedDB");

  assert.deepEqual(await titlesWhileRelayDown(context, room), all, "the copy both tabs wrote loads whole, offline");
  await context.close();
});

test("a fresh profile shows nothing until it syncs; without IndexedDB the room works in memory and says so", async () => {
  const room = roomName("fresh");
  const a = await seeded(room, 7);

  const fresh = await scene.browser.newContext();
  assert.deepEqual(await titlesWhileRelayDown(fresh, room), [], "nothing before it syncs");

  const noIdb = await scene.browser.newContext();
  await noIdb.addInitScript(() => { Object.defineProperty(window, "indexedDB", { get: () => undefined }); });
  const m = await newTab(noIdb, room);
  await waitLive(m.page);
  await waitCount(m.page, 7);
  assert.equal(await m.page.evaluate(() => window.room.storage), "memory");
  const codes = await m.page.evaluate(() => window.warnings);
  assert.deepEqual(codes.filter((c) => c === "STORAGE_FAILED").length, 1, JSON.stringify(codes));
  await m.page.evaluate(() => window.room.create("tasks", { title: "from memory" }));
  await waitSynced(m.page);
  await waitCount(a.page, 8);
  await Promise.all([a.context.close(), fresh.close(), noIdb.close()]);
});
