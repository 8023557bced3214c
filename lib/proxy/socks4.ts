/**
 * The SOCKS4 and SOCKS4a CONNECT handshake (client side). Byte layout in
 * docs/PROTOCOL.md, "Proxy handshakes".
 *
 * @module
 */
import { DenocatError } from "../errors.ts";
import { writeAll } from "../copy.ts";
import { parseIPv4 } from "../access/ip.ts";
import { type ByteStream, readExactly } from "./_io.ts";

const encoder = new TextEncoder();

const SOCKS4_REPLIES: Record<number, string> = {
  0x5b: "request rejected or failed",
  0x5c: "the proxy could not reach an identd on this host",
  0x5d: "the proxy's identd check did not confirm the user",
};

/** Options for {@linkcode socks4Connect}. */
export interface Socks4Options {
  /** The USERID field (nc's `-P USER`). @default {""} */
  user?: string;
}

/**
 * Asks a SOCKS4 proxy on `conn` to connect to `host:port`. An IPv4
 * literal is sent as is (SOCKS4); a host name is sent for the proxy to
 * resolve (SOCKS4a). SOCKS4 has no IPv6. Resolves once the proxy grants
 * the request; the connection then carries the target's bytes.
 *
 * @example Against a proxy that grants everything
 * ```ts
 * import { socks4Connect } from "./socks4.ts";
 * import { assertEquals } from "../_assert.ts";
 * const sent: number[] = [];
 * const reply = [0, 0x5a, 0, 0, 0, 0, 0, 0];
 * const conn = {
 *   write(p: Uint8Array) { sent.push(...p); return Promise.resolve(p.length); },
 *   read(p: Uint8Array) { p.set(reply.splice(0, p.length)); return Promise.resolve(p.length); },
 * };
 * await socks4Connect(conn, "10.0.0.1", 80, { user: "u" });
 * assertEquals(sent, [4, 1, 0, 80, 10, 0, 0, 1, 117, 0]);
 * ```
 */
export async function socks4Connect(
  conn: ByteStream,
  host: string,
  port: number,
  options: Socks4Options = {},
): Promise<void> {
  const user = encoder.encode(options.user ?? "");
  if (user.includes(0)) {
    throw new DenocatError("cannot use a SOCKS4 user name containing NUL");
  }
  if (host.includes(":")) {
    throw new DenocatError(
      `cannot reach ${host} through a SOCKS4 proxy: SOCKS4 has no IPv6 (use --proxy-type socks5)`,
    );
  }
  const ip = parseIPv4(host);
  const name = ip ? undefined : encoder.encode(host);
  if (name && (name.length > 255 || name.includes(0))) {
    throw new DenocatError(`cannot use host name ${host} with SOCKS4a`);
  }
  const req = new Uint8Array(
    8 + user.length + 1 + (name ? name.length + 1 : 0),
  );
  req[0] = 4; // VN
  req[1] = 1; // CD: CONNECT
  req[2] = port >> 8;
  req[3] = port & 0xff;
  // SOCKS4a: 0.0.0.x with x != 0 says "the name follows the user id".
  req.set(ip ?? [0, 0, 0, 1], 4);
  req.set(user, 8);
  if (name) req.set(name, 8 + user.length + 1);
  await writeAll(conn, req);

  const reply = await readExactly(conn, new Uint8Array(8), "the SOCKS4 reply");
  if (reply[0] !== 0) {
    throw new DenocatError(
      `the proxy did not answer as a SOCKS4 server (reply version ${reply[0]})`,
    );
  }
  if (reply[1] !== 0x5a) {
    const why = SOCKS4_REPLIES[reply[1]!] ?? "unknown reply";
    throw new DenocatError(
      `the SOCKS4 proxy refused: ${why} (code ${reply[1]})`,
    );
  }
}
