// Fan-out latency: 1 sender → N receivers in one room, through the sealsync relay and
// through a minimal JS Durable Object that only rebroadcasts (js-do/), both under
// `wrangler dev` on this machine. Closed loop: the next message goes out when every
// receiver has the previous one. Latency = receipt − send, per receiver, same process.
//
//   node fanout.mjs <relay http url> <echo http url>     (relay/bench/run.sh starts both)
//
// Env: FANOUT_N (default "10,100"), FANOUT_MESSAGES (300), FANOUT_WARMUP (30),
// FANOUT_ROUNDS (2), FANOUT_BYTES (ciphertext bytes per envelope, 256).
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import os from "node:os";

const require = createRequire(import.meta.url);
const WebSocket = require("ws"); // resolved through NODE_PATH (tools/node_modules)

const [relayUrl, echoUrl] = process.argv.slice(2);
if (!relayUrl || !echoUrl) {
  console.error("usage: node fanout.mjs <relay url> <echo url>");
  process.exit(2);
}
const NS = (process.env.FANOUT_N ?? "10,100").split(",").map(Number);
const MESSAGES = Number(process.env.FANOUT_MESSAGES ?? 300);
const WARMUP = Number(process.env.FANOUT_WARMUP ?? 30);
const ROUNDS = Number(process.env.FANOUT_ROUNDS ?? 2);
const CIPHER = Number(process.env.FANOUT_BYTES ?? 256);

const VERIFIER = randomBytes(32);
const CHANNEL = randomBytes(16);
const SESSION = randomBytes(16);

function hello() {
  const b = Buffer.alloc(2 + 8 + 32 + 1 + 16);
  b[0] = 1; b[1] = 0x01;
  VERIFIER.copy(b, 10); b[42] = 1; CHANNEL.copy(b, 43);
  return b;
}

// A PUBLISH frame with a well-formed envelope header (the relay never decrypts).
function publish(counter) {
  const env = Buffer.alloc(90 + CIPHER);
  env[0] = 1; env[1] = 1; // version, kind event; key_epoch 0
  CHANNEL.copy(env, 6); SESSION.copy(env, 22);
  env.writeBigUInt64BE(BigInt(counter), 38);
  randomBytes(12 + 32 + CIPHER).copy(env, 46);
  return Buffer.concat([Buffer.from([1, 0x02]), env]);
}

// Where a receiver finds the counter, per target: EVENT = 18-byte prefix + envelope;
// the echo passes the PUBLISH frame through (2-byte prefix).
const TARGETS = {
  relay: { url: relayUrl, type: 0x83, counterAt: 18 + 38, hello: true },
  echo: { url: echoUrl, type: 0x02, counterAt: 2 + 38, hello: false },
};

function open(url, room) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/room/${room}/ws`);
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

function joined(ws, target) {
  if (!target.hello) return Promise.resolve();
  return new Promise((resolve) => {
    const onMsg = (data) => {
      if (data[1] === 0x85) { ws.off("message", onMsg); resolve(); }
    };
    ws.on("message", onMsg);
    ws.send(hello());
  });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(name, n, round) {
  const target = TARGETS[name];
  const room = `bench-${name}-${n}-${round}-${randomBytes(4).toString("hex")}`;
  const receivers = [];
  for (let i = 0; i < n; i++) {
    const ws = await open(target.url, room);
    await joined(ws, target);
    receivers.push(ws);
  }
  const sender = await open(target.url, room);
  await joined(sender, target);
  const sentAt = new Map();
  const latencies = [];
  let pending = 0;
  let done = null;
  for (const ws of receivers) {
    ws.on("message", (data) => {
      if (data[1] !== target.type) return;
      const counter = Number(data.readBigUInt64BE(target.counterAt));
      const t0 = sentAt.get(counter);
      if (t0 === undefined) return;
      if (counter > WARMUP) latencies.push(performance.now() - t0);
      if (--pending === 0) done();
    });
  }
  for (let counter = 1; counter <= WARMUP + MESSAGES; counter++) {
    const frame = publish(counter);
    pending = n;
    const all = new Promise((resolve, reject) => {
      done = resolve;
      setTimeout(() => reject(new Error(`${name} n=${n}: message ${counter} timed out`)), 10000);
    });
    sentAt.set(counter, performance.now());
    sender.send(frame);
    await all;
  }
  for (const ws of [...receivers, sender]) ws.close();
  return latencies;
}

const machine = `${os.cpus()[0]?.model?.trim() ?? "unknown CPU"}, ${os.cpus().length} cores, ` +
  `${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`;
const rows = [];
for (const n of NS) {
  const all = { relay: [], echo: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first so drift in the machine's load hits both.
    const order = round % 2 === 0 ? ["relay", "echo"] : ["echo", "relay"];
    for (const name of order) all[name].push(...(await run(name, n, round)));
  }
  const stats = {};
  for (const name of ["relay", "echo"]) {
    const s = all[name].sort((a, b) => a - b);
    stats[name] = { p50: percentile(s, 50), p99: percentile(s, 99), samples: s.length };
  }
  rows.push({ n, ...stats });
  console.error(JSON.stringify({ n, ...stats }));
}

const ms = (x) => x.toFixed(2);
console.log(`Machine: ${machine}. ${MESSAGES} messages × ${ROUNDS} rounds per row (after ${WARMUP} ` +
  `warm-up), ${CIPHER}-byte ciphertext, closed loop, all clients in one Node process on the same machine.\n`);
console.log("| receivers | sealsync relay p50 / p99 (ms) | JS echo DO p50 / p99 (ms) | ratio p50 | ratio p99 |");
console.log("| ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  console.log(`| ${r.n} | ${ms(r.relay.p50)} / ${ms(r.relay.p99)} | ${ms(r.echo.p50)} / ${ms(r.echo.p99)} | ` +
    `${(r.relay.p50 / r.echo.p50).toFixed(2)}× | ${(r.relay.p99 / r.echo.p99).toFixed(2)}× |`);
}
process.exit(0);
