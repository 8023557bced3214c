import { acceptLoop } from "../../lib/accept.ts";
import { assertEquals, assertOk } from "../../lib/_assert.ts";

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
