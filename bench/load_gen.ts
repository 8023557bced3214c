/**
 * Echo load generator, run as its own process by bench/echo_load.ts:
 * CONNS connections each doing SIZE-byte request/response for SECS seconds.
 * Prints one JSON line: messages completed, errors and a latency sample.
 *
 * Usage: deno run -A bench/load_gen.ts PORT CONNS SECS [SIZE]
 */
const [portArg, connsArg, secsArg, sizeArg] = Deno.args;
const port = Number(portArg);
const conns = Number(connsArg);
const ms = Number(secsArg) * 1000;
const size = Number(sizeArg ?? 64);

const MAX_SAMPLES = 200_000;
const samples = new Float64Array(MAX_SAMPLES);
let sampled = 0;
let messages = 0;
let errors = 0;
let running = true;

async function connectRetry(): Promise<Deno.TcpConn> {
  for (let i = 0;; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.setNoDelay(true);
      return c;
    } catch (err) {
      if (i > 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function worker(): Promise<void> {
  let conn: Deno.TcpConn;
  try {
    conn = await connectRetry();
  } catch {
    errors++;
    return;
  }
  const req = new Uint8Array(size).fill(0x61);
  const buf = new Uint8Array(size);
  try {
    while (running) {
      const t0 = performance.now();
      let off = 0;
      while (off < size) off += await conn.write(req.subarray(off));
      let got = 0;
      while (got < size) {
        const n = await conn.read(buf.subarray(got));
        if (n === null) throw new Error("closed");
        got += n;
      }
      const dt = performance.now() - t0;
      messages++;
      // Reservoir sampling keeps a uniform sample of every latency.
      if (sampled < MAX_SAMPLES) samples[sampled++] = dt;
      else {
        const j = Math.floor(Math.random() * messages);
        if (j < MAX_SAMPLES) samples[j] = dt;
      }
    }
  } catch {
    if (running) errors++;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

const workers: Promise<void>[] = [];
for (let i = 0; i < conns; i++) workers.push(worker());
// Count only the measured window: start after every connection is up.
await new Promise((r) => setTimeout(r, 300));
const startMessages = messages;
sampled = 0;
const t0 = performance.now();
await new Promise((r) => setTimeout(r, ms));
const elapsed = performance.now() - t0;
const done = messages - startMessages;
running = false;
await Promise.all(workers);
const sample = Array.from(samples.subarray(0, Math.min(sampled, MAX_SAMPLES)));
console.log(
  JSON.stringify({ messages: done, seconds: elapsed / 1000, errors, sample }),
);
