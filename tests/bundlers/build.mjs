// Builds app/ with each bundler, through its JavaScript API, the way its documentation
// says to build an app, with the SDK as installed from `npm pack` into node_modules/sealsync.
// Each build returns the warnings the bundler reported; the test expects none.
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = fileURLToPath(new URL(".", import.meta.url));
export const APP = join(HERE, "app");
const require = createRequire(import.meta.url);

/** An index.html loading `src` (a module script unless `classic`). */
function page(outDir, src, classic = false) {
  writeFileSync(
    join(outDir, "index.html"),
    `<!doctype html>\n<meta charset="utf-8">\n<title>sealsync in a bundle</title>\n<body>\n<script ${classic ? "defer" : 'type="module"'} src="./${src}"></script>\n</body>\n`,
  );
}

function fresh(outDir) {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
}

/** Vite: `vite build` of app/index.html, no configuration. */
export async function vite(outDir) {
  const { build, createLogger } = await import("vite");
  const warnings = [];
  const logger = createLogger("warn");
  const warn = logger.warn;
  logger.warn = (msg, opts) => { warnings.push(msg); warn(msg, opts); };
  logger.error = (msg) => warnings.push(msg);
  await build({ root: APP, configFile: false, logLevel: "warn", customLogger: logger, build: { outDir, emptyOutDir: true } });
  return warnings;
}

/** webpack 5 with its defaults (production mode, one entry). */
export async function webpack(outDir, entry = "./entry.js") {
  const { default: wp } = await import("webpack");
  fresh(outDir);
  const stats = await new Promise((ok, fail) =>
    wp({ mode: "production", context: APP, entry, output: { path: outDir, filename: "app.js" } }, (err, s) => (err ? fail(err) : ok(s))),
  );
  const info = stats.toJson({ all: false, errors: true, warnings: true });
  if (stats.hasErrors()) throw new Error(info.errors.map((e) => e.message).join("\n"));
  page(outDir, "app.js", true);
  return info.warnings.map((w) => w.message);
}

/**
 * esbuild: the worker as a second entry point named kdf-worker (next to the app, where the
 * package's entry looks for it), and the wasm through the file loader (app/entry-esbuild.js).
 */
export async function esbuild(outDir) {
  const { build } = await import("esbuild");
  fresh(outDir);
  const result = await build({
    absWorkingDir: HERE,
    entryPoints: { app: "./app/entry-esbuild.js", "kdf-worker": "sealsync/kdf-worker" },
    bundle: true,
    format: "esm",
    outdir: outDir,
    loader: { ".wasm": "file" },
    logLevel: "silent",
  });
  page(outDir, "app.js");
  return result.warnings.map((w) => w.text);
}

/**
 * Rollup with @rollup/plugin-node-resolve: the worker as a second input named kdf-worker,
 * and sealsync_bg.wasm copied next to the output (Rollup emits no asset for `new URL`).
 */
export async function rollup(outDir) {
  const { rollup: bundle } = await import("rollup");
  const { nodeResolve } = await import("@rollup/plugin-node-resolve");
  fresh(outDir);
  const warnings = [];
  const b = await bundle({
    input: { app: join(APP, "entry.js"), "kdf-worker": "sealsync/kdf-worker" },
    plugins: [nodeResolve({ browser: true, rootDir: HERE })],
    onwarn: (w) => warnings.push(w.message),
  });
  await b.write({ dir: outDir, format: "es", entryFileNames: "[name].js" });
  await b.close();
  copyFileSync(require.resolve("sealsync/sealsync_bg.wasm"), join(outDir, "sealsync_bg.wasm"));
  page(outDir, "app.js");
  return warnings;
}

/**
 * Next.js (`next build`, Turbopack) of next/: a client page starting the app from an effect,
 * exported as static files (next.config.mjs). Returns the build's warning lines.
 */
export async function next(outDir) {
  const dir = join(HERE, "next");
  rmSync(join(dir, ".next"), { recursive: true, force: true });
  rmSync(join(dir, "out"), { recursive: true, force: true });
  const r = spawnSync(process.execPath, [require.resolve("next/dist/bin/next"), "build", dir], {
    cwd: HERE,
    encoding: "utf8",
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1" },
    timeout: 300_000,
  });
  const log = `${r.stdout}\n${r.stderr}`;
  if (r.status !== 0) throw new Error(`next build exited with ${r.status ?? r.signal}:\n${log}`);
  fresh(outDir);
  cpSync(join(dir, "out"), outDir, { recursive: true });
  // Next's notice that a first build has no cache to reuse (always so on a new machine) is
  // not a warning about the build.
  return log.split("\n").filter((l) => /^\s*⚠|warn/i.test(l) && !/No build cache found/.test(l));
}

/** webpack 5 again, with the app passing `kdfWorker` (app/entry-kdf-worker-option.js). */
export function webpackKdfWorkerOption(outDir) {
  return webpack(outDir, "./entry-kdf-worker-option.js");
}

/**
 * The React case: app/react-app.js (sealsync/react) with esbuild, React in development mode
 * (StrictMode double-mounts only there); the worker and the wasm as in `esbuild`.
 */
export async function reactApp(outDir) {
  const { build } = await import("esbuild");
  fresh(outDir);
  const result = await build({
    absWorkingDir: HERE,
    entryPoints: { app: "./app/react-app.js", "kdf-worker": "sealsync/kdf-worker" },
    bundle: true,
    format: "esm",
    outdir: outDir,
    loader: { ".wasm": "file" },
    define: { "process.env.NODE_ENV": '"development"' },
    logLevel: "silent",
  });
  writeFileSync(
    join(outDir, "index.html"),
    '<!doctype html>\n<meta charset="utf-8">\n<title>sealsync/react</title>\n<body>\n<div id="root"></div>\n<script type="module" src="./app.js"></script>\n</body>\n',
  );
  return result.warnings.map((w) => w.text);
}

export const BUILDS = { vite, webpack, esbuild, rollup, next, "webpack-kdfWorker": webpackKdfWorkerOption };
/** The builds whose app passes its own `kdfWorker` factory. */
export const WITH_FACTORY = new Set(["webpack-kdfWorker"]);
