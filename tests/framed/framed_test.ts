/**
 * Library tests for the framed stream modes: FramedInput, FrameWriter,
 * SharedOutput, receiveFrames, framedListen and framed UDP, over real
 * loopback sockets where a socket is involved.
 */
import { assertEquals, assertOk, assertRejects } from "../../lib/_assert.ts";
import type { Reader, Writer } from "../../lib/copy.ts";
import {
  encodeFrame,
  encodeJsonHeaderFrame,
  FrameError,
  OversizeFrameError,
  PrefixRangeError,
  TruncatedFrameError,
} from "../../lib/frame/mod.ts";
import type { FramingOptions } from "../../lib/framed/options.ts";
import { decodeOneFrame, FramedDecoder } from "../../lib/framed/decoder.ts";
import { framedListen } from "../../lib/framed/listen.ts";
import { FrameWriter, SharedOutput } from "../../lib/framed/output.ts";
import { receiveFrames } from "../../lib/framed/receive.ts";
import { FramedInput, sendFrames } from "../../lib/framed/send.ts";
import { framedUdpClient, framedUdpListen } from "../../lib/framed/udp.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import { concat } from "../_helpers.ts";

const te = new TextEncoder();
const td = new TextDecoder();

/** A Reader over fixed chunks: one chunk per read (split if `p` is smaller). */
function chunksReader(chunks: Uint8Array[]): Reader & { reads: number } {
  const queue = chunks.map((c) => c.slice());
  const r = {
    reads: 0,
    read(p: Uint8Array): Promise<number | null> {
      r.reads++;
      const c = queue.shift();
      if (!c) return Promise.resolve(null);
      const n = Math.min(p.length, c.length);
      p.set(c.subarray(0, n));
      if (n < c.length) queue.unshift(c.subarray(n));
      return Promise.resolve(n);
    },
  };
  return r;
}

/** A Writer that records every write call. */
function recorder(): Writer & { writes: Uint8Array[]; bytes(): Uint8Array } {
  const writes: Uint8Array[] = [];
  return {
    writes,
    write(p: Uint8Array) {
      writes.push(p.slice());
      return Promise.resolve(p.length);
    },
    bytes: () => concat(writes),
  };
}

async function drain(r: Reader, size = 1 << 16): Promise<Uint8Array> {
  const out = recorder();
  const buf = new Uint8Array(size);
  let n: number | null;
  while ((n = await r.read(buf)) !== null) await out.write(buf.subarray(0, n));
  return out.bytes();
}

function decodeAll(wire: Uint8Array, options: FramingOptions): string[] {
  const dec = new FramedDecoder(options);
  dec.push(wire);
  const got: string[] = [];
  for (let p = dec.next(); p !== null; p = dec.next()) got.push(td.decode(p));
  dec.end();
  return got;
}

const FORMATS: FramingOptions[] = [
  { format: "u16be" },
  { format: "u32be" },
  { format: "u32le" },
  { format: "u64be" },
  { format: "varint" },
  { format: "json" },
  { format: "u32le", seedCompat: true },
  { format: "json", headerFormat: "u32le", seedCompat: true },
];

Deno.test("FramedInput frames every line (empty ones and an unterminated last one) in every format", async () => {
  const text = "alpha\n\nβeta gamma\n" + "x".repeat(70000) + "\nlast";
  const lines = text.split("\n");
  for (const framing of FORMATS) {
    if (framing.format === "u16be") continue; // 70000 > 65535, tested below
    // Cut the input at awkward places: inside lines, inside a multibyte char.
    const bytes = te.encode(text);
    const cuts = [
      bytes.subarray(0, 3),
      bytes.subarray(3, 9),
      bytes.subarray(9, 40000),
      bytes.subarray(40000),
    ];
    const wire = await drain(
      new FramedInput(chunksReader(cuts), framing),
      4096,
    );
    assertEquals(decodeAll(wire, framing), lines, JSON.stringify(framing));
  }
});

Deno.test('FramedInput json frames carry {"total_size": n} then the line', async () => {
  const wire = await drain(
    new FramedInput(chunksReader([te.encode("hi\n")]), {
      format: "json",
      headerFormat: "u32le",
    }),
  );
  assertEquals(
    wire,
    new Uint8Array([
      ...encodeJsonHeaderFrame({ total_size: 2 }, te.encode("hi"), {
        format: "u32le",
      }),
    ]),
  );
});

Deno.test("FramedInput split chunk makes one frame per read, newlines kept", async () => {
  const input = chunksReader([te.encode("a\nb"), te.encode("\n")]);
  const wire = await drain(
    new FramedInput(input, { format: "u16be", split: "chunk" }),
  );
  assertEquals(wire.toHex(), "0003610a62" + "00010a");
});

Deno.test("FramedInput packs many ready lines into one read", async () => {
  const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}`);
  const input = chunksReader([te.encode(lines.join("\n") + "\n")]);
  const framed = new FramedInput(input, { format: "u32be" });
  const buf = new Uint8Array(256 * 1024);
  const n = await framed.read(buf);
  assertEquals(framed.frames, 5000, "all 5000 frames in the first read");
  assertEquals(decodeAll(buf.subarray(0, n!), {}), lines);
  assertEquals(await framed.read(buf), null);
});

Deno.test("FramedInput returns what it has as soon as the input would block", async () => {
  const more = Promise.withResolvers<void>();
  let step = 0;
  const input: Reader = {
    async read(p) {
      step++;
      if (step === 1) {
        p.set(te.encode("one\ntwo\n"));
        return 8;
      }
      if (step === 2) {
        await more.promise; // a person who has not typed the next line yet
        p.set(te.encode("three\n"));
        return 6;
      }
      return null;
    },
  };
  const framed = new FramedInput(input, { format: "varint" });
  const buf = new Uint8Array(1024);
  const first = await framed.read(buf);
  assertEquals(decodeAll(buf.slice(0, first!), { format: "varint" }), [
    "one",
    "two",
  ]);
  more.resolve();
  const second = await framed.read(buf);
  assertEquals(decodeAll(buf.slice(0, second!), { format: "varint" }), [
    "three",
  ]);
  assertEquals(await framed.read(buf), null);
});

Deno.test("FramedInput splits a frame larger than the caller's buffer across reads", async () => {
  const big = "z".repeat(10000);
  const wire = await drain(
    new FramedInput(chunksReader([te.encode(`a\n${big}\nb\n`)]), {}),
    1000,
  );
  assertEquals(decodeAll(wire, {}), ["a", big, "b"]);
});

Deno.test("FramedInput refuses an oversize line after delivering the frames before it", async () => {
  const input = chunksReader([te.encode("ok\n" + "y".repeat(100) + "\n")]);
  const framed = new FramedInput(input, { maxFrameSize: 50 });
  const buf = new Uint8Array(4096);
  const n = await framed.read(buf);
  assertEquals(decodeAll(buf.subarray(0, n!), {}), ["ok"]);
  const err = await assertRejects(
    () => framed.read(buf),
    OversizeFrameError,
    "a line of more than 50 bytes exceeds the frame limit of 50 bytes",
  );
  assertOk(!err.message.includes("UDP"), err.message);
  // u16be cannot say more than 65535 whatever maxFrameSize says.
  await assertRejects(
    () =>
      drain(
        new FramedInput(chunksReader([te.encode("q".repeat(70000))]), {
          format: "u16be",
        }),
        1 << 20,
      ),
    OversizeFrameError,
    "frame limit of 65535 bytes",
  );
  // In chunk mode reads are capped at the limit instead: no error.
  const chunked = await drain(
    new FramedInput(chunksReader([te.encode("q".repeat(70000))]), {
      format: "u16be",
      split: "chunk",
    }),
    1 << 20,
  );
  assertEquals(
    decodeAll(chunked, { format: "u16be" }).map((c) => c.length),
    [65535, 4465],
  );
});

Deno.test("FramedInput with batch: false gives exactly one frame per read", async () => {
  const framed = new FramedInput(chunksReader([te.encode("a\nbb\nccc\n")]), {
    format: "u16be",
    batch: false,
  });
  const buf = new Uint8Array(100);
  const sizes: number[] = [];
  let n: number | null;
  while ((n = await framed.read(buf)) !== null) sizes.push(n);
  assertEquals(sizes, [3, 4, 5]);
  const small = new FramedInput(chunksReader([te.encode("abcdef\n")]), {
    batch: false,
  });
  await assertRejects(
    () => small.read(new Uint8Array(8)),
    OversizeFrameError,
    "does not fit in one datagram of at most 8 bytes",
  );
});

Deno.test("sendFrames to receiveFrames round-trips random lines in every format", async () => {
  for (const framing of FORMATS) {
    const lines = Array.from(
      { length: 300 },
      (_, i) =>
        i % 7 === 0 ? "" : crypto.getRandomValues(new Uint8Array(i % 50))
          .toBase64(),
    );
    const out = recorder();
    const sent = await sendFrames(
      chunksReader([te.encode(lines.join("\n"))]),
      out,
      framing,
    );
    assertEquals(sent.frames, 300);
    const text = recorder();
    const got = await receiveFrames(chunksReader([out.bytes()]), text, {
      ...framing,
      bufferSize: 1024,
    });
    assertEquals(td.decode(text.bytes()), lines.join("\n") + "\n");
    assertEquals(got.frames, 300);
  }
});

Deno.test("FrameWriter coalesces 10000 64-byte frames into a handful of writes", async () => {
  const out = recorder();
  const w = new FrameWriter(out, { mode: "raw" });
  const payload = new Uint8Array(64).fill(7);
  for (let i = 0; i < 10000; i++) {
    const wait = w.add(payload);
    if (wait) await wait;
  }
  await w.flush();
  assertEquals(out.bytes().length, 640000);
  // 256 KiB buffer: 640000 bytes need 3 writes, never one per frame.
  assertOk(out.writes.length <= 3, `${out.writes.length} writes`);
});

Deno.test("FrameWriter writes a record larger than its buffer whole, after what was pending", async () => {
  const out = recorder();
  const w = new FrameWriter(out, { mode: "lines", bufferSize: 16 });
  await w.add(te.encode("ab"));
  await w.add(new Uint8Array(40).fill(0x41));
  await w.add(te.encode("cd"));
  await w.flush();
  assertEquals(td.decode(out.bytes()), `ab\n${"A".repeat(40)}\ncd\n`);
  const hex = recorder();
  const h = new FrameWriter(hex, { mode: "hex", bufferSize: 16 });
  await h.add(new Uint8Array(20).fill(0xab));
  await h.flush();
  assertEquals(td.decode(hex.bytes()), "ab".repeat(20) + "\n");
});

Deno.test("SharedOutput keeps units whole and reports a failed write to later writers", async () => {
  let text = "";
  const slow: Writer = {
    async write(p) {
      await new Promise((r) => setTimeout(r, 0));
      text += td.decode(p.subarray(0, 2));
      return Math.min(2, p.length);
    },
  };
  const shared = new SharedOutput(slow);
  await Promise.all(
    ["aaaa\n", "bbbbbb\n", "cc\n"].map((s) => shared.write([te.encode(s)])),
  );
  assertEquals(text, "aaaa\nbbbbbb\ncc\n");
  const broken = new SharedOutput({
    write: () => Promise.reject(new Deno.errors.BrokenPipe("gone")),
  });
  await assertRejects(
    () => broken.write([te.encode("x")]),
    Deno.errors.BrokenPipe,
  );
  await assertRejects(
    () => broken.write([te.encode("y")]),
    Deno.errors.BrokenPipe,
  );
  assertOk(broken.failure instanceof Deno.errors.BrokenPipe);
});

/** Starts a loopback listener; `serve` gets the first connection. */
async function withPeer(
  send: (conn: Deno.Conn) => Promise<void>,
  receive: (conn: Deno.TcpConn) => Promise<void>,
): Promise<void> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const server = await accepted;
  try {
    await Promise.all([
      send(client).finally(() => client.close()),
      receive(server),
    ]);
  } finally {
    try {
      server.close();
    } catch { /* closed */ }
  }
}

Deno.test("receiveFrames separates many small frames that arrive in a few TCP reads", async () => {
  const messages = Array.from({ length: 20000 }, (_, i) => `message ${i}`);
  let reads = 0;
  const out = recorder();
  await withPeer(
    async (conn) => {
      // One write per frame, back to back: the kernel merges them.
      for (const m of messages) {
        await conn.write(encodeFrame(te.encode(m), { format: "u32le" }));
      }
    },
    async (conn) => {
      const r = await receiveFrames(conn, out, {
        format: "u32le",
        seedCompat: true,
        onRead: () => reads++,
      });
      assertEquals(r.frames, messages.length);
    },
  );
  assertEquals(td.decode(out.bytes()), messages.join("\n") + "\n");
  assertOk(reads < messages.length / 10, `${reads} reads for 20000 frames`);
  assertOk(
    out.writes.length <= reads,
    `${out.writes.length} writes, ${reads} reads`,
  );
});

Deno.test("receiveFrames fails on a truncated last frame, having written only the whole frames", async () => {
  const out = recorder();
  await withPeer(
    async (conn) => {
      await conn.write(
        new Uint8Array([
          ...encodeFrame(te.encode("good")),
          ...encodeFrame(te.encode("cut short")).subarray(0, 7),
        ]),
      );
    },
    async (conn) => {
      await assertRejects(
        () => receiveFrames(conn, out, { mode: "json" }),
        TruncatedFrameError,
        "cannot decode frame at byte 8: expected a payload of 9 bytes, got 3 bytes then end of input",
      );
    },
  );
  assertEquals(td.decode(out.bytes()), '{"len":4,"data":"Z29vZA=="}\n');
});

Deno.test("receiveFrames refuses an oversize length before reading on; nothing after it is written", async () => {
  const out = recorder();
  const wire = new Uint8Array([
    ...encodeFrame(te.encode("a")),
    0xff,
    0xff,
    0xff,
    0xff,
    ...encodeFrame(te.encode("never")),
  ]);
  await assertRejects(
    () => receiveFrames(chunksReader([wire]), out),
    OversizeFrameError,
    "at byte 5: expected a frame length of at most 16777216, got 4294967295",
  );
  assertEquals(td.decode(out.bytes()), "a\n");
  await assertRejects(
    () =>
      receiveFrames(
        chunksReader([new Uint8Array([0, 0, 0, 0x80])]),
        recorder(),
        { format: "u32le", seedCompat: true },
      ),
    PrefixRangeError,
    "at byte 0",
  );
});

Deno.test("receiveFrames writes seed JSON-header frames with their headers", async () => {
  const body = te.encode("total 0\n");
  const header = { filename: "ls", md5: "xxfdxxx", total_size: body.length };
  const wire = encodeJsonHeaderFrame(header, body, { format: "u32le" });
  const out = recorder();
  await receiveFrames(chunksReader([wire, wire]), out, {
    format: "json",
    headerFormat: "u32le",
    seedCompat: true,
    mode: "json",
  });
  const records = td.decode(out.bytes()).trimEnd().split("\n").map((l) =>
    JSON.parse(l)
  );
  assertEquals(records.length, 2);
  assertEquals(records[0], { len: 8, data: body.toBase64(), header });
});

Deno.test("framedListen -k drops a garbage client and keeps frames of good clients whole", async () => {
  const out = recorder();
  const ac = new AbortController();
  const dropped: string[] = [];
  const { promise: bound, resolve } = Promise.withResolvers<Deno.Addr>();
  const run = framedListen({ hostname: "127.0.0.1", port: 0 }, {
    output: out,
    keep: true,
    signal: ac.signal,
    bufferSize: 4096,
    onListening: resolve,
    onClientError: (err) => dropped.push((err as Error).message),
  });
  const port = ((await bound) as Deno.NetAddr).port;
  const a = "A".repeat(3000);
  const b = "B".repeat(5000);
  const client = async (payload: string, n: number) => {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const frame = encodeFrame(te.encode(payload));
    for (let i = 0; i < n; i++) await conn.write(frame);
  };
  const garbage = (async () => {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new Uint8Array([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]));
    await conn.read(new Uint8Array(1)); // the server closes it
  })();
  await Promise.all([client(a, 200), client(b, 200), garbage]);
  // Let the handlers finish writing what they read.
  const deadline = Date.now() + 5000;
  while (out.bytes().length < 200 * 3001 + 200 * 5001) {
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  ac.abort();
  const r = await run;
  assertEquals(dropped.length, 1);
  assertOk(dropped[0]!.includes("expected a frame length of at most"));
  const lines = td.decode(out.bytes()).split("\n");
  assertEquals(lines.pop(), "");
  assertEquals(lines.filter((l) => l === a).length, 200);
  assertEquals(lines.filter((l) => l === b).length, 200);
  assertEquals(lines.length, 400, "no line is a mix of two clients");
  assertEquals([r.connections, r.dropped, r.frames], [3, 1, 400]);
});

Deno.test("framedListen single mode throws the client's FrameError", async () => {
  const { promise: bound, resolve } = Promise.withResolvers<Deno.Addr>();
  const out = recorder();
  const run = framedListen({ hostname: "127.0.0.1", port: 0 }, {
    output: out,
    format: "varint",
    onListening: resolve,
  });
  const port = ((await bound) as Deno.NetAddr).port;
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(Uint8Array.fromHex("026869" + "05"));
  }
  await assertRejects(() => run, TruncatedFrameError, "at byte 3");
  assertEquals(td.decode(out.bytes()), "hi\n");
});

Deno.test("decodeOneFrame refuses trailing bytes, truncation and empty datagrams", () => {
  assertEquals(
    decodeOneFrame(
      encodeJsonHeaderFrame({ total_size: 1, k: "v" }, new Uint8Array([9])),
      { format: "json" },
    ),
    { payload: new Uint8Array([9]), header: { total_size: 1, k: "v" } },
  );
  for (
    const [hex, cls, text] of [
      ["00016162", FrameError, "expected the end of the datagram"],
      ["000361", TruncatedFrameError, "expected a payload of 3 bytes"],
      ["", FrameError, "an empty datagram"],
      ["00", TruncatedFrameError, "prefix"],
    ] as const
  ) {
    let caught: unknown;
    try {
      decodeOneFrame(Uint8Array.fromHex(hex), { format: "u16be" });
    } catch (err) {
      caught = err;
    }
    assertOk(caught instanceof cls, `${hex}: ${caught}`);
    assertOk((caught as Error).message.includes(text), `${hex}: ${caught}`);
  }
});

Deno.test("framedUdpClient sends one framed datagram per line; framedUdpListen skips malformed ones", async () => {
  const ac = new AbortController();
  const out = recorder();
  const bad: string[] = [];
  const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const run = framedUdpListen({
    hostname: "127.0.0.1",
    format: "u32be",
    mode: "hex",
    output: out,
    signal: ac.signal,
    onListening: resolve,
    onMalformed: (err, from) => bad.push(`${from.port}: ${err.name}`),
  });
  const addr = await bound;
  using peer = bindUdp({ hostname: "127.0.0.1" });
  await peer.send(Uint8Array.fromHex("0000000a0102"), addr); // truncated
  await peer.send(Uint8Array.fromHex("000000010102"), addr); // trailing byte
  await peer.send(Uint8Array.fromHex("ffffffff"), addr); // oversize
  const r = await framedUdpClient("127.0.0.1", addr.port, {
    input: chunksReader([te.encode("one\n\nthree")]),
    output: recorder(),
    format: "u32be",
    wait: 0,
  });
  assertEquals([r.frames, r.sent], [3, 3]);
  const deadline = Date.now() + 5000;
  while (td.decode(out.bytes()).split("\n").length < 4) {
    if (Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 10));
  }
  ac.abort();
  const result = await run;
  assertEquals(
    td.decode(out.bytes()),
    `${te.encode("one").toHex()}\n\n${te.encode("three").toHex()}\n`,
  );
  assertEquals(bad, [
    `${peer.addr.port}: TruncatedFrameError`,
    `${peer.addr.port}: FrameError`,
    `${peer.addr.port}: OversizeFrameError`,
  ]);
  assertEquals([result.datagrams, result.frames, result.malformed], [6, 3, 3]);
});
