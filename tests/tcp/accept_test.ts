import { acceptLoop, acceptNext } from "../../lib/accept.ts";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { needs, within } from "../_helpers.ts";

Deno.test("acceptLoop() backs off on failing accepts and logs them at most once a second", async () => {
  let calls = 0;
  const fake = {
    accept(): Promise<Deno.Conn> {
      calls++;
      if (calls <= 6) {
        return Promise.reject(new Error("Too many open files (os error 24)"));
      }
      return Promise.reject(new Deno.errors.BadResource("closed"));
    },
  };
  const lines: string[] = [];
  const t0 = performance.now();
  const loop = acceptLoop(fake, () => Promise.resolve(), {
    backoffMs: 20,
    logger: { enabled: true, log: (m) => lines.push(m) },
  });
  await loop.drain();
  const ms = performance.now() - t0;
  assertEquals(calls, 7);
  // 20 + 40 + 80 + 160 + 320 + 640 ms of pauses: no spinning.
  assertOk(ms >= 1200, `took only ${ms} ms`);
  assertOk(lines.length >= 1 && lines.length <= 3, lines.join("\n"));
  assertOk(lines[0]!.includes("accept failed: Too many open files"), lines[0]);
});

Deno.test("acceptLoop() logs a handler's rejection instead of leaving it unhandled", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const lines: string[] = [];
  const loop = acceptLoop(listener, (conn) => {
    conn.close();
    return Promise.reject(new Error("boom"));
  }, { logger: { enabled: true, log: (m) => lines.push(m) } });
  (await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }))
    .close();
  while (lines.length === 0) await new Promise((r) => setTimeout(r, 5));
  listener.close();
  await loop.drain();
  assertEquals(lines, ["connection failed: boom"]);
});

/** Connects `n` times to `port` and resets each connection (SO_LINGER 0). */
async function resetPeers(port: number, n: number): Promise<void> {
  const r = await new Deno.Command("python3", {
    args: [
      "-c",
      `import socket, struct
for _ in range(${n}):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.connect(("127.0.0.1", ${port}))
    s.close()`,
    ],
    stderr: "piped",
  }).output();
  assertOk(r.success, new TextDecoder().decode(r.stderr));
}

Deno.test({
  name:
    "acceptLoop() and acceptNext() skip peers that reset before they were taken, at once and without a log line: a flood of resets backed the loop off to 1 s per accept",
  ignore: needs("python3"),
  fn: async () => {
    for (const how of ["loop", "next"] as const) {
      using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = listener.addr.port;
      // Reset while nothing accepts: Deno's accept then fails on each.
      await resetPeers(port, 40);
      using client = await Deno.connect({ hostname: "127.0.0.1", port });
      const t0 = performance.now();
      let served: Deno.Conn;
      const lines: string[] = [];
      if (how === "next") {
        served = await within(acceptNext(listener), "acceptNext()", 5000);
      } else {
        const got = Promise.withResolvers<Deno.Conn>();
        const loop = acceptLoop(listener, (c) => {
          got.resolve(c);
          return Promise.resolve();
        }, { logger: { enabled: true, log: (m) => lines.push(m) } });
        try {
          served = await within(got.promise, "the loop's handler", 5000);
        } finally {
          listener.close();
          await loop.drain();
        }
      }
      const ms = performance.now() - t0;
      try {
        assertEquals(served.remoteAddr, client.localAddr, how);
        assertOk(ms < 500, `${how}: ${ms} ms`);
        assertEquals(lines, [], how);
      } finally {
        served.close();
      }
    }
  },
});
