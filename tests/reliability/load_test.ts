/**
 * Load: many concurrent clients through `denocat echo`, many concurrent
 * transfers into one `denocat recv -k`, every byte checked by hash, and the
 * servers' peak memory bounded.
 */
import { createHash } from "node:crypto";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { sendItems } from "../../lib/transfer/mod.ts";
import {
  randomBytes,
  sha256,
  startCli,
  startServer,
  testOnlyOn,
} from "../_helpers.ts";
import { SCALE, scaled } from "./_scale.ts";
import { assertNoCrash, peakMiB, pool, summary } from "./_util.ts";

const test = testOnlyOn(
  ["linux"],
  "/proc (the reliability checks read memory and processes there)",
);

const CLIENT_BYTES = 256 * 1024;
// 1 MiB of random bytes; client i sends a window of it stamped with i.
const POOL = randomBytes(1024 * 1024);

function payloadOf(i: number): Uint8Array {
  const off = (i * 4099) % (POOL.length - CLIENT_BYTES);
  const p = POOL.slice(off, off + CLIENT_BYTES);
  new DataView(p.buffer).setUint32(0, i);
  return p;
}

/** Sends `data`, half-closes, and returns the sha256 of everything echoed. */
async function echoRoundTrip(port: number, data: Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const writing = (async () => {
      let off = 0;
      while (off < data.length) off += await conn.write(data.subarray(off));
      await conn.closeWrite();
    })();
    const hash = createHash("sha256");
    const buf = new Uint8Array(65536);
    let n: number | null;
    let got = 0;
    while ((n = await conn.read(buf)) !== null) {
      hash.update(buf.subarray(0, n));
      got += n;
    }
    await writing;
    assertEquals(got, data.length);
    return hash.digest("hex");
  } finally {
    conn.close();
  }
}

test("load: concurrent clients through denocat echo, every byte back", async () => {
  const clients = scaled(1000);
  await using server = await startServer(["echo", "0"], { timeout: 600_000 });
  const t0 = performance.now();
  // All of them at once (the soak size goes in waves of 2000 sockets).
  const ok = await pool(clients, 2000, async (i) => {
    const data = payloadOf(i);
    return (await echoRoundTrip(server.port, data)) === sha256(data);
  });
  const ms = performance.now() - t0;
  const intact = ok.filter(Boolean).length;
  const peak = peakMiB(server.child.pid);
  const mb = clients * CLIENT_BYTES * 2 / 1e6;
  summary(
    `load: echo ${intact}/${clients} clients x 256 KiB intact by sha256, ${
      (mb / (ms / 1000)).toFixed(0)
    } MB/s both ways in ${(ms / 1000).toFixed(1)} s, server peak ${peak} MiB`,
  );
  assertEquals(intact, clients);
  assertOk(peak < 256, `echo server peak memory ${peak} MiB`);
  server.kill("SIGTERM");
  const out = await server.output;
  assertEquals(out.code, 0);
  assertNoCrash("echo", out.stderr);
});

test("load: concurrent transfers into one denocat recv -k, every file intact", async () => {
  const transfers = scaled(200);
  // Deno processes cost ~40 MB each: 100 at once at any scale.
  const viaCli = Math.min(100, transfers);
  const dir = await Deno.makeTempDir({ prefix: "denocat-load-" });
  const src = `${dir}/src`;
  const out = `${dir}/out`;
  await Deno.mkdir(src);
  try {
    const sums: string[] = [];
    for (let i = 0; i < transfers; i++) {
      const size = 1 + (i * 7919) % (512 * 1024);
      const off = (i * 131) % (POOL.length - size);
      const data = POOL.subarray(off, off + size);
      await Deno.writeFile(`${src}/f${i}.bin`, data);
      sums.push(sha256(data));
    }
    // This figure is about all of them at once: as many slots as senders
    // (all from 127.0.0.1), and room for all of them to connect in the same
    // moment.
    const limits = [
      "--max-conns",
      String(transfers),
      "--max-pending",
      String(transfers),
      "--max-conns-per-ip",
      String(transfers),
    ];
    await using server = await startServer([
      "recv",
      "-k",
      ...limits,
      "-o",
      out,
      "0",
    ], {
      timeout: 600_000,
    });
    const ep = { hostname: "127.0.0.1", port: server.port };
    const t0 = performance.now();
    const codes = await Promise.all([
      // Real send processes, started together.
      ...Array.from({ length: viaCli }, async (_, i) => {
        await using p = startCli([
          "send",
          "127.0.0.1",
          String(server.port),
          `${src}/f${i}.bin`,
        ], { timeout: 120_000 * SCALE });
        const r = await p.output;
        if (r.code !== 0) console.error(`send f${i}: ${r.stderr}`);
        return r.code;
      }),
      // The rest through the library, all at once.
      ...Array.from({ length: transfers - viaCli }, async (_, k) => {
        const i = viaCli + k;
        const path = `${src}/f${i}.bin`;
        const size = (await Deno.stat(path)).size;
        const r = await sendItems(ep, [{
          kind: "file",
          path,
          name: `f${i}.bin`,
          size,
          mode: 0o644,
        }]);
        return r.exitCode;
      }),
    ]);
    const ms = performance.now() - t0;
    let intact = 0;
    for (let i = 0; i < transfers; i++) {
      const got = await Deno.readFile(`${out}/f${i}.bin`).catch(() => null);
      if (got && sha256(got) === sums[i]) intact++;
    }
    const leftovers = [...Deno.readDirSync(out)].length - intact;
    const peak = peakMiB(server.child.pid);
    summary(
      `load: recv ${intact}/${transfers} files intact by sha256 (${viaCli} real send processes, ${
        transfers - viaCli
      } library senders) in ${(ms / 1000).toFixed(1)} s, ${
        codes.filter((c) => c === 0).length
      } exit 0, ${leftovers} stray files, server peak ${peak} MiB`,
    );
    assertEquals(codes.filter((c) => c !== 0), []);
    assertEquals(intact, transfers);
    assertEquals(leftovers, 0);
    // Each sender being served may hold 2 MiB of body buffers: the bound
    // grows with how many run at once (1 MiB each, plus the runtime).
    assertOk(peak < 256 + transfers, `recv peak memory ${peak} MiB`);
    server.kill("SIGTERM");
    const res = await server.output;
    assertEquals(res.code, 0);
    assertNoCrash("recv", res.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
