/**
 * A buffered reader for request/response protocols over any byte source
 * with a `read(p)` method (a `Deno.Conn`, `Deno.stdin`, a file): exact-size
 * reads, whole frames, JSON headers, and bodies streamed to a writer
 * without buffering them.
 *
 * @module
 */
import {
  decodeMessage,
  OversizeFrameError,
  TruncatedFrameError,
} from "./errors.ts";
import {
  decodePrefix,
  DEFAULT_MAX_FRAME_SIZE,
  type PrefixFormat,
} from "./prefix.ts";
import {
  DEFAULT_MAX_HEADER_SIZE,
  type JsonFrame,
  type JsonHeader,
  parseJsonHeader,
} from "./json_header.ts";
import { checkSizeOption, fixedWidth } from "./_prefix_state.ts";
import {
  DEFAULT_BUFFER_SIZE,
  type Reader,
  writeAll,
  type Writer,
} from "../copy.ts";

// The byte-source contracts, the buffer size and writeAll are the TCP core's
// (lib/copy.ts); they are re-exported here so framed protocols need one import.
export {
  DEFAULT_BUFFER_SIZE,
  type Reader,
  writeAll,
  type Writer,
} from "../copy.ts";

/** Options for {@linkcode BufferedReader}. */
export interface BufferedReaderOptions {
  /**
   * Size of the internal buffer, reused for the reader's whole life (at
   * least 16 bytes).
   *
   * @default {DEFAULT_BUFFER_SIZE}
   */
  bufferSize?: number;
}

/** Options for {@linkcode BufferedReader.readFrame}. */
export interface ReadFrameOptions {
  /**
   * Refuse prefix values of 2^31 or more, as Python's signed `struct` 'i'.
   *
   * @default {false}
   */
  seedCompat?: boolean;
}

/** Options for {@linkcode BufferedReader.readJsonHeader} and {@linkcode BufferedReader.readJsonFrame}. */
export interface ReadJsonHeaderOptions {
  /**
   * Prefix format of the header length.
   *
   * @default {"u32be"}
   */
  format?: PrefixFormat;
  /**
   * Largest header accepted, in bytes.
   *
   * @default {DEFAULT_MAX_HEADER_SIZE}
   */
  maxHeaderSize?: number;
  /**
   * Largest `total_size` accepted. `readJsonHeader` defaults to unlimited
   * (the caller streams the body); `readJsonFrame` to
   * `DEFAULT_MAX_FRAME_SIZE` and refuses `Infinity`.
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
 * Wraps a {@linkcode Reader} with one reused buffer. Methods that return
 * data either return a fresh array the caller owns (`readExact`,
 * `readFrame`, `readJsonFrame`) or fill the caller's array (`readInto`);
 * only `readSome` returns a view of the internal buffer, valid until the
 * next call. Large reads go straight from the source into the destination,
 * skipping the buffer.
 *
 * `offset` counts the bytes handed out so far; errors carry it. Calls must
 * not overlap (await each before the next).
 *
 * @example Request/response over a stream of frames
 * ```ts
 * import { BufferedReader, encodeFrame, encodeJsonHeaderFrame } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const bytes = new Uint8Array([
 *   ...encodeFrame(new TextEncoder().encode("ping")),
 *   ...encodeJsonHeaderFrame({ name: "f", total_size: 3 }, new Uint8Array([7, 8, 9])),
 * ]);
 * // A tiny Reader over an in-memory array:
 * let at = 0;
 * const reader = {
 *   read(p: Uint8Array) {
 *     if (at === bytes.length) return Promise.resolve(null);
 *     const n = Math.min(p.length, 5, bytes.length - at);
 *     p.set(bytes.subarray(at, at + n));
 *     at += n;
 *     return Promise.resolve(n);
 *   },
 * };
 * const r = new BufferedReader(reader);
 * assertEquals(new TextDecoder().decode((await r.readFrame())!), "ping");
 * const header = await r.readJsonHeader();
 * assertEquals(header, { name: "f", total_size: 3 });
 * assertEquals(await r.readExact(header!.total_size), new Uint8Array([7, 8, 9]));
 * assertEquals(await r.readFrame(), null); // clean end of input
 * ```
 */
export class BufferedReader {
  readonly #reader: Reader;
  readonly #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #offset = 0;
  #eof = false;

  /** Wraps `reader`; see {@linkcode BufferedReaderOptions}. */
  constructor(reader: Reader, options: BufferedReaderOptions = {}) {
    const { bufferSize = DEFAULT_BUFFER_SIZE } = options;
    if (!Number.isSafeInteger(bufferSize) || bufferSize < 16) {
      throw new TypeError(
        `Cannot create BufferedReader: bufferSize must be an integer >= 16, got ${bufferSize}`,
      );
    }
    this.#reader = reader;
    this.#buf = new Uint8Array(bufferSize);
  }

  /** The wrapped reader. Bytes already buffered are not in it any more: drain {@linkcode buffered} bytes first. */
  get reader(): Reader {
    return this.#reader;
  }

  /** Bytes read from the source but not yet handed out. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Bytes handed out so far (the stream offset of the next byte). */
  get offset(): number {
    return this.#offset;
  }

  /** Reads once from the source into the buffer; `false` at EOF. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const buf = this.#buf;
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    } else if (this.#end > buf.length - (buf.length >>> 2)) {
      buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#reader.read(buf.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    return true;
  }

  #truncated(at: number, expected: string, got: number): TruncatedFrameError {
    return new TruncatedFrameError(
      decodeMessage(at, expected, `${got} bytes then end of input`),
      at,
    );
  }

  /**
   * Returns some bytes (at most `max`), reading once from the source if
   * nothing is buffered; `null` at end of input. The result is a view of
   * the internal buffer, valid until the next call: write it out or copy
   * it first. This is the primitive for streaming a body of known size.
   */
  async readSome(max: number = Infinity): Promise<Uint8Array | null> {
    if (this.#start === this.#end && !(await this.#fill())) return null;
    const n = Math.min(this.#end - this.#start, max);
    const view = this.#buf.subarray(this.#start, this.#start + n);
    this.#start += n;
    this.#offset += n;
    return view;
  }

  /**
   * Fills `dst` completely: buffered bytes first, then the source (large
   * remainders are read straight into `dst`). Throws `TruncatedFrameError`
   * if the input ends first.
   */
  readInto(dst: Uint8Array): Promise<void> {
    return this.#readInto(dst, this.#offset, `${dst.length} bytes`);
  }

  async #readInto(dst: Uint8Array, at: number, what: string): Promise<void> {
    const buf = this.#buf;
    let filled = 0;
    while (filled < dst.length) {
      const have = this.#end - this.#start;
      if (have > 0) {
        const n = Math.min(have, dst.length - filled);
        dst.set(buf.subarray(this.#start, this.#start + n), filled);
        this.#start += n;
        this.#offset += n;
        filled += n;
        continue;
      }
      if (dst.length - filled < buf.length >>> 1) {
        // Small remainder: read ahead through the buffer.
        if (!(await this.#fill())) throw this.#truncated(at, what, filled);
        continue;
      }
      const n = this.#eof
        ? null
        : await this.#reader.read(dst.subarray(filled));
      if (n === null) {
        this.#eof = true;
        throw this.#truncated(at, what, filled);
      }
      filled += n;
      this.#offset += n;
    }
  }

  /**
   * Reads exactly `n` bytes into a new array. Throws `TruncatedFrameError`
   * if the input ends first.
   *
   * @example Usage
   * ```ts
   * import { BufferedReader, TruncatedFrameError } from "./mod.ts";
   * import { assertEquals, assertRejects } from "../_assert.ts";
   * const file = await Deno.makeTempFile();
   * await Deno.writeFile(file, new Uint8Array([1, 2, 3]));
   * using f = await Deno.open(file);
   * const r = new BufferedReader(f);
   * assertEquals(await r.readExact(2), new Uint8Array([1, 2]));
   * await assertRejects(() => r.readExact(2), TruncatedFrameError, "at byte 2");
   * await Deno.remove(file);
   * ```
   */
  async readExact(n: number): Promise<Uint8Array> {
    if (n <= this.#end - this.#start) {
      const out = this.#buf.slice(this.#start, this.#start + n);
      this.#start += n;
      this.#offset += n;
      return out;
    }
    const out = new Uint8Array(n);
    await this.#readInto(out, this.#offset, `${n} bytes`);
    return out;
  }

  /** Reads a prefix; `null` on clean EOF before its first byte. */
  async #readPrefix(
    format: PrefixFormat,
    seedCompat: boolean,
  ): Promise<number | null> {
    const at = this.#offset;
    for (;;) {
      if (this.#end > this.#start) {
        const p = decodePrefix(
          this.#buf.subarray(this.#start, this.#end),
          format,
          { offset: at, seedCompat },
        );
        if (p !== null) {
          this.#start += p.size;
          this.#offset += p.size;
          return p.length;
        }
      }
      if (!(await this.#fill())) {
        const have = this.#end - this.#start;
        if (have === 0) return null;
        throw this.#truncated(
          at,
          `a ${format} prefix of ${fixedWidth(format) || have + 1} bytes`,
          have,
        );
      }
    }
  }

  /**
   * Reads one length-prefixed frame and returns its payload in a new array,
   * or `null` on a clean end of input at a frame boundary. The length is
   * checked against `maxFrameSize` before allocating.
   */
  async readFrame(
    format: PrefixFormat = "u32be",
    maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE,
    options: ReadFrameOptions = {},
  ): Promise<Uint8Array | null> {
    const at = this.#offset;
    const len = await this.#readPrefix(format, options.seedCompat ?? false);
    if (len === null) return null;
    if (len > maxFrameSize) {
      throw new OversizeFrameError(
        decodeMessage(
          at,
          `a frame length of at most ${maxFrameSize}`,
          `${len}`,
        ),
        at,
      );
    }
    if (len <= this.#end - this.#start) return this.readExact(len);
    const out = new Uint8Array(len);
    await this.#readInto(out, at, `a payload of ${len} bytes`);
    return out;
  }

  /**
   * Reads the prefix and header of a JSON-header frame and returns the
   * validated header, or `null` on a clean end of input. The body
   * (`header.total_size` bytes) is left for the caller: `readExact`,
   * `readInto`, `copyExact` or `readSome`.
   */
  async readJsonHeader(
    options: ReadJsonHeaderOptions = {},
  ): Promise<JsonHeader | null> {
    const {
      format = "u32be",
      maxHeaderSize = DEFAULT_MAX_HEADER_SIZE,
      maxBodySize = Infinity,
      seedCompat = false,
    } = options;
    const at = this.#offset;
    const len = await this.#readPrefix(format, seedCompat);
    if (len === null) return null;
    if (len > maxHeaderSize) {
      throw new OversizeFrameError(
        decodeMessage(
          at,
          `a header length of at most ${maxHeaderSize}`,
          `${len}`,
        ),
        at,
      );
    }
    let bytes: Uint8Array;
    if (len <= this.#end - this.#start) {
      bytes = this.#buf.subarray(this.#start, this.#start + len);
      this.#start += len;
      this.#offset += len;
    } else {
      bytes = new Uint8Array(len);
      await this.#readInto(bytes, at, `a JSON header of ${len} bytes`);
    }
    const header = parseJsonHeader(bytes, at);
    if (header.total_size > maxBodySize) {
      throw new OversizeFrameError(
        decodeMessage(
          at,
          `a total_size of at most ${maxBodySize}`,
          `${header.total_size}`,
        ),
        at,
      );
    }
    return header;
  }

  /**
   * Reads a whole JSON-header frame, body included, or `null` on a clean
   * end of input. `maxBodySize` defaults to `DEFAULT_MAX_FRAME_SIZE`.
   */
  async readJsonFrame(
    options: ReadJsonHeaderOptions = {},
  ): Promise<JsonFrame | null> {
    const maxBodySize = checkSizeOption(
      "maxBodySize",
      options.maxBodySize ?? DEFAULT_MAX_FRAME_SIZE,
    );
    const at = this.#offset;
    const header = await this.readJsonHeader({ ...options, maxBodySize });
    if (header === null) return null;
    const body = new Uint8Array(header.total_size);
    await this.#readInto(body, at, `a body of ${header.total_size} bytes`);
    return { header, body };
  }

  /**
   * Copies exactly `n` bytes to `w` (buffered bytes first, then the
   * source, through the reused buffer): the way to stream a body of known
   * size to a file or socket. Throws `TruncatedFrameError` if the input
   * ends first. To hash while copying, wrap the writer.
   *
   * @example Streaming a body to a file, with an md5
   * ```ts
   * import { BufferedReader, encodeJsonHeaderFrame } from "./mod.ts";
   * import { createHash } from "node:crypto";
   * import { assertEquals } from "../_assert.ts";
   * const body = new Uint8Array(100_000).fill(42);
   * const wire = encodeJsonHeaderFrame({ total_size: body.length }, body);
   * const src = await Deno.makeTempFile();
   * const dst = await Deno.makeTempFile();
   * await Deno.writeFile(src, wire);
   * {
   *   using input = await Deno.open(src);
   *   using output = await Deno.open(dst, { write: true });
   *   const r = new BufferedReader(input, { bufferSize: 4096 });
   *   const header = (await r.readJsonHeader())!;
   *   const md5 = createHash("md5");
   *   await r.copyExact({
   *     write: (p) => (md5.update(p), output.write(p)),
   *   }, header.total_size);
   *   assertEquals(md5.digest("hex"), createHash("md5").update(body).digest("hex"));
   * }
   * assertEquals((await Deno.stat(dst)).size, body.length);
   * await Deno.remove(src);
   * await Deno.remove(dst);
   * ```
   */
  async copyExact(w: Writer, n: number): Promise<void> {
    const at = this.#offset;
    let left = n;
    while (left > 0) {
      if (this.#start === this.#end && !(await this.#fill())) {
        throw this.#truncated(at, `${n} bytes`, n - left);
      }
      const take = Math.min(this.#end - this.#start, left);
      const view = this.#buf.subarray(this.#start, this.#start + take);
      this.#start += take;
      this.#offset += take;
      left -= take;
      await writeAll(w, view);
    }
  }
}
