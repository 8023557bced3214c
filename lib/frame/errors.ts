/**
 * Typed errors raised by the framing codecs. Every one extends
 * {@linkcode FrameError}, which carries the byte offset where decoding
 * failed, and maps to exit code 1 through {@linkcode DenocatError}.
 *
 * Decoder messages read `cannot decode frame at byte N: expected X, got Y`;
 * encoder messages read `cannot encode frame: ...`.
 *
 * @module
 */
import { DenocatError, EXIT_FAILURE } from "../errors.ts";

/**
 * Builds the standard decoder message.
 *
 * @example Usage
 * ```ts
 * import { decodeMessage } from "./errors.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(
 *   decodeMessage(12, "4 more bytes", "end of input"),
 *   "cannot decode frame at byte 12: expected 4 more bytes, got end of input",
 * );
 * ```
 */
export function decodeMessage(
  offset: number,
  expected: string,
  got: string,
): string {
  return `cannot decode frame at byte ${offset}: expected ${expected}, got ${got}`;
}

/**
 * Base class of every framing error: the input is not a valid frame stream,
 * or a value cannot be encoded as one.
 *
 * @example Catching any framing error
 * ```ts
 * import { FrameError, OversizeFrameError } from "./errors.ts";
 * import { DenocatError } from "../errors.ts";
 * import { assertEquals, assertOk } from "../_assert.ts";
 * const err = new OversizeFrameError("cannot decode frame at byte 0: x", 0);
 * assertOk(err instanceof FrameError && err instanceof DenocatError);
 * assertEquals(err.exitCode, 1);
 * ```
 */
export class FrameError extends DenocatError {
  /** Byte offset in the decoded stream where the faulty frame or field starts (0 for encoders). */
  readonly offset: number;
  /** Creates the error with a one-line `message` and the byte `offset` it refers to. */
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, EXIT_FAILURE, options);
    this.name = "FrameError";
    this.offset = offset;
  }
}

/**
 * The input ended inside a frame: some of its prefix, header or payload is
 * missing.
 *
 * @example Usage
 * ```ts
 * import { FrameDecoder, TruncatedFrameError } from "./mod.ts";
 * import { assertThrows } from "../_assert.ts";
 * const dec = new FrameDecoder();
 * dec.push(new Uint8Array([0, 0, 0, 5, 104, 105]));
 * dec.next();
 * assertThrows(() => dec.end(), TruncatedFrameError, "at byte 0");
 * ```
 */
export class TruncatedFrameError extends FrameError {
  /** Creates the error with a one-line `message` and the byte `offset` it refers to. */
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, offset, options);
    this.name = "TruncatedFrameError";
  }
}

/**
 * A declared length exceeds the configured maximum (frame, header or body).
 * Raised as soon as the length is known, before anything is allocated.
 *
 * @example Usage
 * ```ts
 * import { FrameDecoder, OversizeFrameError } from "./mod.ts";
 * import { assertThrows } from "../_assert.ts";
 * const dec = new FrameDecoder({ maxFrameSize: 4 });
 * dec.push(new Uint8Array([0, 0, 0, 5]));
 * assertThrows(() => dec.next(), OversizeFrameError, "got 5");
 * ```
 */
export class OversizeFrameError extends FrameError {
  /** Creates the error with a one-line `message` and the byte `offset` it refers to. */
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, offset, options);
    this.name = "OversizeFrameError";
  }
}

/**
 * A JSON header is not valid UTF-8.
 *
 * @example Usage
 * ```ts
 * import { HeaderEncodingError, JsonHeaderDecoder } from "./mod.ts";
 * import { assertThrows } from "../_assert.ts";
 * const dec = new JsonHeaderDecoder();
 * dec.push(new Uint8Array([0, 0, 0, 1, 0xff]));
 * assertThrows(() => dec.next(), HeaderEncodingError, "UTF-8");
 * ```
 */
export class HeaderEncodingError extends FrameError {
  /** Creates the error with a one-line `message` and the byte `offset` it refers to. */
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, offset, options);
    this.name = "HeaderEncodingError";
  }
}

/**
 * A JSON header is not valid JSON, is not an object, or lacks a
 * `total_size` that is a non-negative safe integer.
 *
 * @example Usage
 * ```ts
 * import { HeaderJsonError, JsonHeaderDecoder } from "./mod.ts";
 * import { assertThrows } from "../_assert.ts";
 * const dec = new JsonHeaderDecoder();
 * dec.push(new Uint8Array([0, 0, 0, 2, 0x5b, 0x5d])); // "[]"
 * assertThrows(() => dec.next(), HeaderJsonError, "JSON object");
 * ```
 */
export class HeaderJsonError extends FrameError {
  /** Creates the error with a one-line `message` and the byte `offset` it refers to. */
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, offset, options);
    this.name = "HeaderJsonError";
  }
}

/**
 * A length prefix holds a value its format refuses: a seed-compatible
 * (signed 32-bit) value of 2^31 or more, a `u64be` value beyond 2^53 - 1, a
 * varint longer than 8 bytes or beyond 2^53 - 1, or a length too large for
 * the format when encoding.
 *
 * @example Usage
 * ```ts
 * import { FrameDecoder, PrefixRangeError } from "./mod.ts";
 * import { assertThrows } from "../_assert.ts";
 * const dec = new FrameDecoder({ format: "u32le", seedCompat: true });
 * dec.push(new Uint8Array([0, 0, 0, 0x80]));
 * assertThrows(() => dec.next(), PrefixRangeError, "at byte 0");
 * ```
 */
export class PrefixRangeError extends FrameError {
  /** Creates the error with a one-line `message` and the byte `offset` it refers to. */
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, offset, options);
    this.name = "PrefixRangeError";
  }
}
