// The SDK as an application gets it: `npm pack` of pkg/ installed into this directory,
// app/ built with Vite, webpack 5 (also with a `kdfWorker` factory), esbuild, Rollup and
// Next.js (build.mjs) and served by the Vite dev server, each run in headless Chromium against the real relay (`wrangler dev`, from
// the e2e harness). Per bundler: the build reports no warning, two pages join the same
// password room, both derive the key in the worker (`key-ready` with `inWorker: true`, no
// KDF_WORKER_FAILED warning), a change made on one page arrives on the other, and neither
// page logs a console error. Then a React app on `sealsync/react` (esbuild, development
// mode, StrictMode; app/react-app.js). Run with tests/bundlers/run.sh (./run bundlers).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { CHROMIUM, CHROMIUM_ARGS, ROOT, Relay, freePort, playwright, serveStatic } from "../e2e/harness.mjs";
import { APP, BUILDS, HERE, WITH_FACTORY } from "./build.mjs";

const OUT = join(process.env.CARGO_TARGET_DIR || join(ROOT, "target"), "bundlers");
const PASSWORD = "correct horse battery staple";
// webpack's stock performance hints about the 0.9 MB wasm: advice, not a build problem.
const SIZE_HINT = /^(asset|entrypoint) size limit:/;

let relay;
let browser;

before(async () => {
  const installed = join(HERE, "node_modules", "sealsync", "package.json");
  assert.ok(existsSync(installed), `${installed} is missing: run tests/bundlers/run.sh, which installs the packed SDK`);
  const packed = JSON.parse(readFileSync(installed, "utf8"));
  assert.equal(packed.exports["./kdf-worker"], "./kdf-worker.js", "the installed package is the finished one");
  relay = new Relay(await freePort());
  await relay.start();
  browser = await playwright().chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
});

after(async () => {
  await browser?.close();
  await relay?.dispose();
});

async function openPage(url, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`[${name}] page error: ${e.message}`));
  page.on("console", (m) => {
    const where = m.location()?.url ?? "";
    if (m.type() === "error" && !where.endsWith("/favicon.ico")) errors.push(`[${name}] console: ${m.text()} (${where})`);
  });
  await page.goto(url);
  await page.waitForFunction(() => document.body?.dataset.ready === "1", null, { timeout: 30_000 });
  const app = await page.evaluate(() => ({
    error: window.app.error,
    progress: window.app.progress,
    warnings: window.app.warnings,
  }));
  assert.equal(app.error, null, `[${name}] init and join: ${JSON.stringify(app.error)}`);
  return { context, page, errors, app, name };
}

/** Two pages of the app at `base` join one room; the key comes from the worker; a change crosses. */
async function twoPagesSync(base, bundler) {
  const room = `bundlers-${bundler}-${Date.now().toString(36)}`;
  const url = `${base}?relay=${encodeURIComponent(relay.url)}&room=${encodeURIComponent(room)}&password=${encodeURIComponent(PASSWORD)}`;
  const a = await openPage(url, `${bundler} a`);
  const b = await openPage(url, `${bundler} b`);
  try {
    for (const p of [a, b]) {
      const ready = p.app.progress.find((x) => x.state === "key-ready");
      assert.ok(ready, `[${p.name}] a key-ready progress event: ${JSON.stringify(p.app.progress)}`);
      assert.equal(ready.inWorker, true, `[${p.name}] the key was derived in the worker`);
    }
    for (const p of [a, b]) {
      await p.page.waitForFunction(() => document.body.dataset.status === "live", null, { timeout: 30_000 }).catch(async (e) => {
        const seen = await p.page.evaluate(() => ({ status: document.body.dataset.status, warnings: window.app.warnings }));
        throw new Error(`[${p.name}] never live: ${JSON.stringify(seen)}; ${p.errors.join("; ")}: ${e.message}`);
      });
    }
    const title = `from ${bundler} ${Math.random().toString(36).slice(2)}`;
    const id = await a.page.evaluate((t) => window.app.room.create("tasks", { title: t }), title);
    await b.page.waitForFunction(
      ([i, t]) => window.app.room.get("tasks").some((e) => e.id === i && e.title === t),
      [id, title],
      { timeout: 10_000 },
    );
    for (const p of [a, b]) {
      if (WITH_FACTORY.has(bundler)) {
        assert.equal(await p.page.evaluate(() => window.kdfWorkerCalls), 1, `[${p.name}] the app's kdfWorker started the worker`);
      }
      const warnings = await p.page.evaluate(() => window.app.warnings);
      assert.deepEqual(warnings.filter((w) => w.code === "KDF_WORKER_FAILED"), [], `[${p.name}] no worker fallback`);
    }
    assert.deepEqual([...a.errors, ...b.errors], [], "no console errors");
    console.log(`${bundler}: both pages derived in the worker; "${title}" crossed`);
  } finally {
    await a.page.evaluate(() => window.app.room?.leave()).catch(() => {});
    await b.page.evaluate(() => window.app.room?.leave()).catch(() => {});
    await a.context.close();
    await b.context.close();
  }
}

for (const [bundler, build] of Object.entries(BUILDS)) {
  test(`${bundler}: builds without warnings; two pages sync through the worker-derived key`, async () => {
    const outDir = join(OUT, bundler);
    const warnings = (await build(outDir)).filter((w) => !SIZE_HINT.test(w));
    assert.deepEqual(warnings, [], `${bundler} warned`);
    assert.ok(existsSync(join(outDir, "index.html")), `${bundler} wrote index.html`);
    const site = await serveStatic(await freePort(), outDir);
    try {
      await twoPagesSync(`${site.url}/`, bundler);
    } finally {
      await site.close();
    }
  });
}

test("vite dev server: two pages sync through the worker-derived key", async () => {
  const { createServer } = await import("vite");
  const port = await freePort();
  const server = await createServer({
    root: APP,
    configFile: false,
    logLevel: "warn",
    cacheDir: join(OUT, "vite-dev-cache"),
    // The packed SDK changes between runs while package-lock.json does not.
    optimizeDeps: { force: true },
    server: { host: "127.0.0.1", port, strictPort: true },
  });
  await server.listen();
  try {
    await twoPagesSync(`http://127.0.0.1:${port}/`, "vite-dev");
  } finally {
    await server.close();
  }
});

test("react: sealsync/react in StrictMode: one room kept, stable snapshots, status, presence, members, leave on unmount", async () => {
  const { reactApp } = await import("./build.mjs");
  const outDir = join(OUT, "react");
  const warnings = await reactApp(outDir);
  assert.deepEqual(warnings, [], "esbuild warned");
  const site = await serveStatic(await freePort(), outDir);
  const room = `bundlers-react-${Date.now().toString(36)}`;
  const url = `${site.url}/?relay=${encodeURIComponent(relay.url)}&room=${encodeURIComponent(room)}&password=${encodeURIComponent(PASSWORD)}`;
  const context = await browser.newContext();
  const errors = [];
  const open = async () => {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error" && !(m.location()?.url ?? "").endsWith("/favicon.ico")) errors.push(m.text()); });
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "live", null, { timeout: 30_000 }).catch(async (e) => {
      throw new Error(`never live: ${JSON.stringify(await page.evaluate(() => window.probe?.app && { ...window.probe.app, room: undefined }))}; ${errors.join("; ")}: ${e.message}`);
    });
    return page;
  };
  try {
    const a = await open();
    // StrictMode: mount, unmount, mount: two joins, the first left, the second kept.
    // (The two joins run side by side: either may resolve first.)
    const joins = await a.evaluate(() => window.probe.joined.map((r) => r.status.state));
    assert.deepEqual([...joins].sort(), ["closed", "live"], "StrictMode: one room left, one kept");
    // A re-render with new inline options and functions joins nothing new.
    await a.evaluate(() => window.probe.rerender());
    await a.waitForTimeout(200);
    assert.equal(await a.evaluate(() => window.probe.joined.length), 2, "a re-render did not join again");

    // Entities render; a change to one re-renders only that memoised item.
    const [idA, idB] = await a.evaluate(() => {
      const r = window.probe.app.room;
      return [r.create("tasks", { title: "A" }), r.create("tasks", { title: "B" })];
    });
    await a.waitForFunction(() => document.querySelectorAll("li").length === 2);
    const before = await a.evaluate(() => ({ ...window.probe.renders }));
    await a.evaluate((id) => window.probe.app.room.update("tasks", id, { title: "A2" }), idA);
    await a.waitForFunction((id) => document.querySelector(`li[data-id="${id}"]`)?.textContent === "A2", idA);
    const afterUpdate = await a.evaluate(() => ({ ...window.probe.renders }));
    assert.ok(afterUpdate[idA] > before[idA], `A re-rendered: ${JSON.stringify([before, afterUpdate])}`);
    assert.equal(afterUpdate[idB], before[idB], "B (unchanged, same object) did not re-render");

    // A second member: presence and its change arrive.
    const b = await open();
    await a.waitForFunction(() => document.getElementById("presence").textContent === "2", null, { timeout: 10_000 });
    // Who is online (useMembers): both list both, and the list is one frozen array per value.
    for (const page of [a, b]) {
      await page.waitForFunction(() => document.getElementById("members").textContent === "2", null, { timeout: 10_000 });
    }
    assert.equal(await a.evaluate(() => Object.isFrozen(window.probe.app.members)), true);
    await b.evaluate(() => window.probe.app.room.create("tasks", { title: "from b" }));
    await a.waitForFunction(() => [...document.querySelectorAll("li")].some((li) => li.textContent === "from b"), null, { timeout: 10_000 });

    // Unmounting leaves the room.
    await a.evaluate(() => window.probe.unmount());
    await a.waitForFunction(() => window.probe.joined.every((r) => r.status.state === "closed"), null, { timeout: 5_000 });
    await b.waitForFunction(() => document.getElementById("presence").textContent === "1", null, { timeout: 10_000 });
    await b.waitForFunction(() => document.getElementById("members").textContent === "1", null, { timeout: 10_000 });
    assert.deepEqual(await a.evaluate(() => window.probe.warnings.filter((w) => w.code === "KDF_WORKER_FAILED")), []);
    assert.deepEqual(errors, [], "no console errors");
  } finally {
    await context.close();
    await site.close();
  }
});
