// Who is online, sealed (core::roster): in headless Chromium against the real relay under
// `wrangler dev`, members of one room on different channels list each other with their
// profiles, see a profile change and a leave, and a member with `members: false` neither
// appears nor lists anyone. Run with tests/e2e/run.sh (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { SECRET, openBare, roomName, useScene, waitLive } from "./harness.mjs";

const scene = useScene({ relays: { relay: [] } });

/** Waits until `t` received the ephemeral value `{ mark }` (what a socket sent before it came first). */
function received(t, mark) {
  return t.page.waitForFunction((mark) => window.got.some((v) => v.mark === mark), mark, { timeout: 20_000, polling: 50 });
}

/** A fresh page joined to `room` with `options`: `window.room`, and every `members` event in `window.lists`. */
async function tab(room, options) {
  const context = await scene.browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await openBare(page, scene.site);
  await page.evaluate(async ({ url, room, secret, options }) => {
    const { default: init, Room } = await import("/pkg/sealsync.js");
    await init();
    window.lists = [];
    window.got = [];
    const r = await Room.join({ url, room, secret, persist: false, ...options });
    r.on("members", (list) => window.lists.push(list));
    r.on("ephemeral", (value) => window.got.push(value));
    window.room = r;
  }, { url: scene.relay.url, room, secret: SECRET, options });
  await waitLive(page, 20_000);
  return { page, close: () => context.close() };
}

/** `room.members` as `[name or null, isSelf]`, once `check` holds for it (polled). */
async function membersWhen(t, check, what) {
  const handle = await t.page.waitForFunction(
    (expected) => {
      const list = window.room.members.map((m) => [m.profile?.name ?? null, m.isSelf]);
      return JSON.stringify(list) === expected && list;
    },
    JSON.stringify(check),
    { timeout: 20_000, polling: 50 },
  ).catch(async (e) => {
    const now = await t.page.evaluate(() => JSON.stringify(window.room.members));
    throw new Error(`${what}: expected ${JSON.stringify(check)}, have ${now} (${e.message})`);
  });
  return handle.jsonValue();
}

test("members list each other across channels, with profile changes and leaves; members: false stays out", async () => {
  const room = roomName("members");
  const ada = await tab(room, { channel: "main", profile: { name: "Ada", color: "#c33" } });
  const bob = await tab(room, { channel: "side", profile: { name: "Bob" } });
  await membersWhen(ada, [["Ada", true], ["Bob", false]], "Ada lists Bob");
  await membersWhen(bob, [["Bob", true], ["Ada", false]], "Bob lists Ada (she answered his arrival)");
  const adaSeen = await ada.page.evaluate(() => window.room.members.find((m) => !m.isSelf));
  assert.match(adaSeen.session, /^[0-9a-f]{32}$/);
  assert.deepEqual(adaSeen.profile, { name: "Bob" });

  await bob.page.evaluate(() => window.room.setProfile({ name: "Robert" }));
  await membersWhen(ada, [["Ada", true], ["Robert", false]], "Ada sees Bob's new profile");
  const events = await ada.page.evaluate(() => window.lists.length);
  assert.ok(events >= 2, `members events on Ada's side: ${events}`);

  // Cyd (channel "main", like Ada) takes no part. The relay passes one socket's frames on
  // in order, so once a broadcast sent after an announcement arrives, the announcement
  // would have arrived before it.
  const cyd = await tab(room, { members: false });
  await cyd.page.evaluate(() => { window.room.setProfile({ name: "Cyd" }); window.room.broadcast({ mark: "cyd" }); });
  await received(ada, "cyd");
  await membersWhen(ada, [["Ada", true], ["Robert", false]], "Cyd (members: false) does not appear");
  // Ada announces a change (Bob sees it), then broadcasts on "main": Cyd gets the
  // broadcast but, following only its channel, never the announcement.
  await ada.page.evaluate(() => window.room.setProfile({ name: "Ada", color: "#3c3" }));
  await bob.page.waitForFunction(() => window.room.members.some((m) => m.profile?.color === "#3c3"), null, { timeout: 20_000, polling: 50 });
  await ada.page.evaluate(() => window.room.broadcast({ mark: "ada" }));
  await received(cyd, "ada");
  assert.deepEqual(await cyd.page.evaluate(() => window.room.members), [], "members: false lists nobody");

  await bob.page.evaluate(() => window.room.leave());
  await membersWhen(ada, [["Ada", true]], "Bob's leave drops him at once");
  const tooLong = await ada.page.evaluate(() => {
    try { window.room.setProfile({ name: "x".repeat(5000) }); return "accepted"; } catch (e) { return e.code; }
  });
  assert.equal(tooLong, "INVALID_MEMBER");
  for (const t of [ada, bob, cyd]) await t.close();
});
