/**
 * How the frame decoders size the array a payload spread over several
 * chunks is gathered into: it grows with the bytes that arrive, not with
 * the length the sender announced.
 *
 * @module
 */

/** The smallest array a gathered payload starts in. */
export const GATHER_MIN = 16 * 1024;

/**
 * The size for a payload of `need` bytes being gathered, with room for
 * `more` bytes beyond an array of `have` (0: none yet). The first array is
 * four times the first bytes (at least {@linkcode GATHER_MIN}); each next
 * one four times the last. Never beyond `need`, so the last array is
 * exactly the payload. The array is never more than four times the bytes
 * received (or 16 KiB), and each byte is copied a third of a time more at
 * most.
 *
 * @example Usage
 * ```ts
 * import { gatherSize } from "./_gather.ts";
 * import { assertEquals } from "../_assert.ts";
 * const MiB = 1024 * 1024;
 * assertEquals(gatherSize(16 * MiB, 0, 1), 16 * 1024); // a prefix and one byte
 * assertEquals(gatherSize(16 * MiB, 0, 65532), 262128); // a bulk sender
 * assertEquals(gatherSize(100, 0, 1), 100);
 * assertEquals(gatherSize(16 * MiB, 16384, 10), 65536);
 * assertEquals(gatherSize(300_000, 262128, 65536), 300_000);
 * ```
 */
export function gatherSize(need: number, have: number, more: number): number {
  let size = have === 0 ? Math.max(GATHER_MIN, 4 * more) : have;
  while (size < have + more) size *= 4;
  return Math.min(size, need);
}
