/**
 * Writes decoded frames out as text or bytes (`--output lines|raw|hex|json`),
 * coalescing many small records into one write of a reused buffer, and
 * sharing one output between many producers without interleaving records.
 *
 * @module
 */
import { DEFAULT_BUFFER_SIZE, writeAll, type Writer } from "../copy.ts";
import type { JsonHeader } from "../frame/json_header.ts";

/**
 * How each frame is written:
 * - `lines`: the payload then `\n`;
 * - `raw`: the payload alone;
 * - `hex`: the payload in lowercase hex then `\n` (one line per frame);
 * - `json`: `{"len":N,"data":"<base64>"}` (plus `"header":{...}` for
 *   JSON-header frames) then `\n`.
 */
export type FrameOutputMode = "lines" | "raw" | "hex" | "json";

/**
 * Every {@linkcode FrameOutputMode}, in help order.
 *
 * @example Usage
 * ```ts
 * import { FRAME_OUTPUT_MODES } from "./output.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(FRAME_OUTPUT_MODES, ["lines", "raw", "hex", "json"]);
 * ```
 */
export const FRAME_OUTPUT_MODES: readonly FrameOutputMode[] = Object.freeze([
  "lines",
  "raw",
  "hex",
  "json",
]);

/**
 * A {@linkcode Writer} several producers share: each
 * {@linkcode SharedOutput.write} call writes its parts back to back, after
 * the previous call finished, so units never interleave. After a write
 * fails, {@linkcode SharedOutput.failure} holds the error and every later
 * write rejects with it.
 *
 * @example Two producers, whole units
 * ```ts
 * import { SharedOutput } from "./output.ts";
 * import { assertEquals } from "../_assert.ts";
 * let text = "";
 * const slow = { async write(p: Uint8Array) {
 *   await new Promise((r) => setTimeout(r, 1));
 *   text += new TextDecoder().decode(p.subarray(0, 1));
 *   return 1; // one byte at a time: partial writes
 * } };
 * const out = new SharedOutput(slow);
 * const te = new TextEncoder();
 * await Promise.all([
 *   out.write([te.encode("ab"), te.encode("c\n")]),
 *   out.write([te.encode("xyz\n")]),
 * ]);
 * assertEquals(text, "abc\nxyz\n");
 * ```
 */
export class SharedOutput {
  readonly #writer: Writer;
  #chain: Promise<void> = Promise.resolve();
  #failure: unknown = undefined;

  /** Wraps `writer`. */
  constructor(writer: Writer) {
    this.#writer = writer;
  }

  /** The error of the first failed write, if any. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Writes `parts` in order as one uninterrupted unit; resolves once written. */
  write(parts: readonly Uint8Array[]): Promise<void> {
    const run = this.#chain.then(async () => {
      if (this.#failure !== undefined) throw this.#failure;
      try {
        for (const p of parts) await writeAll(this.#writer, p);
      } catch (err) {
        this.#failure ??= err;
        throw err;
      }
    });
    this.#chain = run.catch(() => {});
    return run;
  }
}

/** Options for {@linkcode FrameWriter}. */
export interface FrameWriterOptions {
  /**
   * How each frame is written; see {@linkcode FrameOutputMode}.
   *
   * @default {"lines"}
   */
  mode?: FrameOutputMode;
  /**
   * Largest size of the reused output buffer; records are gathered in it
   * and written together. A record larger than the buffer is written on
   * its own.
   *
   * @default {DEFAULT_BUFFER_SIZE}
   */
  bufferSize?: number;
  /**
   * Size the buffer starts at. It doubles (up to `bufferSize`) only when
   * the records of one flush do not fit, so a writer that sees a few small
   * frames never holds a large buffer.
   *
   * @default {bufferSize}
   */
  initialSize?: number;
}

const NEWLINE = new Uint8Array([0x0a]);
const encoder = new TextEncoder();

/**
 * Formats frames into a reused buffer and writes whole records only: call
 * {@linkcode FrameWriter.add} for each frame (awaiting it when it returns a
 * promise, which it does only when the buffer had to be written), then
 * {@linkcode FrameWriter.flush} whenever the input would block or ends.
 * Through a {@linkcode SharedOutput}, each flush is one unit, so frames of
 * different producers never interleave mid-frame. Calls must not overlap:
 * settle each returned promise before the next call.
 *
 * @example Hex and JSON records
 * ```ts
 * import { FrameWriter } from "./output.ts";
 * import { assertEquals } from "../_assert.ts";
 * let text = "";
 * const out = { write(p: Uint8Array) { text += new TextDecoder().decode(p); return Promise.resolve(p.length); } };
 * const hex = new FrameWriter(out, { mode: "hex" });
 * await hex.add(new Uint8Array([0xde, 0xad]));
 * await hex.add(new Uint8Array(0));
 * await hex.flush();
 * assertEquals(text, "dead\n\n");
 * text = "";
 * const json = new FrameWriter(out, { mode: "json" });
 * await json.add(new TextEncoder().encode("hi"), { total_size: 2, filename: "a" });
 * await json.flush();
 * assertEquals(JSON.parse(text), { len: 2, data: "aGk=", header: { total_size: 2, filename: "a" } });
 * assertEquals(json.frames, 1);
 * ```
 */
export class FrameWriter {
  readonly #out: SharedOutput;
  readonly #mode: FrameOutputMode;
  readonly #max: number;
  #buf: Uint8Array;
  #pos = 0;
  #frames = 0;
  #bytes = 0;

  /** Writes to `output` (shared or not); see {@linkcode FrameWriterOptions}. */
  constructor(output: Writer | SharedOutput, options: FrameWriterOptions = {}) {
    const { mode = "lines", bufferSize = DEFAULT_BUFFER_SIZE } = options;
    if (!FRAME_OUTPUT_MODES.includes(mode)) {
      throw new TypeError(`Cannot write frames: unknown output mode "${mode}"`);
    }
    if (!Number.isSafeInteger(bufferSize) || bufferSize < 16) {
      throw new TypeError(
        `Cannot write frames: bufferSize must be an integer >= 16, got ${bufferSize}`,
      );
    }
    this.#out = output instanceof SharedOutput
      ? output
      : new SharedOutput(output);
    const initial = options.initialSize ?? bufferSize;
    if (!Number.isSafeInteger(initial) || initial < 16) {
      throw new TypeError(
        `Cannot write frames: initialSize must be an integer >= 16, got ${initial}`,
      );
    }
    this.#mode = mode;
    this.#max = bufferSize;
    this.#buf = new Uint8Array(Math.min(initial, bufferSize));
  }

  /** The output buffer's current size (it grows up to `bufferSize`). */
  get capacity(): number {
    return this.#buf.length;
  }

  /**
   * Doubles the buffer (keeping what it holds) until `size` more bytes fit
   * or it reaches `bufferSize`; whether they fit now.
   */
  #grow(size: number): boolean {
    const need = this.#pos + size;
    if (this.#buf.length >= this.#max) return false;
    let cap = this.#buf.length;
    while (cap < need && cap < this.#max) cap *= 2;
    const next = new Uint8Array(Math.min(cap, this.#max));
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
    return need <= next.length;
  }

  /** Frames added so far. */
  get frames(): number {
    return this.#frames;
  }

  /** Payload bytes added so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes formatted but not yet written. */
  get pending(): number {
    return this.#pos;
  }

  /**
   * Formats one frame. The payload is copied (or written) before this
   * returns or its promise settles, so the caller may reuse its buffer
   * afterwards. Returns a promise only when it had to write.
   */
  add(payload: Uint8Array, header?: JsonHeader): Promise<void> | undefined {
    this.#frames++;
    this.#bytes += payload.length;
    const mode = this.#mode;
    if (mode === "raw" || mode === "lines") {
      const size = payload.length + (mode === "lines" ? 1 : 0);
      if (size <= this.#buf.length - this.#pos || this.#grow(size)) {
        this.#buf.set(payload, this.#pos);
        this.#pos += payload.length;
        if (mode === "lines") this.#buf[this.#pos++] = 0x0a;
        return undefined;
      }
      return this.#addLarge(
        mode === "lines" ? [payload, NEWLINE] : [payload],
        size,
      );
    }
    const text = mode === "hex"
      ? payload.toHex() + "\n"
      : jsonRecord(payload, header);
    // hex and base64 are ASCII; a JSON header may hold up to 3 bytes per UTF-16 unit.
    const worst = mode === "hex" ? text.length : text.length * 3;
    if (worst <= this.#buf.length - this.#pos || this.#grow(worst)) {
      this.#pos += encoder.encodeInto(text, this.#buf.subarray(this.#pos))
        .written;
      return undefined;
    }
    return this.#addText(text, worst);
  }

  async #addLarge(parts: Uint8Array[], size: number): Promise<void> {
    await this.flush();
    if (size <= this.#buf.length) {
      for (const p of parts) {
        this.#buf.set(p, this.#pos);
        this.#pos += p.length;
      }
      return;
    }
    await this.#out.write(parts);
  }

  async #addText(text: string, worst: number): Promise<void> {
    await this.flush();
    if (worst <= this.#buf.length) {
      this.#pos += encoder.encodeInto(text, this.#buf).written;
      return;
    }
    await this.#out.write([encoder.encode(text)]);
  }

  /** Writes every formatted record as one unit. */
  async flush(): Promise<void> {
    if (this.#pos === 0) return;
    await this.#out.write([this.#buf.subarray(0, this.#pos)]);
    this.#pos = 0;
  }
}

function jsonRecord(payload: Uint8Array, header?: JsonHeader): string {
  const head = `{"len":${payload.length},"data":"${payload.toBase64()}"`;
  return header === undefined
    ? head + "}\n"
    : `${head},"header":${JSON.stringify(header)}}\n`;
}
