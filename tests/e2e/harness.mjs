// End-to-end harness: a static server for www/ + pkg/, a real relay under `wrangler dev`
// (started, stopped and restarted on the same port with the same persisted state), and
// headless Chromium through playwright-core. Everything binds to 127.0.0.1 on free ports.
// `useScene` sets up what a test file shares (relays, the static site, Chromium) in
// node:test `before`/`after` hooks.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer as createNetServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";

export const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const ARTIFACTS = join(ROOT, "artifacts");

const TOOLS = process.env.SEALSYNC_TOOLS || join(ROOT, "tools");
const requireTool = createRequire(join(TOOLS, "package.json"));

/** playwright-core from tools/node_modules (installed by ./run setup). */
export function playwright() {
  return requireTool("playwright-core");
}

export const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** A room secret (32 bytes, base64url) the test files share. */
export const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/** Headless Chromium through playwright-core. */
export function launchChromium() {
  return playwright().chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** A room name no other run uses: `prefix`, the time in base 36, six random characters. */
export function roomName(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createNetServer();
    srv.unref();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

function portOpen(port) {
  return new Promise((ok) => {
    const s = connect({ port, host: "127.0.0.1" });
    s.once("connect", () => { s.destroy(); ok(true); });
    s.once("error", () => ok(false));
  });
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".css": "text/css",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ts": "text/plain",
  ".png": "image/png",
};

/** Serves `www/` at `/` and `pkg/` at `/pkg/` (as `./run demo` does). */
export async function serveStatic(port, www = join(ROOT, "www"), pkg = join(ROOT, "pkg")) {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    const [base, rest] = path === "/pkg" || path.startsWith("/pkg/") ? [pkg, path.slice(4)] : [www, path];
    let file = join(base, rest);
    if (!file.startsWith(base)) { res.writeHead(403).end(); return; }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
    if (!existsSync(file)) { res.writeHead(404).end("not found"); return; }
    res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-store" });
    createReadStream(file).pipe(res);
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

/**
 * The relay under `wrangler dev`, from the already built relay/build (no rebuild on each
 * start: a copy of relay/wrangler.toml without its [build] step points at it).
 */
export class Relay {
  /** `vars`: extra `wrangler dev` arguments, e.g. `["--var", "AUTH_MODE:jwt"]`. */
  constructor(port, vars = []) {
    this.vars = vars;
    this.port = port;
    this.url = `ws://127.0.0.1:${port}`;
    this.dir = mkdtempSync(join(tmpdir(), "sealsync-e2e-relay-"));
    this.state = join(this.dir, "state");
    this.proc = null;
    this.log = "";
    const relay = join(ROOT, "relay");
    const shim = join(relay, "build", "worker", "shim.mjs");
    if (!existsSync(shim)) throw new Error(`relay is not built (${shim} is missing): run worker-build --release in relay/`);
    const config = readFileSync(join(relay, "wrangler.toml"), "utf8")
      .replace(/^\[build\][\s\S]*?(?=^\[)/m, "")
      .replace(/^main\s*=.*$/m, `main = ${JSON.stringify(shim)}`);
    this.config = join(this.dir, "wrangler.toml");
    writeFileSync(this.config, config);
  }

  /**
   * Starts `wrangler dev` on this relay's port and waits until it answers HTTP. A restart
   * on the same port can find it still held a moment by the workerd just stopped: workerd
   * then fails with "Address already in use", and the start is tried again, for up to 30 s.
   */
  async start() {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await this.#startOnce();
      } catch (e) {
        if (!/Address already in use/.test(String(e.message)) || Date.now() > deadline) throw e;
        await new Promise((ok) => setTimeout(ok, 500));
      }
    }
  }

  async #startOnce() {
    const bin = process.env.WRANGLER_BIN || join(TOOLS, "node_modules", ".bin", "wrangler");
    // Its own inspector port: two relays may run at once (the default 9229 is shared).
    const inspector = await freePort();
    this.log = "";
    const proc = spawn(bin, [
      "dev", "--config", this.config, "--ip", "127.0.0.1", "--port", String(this.port),
      "--inspector-port", String(inspector),
      "--persist-to", this.state, "--show-interactive-dev-session=false", "--log-level", "warn",
      ...this.vars,
    ], { cwd: this.dir, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" } });
    this.proc = proc;
    const keep = (d) => { this.log = (this.log + d).slice(-20000); };
    proc.stdout.on("data", keep);
    proc.stderr.on("data", keep);
    const exited = new Promise((ok) => proc.once("exit", (code) => ok(code)));
    const deadline = Date.now() + 90_000;
    try {
      while (Date.now() < deadline) {
        if (await portOpen(this.port)) {
          // The port opens before workerd has loaded the worker: wait for an HTTP answer.
          try {
            const r = await fetch(`http://127.0.0.1:${this.port}/`);
            await r.arrayBuffer();
            return;
          } catch { /* not yet */ }
        }
        const done = await Promise.race([exited, new Promise((ok) => setTimeout(() => ok(undefined), 250))]);
        if (done !== undefined) throw new Error(`wrangler dev exited with ${done}:\n${this.log}`);
      }
      throw new Error(`wrangler dev did not answer on port ${this.port} within 90 s:\n${this.log}`);
    } catch (e) {
      // Nothing of a failed start is left running (and stop() has nothing to wait for).
      await this.stop();
      throw e;
    }
  }

  async stop() {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    // An exit that already happened emits nothing more: waiting for it would hang.
    const gone = proc.exitCode !== null || proc.signalCode !== null;
    const exited = gone ? Promise.resolve() : new Promise((ok) => proc.once("exit", ok));
    // Its process group too: workerd may outlive a wrangler that exited on its own.
    try { process.kill(-proc.pid, "SIGTERM"); } catch { /* already gone */ }
    const t = setTimeout(() => { try { process.kill(-proc.pid, "SIGKILL"); } catch { /* gone */ } }, 5000);
    await exited;
    clearTimeout(t);
    // workerd may linger a moment after wrangler: wait until the port is free.
    for (let i = 0; i < 40 && (await portOpen(this.port)); i++) await new Promise((ok) => setTimeout(ok, 250));
  }

  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Registers node:test `before` and `after` hooks that set up a test file's scene, and
 * returns the scene: its fields are set once `before` has run (read them in tests, and in
 * `setup`: node 20 runs a file's top-level `before` hooks at once, not one after another).
 *
 * - `relays`: one Relay per entry, `{ name: extra wrangler dev arguments }`, e.g.
 *   `{ relay: [], jwtRelay: ["--var", "AUTH_MODE:jwt"] }`; each on a free port as
 *   `scene[name]`, all started at once.
 * - `page`: the HTML of a test page. The site then serves, instead of the demo in www/, a
 *   `www/` in `scene.dir` (a temporary directory, removed after) whose index.html is that
 *   page; with `copyPkg`, it serves a copy of pkg/ in `scene.dir/pkg` instead of pkg/.
 * - `deadRelay`: `scene.deadRelay` is a ws:// URL on a port nothing listens on (freePort()
 *   closes it again; Chromium refuses port 9 outright).
 * - `setup(scene)`: the file's own preparation, run last in `before`, once all else is up.
 *
 * Always: artifacts/ exists, `scene.site` serves www/ (or the test page) and pkg/ on a free
 * port, `scene.browser` is headless Chromium, and `scene.serve(www, pkg)` starts one more
 * static site. `after` closes Chromium and every site, disposes of the relays (their
 * processes and state) and removes `scene.dir`.
 */
export function useScene({ relays = {}, page, copyPkg = false, deadRelay = false, setup } = {}) {
  const sites = [];
  const scene = {
    site: null,
    browser: null,
    dir: null,
    deadRelay: null,
    async serve(www, pkg) {
      const site = await serveStatic(await freePort(), www, pkg);
      sites.push(site);
      return site;
    },
  };
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    if (deadRelay) scene.deadRelay = `ws://127.0.0.1:${await freePort()}`;
    for (const [name, vars] of Object.entries(relays)) scene[name] = new Relay(await freePort(), vars);
    await Promise.all(Object.keys(relays).map((name) => scene[name].start()));
    // undefined: serveStatic's defaults, www/ and pkg/.
    let www;
    let pkg;
    if (page !== undefined) {
      scene.dir = mkdtempSync(join(tmpdir(), "sealsync-e2e-"));
      www = join(scene.dir, "www");
      mkdirSync(www);
      writeFileSync(join(www, "index.html"), page);
      if (copyPkg) {
        pkg = join(scene.dir, "pkg");
        cpSync(join(ROOT, "pkg"), pkg, { recursive: true });
      }
    }
    scene.site = await scene.serve(www, pkg);
    scene.browser = await launchChromium();
    await setup?.(scene);
  });
  after(async () => {
    await scene.browser?.close();
    for (const site of sites) await site.close();
    for (const name of Object.keys(relays)) await scene[name]?.dispose();
    if (scene.dir) rmSync(scene.dir, { recursive: true, force: true });
  });
  return scene;
}

/**
 * A page in a new context of `browser`, at `url`, once the page's script has set
 * `window.ready`. `globals` are set on `window` before any script of the page runs.
 * `errors` collects the page's uncaught errors and, when `consoleError` is given, every
 * console error it returns true for. `close()` closes the context.
 */
export async function readyPage(browser, url, { globals, consoleError } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  if (consoleError) {
    page.on("console", (m) => {
      if (m.type() === "error" && consoleError(m)) errors.push(`${m.text()} (${m.location()?.url ?? ""})`);
    });
  }
  if (globals) await page.addInitScript((g) => { Object.assign(window, g); }, globals);
  await page.goto(url);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 20_000 });
  return { page, errors, close: () => context.close() };
}

/**
 * Opens `site`'s /pkg/package.json in `page`, unless it is there already (after a reload):
 * a bare same-origin page, from which a test imports and initialises the SDK itself (the
 * demo page would initialise it on its own).
 */
export async function openBare(page, site) {
  if (!page.url().endsWith("/pkg/package.json")) await page.goto(site.url + "/pkg/package.json");
}

// Waits on the room a test put in `window.room` of `page` (polled every 50 ms).

/** Waits until the room is live. */
export function waitLive(page, timeout = 30_000) {
  return page.waitForFunction(() => window.room?.status.state === "live", null, { timeout, polling: 50 });
}

/** Waits until the relay acknowledged every change of the room. */
export function waitSynced(page, timeout = 30_000) {
  return page.waitForFunction(() => window.room.pendingChanges === 0, null, { timeout, polling: 50 });
}

/** Waits until the room holds `n` items of `collection`. */
export function waitCount(page, n, collection = "tasks", timeout = 30_000) {
  return page.waitForFunction(({ n, collection }) => window.room.get(collection).length === n, { n, collection }, { timeout, polling: 50 });
}
