/**
 * The hot loops of a transfer: moving an exact number of bytes from a
 * source to a sink while hashing them, with two large reused buffers so
 * the next read, the current write and the hash overlap.
 *
 * @module
 */
import { writeAll } from "../copy.ts";
import type { BufferedReader, Reader, Writer } from "../frame/reader.ts";
import { TruncatedFrameError } from "../frame/errors.ts";

/** Something fed every byte, like `node:crypto`'s Hash. */
export interface Hasher {
  update(data: Uint8Array): unknown;
}

/** Buffer size of the body loops: 1 MiB each (see PLATFORM.md). */
export const PUMP_BUFFER_SIZE = 1024 * 1024;

/**
 * Buffer of a receiver's record reader: records and the start of each body
 * pass through it, bodies then go straight into the two pump buffers. Kept
 * small because every connection has one from its first byte: 256 KiB
 * buffers made 400 idle senders cost 65 MB of RSS.
 */
export const RECORD_BUFFER_SIZE = 16 * 1024;

/** Two reused buffers; one pair per connection. */
export type Buffers = [Uint8Array, Uint8Array];

/** Allocates a buffer pair. */
export function buffers(size: number = PUMP_BUFFER_SIZE): Buffers {
  return [new Uint8Array(size), new Uint8Array(size)];
}

/** Writes every byte of `data` (the copy loop's own helper). */
export { writeAll };

/**
 * Where received bytes go. A sink whose write fails keeps swallowing the
 * rest of the body, so the stream stays in step; `error` records why.
 */
export class Sink {
  #w: Writer | null;
  error: unknown = undefined;
  constructor(w: Writer | null) {
    this.#w = w;
  }
  /** Starts writing `data`; failures are recorded, never thrown. */
  async write(data: Uint8Array): Promise<void> {
    if (this.#w === null) return;
    try {
      await writeAll(this.#w, data);
    } catch (err) {
      this.error = err;
      this.#w = null;
    }
  }
}

/**
 * Moves exactly `n` body bytes from `br` to `sink`, feeding `hash`. Bytes
 * already buffered go first; the rest is read straight from the source
 * into the two buffers. Throws `TruncatedFrameError` if the input ends
 * first.
 */
export async function receiveExact(
  br: BufferedReader,
  n: number,
  sink: Sink,
  hash: Hasher | null,
  bufs: Buffers,
  onBytes?: (n: number) => void,
): Promise<void> {
  const at = br.offset;
  let left = n;
  while (left > 0 && br.buffered > 0) {
    const view = (await br.readSome(left))!;
    hash?.update(view);
    await sink.write(view);
    left -= view.length;
    onBytes?.(view.length);
  }
  if (left === 0) return;
  const src: Reader = br.reader;
  let [cur, spare] = bufs;
  const readMore = async (into: Uint8Array): Promise<number> => {
    const got = await src.read(
      into.length > left ? into.subarray(0, left) : into,
    );
    if (got === null) {
      throw new TruncatedFrameError(
        `cannot decode frame at byte ${at}: expected a body of ${n} bytes, got ${
          n - left
        } bytes then end of input`,
        at,
      );
    }
    return got;
  };
  let got = await readMore(cur);
  for (;;) {
    const chunk = cur.subarray(0, got);
    left -= got;
    [cur, spare] = [spare, cur];
    const next = left > 0 ? readMore(cur) : null;
    next?.catch(() => {});
    const written = sink.write(chunk);
    hash?.update(chunk);
    await written;
    onBytes?.(got);
    if (next === null) return;
    got = await next;
  }
}

/**
 * Sends exactly `n` bytes read from `src` (a file) to `dst`, feeding
 * `hash`. Reading the next chunk overlaps writing and hashing this one.
 * Throws if `src` ends early (the file shrank while being sent).
 */
export async function sendExact(
  src: Reader,
  dst: Writer,
  n: number,
  hash: Hasher,
  bufs: Buffers,
  onBytes?: (n: number) => void,
): Promise<void> {
  let left = n;
  let [cur, spare] = bufs;
  const readMore = async (into: Uint8Array): Promise<number> => {
    const got = await src.read(
      into.length > left ? into.subarray(0, left) : into,
    );
    if (got === null) {
      throw new Error(
        `file shrank while being sent (${n - left} of ${n} bytes)`,
      );
    }
    return got;
  };
  if (left === 0) return;
  let got = await readMore(cur);
  for (;;) {
    const chunk = cur.subarray(0, got);
    left -= got;
    [cur, spare] = [spare, cur];
    const next = left > 0 ? readMore(cur) : null;
    next?.catch(() => {});
    const written = writeAll(dst, chunk);
    written.catch(() => {});
    hash.update(chunk);
    await written;
    onBytes?.(got);
    if (next === null) return;
    got = await next;
  }
}
