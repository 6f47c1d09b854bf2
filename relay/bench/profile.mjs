// A CPU profile of the relay while the benchmark runs: run.sh starts this with
// BENCH_PROFILE=1 against the relay's `wrangler dev` inspector (Chrome DevTools protocol),
// and stops it (SIGTERM) when fanout.mjs is done; `<out>.recording` says it has started. It then prints the functions with the
// most self time and the most inclusive time, as shares of the time the relay's isolate was
// busy (idle samples left out), and writes the whole profile (Chromium DevTools opens it).
//
//   node profile.mjs <inspector port> <out.cpuprofile>
import { writeFileSync } from "node:fs";
import WebSocket from "ws";

const [port, out] = process.argv.slice(2);
if (!port || !out) {
  console.error("usage: node profile.mjs <inspector port> <out.cpuprofile>");
  process.exit(2);
}
const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const target = list.find((t) => t.webSocketDebuggerUrl);
if (!target) throw new Error(`no debugger target on port ${port}`);
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
  ws.once("open", resolve);
  ws.once("error", reject);
});
let lastId = 0;
const pending = new Map();
ws.on("message", (data) => {
  const msg = JSON.parse(data.toString());
  pending.get(msg.id)?.(msg);
  pending.delete(msg.id);
});
async function call(method, params = {}) {
  const id = ++lastId;
  const answer = new Promise((resolve) => pending.set(id, resolve));
  ws.send(JSON.stringify({ id, method, params }));
  const msg = await answer;
  if (msg.error) throw new Error(`${method}: ${JSON.stringify(msg.error)}`);
  return msg.result;
}
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 200 }); // µs
await call("Profiler.start");
writeFileSync(`${out}.recording`, "");
await new Promise((resolve) => process.once("SIGTERM", resolve));
const { profile } = await call("Profiler.stop");
ws.close();
writeFileSync(out, JSON.stringify(profile));

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => {
  const f = n.callFrame;
  const where = f.url ? ` ${f.url.split("/").pop()}:${f.lineNumber + 1}` : "";
  return `${f.functionName || "(anonymous)"}${where}`;
};
const self = new Map();
const inclusive = new Map();
let busy = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  if (nodes.get(id).callFrame.functionName === "(idle)") return;
  busy += dt;
  self.set(name(nodes.get(id)), (self.get(name(nodes.get(id))) ?? 0) + dt);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const key = name(nodes.get(cur));
    if (key === "(root)" || seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
  }
});
const table = (title, map) => {
  console.log(`\n${title} (share of ${(busy / 1e6).toFixed(1)} s busy):\n`);
  for (const [key, t] of [...map].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`${((100 * t) / busy).toFixed(1).padStart(5)}%  ${key.slice(0, 140)}`);
  }
};
table("Relay isolate, self time", self);
table("Relay isolate, inclusive time", inclusive);
console.log(`\nprofile: ${out}`);
