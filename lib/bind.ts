/**
 * Choosing the address a server binds: a given host (checked against `-4`/
 * `-6`), or every interface, dual-stack `::` where IPv6 exists and `0.0.0.0`
 * otherwise. Shared by the TCP and UDP servers.
 *
 * @module
 */
import { type Family, hostPort, ipFamily, unbracket } from "./address.ts";
import { DenocatError, netError } from "./errors.ts";

/**
 * Calls `bind` with the host to bind on and returns what it returns; `what`
 * names the socket kind in errors (`"udp "` gives `cannot listen on udp ...`).
 *
 * @example Usage
 * ```ts
 * import { bindAddress } from "./bind.ts";
 * import { assertEquals } from "./_assert.ts";
 * const tried: string[] = [];
 * assertEquals(bindAddress(undefined, 0, undefined, "", (h) => (tried.push(h), h)), "::");
 * assertEquals(bindAddress("[::1]", 0, undefined, "", (h) => h), "::1");
 * ```
 */
export function bindAddress<T>(
  host: string | undefined,
  port: number,
  family: Family | undefined,
  what: string,
  bind: (hostname: string) => T,
): T {
  if (host !== undefined) {
    const hostname = unbracket(host);
    const fam = ipFamily(hostname);
    if (family && fam && fam !== family) {
      throw new DenocatError(
        `cannot listen on ${hostname}: not an IPv${family} address`,
      );
    }
    try {
      return bind(hostname);
    } catch (err) {
      throw netError(`listen on ${what}${hostPort(hostname, port)}`, err);
    }
  }
  const candidates = family === 4
    ? ["0.0.0.0"]
    : family === 6
    ? ["::"]
    : ["::", "0.0.0.0"];
  let last: unknown;
  for (const hostname of candidates) {
    try {
      return bind(hostname);
    } catch (err) {
      last = err;
      // Fall back to IPv4 only when IPv6 itself is missing, not when the port is taken.
      if (
        !(err instanceof Deno.errors.AddrNotAvailable) &&
        !/family/i.test(String(err))
      ) break;
    }
  }
  throw netError(`listen on ${what}port ${port}`, last);
}
