/**
 * The byte-moving core: `writeAll` and a double-buffered `copy` loop.
 *
 * Reads into one of two large reused buffers while the other is being
 * written, so a slow source (a pipe hands over at most 64 KiB per read) and
 * the socket write overlap. Nothing is allocated per chunk.
 *
 * @module
 */

/** Anything with Deno's `read` contract (a conn, a file, stdin). */
export interface Reader {
  /** Reads into `p`; resolves with the byte count, or `null` at end of input. */
  read(p: Uint8Array): Promise<number | null>;
  /** The OS descriptor behind it, when bulk copies may bypass `read` (see fdpump.ts). */
  readonly fd?: number;
}

/** Anything with Deno's `write` contract (partial writes allowed). */
export interface Writer {
  /** Writes from `p`; resolves with how many bytes were taken (may be fewer). */
  write(p: Uint8Array): Promise<number>;
  /** The OS descriptor behind it, when bulk copies may bypass `write` (see fdpump.ts). */
  readonly fd?: number;
}

/** Default buffer size of the copy loop: 256 KiB (see PLATFORM.md's throughput table). */
export const DEFAULT_BUFFER_SIZE = 256 * 1024;

/**
 * Writes every byte of `data`, looping over partial writes.
 *
 * @example Usage
 * ```ts
 * import { writeAll } from "./copy.ts";
 * import { assertEquals } from "./_assert.ts";
 * const got: number[] = [];
 * const oneByteAtATime = { write(p: Uint8Array) { got.push(p[0]!); return Promise.resolve(1); } };
 * await writeAll(oneByteAtATime, new Uint8Array([1, 2, 3]));
 * assertEquals(got, [1, 2, 3]);
 * ```
 */
export async function writeAll(w: Writer, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    off += await w.write(off === 0 ? data : data.subarray(off));
  }
}

/** Options for {@linkcode copy}. */
export interface CopyOptions {
  /** Size of each of the two buffers. @default {256 KiB} */
  bufferSize?: number;
  /** Called after each chunk has been written, with its size. */
  onChunk?: (bytes: number) => void;
}

/**
 * Copies `src` to `dst` until `src` reports EOF; returns the byte count.
 * Reading the next chunk overlaps writing the previous one.
 *
 * @example Usage
 * ```ts
 * import { copy } from "./copy.ts";
 * import { assertEquals } from "./_assert.ts";
 * const data = new Uint8Array(1000).fill(7);
 * let pos = 0;
 * const src = { read(p: Uint8Array) {
 *   if (pos >= data.length) return Promise.resolve(null);
 *   const n = Math.min(p.length, 300, data.length - pos);
 *   p.set(data.subarray(pos, pos + n)); pos += n; return Promise.resolve(n);
 * } };
 * let total = 0;
 * const dst = { write(p: Uint8Array) { total += p.length; return Promise.resolve(p.length); } };
 * assertEquals(await copy(src, dst), 1000);
 * assertEquals(total, 1000);
 * ```
 */
export async function copy(
  src: Reader,
  dst: Writer,
  options: CopyOptions = {},
): Promise<number> {
  return (await copyUntil(src, dst, () => false, options)).bytes;
}

/** What {@linkcode copyUntil} did: bytes copied, and whether `src` reached EOF. */
export interface CopyUntilResult {
  bytes: number;
  eof: boolean;
}

/**
 * {@linkcode copy}, stopping early once `stop(total)` returns true after a
 * chunk has been written. It stops before issuing another read, so no
 * byte is left in flight and the caller can take over `src` (the pump
 * hand-off in fdpump.ts).
 *
 * @example Usage
 * ```ts
 * import { copyUntil } from "./copy.ts";
 * import { assertEquals } from "./_assert.ts";
 * let reads = 0;
 * const src = { read(p: Uint8Array) { reads++; p.fill(1, 0, 10); return Promise.resolve(10); } };
 * const dst = { write(p: Uint8Array) { return Promise.resolve(p.length); } };
 * const r = await copyUntil(src, dst, (total) => total >= 30);
 * assertEquals(r, { bytes: 30, eof: false });
 * assertEquals(reads, 3);
 * ```
 */
export async function copyUntil(
  src: Reader,
  dst: Writer,
  stop: (total: number) => boolean,
  options: CopyOptions = {},
): Promise<CopyUntilResult> {
  const size = options.bufferSize ?? DEFAULT_BUFFER_SIZE;
  const onChunk = options.onChunk;
  let cur = new Uint8Array(size);
  let spare = new Uint8Array(size);
  let total = 0;
  let n = await src.read(cur);
  while (n !== null) {
    const chunk = cur.subarray(0, n);
    [cur, spare] = [spare, cur];
    if (stop(total + n)) {
      await writeAll(dst, chunk);
      total += n;
      onChunk?.(n);
      return { bytes: total, eof: false };
    }
    const nextRead = src.read(cur);
    // The read is pending while the chunk is written. If it fails first (the
    // peer reset the connection), nothing would be waiting on it yet, and an
    // unhandled rejection ends the whole process: mark it handled now. The
    // `await` below still receives the error; after a failed write its
    // result is simply dropped.
    nextRead.catch(() => {});
    await writeAll(dst, chunk);
    total += n;
    onChunk?.(n);
    n = await nextRead;
  }
  return { bytes: total, eof: true };
}
