// Key rotation (core::client `rotate`/`rekey`, the relay's ROTATE): in headless Chromium
// against the real relay under `wrangler dev`, three members of a password room; one moves
// the room to a new password that the second receives (out of band: the test hands it
// over) and the third does not. Run with tests/e2e/run.sh (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { openBare, roomName, useScene, waitLive } from "./harness.mjs";

const scene = useScene({ relays: { relay: [] } });
const OLD = "correct horse battery";
const NEW = "staple the new password";

/** A fresh page joined to `room` with `password`: `window.room`, every status in `window.states`. */
async function tab(room, password) {
  const context = await scene.browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await openBare(page, scene.site);
  await page.evaluate(async ({ url, room, password }) => {
    const { default: init, Room } = await import("/pkg/sealsync.js");
    await init();
    window.states = [];
    const r = await Room.join({ url, room, password, persist: false });
    r.on("status", (s) => window.states.push(s.state));
    window.room = r;
  }, { url: scene.relay.url, room, password });
  return { page, close: () => context.close() };
}

function waitState(t, state, timeout = 30_000) {
  return t.page.waitForFunction((state) => window.room.status.state === state, state, { timeout, polling: 50 })
    .catch(async (e) => {
      const now = await t.page.evaluate(() => JSON.stringify([window.room.status, window.states]));
      throw new Error(`expected status ${state}, have ${now} (${e.message})`);
    });
}

/** The ids of the tasks `t` shows, sorted. */
function ids(t) {
  return t.page.evaluate(() => window.room.get("tasks").map((e) => e.id).sort());
}

function waitIds(t, expected, what) {
  return t.page.waitForFunction(
    (expected) => JSON.stringify(window.room.get("tasks").map((e) => e.id).sort()) === expected,
    JSON.stringify([...expected].sort()),
    { timeout: 30_000, polling: 50 },
  ).catch(async (e) => {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, have ${JSON.stringify(await ids(t))} (${e.message})`);
  });
}

test("a rotation shuts out the member without the new password; the one given it goes on without a reload; a fresh join sees the whole board", async () => {
  const room = roomName("rotate");
  const ada = await tab(room, OLD);
  await waitLive(ada.page);
  const bob = await tab(room, OLD);
  const cyd = await tab(room, OLD);
  await waitLive(bob.page);
  await waitLive(cyd.page);
  await ada.page.evaluate(() => { for (const id of ["a1", "a2"]) window.room.create("tasks", { id, title: id }); });
  await bob.page.evaluate(() => window.room.create("tasks", { id: "b1", title: "b1" }));
  await cyd.page.evaluate(() => window.room.create("tasks", { id: "c1", title: "c1" }));
  const before = ["a1", "a2", "b1", "c1"];
  for (const t of [ada, bob, cyd]) await waitIds(t, before, "before the rotation");
  const oldFingerprint = await ada.page.evaluate(() => window.room.fingerprint());

  await ada.page.evaluate((password) => window.room.rotate({ password }), NEW);
  // This tab goes on under the new key (it reconnects: its channel follows the key).
  await waitLive(ada.page);
  const newFingerprint = await ada.page.evaluate(() => window.room.fingerprint());
  assert.notEqual(newFingerprint, oldFingerprint);
  await waitState(bob, "rotated");
  await waitState(cyd, "rotated");

  // Shut out, Bob and Cyd still edit locally; Ada edits under the new key.
  await bob.page.evaluate(() => window.room.create("tasks", { id: "b-out", title: "made while shut out" }));
  await cyd.page.evaluate(() => window.room.create("tasks", { id: "c-out", title: "never sent" }));
  await ada.page.evaluate(() => window.room.create("tasks", { id: "a-after", title: "after" }));

  // Bob got the new password: same page, same room object.
  await bob.page.evaluate((password) => window.room.rekey({ password }), NEW);
  await waitLive(bob.page);
  const board = [...before, "a-after", "b-out"];
  await waitIds(bob, board, "Bob after rekey");
  await waitIds(ada, board, "Ada sees Bob's change made while he was shut out");
  assert.equal(await bob.page.evaluate(() => window.room.fingerprint()), newFingerprint);

  // Cyd has only the old password: nothing made after the rotation reaches her, and her
  // change never reaches anyone.
  await cyd.page.evaluate((password) => window.room.rekey({ password }), OLD);
  await waitState(cyd, "wrong-password");
  assert.deepEqual(await ids(cyd), [...before, "c-out"].sort());
  const late = await tab(room, OLD);
  await waitState(late, "wrong-password");
  await late.close();

  // A fresh join with the new password reads the whole board (the rotation's snapshot and
  // what came after).
  const fresh = await tab(room, NEW);
  await waitLive(fresh.page);
  await waitIds(fresh, board, "a fresh join with the new password");
  assert.equal(await fresh.page.evaluate(() => window.room.fingerprint()), newFingerprint);

  // A rotation to the current password is refused before anything is sent.
  const refused = await ada.page.evaluate((password) => window.room.rotate({ password }).then(() => null, (e) => e.code), NEW);
  assert.equal(refused, "ROTATION_REFUSED");
  // rekey while live is refused too.
  const notNow = await ada.page.evaluate((password) => window.room.rekey({ password }).then(() => null, (e) => e.code), NEW);
  assert.equal(notNow, "ROTATION_REFUSED");
  for (const t of [ada, bob, cyd, fresh]) await t.close();
});

test("a rotation that hands the key over keeps the members online without a rotated status", async () => {
  const room = roomName("rotate-handover");
  const ada = await tab(room, OLD);
  await waitLive(ada.page);
  const bob = await tab(room, OLD);
  await waitLive(bob.page);
  await ada.page.evaluate(() => window.room.create("tasks", { id: "a1", title: "a1" }));
  await waitIds(bob, ["a1"], "before the rotation");
  const oldLink = await bob.page.evaluate(() => window.room.shareLink("https://app.example/"));

  await ada.page.evaluate((password) => window.room.rotate({ password, handOver: true }), NEW);
  const fingerprint = await ada.page.evaluate(() => window.room.fingerprint());
  await bob.page.waitForFunction((f) => window.room.fingerprint() === f && window.room.status.state === "live", fingerprint, { timeout: 30_000, polling: 50 });
  await ada.page.evaluate(() => window.room.create("tasks", { id: "a2", title: "after" }));
  await bob.page.evaluate(() => window.room.create("tasks", { id: "b2", title: "after" }));
  for (const t of [ada, bob]) await waitIds(t, ["a1", "a2", "b2"], "after the hand-over");
  const states = await bob.page.evaluate(() => window.states);
  assert.ok(!states.includes("rotated") && !states.includes("wrong-password"), JSON.stringify(states));
  const newLink = await bob.page.evaluate(() => window.room.shareLink("https://app.example/"));
  assert.notEqual(newLink, oldLink, "the share link carries the new key");
  assert.equal(newLink, await ada.page.evaluate(() => window.room.shareLink("https://app.example/")));
  for (const t of [ada, bob]) await t.close();
});
