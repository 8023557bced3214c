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

/** Size the read and output buffers of {@linkcode receiveFrames} start at. */
export const INITIAL_BUFFER_SIZE = 4096;

/** Options for {@linkcode receiveFrames}. */
export interface ReceiveFramesOptions extends FramingOptions {
  /**
   * How each payload is written; see `FrameOutputMode`.
   *
   * @default {"lines"}
   */
  mode?: FrameWriterOptions["mode"];
  /**
   * Largest size of the reused read buffer and of the reused output
   * buffer. Both start at {@linkcode INITIAL_BUFFER_SIZE} (or this, when
   * smaller) and double only when a read fills the read buffer or one
   * read's records do not fit the output buffer: an idle or trickling
   * client costs a few KiB, a bulk sender gets the full size after a few
   * reads.
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
    initialSize: Math.min(bufferSize, INITIAL_BUFFER_SIZE),
    ...(options.mode ? { mode: options.mode } : {}),
  });
  const dec = new FramedDecoder(options);
  let buf = new Uint8Array(Math.min(bufferSize, INITIAL_BUFFER_SIZE));
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
      // A full read: the peer is sending in bulk. The decoder holds no view
      // of `buf` once next() returns null, so a larger one can replace it.
      if (n === buf.length && buf.length < bufferSize) {
        buf = new Uint8Array(Math.min(bufferSize, buf.length * 2));
      }
    }
    dec.end();
  } catch (err) {
    // Frames decoded before the error are good; write them, then fail.
    if (out.pending > 0) await out.flush().catch(() => {});
    throw err;
  }
  return { frames: out.frames, bytes: out.bytes, received };
}
