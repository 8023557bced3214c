/**
 * SourceGuard (what echo -u refuses to answer) and the flags around it:
 * loop ports, the per-address token bucket, its two generations, the
 * bounded table, and `--rate` on the command line.
 */
import { assertEquals, assertOk, assertThrows } from "../../lib/_assert.ts";
import {
  ADMIT,
  DEFAULT_RATE,
  DropLog,
  LOOP,
  LOOP_PORTS,
  OVER_RATE,
  SourceGuard,
} from "../../lib/source_guard.ts";
import { udpEcho } from "../../lib/udp/echo.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import { runCli, startServer, within } from "../_helpers.ts";

Deno.test("SourceGuard.check() refuses its own port, port 0 and the loop ports whatever the address or rate", () => {
  const g = new SourceGuard({ ownPort: 5353, rate: Infinity });
  for (const port of [5353, 0, ...LOOP_PORTS]) {
    for (const key of ["127.0.0.1", "::1", "203.0.113.9", 0x7f000001]) {
      assertEquals(g.check(key, port, 0), LOOP, `${key}:${port}`);
    }
  }
  for (const port of [1, 9, 53, 123, 1024, 5352, 5354, 65535]) {
    assertEquals(g.check("127.0.0.1", port, 0), ADMIT, `port ${port}`);
  }
  assertEquals(g.tracked, 0); // no limit: nothing tracked
});

Deno.test("SourceGuard.check() gives each address a bucket of one second's worth, refilled at the rate", () => {
  const g = new SourceGuard({ ownPort: 1, rate: 100 });
  let admitted = 0;
  for (let i = 0; i < 250; i++) {
    if (g.check("10.0.0.1", 4000 + i, 0) === ADMIT) admitted++;
  }
  assertEquals(admitted, 100); // the burst; the port does not matter
  assertEquals(g.check("10.0.0.1", 4000, 5), OVER_RATE); // half a token back
  assertEquals(g.check("10.0.0.1", 4000, 10), ADMIT); // one token at 10 ms
  assertEquals(g.check("10.0.0.1", 4000, 10), OVER_RATE);
  // Another address has its own bucket.
  assertEquals(g.check("10.0.0.2", 4000, 10), ADMIT);
  // A steady 100/s is always answered.
  let steady = 0;
  for (let t = 1000; t < 3000; t += 10) {
    if (g.check("10.0.0.1", 4000, t) === ADMIT) steady++;
  }
  assertEquals(steady, 200);
});

Deno.test("SourceGuard forgets an address idle for a second with nothing lost, and tracks at most maxSources", () => {
  const g = new SourceGuard({ ownPort: 1, rate: 10, maxSources: 100 });
  for (let i = 0; i < 10; i++) g.check("a", 2000, 0);
  assertEquals(g.check("a", 2000, 0), OVER_RATE);
  for (let i = 0; i < 1000; i++) g.check(`spray-${i}`, 2000, 1);
  assertEquals(g.tracked, 100);
  // Beyond the table, new addresses share one bucket of the same rate.
  assertEquals(g.check("late-1", 2000, 2), OVER_RATE);
  // Two generations later the sprayed addresses are gone...
  g.check("b", 2000, 1500);
  g.check("b", 2000, 3000);
  assertEquals(g.tracked, 1);
  // ...and a forgotten address comes back with a full bucket: it was full.
  let admitted = 0;
  for (let i = 0; i < 20; i++) {
    if (g.check("a", 2000, 3000) === ADMIT) admitted++;
  }
  assertEquals(admitted, 10);
});

Deno.test("SourceGuard keeps a busy address's bucket across generations", () => {
  const g = new SourceGuard({ ownPort: 1, rate: 10 });
  let admitted = 0;
  // 1,000 datagrams a second for 5 s: 10 a second plus the first burst.
  for (let t = 0; t < 5000; t++) {
    if (g.check("busy", 2000, t) === ADMIT) admitted++;
  }
  assertOk(admitted <= 10 + 50 + 1, `${admitted}`);
  assertOk(admitted >= 10 + 49, `${admitted}`);
});

Deno.test("SourceGuard refuses a rate that is not positive", () => {
  for (const rate of [0, -1, NaN]) {
    assertThrows(
      () => new SourceGuard({ ownPort: 1, rate }),
      RangeError,
      "Cannot limit the rate",
    );
  }
  assertEquals(DEFAULT_RATE, 10_000);
});

Deno.test("DropLog words at most one line a second", () => {
  const log = new DropLog();
  const lines: string[] = [];
  for (let t = 0; t < 3000; t++) {
    const line = log.note(t % 3 ? OVER_RATE : LOOP, () => `h:${t}`, t);
    if (line) lines.push(line);
  }
  assertEquals(lines.length, 3);
  assertEquals(
    lines[1],
    "dropped 1000 datagrams in 1.0 s: 333 from loop sources, 667 over --rate (last from h:1000)",
  );
  assertEquals([log.loop, log.rate], [1000, 2000]);
});

Deno.test("udpEcho() rate: one address over the rate is dropped, counted, logged once", async () => {
  const lines: string[] = [];
  await using server = udpEcho({
    hostname: "127.0.0.1",
    engine: "deno",
    rate: 3,
    logger: { enabled: true, log: (l) => void lines.push(l) },
  });
  using c = bindUdp({ hostname: "127.0.0.1" });
  for (let i = 0; i < 5; i++) {
    await c.send(new Uint8Array([i]), server.addr);
  }
  const got: number[] = [];
  for (let i = 0; i < 3; i++) got.push((await c.receive())!.data[0]!);
  for (let i = 0; i < 100 && server.dropped.rate < 2; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assertEquals(got, [0, 1, 2]);
  assertEquals(server.echoed, 3);
  assertEquals(server.dropped, { loop: 0, rate: 2 });
  assertEquals(server.sources, 1);
  assertEquals(lines, [
    `dropped a datagram from 127.0.0.1:${c.addr.port}: over --rate`,
  ]);
});

Deno.test("udpEcho() refuses a bad rate and leaves nothing open", () => {
  assertThrows(() => udpEcho({ rate: 0 }), RangeError, "Cannot limit");
});

Deno.test("cli: echo --rate: values, usage errors, and the counts on shutdown", async () => {
  for (
    const [args, message] of [
      [["echo", "--rate", "5", "7"], "--rate applies to -u"],
      [["echo", "-u", "--rate", "0", "7"], "invalid --rate value: 0"],
      [["echo", "-u", "--rate", "5/m", "7"], "invalid --rate value: 5/m"],
      [["echo", "-u", "--rate=-1", "7"], "invalid --rate value"],
      [["echo", "-u", "--rate", "2000000000", "7"], "invalid --rate value"],
    ] as const
  ) {
    const r = await runCli([...args]);
    assertEquals(r.code, 2, r.stderr);
    assertOk(r.stderr.includes(message), r.stderr);
  }
  for (
    const [rate, line] of [
      ["2/s", "answering at most 2 datagrams a second per source address"],
      ["off", "no rate limit per source (--rate off)"],
    ]
  ) {
    await using server = await startServer([
      "echo",
      "-u",
      "--rate",
      rate!,
      "127.0.0.1",
      "0",
    ]);
    await server.waitForStderr(new RegExp(line!.replace(/[()]/g, "\\$&")));
    using c = bindUdp({ hostname: "127.0.0.1" });
    const to: Deno.NetAddr = {
      transport: "udp",
      hostname: "127.0.0.1",
      port: server.port,
    };
    for (let i = 0; i < 4; i++) await c.send(new Uint8Array([i]), to);
    const expected = rate === "off" ? 4 : 2;
    for (let i = 0; i < expected; i++) {
      await within(c.receive(), `echo ${i + 1} of ${expected}`, 10_000);
    }
    // A datagram from another address (its own --rate bucket) is answered
    // only after the four before it in the socket's queue were judged, so
    // its echo means the counts are final.
    using marker = bindUdp({ hostname: "127.0.0.2" });
    await marker.send(new Uint8Array([9]), to);
    await within(marker.receive(), "the marker's echo", 10_000);
    server.kill("SIGTERM");
    const out = await server.output;
    assertEquals(out.code, 0);
    assertOk(
      out.stderr.includes(
        `shutting down: ${expected + 1} datagrams echoed, ${
          4 - expected
        } dropped (0 from loop sources, ${4 - expected} over --rate)`,
      ),
      out.stderr,
    );
  }
});
