/**
 * Length prefixes and length-prefixed frames: `[prefix: payload length][payload]`.
 *
 * Five prefix formats are supported; see {@linkcode PrefixFormat}.
 *
 * @module
 */
import { OversizeFrameError, PrefixRangeError } from "./errors.ts";
import {
  fixedWidth,
  MAX_VARINT_BYTES,
  readFixed,
  seedRange,
  varintTooBig,
  varintTooLong,
} from "./_prefix_state.ts";

import type { PrefixFormat } from "./format.ts";

export { MAX_VARINT_BYTES };
export type { PrefixFormat };

/**
 * Every {@linkcode PrefixFormat}, in documentation order.
 *
 * @example Usage
 * ```ts
 * import { PREFIX_FORMATS } from "./prefix.ts";
 * import { assertOk } from "../_assert.ts";
 * assertOk(PREFIX_FORMATS.includes("varint"));
 * ```
 */
export const PREFIX_FORMATS: readonly PrefixFormat[] = Object.freeze([
  "u16be",
  "u32be",
  "u32le",
  "u64be",
  "varint",
]);

/**
 * Default largest payload a decoder accepts: 16 MiB.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_MAX_FRAME_SIZE } from "./prefix.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(DEFAULT_MAX_FRAME_SIZE, 16 * 1024 * 1024);
 * ```
 */
export const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;

/**
 * Returns the largest length a format can carry.
 *
 * @example Usage
 * ```ts
 * import { maxPrefixValue } from "./prefix.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(maxPrefixValue("u16be"), 65535);
 * assertEquals(maxPrefixValue("varint"), Number.MAX_SAFE_INTEGER);
 * ```
 */
export function maxPrefixValue(format: PrefixFormat): number {
  switch (format) {
    case "u16be":
      return 0xffff;
    case "u32be":
    case "u32le":
      return 0xffffffff;
    case "u64be":
    case "varint":
      return Number.MAX_SAFE_INTEGER;
  }
  throw new TypeError(`Cannot use prefix format: unknown format "${format}"`);
}

/**
 * Number of bytes of the prefix for `length`; fixed for every format but
 * `varint`.
 *
 * @example Usage
 * ```ts
 * import { prefixLength } from "./prefix.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(prefixLength(300, "u32be"), 4);
 * assertEquals(prefixLength(127, "varint"), 1);
 * assertEquals(prefixLength(128, "varint"), 2);
 * ```
 */
export function prefixLength(length: number, format: PrefixFormat): number {
  checkEncodable(length, format);
  switch (format) {
    case "u16be":
      return 2;
    case "u32be":
    case "u32le":
      return 4;
    case "u64be":
      return 8;
    case "varint": {
      let n = 1;
      while (length >= 0x80) {
        length = Math.floor(length / 0x80);
        n++;
      }
      return n;
    }
  }
}

function checkEncodable(length: number, format: PrefixFormat): void {
  const max = maxPrefixValue(format);
  if (!Number.isSafeInteger(length) || length < 0 || length > max) {
    throw new PrefixRangeError(
      `cannot encode frame: a ${format} prefix holds an integer from 0 to ${max}, got ${length}`,
      0,
    );
  }
}

/**
 * Writes the prefix for `length` into `dst` at `at` and returns the number of
 * bytes written. Throws `RangeError` if `dst` is too short.
 *
 * @example Usage
 * ```ts
 * import { writePrefix } from "./prefix.ts";
 * import { assertEquals } from "../_assert.ts";
 * const buf = new Uint8Array(6);
 * assertEquals(writePrefix(buf, 1, 300, "varint"), 2);
 * assertEquals(buf, new Uint8Array([0, 0xac, 0x02, 0, 0, 0]));
 * ```
 */
export function writePrefix(
  dst: Uint8Array,
  at: number,
  length: number,
  format: PrefixFormat,
): number {
  const size = prefixLength(length, format);
  if (at < 0 || at + size > dst.length) {
    throw new RangeError(
      `Cannot write prefix: ${size} bytes do not fit at ${at} in ${dst.length}`,
    );
  }
  switch (format) {
    case "u16be":
      dst[at] = length >>> 8;
      dst[at + 1] = length & 0xff;
      break;
    case "u32be":
      dst[at] = length >>> 24;
      dst[at + 1] = (length >>> 16) & 0xff;
      dst[at + 2] = (length >>> 8) & 0xff;
      dst[at + 3] = length & 0xff;
      break;
    case "u32le":
      dst[at] = length & 0xff;
      dst[at + 1] = (length >>> 8) & 0xff;
      dst[at + 2] = (length >>> 16) & 0xff;
      dst[at + 3] = length >>> 24;
      break;
    case "u64be": {
      const hi = Math.floor(length / 0x100000000);
      const lo = length >>> 0;
      dst[at] = 0;
      dst[at + 1] = hi >>> 16;
      dst[at + 2] = (hi >>> 8) & 0xff;
      dst[at + 3] = hi & 0xff;
      dst[at + 4] = lo >>> 24;
      dst[at + 5] = (lo >>> 16) & 0xff;
      dst[at + 6] = (lo >>> 8) & 0xff;
      dst[at + 7] = lo & 0xff;
      break;
    }
    case "varint": {
      let i = at;
      while (length >= 0x80) {
        dst[i++] = (length % 0x80) | 0x80;
        length = Math.floor(length / 0x80);
      }
      dst[i] = length;
      break;
    }
  }
  return size;
}

/**
 * Encodes just the prefix for `length`.
 *
 * @example Usage
 * ```ts
 * import { encodePrefix } from "./prefix.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(encodePrefix(2, "u32le"), new Uint8Array([2, 0, 0, 0]));
 * assertEquals(encodePrefix(1235, "u32le").toHex(), "d3040000");
 * ```
 */
export function encodePrefix(length: number, format: PrefixFormat): Uint8Array {
  const out = new Uint8Array(prefixLength(length, format));
  writePrefix(out, 0, length, format);
  return out;
}

/** Options for {@linkcode encodeFrame}. */
export interface EncodeFrameOptions {
  /**
   * Prefix format.
   *
   * @default {"u32be"}
   */
  format?: PrefixFormat;
  /**
   * Largest payload accepted; a larger one throws `OversizeFrameError`, as
   * the peer's decoder would.
   *
   * @default {DEFAULT_MAX_FRAME_SIZE}
   */
  maxFrameSize?: number;
}

/**
 * Encodes one frame: prefix then payload, in a single new `Uint8Array`.
 *
 * Throws `OversizeFrameError` when the payload is larger than
 * `maxFrameSize`, and `PrefixRangeError` when the format cannot hold its
 * length (e.g. more than 65535 bytes with `u16be`).
 *
 * @example Payload "hi" in the default format
 * ```ts
 * import { encodeFrame } from "./prefix.ts";
 * import { assertEquals } from "../_assert.ts";
 * const hi = new TextEncoder().encode("hi");
 * assertEquals(encodeFrame(hi).toHex(), "000000026869");
 * assertEquals(encodeFrame(hi, { format: "varint" }).toHex(), "026869");
 * ```
 */
export function encodeFrame(
  payload: Uint8Array,
  options: EncodeFrameOptions = {},
): Uint8Array {
  const { format = "u32be", maxFrameSize = DEFAULT_MAX_FRAME_SIZE } = options;
  if (payload.length > maxFrameSize) {
    throw new OversizeFrameError(
      `cannot encode frame: payload of ${payload.length} bytes exceeds maxFrameSize ${maxFrameSize}`,
      0,
    );
  }
  const size = prefixLength(payload.length, format);
  const out = new Uint8Array(size + payload.length);
  writePrefix(out, 0, payload.length, format);
  out.set(payload, size);
  return out;
}

/** A decoded prefix: the length it carries and how many bytes it took. */
export interface DecodedPrefix {
  /** The length the prefix carries. */
  length: number;
  /** The number of bytes the prefix itself took. */
  size: number;
}

/** Options for {@linkcode decodePrefix}. */
export interface DecodePrefixOptions {
  /**
   * Stream offset of `bytes[0]`, used in error messages.
   *
   * @default {0}
   */
  offset?: number;
  /**
   * Read the prefix as Python's signed 32-bit `struct` 'i' would: values of
   * 2^31 or more (negative in Python) throw `PrefixRangeError`.
   *
   * @default {false}
   */
  seedCompat?: boolean;
}

/**
 * Reads a prefix from the start of `bytes`. Returns `null` when `bytes` holds
 * only part of a prefix. Throws `PrefixRangeError` for a value the format
 * refuses (see {@linkcode PrefixFormat}).
 *
 * @example Usage
 * ```ts
 * import { decodePrefix } from "./prefix.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(decodePrefix(new Uint8Array([0xac, 0x02, 9]), "varint"), { length: 300, size: 2 });
 * assertEquals(decodePrefix(new Uint8Array([0, 0, 1]), "u32be"), null);
 * ```
 */
export function decodePrefix(
  bytes: Uint8Array,
  format: PrefixFormat,
  options: DecodePrefixOptions = {},
): DecodedPrefix | null {
  const { offset = 0, seedCompat = false } = options;
  let length: number;
  let size: number;
  if (format === "varint") {
    length = 0;
    size = 0;
    let mul = 1;
    for (;;) {
      if (size >= bytes.length) return null;
      const b = bytes[size++]!;
      length += (b & 0x7f) * mul;
      mul *= 0x80;
      if (b < 0x80) break;
      if (size === MAX_VARINT_BYTES) throw varintTooLong(offset);
    }
    if (length > Number.MAX_SAFE_INTEGER) throw varintTooBig(offset);
  } else {
    size = fixedWidth(format);
    if (bytes.length < size) return null;
    length = readFixed(bytes, 0, format, offset);
  }
  if (seedCompat && length >= 0x80000000) throw seedRange(length, offset);
  return { length, size };
}
