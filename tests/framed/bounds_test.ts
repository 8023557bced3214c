/**
 * What a framed listener holds per client: the connection cap of
 * `-l -k --frame` (`maxConns`, `--max-conns`), read and output buffers
 * that start small and grow with the bytes that arrive, and decoders that
 * gather a split payload in an array sized by what came, not by what the
 * prefix announced.
 */
import { assertEquals, assertOk, assertThrows } from "../../lib/_assert.ts";
import type { Reader, Writer } from "../../lib/copy.ts";
import {
  encodeFrame,
  encodeJsonHeaderFrame,
  FrameDecoder,
  JsonFrameDecoder,
} from "../../lib/frame/mod.ts";
import { DEFAULT_MAX_CONNS, framedListen } from "../../lib/framed/listen.ts";
import { FrameWriter } from "../../lib/framed/output.ts";
import {
  INITIAL_BUFFER_SIZE,
  receiveFrames,
} from "../../lib/framed/receive.ts";
import { concat, randomBytes, runCli, startServer } from "../_helpers.ts";

function sink(): Writer & { bytes(): Uint8Array } {
  const parts: Uint8Array[] = [];
  return {
    write(p) {
      parts.push(p.slice());
      return Promise.resolve(p.length);
    },
    bytes: () => concat(parts),
  };
}

/** A Reader over `wire` that fills every buffer it is given, recording their sizes. */
function fillingReader(wire: Uint8Array): Reader & { sizes: number[] } {
  let at = 0;
  const sizes: number[] = [];
  return {
    sizes,
    read(p) {
      sizes.push(p.length);
      if (at >= wire.length) return Promise.resolve(null);
      const n = Math.min(p.length, wire.length - at);
      p.set(wire.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("receiveFrames() starts with a 4 KiB read buffer, doubles it on full reads up to bufferSize, and decodes the same", async () => {
  const payloads = Array.from(
    { length: 40 },
    (_, i) => randomBytes((i * 7919) % 100_000),
  );
  const wire = concat(payloads.map((p) => encodeFrame(p)));
  const input = fillingReader(wire);
  const out = sink();
  const r = await receiveFrames(input, out, {
    mode: "raw",
    bufferSize: 64 * 1024,
  });
  assertEquals(r.frames, payloads.length);
  assertEquals(out.bytes(), concat(payloads));
  assertEquals(input.sizes[0], INITIAL_BUFFER_SIZE);
  assertEquals(input.sizes.slice(0, 6), [
    4096,
    8192,
    16384,
    32768,
    65536,
    65536,
  ]);
  assertEquals(Math.max(...input.sizes), 64 * 1024);

  // A client that sends a few bytes never gets more than the first buffer.
  const small = fillingReader(encodeFrame(new Uint8Array([1])));
  await receiveFrames(small, sink(), { mode: "raw" });
  assertEquals(small.sizes, [4096, 4096]);
});

Deno.test("FrameWriter grows from initialSize only when one flush's records do not fit", async () => {
  const out = sink();
  const w = new FrameWriter(out, {
    mode: "hex",
    bufferSize: 1024,
    initialSize: 16,
  });
  assertEquals(w.capacity, 16);
  const payloads = Array.from({ length: 50 }, (_, i) => randomBytes(i));
  for (const p of payloads) await w.add(p);
  await w.flush();
  assertEquals(w.capacity, 1024);
  assertEquals(
    new TextDecoder().decode(out.bytes()),
    payloads.map((p) => p.toHex() + "\n").join(""),
  );
  // Small records flushed one by one never grow it.
  const small = new FrameWriter(sink(), { initialSize: 64, bufferSize: 4096 });
  for (let i = 0; i < 100; i++) {
    await small.add(new Uint8Array(10));
    await small.flush();
  }
  assertEquals(small.capacity, 64);
  assertThrows(
    () => new FrameWriter(sink(), { initialSize: 8 }),
    TypeError,
    "initialSize",
  );
});

Deno.test("FrameDecoder and JsonFrameDecoder gather a payload in an array sized by the bytes that came", () => {
  const MiB = 1024 * 1024;
  // A prefix announcing 16 MiB - 1 and its first byte (gathered in a
  // 16 KiB array at first: see lib/frame/_gather.ts).
  const dec = new FrameDecoder({ maxFrameSize: 16 * MiB });
  const body = randomBytes(16 * MiB - 1);
  const wire = encodeFrame(body);
  dec.push(wire.subarray(0, 5));
  assertEquals(dec.next(), null);
  // The whole payload, fed 64 KiB at a time, comes out whole and exact.
  let got: Uint8Array | null = null;
  for (let at = 5; at < wire.length; at += 65536) {
    dec.push(wire.subarray(at, at + 65536));
    got = dec.next() ?? got;
  }
  assertEquals(got!.length, body.length);
  assertEquals(got!.buffer.byteLength, body.length);
  assertOk(got!.every((b, i) => b === body[i]));

  const json = new JsonFrameDecoder();
  const jbody = randomBytes(300_000);
  const jwire = encodeJsonHeaderFrame({ total_size: jbody.length }, jbody);
  for (let at = 0; at < jwire.length; at += 1000) {
    json.push(jwire.subarray(at, at + 1000));
    const f = json.next();
    if (f) {
      assertEquals(f.body, jbody);
      assertEquals(f.body.buffer.byteLength, jbody.length);
    }
  }
});

Deno.test("framedListen() keep: a client beyond maxConns is closed unread and counted", async () => {
  const ac = new AbortController();
  const out = sink();
  const { promise: bound, resolve } = Promise.withResolvers<Deno.Addr>();
  const lines: string[] = [];
  const run = framedListen({ hostname: "127.0.0.1", port: 0 }, {
    output: out,
    keep: true,
    maxConns: 2,
    signal: ac.signal,
    onListening: resolve,
    logger: { enabled: true, log: (l) => void lines.push(l) },
  });
  const port = ((await bound) as Deno.NetAddr).port;
  const held = [
    await Deno.connect({ hostname: "127.0.0.1", port }),
    await Deno.connect({ hostname: "127.0.0.1", port }),
  ];
  for (const [i, c] of held.entries()) {
    await c.write(encodeFrame(new TextEncoder().encode(`held ${i}`)));
  }
  while (!lines.some((l) => l.startsWith("connection from"))) {
    await new Promise((r) => setTimeout(r, 5));
  }
  while (lines.filter((l) => l.startsWith("connection from")).length < 2) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const third = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(16);
  // The server closes it at once: EOF (or a reset) without a byte.
  const eof = await third.read(buf).catch(() => null);
  third.close();
  assertEquals(eof, null);
  for (const c of held) c.close();
  while (lines.filter((l) => l.includes(" closed: ")).length < 2) {
    await new Promise((r) => setTimeout(r, 5));
  }
  ac.abort();
  const r = await run;
  assertEquals([r.connections, r.refused, r.frames], [2, 1, 2]);
  assertOk(
    lines.some((l) => / refused: 2 clients open \(--max-conns\)$/.test(l)),
    lines.join("\n"),
  );
  assertEquals(
    new TextDecoder().decode(out.bytes()).split("\n").sort(),
    ["", "held 0", "held 1"],
  );
  assertEquals(DEFAULT_MAX_CONNS, 256);
});

Deno.test("framedListen() refuses maxConns below 1 before listening", async () => {
  for (const maxConns of [0, -1, NaN]) {
    let err: unknown;
    try {
      await framedListen({ hostname: "127.0.0.1", port: 0 }, {
        output: sink(),
        keep: true,
        maxConns,
      });
    } catch (e) {
      err = e;
    }
    assertOk(err instanceof RangeError, String(err));
  }
});

Deno.test("cli: -l -k --frame --max-conns: usage errors and a refused client in the log", async () => {
  for (
    const args of [
      ["--max-conns", "5", "127.0.0.1", "7"],
      ["-l", "--max-conns", "5", "--frame", "u32be", "7"],
      ["-l", "-k", "-u", "--frame", "u32be", "--max-conns", "5", "7"],
    ]
  ) {
    const r = await runCli(args);
    assertEquals(r.code, 2, r.stderr);
    // (-l -k without --frame takes -m/--max-conns too: nc_compat_test.ts.)
    assertEquals(r.stderr, "denocat: -m/--max-conns needs -l -k (TCP)\n");
  }
  const bad = await runCli([
    "-l",
    "-k",
    "--frame",
    "u32be",
    "--max-conns",
    "0",
    "7",
  ]);
  assertEquals(bad.code, 2);
  assertOk(bad.stderr.includes("invalid --max-conns value: 0"), bad.stderr);

  await using server = await startServer([
    "-l",
    "-k",
    "--frame",
    "u32be",
    "--max-conns",
    "1",
    "127.0.0.1",
    "0",
  ]);
  using first = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.port,
  });
  await server.waitForStderr(/connection from/);
  using _second = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.port,
  });
  await server.waitForStderr(/refused: 1 clients open \(--max-conns\)/);
  await first.write(encodeFrame(new TextEncoder().encode("one")));
  await first.closeWrite();
  await server.waitForStderr(/closed: 1 frames/);
  server.kill("SIGTERM");
  const out = await server.output;
  assertEquals(out.text, "one\n");
});
