import {
  BufferedReader,
  encodeFrame,
  encodeJsonHeaderFrame,
  HeaderJsonError,
  OversizeFrameError,
  PrefixRangeError,
  TruncatedFrameError,
} from "../../lib/frame/mod.ts";
import { writeAll } from "../../lib/copy.ts";
import {
  assertEquals,
  assertOk,
  assertRejects,
  assertThrows,
} from "../../lib/_assert.ts";
import {
  concat,
  cut,
  memoryReader,
  withAllocationLimitAsync,
} from "./_util.ts";

Deno.test("BufferedReader.readExact() spans many small reads and reports truncation", async () => {
  const bytes = new Uint8Array(1000).map((_, i) => i & 0xff);
  const r = new BufferedReader(memoryReader(cut(bytes, [7])), {
    bufferSize: 64,
  });
  assertEquals(await r.readExact(3), bytes.subarray(0, 3));
  assertEquals(await r.readExact(900), bytes.subarray(3, 903));
  assertEquals(r.offset, 903);
  await assertRejects(
    () => r.readExact(98),
    TruncatedFrameError,
    "cannot decode frame at byte 903: expected 98 bytes, got 97 bytes then end of input",
  );
});

Deno.test("BufferedReader.readFrame() reads a large payload straight into its array", async () => {
  const payload = new Uint8Array(1 << 20).fill(3);
  const src = memoryReader([encodeFrame(payload)]);
  const r = new BufferedReader(src, { bufferSize: 1024 });
  assertEquals(await r.readFrame(), payload);
  // One read for the prefix and the start of the payload, one for the rest.
  assertEquals(src.reads, 2);
  assertEquals(await r.readFrame(), null);
});

Deno.test("BufferedReader.readFrame() reads ahead for many small frames", async () => {
  const frames = Array.from({ length: 100 }, (_, i) => new Uint8Array([i]));
  const src = memoryReader([
    concat(frames.map((f) => encodeFrame(f, { format: "varint" }))),
  ]);
  const r = new BufferedReader(src);
  for (const f of frames) assertEquals(await r.readFrame("varint"), f);
  assertEquals(await r.readFrame("varint"), null);
  assertEquals(src.reads, 2);
});

Deno.test("BufferedReader.readFrame() errors: truncated prefix, truncated payload, oversize, seed range", async () => {
  const two = concat([encodeFrame(new Uint8Array(2)), new Uint8Array([0, 0])]);
  const r1 = new BufferedReader(memoryReader([two]));
  assertEquals(await r1.readFrame(), new Uint8Array(2));
  await assertRejects(
    () => r1.readFrame(),
    TruncatedFrameError,
    "at byte 6: expected a u32be prefix of 4 bytes, got 2 bytes then end of input",
  );
  const r2 = new BufferedReader(
    memoryReader([encodeFrame(new Uint8Array(9)).subarray(0, 8)]),
  );
  await assertRejects(
    () => r2.readFrame(),
    TruncatedFrameError,
    "at byte 0: expected a payload of 9 bytes, got 4 bytes",
  );
  const r3 = new BufferedReader(memoryReader([Uint8Array.fromHex("fffffffe")]));
  await withAllocationLimitAsync(1024, async () => {
    await assertRejects(
      () => r3.readFrame(),
      OversizeFrameError,
      "expected a frame length of at most 16777216, got 4294967294",
    );
  });
  const r4 = new BufferedReader(memoryReader([Uint8Array.fromHex("00000080")]));
  await assertRejects(
    () => r4.readFrame("u32le", 1 << 30, { seedCompat: true }),
    PrefixRangeError,
    "at byte 0",
  );
});

Deno.test("BufferedReader.readJsonHeader() then readSome() streams the body", async () => {
  const body = new Uint8Array(5000).fill(9);
  const wire = concat([
    encodeJsonHeaderFrame({ name: "b", total_size: body.length }, body),
    encodeFrame(new Uint8Array([1])),
  ]);
  const r = new BufferedReader(memoryReader(cut(wire, [333])), {
    bufferSize: 256,
  });
  const header = await r.readJsonHeader();
  assertEquals(header, { name: "b", total_size: 5000 });
  let left = header!.total_size;
  const parts: Uint8Array[] = [];
  while (left > 0) {
    const chunk = await r.readSome(left);
    assertOk(chunk !== null && chunk.length <= 256);
    parts.push(chunk.slice());
    left -= chunk.length;
  }
  assertEquals(concat(parts), body);
  assertEquals(await r.readFrame(), new Uint8Array([1]));
  assertEquals(await r.readSome(), null);
});

Deno.test("BufferedReader.readJsonHeader() errors are typed; readJsonFrame() caps the body", async () => {
  const r = new BufferedReader(
    memoryReader([encodeFrame(new TextEncoder().encode("[]"))]),
  );
  await assertRejects(
    () => r.readJsonHeader(),
    HeaderJsonError,
    "expected a JSON object header, got an array",
  );
  const big = new BufferedReader(
    memoryReader([encodeJsonHeaderFrame({ total_size: 100 })]),
  );
  await assertRejects(
    () => big.readJsonFrame({ maxBodySize: 99 }),
    OversizeFrameError,
    "total_size of at most 99, got 100",
  );
  const short = new BufferedReader(
    memoryReader([encodeJsonHeaderFrame({ total_size: 3 }), new Uint8Array(2)]),
  );
  await assertRejects(
    () => short.readJsonFrame(),
    TruncatedFrameError,
    "expected a body of 3 bytes, got 2 bytes",
  );
  const hdr = new BufferedReader(
    memoryReader([new Uint8Array([0, 0, 0, 200])]),
  );
  await assertRejects(
    () => hdr.readJsonHeader({ maxHeaderSize: 199 }),
    OversizeFrameError,
    "header length of at most 199",
  );
});

Deno.test("BufferedReader.copyExact() copies buffered bytes then the source, and reports truncation", async () => {
  const bytes = new Uint8Array(10_000).map((_, i) => i % 251);
  const r = new BufferedReader(memoryReader(cut(bytes, [1000])), {
    bufferSize: 512,
  });
  assertEquals(await r.readExact(10), bytes.subarray(0, 10));
  const out: Uint8Array[] = [];
  await r.copyExact({
    write: (
      p,
    ) => (out.push(p.slice(0, 100)), Promise.resolve(Math.min(p.length, 100))),
  }, 9000);
  assertEquals(concat(out), bytes.subarray(10, 9010));
  await assertRejects(
    () => r.copyExact({ write: (p) => Promise.resolve(p.length) }, 991),
    TruncatedFrameError,
    "at byte 9010: expected 991 bytes, got 990 bytes then end of input",
  );
});

Deno.test("BufferedReader.readInto() fills the caller's array", async () => {
  const r = new BufferedReader(
    memoryReader([new Uint8Array([1, 2]), new Uint8Array([3, 4, 5])]),
  );
  const dst = new Uint8Array(4);
  await r.readInto(dst);
  assertEquals(dst, new Uint8Array([1, 2, 3, 4]));
  assertEquals(r.buffered, 1);
  assertOk(typeof r.reader.read === "function");
  assertThrows(
    () => new BufferedReader(r.reader, { bufferSize: 8 }),
    TypeError,
  );
});

Deno.test("writeAll() and BufferedReader carry frames over a real TCP loopback", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  using client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  using server = await accepted;
  const payloads = [
    new Uint8Array(0),
    new Uint8Array(70_000).fill(1),
    new TextEncoder().encode("done"),
  ];
  const body = new Uint8Array(300_000).fill(2);
  const sending = (async () => {
    for (const p of payloads) await writeAll(client, encodeFrame(p));
    await writeAll(client, encodeJsonHeaderFrame({ total_size: body.length }));
    await writeAll(client, body);
    await client.closeWrite();
  })();
  const r = new BufferedReader(server);
  for (const p of payloads) assertEquals(await r.readFrame(), p);
  const header = await r.readJsonHeader();
  let received = 0;
  await r.copyExact({
    write: (p) => {
      assertOk(p.every((b) => b === 2));
      received += p.length;
      return Promise.resolve(p.length);
    },
  }, header!.total_size);
  assertEquals(received, body.length);
  assertEquals(await r.readFrame(), null);
  await sending;
});
