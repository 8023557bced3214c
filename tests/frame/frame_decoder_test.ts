import {
  encodeFrame,
  FrameDecoder,
  FrameDecoderStream,
  FrameError,
  OversizeFrameError,
  PrefixRangeError,
  TruncatedFrameError,
} from "../../lib/frame/mod.ts";
import {
  assertEquals,
  assertOk,
  assertRejects,
  assertThrows,
} from "../../lib/_assert.ts";
import { DenocatError } from "../../lib/errors.ts";
import { concat } from "./_util.ts";

function drain(dec: FrameDecoder): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let p = dec.next(); p !== null; p = dec.next()) out.push(p);
  return out;
}

Deno.test("FrameDecoder.next() returns a view when a payload lies in one chunk", () => {
  const wire = concat([
    encodeFrame(new Uint8Array([1, 2])),
    encodeFrame(new Uint8Array([3])),
  ]);
  const dec = new FrameDecoder();
  dec.push(wire);
  const [a, b] = drain(dec);
  assertEquals(a, new Uint8Array([1, 2]));
  assertEquals(b, new Uint8Array([3]));
  assertOk(a!.buffer === wire.buffer && b!.buffer === wire.buffer);
  assertEquals(dec.offset, 11);
});

Deno.test("FrameDecoder.next() gathers a payload spread over chunks into one exact array", () => {
  const wire = encodeFrame(new Uint8Array(1000).fill(7));
  const dec = new FrameDecoder();
  dec.push(wire.subarray(0, 2));
  assertEquals(dec.next(), null);
  dec.push(wire.subarray(2, 500));
  dec.push(wire.subarray(500));
  const [p] = drain(dec);
  assertEquals(p!.length, 1000);
  assertEquals(p!.buffer.byteLength, 1000);
  assertOk(p!.every((b) => b === 7));
});

Deno.test("FrameDecoder.next() takes queued chunks pushed without draining", () => {
  const frames = [
    new Uint8Array([1]),
    new Uint8Array(0),
    new Uint8Array([2, 3]),
  ];
  const wire = concat(frames.map((f) => encodeFrame(f, { format: "varint" })));
  const dec = new FrameDecoder({ format: "varint" });
  for (const b of wire) dec.push(new Uint8Array([b]));
  dec.push(new Uint8Array(0));
  assertEquals(drain(dec), frames);
  dec.end();
});

Deno.test("FrameDecoder.next() throws OversizeFrameError at the frame's offset before the payload arrives", () => {
  const dec = new FrameDecoder({ maxFrameSize: 100 });
  dec.push(encodeFrame(new Uint8Array(5)));
  dec.push(encodeFrame(new Uint8Array(100)));
  dec.push(new Uint8Array([0, 0, 0, 101])); // only the prefix of a third frame
  assertEquals(dec.next()!.length, 5);
  assertEquals(dec.next()!.length, 100);
  const err = assertThrows(
    () => dec.next(),
    OversizeFrameError,
    "cannot decode frame at byte 113: expected a frame length of at most 100, got 101",
  ) as OversizeFrameError;
  assertEquals(err.offset, 113);
  assertOk(err instanceof FrameError && err instanceof DenocatError);
  assertEquals(err.exitCode, 1);
});

Deno.test("FrameDecoder is poisoned after an error", () => {
  const dec = new FrameDecoder({ maxFrameSize: 1 });
  dec.push(new Uint8Array([0, 0, 0, 2, 1, 1, 0, 0, 0, 0]));
  const err = assertThrows(() => dec.next(), OversizeFrameError);
  for (
    const call of [
      () => dec.next(),
      () => dec.end(),
      () => dec.push(new Uint8Array(1)),
    ]
  ) {
    try {
      call();
      assertOk(false, "no error");
    } catch (again) {
      assertOk(again === err);
    }
  }
});

Deno.test("FrameDecoder.end() throws TruncatedFrameError inside a prefix", () => {
  const dec = new FrameDecoder({ format: "u64be" });
  dec.push(encodeFrame(new Uint8Array(2), { format: "u64be" }));
  dec.push(new Uint8Array([0, 0, 0]));
  assertEquals(drain(dec).length, 1);
  const err = assertThrows(
    () => dec.end(),
    TruncatedFrameError,
    "cannot decode frame at byte 10: expected a u64be prefix of 8 bytes, got 3 bytes then end of input",
  ) as TruncatedFrameError;
  assertEquals(err.offset, 10);
  assertThrows(() => dec.next(), TruncatedFrameError);
});

Deno.test("FrameDecoder.end() throws TruncatedFrameError inside a payload", () => {
  const dec = new FrameDecoder();
  dec.push(encodeFrame(new Uint8Array(10)).subarray(0, 9));
  assertEquals(dec.next(), null);
  assertThrows(
    () => dec.end(),
    TruncatedFrameError,
    "cannot decode frame at byte 0: expected a payload of 10 bytes, got 5 bytes then end of input",
  );
});

Deno.test("FrameDecoder.end() before draining defers the check to next()", () => {
  const dec = new FrameDecoder({ format: "u16be" });
  dec.push(
    concat([
      encodeFrame(new Uint8Array([9]), { format: "u16be" }),
      new Uint8Array([0]),
    ]),
  );
  dec.end(); // a whole frame is still waiting
  assertEquals(dec.next(), new Uint8Array([9]));
  assertThrows(
    () => dec.next(),
    TruncatedFrameError,
    "at byte 3: expected a u16be prefix of 2 bytes, got 1 bytes",
  );
  assertThrows(() => dec.push(new Uint8Array(1)), TruncatedFrameError);
});

Deno.test("FrameDecoder.end() at a frame boundary is clean; push() after it is a TypeError", () => {
  const dec = new FrameDecoder();
  dec.push(encodeFrame(new Uint8Array(0)));
  assertEquals(dec.next(), new Uint8Array(0));
  dec.end();
  assertEquals(dec.next(), null);
  assertThrows(() => dec.push(new Uint8Array(1)), TypeError);
});

Deno.test("FrameDecoder with seedCompat refuses 0x80000000 as Python's 'i' would", () => {
  const dec = new FrameDecoder({ format: "u32le", seedCompat: true });
  dec.push(
    concat([
      encodeFrame(new Uint8Array([1]), { format: "u32le" }),
      Uint8Array.fromHex("00000080"),
    ]),
  );
  assertEquals(dec.next(), new Uint8Array([1]));
  const err = assertThrows(
    () => dec.next(),
    PrefixRangeError,
    "at byte 5",
  ) as PrefixRangeError;
  assertEquals(err.offset, 5);
  // Below 2^31 the value is a length like any other (here, too large).
  const ok = new FrameDecoder({ format: "u32le", seedCompat: true });
  ok.push(Uint8Array.fromHex("ffffff7f"));
  assertThrows(() => ok.next(), OversizeFrameError, "got 2147483647");
});

Deno.test("FrameDecoder refuses a u64be length beyond 2^53 split across chunks", () => {
  const dec = new FrameDecoder({ format: "u64be" });
  dec.push(Uint8Array.fromHex("0020"));
  assertEquals(dec.next(), null);
  dec.push(Uint8Array.fromHex("000000000000"));
  assertThrows(() => dec.next(), PrefixRangeError, "at byte 0");
});

Deno.test("FrameDecoder refuses an overlong varint split across chunks", () => {
  const dec = new FrameDecoder({ format: "varint" });
  dec.push(encodeFrame(new Uint8Array(0), { format: "varint" }));
  assertEquals(dec.next(), new Uint8Array(0));
  for (let i = 0; i < 7; i++) {
    dec.push(new Uint8Array([0x80]));
    assertEquals(dec.next(), null);
  }
  dec.push(new Uint8Array([0x80]));
  assertThrows(
    () => dec.next(),
    PrefixRangeError,
    "cannot decode frame at byte 1: expected a varint prefix of at most 8 bytes",
  );
});

Deno.test("FrameDecoder rejects invalid options", () => {
  assertThrows(() => new FrameDecoder({ maxFrameSize: -1 }), TypeError);
  assertThrows(() => new FrameDecoder({ maxFrameSize: Infinity }), TypeError);
  // deno-lint-ignore no-explicit-any
  assertThrows(() => new FrameDecoder({ format: "u24" as any }), TypeError);
});

Deno.test("FrameDecoderStream errors the stream on a truncated final frame", async () => {
  const wire = concat([
    encodeFrame(new Uint8Array([1])),
    encodeFrame(new Uint8Array([2, 3])),
  ]);
  const got: Uint8Array[] = [];
  await assertRejects(
    async () => {
      for await (
        const p of ReadableStream.from([wire.subarray(0, wire.length - 1)])
          .pipeThrough(new FrameDecoderStream())
      ) got.push(p);
    },
    TruncatedFrameError,
    "at byte 5",
  );
  assertEquals(got, [new Uint8Array([1])]);
});
