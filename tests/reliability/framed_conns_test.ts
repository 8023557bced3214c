/**
 * Connection flood against `-l -k --frame`: hundreds of clients that each
 * send 5 bytes and stay. At most `--max-conns` (256) are served, the rest
 * are closed unread, and each served client costs a few KiB, not two
 * 256 KiB buffers, nor the 16 MiB its length prefix announces.
 *
 * Measured before: 300 such clients added 86 MiB of RSS, all of them
 * served; with prefixes announcing 16 MiB the server reserved 4.8 GB of
 * address space.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { runCli, startServer } from "../_helpers.ts";
import { budget, scaled } from "./_scale.ts";
import { assertNoCrash, pool, sleep, summary, waitUntil } from "./_util.ts";

/** VmRSS and VmSize of `pid`, in MiB. */
function memory(pid: number): { rss: number; vm: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (name: string) =>
    Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))![1]);
  return { rss: kb("VmRSS") / 1024, vm: kb("VmSize") / 1024 };
}

const count = (text: string, re: RegExp) => text.match(re)?.length ?? 0;

Deno.test("framed conns: 300 clients of 5 bytes each against -l -k --frame: 256 served, memory bounded", async () => {
  await using server = await startServer(
    ["-l", "-k", "--frame", "u32be", "0"],
    { timeout: budget(120_000) },
  );
  await sleep(500);
  const before = memory(server.child.pid);
  const n = scaled(300);
  const conns: Deno.TcpConn[] = [];
  try {
    const t0 = performance.now();
    await pool(n, 50, async (i) => {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      conns.push(conn);
      // Half send a whole frame of 1 byte, half a prefix announcing
      // 16 MiB - 1 and the first byte of it.
      const bytes = i % 2 === 0 ? [0, 0, 0, 1, 0x41] : [0, 0xff, 0xff, 0xff, 1];
      try {
        await conn.write(new Uint8Array(bytes));
      } catch { /* refused and closed already */ }
    });
    const seen = () =>
      count(server.stderrSoFar(), /connection from /g) +
      count(server.stderrSoFar(), / refused: /g);
    assertOk(await waitUntil(() => seen() >= n, budget(20_000)), `${seen()}`);
    const ms = performance.now() - t0;
    await sleep(500);
    const after = memory(server.child.pid);
    const log = server.stderrSoFar();
    const served = count(log, /connection from /g);
    const refused = count(log, / refused: \d+ clients open \(--max-conns\)/g);
    for (const c of conns) c.close();
    conns.length = 0;
    // Once they are gone, a real client is served.
    await waitUntil(
      () =>
        count(server.stderrSoFar(), / closed: /g) +
            count(server.stderrSoFar(), /dropped/g) >= served,
      budget(10_000),
    );
    const real = await runCli(
      ["--frame", "u32be", "127.0.0.1", String(server.port)],
      { stdin: "after the flood\n" },
    );
    await server.waitForStderr(/closed: 1 frames/, 5000).catch(() => null);
    server.kill("SIGTERM");
    const out = await server.output;
    const rss = after.rss - before.rss, vm = after.vm - before.vm;
    summary(
      `framed conns: ${n} clients of 5 bytes in ${
        ms.toFixed(0)
      } ms: ${served} served, ${refused} refused (--max-conns 256); RSS +${
        rss.toFixed(1)
      } MiB, address space +${vm.toFixed(0)} MiB; a real client ${
        real.code === 0 && out.text.includes("after the flood\n")
          ? "served"
          : "NOT served"
      } after`,
    );
    assertEquals(served, Math.min(n, 256));
    assertEquals(refused, n - served);
    assertOk(rss < 30, `RSS +${rss} MiB`);
    // Address space: reserving each announced 16 MiB frame would add 2 GiB
    // (128 such clients served). What it may grow by otherwise is glibc's
    // per-thread malloc arenas, 64 MiB each, up to 8 per core (1 GiB on
    // two cores) as the runtime starts threads: seen +536 MiB.
    assertOk(vm < 1536, `address space +${vm} MiB`);
    assertEquals(real.code, 0, real.stderr);
    assertOk(out.text.includes("after the flood\n"), out.text.slice(-200));
    assertEquals(out.code, 0, out.stderr.slice(-500));
    assertNoCrash("-l -k --frame", out.stderr);
  } finally {
    for (const c of conns) c.close();
  }
});
