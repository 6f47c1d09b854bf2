// Relay fan-out benchmark: one sender → N receivers in one room, on this machine, against
// up to four targets in the same run (relay/bench/run.sh starts all four):
//
//   relay        the sealsync relay (workers-rs Durable Object) under `wrangler dev`:
//                CHALLENGE → HELLO (the challenge signed with the room's member key, as
//                sealsync_core::member does) → CAUGHT_UP to join; PUBLISH of a
//                256-byte-ciphertext envelope in, EVENT out (decoded, deduplicated,
//                appended to SQLite, ACKed, broadcast).
//   echo         js-do/: a bare JS Durable Object under `wrangler dev` that rebroadcasts
//                each frame to the other sockets (no protocol, no storage): the floor.
//   store        js-do/ with STORE=1: the same echo, but each frame is first INSERTed into
//                the object's SQLite database (ctx.storage.sql), as the relay must do
//                before broadcasting: the floor for a relay that stores.
//   y-websocket  @y/websocket-server's own server (Node, in-memory Y.Doc per room, no
//                persistence): clients do the y-protocols sync handshake (step 1/step 2),
//                the sender sets a 256-byte Uint8Array in a Y.Map and sends the Yjs update
//                as messageSync/messageYjsUpdate; the server applies it to the room's
//                Y.Doc and broadcasts the re-encoded update to every socket.
//
// Two measurements, each per target, rounds alternating the order of the targets so a
// drift in the machine's load hits all of them:
//
//   1. Latency (closed loop): the next message goes out when every receiver has the
//      previous one. Latency = receipt − send for each receiver (same process, same
//      clock), p50/p99 over all receivers and messages after the warm-up.
//   2. Sustained throughput (pipelined): the sender keeps FANOUT_WINDOW messages in
//      flight (sent, not yet received by every receiver) and sends the next one as soon
//      as one is fully delivered. Delivered msgs/s = messages received by all receivers
//      during the measured window ÷ its length, after a warm-up; the load generator's own
//      CPU use over the window is printed too, since it shares the machine.
//
// Every receiver must get every message exactly once and in order; anything else (a
// missing, duplicated or reordered message, a relay ERROR frame, a socket closed by the
// server, a message not delivered within FANOUT_TIMEOUT_MS) ends the run with exit code 1.
// Receivers only find the message counter in each frame; they do not decrypt or apply
// the Yjs update (that would be client work, not relay work).
//
//   node fanout.mjs <relay url> <echo url> [<y-websocket url> [<storing echo url>]]
//   (an empty y-websocket url skips that target)
//
// Env knobs (defaults in parentheses):
//   FANOUT_N              receivers per room for the latency table ("10,100,500")
//   FANOUT_MESSAGES       measured messages per round, one number for every row or one
//                         per FANOUT_N entry, e.g. "300,300,100" to shorten the 500 row (300)
//   FANOUT_WARMUP         unmeasured messages before each latency round (30)
//   FANOUT_ROUNDS         rounds per row, for both tables (2)
//   FANOUT_BYTES          payload bytes per message: ciphertext / Y.Map value (256)
//   FANOUT_TPUT_N         receivers for the throughput table; 0 skips it (10)
//   FANOUT_TPUT_SECONDS   measured seconds per throughput round (8)
//   FANOUT_TPUT_WARMUP_SECONDS  unmeasured seconds before each throughput window (1)
//   FANOUT_WINDOW         messages in flight in the throughput mode (64)
//   FANOUT_TIMEOUT_MS     a message not delivered to every receiver by then fails (10000)
//   FANOUT_DEFLATE        1: clients offer permessage-deflate, as browsers do (0). workerd
//                         accepts it and then compresses every frame for every socket;
//                         the payloads are random bytes, so the default leaves it off to
//                         measure relaying, not zlib. The negotiated extension is printed.
//   WRANGLER_VERSION      printed in the machine line (run.sh sets it)
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
// relay/bench/node_modules (package.json here; run.sh installs it with `npm ci`).
import WebSocket from "ws";
import * as Y from "yjs";
import * as syncProtocol from "y-protocols/sync";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import { helloFrame, memberKeyPair, publishFrame, relayError, relayRefused } from "./wire.mjs";

const [relayUrl, echoUrl, ywsUrl, storeUrl] = process.argv.slice(2);
if (!relayUrl || !echoUrl) {
  console.error("usage: node fanout.mjs <relay url> <echo url> [<y-websocket url> [<storing echo url>]]");
  process.exit(2);
}

function envInt(name, fallback) {
  const raw = process.env[name] ?? String(fallback);
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) fatal(`${name}=${JSON.stringify(raw)} is not a non-negative integer`);
  return v;
}
function envList(name, fallback) {
  return (process.env[name] ?? fallback).split(",").map((s, i) => {
    const v = Number(s.trim());
    if (!Number.isInteger(v) || v <= 0) fatal(`${name}: entry ${i + 1} (${JSON.stringify(s)}) is not a positive integer`);
    return v;
  });
}

const NS = envList("FANOUT_N", "10,100,500");
const MESSAGES_LIST = envList("FANOUT_MESSAGES", "300");
if (MESSAGES_LIST.length !== 1 && MESSAGES_LIST.length !== NS.length) {
  fatal(`FANOUT_MESSAGES has ${MESSAGES_LIST.length} entries; give one, or one per FANOUT_N entry (${NS.length})`);
}
const messagesFor = (i) => MESSAGES_LIST[MESSAGES_LIST.length === 1 ? 0 : i];
const WARMUP = envInt("FANOUT_WARMUP", 30);
const ROUNDS = Math.max(1, envInt("FANOUT_ROUNDS", 2));
const PAYLOAD = envInt("FANOUT_BYTES", 256);
const TPUT_N = envInt("FANOUT_TPUT_N", 10);
const TPUT_SECONDS = envInt("FANOUT_TPUT_SECONDS", 8);
const TPUT_WARMUP_SECONDS = envInt("FANOUT_TPUT_WARMUP_SECONDS", 1);
const WINDOW = Math.max(1, envInt("FANOUT_WINDOW", 64));
const TIMEOUT_MS = envInt("FANOUT_TIMEOUT_MS", 10000);
const DEFLATE = envInt("FANOUT_DEFLATE", 0) === 1;
if (PAYLOAD < 16) fatal("FANOUT_BYTES must be at least 16 (the y-websocket payload carries a marker and the counter)");

function fatal(message) {
  console.error(`fanout: FAILED: ${message}`);
  process.exit(1);
}

// ---------------------------------------------------------------- sealsync relay / echo

const CHANNEL = randomBytes(16);
const SESSION = randomBytes(16);
const ROOM_KEY = randomBytes(32);
const MEMBER = memberKeyPair(ROOM_KEY);

const hello = (room, challenge) => helloFrame(MEMBER, room, challenge, CHANNEL);
const publish = (counter) => publishFrame(CHANNEL, SESSION, counter, PAYLOAD);

// --------------------------------------------------------------------------- y-websocket

const MESSAGE_SYNC = 0; // y-websocket's outer message type (1 = awareness)
// Marks the counter inside the Yjs update: the Uint8Array value is encoded verbatim, so a
// receiver finds it without decoding the update.
const MARKER = Buffer.from("ssbench\u0001", "latin1");

function syncFrame(write) {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_SYNC);
  write(encoder);
  return encoding.toUint8Array(encoder);
}

// ------------------------------------------------------------------------------ targets
//
// handshake(ws) → { start(), message(data) → true once joined, doc? }
// sender(client) → counter → frame to send
// counterOf(data) → the message counter of a payload frame, null for any other frame

// The JS Durable Object of js-do/ (echo, or storing first): no handshake, it rebroadcasts
// the PUBLISH frame as it came.
function jsDoTarget(label, short, url) {
  return {
    label,
    short,
    wsUrl: (room) => `${url.replace(/^http/, "ws")}/room/${room}/ws`,
    handshake: () => ({ start: () => {}, message: () => false, joinedOnOpen: true }),
    sender: () => publish,
    counterOf: (data) => (data[1] === 0x02 ? Number(data.readBigUInt64BE(2 + 38)) : null),
  };
}

const TARGETS = {
  relay: {
    label: "sealsync relay",
    wsUrl: (room) => `${relayUrl.replace(/^http/, "ws")}/room/${room}/ws`,
    // The relay's first frame is CHALLENGE (0x8D, 32 bytes): HELLO signs it.
    handshake: (ws, room) => ({
      start: () => {},
      message: (data) => {
        if (data[1] === 0x88) fatal(`relay refused the join: ${relayError(data)}`);
        if (data[1] === 0x8d) {
          if (data.length !== 2 + 32) fatal(`relay CHALLENGE of ${data.length} bytes`);
          ws.send(hello(room, data.subarray(2)));
          return false;
        }
        return data[1] === 0x85; // CAUGHT_UP
      },
    }),
    sender: () => publish,
    counterOf: (data) => {
      if (data[1] === 0x83) return Number(data.readBigUInt64BE(18 + 38)); // EVENT: seq, relay_time, envelope
      if (data[1] === 0x88) fatal(relayError(data));
      if (data[1] === 0x8b) fatal(relayRefused(data));
      return null; // PRESENCE, ACK (sender)
    },
  },
  echo: jsDoTarget("JS echo DO", "echo", echoUrl),
  store: jsDoTarget("storing JS DO", "storing JS DO", storeUrl ?? ""),
  yws: {
    label: "y-websocket",
    short: "y-websocket",
    wsUrl: (room) => `${(ywsUrl ?? "").replace(/^http/, "ws")}/${room}`,
    // What y-websocket's WebsocketProvider does: send sync step 1 on open, answer the
    // server's step 1 with step 2, and count as synced on the server's step 2.
    handshake: (ws) => {
      const doc = new Y.Doc();
      return {
        doc,
        start: () => ws.send(syncFrame((e) => syncProtocol.writeSyncStep1(e, doc))),
        message: (data) => {
          const decoder = decoding.createDecoder(data);
          if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return false; // awareness
          const encoder = encoding.createEncoder();
          encoding.writeVarUint(encoder, MESSAGE_SYNC);
          const type = syncProtocol.readSyncMessage(decoder, encoder, doc, null);
          if (encoding.length(encoder) > 1) ws.send(encoding.toUint8Array(encoder));
          return type === syncProtocol.messageYjsSyncStep2;
        },
      };
    },
    // Each message: one Y.Map set of a PAYLOAD-byte Uint8Array (marker, counter, random
    // bytes) in the sender's Y.Doc; the update it produces goes out as messageYjsUpdate.
    sender: (client) => {
      const map = client.doc.getMap("bench");
      let update = null;
      client.doc.on("update", (u) => { update = u; });
      return (counter) => {
        const value = new Uint8Array(PAYLOAD);
        const view = Buffer.from(value.buffer);
        MARKER.copy(view, 0);
        view.writeBigUInt64BE(BigInt(counter), 8);
        randomBytes(PAYLOAD - 16).copy(view, 16);
        map.set("v", value);
        return syncFrame((e) => syncProtocol.writeUpdate(e, update));
      };
    },
    counterOf: (data) => {
      if (data[0] !== MESSAGE_SYNC || data[1] !== syncProtocol.messageYjsUpdate) return null;
      const at = data.indexOf(MARKER, 2);
      if (at < 0) fatal("y-websocket: an update frame without the benchmark's payload");
      return Number(data.readBigUInt64BE(at + MARKER.length));
    },
  },
};
// Table column order: the relay, then its baselines from closest to farthest.
const NAMES = ["relay", ...(storeUrl ? ["store"] : []), "echo", ...(ywsUrl ? ["yws"] : [])];

// Opens a socket and completes the target's join; resolves to the joined client.
// Frames after the join go to client.onFrame (set by the measurement).
function connect(name, room) {
  const target = TARGETS[name];
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target.wsUrl(room), { perMessageDeflate: DEFLATE });
    ws.binaryType = "nodebuffer";
    const hs = target.handshake(ws, room);
    const client = { ws, doc: hs.doc, onFrame: null, joined: false, closing: false };
    const timer = setTimeout(() => reject(new Error(`${target.label}: join timed out`)), TIMEOUT_MS);
    const joined = () => { client.joined = true; clearTimeout(timer); resolve(client); };
    ws.on("open", () => {
      hs.start();
      if (hs.joinedOnOpen) joined();
    });
    ws.on("message", (data) => {
      if (!client.joined) { if (hs.message(data)) joined(); return; }
      client.onFrame?.(data);
    });
    ws.on("error", (err) => {
      if (!client.joined) { clearTimeout(timer); reject(new Error(`${target.label}: ${err.message}`)); }
      else fatal(`${target.label}: socket error: ${err.message}`);
    });
    ws.on("close", (code, reason) => {
      if (client.closing) return;
      if (client.joined) fatal(`${target.label}: the server closed a socket (${code} ${reason})`);
      clearTimeout(timer); // the "error" handler has usually rejected already, with the cause
      reject(new Error(`${target.label}: socket closed before joining (${code} ${reason})`));
    });
  });
}

const negotiated = {}; // target → Sec-WebSocket-Extensions the server accepted

// The time each latency room took to fill, by target and receiver count: its n receivers
// and the sender join one after another, each once the previous one has joined.
const joinMs = {};

async function openRoom(name, n, tag) {
  const room = `bench-${name}-${tag}-${randomBytes(4).toString("hex")}`;
  const receivers = [];
  const started = performance.now();
  for (let i = 0; i < n; i++) receivers.push(await connect(name, room));
  const sender = await connect(name, room);
  ((joinMs[name] ??= {})[n] ??= []).push(performance.now() - started);
  negotiated[name] ??= sender.ws.extensions || "none";
  return { receivers, sender, send: TARGETS[name].sender(sender) };
}

// Closes every socket and waits for the closes to finish, so a target's teardown does
// not overlap the next measurement.
async function closeRoom({ receivers, sender }) {
  const all = [...receivers, sender];
  await Promise.all(all.map((c) => new Promise((resolve) => {
    c.closing = true;
    if (c.ws.readyState === WebSocket.CLOSED) return resolve();
    const t = setTimeout(() => { c.ws.terminate(); resolve(); }, 5000);
    c.ws.once("close", () => { clearTimeout(t); resolve(); });
    c.ws.close();
  })));
  await sleep(250);
}

// Installs the receivers' handler: checks that each receiver gets 1, 2, 3, … exactly once
// and in order, and calls onDelivered(counter, now) for every (receiver, message).
function receive(name, n, receivers, onDelivered) {
  const target = TARGETS[name];
  const next = new Float64Array(receivers.length).fill(1);
  const sizes = [];
  receivers.forEach((client, i) => {
    client.onFrame = (data) => {
      const now = performance.now();
      const counter = target.counterOf(data);
      if (counter === null) return;
      if (counter !== next[i]) {
        fatal(`${target.label}, ${n} receivers: receiver ${i} got message ${counter} but expected ` +
          `${next[i]} (lost, duplicated or reordered)`);
      }
      next[i]++;
      if (sizes.length === 0) sizes.push(data.length);
      onDelivered(counter, now);
    };
  });
  return { next, sizes };
}

// Closed loop; returns { latencies (ms), frameBytes }.
async function latencyRun(name, n, messages, round) {
  const label = TARGETS[name].label;
  const room = await openRoom(name, n, `lat-${n}-${round}`);
  const sentAt = new Float64Array(WARMUP + messages + 1);
  const latencies = [];
  let pending = 0;
  let done = null;
  const { sizes } = receive(name, n, room.receivers, (counter, now) => {
    if (counter > WARMUP) latencies.push(now - sentAt[counter]);
    if (--pending === 0) done();
  });
  for (let counter = 1; counter <= WARMUP + messages; counter++) {
    const frame = room.send(counter);
    pending = n;
    let timer;
    const all = new Promise((resolve) => {
      done = resolve;
      timer = setTimeout(() => fatal(`${label}, ${n} receivers: message ${counter} reached ` +
        `${n - pending} of ${n} receivers within ${TIMEOUT_MS} ms`), TIMEOUT_MS);
    });
    sentAt[counter] = performance.now();
    room.sender.ws.send(frame);
    await all;
    clearTimeout(timer);
  }
  await closeRoom(room);
  return { latencies, frameBytes: sizes[0] };
}

// Pipelined, WINDOW messages in flight; returns { delivered, seconds, cpu } for the
// measured window (cpu = this process's user+system time ÷ wall time).
async function throughputRun(name, n, round) {
  const label = TARGETS[name].label;
  const room = await openRoom(name, n, `tput-${n}-${round}`);
  const remaining = new Int32Array(WINDOW); // receivers still to get message c, at c % WINDOW
  let sent = 0;
  let completed = 0;
  let sending = true;
  let drained = null;
  const pump = () => {
    while (sending && sent - completed < WINDOW) {
      const counter = ++sent;
      remaining[counter % WINDOW] = n;
      room.sender.ws.send(room.send(counter));
    }
  };
  const { next } = receive(name, n, room.receivers, (counter) => {
    // In-order delivery per receiver means messages complete in order.
    if (--remaining[counter % WINDOW] === 0) {
      completed++;
      if (sending) pump();
      else if (completed === sent) drained();
    }
  });
  pump();
  await sleep(TPUT_WARMUP_SECONDS * 1000);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const completed0 = completed;
  await sleep(TPUT_SECONDS * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const delivered = completed - completed0;
  sending = false;
  if (completed < sent) {
    let timer;
    await new Promise((resolve) => {
      drained = resolve;
      timer = setTimeout(() => {
        const behind = [...next].map((x, i) => [i, sent - (x - 1)]).filter(([, m]) => m > 0);
        fatal(`${label}, throughput: ${sent - completed} of ${sent} messages not delivered to every ` +
          `receiver ${TIMEOUT_MS} ms after the last send; missing per receiver: ` +
          behind.map(([i, m]) => `#${i}: ${m}`).join(", "));
      }, TIMEOUT_MS);
    });
    clearTimeout(timer);
  }
  await closeRoom(room);
  if (delivered === 0) fatal(`${label}, throughput: no message was delivered during the ${TPUT_SECONDS} s window`);
  return { delivered, seconds, cpu: (cpu.user + cpu.system) / 1e6 / seconds };
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Round r runs the targets rotated by r, so each goes first, middle and last in turn.
const orderFor = (round) => NAMES.map((_, i) => NAMES[(i + round) % NAMES.length]);

function machineLine() {
  let cpu = os.cpus()[0]?.model?.trim() ?? "unknown CPU";
  try {
    const m = readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m);
    if (m) cpu = m[1].trim();
  } catch { /* not Linux: keep os.cpus() */ }
  return `${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
    `${os.type()} ${os.release()}, Node ${process.version}, wrangler ${process.env.WRANGLER_VERSION ?? "(version not given)"}`;
}
const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(" ");

async function main() {
  const startLoad = loadavg();
  const frameBytes = {};

  const latencyRows = [];
  for (const [i, n] of NS.entries()) {
    const messages = messagesFor(i);
    const all = Object.fromEntries(NAMES.map((name) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of orderFor(round)) {
        const r = await latencyRun(name, n, messages, round);
        for (const x of r.latencies) all[name].push(x);
        frameBytes[name] ??= r.frameBytes;
      }
    }
    const row = { n, messages };
    for (const name of NAMES) {
      const s = all[name].sort((a, b) => a - b);
      row[name] = { p50: percentile(s, 50), p99: percentile(s, 99), samples: s.length };
    }
    latencyRows.push(row);
    console.error(JSON.stringify({ metric: "latency_ms", ...row }));
  }

  let tputRow = null;
  if (TPUT_N > 0) {
    tputRow = { n: TPUT_N };
    const runs = Object.fromEntries(NAMES.map((name) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of orderFor(round)) {
        const r = await throughputRun(name, TPUT_N, round);
        runs[name].push(r);
        console.error(JSON.stringify({ metric: "throughput", target: name, round,
          msgsPerSecond: +(r.delivered / r.seconds).toFixed(1), loadGeneratorCpu: +r.cpu.toFixed(2) }));
      }
    }
    for (const name of NAMES) {
      const rs = runs[name];
      const delivered = rs.reduce((a, r) => a + r.delivered, 0);
      const seconds = rs.reduce((a, r) => a + r.seconds, 0);
      const rates = rs.map((r) => r.delivered / r.seconds);
      tputRow[name] = {
        rate: delivered / seconds,
        min: Math.min(...rates),
        max: Math.max(...rates),
        cpu: rs.reduce((a, r) => a + r.cpu * r.seconds, 0) / seconds,
      };
    }
  }

  // ------------------------------------------------------------------------------ report
  const ms = (x) => x.toFixed(2);
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  const vs = NAMES.filter((name) => name !== "relay");
  const vsHead = vs.map((name) => `relay ÷ ${TARGETS[name].short}`);

  console.log(`Machine: ${machineLine()}. Load average ${startLoad} at the start, ${loadavg()} at the end.`);
  console.log(`All clients are Node \`ws\` sockets in one process on the same machine; every target in ` +
    `the same run, rounds alternating the order (${ROUNDS} per row). permessage-deflate ` +
    `${DEFLATE ? "offered" : "not offered"}; extensions in use: ` +
    NAMES.map((name) => `${TARGETS[name].label} ${negotiated[name] ?? "-"}`).join(", ") + ".");
  console.log(`Bytes each receiver gets per message: ` +
    NAMES.filter((name) => frameBytes[name]).map((name) => `${TARGETS[name].label} ${frameBytes[name]}`).join(", ") +
    ` (payload ${PAYLOAD} bytes).\n`);

  console.log(`Latency, closed loop (${WARMUP} warm-up messages per round; ms, lower is better):\n`);
  console.log(`| receivers | messages × rounds | ${NAMES.map((name) => `${TARGETS[name].label} p50 / p99`).join(" | ")} | ` +
    `${vsHead.map((h) => `${h} p50 / p99`).join(" | ")} |`);
  console.log(`| ---: | ---: | ${NAMES.map(() => "---:").join(" | ")} | ${vs.map(() => "---:").join(" | ")} |`);
  for (const r of latencyRows) {
    console.log(`| ${r.n} | ${r.messages} × ${ROUNDS} | ${NAMES.map((name) => `${ms(r[name].p50)} / ${ms(r[name].p99)}`).join(" | ")} | ` +
      `${vs.map((name) => `${ratio(r.relay.p50, r[name].p50)} / ${ratio(r.relay.p99, r[name].p99)}`).join(" | ")} |`);
  }

  console.log(`\nJoins (latency rooms; the n receivers and the sender one after another, each ` +
    `joined before the next opens; seconds for the whole room, median over ${ROUNDS} round(s), ` +
    `and ms per socket):\n`);
  console.log(`| receivers | ${NAMES.map((name) => `${TARGETS[name].label} s (ms per socket)`).join(" | ")} |`);
  console.log(`| ---: | ${NAMES.map(() => "---:").join(" | ")} |`);
  for (const r of latencyRows) {
    console.log(`| ${r.n} | ${NAMES.map((name) => {
      const t = joinMs[name][r.n].slice().sort((a, b) => a - b);
      const median = t[Math.floor(t.length / 2)];
      return `${(median / 1000).toFixed(2)} (${(median / (r.n + 1)).toFixed(2)})`;
    }).join(" | ")} |`);
  }

  if (tputRow) {
    console.log(`\nSustained throughput, ${tputRow.n} receivers, ${WINDOW} messages in flight, ` +
      `${TPUT_SECONDS} s measured per round after ${TPUT_WARMUP_SECONDS} s warm-up ` +
      `(messages delivered to every receiver per second, all rounds pooled, range over rounds; higher is better):\n`);
    console.log(`| receivers | ${NAMES.map((name) => `${TARGETS[name].label} (msgs/s)`).join(" | ")} | ${vsHead.join(" | ")} |`);
    console.log(`| ---: | ${NAMES.map(() => "---:").join(" | ")} | ${vs.map(() => "---:").join(" | ")} |`);
    const fmt = (t) => `${t.rate.toFixed(0)} (${t.min.toFixed(0)}–${t.max.toFixed(0)})`;
    console.log(`| ${tputRow.n} | ${NAMES.map((name) => fmt(tputRow[name])).join(" | ")} | ` +
      `${vs.map((name) => ratio(tputRow.relay.rate, tputRow[name].rate)).join(" | ")} |`);
    console.log(`\nLoad generator (this Node process) CPU during the measured windows, in cores: ` +
      NAMES.map((name) => `${TARGETS[name].label} ${tputRow[name].cpu.toFixed(2)}`).join(", ") + ".");
  }
  process.exit(0);
}

main().catch((err) => fatal(err?.stack ?? String(err)));
