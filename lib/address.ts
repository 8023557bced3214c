/**
 * Parsing and printing of ports and socket addresses.
 *
 * @module
 */
import { UsageError } from "./errors.ts";

/** Address family restriction: `4` for IPv4 only, `6` for IPv6 only. */
export type Family = 4 | 6;

/**
 * Parses a decimal port number. `0` is accepted only with `allowZero`
 * (listeners use it to let the system pick a free port).
 *
 * @example Usage
 * ```ts
 * import { parsePort } from "./address.ts";
 * import { assertEquals, assertThrows } from "./_assert.ts";
 * assertEquals(parsePort("8080"), 8080);
 * assertThrows(() => parsePort("99999"), Error, "invalid port");
 * ```
 */
export function parsePort(
  text: string,
  options: { allowZero?: boolean } = {},
): number {
  if (!/^\d{1,5}$/.test(text)) throw new UsageError(`invalid port: ${text}`);
  const port = Number(text);
  const min = options.allowZero ? 0 : 1;
  if (port < min || port > 65535) throw new UsageError(`invalid port: ${text}`);
  return port;
}

/**
 * Formats a host and port for messages: IPv6 literals get brackets.
 *
 * @example Usage
 * ```ts
 * import { hostPort } from "./address.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(hostPort("::1", 80), "[::1]:80");
 * assertEquals(hostPort("127.0.0.1", 80), "127.0.0.1:80");
 * ```
 */
export function hostPort(hostname: string, port: number): string {
  return hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}

/**
 * Formats any Deno address (TCP, UDP or Unix) for messages.
 *
 * @example Usage
 * ```ts
 * import { formatAddr } from "./address.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(formatAddr({ transport: "tcp", hostname: "::1", port: 7 }), "[::1]:7");
 * assertEquals(formatAddr({ transport: "unix", path: "/tmp/s" }), "/tmp/s");
 * ```
 */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return hostPort(addr.hostname, addr.port);
  }
  return (addr as Deno.UnixAddr).path || "(unnamed unix socket)";
}

/** Returns 4 or 6 for an IP literal, or `undefined` for a host name. */
export function ipFamily(hostname: string): Family | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(hostname)) return 4;
  if (hostname.includes(":")) return 6;
  return undefined;
}

/** Strips the brackets users may put around an IPv6 literal (`[::1]`). */
export function unbracket(hostname: string): string {
  return hostname.startsWith("[") && hostname.endsWith("]")
    ? hostname.slice(1, -1)
    : hostname;
}
