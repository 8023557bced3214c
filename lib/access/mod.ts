/**
 * Access lists for listeners: `--allow`/`--deny` entries (addresses, CIDR
 * blocks of either family, host names resolved at start) and the files
 * that hold them, matched per peer.
 *
 * @example Usage
 * ```ts
 * import { buildAccessList } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const acl = await buildAccessList({ allow: ["127.0.0.0/8,::1"] });
 * assertEquals(acl.allows("::ffff:127.0.0.1"), true);
 * assertEquals(acl.allows("::2"), false);
 * ```
 *
 * @module
 */
export {
  type AccessEntry,
  AccessList,
  type AccessOptions,
  buildAccessList,
  parseAccessEntries,
} from "./list.ts";
export {
  formatBlock,
  inBlock,
  type IpBlock,
  parseBlock,
  parseIp,
  parseIPv4,
  parseIPv6,
} from "./ip.ts";
