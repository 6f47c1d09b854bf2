// Loads tests/bench/index.html in headless Chromium with the bench build of the SDK at
// /pkg/ and prints the page's results as JSON (argv[2]: the bench package directory).
import { join } from "node:path";
import { CHROMIUM, CHROMIUM_ARGS, ROOT, freePort, playwright, serveStatic } from "../e2e/harness.mjs";

const pkg = process.argv[2];
const site = await serveStatic(await freePort(), join(ROOT, "tests", "bench"), pkg);
const browser = await playwright().chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(site.url + "/");
  await page.waitForFunction(() => window.benchResult !== undefined, null, { timeout: 60_000 });
  const result = await page.evaluate(() => window.benchResult);
  result.chromium = browser.version();
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  await site.close();
}
