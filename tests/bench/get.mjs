// Reading a collection after each change (BENCHMARKS.md, "Reading after each change"):
// tests/bench/get.html in headless Chromium with the package in argv[2] (default pkg/) at
// /pkg/; prints µs per `room.update` + `room.get` at 1,000 and 10,000 entities as JSON.
//
//   node tests/bench/get.mjs [PKG_DIR]
import { join } from "node:path";
import { CHROMIUM, CHROMIUM_ARGS, ROOT, freePort, playwright, serveStatic } from "../e2e/harness.mjs";

const pkg = process.argv[2] || join(ROOT, "pkg");
const site = await serveStatic(await freePort(), join(ROOT, "tests", "bench"), pkg);
const browser = await playwright().chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(`${site.url}/get.html`);
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 120_000 });
  console.log(JSON.stringify({ ...(await page.evaluate(() => window.result)), pkg, chromium: browser.version() }));
} finally {
  await browser.close();
  await site.close();
}
