// Private helpers shared by the prefix encoder and the incremental decoders.
import { decodeMessage, PrefixRangeError } from "./errors.ts";
import type { PrefixFormat } from "./format.ts";

/**
 * Longest varint prefix accepted, in bytes (8 bytes carry 56 bits, enough
 * for every value up to 2^53 - 1).
 *
 * @example Usage
 * ```ts
 * import { MAX_VARINT_BYTES } from "./prefix.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(MAX_VARINT_BYTES, 8);
 * ```
 */
export const MAX_VARINT_BYTES = 8;

/** Width of a fixed-size prefix format (0 for varint). */
export function fixedWidth(format: PrefixFormat): number {
  switch (format) {
    case "u16be":
      return 2;
    case "u32be":
    case "u32le":
      return 4;
    case "u64be":
      return 8;
    case "varint":
      return 0;
  }
  throw new TypeError(`Cannot use prefix format: unknown format "${format}"`);
}

/**
 * Reads a fixed-width prefix at `at` (the caller checked the bytes exist).
 * @internal
 */
export function readFixed(
  b: Uint8Array,
  at: number,
  format: PrefixFormat,
  offset: number,
): number {
  switch (format) {
    case "u16be":
      return (b[at]! << 8) | b[at + 1]!;
    case "u32be":
      return b[at]! * 0x1000000 +
        ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
    case "u32le":
      return b[at + 3]! * 0x1000000 +
        ((b[at + 2]! << 16) | (b[at + 1]! << 8) | b[at]!);
    case "u64be": {
      const hi = b[at]! * 0x1000000 +
        ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
      const lo = b[at + 4]! * 0x1000000 +
        ((b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!);
      if (hi >= 0x200000) {
        throw new PrefixRangeError(
          decodeMessage(
            offset,
            "a u64be length of at most 2^53 - 1",
            `0x${b.subarray(at, at + 8).toHex()}`,
          ),
          offset,
        );
      }
      return hi * 0x100000000 + lo;
    }
    case "varint":
      break;
  }
  throw new TypeError(`Cannot read prefix: "${format}" is not fixed-width`);
}

/** @internal */
export function varintTooLong(offset: number): PrefixRangeError {
  return new PrefixRangeError(
    decodeMessage(
      offset,
      `a varint prefix of at most ${MAX_VARINT_BYTES} bytes`,
      `a continuation bit on byte ${MAX_VARINT_BYTES}`,
    ),
    offset,
  );
}

/** @internal */
export function varintTooBig(offset: number): PrefixRangeError {
  return new PrefixRangeError(
    decodeMessage(
      offset,
      "a varint length of at most 2^53 - 1",
      "a larger value",
    ),
    offset,
  );
}

/** @internal */
export function seedRange(value: number, offset: number): PrefixRangeError {
  return new PrefixRangeError(
    decodeMessage(
      offset,
      "a signed 32-bit length below 2^31 (seed format)",
      `${value} (negative for Python's struct 'i')`,
    ),
    offset,
  );
}

/**
 * Reads a length prefix incrementally across chunks without rescanning:
 * fixed-width prefixes are read in place when whole, otherwise gathered in
 * an 8-byte scratch; varints keep their running value between chunks.
 */
export class PrefixAccumulator {
  readonly #format: PrefixFormat;
  readonly #width: number;
  readonly #seedCompat: boolean;
  #scratch = new Uint8Array(8);
  #count = 0;
  #value = 0;
  #mul = 1;
  /** Bytes taken from the chunk by the last {@linkcode feed} call. */
  used = 0;

  constructor(format: PrefixFormat, seedCompat: boolean) {
    this.#format = format;
    this.#width = fixedWidth(format);
    this.#seedCompat = seedCompat;
  }

  /** Bytes of a prefix received so far (0 at a frame boundary). */
  get pending(): number {
    return this.#count;
  }

  /** Bytes the prefix needs in total, as far as known. */
  get expected(): number {
    return this.#width || this.#count + 1;
  }

  /**
   * Consumes prefix bytes from `chunk` at `pos`; returns the length, or -1
   * when the chunk ended first. `offset` is the stream offset of the
   * prefix's first byte, for error messages.
   */
  feed(chunk: Uint8Array, pos: number, offset: number): number {
    const width = this.#width;
    let value: number;
    if (width !== 0) {
      const avail = chunk.length - pos;
      if (this.#count === 0 && avail >= width) {
        this.used = width;
        value = readFixed(chunk, pos, this.#format, offset);
      } else {
        const take = Math.min(width - this.#count, avail);
        this.#scratch.set(chunk.subarray(pos, pos + take), this.#count);
        this.#count += take;
        this.used = take;
        if (this.#count < width) return -1;
        this.#count = 0;
        value = readFixed(this.#scratch, 0, this.#format, offset);
      }
    } else {
      let i = pos;
      let v = this.#value;
      let mul = this.#mul;
      let count = this.#count;
      for (;;) {
        if (i >= chunk.length) {
          this.#value = v;
          this.#mul = mul;
          this.#count = count;
          this.used = i - pos;
          return -1;
        }
        const b = chunk[i++]!;
        v += (b & 0x7f) * mul;
        mul *= 0x80;
        count++;
        if (b < 0x80) break;
        if (count === MAX_VARINT_BYTES) throw varintTooLong(offset);
      }
      this.#value = 0;
      this.#mul = 1;
      this.#count = 0;
      this.used = i - pos;
      if (v > Number.MAX_SAFE_INTEGER) throw varintTooBig(offset);
      value = v;
    }
    if (this.#seedCompat && value >= 0x80000000) {
      throw seedRange(value, offset);
    }
    return value;
  }
}

/** Checks a size option: a non-negative safe integer (or Infinity if allowed). */
export function checkSizeOption(
  name: string,
  value: number,
  allowInfinity = false,
): number {
  if (
    !(Number.isSafeInteger(value) && value >= 0) &&
    !(allowInfinity && value === Infinity)
  ) {
    throw new TypeError(
      `Cannot use ${name}: expected a non-negative safe integer, got ${value}`,
    );
  }
  return value;
}
