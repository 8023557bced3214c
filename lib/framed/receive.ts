/**
 * The receiving half of the framed stream modes: decode frames from a byte
 * source and write each payload out (`--output lines|raw|hex|json`).
 *
 * @module
 */
import { DEFAULT_BUFFER_SIZE, type Reader, type Writer } from "../copy.ts";
import type { FramingOptions } from "./options.ts";
import { FramedDecoder } from "./decoder.ts";
import {
  FrameWriter,
  type FrameWriterOptions,
  type SharedOutput,
} from "./output.ts";

/** Options for {@linkcode receiveFrames}. */
export interface ReceiveFramesOptions extends FramingOptions {
  /**
   * How each payload is written; see `FrameOutputMode`.
   *
   * @default {"lines"}
   */
  mode?: FrameWriterOptions["mode"];
  /**
   * Size of the reused read buffer and of the reused output buffer.
   *
   * @default {DEFAULT_BUFFER_SIZE}
   */
  bufferSize?: number;
  /** Called after each read with the number of bytes read (progress, idle timers). */
  onRead?: (bytes: number) => void;
}

/** What {@linkcode receiveFrames} decoded. */
export interface ReceiveFramesResult {
  /** Frames decoded and written. */
  frames: number;
  /** Payload bytes written (before formatting). */
  bytes: number;
  /** Bytes read from the input, prefixes and headers included. */
  received: number;
}

/**
 * Reads `input` to its end, decodes frames (see {@linkcode FramingOptions})
 * and writes each payload to `output`. All frames decoded from one read are
 * written together in one write of a reused buffer; through a
 * `SharedOutput`, that write is one unit, so producers never interleave
 * mid-frame.
 *
 * Malformed input throws the decoder's typed `FrameError` (a truncated last
 * frame, an oversize length, a bad header, ...): frames before it are
 * written, nothing after it is.
 *
 * @example Sticky frames split apart
 * ```ts
 * import { receiveFrames } from "./receive.ts";
 * import { assertEquals } from "../_assert.ts";
 * const wire = Uint8Array.fromHex("0002" + "6869" + "0000" + "0002" + "796f");
 * const chunks = [wire.subarray(0, 3), wire.subarray(3)];
 * const input = { read(p: Uint8Array) {
 *   const c = chunks.shift();
 *   if (!c) return Promise.resolve(null);
 *   p.set(c);
 *   return Promise.resolve(c.length);
 * } };
 * let text = "";
 * const output = { write(p: Uint8Array) { text += new TextDecoder().decode(p); return Promise.resolve(p.length); } };
 * const r = await receiveFrames(input, output, { format: "u16be" });
 * assertEquals(text, "hi\n\nyo\n");
 * assertEquals(r, { frames: 3, bytes: 4, received: 10 });
 * ```
 */
export async function receiveFrames(
  input: Reader,
  output: Writer | SharedOutput,
  options: ReceiveFramesOptions = {},
): Promise<ReceiveFramesResult> {
  const bufferSize = options.bufferSize ?? DEFAULT_BUFFER_SIZE;
  const out = new FrameWriter(output, {
    bufferSize,
    ...(options.mode ? { mode: options.mode } : {}),
  });
  const dec = new FramedDecoder(options);
  const buf = new Uint8Array(bufferSize);
  let received = 0;
  try {
    let n: number | null;
    while ((n = await input.read(buf)) !== null) {
      received += n;
      options.onRead?.(n);
      dec.push(buf.subarray(0, n));
      // Every payload is consumed before the next read reuses `buf`.
      for (let p = dec.next(); p !== null; p = dec.next()) {
        const wait = out.add(p, dec.header);
        if (wait) await wait;
      }
      await out.flush();
    }
    dec.end();
  } catch (err) {
    // Frames decoded before the error are good; write them, then fail.
    if (out.pending > 0) await out.flush().catch(() => {});
    throw err;
  }
  return { frames: out.frames, bytes: out.bytes, received };
}
