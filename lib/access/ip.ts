/**
 * IP address and CIDR parsing into bytes, for access lists: IPv4 dotted
 * quads, IPv6 in every textual form (`::`, embedded IPv4, a `%zone`
 * suffix), and IPv4-mapped IPv6 folded to plain IPv4 so a dual-stack
 * listener's `::ffff:10.1.2.3` peer matches the rule `10.0.0.0/8`.
 *
 * @module
 */

/** An address or block: 4 bytes (IPv4) or 16 (IPv6), and a prefix length. */
export interface IpBlock {
  /** The network address, host bits cleared. */
  readonly bytes: Uint8Array;
  /** Leading bits that must match: 0-32 for IPv4, 0-128 for IPv6. */
  readonly prefix: number;
}

/**
 * Parses a dotted-quad IPv4 address; `undefined` if `text` is not one.
 * Leading zeros are refused (`010.0.0.1` is octal to some tools, decimal
 * to others).
 *
 * @example Usage
 * ```ts
 * import { parseIPv4 } from "./ip.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(parseIPv4("10.0.0.255"), new Uint8Array([10, 0, 0, 255]));
 * assertEquals(parseIPv4("10.0.0.256"), undefined);
 * ```
 */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

/**
 * Parses an IPv6 address (a `%zone` suffix is ignored); `undefined` if
 * `text` is not one.
 *
 * @example Usage
 * ```ts
 * import { parseIPv6 } from "./ip.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(parseIPv6("::1")?.[15], 1);
 * assertEquals(parseIPv6("::ffff:1.2.3.4")?.subarray(10), new Uint8Array([255, 255, 1, 2, 3, 4]));
 * assertEquals(parseIPv6("1:::2"), undefined);
 * ```
 */
export function parseIPv6(text: string): Uint8Array | undefined {
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (text.length === 0 || text.length > 45) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (s: string, last: boolean): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (last && i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else return undefined;
    }
    return out;
  };
  const head = groupsOf(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groupsOf(halves[1]!, true) : [];
  if (!head || !tail) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 2 ? total > 7 : total !== 8) return undefined;
  const groups = [
    ...head,
    ...new Array<number>(8 - total).fill(0),
    ...tail,
  ];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Whether 16 bytes are an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`). */
function isMapped(b: Uint8Array): boolean {
  if (b.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/**
 * Parses an IP address literal of either family into bytes, folding
 * IPv4-mapped IPv6 to 4 bytes; `undefined` for anything else (a host name).
 *
 * @example Usage
 * ```ts
 * import { parseIp } from "./ip.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(parseIp("::ffff:127.0.0.1"), new Uint8Array([127, 0, 0, 1]));
 * assertEquals(parseIp("[::1]")?.length, 16);
 * assertEquals(parseIp("example.test"), undefined);
 * ```
 */
export function parseIp(text: string): Uint8Array | undefined {
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  const v4 = parseIPv4(text);
  if (v4) return v4;
  const v6 = parseIPv6(text);
  if (!v6) return undefined;
  return isMapped(v6) ? v6.slice(12) : v6;
}

/**
 * Parses `ADDR` or `ADDR/PREFIX` into a block, clearing host bits
 * (`10.1.2.3/8` is `10.0.0.0/8`). An IPv4-mapped block of prefix 96 or
 * more becomes the IPv4 block it covers. Returns `undefined` when `text`
 * has no IP literal before the slash (a host name); throws a `RangeError`
 * for a literal with a bad prefix.
 *
 * @example Usage
 * ```ts
 * import { parseBlock } from "./ip.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * assertEquals(parseBlock("10.1.2.3/8"), { bytes: new Uint8Array([10, 0, 0, 0]), prefix: 8 });
 * assertEquals(parseBlock("::ffff:10.0.0.0/104")?.prefix, 8);
 * assertThrows(() => parseBlock("10.0.0.0/33"), RangeError);
 * ```
 */
export function parseBlock(text: string): IpBlock | undefined {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  let bytes: Uint8Array | undefined;
  if (addrText.startsWith("[") && addrText.endsWith("]")) {
    bytes = parseIPv6(addrText.slice(1, -1));
  } else bytes = parseIPv4(addrText) ?? parseIPv6(addrText);
  if (!bytes) return undefined;
  const bits = bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) {
      throw new RangeError(
        `Cannot use ${text}: the prefix must be 0-${bits}`,
      );
    }
    prefix = Number(p);
  }
  if (isMapped(bytes) && prefix >= 96) {
    bytes = bytes.slice(12);
    prefix -= 96;
  }
  return { bytes: maskTo(bytes, prefix), prefix };
}

/** A copy of `bytes` with every bit after the first `prefix` cleared. */
function maskTo(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i]! &= (0xff00 >> keep) & 0xff;
  }
  return out;
}

/**
 * Whether `addr` (bytes from {@linkcode parseIp}) lies in `block`.
 * Families never mix: an IPv6 block does not match an IPv4 address.
 *
 * @example Usage
 * ```ts
 * import { inBlock, parseBlock, parseIp } from "./ip.ts";
 * import { assertEquals } from "../_assert.ts";
 * const lan = parseBlock("192.168.0.0/16")!;
 * assertEquals(inBlock(parseIp("::ffff:192.168.7.9")!, lan), true);
 * assertEquals(inBlock(parseIp("192.169.0.1")!, lan), false);
 * ```
 */
export function inBlock(addr: Uint8Array, block: IpBlock): boolean {
  if (addr.length !== block.bytes.length) return false;
  const whole = block.prefix >> 3;
  for (let i = 0; i < whole; i++) {
    if (addr[i] !== block.bytes[i]) return false;
  }
  const rest = block.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff00 >> rest) & 0xff;
  return (addr[whole]! & mask) === block.bytes[whole];
}

/**
 * Formats a block for messages: `10.0.0.0/8`, `2001:db8::/32` (IPv6 in
 * full groups with the longest zero run compressed).
 */
export function formatBlock(block: IpBlock): string {
  const b = block.bytes;
  let addr: string;
  if (b.length === 4) addr = [...b].join(".");
  else {
    const groups: number[] = [];
    for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
    let bestAt = -1, bestLen = 1;
    for (let i = 0; i < 8;) {
      let j = i;
      while (j < 8 && groups[j] === 0) j++;
      if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
      i = j === i ? i + 1 : j;
    }
    const hex = groups.map((g) => g.toString(16));
    addr = bestAt < 0 ? hex.join(":") : hex.slice(0, bestAt).join(":") +
      "::" + hex.slice(bestAt + bestLen).join(":");
  }
  return block.prefix === b.length * 8 ? addr : `${addr}/${block.prefix}`;
}
