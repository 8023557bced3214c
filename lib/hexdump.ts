/**
 * Showing arbitrary bytes to a person: as text when they are printable
 * UTF-8, else as a classic hex dump.
 *
 * @module
 */

const strict = new TextDecoder("utf-8", { fatal: true });

/**
 * Whether `data` is valid UTF-8 without control characters other than tab,
 * newline and carriage return.
 *
 * @example Usage
 * ```ts
 * import { isPrintableText } from "./hexdump.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(isPrintableText(new TextEncoder().encode("héllo\n")), true);
 * assertEquals(isPrintableText(new Uint8Array([0x00, 0x41])), false);
 * ```
 */
export function isPrintableText(data: Uint8Array): boolean {
  let text: string;
  try {
    text = strict.decode(data);
  } catch {
    return false;
  }
  // deno-lint-ignore no-control-regex
  return !/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(text);
}

/**
 * Formats bytes as hex dump lines: offset, 16 hex bytes, ASCII column. The
 * first line's offset is `offset` (for a dump that continues a stream).
 *
 * @example Usage
 * ```ts
 * import { hexdump } from "./hexdump.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(
 *   hexdump(new Uint8Array([0xde, 0xad, 0x41])),
 *   "00000000  de ad 41                                          |..A|\n",
 * );
 * ```
 */
export function hexdump(data: Uint8Array, offset = 0): string {
  let out = "";
  for (let off = 0; off < data.length; off += 16) {
    const row = data.subarray(off, off + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0"));
    const left = hex.slice(0, 8).join(" ");
    const right = hex.slice(8).join(" ");
    const ascii = [...row].map((b) =>
      b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."
    ).join("");
    out += `${(offset + off).toString(16).padStart(8, "0")}  ${
      left.padEnd(23)
    }  ${right.padEnd(23)}  |${ascii}|\n`;
  }
  return out;
}
