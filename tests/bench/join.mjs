// Joining a 10,000-event room in headless Chromium (issue 12), against the real relay under
// `wrangler dev` with the shipped relay/wrangler.toml limits. Prints a summary on stderr
// and one JSON object on stdout. Not part of `./run test` (a benchmark, not a timed test).
//
//   node tests/bench/join.mjs [ROUNDS] [BUILDERS]   (defaults 5 and 4; pkg/ and relay/build
//                                                    must be built, as for tests/e2e)
//   bash tests/bench/run-join.sh                     (the same, with machine and load)
//
// 1. Build: BUILDERS pages (persist: false) share the work of 1,000 creates then 9,000
//    updates (every entity gets 9 updates; its `rev` ends at 9). Each page makes one change,
//    waits until `pendingChanges === 0`, then makes the next: one change per envelope, so
//    the room stores exactly 10,000 events (the SDK paces each socket itself; several
//    sockets only shorten the build). A probe join with `debug: true` reads `WELCOME head
//    H, snapshot S` (the relay's last snapshot).
// 2. Cold join, ROUNDS times: a new browser context (empty IndexedDB); after `init()`, the
//    clock runs from the `Room.join` call to (a) `join` resolving, (b) "complete": status
//    `live`, 1,000 tasks, every one at `rev` 9 (the whole history applied). Each round runs
//    twice, once per reader: "change" reads `room.get("tasks")` once per task that fired
//    `change` events (as a page that re-renders would), "status" only on `status` events
//    (nothing reads the collection while the history comes in).
// 3. Warm join, in the same context once its local copy holds the head (IndexedDB `replica`
//    record at seq ≥ head, or a `history` record at the head): `page.reload()`, `init()`,
//    then from `Room.join` to (a) `join` resolving with 1,000 tasks at rev 9 (what a page can
//    show offline) and (b) `live`.
//    During 2 and 3 a 1 ms `setInterval` heartbeat records the main thread's longest gap
//    (as tests/bench/bench.js does), and a `PerformanceObserver` the longest `longtask`
//    (tasks over 50 ms). The floor: the same cold join of an empty room, ROUNDS times, before
//    the build. An idle baseline of the heartbeat is printed too.
//    The renderer's main-thread time during each join (CDP `Performance.getMetrics`
//    `TaskDuration`, all tasks, and `ScriptDuration`, JavaScript and wasm) is printed too.
// 4. Saving after one change, in the last warm context (live, writing its local copy):
//    CHANGES times, one `room.update` in its own task (a page.evaluate), then WINDOW_MS
//    (default 400) for what follows it: sealing, the outbox write, the send, the ACK, the
//    replica write. Main-thread cost = the renderer's `TaskDuration` over that window minus
//    the same over an equal window with an empty page.evaluate (measured right after
//    each). IndexedDB's own work off the main thread is not counted. The synchronous
//    `update` call is reported apart (performance.now() around it).
//    Then, not timed, one more warm join with `debug` shows its `HELLO after <seq>` and
//    what the relay sent back.
// Knobs: JOIN_CHANGES (25), JOIN_WINDOW_MS (400), JOIN_ENTITIES (1000) and JOIN_UPDATES (9,
// updates per entity; a quick check of the script: JOIN_ENTITIES=40 JOIN_UPDATES=2).
// With JOIN_PROFILE=1, one more cold and warm join per reader runs under the CPU profiler
// (not counted); the profiles go to artifacts/bench-join-*.cpuprofile and the functions
// with the most self time into the JSON.
import { execSync } from "node:child_process";
import { CHROMIUM, CHROMIUM_ARGS, Relay, freePort, playwright, serveStatic } from "../e2e/harness.mjs";

const ROUNDS = Number(process.argv[2] || 5);
const BUILDERS = Number(process.argv[3] || 4);
const CHANGES = Number(process.env.JOIN_CHANGES || 25);
const WINDOW_MS = Number(process.env.JOIN_WINDOW_MS || 400);
const ENTITIES = Number(process.env.JOIN_ENTITIES || 1000);
const UPDATES_PER_ENTITY = Number(process.env.JOIN_UPDATES || 9);
const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

const sh = (cmd) => { try { return execSync(cmd, { encoding: "utf8" }).trim(); } catch { return "?"; } };
const log = (...a) => console.error("#", ...a);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const max = (xs) => Math.max(...xs);
const r1 = (x) => Math.round(x * 10) / 10;
const stat = (xs) => ({ median: r1(median(xs)), max: r1(max(xs)), runs: xs.map(r1) });

const machine = {
  cpu: sh("lscpu | sed -n 's/^Model name:[[:space:]]*//p'"),
  cores: Number(sh("nproc")),
  memory: sh("free -h | awk '/^Mem:/ {print $2}'"),
  kernel: sh("uname -r"),
  node: process.version,
  loadAtStart: sh("uptime"),
  startedAt: new Date().toISOString(),
};
log("machine:", JSON.stringify(machine));

const relay = new Relay(await freePort());
await relay.start();
const site = await serveStatic(await freePort());
const browser = await playwright().chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
machine.chromium = browser.version();
const room = `bench-join-${Date.now().toString(36)}`;

/** Opens /pkg/package.json (same origin as the SDK), imports and initialises the SDK. */
async function ready(page) {
  if (!page.url().endsWith("/pkg/package.json")) await page.goto(site.url + "/pkg/package.json");
  await page.evaluate(async () => {
    const mod = await import("/pkg/index.js");
    await mod.default();
    window.Room = mod.Room;
  });
}

async function newPage(context) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  page.loads = 0;
  page.on("load", () => { page.loads++; });
  await ready(page);
  return page;
}

// In-page helpers, installed before each measurement.
function installHelpers() {
  /** A 1 ms heartbeat and a longtask observer; `stop()` returns the longest gap and task. */
  window.watchStalls = () => {
    let last = performance.now();
    let worst = 0;
    const id = setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last); last = now; }, 1);
    let longest = 0;
    let longTasks = 0;
    let observer = null;
    try {
      observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) { longTasks++; longest = Math.max(longest, e.duration); } });
      observer.observe({ type: "longtask" });
    } catch { /* no longtask support */ }
    return {
      stop: () => {
        const now = performance.now();
        worst = Math.max(worst, now - last);
        clearInterval(id);
        if (observer) { for (const e of observer.takeRecords()) { longTasks++; longest = Math.max(longest, e.duration); } observer.disconnect(); }
        return { longestGapMs: worst, longestTaskMs: longest, longTasks };
      },
    };
  };
  window.sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
  /** All 1,000 tasks with their last update applied. */
  window.complete = (room, n, rev) => {
    const tasks = room.get("tasks");
    if (tasks.length !== n) return false;
    for (const t of tasks) if (t.rev !== rev) return false;
    return true;
  };
}

/**
 * The renderer's cumulative main-thread time (CDP `Performance.getMetrics`), in ms. One CDP
 * session per page (the counters run from `Performance.enable`), opened again after a
 * reload.
 */
const sessions = new WeakMap();
async function mainThread(page) {
  let s = sessions.get(page);
  if (!s || s.url !== page.url() || s.loads !== page.loads) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");
    s = { cdp, url: page.url(), loads: page.loads };
    sessions.set(page, s);
  }
  const { metrics } = await s.cdp.send("Performance.getMetrics");
  const get = (name) => (metrics.find((m) => m.name === name)?.value ?? NaN) * 1000;
  return { task: get("TaskDuration"), script: get("ScriptDuration") };
}

/**
 * With JOIN_PROFILE=1: a CPU profile (CDP Profiler) around `fn`, kept in artifacts/, and
 * the functions with the most self time.
 */
async function profiled(page, name, fn) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.send("Profiler.start");
  const out = await fn();
  const { profile } = await cdp.send("Profiler.stop");
  await cdp.detach().catch(() => {});
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { ARTIFACTS } = await import("../e2e/harness.mjs");
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, `bench-join-${name}.cpuprofile`), JSON.stringify(profile));
  const self = new Map();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const dt = new Map();
  profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) || 0) + (profile.timeDeltas[i] || 0)));
  let total = 0;
  for (const [id, us] of dt) {
    const f = byId.get(id).callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url ? f.url.split("/").pop() : ""}`.trim();
    self.set(key, (self.get(key) || 0) + us);
    total += us;
  }
  out.profile = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, us]) => `${(us / 1000).toFixed(1)} ms ${k}`);
  out.profileTotalMs = total / 1000;
  return out;
}

/**
 * One measured join (in the page): from the `Room.join` call to its resolution, to
 * "complete" and to "live"; and the renderer's main-thread time during it.
 */
async function measureJoin(page, relayUrl, { joinRoom = room, n = ENTITIES, rev = UPDATES_PER_ENTITY, reader = "change" } = {}) {
  await page.evaluate(installHelpers);
  // Idle baseline first: the heartbeat's longest gap over 300 ms with nothing running.
  const idle = await page.evaluate(async () => {
    const w = window.watchStalls();
    await window.sleep(300);
    return w.stop();
  });
  const before = await mainThread(page);
  const marks = await page.evaluate(async ({ url, room, secret, n, rev, reader }) => {
    const w = window.watchStalls();
    await window.sleep(20);
    const marks = {};
    const t0 = performance.now();
    let r;
    const done = new Promise((ok) => {
      const check = () => {
        if (!r) return;
        const now = performance.now();
        const isLive = r.status.state === "live";
        const isComplete = window.complete(r, n, rev);
        if (isComplete && marks.complete === undefined) marks.complete = now - t0;
        if (isLive && marks.live === undefined) marks.live = now - t0;
        if (isLive && isComplete && marks.liveComplete === undefined) { marks.liveComplete = now - t0; ok(); }
      };
      let queued = false;
      window.queueCheck = () => { if (!queued) { queued = true; queueMicrotask(() => { queued = false; check(); }); } };
      window.check = check;
    });
    r = await window.Room.join({ url, room, secret });
    marks.resolved = performance.now() - t0;
    marks.completeAtResolve = window.complete(r, n, rev);
    marks.tasksAtResolve = r.get("tasks").length;
    marks.statusAtResolve = r.status.state;
    window.room = r;
    window.warnings = [];
    r.on("warning", (x) => window.warnings.push(x.code));
    r.on("status", window.queueCheck);
    if (reader === "change") r.on("change", window.queueCheck);
    window.check();
    await Promise.race([done, window.sleep(60_000).then(() => { throw new Error(`not complete within 60 s: ${JSON.stringify(marks)}, status ${r.status.state}, ${r.get("tasks").length} tasks`); })]);
    await window.sleep(20);
    const stalls = w.stop();
    return { ...marks, ...stalls, storage: r.storage, warnings: window.warnings };
  }, { url: relayUrl, room: joinRoom, secret: SECRET, n, rev, reader });
  const after = await mainThread(page);
  // 40 ms of the window are the sleeps around the join (the heartbeat's own ticks only).
  return { ...marks, idleLongestGapMs: idle.longestGapMs, mainThreadTaskMs: after.task - before.task, mainThreadScriptMs: after.script - before.script };
}

/** Resolves once this browser context's local copy of the room reaches `head`. */
async function localCopyAt(page, head) {
  await page.waitForFunction(async ({ room, head }) => {
    const db = await new Promise((ok, fail) => { const r = indexedDB.open("sealsync"); r.onsuccess = () => ok(r.result); r.onerror = fail; });
    try {
      if (!db.objectStoreNames.contains("replica")) return false;
      const get = (store, key) => new Promise((ok) => { const r = db.transaction(store).objectStore(store).get(key); r.onsuccess = () => ok(r.result); r.onerror = () => ok(undefined); });
      const [snapshot, event] = await Promise.all([get("replica", room), get("history", [room, head])]);
      return (snapshot !== undefined && snapshot.seq >= head) || event !== undefined;
    } finally { db.close(); }
  }, { room, head }, { timeout: 60_000, polling: 100 });
  return page.evaluate(async (room) => {
    const db = await new Promise((ok, fail) => { const r = indexedDB.open("sealsync"); r.onsuccess = () => ok(r.result); r.onerror = fail; });
    const snapshot = await new Promise((ok) => { const r = db.transaction("replica").objectStore("replica").get(room); r.onsuccess = () => ok(r.result); });
    const events = await new Promise((ok) => { const r = db.transaction("history").objectStore("history").count(IDBKeyRange.bound([room, 0], [room, Infinity])); r.onsuccess = () => ok(r.result); });
    db.close();
    return { snapshotSeq: snapshot?.seq ?? null, snapshotBytes: snapshot?.snapshot?.byteLength ?? null, keptEvents: events };
  }, room);
}

const result = { machine, room, builders: BUILDERS, rounds: ROUNDS };
try {
  // 0. The floor: a cold join of an empty room (socket through wrangler dev, HELLO, WELCOME,
  // CAUGHT_UP, the IndexedDB database created), ROUNDS times, each in a new context.
  // One more first, not counted: the first context and Durable Object of the run are slower.
  const empty = [];
  for (let round = -1; round < ROUNDS; round++) {
    const context = await browser.newContext();
    const page = await newPage(context);
    const e = await measureJoin(page, relay.url, { joinRoom: `${room}-empty-${round + 1}`, n: 0 });
    if (round >= 0) empty.push(e);
    await context.close();
  }
  log(`empty room, cold: live after ${empty.map((x) => r1(x.liveComplete)).join(", ")} ms`);

  // 1. Build the room.
  const buildContext = await browser.newContext();
  const builders = [];
  for (let b = 0; b < BUILDERS; b++) {
    const page = await newPage(buildContext);
    await page.evaluate(async ({ url, room, secret }) => {
      window.codes = [];
      window.room = await window.Room.join({ url, room, secret, persist: false });
      window.room.on("warning", (w) => window.codes.push(w.code));
      window.room.on("rejected", (w) => window.codes.push(`rejected:${w.code}`));
    }, { url: relay.url, room, secret: SECRET });
    await page.waitForFunction(() => window.room.status.state === "live", null, { timeout: 20_000 });
    builders.push(page);
  }
  const buildStart = Date.now();
  const phase = (fn, arg) => Promise.all(builders.map((page, b) => page.evaluate(fn, { ...arg, b, builders: BUILDERS })));
  // One change, then wait for the relay's ACK: each change is its own envelope and event.
  const oneByOne = `async (change) => {
      change();
      if (window.room.pendingChanges === 0) return;
      await new Promise((ok) => { const off = window.room.on("pending", (n) => { if (n === 0) { off(); ok(); } }); });
    }`;
  await phase(async ({ b, builders, n, oneByOne }) => {
    const send = new Function(`return (${oneByOne})`)();
    window.ids = [];
    for (let i = b; i < n; i += builders) {
      await send(() => window.ids.push(window.room.create("tasks", { title: `task ${i}`, rev: 0, note: `entity ${i} of the join benchmark` })));
    }
  }, { n: ENTITIES, oneByOne });
  log(`built ${ENTITIES} creates in ${((Date.now() - buildStart) / 1000).toFixed(1)} s`);
  await phase(async ({ rounds, oneByOne }) => {
    const send = new Function(`return (${oneByOne})`)();
    for (let rev = 1; rev <= rounds; rev++) {
      for (const id of window.ids) await send(() => window.room.update("tasks", id, { rev }));
    }
  }, { rounds: UPDATES_PER_ENTITY, oneByOne });
  result.buildSeconds = r1((Date.now() - buildStart) / 1000);
  const codes = (await Promise.all(builders.map((p) => p.evaluate(() => window.codes)))).flat();
  result.buildWarnings = codes;
  log(`built ${ENTITIES * (1 + UPDATES_PER_ENTITY)} changes in ${result.buildSeconds} s; warnings/refusals: ${JSON.stringify(codes)}`);
  await buildContext.close();

  // The relay's view: a probe join with debug (no local copy kept).
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    const lines = [];
    page.on("console", (m) => { if (m.type() === "debug") lines.push(m.text()); });
    await ready(page);
    await page.evaluate(async ({ url, room, secret }) => { window.room = await window.Room.join({ url, room, secret, persist: false, debug: true }); }, { url: relay.url, room, secret: SECRET });
    await page.waitForFunction(() => window.room.status.state === "live", null, { timeout: 30_000 });
    await page.evaluate(() => window.room.leave());
    await context.close();
    const welcome = lines.find((l) => l.includes("WELCOME"));
    const m = /WELCOME head (\d+), snapshot (\d+)/.exec(welcome || "");
    result.relay = {
      welcome: welcome?.replace(/^sealsync ← /, ""),
      headSeq: m ? Number(m[1]) : null,
      snapshotSeq: m ? Number(m[2]) : null,
      catchUp: lines.filter((l) => l.includes("SNAPSHOT up to") || l.includes("CAUGHT_UP")).map((l) => l.replace(/^sealsync ← /, "")),
      eventsInCatchUp: lines.filter((l) => l.includes("← EVENT")).length,
    };
    log("relay:", JSON.stringify(result.relay));
  }
  const head = result.relay.headSeq;

  // 2 + 3. Cold then warm join, each round in a fresh context, once per reader: "change"
  // reads room.get("tasks") once per task that fired `change` events (as a page re-renders),
  // "status" only when a `status` event fires (nothing reads the collection meanwhile).
  const runs = { change: { cold: [], warm: [] }, status: { cold: [], warm: [] } };
  let lastWarm = null;
  for (let round = 0; round < ROUNDS; round++) {
    for (const reader of ["change", "status"]) {
      const context = await browser.newContext();
      const page = await newPage(context);
      const c = await measureJoin(page, relay.url, { reader });
      runs[reader].cold.push(c);
      log(`round ${round} reader ${reader} cold: resolved ${r1(c.resolved)} ms, complete+live ${r1(c.liveComplete)} ms, longest gap ${r1(c.longestGapMs)} ms, longest task ${r1(c.longestTaskMs)} ms, main thread ${r1(c.mainThreadTaskMs)} ms`);
      c.localCopy = await localCopyAt(page, head);
      await page.reload();
      await ready(page);
      const w = await measureJoin(page, relay.url, { reader });
      runs[reader].warm.push(w);
      log(`round ${round} reader ${reader} warm: resolved ${r1(w.resolved)} ms (complete at resolve: ${w.completeAtResolve}), live ${r1(w.live)} ms, longest gap ${r1(w.longestGapMs)} ms, longest task ${r1(w.longestTaskMs)} ms, main thread ${r1(w.mainThreadTaskMs)} ms`);
      if (lastWarm) await lastWarm.context().close();
      lastWarm = page;
    }
  }

  if (process.env.JOIN_PROFILE === "1") {
    // Not counted: one more cold and warm join per reader under the CPU profiler.
    result.profile = {};
    for (const reader of ["change", "status"]) {
      const context = await browser.newContext();
      const page = await newPage(context);
      const c = await profiled(page, `cold-${reader}`, () => measureJoin(page, relay.url, { reader }));
      await localCopyAt(page, head);
      await page.reload();
      await ready(page);
      const w = await profiled(page, `warm-${reader}`, () => measureJoin(page, relay.url, { reader }));
      await context.close();
      result.profile[`cold/${reader}`] = { liveMs: c.liveComplete, top: c.profile, totalMs: c.profileTotalMs };
      result.profile[`warm/${reader}`] = { resolvedMs: w.resolved, liveMs: w.live, top: w.profile, totalMs: w.profileTotalMs };
    }
    log("profiled:", Object.entries(result.profile).map(([k, v]) => `${k} ${r1(v.liveMs)} ms`).join(", "));
  }

  // 4. Saving after one change, in the last warm context.
  const page = lastWarm;
  await localCopyAt(page, head);
  await page.evaluate(() => { window.ids = window.room.get("tasks").map((t) => t.id); });
  const wait = (ms) => new Promise((ok) => setTimeout(ok, ms));
  const saves = [];
  for (let i = 0; i < CHANGES; i++) {
    await wait(100);
    // The change: one update in its own task (a page.evaluate), then WINDOW_MS for what
    // follows it (sealing, outbox write, send, ACK, replica write).
    let m0 = await mainThread(page);
    const change = await page.evaluate((i) => {
      const r = window.room;
      const pendingBefore = r.pendingChanges;
      const t0 = performance.now();
      r.update("tasks", window.ids[i % window.ids.length], { rev: 9, note: `saved ${i}` });
      const syncMs = performance.now() - t0;
      return { syncMs, pendingBefore };
    }, i);
    await wait(WINDOW_MS);
    let m1 = await mainThread(page);
    const acked = await page.evaluate(() => window.room.pendingChanges === 0);
    const changeTask = m1.task - m0.task;
    const changeScript = m1.script - m0.script;
    await wait(100);
    // The same window without a change: an empty page.evaluate, then WINDOW_MS.
    m0 = await mainThread(page);
    await page.evaluate(() => performance.now());
    await wait(WINDOW_MS);
    m1 = await mainThread(page);
    saves.push({ ...change, acked, changeTaskMs: changeTask, idleTaskMs: m1.task - m0.task, costMs: changeTask - (m1.task - m0.task), changeScriptMs: changeScript, idleScriptMs: m1.script - m0.script });
  }
  result.saveRuns = saves.map((x) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, typeof v === "number" ? Math.round(v * 100) / 100 : v])));
  result.localCopyAfterSaves = await localCopyAt(page, head + CHANGES);
  // Not timed: one more warm join with `debug`, to show what it asks the relay for.
  {
    const lines = [];
    page.on("console", (m) => { if (m.type() === "debug") lines.push(m.text().replace(/^sealsync /, "")); });
    await page.reload();
    await ready(page);
    await page.evaluate(async ({ url, room, secret }) => { window.room = await window.Room.join({ url, room, secret, debug: true }); }, { url: relay.url, room, secret: SECRET });
    await page.waitForFunction(() => window.room.status.state === "live", null, { timeout: 30_000 });
    result.warmDebug = {
      hello: lines.find((l) => l.includes("HELLO")),
      welcome: lines.find((l) => l.includes("WELCOME")),
      eventsReceived: lines.filter((l) => l.startsWith("← EVENT")).length,
      snapshotsReceived: lines.filter((l) => l.startsWith("← SNAPSHOT ")).length,
      caughtUp: lines.find((l) => l.includes("CAUGHT_UP")),
    };
    log("warm join with debug:", JSON.stringify(result.warmDebug));
  }
  await page.context().close();

  const pick = (xs, k) => stat(xs.map((x) => x[k]));
  result.emptyCold = {
    resolvedMs: pick(empty, "resolved"),
    liveMs: pick(empty, "liveComplete"),
    longestGapMs: pick(empty, "longestGapMs"),
    longestTaskMs: pick(empty, "longestTaskMs"),
    mainThreadTaskMs: pick(empty, "mainThreadTaskMs"),
    mainThreadScriptMs: pick(empty, "mainThreadScriptMs"),
  };
  result.idleLongestGapMs = stat(Object.values(runs).flatMap((x) => [...x.cold, ...x.warm]).map((x) => x.idleLongestGapMs));
  for (const [reader, { cold, warm }] of Object.entries(runs)) {
    result[`cold/${reader}`] = {
      resolvedMs: pick(cold, "resolved"),
      completeLiveMs: pick(cold, "liveComplete"),
      longestGapMs: pick(cold, "longestGapMs"),
      longestTaskMs: pick(cold, "longestTaskMs"),
      mainThreadTaskMs: pick(cold, "mainThreadTaskMs"),
      mainThreadScriptMs: pick(cold, "mainThreadScriptMs"),
      tasksAtResolve: cold.map((x) => x.tasksAtResolve),
      localCopy: cold.map((x) => x.localCopy),
      warnings: cold.flatMap((x) => x.warnings),
    };
    result[`warm/${reader}`] = {
      resolvedMs: pick(warm, "resolved"),
      completeAtResolve: warm.map((x) => x.completeAtResolve),
      statusAtResolve: warm.map((x) => x.statusAtResolve),
      liveMs: pick(warm, "live"),
      longestGapMs: pick(warm, "longestGapMs"),
      longestTaskMs: pick(warm, "longestTaskMs"),
      mainThreadTaskMs: pick(warm, "mainThreadTaskMs"),
      mainThreadScriptMs: pick(warm, "mainThreadScriptMs"),
      storage: warm.map((x) => x.storage),
      warnings: warm.flatMap((x) => x.warnings),
    };
  }
  result.save = {
    changes: CHANGES,
    windowMs: WINDOW_MS,
    syncMs: stat(saves.map((x) => x.syncMs)),
    mainThreadMs: stat(saves.map((x) => x.costMs)),
    windowTaskMs: stat(saves.map((x) => x.changeTaskMs)),
    idleWindowTaskMs: stat(saves.map((x) => x.idleTaskMs)),
    windowScriptMs: stat(saves.map((x) => x.changeScriptMs)),
    ackedWithinWindow: saves.filter((x) => x.acked).length,
  };
} finally {
  machine.loadAtEnd = sh("uptime");
  await browser.close().catch(() => {});
  await site.close();
  await relay.dispose();
}
log("load at end:", machine.loadAtEnd);
console.log(JSON.stringify(result, null, 2));
