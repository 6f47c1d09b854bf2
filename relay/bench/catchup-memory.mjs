// The catch-up memory attack (issue 11), measured: a member builds a large history, then
// ATTACKERS members join and send SYNCS SYNC(0) frames each without ever reading their
// sockets, while an honest member keeps publishing to another. Prints the relay process
// group's resident memory (Linux /proc) before, at its peak during the attack, and the
// honest members' publish → receive latency meanwhile.
//
//   node catchup-memory.mjs <relay url> <process group id of the relay>
//
// Knobs (environment): MEM_EVENTS (60) events of MEM_EVENT_BYTES (1,000,000) ciphertext
// bytes; MEM_ATTACKERS (20); MEM_SYNCS (20) per attacker; MEM_SECONDS (10) of attack.
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { createRequire } from "node:module";
import { T, helloFrame, memberKeyPair, publishFrame, relayError, relayRefused, syncFrame } from "./wire.mjs";

// ws from tools/ (installed by ./run setup): it can stop reading a socket.
const WebSocket = createRequire(new URL("../../tools/package.json", import.meta.url))("ws");

const [relayUrl, pgidArg] = process.argv.slice(2);
if (!relayUrl || !pgidArg) {
  console.error("usage: node catchup-memory.mjs <relay url> <relay process group id>");
  process.exit(2);
}
const int = (name, fallback) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) fail(`${name} must be a positive integer`);
  return v;
};
const EVENTS = int("MEM_EVENTS", 60);
const EVENT_BYTES = int("MEM_EVENT_BYTES", 1_000_000);
const ATTACKERS = int("MEM_ATTACKERS", 20);
const SYNCS = int("MEM_SYNCS", 20);
const SECONDS = int("MEM_SECONDS", 10);
const PGID = Number(pgidArg);

function fail(message) {
  console.error(`catchup-memory: FAILED: ${message}`);
  process.exit(1);
}

/** Resident memory (bytes) of every process in the relay's process group. */
function groupRss() {
  let total = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== PGID) continue; // field 5: pgrp
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (rss) total += Number(rss[1]) * 1024;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

const MiB = (b) => `${(b / 1048576).toFixed(0)} MiB`;
const room = `memory-${randomBytes(6).toString("hex")}`;
const member = memberKeyPair(randomBytes(32));
const channel = randomBytes(16);

/** A joined socket: resolves once CAUGHT_UP arrives; `onFrame` sees every later frame. */
function join(onFrame = () => {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${relayUrl.replace(/^http/, "ws")}/room/${room}/ws`, ["sealsync.v2"]);
    ws.binaryType = "nodebuffer";
    let joined = false;
    ws.on("message", (data) => {
      const type = data[1];
      if (type === T.CHALLENGE) ws.send(helloFrame(member, room, data.subarray(2, 34), channel));
      else if (type === T.ERROR) reject(new Error(relayError(data)));
      else if (type === T.CAUGHT_UP && !joined) {
        joined = true;
        resolve(ws);
      } else if (joined) onFrame(data);
    });
    ws.on("error", reject);
  });
}

// 1. The history, published patiently by one member while another receives it.
let received = 0;
const receiver = await join((data) => data[1] === T.EVENT && received++);
const writer = await join();
const session = randomBytes(16);
let counter = 0;
async function publish(bytes) {
  counter += 1;
  const frame = publishFrame(channel, session, counter, bytes);
  for (;;) {
    const answer = await new Promise((resolve) => {
      const on = (data) => {
        if (data[1] !== T.ACK && data[1] !== T.REFUSED) return; // PRESENCE and the like
        writer.off("message", on);
        resolve(data);
      };
      writer.on("message", on);
      writer.send(frame);
    });
    if (answer[1] === T.ACK) return;
    if (answer[1] !== T.REFUSED) fail(`publish answered ${answer[1]}`);
    const code = answer.readUInt16BE(26);
    if (code !== 6) fail(relayRefused(answer)); // RATE_LIMITED: wait as told
    await sleep(answer.readUInt32BE(28));
  }
}
for (let i = 0; i < EVENTS; i++) await publish(EVENT_BYTES);
while (received < EVENTS) await sleep(50);
await sleep(1000);
const before = groupRss();

// 2. The attack: members that join, ask again and again, and never read.
const attackers = [];
for (let i = 0; i < ATTACKERS; i++) {
  const ws = new WebSocket(`${relayUrl.replace(/^http/, "ws")}/room/${room}/ws`, ["sealsync.v2"]);
  ws.binaryType = "nodebuffer";
  await new Promise((resolve, reject) => {
    ws.once("message", (data) => {
      ws.send(helloFrame(member, room, data.subarray(2, 34), channel));
      for (let s = 0; s < SYNCS; s++) ws.send(syncFrame(0, randomBytes(8).readBigUInt64BE()));
      ws._socket.pause(); // never read again
      resolve();
    });
    ws.on("error", reject);
  });
  attackers.push(ws);
}

// 3. Meanwhile: honest latency and the relay's memory.
let peak = before;
const latencies = [];
const sampler = setInterval(() => {
  peak = Math.max(peak, groupRss());
}, 100);
const deadline = Date.now() + SECONDS * 1000;
while (Date.now() < deadline) {
  const seen = received;
  const sent = performance.now();
  await publish(64);
  while (received === seen) await sleep(1);
  latencies.push(performance.now() - sent);
  await sleep(250);
}
clearInterval(sampler);
peak = Math.max(peak, groupRss());
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
console.log(
  JSON.stringify({
    history_bytes: EVENTS * EVENT_BYTES,
    attackers: ATTACKERS,
    syncs_each: SYNCS,
    rss_before: before,
    rss_peak: peak,
    growth: peak - before,
    honest_publishes: latencies.length,
    honest_p50_ms: Number(pct(50).toFixed(1)),
    honest_max_ms: Number(latencies.at(-1).toFixed(1)),
  }),
);
console.error(
  `catchup-memory: ${MiB(EVENTS * EVENT_BYTES)} of history, ${ATTACKERS} attackers × ${SYNCS} SYNCs: ` +
    `relay RSS ${MiB(before)} → peak ${MiB(peak)} (+${MiB(peak - before)}); honest p50 ` +
    `${pct(50).toFixed(1)} ms, max ${latencies.at(-1).toFixed(1)} ms over ${latencies.length} publishes`,
);
for (const ws of [...attackers, receiver, writer]) ws.terminate();
process.exit(0);
