// Prints the one-run table of tests/bench/browser.sh: every browser figure beside its target
// (the targets of issue 13 and of the project's brief), as Markdown for BENCHMARKS.md.
//
//   node tests/bench/summary.mjs OUT   (OUT holds machine.txt, size.txt, sdk.json, join.json)
import { readFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2];
if (!out) throw new Error("usage: node tests/bench/summary.mjs OUT");
const read = (name) => readFileSync(join(out, name), "utf8");
const machine = Object.fromEntries(
  read("machine.txt").trim().split("\n").map((line) => [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)]),
);
const size = Number(read("size.txt").trim());
const sdk = JSON.parse(read("sdk.json"));
const joined = JSON.parse(read("join.json"));

// The targets. A ratio is measured ÷ target: at most 1.00 meets it.
const TARGET = {
  packageBytes: 120_000, // SDK wasm + JS, gzip -9
  sealOpenRatio: 1.0, // SDK time ÷ WebCrypto time, per event
  argon2Ms: 60, // Argon2id (19 MiB, t = 2) off the main thread
  joinMs: 150, // joining a 10,000-event room, cold and warm
};

const rows = [];
const row = (what, measured, target, ratio) => rows.push({ what, measured, target, ratio });
const num = (x, digits = 1) => x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const bytes = (n) => `${n.toLocaleString("en-US")} B`;
const us = (x) => (x >= 1000 ? `${num(x / 1000, 2)} ms` : `${num(x, 1)} µs`);

row("package (every `.wasm` and `.js` in `pkg/`, gzip -9)", bytes(size), `≤ ${bytes(TARGET.packageBytes)}`, size / TARGET.packageBytes);
for (const { size: body, wasmUs, webcryptoUs, ratio } of sdk.sealOpen) {
  const label = body >= 1_000_000 ? "1,000,000 B" : body >= 1024 ? `${body / 1024} KiB` : `${body} B`;
  row(`seal+open ${label}: SDK / WebCrypto per event`, `${us(wasmUs)} / ${us(webcryptoUs)} = ${num(ratio, 2)}×`, `≤ ${num(TARGET.sealOpenRatio, 2)}×`, ratio / TARGET.sealOpenRatio);
}
const a = sdk.argon2;
row(
  `Argon2id through \`Room.join\`'s worker (start-up included${a.inWorker ? "" : "; it fell back to the main thread"}), median of 5`,
  `${num(a.workerJoinMs)} ms`, `< ${TARGET.argon2Ms} ms`, a.workerJoinMs / TARGET.argon2Ms,
);
row("Argon2id on the main thread (for comparison; the page is frozen meanwhile), median of 5", `${num(a.mainThreadMs)} ms`, "–", null);
const stat = (s) => `${num(s.median)} / ${num(s.max)} ms`;
const JOINS = [
  ["cold/status", "completeLiveMs", "join, cold: `live` with all 1,000 tasks at rev 9 (reader \"status\")"],
  ["cold/change", "completeLiveMs", "join, cold: the same, reading the collection on every change (reader \"change\")"],
  ["warm/status", "liveMs", "join, warm (local copy): `live` (reader \"status\")"],
  ["warm/change", "liveMs", "join, warm: `live` (reader \"change\")"],
  ["warm/status", "resolvedMs", "join, warm: `join` resolves with all 1,000 tasks (reader \"status\")"],
];
for (const [key, field, what] of JOINS) {
  const s = joined[key][field];
  row(`${what}, median / max of ${joined.rounds}`, stat(s), `< ${TARGET.joinMs} ms`, s.median / TARGET.joinMs);
}
row("join of an empty room, cold: `live` (the floor)", stat(joined.emptyCold.liveMs), "–", null);

const lines = [
  `${machine.start}, commit ${machine.commit}; ${machine.cpu}; Chromium ${sdk.chromium}; load average ${machine["load-start"]} at the start, ${machine["load-end"]} at the end.`,
  `The room: head ${joined.relay.headSeq}, relay snapshot at ${joined.relay.snapshotSeq}, ${joined.relay.eventsInCatchUp} events in a cold join's catch-up.`,
  "",
  "| figure | measured | target | ÷ target | met |",
  "| --- | ---: | ---: | ---: | :---: |",
  ...rows.map(({ what, measured, target, ratio }) =>
    `| ${what} | ${measured} | ${target} | ${ratio === null ? "–" : `${num(ratio, 2)}×`} | ${ratio === null ? "–" : ratio <= 1 ? "yes" : "**no**"} |`),
];
console.log(lines.join("\n"));
