/**
 * The sending half of the framed stream modes: input cut into lines (or
 * reads) becomes a stream of frames, read like any other byte source.
 *
 * @module
 */
import { datagramsFrom, type SplitMode } from "../udp/_datagram_input.ts";
import { type ClientOptions, tcpClient } from "../tcp/client.ts";
import { copy, type Reader, type Writer } from "../copy.ts";
import { DenocatError } from "../errors.ts";
import { OversizeFrameError } from "../frame/errors.ts";
import {
  maxPrefixValue,
  type PrefixFormat,
  prefixLength,
  writePrefix,
} from "../frame/prefix.ts";
import { frameCap, type FramingOptions } from "./options.ts";
import type { PipeResult } from "../tcp/pipe.ts";
import type { Endpoint } from "../tcp/connect.ts";

export type { SplitMode } from "../udp/_datagram_input.ts";

/** Options for {@linkcode FramedInput}. */
export interface FramedInputOptions extends FramingOptions {
  /**
   * One frame per input line (the newline is not sent; a last line without
   * one still counts) or per read of the input.
   *
   * @default {"line"}
   */
  split?: SplitMode;
  /**
   * Pack as many whole frames into each read as are ready (`true`), or
   * exactly one frame per read (`false`, for one frame per datagram; a frame
   * that does not fit the caller's buffer is then an `OversizeFrameError`).
   *
   * @default {true}
   */
  batch?: boolean;
}

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/**
 * A {@linkcode Reader} of frames: it reads `input`, cuts it into lines or
 * reads, and yields each as a frame (see {@linkcode FramingOptions}),
 * encoded straight into the caller's buffer. Frames ready at once are
 * packed into one read; a read returns early, with what it has, as soon as
 * the input would block, so interactive lines go out immediately.
 *
 * An oversize line or chunk throws `OversizeFrameError`; frames before it
 * are still returned first.
 *
 * @example Lines to u16be frames
 * ```ts
 * import { FramedInput } from "./send.ts";
 * import { assertEquals } from "../_assert.ts";
 * const chunks = [new TextEncoder().encode("hi\n\nyo")];
 * const input = { read(p: Uint8Array) {
 *   const c = chunks.shift();
 *   if (!c) return Promise.resolve(null);
 *   p.set(c);
 *   return Promise.resolve(c.length);
 * } };
 * const framed = new FramedInput(input, { format: "u16be" });
 * const buf = new Uint8Array(64);
 * // Two whole lines in one read; "yo" is a line only once EOF is seen.
 * let n = await framed.read(buf);
 * assertEquals(buf.subarray(0, n!).toHex(), "00026869" + "0000");
 * n = await framed.read(buf);
 * assertEquals(buf.subarray(0, n!).toHex(), "0002796f");
 * assertEquals(await framed.read(buf), null);
 * assertEquals(framed.frames, 3);
 * ```
 */
export class FramedInput implements Reader {
  readonly #gen: AsyncGenerator<Uint8Array>;
  readonly #format: PrefixFormat;
  readonly #json: boolean;
  readonly #strip: boolean;
  readonly #batch: boolean;
  readonly #cap: number;
  #pending: Promise<IteratorResult<Uint8Array>> | null = null;
  #reading = false;
  #item: Uint8Array | null = null;
  #carry: Uint8Array = EMPTY;
  #carryPos = 0;
  #done = false;
  #error: unknown = undefined;
  #frames = 0;
  #payloadBytes = 0;

  /** Frames `input`; see {@linkcode FramedInputOptions}. */
  constructor(input: Reader, options: FramedInputOptions = {}) {
    const { format = "u32be", split = "line", batch = true } = options;
    this.#json = format === "json";
    this.#format = format === "json" ? options.headerFormat ?? "u32be" : format;
    this.#strip = split === "line";
    this.#batch = batch;
    // A u16be prefix cannot say more than 65535, whatever maxFrameSize says.
    this.#cap = this.#json
      ? frameCap(options)
      : Math.min(frameCap(options), maxPrefixValue(this.#format));
    // Every time the splitter must wait for input, let a pending read return.
    const watched: Reader = {
      read: async (p) => {
        this.#reading = true;
        try {
          return await input.read(p);
        } finally {
          this.#reading = false;
        }
      },
    };
    this.#gen = datagramsFrom(watched, split, this.#cap);
  }

  /** Frames produced so far. */
  get frames(): number {
    return this.#frames;
  }

  /** Payload bytes framed so far (prefixes and headers not counted). */
  get payloadBytes(): number {
    return this.#payloadBytes;
  }

  /** Fills `p` with whole frames (or the next piece of one larger than `p`); `null` at the end. */
  async read(p: Uint8Array): Promise<number | null> {
    if (this.#carryPos < this.#carry.length) {
      const n = Math.min(p.length, this.#carry.length - this.#carryPos);
      p.set(this.#carry.subarray(this.#carryPos, this.#carryPos + n));
      this.#carryPos += n;
      return n;
    }
    this.#carry = EMPTY;
    this.#carryPos = 0;
    let filled = 0;
    for (;;) {
      let payload = this.#item;
      this.#item = null;
      if (payload === null) {
        if (this.#error !== undefined) {
          if (filled > 0) return filled;
          throw this.#error;
        }
        if (this.#done) return filled > 0 ? filled : null;
        try {
          const r = await this.#nextPayload(filled > 0);
          if (r === null) return filled; // the input would block
          if (r.done) {
            this.#done = true;
            continue;
          }
          payload = r.value;
          if (this.#strip && payload.at(-1) === 0x0a) {
            payload = payload.subarray(0, payload.length - 1);
          }
          this.#check(payload);
        } catch (err) {
          this.#error = this.#translate(err);
          continue;
        }
      }
      const size = this.#frameSize(payload);
      if (size > p.length - filled) {
        if (filled > 0) {
          this.#item = payload;
          return filled;
        }
        if (!this.#batch) {
          throw new OversizeFrameError(
            `cannot encode frame: a frame of ${size} bytes does not fit in one datagram of at most ${p.length} bytes`,
            0,
          );
        }
        this.#carry = new Uint8Array(size);
        this.#encode(payload, this.#carry, 0);
        this.#carryPos = p.length;
        p.set(this.#carry.subarray(0, p.length));
        return p.length;
      }
      filled += this.#encode(payload, p, filled);
      if (!this.#batch) return filled;
    }
  }

  /** The next line or chunk; `null` if `mayYield` and the input would block. */
  async #nextPayload(
    mayYield: boolean,
  ): Promise<IteratorResult<Uint8Array> | null> {
    // Resuming the splitter runs it up to its next yield or input read at
    // once, so a read it had to start is visible right after next().
    this.#pending ??= this.#gen.next();
    if (mayYield && this.#reading) return null;
    const r = await this.#pending;
    this.#pending = null;
    return r;
  }

  #translate(err: unknown): unknown {
    // The splitter's own message speaks of datagrams; say what it means here.
    if (
      err instanceof DenocatError &&
      err.message.startsWith("cannot send a line of more than")
    ) {
      return new OversizeFrameError(
        `cannot encode frame: a line of more than ${this.#cap} bytes exceeds the frame limit of ${this.#cap} bytes (try --split chunk)`,
        0,
        { cause: err },
      );
    }
    return err;
  }

  #check(payload: Uint8Array): void {
    if (payload.length > this.#cap) {
      throw new OversizeFrameError(
        `cannot encode frame: payload of ${payload.length} bytes exceeds the frame limit of ${this.#cap} bytes`,
        0,
      );
    }
  }

  #frameSize(payload: Uint8Array): number {
    const n = payload.length;
    if (!this.#json) return prefixLength(n, this.#format) + n;
    const headerSize = 15 + String(n).length; // {"total_size":N}
    return prefixLength(headerSize, this.#format) + headerSize + n;
  }

  /** Encodes one frame at `dst[at]`; returns its size. */
  #encode(payload: Uint8Array, dst: Uint8Array, at: number): number {
    const n = payload.length;
    let pos = at;
    if (this.#json) {
      const header = `{"total_size":${n}}`;
      pos += writePrefix(dst, pos, header.length, this.#format);
      pos += encoder.encodeInto(header, dst.subarray(pos)).written;
    } else {
      pos += writePrefix(dst, pos, n, this.#format);
    }
    dst.set(payload, pos);
    this.#frames++;
    this.#payloadBytes += n;
    return pos + n - at;
  }
}

/** What {@linkcode sendFrames} sent. */
export interface SendFramesResult {
  /** Frames written. */
  frames: number;
  /** Bytes written, prefixes and headers included. */
  bytes: number;
}

/**
 * Frames everything `input` holds onto `output` (a connection, a file) until
 * input EOF, coalescing frames that are ready together into one write.
 *
 * @example Usage
 * ```ts
 * import { sendFrames } from "./send.ts";
 * import { assertEquals } from "../_assert.ts";
 * const chunks = [new TextEncoder().encode("one\ntwo\n")];
 * const input = { read(p: Uint8Array) {
 *   const c = chunks.shift();
 *   if (!c) return Promise.resolve(null);
 *   p.set(c);
 *   return Promise.resolve(c.length);
 * } };
 * const writes: string[] = [];
 * const output = { write(p: Uint8Array) { writes.push(p.toHex()); return Promise.resolve(p.length); } };
 * assertEquals(await sendFrames(input, output, { format: "varint" }), { frames: 2, bytes: 8 });
 * assertEquals(writes, ["036f6e65" + "0374776f"]);
 * ```
 */
export async function sendFrames(
  input: Reader,
  output: Writer,
  options: FramedInputOptions = {},
): Promise<SendFramesResult> {
  const framed = new FramedInput(input, options);
  const bytes = await copy(framed, output);
  return { frames: framed.frames, bytes };
}

/** Options for {@linkcode framedClient}: a TCP client whose input is framed. */
export type FramedClientOptions = ClientOptions & FramedInputOptions;

/** What {@linkcode framedClient} did: the relay totals and the frames sent. */
export interface FramedClientResult extends PipeResult {
  /** Frames sent. */
  frames: number;
}

/**
 * `denocat --frame FORMAT HOST PORT`: connects, sends `input` as frames,
 * half-closes at input EOF and copies whatever the peer sends back to
 * `output` as-is until it closes (all of {@linkcode tcpClient}'s options
 * apply).
 *
 * @example Usage
 * ```ts
 * import { framedClient } from "./send.ts";
 * import { readAll } from "../../tests/_helpers.ts";
 * import { assertEquals } from "../_assert.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const server = (async () => {
 *   using conn = await listener.accept();
 *   return await readAll(conn);
 * })();
 * const chunks = [new TextEncoder().encode("hi\n")];
 * const input = { read(p: Uint8Array) {
 *   const c = chunks.shift();
 *   if (!c) return Promise.resolve(null);
 *   p.set(c);
 *   return Promise.resolve(c.length);
 * } };
 * const output = { write: (p: Uint8Array) => Promise.resolve(p.length) };
 * const r = await framedClient({ hostname: "127.0.0.1", port: listener.addr.port }, { input, output, format: "u32be" });
 * assertEquals((await server).toHex(), "000000026869");
 * assertEquals(r.frames, 1);
 * ```
 */
export async function framedClient(
  endpoint: Endpoint,
  options: FramedClientOptions,
): Promise<FramedClientResult> {
  const input = new FramedInput(options.input, options);
  const result = await tcpClient(endpoint, { ...options, input });
  return { ...result, frames: input.frames };
}
