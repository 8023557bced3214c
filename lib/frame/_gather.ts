/**
 * How the frame decoders size the array a payload spread over several
 * chunks is gathered into: it grows with the bytes that arrive, not with
 * the length the sender announced.
 *
 * @module
 */

/** Size a gathered payload's array starts at before it doubles. */
export const GATHER_START = 256 * 1024;

/**
 * The size for a payload of `need` bytes being gathered, with room for
 * `more` bytes beyond an array of `have`: `have` (at least
 * {@linkcode GATHER_START}) times 4 until they fit, never beyond `need`, so
 * the last array is exactly the payload. Growing fourfold copies each byte
 * a third of a time more on average, and the array is never more than
 * four times the bytes received.
 *
 * @example Usage
 * ```ts
 * import { gatherSize } from "./_gather.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(gatherSize(16 * 1024 * 1024, 0, 1), 256 * 1024);
 * assertEquals(gatherSize(100, 0, 1), 100);
 * assertEquals(gatherSize(16 * 1024 * 1024, 262144, 10), 1024 * 1024);
 * assertEquals(gatherSize(300_000, 262144, 10), 300_000);
 * ```
 */
export function gatherSize(need: number, have: number, more: number): number {
  let size = Math.max(have, GATHER_START);
  while (size < have + more) size *= 4;
  return Math.min(size, need);
}
