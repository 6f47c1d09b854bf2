// The SDK's `token` option against a real relay in `AUTH_MODE = "jwt"` whose keys are a JWK
// Set (an Ed25519 and a P-256 key): a token of the room's org, EdDSA or ES256, lets the
// browser in; none, or one for another org or room, keeps it out. A guest
// (`role: "pending_guest"`) waits with status `pending`, sees nothing of the room, and its
// knock reaches the members; the backend denies it (`forbidden`) or admits it (the whole
// board, and its held change reaches the others).
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { join as pathJoin } from "node:path";
import { test } from "node:test";

import {
  ARTIFACTS, Relay, SECRET, freePort, openBare, roomName, useScene, waitCount, waitLive, waitSynced,
} from "./harness.mjs";

const ORG = "acme";
const ROOM = `${ORG}:${roomName("e2e-auth")}`;
const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const es = generateKeyPairSync("ec", { namedCurve: "P-256" });
const JWKS = JSON.stringify({
  keys: [
    { ...publicKey.export({ format: "jwk" }), kid: "ed-1" },
    { ...es.publicKey.export({ format: "jwk" }), kid: "es-1", alg: "ES256", use: "sig" },
  ],
});

const SERVICE_ID = "e2e-backend";
const SERVICE_SECRET = "e2e-service-secret-0123456789";

// The jwt relay (with the keys and a backend that may notify), the demo site, Chromium.
const scene = useScene({
  relays: {
    relay: [
      "--var", "AUTH_MODE:jwt", "--var", `JWT_PUBLIC_KEYS:${JWKS}`, "--var", `NOTIFY_SERVICE_ID:${SERVICE_ID}`,
      "--var", `NOTIFY_SERVICE_SECRET:${SERVICE_SECRET}`,
    ],
  },
});

async function notify(body) {
  const res = await fetch(`http://127.0.0.1:${scene.relay.port}/internal/notify`, {
    method: "POST",
    headers: {
      "sealsync-service-id": SERVICE_ID,
      "sealsync-service-secret": SERVICE_SECRET,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
/** A token for `room` of `org`, signed with the Ed25519 key, or the P-256 key (ES256). */
function mint(room, { sub = "alice", org = ORG, alg = "EdDSA", ttl = 600, role } = {}) {
  const claims = { sub, org, room, exp: Math.floor(Date.now() / 1000) + ttl, ...(role ? { role } : {}) };
  const input = `${b64({ alg, typ: "JWT", kid: alg === "ES256" ? "es-1" : "ed-1" })}.${b64(claims)}`;
  const signature = alg === "ES256"
    ? sign("sha256", Buffer.from(input), { key: es.privateKey, dsaEncoding: "ieee-p1363" })
    : sign(null, Buffer.from(input), privateKey);
  return `${input}.${signature.toString("base64url")}`;
}

/** Joins `room` (ROOM by default) from a fresh page with `token` (a string, or undefined)
 * through a token function, to `url` (the jwt relay by default); the room is `window.room`. */
async function joinWith(token, shotName, url = scene.relay.url, room = ROOM) {
  const page = await scene.browser.newPage();
  await openBare(page, scene.site);
  await page.evaluate(async ({ url, room, secret, token }) => {
    const { default: init, Room } = await import("/pkg/sealsync.js");
    await init();
    let calls = 0;
    document.body.innerHTML = "<pre id=log style='font:14px monospace;padding:16px'></pre>";
    const log = (line) => { document.getElementById("log").textContent += line + "\n"; };
    log(`join ${room} ${token ? "with a token" : "without a token"}`);
    const r = await Room.join({
      url, room, secret, persist: false,
      ...(token ? { token: async () => { calls += 1; return token; } } : {}),
    });
    window.states = [];
    r.on("status", (s) => { window.states.push(s.state); log(`status: ${JSON.stringify(s)}`); });
    window.notes = [];
    r.on("notify", (n) => { window.notes.push(n); log(`notify: ${JSON.stringify(n)}`); });
    window.warnings = [];
    r.on("warning", (w) => { window.warnings.push(w); log(`warning: ${w.code} ${w.message}`); });
    window.tokenCalls = () => calls;
    window.room = r;
  }, { url, room, secret: SECRET, token });
  return page;
}

test("a token signed for the room lets the browser in; backend notify and ban reach it", async () => {
  const page = await joinWith(mint(ROOM), "ok");
  await page.waitForFunction(() => window.states.includes("live"), null, { timeout: 20_000 });
  assert.ok((await page.evaluate(() => window.tokenCalls())) >= 1);

  // The backend pushes to the room (unencrypted NOTIFY), then bans the user.
  const sent = await notify({ room: ROOM, kind: "broadcast", data: { hello: "from the backend" } });
  assert.ok(sent.delivered >= 1, JSON.stringify(sent));
  await page.waitForFunction(() => JSON.stringify(window.notes).includes("from the backend"), null, { timeout: 5000 });
  await notify({ room: ROOM, kind: "ban", user: "alice" });
  await page.waitForFunction(() => window.states.includes("forbidden"), null, { timeout: 5000 });
  await page.screenshot({ path: pathJoin(ARTIFACTS, "e2e-6-auth-token-live-notify-ban.png") });
  await page.close();
});

test("an ES256 token from the JWK Set lets the browser in", async () => {
  const page = await joinWith(mint(ROOM, { sub: "esther", alg: "ES256" }), "es256");
  await page.waitForFunction(() => window.states.includes("live"), null, { timeout: 20_000 });
  await page.close();
});

test("no token, or a token for another room or org, is refused with the relay's reason", async () => {
  const refused = [
    [undefined, "none", "needs a token"],
    [mint(`${ORG}:another-room`, { sub: "mallory" }), "other-room", "another room"],
    [mint(ROOM, { sub: "mallory", org: "globex" }), "other-org", "org may not open this room"],
  ];
  for (const [token, name, reason] of refused) {
    const page = await joinWith(token, name);
    // The handshake fails like an outage (1006); the room asks presence with the same
    // token, hears 403 and stops instead of retrying forever.
    await page.waitForFunction(() => window.states.includes("forbidden"), null, { timeout: 15_000 });
    const { states, warnings } = await page.evaluate(() => ({ states: window.states, warnings: window.warnings }));
    assert.ok(!states.includes("live"), `${name}: ${states.join(",")}`);
    const warning = warnings.find((w) => w.code === "CONNECTION_REFUSED");
    assert.ok(warning?.message.includes(reason), `${name}: ${JSON.stringify(warnings)}`);
    await page.screenshot({ path: pathJoin(ARTIFACTS, `e2e-6-auth-refused-${name}.png`) });
    await page.close();
  }
});

test("a page from an origin outside the relay's allowlist is told so and stops", async () => {
  // An open relay that admits only another origin: the handshake fails with 403, the
  // presence probe is refused too, with CORS headers, so the page can read why.
  const strict = new Relay(await freePort(), ["--var", "ALLOWED_ORIGINS:https://app.example"]);
  await strict.start();
  try {
    const page = await joinWith(undefined, "origin", strict.url);
    await page.waitForFunction(() => window.states.includes("forbidden"), null, { timeout: 15_000 });
    const warnings = await page.evaluate(() => window.warnings);
    const warning = warnings.find((w) => w.code === "CONNECTION_REFUSED");
    assert.ok(warning?.message.includes("origin may not connect"), JSON.stringify(warnings));
    await page.screenshot({ path: pathJoin(ARTIFACTS, "e2e-6-auth-refused-origin.png") });
    await page.close();
  } finally {
    await strict.dispose();
  }
});

/** A room of the org with its member `olga` live and two tasks stored, and the guest `gwen`
 * (`role: "pending_guest"`) joined and waiting: its status is `pending`, olga heard its
 * knock. */
async function knockScene(name) {
  const room = `${ORG}:${roomName(name)}`;
  const member = await joinWith(mint(room, { sub: "olga", role: "owner" }), "member", undefined, room);
  await waitLive(member);
  await member.evaluate(() => { window.room.create("tasks", { title: "plan A" }); window.room.create("tasks", { title: "plan B" }); });
  await waitSynced(member);
  const guest = await joinWith(mint(room, { sub: "gwen", role: "pending_guest" }), "guest", undefined, room);
  await guest.waitForFunction(() => window.room.status.state === "pending", null, { timeout: 20_000, polling: 50 });
  await member.waitForFunction(
    () => window.notes.some((n) => n?.type === "knock" && n.data?.user === "gwen"), null, { timeout: 10_000 });
  // A change the guest makes while it waits: shown here, held in its outbox.
  await guest.evaluate(() => window.room.create("tasks", { title: "from the guest" }));
  return { room, member, guest };
}

/** The titles of the tasks `page` shows, sorted. */
const titles = (page) => page.evaluate(() => window.room.get("tasks").map((t) => t.title).sort());

test("a guest waits with status pending and sees nothing; the member hears its knock; deny turns it away", async () => {
  const { room, member, guest } = await knockScene("e2e-knock-deny");
  // One more change while the guest waits, then a third socket: the PRESENCE its join sends
  // the guest comes after anything the relay sent the guest before, so once the guest
  // counts 3 it has read whatever it was going to get of that change.
  await member.evaluate(() => window.room.create("tasks", { title: "plan C" }));
  await waitSynced(member);
  const witness = await joinWith(mint(room, { sub: "walt" }), "witness", undefined, room);
  await waitLive(witness);
  await guest.waitForFunction(() => window.room.presence === 3, null, { timeout: 10_000, polling: 50 });
  assert.deepEqual(await titles(guest), ["from the guest"], "the guest sees only its own change");
  const seen = await guest.evaluate(() => ({
    states: window.states, pending: window.room.pendingChanges, warnings: window.warnings.map((w) => w.code),
  }));
  assert.ok(!seen.states.includes("live"), seen.states.join(","));
  assert.equal(seen.states.at(-1), "pending");
  assert.equal(seen.pending, 1, "held");
  assert.ok(!seen.warnings.includes("GUEST_PENDING"), "the status says it: " + seen.warnings.join(","));
  assert.equal((await titles(member)).length, 3, "the guest's change did not reach the room");
  await guest.screenshot({ path: pathJoin(ARTIFACTS, "e2e-6-auth-guest-pending.png") });

  const denied = await notify({ room, kind: "deny", user: "gwen" });
  assert.equal(denied.delivered, 1, JSON.stringify(denied));
  await guest.waitForFunction(() => window.room.status.state === "forbidden", null, { timeout: 10_000, polling: 50 });
  const warnings = await guest.evaluate(() => window.warnings);
  assert.ok(warnings.some((w) => w.code === "FORBIDDEN" && w.message.includes("turned down")), JSON.stringify(warnings));
  assert.deepEqual(await titles(guest), ["from the guest"]);
  assert.equal((await titles(member)).length, 3);
  for (const page of [member, guest, witness]) await page.close();
});

test("an admitted guest sees the whole board and its held change reaches the member", async () => {
  const { room, member, guest } = await knockScene("e2e-knock-admit");
  const admitted = await notify({ room, kind: "admit", user: "gwen" });
  assert.equal(admitted.delivered, 1, JSON.stringify(admitted));
  await waitLive(guest);
  await waitCount(guest, 3);
  await waitSynced(guest);
  await waitCount(member, 3);
  const all = ["from the guest", "plan A", "plan B"];
  assert.deepEqual(await titles(guest), all);
  assert.deepEqual(await titles(member), all);
  const seen = await guest.evaluate(() => ({ states: window.states, notes: window.notes }));
  const at = seen.states.indexOf("pending");
  assert.ok(at >= 0 && seen.states.indexOf("live", at) > at, seen.states.join(","));
  assert.ok(seen.notes.some((n) => n?.kind === "admit"), JSON.stringify(seen.notes));
  // From now on changes flow both ways.
  await member.evaluate(() => window.room.create("tasks", { title: "welcome" }));
  await waitCount(guest, 4);
  await guest.screenshot({ path: pathJoin(ARTIFACTS, "e2e-6-auth-guest-admitted.png") });
  await member.close();
  await guest.close();
});
