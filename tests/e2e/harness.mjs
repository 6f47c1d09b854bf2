// End-to-end harness: a static server for www/ + pkg/, a real relay under `wrangler dev`
// (started, stopped and restarted on the same port with the same persisted state), and
// headless Chromium through playwright-core. Everything binds to 127.0.0.1 on free ports.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createReadStream, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer as createNetServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

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

  async start() {
    const bin = process.env.WRANGLER_BIN || join(TOOLS, "node_modules", ".bin", "wrangler");
    // Its own inspector port: two relays may run at once (the default 9229 is shared).
    const inspector = await freePort();
    this.proc = spawn(bin, [
      "dev", "--config", this.config, "--ip", "127.0.0.1", "--port", String(this.port),
      "--inspector-port", String(inspector),
      "--persist-to", this.state, "--show-interactive-dev-session=false", "--log-level", "warn",
      ...this.vars,
    ], { cwd: this.dir, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" } });
    const keep = (d) => { this.log = (this.log + d).slice(-20000); };
    this.proc.stdout.on("data", keep);
    this.proc.stderr.on("data", keep);
    const exited = new Promise((ok) => this.proc.once("exit", (code) => ok(code)));
    const deadline = Date.now() + 90_000;
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
  }

  async stop() {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    const exited = new Promise((ok) => proc.once("exit", ok));
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
