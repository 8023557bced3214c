/**
 * Slow clients: hundreds of idle or byte-at-a-time connections do not delay
 * a valid client beyond a second, and `--idle-timeout` closes them.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { connectShell } from "../../lib/shell/mod.ts";
import { sendItems } from "../../lib/transfer/mod.ts";
import { startServer, testOnlyOn } from "../_helpers.ts";
import { scaled } from "./_scale.ts";
import { assertNoCrash, sleep, summary } from "./_util.ts";

const test = testOnlyOn(
  ["linux"],
  "/proc (the reliability checks read memory and processes there)",
);

const TOKEN = "slow-suite-token";
const te = new TextEncoder();

/** Opens `n` connections: even ones stay silent, odd ones send a byte every 2.5 s. */
async function slowClients(port: number, n: number) {
  const conns: Deno.TcpConn[] = [];
  // Each connection's close is timed from its own opening.
  const openedAt: number[] = [];
  for (let i = 0; i < n; i++) {
    conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    openedAt.push(performance.now());
  }
  const closedAt = new Array<number>(n).fill(0);
  const readers = conns.map(async (c, i) => {
    const buf = new Uint8Array(4096);
    try {
      while ((await c.read(buf)) !== null) { /* the server may say why */ }
    } catch { /* reset */ }
    closedAt[i] = performance.now() - openedAt[i]!;
  });
  let stop = false;
  const tricklers = conns.map(async (c, i) => {
    if (i % 2 === 0) return;
    while (!stop && closedAt[i] === 0) {
      try {
        await c.write(new Uint8Array([0]));
      } catch {
        return;
      }
      await sleep(2500);
    }
  });
  return {
    closedAt,
    async [Symbol.asyncDispose]() {
      stop = true;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await Promise.all([...readers, ...tricklers]);
    },
  };
}

const valid: Record<string, (port: number, dir: string) => Promise<boolean>> = {
  async echo(port) {
    using c = await Deno.connect({ hostname: "127.0.0.1", port });
    await c.write(te.encode("ping"));
    const buf = new Uint8Array(4);
    let got = 0;
    while (got < 4) {
      const n = await c.read(buf.subarray(got));
      if (n === null) return false;
      got += n;
    }
    return new TextDecoder().decode(buf) === "ping";
  },
  async frame(port) {
    using c = await Deno.connect({ hostname: "127.0.0.1", port });
    await c.write(new Uint8Array([0, 0, 0, 2, 0x68, 0x69]));
    await c.closeWrite();
    return (await c.read(new Uint8Array(1))) === null;
  },
  async recv(port, dir) {
    let done = false;
    const r = await sendItems({ hostname: "127.0.0.1", port }, [{
      kind: "stream",
      name: "valid.txt",
      reader: {
        read(p) {
          if (done) return Promise.resolve(null);
          done = true;
          p.set(te.encode("hi"));
          return Promise.resolve(2);
        },
      },
    }]);
    return r.exitCode === 0 &&
      Deno.readTextFileSync(`${dir}/valid.txt`) === "hi";
  },
  async shell(port) {
    await using s = await connectShell({ hostname: "127.0.0.1", port }, {
      token: TOKEN,
    });
    return (await s.exec("exit 6")).code === 6;
  },
};

test("slow clients: a valid client is served within a second; --idle-timeout closes the slow ones", async () => {
  const n = scaled(500);
  const dir = await Deno.makeTempDir({ prefix: "denocat-slow-" });
  const lines: string[] = [];
  let failures = 0;
  try {
    const servers = {
      echo: ["echo", "--idle-timeout", "1", "0"],
      // Above n: this is about --idle-timeout, not the cap on clients
      // (at most 256 by default; beyond it they are closed at once).
      frame: [
        "-l",
        "-k",
        "--frame",
        "u32be",
        "--idle-timeout",
        "1",
        "--max-conns",
        String(n + 10),
        "0",
      ],
      recv: [
        "recv",
        "-k",
        "-o",
        dir,
        "--idle-timeout",
        "1",
        "--no-progress",
        "0",
      ],
      shell: ["shell", "-l", "--token", TOKEN, "--idle-timeout", "1", "0"],
    };
    for (const [name, args] of Object.entries(servers)) {
      await using server = await startServer(args, { timeout: 120_000 });
      await using slow = await slowClients(server.port, n);
      const v0 = performance.now();
      const ok = await valid[name]!(server.port, dir);
      const validMs = performance.now() - v0;
      // Everything is closed within the timeout plus its sweep and slack.
      const deadline = performance.now() + 4000;
      while (
        slow.closedAt.some((t) => t === 0) && performance.now() < deadline
      ) {
        await sleep(100);
      }
      const open = slow.closedAt.filter((t) => t === 0).length;
      const last = Math.max(...slow.closedAt);
      const early = slow.closedAt.filter((t) => t > 0 && t < 900).length;
      lines.push(
        `${name}: valid client ${ok ? "served" : "FAILED"} in ${
          validMs.toFixed(0)
        } ms, ${n - open}/${n} slow closed (last after ${
          (last / 1000).toFixed(1)
        } s)`,
      );
      // The shell (unauthenticated) and recv (no item header yet) drop the
      // oldest pending connections beyond their limit at once, so only they
      // may close some early.
      const dropsPending = name === "shell" || name === "recv";
      if (
        !ok || validMs > 1000 || open > 0 || !dropsPending && early > 0
      ) failures++;
      server.kill("SIGTERM");
      const out = await server.output;
      assertNoCrash(name, out.stderr);
      assertEquals(out.code, 0);
    }
    summary(`slow: ${n} slow clients per server; ${lines.join("; ")}`);
    assertEquals(failures, 0, lines.join("\n"));
    assertOk(lines.length === 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
