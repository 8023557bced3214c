/**
 * ASCII upper-casing for the echo servers' `--upper` option, shared by the
 * event-loop engines and the native threads.
 *
 * @module
 */

/**
 * Upper-cases ASCII `a`-`z` in place (in the first `length` bytes); other
 * bytes (UTF-8 included) are left alone.
 *
 * @example Usage
 * ```ts
 * import { upperAsciiInPlace } from "./upper.ts";
 * import { assertEquals } from "./_assert.ts";
 * const b = new TextEncoder().encode("hah é");
 * upperAsciiInPlace(b);
 * assertEquals(new TextDecoder().decode(b), "HAH é");
 * ```
 */
export function upperAsciiInPlace(b: Uint8Array, length = b.length): void {
  for (let i = 0; i < length; i++) {
    const c = b[i]!;
    if (c >= 0x61 && c <= 0x7a) b[i] = c - 0x20;
  }
}
