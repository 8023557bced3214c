/**
 * `-C`: every LF of the input goes out as CR LF, as `nc -C` and `ncat -C`
 * send it (a CR already before the LF is kept, so `\r\n` becomes `\r\r\n`,
 * as nc does).
 *
 * @module
 */
import type { Reader } from "./copy.ts";

/**
 * Wraps `input` so each LF (0x0a) reads as CR LF. Reads at most half of the
 * caller's buffer from `input`, so an expanded chunk always fits; a
 * one-byte buffer gets the CR and the LF on successive reads.
 *
 * @example Usage
 * ```ts
 * import { crlfReader } from "./crlf.ts";
 * import { assertEquals } from "./_assert.ts";
 * const chunks = [new TextEncoder().encode("a\nb\n")];
 * const r = crlfReader({ read(p: Uint8Array) {
 *   const c = chunks.shift(); if (!c) return Promise.resolve(null);
 *   p.set(c); return Promise.resolve(c.length);
 * } });
 * const buf = new Uint8Array(64);
 * const n = await r.read(buf);
 * assertEquals(new TextDecoder().decode(buf.subarray(0, n!)), "a\r\nb\r\n");
 * assertEquals(await r.read(buf), null);
 * ```
 */
export function crlfReader(input: Reader): Reader {
  let scratch = new Uint8Array(0);
  let pendingLf = false;
  return {
    async read(p: Uint8Array): Promise<number | null> {
      if (p.length === 0) return 0;
      if (pendingLf) {
        pendingLf = false;
        p[0] = 0x0a;
        return 1;
      }
      const want = Math.max(1, p.length >> 1);
      if (scratch.length < want) scratch = new Uint8Array(want);
      const n = await input.read(scratch.subarray(0, want));
      if (n === null) return null;
      let out = 0;
      for (let i = 0; i < n; i++) {
        const b = scratch[i]!;
        if (b === 0x0a) {
          p[out++] = 0x0d;
          if (out === p.length) {
            pendingLf = true; // only when p has room for one byte
            return out;
          }
        }
        p[out++] = b;
      }
      return out;
    },
  };
}
