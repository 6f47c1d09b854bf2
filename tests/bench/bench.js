// In-page benchmark: seal+open through the SDK (wasm) vs WebCrypto AES-GCM, and Argon2id
// on the main thread vs in Room.join's worker (with the main thread's longest stall).
import init, { BenchSealer, deriveRoomKey, Room } from "/pkg/index.js";

await init();

// 256 B, 4 KiB, 64 KiB, and the largest body an envelope holds (MAX_BODY_LEN, just under
// 1 MiB).
const SIZES = [256, 4096, 65536, 1000000];
const MIN_MS = 400;

function randomBytes(n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  return b;
}

/** Runs `op` until MIN_MS have passed (after a warm-up); returns µs per call. */
async function perOp(op, isAsync) {
  for (let i = 0; i < 3; i++) isAsync ? await op() : op();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < MIN_MS) {
    isAsync ? await op() : op();
    n += 1;
    t = performance.now();
  }
  return ((t - t0) * 1000) / n;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Longest gap between 1 ms timer ticks while `work` runs: how long the page froze. */
async function longestStall(work) {
  let last = performance.now();
  let worst = 0;
  const id = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 20));
  worst = 0;
  last = performance.now();
  const result = await work();
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(id);
  return { worst, result };
}

async function run() {
  const out = { userAgent: navigator.userAgent, sealOpen: [], argon2: {} };
  const sdk = new BenchSealer();
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  for (const size of SIZES) {
    const body = randomBytes(size);
    const check = sdk.sealOpen(body);
    if (check.length !== size || check[size - 1] !== body[size - 1]) throw new Error("sealOpen round trip failed");
    const wasmUs = await perOp(() => sdk.sealOpen(body), false);
    const webcryptoUs = await perOp(async () => {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, body);
      await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, ct);
    }, true);
    out.sealOpen.push({ size, wasmUs, webcryptoUs, ratio: wasmUs / webcryptoUs });
  }

  // Baseline: the longest timer gap when nothing runs (noise of a loaded machine).
  let idleStall = 0;
  for (let i = 0; i < 5; i++) {
    const { worst } = await longestStall(() => new Promise((r) => setTimeout(r, 150)));
    idleStall = Math.max(idleStall, worst);
  }

  // Argon2id on the main thread: deriveRoomKey directly (the page is frozen meanwhile).
  const main = [];
  let mainStall = 0;
  for (let i = 0; i < 5; i++) {
    const { worst } = await longestStall(async () => {
      const t0 = performance.now();
      deriveRoomKey("bench-room", `password ${i}`);
      main.push(performance.now() - t0);
    });
    mainStall = Math.max(mainStall, worst);
  }
  // Through Room.join: the worker (start, load the module, derive, post back).
  const worker = [];
  let workerStall = 0;
  let inWorker = true;
  for (let i = 0; i < 5; i++) {
    const { worst, result } = await longestStall(async () => {
      let ms = NaN;
      const room = await Room.join({
        url: "ws://127.0.0.1:9", room: `bench-room-${i}`, password: `password ${i}`, persist: false,
        onProgress: (p) => { if (p.state === "key-ready") { ms = p.ms; inWorker = inWorker && p.inWorker; } },
      });
      await room.leave();
      return ms;
    });
    worker.push(result);
    workerStall = Math.max(workerStall, worst);
  }
  out.argon2 = {
    mainThreadMs: median(main), mainThreadRuns: main,
    mainThreadLongestStallMs: mainStall,
    workerJoinMs: median(worker), workerRuns: worker, inWorker,
    workerLongestStallMs: workerStall,
    idleLongestStallMs: idleStall,
  };
  return out;
}

window.benchResult = run().then(
  (r) => { document.getElementById("out").textContent = JSON.stringify(r, null, 2); return r; },
  (e) => { document.getElementById("out").textContent = String(e && e.stack || e); throw e; },
);
