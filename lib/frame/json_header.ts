/**
 * JSON-header frames, the seeds' "custom header" shape:
 * `[prefix: header length][header: UTF-8 JSON object][body: header.total_size bytes]`.
 *
 * This file holds the types, the encoder and the header validation; the
 * incremental decoders live in `json_header_decoder.ts` and
 * `json_frame_decoder.ts`.
 *
 * @module
 */
import {
  decodeMessage,
  HeaderEncodingError,
  HeaderJsonError,
  OversizeFrameError,
} from "./errors.ts";
import { type PrefixFormat, prefixLength, writePrefix } from "./prefix.ts";

/**
 * Default largest JSON header accepted, in bytes: 64 KiB.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_MAX_HEADER_SIZE } from "./json_header.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(DEFAULT_MAX_HEADER_SIZE, 65536);
 * ```
 */
export const DEFAULT_MAX_HEADER_SIZE = 64 * 1024;

/** A decoded header: any JSON object with a valid `total_size`. */
export type JsonHeader = Record<string, unknown> & { total_size: number };

/**
 * What a {@linkcode JsonHeaderDecoder} yields, in order for each frame: one
 * `header`, zero or more `body` pieces (summing to `totalSize` bytes), one
 * `end`.
 */
export type JsonFrameEvent =
  | { type: "header"; header: JsonHeader; totalSize: number }
  | { type: "body"; chunk: Uint8Array }
  | { type: "end" };

/** A whole JSON-header frame, as gathered by `JsonFrameDecoder`. */
export interface JsonFrame {
  /** The parsed header. */
  header: JsonHeader;
  /** The body: exactly `header.total_size` bytes. */
  body: Uint8Array;
}

/** Options for {@linkcode encodeJsonHeaderFrame}. */
export interface EncodeJsonHeaderOptions {
  /**
   * Prefix format of the header length.
   *
   * @default {"u32be"}
   */
  format?: PrefixFormat;
  /**
   * Largest encoded header accepted, in bytes.
   *
   * @default {DEFAULT_MAX_HEADER_SIZE}
   */
  maxHeaderSize?: number;
}

function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (
      c >= 0xd800 && c < 0xdc00 && i + 1 < s.length &&
      (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00
    ) {
      n += 2; // a surrogate pair: 2 UTF-16 units, 4 bytes
      i++;
    } else {
      n += 2;
    }
  }
  return n;
}

function checkTotalSize(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) &&
    value >= 0;
}

/**
 * Encodes a JSON-header frame in one allocation: prefix, header and, if
 * given, the body. Without `body`, only prefix and header are returned and
 * the caller sends the `total_size` body bytes itself (e.g. streamed from a
 * file).
 *
 * Throws `HeaderJsonError` if `total_size` is not a non-negative safe
 * integer or differs from `body.length`, and `OversizeFrameError` if the
 * header exceeds `maxHeaderSize`.
 *
 * @example The seeds' header, body included
 * ```ts
 * import { encodeJsonHeaderFrame } from "./json_header.ts";
 * import { assertEquals } from "../_assert.ts";
 * const body = new TextEncoder().encode("hi");
 * const frame = encodeJsonHeaderFrame({ total_size: 2 }, body);
 * // 0x10 = 16 header bytes: {"total_size":2}
 * assertEquals(frame.toHex(), "00000010" + new TextEncoder().encode('{"total_size":2}').toHex() + "6869");
 * ```
 */
export function encodeJsonHeaderFrame(
  header: Record<string, unknown> & { total_size: number },
  body?: Uint8Array,
  options: EncodeJsonHeaderOptions = {},
): Uint8Array {
  const { format = "u32be", maxHeaderSize = DEFAULT_MAX_HEADER_SIZE } = options;
  if (!checkTotalSize(header.total_size)) {
    throw new HeaderJsonError(
      `cannot encode frame: total_size must be a non-negative safe integer, got ${
        String(header.total_size)
      }`,
      0,
    );
  }
  if (body !== undefined && body.length !== header.total_size) {
    throw new HeaderJsonError(
      `cannot encode frame: total_size is ${header.total_size} but the body has ${body.length} bytes`,
      0,
    );
  }
  const json = JSON.stringify(header);
  const headerSize = utf8Length(json);
  if (headerSize > maxHeaderSize) {
    throw new OversizeFrameError(
      `cannot encode frame: header of ${headerSize} bytes exceeds maxHeaderSize ${maxHeaderSize}`,
      0,
    );
  }
  const size = prefixLength(headerSize, format);
  const out = new Uint8Array(size + headerSize + (body?.length ?? 0));
  writePrefix(out, 0, headerSize, format);
  new TextEncoder().encodeInto(json, out.subarray(size, size + headerSize));
  if (body !== undefined) out.set(body, size + headerSize);
  return out;
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses and validates header bytes. `offset` is the stream offset of the
 * frame, for error messages. Throws `HeaderEncodingError` for invalid UTF-8
 * and `HeaderJsonError` for invalid JSON, a non-object, or a bad
 * `total_size`.
 *
 * @example Usage
 * ```ts
 * import { parseJsonHeader } from "./json_header.ts";
 * import { HeaderJsonError } from "./errors.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * const te = new TextEncoder();
 * assertEquals(parseJsonHeader(te.encode('{"total_size":5,"filename":"a"}'), 0), {
 *   total_size: 5,
 *   filename: "a",
 * });
 * assertThrows(() => parseJsonHeader(te.encode('{"total_size":-1}'), 7), HeaderJsonError, "at byte 7");
 * ```
 */
export function parseJsonHeader(bytes: Uint8Array, offset: number): JsonHeader {
  let text: string;
  try {
    text = fatalDecoder.decode(bytes);
  } catch (err) {
    throw new HeaderEncodingError(
      decodeMessage(offset, "a UTF-8 JSON header", "invalid UTF-8"),
      offset,
      { cause: err },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HeaderJsonError(
      decodeMessage(
        offset,
        "a JSON object header",
        `invalid JSON (${(err as Error).message})`,
      ),
      offset,
      { cause: err },
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HeaderJsonError(
      decodeMessage(
        offset,
        "a JSON object header",
        value === null
          ? "null"
          : Array.isArray(value)
          ? "an array"
          : typeof value,
      ),
      offset,
    );
  }
  const total = (value as Record<string, unknown>).total_size;
  if (!checkTotalSize(total)) {
    throw new HeaderJsonError(
      decodeMessage(
        offset,
        "total_size as a non-negative safe integer",
        total === undefined
          ? "no total_size"
          : JSON.stringify(total).slice(0, 40),
      ),
      offset,
    );
  }
  return value as JsonHeader;
}
