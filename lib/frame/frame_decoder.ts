/**
 * Incremental decoder for length-prefixed frames, usable in a plain read
 * loop ({@linkcode FrameDecoder}) or as a `TransformStream`
 * ({@linkcode FrameDecoderStream}).
 *
 * @module
 */
import {
  decodeMessage,
  FrameError,
  OversizeFrameError,
  TruncatedFrameError,
} from "./errors.ts";
import { DEFAULT_MAX_FRAME_SIZE, type PrefixFormat } from "./prefix.ts";
import { checkSizeOption, PrefixAccumulator } from "./_prefix_state.ts";
import { gatherSize } from "./_gather.ts";

const EMPTY = new Uint8Array(0);

/** Options for {@linkcode FrameDecoder} and {@linkcode FrameDecoderStream}. */
export interface FrameDecoderOptions {
  /**
   * Prefix format of the incoming frames.
   *
   * @default {"u32be"}
   */
  format?: PrefixFormat;
  /**
   * Largest payload accepted. A larger declared length throws
   * `OversizeFrameError` as soon as the prefix is read, before any
   * allocation.
   *
   * @default {DEFAULT_MAX_FRAME_SIZE}
   */
  maxFrameSize?: number;
  /**
   * Read prefixes as Python's signed 32-bit `struct.pack('i', n)` would:
   * a value of 2^31 or more (negative in Python) throws `PrefixRangeError`.
   * Use it with `format: "u32le"` to talk to the seed programs.
   *
   * @default {false}
   */
  seedCompat?: boolean;
}

/**
 * Push bytes in, take whole payloads out.
 *
 * Every byte is examined once. A payload that lies inside one pushed chunk
 * is returned as a zero-copy `subarray` view of that chunk: it stays valid
 * as long as the caller does not overwrite that chunk, so copy it
 * (`payload.slice()`) before reusing a read buffer you pushed. A payload
 * spread over several chunks is gathered into one new array of exactly its
 * size; that array starts at four times the first bytes (at least 16 KiB)
 * and grows fourfold as more arrive, so a length prefix alone reserves no
 * more than four times the bytes that came with it.
 *
 * After any error the decoder is poisoned: every later call throws the same
 * error, so nothing after a bad frame is treated as data.
 *
 * @example Frames cut at arbitrary points
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const te = new TextEncoder();
 * const wire = new Uint8Array([
 *   ...encodeFrame(te.encode("hello")),
 *   ...encodeFrame(te.encode("")),
 *   ...encodeFrame(te.encode("world")),
 * ]);
 * const dec = new FrameDecoder();
 * const got: string[] = [];
 * for (const cut of [wire.subarray(0, 3), wire.subarray(3, 11), wire.subarray(11)]) {
 *   dec.push(cut);
 *   for (let p = dec.next(); p !== null; p = dec.next()) {
 *     got.push(new TextDecoder().decode(p));
 *   }
 * }
 * dec.end();
 * assertEquals(got, ["hello", "", "world"]);
 * assertEquals(dec.offset, wire.length);
 * ```
 */
export class FrameDecoder {
  readonly #format: PrefixFormat;
  readonly #max: number;
  readonly #acc: PrefixAccumulator;
  #cur: Uint8Array = EMPTY;
  #pos = 0;
  #queue: Uint8Array[] = [];
  #head = 0;
  #offset = 0;
  #frameStart = 0;
  /** Payload length while reading a payload; -1 while reading a prefix. */
  #need = -1;
  #partial: Uint8Array | null = null;
  #filled = 0;
  #ended = false;
  #error: FrameError | null = null;

  /** Creates a decoder; see {@linkcode FrameDecoderOptions}. */
  constructor(options: FrameDecoderOptions = {}) {
    const {
      format = "u32be",
      maxFrameSize = DEFAULT_MAX_FRAME_SIZE,
      seedCompat = false,
    } = options;
    this.#format = format;
    this.#max = checkSizeOption("maxFrameSize", maxFrameSize);
    this.#acc = new PrefixAccumulator(format, seedCompat);
  }

  /** Bytes consumed so far: the stream offset just past the last byte examined. */
  get offset(): number {
    return this.#offset;
  }

  /**
   * Appends a chunk of input. The decoder keeps a reference to it (no copy)
   * until its bytes are consumed.
   */
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

  /**
   * Returns the next whole payload, or `null` when more input is needed.
   * Throws a `FrameError` subclass on malformed input.
   */
  next(): Uint8Array | null {
    if (this.#error) throw this.#error;
    try {
      return this.#next();
    } catch (err) {
      if (err instanceof FrameError) this.#error = err;
      throw err;
    }
  }

  /**
   * Declares the end of input. Throws `TruncatedFrameError` if the input
   * ended inside a frame. If complete frames are still waiting, they can be
   * taken with {@linkcode next} first; it then throws at the partial one.
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

  #checkBoundary(): void {
    const pending = this.#acc.pending;
    if (this.#need >= 0) {
      this.#error = new TruncatedFrameError(
        decodeMessage(
          this.#frameStart,
          `a payload of ${this.#need} bytes`,
          `${this.#filled} bytes then end of input`,
        ),
        this.#frameStart,
      );
      throw this.#error;
    }
    if (pending > 0) {
      this.#error = new TruncatedFrameError(
        decodeMessage(
          this.#frameStart,
          `a ${this.#format} prefix of ${this.#acc.expected} bytes`,
          `${pending} bytes then end of input`,
        ),
        this.#frameStart,
      );
      throw this.#error;
    }
  }

  #next(): Uint8Array | null {
    for (;;) {
      const cur = this.#cur;
      let pos = this.#pos;
      if (pos >= cur.length && this.#need !== 0) {
        if (this.#advance()) continue;
        if (this.#ended) this.#checkBoundary();
        return null;
      }
      if (this.#need < 0) {
        const acc = this.#acc;
        if (acc.pending === 0) this.#frameStart = this.#offset;
        const len = acc.feed(cur, pos, this.#frameStart);
        pos += acc.used;
        this.#pos = pos;
        this.#offset += acc.used;
        if (len < 0) continue;
        if (len > this.#max) {
          throw new OversizeFrameError(
            decodeMessage(
              this.#frameStart,
              `a frame length of at most ${this.#max}`,
              `${len}`,
            ),
            this.#frameStart,
          );
        }
        this.#need = len;
      }
      const need = this.#need;
      const avail = cur.length - pos;
      let part = this.#partial;
      if (part === null) {
        if (avail >= need) {
          this.#pos = pos + need;
          this.#offset += need;
          this.#need = -1;
          return cur.subarray(pos, pos + need);
        }
        if (avail === 0) continue; // wait for the next chunk before allocating
        part = this.#partial = new Uint8Array(gatherSize(need, 0, avail));
        this.#filled = 0;
      }
      const take = Math.min(need - this.#filled, avail);
      if (this.#filled + take > part.length) {
        const grown = new Uint8Array(gatherSize(need, part.length, take));
        grown.set(part.subarray(0, this.#filled));
        part = this.#partial = grown;
      }
      part.set(cur.subarray(pos, pos + take), this.#filled);
      this.#filled += take;
      this.#pos = pos + take;
      this.#offset += take;
      if (this.#filled === need) {
        this.#partial = null;
        this.#filled = 0;
        this.#need = -1;
        return part;
      }
    }
  }
}

/**
 * A `TransformStream` from raw bytes to frame payloads. A truncated final
 * frame errors the stream with `TruncatedFrameError` when the input closes.
 * Payloads may be views into the incoming chunks (see
 * {@linkcode FrameDecoder}).
 *
 * @example Usage
 * ```ts
 * import { encodeFrame, FrameDecoderStream } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const wire = encodeFrame(new Uint8Array([1, 2, 3]), { format: "u16be" });
 * const frames = await Array.fromAsync(
 *   ReadableStream.from([wire.subarray(0, 1), wire.subarray(1)])
 *     .pipeThrough(new FrameDecoderStream({ format: "u16be" })),
 * );
 * assertEquals(frames, [new Uint8Array([1, 2, 3])]);
 * ```
 */
export class FrameDecoderStream
  extends TransformStream<Uint8Array, Uint8Array> {
  /** Creates the stream; see {@linkcode FrameDecoderOptions}. */
  constructor(options: FrameDecoderOptions = {}) {
    const decoder = new FrameDecoder(options);
    super({
      transform(chunk, controller) {
        decoder.push(chunk);
        for (let p = decoder.next(); p !== null; p = decoder.next()) {
          controller.enqueue(p);
        }
      },
      flush() {
        decoder.end();
      },
    });
  }
}
