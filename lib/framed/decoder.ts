/**
 * One decoder interface over both frame layouts, for the framed stream
 * modes: push bytes, take payloads (and, for JSON-header frames, the header
 * that came with each). Also decodes a datagram that must hold exactly one
 * frame.
 *
 * @module
 */
import { decodeMessage, FrameError } from "../frame/errors.ts";
import { FrameDecoder } from "../frame/frame_decoder.ts";
import { JsonFrameDecoder } from "../frame/json_frame_decoder.ts";
import type { JsonHeader } from "../frame/json_header.ts";
import { frameCap, type FramingOptions } from "./options.ts";

/**
 * Decodes length-prefixed or JSON-header frames (see
 * {@linkcode FramingOptions}) into payloads. For JSON-header frames the
 * payload is the body, gathered whole (at most `maxFrameSize` bytes), and
 * {@linkcode FramedDecoder.header} is the header that came with it.
 *
 * Payloads may be views into pushed chunks: use each before reusing a
 * pushed buffer, or copy it. Errors are the typed `FrameError`s of
 * `lib/frame/`; after one, every call throws it again.
 *
 * @example JSON-header frames with the seeds' u32le header length
 * ```ts
 * import { FramedDecoder } from "./decoder.ts";
 * import { encodeJsonHeaderFrame } from "../frame/mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dec = new FramedDecoder({ format: "json", headerFormat: "u32le", seedCompat: true });
 * dec.push(encodeJsonHeaderFrame({ filename: "a", total_size: 2 }, new Uint8Array([1, 2]), { format: "u32le" }));
 * assertEquals(dec.next(), new Uint8Array([1, 2]));
 * assertEquals(dec.header, { filename: "a", total_size: 2 });
 * assertEquals(dec.next(), null);
 * dec.end();
 * ```
 */
export class FramedDecoder {
  readonly #prefixed: FrameDecoder | null;
  readonly #json: JsonFrameDecoder | null;
  #header: JsonHeader | undefined;

  /** Creates a decoder; see {@linkcode FramingOptions}. */
  constructor(options: FramingOptions = {}) {
    const { format = "u32be", seedCompat = false } = options;
    const max = frameCap(options);
    if (format === "json") {
      this.#prefixed = null;
      this.#json = new JsonFrameDecoder({
        format: options.headerFormat ?? "u32be",
        seedCompat,
        maxBodySize: max,
      });
    } else {
      this.#prefixed = new FrameDecoder({
        format,
        seedCompat,
        maxFrameSize: max,
      });
      this.#json = null;
    }
  }

  /** The header of the JSON-header frame last returned by {@linkcode next}; `undefined` for length-prefixed frames. */
  get header(): JsonHeader | undefined {
    return this.#header;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return (this.#prefixed ?? this.#json!).offset;
  }

  /** Appends a chunk of input (kept by reference until consumed). */
  push(chunk: Uint8Array): void {
    (this.#prefixed ?? this.#json!).push(chunk);
  }

  /** Returns the next payload, or `null` when more input is needed. */
  next(): Uint8Array | null {
    if (this.#prefixed) return this.#prefixed.next();
    const frame = this.#json!.next();
    if (frame === null) return null;
    this.#header = frame.header;
    return frame.body;
  }

  /** Declares the end of input; throws `TruncatedFrameError` inside a frame. */
  end(): void {
    (this.#prefixed ?? this.#json!).end();
  }
}

/** A frame decoded from a datagram: its payload and, for JSON-header frames, its header. */
export interface DecodedFrame {
  /** The payload (a view into the datagram's bytes). */
  payload: Uint8Array;
  /** The JSON header, for `format: "json"`. */
  header?: JsonHeader;
}

/**
 * Decodes `bytes` as exactly one whole frame, as when each datagram carries
 * one frame. Throws a `FrameError`: `TruncatedFrameError` when the frame is
 * incomplete, `OversizeFrameError`, `PrefixRangeError` or a header error as
 * a stream decoder would, and a plain `FrameError` when bytes follow the
 * frame.
 *
 * @example Usage
 * ```ts
 * import { decodeOneFrame } from "./decoder.ts";
 * import { FrameError, TruncatedFrameError } from "../frame/mod.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * assertEquals(decodeOneFrame(new Uint8Array([0, 1, 9]), { format: "u16be" }), { payload: new Uint8Array([9]) });
 * assertThrows(() => decodeOneFrame(new Uint8Array([0, 2, 9]), { format: "u16be" }), TruncatedFrameError, "at byte 0");
 * assertThrows(() => decodeOneFrame(new Uint8Array([0, 0, 9]), { format: "u16be" }), FrameError, "1 more bytes");
 * ```
 */
export function decodeOneFrame(
  bytes: Uint8Array,
  options: FramingOptions = {},
): DecodedFrame {
  const dec = new FramedDecoder(options);
  dec.push(bytes);
  const payload = dec.next();
  dec.end(); // an incomplete frame throws TruncatedFrameError here
  if (payload === null) {
    throw new FrameError(
      decodeMessage(0, "one frame", "an empty datagram"),
      0,
    );
  }
  if (dec.offset !== bytes.length) {
    throw new FrameError(
      decodeMessage(
        dec.offset,
        "the end of the datagram after one frame",
        `${bytes.length - dec.offset} more bytes`,
      ),
      dec.offset,
    );
  }
  const header = dec.header;
  return header === undefined ? { payload } : { payload, header };
}
