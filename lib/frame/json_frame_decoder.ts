/**
 * Gathers JSON-header frames whole (`{ header, body }`), for bodies small
 * enough to hold in memory.
 *
 * @module
 */
import { gatherSize } from "./_gather.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "./prefix.ts";
import type { JsonFrame, JsonHeader } from "./json_header.ts";
import {
  JsonHeaderDecoder,
  type JsonHeaderDecoderOptions,
} from "./json_header_decoder.ts";
import { checkSizeOption } from "./_prefix_state.ts";

/** Options for {@linkcode JsonFrameDecoder} and {@linkcode JsonFrameDecoderStream}. */
export interface JsonFrameDecoderOptions extends JsonHeaderDecoderOptions {
  /**
   * Largest `total_size` accepted; the body is held in memory, so this must
   * be finite.
   *
   * @default {DEFAULT_MAX_FRAME_SIZE}
   */
  maxBodySize?: number;
}

/**
 * Push bytes in, take whole {@linkcode JsonFrame}s out. A body that lies in
 * one pushed chunk is a view of it (copy before reusing a pushed buffer);
 * otherwise it is gathered into one array of exactly `total_size` bytes.
 * Errors are those of {@linkcode JsonHeaderDecoder}.
 *
 * @example Usage
 * ```ts
 * import { encodeJsonHeaderFrame, JsonFrameDecoder } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const wire = encodeJsonHeaderFrame({ md5: "x", total_size: 2 }, new Uint8Array([4, 5]), { format: "u32le" });
 * const dec = new JsonFrameDecoder({ format: "u32le", seedCompat: true });
 * for (const b of wire) dec.push(new Uint8Array([b]));
 * assertEquals(dec.next(), { header: { md5: "x", total_size: 2 }, body: new Uint8Array([4, 5]) });
 * assertEquals(dec.next(), null);
 * dec.end();
 * ```
 */
export class JsonFrameDecoder {
  readonly #events: JsonHeaderDecoder;
  #header: JsonHeader | null = null;
  #body: Uint8Array | null = null;
  #filled = 0;

  /** Creates a decoder; see {@linkcode JsonFrameDecoderOptions}. */
  constructor(options: JsonFrameDecoderOptions = {}) {
    this.#events = new JsonHeaderDecoder({
      ...options,
      maxBodySize: checkSizeOption(
        "maxBodySize",
        options.maxBodySize ?? DEFAULT_MAX_FRAME_SIZE,
      ),
    });
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#events.offset;
  }

  /** Appends a chunk of input (kept by reference, not copied). */
  push(chunk: Uint8Array): void {
    this.#events.push(chunk);
  }

  /** Returns the next whole frame, or `null` when more input is needed. */
  next(): JsonFrame | null {
    for (let e = this.#events.next(); e !== null; e = this.#events.next()) {
      if (e.type === "header") {
        this.#header = e.header;
        this.#body = null;
        this.#filled = 0;
      } else if (e.type === "body") {
        const size = this.#header!.total_size;
        if (this.#body === null && e.chunk.length === size) {
          this.#body = e.chunk;
        } else {
          // Grown with the bytes that arrive, not with total_size.
          const have = this.#body?.length ?? 0;
          if (this.#filled + e.chunk.length > have) {
            const grown = new Uint8Array(
              gatherSize(size, have, e.chunk.length),
            );
            if (this.#body) grown.set(this.#body.subarray(0, this.#filled));
            this.#body = grown;
          }
          this.#body!.set(e.chunk, this.#filled);
        }
        this.#filled += e.chunk.length;
      } else {
        const frame = {
          header: this.#header!,
          body: this.#body ?? new Uint8Array(0),
        };
        this.#header = null;
        this.#body = null;
        return frame;
      }
    }
    return null;
  }

  /** Declares the end of input; throws `TruncatedFrameError` mid-frame. */
  end(): void {
    this.#events.end();
  }
}

/**
 * A `TransformStream` from raw bytes to whole {@linkcode JsonFrame}s.
 *
 * @example Usage
 * ```ts
 * import { encodeJsonHeaderFrame, JsonFrameDecoderStream } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const wire = encodeJsonHeaderFrame({ total_size: 0 });
 * const frames = await Array.fromAsync(
 *   ReadableStream.from([wire, wire]).pipeThrough(new JsonFrameDecoderStream()),
 * );
 * assertEquals(frames, [
 *   { header: { total_size: 0 }, body: new Uint8Array(0) },
 *   { header: { total_size: 0 }, body: new Uint8Array(0) },
 * ]);
 * ```
 */
export class JsonFrameDecoderStream
  extends TransformStream<Uint8Array, JsonFrame> {
  /** Creates the stream; see {@linkcode JsonFrameDecoderOptions}. */
  constructor(options: JsonFrameDecoderOptions = {}) {
    const decoder = new JsonFrameDecoder(options);
    super({
      transform(chunk, controller) {
        decoder.push(chunk);
        for (let f = decoder.next(); f !== null; f = decoder.next()) {
          controller.enqueue(f);
        }
      },
      flush() {
        decoder.end();
      },
    });
  }
}
