import {
  decodePrefix,
  encodeFrame,
  encodePrefix,
  maxPrefixValue,
  OversizeFrameError,
  PREFIX_FORMATS,
  prefixLength,
  PrefixRangeError,
  writePrefix,
} from "../../lib/frame/mod.ts";
import type { PrefixFormat } from "../../lib/frame/format.ts";
import { assertEquals, assertThrows } from "../../lib/_assert.ts";

const hi = new TextEncoder().encode("hi");

Deno.test("encodeFrame() writes payload 'hi' byte by byte in every format", () => {
  const expected: Record<PrefixFormat, string> = {
    u16be: "00026869",
    u32be: "000000026869",
    u32le: "020000006869",
    u64be: "00000000000000026869",
    varint: "026869",
  };
  for (const format of PREFIX_FORMATS) {
    assertEquals(encodeFrame(hi, { format }).toHex(), expected[format], format);
  }
});

Deno.test("encodeFrame() matches Python's struct.pack('i', n) for u32le", () => {
  // struct.pack('i', 1235) == b'\xd3\x04\x00\x00' in the seed tutorial.
  assertEquals(encodePrefix(1235, "u32le").toHex(), "d3040000");
});

Deno.test("encodeFrame() allocates one array holding prefix and payload", () => {
  const frame = encodeFrame(new Uint8Array(300), { format: "varint" });
  assertEquals(frame.length, 302);
  assertEquals(frame.buffer.byteLength, 302);
});

Deno.test("encodeFrame() refuses payloads above maxFrameSize or the format range", () => {
  assertThrows(
    () => encodeFrame(new Uint8Array(11), { maxFrameSize: 10 }),
    OversizeFrameError,
    "cannot encode frame: payload of 11 bytes exceeds maxFrameSize 10",
  );
  assertThrows(
    () => encodeFrame(new Uint8Array(65536), { format: "u16be" }),
    PrefixRangeError,
    "0 to 65535, got 65536",
  );
  assertEquals(
    encodeFrame(new Uint8Array(65535), { format: "u16be" }).length,
    65537,
  );
});

Deno.test("encodePrefix() refuses negative, fractional and out-of-range lengths", () => {
  for (const bad of [-1, 1.5, NaN, Infinity]) {
    assertThrows(() => encodePrefix(bad, "u32be"), PrefixRangeError);
  }
  assertThrows(() => encodePrefix(2 ** 32, "u32le"), PrefixRangeError);
  assertThrows(() => encodePrefix(2 ** 53, "u64be"), PrefixRangeError);
  assertThrows(() => encodePrefix(2 ** 53, "varint"), PrefixRangeError);
  assertEquals(encodePrefix(2 ** 32 - 1, "u32be").toHex(), "ffffffff");
});

Deno.test("encodePrefix() and decodePrefix() agree at the edges of every format", () => {
  for (const format of PREFIX_FORMATS) {
    const max = maxPrefixValue(format);
    for (
      const n of [
        0,
        1,
        127,
        128,
        255,
        256,
        16383,
        16384,
        65535,
        2 ** 31,
        2 ** 32 - 1,
        2 ** 32,
        2 ** 53 - 1,
      ]
    ) {
      if (n > max) continue;
      const bytes = encodePrefix(n, format);
      assertEquals(bytes.length, prefixLength(n, format));
      assertEquals(decodePrefix(bytes, format), {
        length: n,
        size: bytes.length,
      });
      // One byte short is incomplete, never an error.
      assertEquals(
        decodePrefix(bytes.subarray(0, bytes.length - 1), format),
        null,
      );
    }
  }
});

Deno.test("varint prefixes: LEB128 edge cases", () => {
  assertEquals(encodePrefix(0, "varint").toHex(), "00");
  assertEquals(encodePrefix(127, "varint").toHex(), "7f");
  assertEquals(encodePrefix(128, "varint").toHex(), "8001");
  assertEquals(encodePrefix(300, "varint").toHex(), "ac02");
  assertEquals(encodePrefix(16384, "varint").toHex(), "808001");
  assertEquals(encodePrefix(2 ** 53 - 1, "varint").toHex(), "ffffffffffffff0f");
  // Non-minimal encodings are accepted (0 written in two bytes).
  assertEquals(decodePrefix(Uint8Array.fromHex("8000"), "varint"), {
    length: 0,
    size: 2,
  });
  // 2^53 needs the 8th byte's value 0x10: beyond the safe range.
  assertThrows(
    () =>
      decodePrefix(Uint8Array.fromHex("8080808080808010"), "varint", {
        offset: 9,
      }),
    PrefixRangeError,
    "cannot decode frame at byte 9: expected a varint length of at most 2^53 - 1",
  );
  // A continuation bit on the 8th byte: longer than allowed.
  assertThrows(
    () => decodePrefix(Uint8Array.fromHex("ffffffffffffffff01"), "varint"),
    PrefixRangeError,
    "expected a varint prefix of at most 8 bytes",
  );
  // ...even before a 9th byte arrives.
  assertThrows(
    () => decodePrefix(Uint8Array.fromHex("8080808080808080"), "varint"),
    PrefixRangeError,
  );
});

Deno.test("u64be prefixes beyond 2^53 - 1 are refused", () => {
  assertEquals(decodePrefix(Uint8Array.fromHex("001fffffffffffff"), "u64be"), {
    length: 2 ** 53 - 1,
    size: 8,
  });
  const err = assertThrows(
    () =>
      decodePrefix(Uint8Array.fromHex("0020000000000000"), "u64be", {
        offset: 42,
      }),
    PrefixRangeError,
    "cannot decode frame at byte 42: expected a u64be length of at most 2^53 - 1, got 0x0020000000000000",
  ) as PrefixRangeError;
  assertEquals(err.offset, 42);
  assertThrows(
    () => decodePrefix(Uint8Array.fromHex("ffffffffffffffff"), "u64be"),
    PrefixRangeError,
  );
});

Deno.test("decodePrefix() with seedCompat refuses 0x80000000 and above", () => {
  assertEquals(
    decodePrefix(Uint8Array.fromHex("ffffff7f"), "u32le", { seedCompat: true }),
    {
      length: 0x7fffffff,
      size: 4,
    },
  );
  assertThrows(
    () =>
      decodePrefix(Uint8Array.fromHex("00000080"), "u32le", {
        seedCompat: true,
      }),
    PrefixRangeError,
    "got 2147483648 (negative for Python's struct 'i')",
  );
  assertEquals(
    decodePrefix(Uint8Array.fromHex("00000080"), "u32le")?.length,
    0x80000000,
  );
});

Deno.test("writePrefix() writes at an offset and refuses a short buffer", () => {
  const buf = new Uint8Array(5).fill(0xee);
  assertEquals(writePrefix(buf, 1, 0x01020304, "u32be"), 4);
  assertEquals(buf.toHex(), "ee01020304");
  assertThrows(() => writePrefix(buf, 2, 1, "u32be"), RangeError);
});
