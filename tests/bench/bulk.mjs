// Bulk changes through the real relay (`wrangler dev` with the shipped relay/wrangler.toml
// limits) between two headless Chromium tabs: how long until what one tab did is visible
// in the other, and whether anything was refused for the rate. Prints one JSON object.
//
//   node tests/bench/bulk.mjs [ROUNDS]     (pkg/ and relay/build must be built: ./run test
//                                           or ./run demo builds both)
//
// Scenarios, each ROUNDS times (default 3) in a fresh room:
//  - bulk-one-task: 600 creates then 600 updates in one synchronous task;
//  - bulk-per-task: the same, each change in its own task (a MessageChannel task between
//    changes, the worst case for coalescing);
//  - import-10k: 10,000 creates in tasks of 100 (an importer yielding to the page).
// The clock runs from the first change in tab A to the moment tab B's `room.get` shows the
// final state; "acked" is when tab A has nothing pending. Then a third page joins with
// `debug` and reads the relay's head from `WELCOME`: the envelopes (PUBLISH frames) the
// room stored, so the result gives changes, frames, changes per frame and changes per
// second (to visible and to acked).
import { CHROMIUM, CHROMIUM_ARGS, Relay, freePort, playwright, serveStatic } from "../e2e/harness.mjs";

const ROUNDS = Number(process.argv[2] || 3);
const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

const relay = new Relay(await freePort());
await relay.start();
const site = await serveStatic(await freePort());
const browser = await playwright().chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
const chromium = browser.version();

// A page joined to `room` and live; `options` go to Room.join as well. Its debug console
// lines are kept in page.debugLines.
async function tab(room, options = {}) {
  const page = await (await browser.newContext()).newPage();
  page.debugLines = [];
  page.on("console", (m) => { if (m.type() === "debug") page.debugLines.push(m.text()); });
  await page.goto(site.url + "/pkg/package.json");
  await page.evaluate(async ({ url, room, secret, options }) => {
    const { default: init, Room } = await import("/pkg/index.js");
    await init();
    window.codes = [];
    const r = await Room.join({ url, room, secret, persist: false, ...options });
    r.on("warning", (w) => window.codes.push(w.code));
    r.on("rejected", (w) => window.codes.push(`rejected:${w.code}`));
    r.on("status", (s) => s.state === "reconnecting" && window.codes.push("reconnecting"));
    window.room = r;
  }, { url: relay.url, room, secret: SECRET, options });
  await page.waitForFunction(() => window.room.status.state === "live", null, { timeout: 20_000 });
  return page;
}

// The room's head as a new member's WELCOME states it: one event per stored envelope.
async function relayHead(room) {
  const page = await tab(room, { debug: true });
  await page.evaluate(() => window.room.leave());
  await page.context().close();
  const m = /WELCOME head (\d+)/.exec(page.debugLines.find((l) => l.includes("WELCOME")) || "");
  if (!m) throw new Error(`no WELCOME in the probe's debug lines: ${JSON.stringify(page.debugLines.slice(0, 5))}`);
  return Number(m[1]);
}

const scenarios = {
  "bulk-one-task": {
    changes: 1200,
    expect: { n: 600, done: 600 },
    run: async () => {
      const ids = [];
      for (let i = 0; i < 600; i++) ids.push(window.room.create("tasks", { title: `t${i}`, done: false }));
      for (const id of ids) window.room.update("tasks", id, { done: true });
    },
  },
  "bulk-per-task": {
    changes: 1200,
    expect: { n: 600, done: 600 },
    run: async () => {
      // A real task between changes (a MessageChannel message: no 4 ms setTimeout clamp).
      const channel = new MessageChannel();
      const tick = () => new Promise((ok) => { channel.port1.onmessage = ok; channel.port2.postMessage(0); });
      const ids = [];
      for (let i = 0; i < 600; i++) { ids.push(window.room.create("tasks", { title: `t${i}`, done: false })); await tick(); }
      for (const id of ids) { window.room.update("tasks", id, { done: true }); await tick(); }
    },
  },
  "import-10k": {
    changes: 10_000,
    expect: { n: 10_000, done: 0 },
    run: async () => {
      for (let i = 0; i < 10_000; i += 100) {
        for (let j = i; j < i + 100; j++) window.room.create("tasks", { title: `imported ${j}`, done: false, estimate: j % 13 });
        await new Promise((ok) => { const c = new MessageChannel(); c.port1.onmessage = ok; c.port2.postMessage(0); });
      }
    },
  },
};

const results = [];
try {
  for (const [name, s] of Object.entries(scenarios)) {
    for (let round = 0; round < ROUNDS; round++) {
      const room = `bench-${name}-${round}-${Date.now().toString(36)}`;
      const a = await tab(room);
      const b = await tab(room);
      await b.evaluate(({ n, done }) => {
        window.visible = new Promise((ok) => {
          // Once per burst of change events (as a front end re-renders once per task):
          // reading the whole collection on each of 10,000 events would measure the page.
          let queued = false;
          const check = () => {
            queued = false;
            const tasks = window.room.get("tasks");
            if (tasks.length === n && tasks.filter((t) => t.done === true).length === done) ok(performance.timeOrigin + performance.now());
          };
          window.room.on("change", () => { if (!queued) { queued = true; queueMicrotask(check); } });
        });
      }, s.expect);
      const started = await a.evaluate(async (src) => {
        const run = new Function(`return (${src})`)();
        const t0 = performance.timeOrigin + performance.now();
        window.acked = new Promise((ok) => window.room.on("pending", (n) => n === 0 && ok(performance.timeOrigin + performance.now())));
        await run();
        return t0;
      }, s.run.toString());
      let visible;
      try {
        visible = await b.evaluate(() => Promise.race([
          window.visible,
          new Promise((_, fail) => setTimeout(() => fail(new Error("not visible within 60 s")), 60_000)),
        ]));
      } catch (err) {
        const seen = await b.evaluate(() => ({ tasks: window.room.get("tasks").length, done: window.room.get("tasks").filter((t) => t.done).length, status: window.room.status.state, codes: window.codes }));
        const sender = await a.evaluate(() => ({ pending: window.room.pendingChanges, status: window.room.status.state, codes: window.codes }));
        throw new Error(`${name} round ${round}: ${err.message}: receiver ${JSON.stringify(seen)}, sender ${JSON.stringify(sender)}`);
      }
      console.error(`# ${name} round ${round}: visible after ${Math.round(visible - started)} ms`);
      const acked = await a.evaluate(() => window.acked);
      const codes = [...await a.evaluate(() => window.codes), ...await b.evaluate(() => window.codes)];
      await a.context().close();
      await b.context().close();
      const frames = await relayHead(room);
      const visibleMs = Math.round(visible - started);
      const ackedMs = Math.round(acked - started);
      results.push({
        scenario: name, round, visibleMs, ackedMs, refusals: codes,
        changes: s.changes, frames, changesPerFrame: +(s.changes / frames).toFixed(1),
        changesPerSecondVisible: Math.round(s.changes / (visibleMs / 1000)),
        changesPerSecondAcked: Math.round(s.changes / (ackedMs / 1000)),
      });
    }
  }
} finally {
  await browser.close();
  await site.close();
  await relay.dispose();
}
console.log(JSON.stringify({ chromium, rounds: ROUNDS, results }, null, 2));
