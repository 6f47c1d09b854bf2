// The key-derivation worker in headless Chromium, through the package entry (pkg/index.js):
// the worker runs when it can; whatever goes wrong with it, a password join still resolves,
// derived on the main thread with a KDF_WORKER_FAILED warning; only the core's own
// derivation errors reject. No relay is needed: the rooms point at a closed port and join
// offline. Run with tests/e2e/run.sh (node --test).
import assert from "node:assert/strict";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { readyPage, useScene } from "./harness.mjs";

// The test page: joins with the options a test passes, reports what happened.
const PAGE = `<!doctype html><meta charset="utf-8"><title>kdf</title>
<script type="module">
import init, { Room } from "/pkg/index.js";
await init();
let n = 0;
window.factoryCalls = 0;
const WORKERS = {
  // the package's own worker, started by the application
  real: () => new Worker("/pkg/kdf-worker.js", { type: "module" }),
  // forwards a non-core code, as the old worker did with webpack's MODULE_NOT_FOUND
  moduleNotFound: () => blobWorker("self.onmessage = () => self.postMessage({ ok: false, code: 'MODULE_NOT_FOUND', message: \\"Cannot find module '../../../sealsync.js'\\" });"),
  // throws while loading
  throws: () => blobWorker("throw new Error('document is not defined');"),
  // loads, never answers
  silent: () => blobWorker("self.onmessage = () => {};"),
  // not a worker at all
  notAWorker: () => ({}),
  // the factory itself throws
  factoryThrows: () => { throw new Error("no workers here"); },
};
function blobWorker(source) {
  return new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })), { type: "module" });
}
window.tryJoin = async ({ password, worker, kdfWorker }) => {
  const progress = [];
  const warnings = [];
  const options = {
    url: window.DEAD_RELAY, room: "kdf-" + Date.now() + "-" + n++, password, persist: false,
    onProgress: (p) => progress.push(p),
  };
  if (worker) options.kdfWorker = () => { window.factoryCalls++; return WORKERS[worker](); };
  if (kdfWorker !== undefined) options.kdfWorker = kdfWorker;
  const t0 = performance.now();
  try {
    const room = await Room.join(options);
    room.on("warning", (w) => warnings.push(w));
    await new Promise((r) => setTimeout(r, 100));
    const fingerprint = room.fingerprint();
    await room.leave();
    return { ok: true, progress, warnings, fingerprint, ms: performance.now() - t0 };
  } catch (e) {
    return { ok: false, code: e.code, message: e.message, progress };
  }
};
window.ready = true;
</script>`;

let brokenSite; // the test page with the broken copy of pkg/ (below)

// The test page (with a copy of pkg/), Chromium, and a closed port for the rooms.
const scene = useScene({
  page: PAGE,
  copyPkg: true,
  deadRelay: true,
  async setup() {
    // A copy of the package whose worker cannot load the glue (as when a bundler moved it).
    const broken = join(scene.dir, "pkg-broken");
    cpSync(join(scene.dir, "pkg"), broken, { recursive: true });
    const worker = readFileSync(join(broken, "kdf-worker.js"), "utf8");
    assert.match(worker, /from "\.\/sealsync\.js"/, "the worker imports the glue");
    writeFileSync(join(broken, "kdf-worker.js"), worker.replace('from "./sealsync.js"', 'from "./moved-away/sealsync.js"'));
    brokenSite = await scene.serve(join(scene.dir, "www"), broken);
  },
});

/**
 * A fresh test page from `origin`, `window.DEAD_RELAY` the closed port; `errors` are its
 * uncaught errors and console errors.
 */
function page(origin) {
  return readyPage(scene.browser, origin.url + "/", {
    globals: { DEAD_RELAY: scene.deadRelay },
    // The closed relay port fails every connection attempt; the page has no favicon.
    consoleError: (m) => {
      const url = m.location()?.url ?? "";
      if (url.startsWith(scene.deadRelay.replace("ws:", "http:")) || url.endsWith("/favicon.ico")) return false;
      return !m.text().startsWith("WebSocket connection to");
    },
  });
}

function keyReady(result) {
  const ready = result.progress.find((p) => p.state === "key-ready");
  assert.ok(ready, `a key-ready progress event: ${JSON.stringify(result.progress)}`);
  return ready;
}

function kdfWarnings(result) {
  return result.warnings.filter((w) => w.code === "KDF_WORKER_FAILED");
}

/** Joins with `options`; asserts the join resolved on the main thread with one warning. */
async function assertFallback(p, options, reason) {
  const r = await p.page.evaluate((o) => window.tryJoin(o), options);
  assert.equal(r.ok, true, `join resolved: ${JSON.stringify(r)}`);
  assert.equal(keyReady(r).inWorker, false, "derived on the main thread");
  const w = kdfWarnings(r);
  assert.equal(w.length, 1, `one KDF_WORKER_FAILED warning: ${JSON.stringify(r.warnings)}`);
  assert.match(w[0].message, reason);
  return r;
}

test("the package's worker derives the key: inWorker, no warning, no console error", async () => {
  const p = await page(scene.site);
  const r = await p.page.evaluate(() => window.tryJoin({ password: "hunter2" }));
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(keyReady(r).inWorker, true, "derived in the worker");
  assert.deepEqual(kdfWarnings(r), []);
  assert.deepEqual(p.errors, []);
  await p.close();
});

test("a worker that cannot load the glue: the join still resolves, same key, with a warning", async () => {
  const good = await page(scene.site);
  const broken = await page(brokenSite);
  // The same room and password on both pages: the fingerprints match only if the main
  // thread derived the same key as the worker.
  const fixed = async (p) => p.page.evaluate(async () => {
    const { Room } = await import("/pkg/index.js");
    const progress = [];
    const warnings = [];
    const room = await Room.join({ url: window.DEAD_RELAY, room: "kdf-fixed", password: "hunter2", persist: false, onProgress: (x) => progress.push(x) });
    room.on("warning", (w) => warnings.push(w));
    await new Promise((r) => setTimeout(r, 100));
    const fingerprint = room.fingerprint();
    await room.leave();
    return { progress, warnings, fingerprint };
  });
  const a = await fixed(good);
  const b = await fixed(broken);
  assert.equal(keyReady(a).inWorker, true);
  assert.equal(keyReady(b).inWorker, false, "the broken worker fell back to the main thread");
  assert.equal(kdfWarnings(b).length, 1, JSON.stringify(b.warnings));
  assert.match(kdfWarnings(b)[0].message, /main thread: .*worker/);
  assert.equal(a.fingerprint, b.fingerprint, "the main thread derives the same key");
  await good.close();
  await broken.close();
});

test("a worker forwarding a non-core code (webpack's MODULE_NOT_FOUND) falls back", async () => {
  const p = await page(scene.site);
  await assertFallback(p, { password: "hunter2", worker: "moduleNotFound" }, /Cannot find module/);
  assert.equal(await p.page.evaluate(() => window.factoryCalls), 1);
  await p.close();
});

test("a worker that throws while loading falls back", async () => {
  const p = await page(scene.site);
  await assertFallback(p, { password: "hunter2", worker: "throws" }, /worker failed/);
  await p.close();
});

test("a factory that throws or returns no Worker falls back", async () => {
  const p = await page(scene.site);
  await assertFallback(p, { password: "hunter2", worker: "factoryThrows" }, /no workers here/);
  await assertFallback(p, { password: "hunter2", worker: "notAWorker" }, /returned no Worker/);
  await p.close();
});

test("a worker that never accepts the job falls back after 15 s", async () => {
  const p = await page(scene.site);
  const r = await assertFallback(p, { password: "hunter2", worker: "silent" }, /did not accept the job within 15 s/);
  assert.ok(r.ms >= 15_000, `waited ${r.ms} ms`);
  await p.close();
});

test("a kdfWorker factory starting sealsync/kdf-worker is used", async () => {
  const p = await page(scene.site);
  const r = await p.page.evaluate(() => window.tryJoin({ password: "hunter2", worker: "real" }));
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(keyReady(r).inWorker, true);
  assert.deepEqual(kdfWarnings(r), []);
  assert.equal(await p.page.evaluate(() => window.factoryCalls), 1, "the factory started it");
  assert.deepEqual(p.errors, []);
  await p.close();
});

test("the core's own errors still reject, through the worker and without it", async () => {
  for (const origin of [scene.site, brokenSite]) {
    const p = await page(origin);
    const r = await p.page.evaluate(() => window.tryJoin({ password: "" }));
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.equal(r.code, "EMPTY_PASSWORD");
    await p.close();
  }
});

test("kdfWorker must be a function", async () => {
  const p = await page(scene.site);
  const r = await p.page.evaluate(() => window.tryJoin({ password: "hunter2", kdfWorker: "kdf-worker.js" }));
  assert.equal(r.ok, false);
  assert.equal(r.code, "INVALID_OPTIONS");
  assert.match(r.message, /kdfWorker/);
  await p.close();
});
