/**
 * Backpressure: 100 MiB of command output through a server process whose
 * memory is measured from /proc, to a client that stalls and then drains.
 */
import { createHash } from "node:crypto";
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { connectShell } from "../lib/shell/mod.ts";
import { onlyOn, startServer, testOnlyOn } from "./_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "process groups and POSIX signals (the shell server)",
);

const MIB = 1024 * 1024;
const TOTAL = 100 * MIB;

/** A field of /proc/PID/status in bytes (VmRSS, VmHWM). */
async function procKiB(pid: number, field: string): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

test({
  name:
    "denocat shell: 100 MiB streamed, server memory bounded while the client stalls",
  ignore: onlyOn(["linux"], "/proc (the memory bound is read there)"),
  async fn() {
    await using srv = await startServer([
      "shell",
      "-l",
      "--insecure-no-auth",
      "127.0.0.1",
      "0",
    ]);
    const pid = srv.child.pid;
    await using session = await connectShell({
      hostname: "127.0.0.1",
      port: srv.port,
    });
    // Warm up the server's code paths, then take its baseline.
    assertEquals((await session.exec("echo warm")).code, 0);
    const baseline = await procKiB(pid, "VmHWM");

    // The pattern `yes` writes, to check the bytes on arrival.
    const line = new TextEncoder().encode("denocat shell backpressure\n");
    const expected = createHash("sha256");
    const block = new Uint8Array(line.length * 40000);
    for (let i = 0; i < block.length; i += line.length) block.set(line, i);
    for (let left = TOTAL; left > 0; left -= block.length) {
      expected.update(block.subarray(0, Math.min(left, block.length)));
    }

    const got = createHash("sha256");
    let received = 0;
    let stalled = false;
    let rssDuringStall = 0;
    const t0 = performance.now();
    let tDrain = 0;
    const exit = await session.exec(
      `yes 'denocat shell backpressure' | head -c ${TOTAL}`,
      {
        stdout: {
          async write(p) {
            got.update(p);
            received += p.length;
            if (!stalled) {
              // A client that stops reading for a second: unthrottled, the
              // command would have produced all 100 MiB by now.
              stalled = true;
              await new Promise((r) => setTimeout(r, 1000));
              rssDuringStall = await procKiB(pid, "VmRSS");
              tDrain = performance.now();
            }
            return p.length;
          },
        },
      },
    );
    const elapsed = performance.now() - tDrain;
    const peak = await procKiB(pid, "VmHWM");
    const growth = peak - baseline;
    console.log(
      `server VmHWM ${(baseline / MIB).toFixed(1)} -> ${
        (peak / MIB).toFixed(1)
      } MiB (+${(growth / MIB).toFixed(1)}), VmRSS during stall ${
        (rssDuringStall / MIB).toFixed(1)
      } MiB; drained 100 MiB in ${(elapsed / 1000).toFixed(2)} s (${
        (TOTAL / MIB / (elapsed / 1000)).toFixed(0)
      } MiB/s), total ${((performance.now() - t0) / 1000).toFixed(2)} s`,
    );
    assertEquals(exit.code, 0);
    assertEquals(received, TOTAL);
    assertEquals(got.digest("hex"), expected.digest("hex"));
    // Buffers are a few hundred KiB per session; allow the runtime's own
    // churn but nothing near the 100 MiB an unthrottled server would hold.
    assertOk(growth < 32 * MIB, `server memory grew by ${growth} bytes`);
  },
});
