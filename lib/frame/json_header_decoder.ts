/**
 * Incremental decoder for JSON-header frames that streams the body: it
 * yields the parsed header, then the body in pieces as they arrive, never
 * buffering it.
 *
 * @module
 */
import {
  decodeMessage,
  FrameError,
  OversizeFrameError,
  TruncatedFrameError,
} from "./errors.ts";
import {
  DEFAULT_MAX_HEADER_SIZE,
  type JsonFrameEvent,
  parseJsonHeader,
} from "./json_header.ts";
import type { PrefixFormat } from "./prefix.ts";
import { checkSizeOption, PrefixAccumulator } from "./_prefix_state.ts";

const EMPTY = new Uint8Array(0);
const END_EVENT: JsonFrameEvent = Object.freeze({ type: "end" });

const PREFIX = 0;
const HEADER = 1;
const BODY = 2;

/** Options for {@linkcode JsonHeaderDecoder} and {@linkcode JsonHeaderDecoderStream}. */
export interface JsonHeaderDecoderOptions {
  /**
   * Prefix format of the header length. The seed programs use `"u32le"`
   * (with `seedCompat: true`).
   *
   * @default {"u32be"}
   */
  format?: PrefixFormat;
  /**
   * Largest header accepted, in bytes; checked before it is allocated.
   *
   * @default {DEFAULT_MAX_HEADER_SIZE}
   */
  maxHeaderSize?: number;
  /**
   * Largest `total_size` accepted. Unlimited by default because the body is
   * streamed, never buffered.
   *
   * @default {Infinity}
   */
  maxBodySize?: number;
  /**
   * Refuse header lengths of 2^31 or more, as Python's signed `struct` 'i'.
   *
   * @default {false}
   */
  seedCompat?: boolean;
}

/**
 * Push bytes in, take {@linkcode JsonFrameEvent}s out: for each frame a
 * `header` event, `body` events carrying the body as it arrives (views into
 * the pushed chunks: copy them before reusing a pushed buffer), then an
 * `end` event once `total_size` body bytes were delivered.
 *
 * Errors are typed `FrameError`s; after one, every call throws it again.
 *
 * @example Streaming a body
 * ```ts
 * import { encodeJsonHeaderFrame, JsonHeaderDecoder } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const wire = encodeJsonHeaderFrame({ filename: "a.txt", total_size: 3 }, new Uint8Array([1, 2, 3]));
 * const dec = new JsonHeaderDecoder();
 * dec.push(wire.subarray(0, wire.length - 1));
 * assertEquals(dec.next(), { type: "header", header: { filename: "a.txt", total_size: 3 }, totalSize: 3 });
 * assertEquals(dec.next(), { type: "body", chunk: new Uint8Array([1, 2]) });
 * assertEquals(dec.next(), null);
 * dec.push(wire.subarray(wire.length - 1));
 * assertEquals(dec.next(), { type: "body", chunk: new Uint8Array([3]) });
 * assertEquals(dec.next(), { type: "end" });
 * dec.end();
 * ```
 */
export class JsonHeaderDecoder {
  readonly #format: PrefixFormat;
  readonly #maxHeader: number;
  readonly #maxBody: number;
  readonly #acc: PrefixAccumulator;
  #cur: Uint8Array = EMPTY;
  #pos = 0;
  #queue: Uint8Array[] = [];
  #head = 0;
  #offset = 0;
  #frameStart = 0;
  #state = PREFIX;
  #headerSize = 0;
  #partial: Uint8Array | null = null;
  #filled = 0;
  #totalSize = 0;
  #remaining = 0;
  #ended = false;
  #error: FrameError | null = null;

  /** Creates a decoder; see {@linkcode JsonHeaderDecoderOptions}. */
  constructor(options: JsonHeaderDecoderOptions = {}) {
    const {
      format = "u32be",
      maxHeaderSize = DEFAULT_MAX_HEADER_SIZE,
      maxBodySize = Infinity,
      seedCompat = false,
    } = options;
    this.#format = format;
    this.#maxHeader = checkSizeOption("maxHeaderSize", maxHeaderSize);
    this.#maxBody = checkSizeOption("maxBodySize", maxBodySize, true);
    this.#acc = new PrefixAccumulator(format, seedCompat);
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Appends a chunk of input (kept by reference, not copied). */
  push(chunk: Uint8Array): void {
    if (this.#error) throw this.#error;
    if (this.#ended) throw new TypeError("Cannot push: end() was called");
    if (chunk.length === 0) return;
    if (this.#pos >= this.#cur.length && this.#head >= this.#queue.length) {
      this.#cur = chunk;
      this.#pos = 0;
      this.#queue.length = 0;
      this.#head = 0;
    } else {
      this.#queue.push(chunk);
    }
  }

  /** Returns the next event, or `null` when more input is needed. */
  next(): JsonFrameEvent | null {
    if (this.#error) throw this.#error;
    try {
      return this.#next();
    } catch (err) {
      if (err instanceof FrameError) this.#error = err;
      throw err;
    }
  }

  /**
   * Declares the end of input; throws `TruncatedFrameError` if it ended
   * inside a frame (events still waiting can be taken first with
   * {@linkcode next}, which then throws at the partial frame).
   */
  end(): void {
    if (this.#error) throw this.#error;
    this.#ended = true;
    if (this.#pos >= this.#cur.length && this.#head >= this.#queue.length) {
      this.#checkBoundary();
    }
  }

  #advance(): boolean {
    if (this.#head < this.#queue.length) {
      this.#cur = this.#queue[this.#head]!;
      this.#queue[this.#head++] = EMPTY;
      this.#pos = 0;
      if (this.#head === this.#queue.length) {
        this.#queue.length = 0;
        this.#head = 0;
      }
      return true;
    }
    this.#cur = EMPTY;
    this.#pos = 0;
    return false;
  }

  #truncated(expected: string, got: number): never {
    this.#error = new TruncatedFrameError(
      decodeMessage(
        this.#frameStart,
        expected,
        `${got} bytes then end of input`,
      ),
      this.#frameStart,
    );
    throw this.#error;
  }

  #checkBoundary(): void {
    if (this.#state === HEADER) {
      this.#truncated(
        `a JSON header of ${this.#headerSize} bytes`,
        this.#filled,
      );
    }
    if (this.#state === BODY && this.#remaining > 0) {
      this.#truncated(
        `a body of ${this.#totalSize} bytes`,
        this.#totalSize - this.#remaining,
      );
    }
    const pending = this.#acc.pending;
    if (this.#state === PREFIX && pending > 0) {
      this.#truncated(
        `a ${this.#format} prefix of ${this.#acc.expected} bytes`,
        pending,
      );
    }
  }

  #next(): JsonFrameEvent | null {
    for (;;) {
      if (this.#state === BODY && this.#remaining === 0) {
        this.#state = PREFIX;
        return END_EVENT;
      }
      const cur = this.#cur;
      let pos = this.#pos;
      if (pos >= cur.length) {
        if (this.#advance()) continue;
        if (this.#ended) this.#checkBoundary();
        return null;
      }
      if (this.#state === BODY) {
        const take = Math.min(this.#remaining, cur.length - pos);
        this.#pos = pos + take;
        this.#offset += take;
        this.#remaining -= take;
        return { type: "body", chunk: cur.subarray(pos, pos + take) };
      }
      if (this.#state === PREFIX) {
        const acc = this.#acc;
        if (acc.pending === 0) this.#frameStart = this.#offset;
        const len = acc.feed(cur, pos, this.#frameStart);
        pos += acc.used;
        this.#pos = pos;
        this.#offset += acc.used;
        if (len < 0) continue;
        if (len > this.#maxHeader) {
          throw new OversizeFrameError(
            decodeMessage(
              this.#frameStart,
              `a header length of at most ${this.#maxHeader}`,
              `${len}`,
            ),
            this.#frameStart,
          );
        }
        this.#headerSize = len;
        this.#state = HEADER;
        this.#filled = 0;
      }
      // HEADER: gather headerSize bytes, as a view when they lie in one chunk.
      const need = this.#headerSize;
      const avail = cur.length - pos;
      let bytes: Uint8Array;
      if (this.#partial === null && avail >= need) {
        bytes = cur.subarray(pos, pos + need);
        this.#pos = pos + need;
        this.#offset += need;
      } else {
        if (avail === 0) continue;
        const part = this.#partial ??= new Uint8Array(need);
        const take = Math.min(need - this.#filled, avail);
        part.set(cur.subarray(pos, pos + take), this.#filled);
        this.#filled += take;
        this.#pos = pos + take;
        this.#offset += take;
        if (this.#filled < need) continue;
        bytes = part;
        this.#partial = null;
      }
      const header = parseJsonHeader(bytes, this.#frameStart);
      const totalSize = header.total_size;
      if (totalSize > this.#maxBody) {
        throw new OversizeFrameError(
          decodeMessage(
            this.#frameStart,
            `a total_size of at most ${this.#maxBody}`,
            `${totalSize}`,
          ),
          this.#frameStart,
        );
      }
      this.#state = BODY;
      this.#totalSize = totalSize;
      this.#remaining = totalSize;
      return { type: "header", header, totalSize };
    }
  }
}

/**
 * A `TransformStream` from raw bytes to {@linkcode JsonFrameEvent}s. A
 * truncated final frame errors the stream with `TruncatedFrameError`.
 *
 * @example Usage
 * ```ts
 * import { encodeJsonHeaderFrame, JsonHeaderDecoderStream } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const wire = encodeJsonHeaderFrame({ total_size: 1 }, new Uint8Array([9]));
 * const events = await Array.fromAsync(
 *   ReadableStream.from([wire]).pipeThrough(new JsonHeaderDecoderStream()),
 * );
 * assertEquals(events.map((e) => e.type), ["header", "body", "end"]);
 * ```
 */
export class JsonHeaderDecoderStream
  extends TransformStream<Uint8Array, JsonFrameEvent> {
  /** Creates the stream; see {@linkcode JsonHeaderDecoderOptions}. */
  constructor(options: JsonHeaderDecoderOptions = {}) {
    const decoder = new JsonHeaderDecoder(options);
    super({
      transform(chunk, controller) {
        decoder.push(chunk);
        for (let e = decoder.next(); e !== null; e = decoder.next()) {
          controller.enqueue(e);
        }
      },
      flush(controller) {
        decoder.end();
        for (let e = decoder.next(); e !== null; e = decoder.next()) {
          controller.enqueue(e);
        }
      },
    });
  }
}
