/**
 * `-C`: every bare LF of the input goes out as CR LF, as `nc -C` sends it
 * (measured against OpenBSD nc 1.219: an LF that already follows a CR is
 * left alone, so `\r\n` stays `\r\n`).
 *
 * @module
 */
import type { Reader } from "./copy.ts";

/**
 * Wraps `input` so each LF (0x0a) not preceded by CR reads as CR LF. Reads at most half of the
 * caller's buffer from `input`, so an expanded chunk always fits; a
 * one-byte buffer gets the CR and the LF on successive reads.
 *
 * @example Usage
 * ```ts
 * import { crlfReader } from "./crlf.ts";
 * import { assertEquals } from "./_assert.ts";
 * const chunks = [new TextEncoder().encode("a\nb\r\n")];
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
  let lastWasCr = false; // across reads: `\r` at the end of one, `\n` next
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
        if (b === 0x0a && !lastWasCr) {
          p[out++] = 0x0d;
          if (out === p.length) {
            pendingLf = true; // only when p has room for one byte
            lastWasCr = false;
            return out;
          }
        }
        p[out++] = b;
        lastWasCr = b === 0x0d;
      }
      return out;
    },
  };
}
