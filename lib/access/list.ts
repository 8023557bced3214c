/**
 * Access lists for listeners (`--allow`, `--deny`, `--allowfile`,
 * `--denyfile`): which peers may talk to a server. Built once at start
 * (host names resolved then), matched per connection or datagram with no
 * allocation beyond parsing the peer's address.
 *
 * @module
 */
import { DenocatError, netError, UsageError } from "../errors.ts";
import {
  formatBlock,
  inBlock,
  type IpBlock,
  parseBlock,
  parseIp,
} from "./ip.ts";

/** One entry of a list: an IP block, or a host name still to resolve. */
export type AccessEntry =
  | { kind: "block"; block: IpBlock; text: string }
  | { kind: "host"; host: string; text: string };

/**
 * Splits a `--allow`/`--deny` value or a list file's text into entries.
 * Entries are separated by commas, spaces or newlines; `#` starts a
 * comment that runs to the end of the line. Throws a {@linkcode UsageError}
 * naming `source` for an entry that is neither an IP block nor a host name.
 *
 * @example Usage
 * ```ts
 * import { parseAccessEntries } from "./list.ts";
 * import { assertEquals } from "../_assert.ts";
 * const e = parseAccessEntries("10.0.0.0/8, ::1 # loopback\ngw.example.test", "--allow");
 * assertEquals(e.map((x) => x.kind), ["block", "block", "host"]);
 * ```
 */
export function parseAccessEntries(
  text: string,
  source: string,
): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    const hash = line.indexOf("#");
    const body = hash >= 0 ? line.slice(0, hash) : line;
    for (const item of body.split(/[\s,]+/)) {
      if (item === "") continue;
      let block: IpBlock | undefined;
      try {
        block = parseBlock(item);
      } catch (err) {
        throw new UsageError(
          `invalid ${source} entry: ${item} (${
            (err as Error).message.replace(/^Cannot use [^:]*: /, "")
          })`,
        );
      }
      if (block) out.push({ kind: "block", block, text: item });
      else if (isHostName(item)) {
        out.push({ kind: "host", host: item, text: item });
      } else {
        throw new UsageError(
          `invalid ${source} entry: ${item} (an address, ADDR/PREFIX or host name expected)`,
        );
      }
    }
  }
  return out;
}

/** A DNS name: labels of letters, digits, `-` and `_`, no slash. */
function isHostName(s: string): boolean {
  return s.length <= 253 &&
    /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/
      .test(s);
}

/**
 * The decision for each peer: with any allow entries, a peer must match
 * one; a peer matching a deny entry is refused whatever else it matches.
 * A peer whose address is not an IP literal (a Unix socket) is refused
 * once any list is set.
 *
 * IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`, how a dual-stack listener
 * sees IPv4 clients) are matched as the IPv4 address they carry; IPv6
 * blocks never match IPv4 peers and IPv4 blocks never match IPv6 peers.
 *
 * @example Usage
 * ```ts
 * import { AccessList, parseAccessEntries } from "./list.ts";
 * import { assertEquals } from "../_assert.ts";
 * const acl = AccessList.fromBlocks(
 *   parseAccessEntries("10.0.0.0/8", "--allow"),
 *   parseAccessEntries("10.6.6.6", "--deny"),
 * );
 * assertEquals(acl.allows("10.1.2.3"), true);
 * assertEquals(acl.allows("::ffff:10.1.2.3"), true);
 * assertEquals(acl.allows("10.6.6.6"), false);
 * assertEquals(acl.allows("192.0.2.1"), false);
 * ```
 */
export class AccessList {
  readonly #allow: IpBlock[];
  readonly #deny: IpBlock[];
  readonly #restrictive: boolean;

  private constructor(allow: IpBlock[], deny: IpBlock[], restrictive: boolean) {
    this.#allow = allow;
    this.#deny = deny;
    this.#restrictive = restrictive;
  }

  /** A list with no entries: every peer is allowed. */
  static readonly open: AccessList = new AccessList([], [], false);

  /**
   * A list from already-resolved entries; throws a `TypeError` if any is
   * still a host name (use {@linkcode buildAccessList} for those).
   */
  static fromBlocks(
    allow: readonly AccessEntry[],
    deny: readonly AccessEntry[] = [],
  ): AccessList {
    const blocks = (entries: readonly AccessEntry[]) =>
      entries.map((e) => {
        if (e.kind !== "block") {
          throw new TypeError(`Cannot match ${e.host}: not resolved`);
        }
        return e.block;
      });
    return new AccessList(
      blocks(allow),
      blocks(deny),
      allow.length > 0,
    );
  }

  /** Whether an allow list is set (only the peers it names may connect). */
  get allowsOnlyListed(): boolean {
    return this.#restrictive;
  }

  /** Whether the list restricts anything at all. */
  get active(): boolean {
    return this.#restrictive || this.#deny.length > 0;
  }

  /** Whether a peer at `address` (an IP literal, any form) may connect. */
  allows(address: string): boolean {
    if (!this.active) return true;
    const ip = parseIp(address);
    if (!ip) return false;
    for (const b of this.#deny) if (inBlock(ip, b)) return false;
    if (!this.#restrictive) return true;
    for (const b of this.#allow) if (inBlock(ip, b)) return true;
    return false;
  }

  /** Whether a peer at `addr` may connect (a Unix peer only when no list is set). */
  allowsAddr(addr: Deno.Addr): boolean {
    if (addr.transport === "tcp" || addr.transport === "udp") {
      return this.allows(addr.hostname);
    }
    return !this.active;
  }

  /** The rules for `-v`: `allow 10.0.0.0/8, ::1; deny 10.6.6.6`. */
  describe(): string {
    const parts: string[] = [];
    if (this.#restrictive) {
      parts.push(`allow ${this.#allow.map(formatBlock).join(", ")}`);
    }
    if (this.#deny.length) {
      parts.push(`deny ${this.#deny.map(formatBlock).join(", ")}`);
    }
    return parts.join("; ") || "everyone";
  }
}

/** Options for {@linkcode buildAccessList}: the command line's lists. */
export interface AccessOptions {
  /** `--allow` values (each a list). */
  allow?: readonly string[];
  /** `--deny` values (each a list). */
  deny?: readonly string[];
  /** `--allowfile` paths. */
  allowFiles?: readonly string[];
  /** `--denyfile` paths. */
  denyFiles?: readonly string[];
  /**
   * Resolves a host name to every address it has.
   * @default {all addresses from the system resolver}
   */
  resolve?: (host: string) => Promise<string[]>;
}

async function systemResolve(host: string): Promise<string[]> {
  const { lookup } = await import("node:dns/promises");
  return (await lookup(host, { all: true })).map((a) => a.address);
}

/**
 * Reads the files, resolves host names (every address of each) and builds
 * the list. A file that cannot be read or a name that does not resolve is
 * a one-line error: better to refuse to start than to guard the wrong
 * peers. An `--allow` that ends up empty (a file of comments only) is an
 * error too, rather than silently allowing everyone.
 *
 * @example Usage
 * ```ts
 * import { buildAccessList } from "./list.ts";
 * import { assertEquals } from "../_assert.ts";
 * const acl = await buildAccessList({
 *   allow: ["gw.test"],
 *   resolve: (h) => Promise.resolve(h === "gw.test" ? ["192.0.2.7", "2001:db8::7"] : []),
 * });
 * assertEquals(acl.allows("2001:db8::7"), true);
 * assertEquals(acl.allows("192.0.2.8"), false);
 * ```
 */
export async function buildAccessList(
  options: AccessOptions,
): Promise<AccessList> {
  const resolve = options.resolve ?? systemResolve;
  const gather = async (
    values: readonly string[] | undefined,
    files: readonly string[] | undefined,
    flag: string,
  ) => {
    const entries: AccessEntry[] = [];
    for (const v of values ?? []) {
      entries.push(...parseAccessEntries(v, `--${flag}`));
    }
    for (const path of files ?? []) {
      let text: string;
      try {
        text = await Deno.readTextFile(path);
      } catch (err) {
        throw netError(`read --${flag}file ${path}`, err);
      }
      entries.push(...parseAccessEntries(text, `--${flag}file ${path}`));
    }
    const out: AccessEntry[] = [];
    for (const e of entries) {
      if (e.kind === "block") {
        out.push(e);
        continue;
      }
      let addrs: string[];
      try {
        addrs = await resolve(e.host);
      } catch (err) {
        throw netError(`resolve ${e.host} (--${flag})`, err);
      }
      if (addrs.length === 0) {
        throw new DenocatError(
          `cannot resolve ${e.host} (--${flag}): no address`,
        );
      }
      for (const a of addrs) {
        const block = parseBlock(a);
        if (block) out.push({ kind: "block", block, text: e.host });
      }
    }
    return { out, given: (values?.length ?? 0) + (files?.length ?? 0) };
  };
  const allow = await gather(options.allow, options.allowFiles, "allow");
  const deny = await gather(options.deny, options.denyFiles, "deny");
  if (allow.given > 0 && allow.out.length === 0) {
    throw new UsageError(
      "--allow/--allowfile lists no address (refusing to start rather than allow everyone)",
    );
  }
  return AccessList.fromBlocks(allow.out, deny.out);
}
