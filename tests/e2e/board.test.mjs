// The demo board in headless Chromium against a real relay (`wrangler dev`):
// live sync between two browsers, editing through a relay outage, a reload with unsent
// edits, a wrong password, and changing the room password from the board. Run with tests/e2e/run.sh (node --test).
import assert from "node:assert/strict";
import { join as pathJoin } from "node:path";
import { test } from "node:test";

import { ARTIFACTS, roomName, useScene } from "./harness.mjs";

const ROOM = roomName("e2e-board");
const PASSWORD = "correct horse battery staple";
// Generous: after an outage the reconnect backoff can be several seconds.
const CONVERGE_MS = 45_000;

let alice; // { context, page, name, logs }
let bob;

// A relay, the demo site, Chromium, and Alice and Bob, each in a browser context of their own.
const scene = useScene({
  relays: { relay: [] },
  async setup() {
    alice = await open("alice");
    bob = await open("bob");
  },
});

async function shot(page, name) {
  await page.screenshot({ path: pathJoin(ARTIFACTS, `e2e-${name}.png`), fullPage: true });
}

async function open(name) {
  const context = await scene.browser.newContext({ viewport: { width: 900, height: 760 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${name}] page error:`, e.message));
  const logs = [];
  page.on("console", (m) => {
    logs.push(m.text());
    if (m.type() === "error" && !m.text().startsWith("WebSocket connection to")) console.error(`[${name}] console:`, m.text());
  });
  return { context, page, name, logs };
}

async function join(page, password = PASSWORD, name = "Tester", room = ROOM) {
  await page.goto(scene.site.url + "/");
  await page.fill("#relay", scene.relay.url);
  await page.fill("#room", room);
  await page.fill("#password", password);
  await page.fill("#name", name);
  await page.click("#join-button");
}

async function joinAndWaitLive(page, name, room = ROOM) {
  await join(page, PASSWORD, name, room);
  await page.waitForSelector("#board-view:not([hidden])", { timeout: 20_000 });
  await waitState(page, "live", 20_000);
}

async function waitState(page, state, timeout = CONVERGE_MS) {
  try {
    await page.waitForFunction((s) => document.querySelector("#status")?.dataset.state === s, state, { timeout });
  } catch (err) {
    const seen = await page.evaluate(() => ({
      status: document.querySelector("#status")?.dataset.state,
      text: document.querySelector("#status-text")?.textContent,
      statuses: window.statusLog,
    }));
    throw new Error(`never "${state}": ${JSON.stringify(seen)}: ${err.message}`);
  }
}

async function addTask(page, title) {
  await page.fill("#new-title", title);
  await page.press("#new-title", "Enter");
}

function titles(page) {
  return page.$$eval("#tasks .task .title", (inputs) => inputs.map((i) => i.value));
}

function hasTitle(page, title, timeout = CONVERGE_MS) {
  return page.waitForFunction(
    (t) => [...document.querySelectorAll("#tasks .task .title")].some((i) => i.value === t),
    title,
    { timeout, polling: 16 },
  );
}

async function taskId(page, title) {
  return page.$$eval("#tasks .task", (items, t) => items.find((li) => li.querySelector(".title").value === t)?.dataset.id, title);
}

/** Waits until every local change is acknowledged; on timeout says where each page stands. */
async function allSynced(page) {
  try {
    await page.waitForFunction(() => document.querySelector("#pending").dataset.count === "0", null, { timeout: CONVERGE_MS });
  } catch (err) {
    const state = await page.evaluate(() => ({
      status: document.querySelector("#status").dataset.state,
      pending: document.querySelector("#pending").textContent,
      titles: [...document.querySelectorAll("#tasks .task .title")].map((i) => i.value),
    }));
    await page.screenshot({ path: pathJoin(ARTIFACTS, `e2e-failed-${Date.now()}.png`), fullPage: true });
    throw new Error(`not synced: ${JSON.stringify(state)}: ${err.message}`);
  }
}

/** Reloads `page` and joins again as `name`, without waiting for the relay (it may be down). */
async function reloadAndRejoin(page, name) {
  await page.reload();
  await join(page, PASSWORD, name);
  await page.waitForSelector("#board-view:not([hidden])", { timeout: 20_000 });
}

/** Waits until `title`, sent from `sender`, reached `receiver`, and both boards agree. */
async function deliveredTo(receiver, sender, title) {
  await hasTitle(receiver, title);
  await allSynced(sender);
  assert.deepEqual(await titles(sender), await titles(receiver));
}

function pending(page) {
  return page.$eval("#pending", (el) => Number(el.dataset.count || "0"));
}

test("two browsers see each other's edits in under a second", async () => {
  await joinAndWaitLive(alice.page, "Alice");
  await joinAndWaitLive(bob.page, "Bob");
  // The published package's key-derivation worker ran (the demo logs the route).
  const kdf = alice.logs.find((l) => l.startsWith("sealsync: key derived in"));
  assert.match(kdf ?? "", /\(worker\)$/, "Argon2id ran in the worker");
  console.log(`# ${kdf}`);
  assert.equal(
    await alice.page.textContent("#fingerprint"),
    await bob.page.textContent("#fingerprint"),
    "same password, same room: same fingerprint",
  );
  await alice.page.waitForFunction(() => document.querySelector("#presence-count").textContent === "2", null, { timeout: 5000 });
  // Who is online: each board shows both people, by the name they joined with.
  for (const page of [alice.page, bob.page]) {
    await page.waitForFunction(
      () => [...document.querySelectorAll("#members .avatar")].map((a) => a.title.replace(" (you)", "")).sort().join() === "Alice,Bob",
      null,
      { timeout: 5000, polling: 50 },
    );
  }
  assert.equal(await alice.page.getAttribute("#members .avatar[title$='(you)']", "title"), "Alice (you)");

  const t0 = Date.now();
  await addTask(alice.page, "Write the spec");
  await hasTitle(bob.page, "Write the spec", 5000);
  const created = Date.now() - t0;

  const id = await taskId(bob.page, "Write the spec");
  const t1 = Date.now();
  await bob.page.check(`#tasks .task[data-id="${id}"] .done`);
  await alice.page.waitForFunction((i) => document.querySelector(`#tasks .task[data-id="${i}"] .done`)?.checked, id, { timeout: 5000, polling: 16 });
  const updated = Date.now() - t1;

  console.log(`# live edit latency: create ${created} ms, update ${updated} ms (action to the other browser's DOM)`);
  assert.ok(created < 1000, `create took ${created} ms`);
  assert.ok(updated < 1000, `update took ${updated} ms`);
  await shot(alice.page, "1-live-alice");
  await shot(bob.page, "1-live-bob");
});

test("drag, keyboard reorder and delete reach the other browser", async () => {
  await addTask(alice.page, "Second");
  await addTask(alice.page, "Third");
  await hasTitle(bob.page, "Third", 5000);
  assert.deepEqual(await titles(bob.page), ["Write the spec", "Second", "Third"]);

  // Drag "Third" onto the upper half of the first task: it lands above it.
  const third = await taskId(alice.page, "Third");
  const first = await taskId(alice.page, "Write the spec");
  await alice.page.dragAndDrop(`#tasks .task[data-id="${third}"] .handle`, `#tasks .task[data-id="${first}"]`, {
    targetPosition: { x: 60, y: 4 },
  });
  const dragged = ["Third", "Write the spec", "Second"];
  await bob.page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#tasks .task .title")].map((i) => i.value)) === want, JSON.stringify(dragged), { timeout: 5000 });

  // Keyboard: focus the handle of "Second" and move it up once.
  const second = await taskId(bob.page, "Second");
  await bob.page.focus(`#tasks .task[data-id="${second}"] .handle`);
  await bob.page.keyboard.press("ArrowUp");
  const moved = ["Third", "Second", "Write the spec"];
  await alice.page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#tasks .task .title")].map((i) => i.value)) === want, JSON.stringify(moved), { timeout: 5000 });
  await shot(alice.page, "1-reordered-alice");

  // Delete the two helpers from Bob's side.
  await bob.page.click(`#tasks .task[data-id="${second}"] .remove`);
  await bob.page.click(`#tasks .task[data-id="${third}"] .remove`);
  await alice.page.waitForFunction(() => document.querySelectorAll("#tasks .task").length === 1, null, { timeout: 5000 });
  assert.deepEqual(await titles(alice.page), ["Write the spec"]);
});

test("relay down: both edit, relay back, both converge with every edit", async () => {
  await scene.relay.stop();
  await alice.page.waitForFunction(() => document.querySelector("#status").dataset.state !== "live", null, { timeout: 20_000 });
  await bob.page.waitForFunction(() => document.querySelector("#status").dataset.state !== "live", null, { timeout: 20_000 });

  await addTask(alice.page, "Offline from Alice");
  await addTask(bob.page, "Offline from Bob");
  const spec = await taskId(alice.page, "Write the spec");
  const title = alice.page.locator(`#tasks .task[data-id="${spec}"] .title`);
  await title.fill("Write the spec (v2)");
  await title.press("Enter");
  await bob.page.click(`#tasks .task[data-id="${spec}"] .claim`);
  assert.ok((await pending(alice.page)) >= 2, "Alice's edits wait in her outbox");
  assert.ok((await pending(bob.page)) >= 2, "Bob's edits wait in his outbox");
  await shot(alice.page, "2-outage-alice");

  await scene.relay.start();
  const expected = ["Write the spec (v2)", "Offline from Alice", "Offline from Bob"];
  for (const p of [alice.page, bob.page]) {
    for (const t of expected) await hasTitle(p, t);
    await allSynced(p);
  }
  const a = await titles(alice.page);
  const b = await titles(bob.page);
  assert.deepEqual(a, b, "same tasks in the same order");
  assert.deepEqual([...a].sort(), [...expected].sort());
  const claimTag = (p) => p.textContent(`#tasks .task[data-id="${spec}"] .claim-tag`);
  assert.equal(await claimTag(alice.page), "Bob");
  assert.equal(await claimTag(bob.page), "You");
  await shot(alice.page, "2-converged-alice");
  await shot(bob.page, "2-converged-bob");
});

test("a reload with unsent edits keeps them", async () => {
  await scene.relay.stop();
  await alice.page.waitForFunction(() => document.querySelector("#status").dataset.state !== "live", null, { timeout: 20_000 });
  await addTask(alice.page, "Made before the reload");
  assert.ok((await pending(alice.page)) >= 1);
  // Let the IndexedDB write commit (it is queued at once; this is only its commit).
  await alice.page.waitForTimeout(300);
  await reloadAndRejoin(alice.page, "Alice");
  await hasTitle(alice.page, "Made before the reload", 2000);
  assert.ok((await pending(alice.page)) >= 1, "still unsent: the relay is down");
  await shot(alice.page, "3-reloaded-offline");

  await scene.relay.start();
  await deliveredTo(bob.page, alice.page, "Made before the reload");
  await shot(bob.page, "3-delivered-bob");
});

test("two tabs of one browser: both live, and a closed tab's unsent edits are adopted", async () => {
  // A second tab in Alice's browser: same IndexedDB, its own session and outbox.
  const tab = await alice.context.newPage();
  tab.on("pageerror", (e) => console.error("[alice tab 2] page error:", e.message));
  await joinAndWaitLive(tab, "Alice");
  await hasTitle(tab, "Made before the reload", 5000);
  await addTask(tab, "From the second tab");
  await hasTitle(alice.page, "From the second tab", 5000);
  await hasTitle(bob.page, "From the second tab", 5000);

  // Relay down; the second tab edits and is closed before it could send.
  await scene.relay.stop();
  await tab.waitForFunction(() => document.querySelector("#status").dataset.state !== "live", null, { timeout: 20_000 });
  await addTask(tab, "Unsent from a closed tab");
  await tab.waitForTimeout(300);
  await tab.close();

  // The first tab reloads: its new session adopts the closed tab's outbox.
  await reloadAndRejoin(alice.page, "Alice");
  await hasTitle(alice.page, "Unsent from a closed tab", 2000);
  await scene.relay.start();
  await deliveredTo(bob.page, alice.page, "Unsent from a closed tab");
  await shot(bob.page, "4-adopted-from-closed-tab");
});

test("a wrong password says so plainly", async () => {
  const eve = await open("eve");
  await join(eve.page, "not the password", "Eve");
  await eve.page.waitForSelector("#join-error:not([hidden])", { timeout: 20_000 });
  const message = await eve.page.textContent("#join-error");
  assert.match(message, /wrong password/i);
  assert.equal(await eve.page.isVisible("#board-view"), false);
  await shot(eve.page, "5-wrong-password");
  // The others never saw anything from it.
  assert.equal((await titles(alice.page)).length, 6);
  await eve.context.close();
});

test("changing the password from the board: the other browser is asked for the new one and syncs again", async () => {
  // A room of its own, so this test also runs alone (--test-name-pattern).
  const room = roomName("e2e-board-rotate");
  const NEW = "a new password for the board";
  const ann = await open("ann");
  const ben = await open("ben");
  try {
    await joinAndWaitLive(ann.page, "Ann", room);
    await joinAndWaitLive(ben.page, "Ben", room);
    await addTask(ann.page, "Made before the change");
    await hasTitle(ben.page, "Made before the change");
    const oldFingerprint = await ann.page.textContent("#fingerprint");
    const oldLink = await ann.page.inputValue("#share-link");

    // Ann changes the password through the form next to the room controls.
    assert.equal((await ann.page.textContent("#change-password")).trim(), "Change password…");
    await ann.page.click("#change-password");
    await ann.page.waitForSelector("#rotate-form:not([hidden])", { timeout: 5000 });
    await ann.page.fill("#rotate-password", NEW);
    await ann.page.fill("#rotate-confirm", "not the same");
    await ann.page.click("#rotate-submit");
    await ann.page.waitForSelector("#rotate-status.bad:not([hidden])", { timeout: 5000 });
    assert.match(await ann.page.textContent("#rotate-status"), /differ/);
    await ann.page.fill("#rotate-confirm", NEW);
    await shot(ann.page, "7-rotate-form-ann");
    await ann.page.click("#rotate-submit");
    await ann.page.waitForSelector("#rotate-form[hidden]", { state: "attached", timeout: 30_000 });
    await ann.page.waitForSelector("#notice:not([hidden])", { timeout: 5000 });
    assert.match(await ann.page.textContent("#notice-text"), /new password/i);
    // Ann's socket reconnects under the new key (its channel follows the key).
    await waitState(ann.page, "live", 30_000);
    const newFingerprint = await ann.page.textContent("#fingerprint");
    assert.notEqual(newFingerprint, oldFingerprint, "a new key, a new fingerprint");
    assert.notEqual(await ann.page.inputValue("#share-link"), oldLink, "a new key, a new share link");
    await shot(ann.page, "7-rotated-ann");

    // Ben is shut out: the pill says why, the form asks for the new password, the board stays.
    await waitState(ben.page, "rotated", 30_000);
    assert.match(await ben.page.textContent("#status-text"), /password changed by a member/i);
    await ben.page.waitForSelector("#rekey-form:not([hidden])", { timeout: 5000 });
    assert.equal(await ben.page.isVisible("#board-view"), true);
    assert.equal(await ben.page.isVisible("#change-password"), false, "no rotating while shut out");
    assert.deepEqual(await titles(ben.page), ["Made before the change"]);
    await shot(ben.page, "7-rotated-ben");

    // The old password is refused: the form stays, with an error line.
    await ben.page.fill("#rekey-password", PASSWORD);
    await ben.page.click("#rekey-submit");
    await waitState(ben.page, "wrong-password", 30_000);
    await ben.page.waitForSelector("#rekey-error:not([hidden])", { timeout: 5000 });
    assert.match(await ben.page.textContent("#rekey-error"), /wrong password/i);
    assert.equal(await ben.page.isVisible("#board-view"), true, "still on the board");
    assert.equal(await ben.page.isVisible("#rekey-form"), true);
    assert.equal(await ben.page.isEnabled("#rekey-submit"), true);
    await shot(ben.page, "7-rekey-refused-ben");

    // The new one: live again without a reload, on the same key as Ann.
    await ben.page.fill("#rekey-password", NEW);
    await ben.page.click("#rekey-submit");
    await waitState(ben.page, "live", 30_000);
    await ben.page.waitForSelector("#rekey-form[hidden]", { state: "attached", timeout: 5000 });
    assert.equal(await ben.page.isVisible("#change-password"), true);
    assert.equal(await ben.page.textContent("#fingerprint"), newFingerprint);

    await addTask(ann.page, "Made after the change");
    await deliveredTo(ben.page, ann.page, "Made after the change");
    assert.deepEqual(await titles(ben.page), ["Made before the change", "Made after the change"]);
    await shot(ben.page, "7-rekeyed-ben");
  } finally {
    await ann.context.close();
    await ben.context.close();
  }
});

test("changing the password with the hand-over: the other browser keeps going without being asked", async () => {
  const room = roomName("e2e-board-handover");
  const NEW = "a handed-over password";
  const cat = await open("cat");
  const dan = await open("dan");
  try {
    await joinAndWaitLive(cat.page, "Cat", room);
    await joinAndWaitLive(dan.page, "Dan", room);
    await addTask(cat.page, "Made before the hand-over");
    await hasTitle(dan.page, "Made before the hand-over");
    const oldFingerprint = await dan.page.textContent("#fingerprint");

    await cat.page.click("#change-password");
    await cat.page.waitForSelector("#rotate-form:not([hidden])", { timeout: 5000 });
    assert.equal(await cat.page.isChecked("#rotate-handover"), false, "off unless asked");
    await cat.page.fill("#rotate-password", NEW);
    await cat.page.fill("#rotate-confirm", NEW);
    await cat.page.check("#rotate-handover");
    await cat.page.click("#rotate-submit");
    await cat.page.waitForSelector("#rotate-form[hidden]", { state: "attached", timeout: 30_000 });
    assert.match(await cat.page.textContent("#notice-text"), /handed to everyone online/i);
    const newFingerprint = await cat.page.textContent("#fingerprint");
    assert.notEqual(newFingerprint, oldFingerprint);

    // Dan goes on under the new key: same fingerprint, no form, nothing asked.
    await dan.page.waitForFunction((f) => document.querySelector("#fingerprint").textContent === f, newFingerprint, { timeout: 30_000, polling: 50 });
    await waitState(dan.page, "live", 30_000);
    assert.equal(await dan.page.isVisible("#rekey-form"), false);
    await addTask(cat.page, "Made after the hand-over");
    await deliveredTo(dan.page, cat.page, "Made after the hand-over");
    assert.deepEqual(await titles(dan.page), ["Made before the hand-over", "Made after the hand-over"]);
    await shot(dan.page, "7-handed-over-dan");
  } finally {
    await cat.context.close();
    await dan.context.close();
  }
});
