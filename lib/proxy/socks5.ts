/**
 * The SOCKS5 CONNECT handshake (RFC 1928, client side) with no
 * authentication or username/password (RFC 1929). Byte layout in
 * docs/PROTOCOL.md, "Proxy handshakes".
 *
 * @module
 */
import { DenocatError } from "../errors.ts";
import { writeAll } from "../copy.ts";
import { parseIPv4, parseIPv6 } from "../access/ip.ts";
import { type ByteStream, readExactly } from "./_io.ts";

const encoder = new TextEncoder();

/** RFC 1928's REP field, phrased for users. */
const SOCKS5_REPLIES: Record<number, string> = {
  1: "general SOCKS server failure",
  2: "connection not allowed by ruleset",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

/** Options for {@linkcode socks5Connect}. */
export interface Socks5Options {
  /** Username and password (RFC 1929); without it only "no authentication" is offered. */
  auth?: { user: string; password: string };
}

/**
 * Asks a SOCKS5 proxy on `conn` to connect to `host:port`: an IPv4 or
 * IPv6 literal goes as an address, anything else as a domain name for the
 * proxy to resolve. Resolves once the proxy reports success; the
 * connection then carries the target's bytes. Every refusal (no
 * acceptable method, bad credentials, a REP code) is a one-line
 * {@linkcode DenocatError}.
 *
 * @example Against a proxy that accepts without authentication
 * ```ts
 * import { socks5Connect } from "./socks5.ts";
 * import { assertEquals } from "../_assert.ts";
 * const sent: number[] = [];
 * const replies = [5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
 * const conn = {
 *   write(p: Uint8Array) { sent.push(...p); return Promise.resolve(p.length); },
 *   read(p: Uint8Array) { p.set(replies.splice(0, p.length)); return Promise.resolve(p.length); },
 * };
 * await socks5Connect(conn, "::1", 22);
 * assertEquals(sent.slice(0, 3), [5, 1, 0]);
 * assertEquals(sent.slice(3, 7), [5, 1, 0, 4]);
 * assertEquals(sent.length, 3 + 4 + 16 + 2);
 * ```
 */
export async function socks5Connect(
  conn: ByteStream,
  host: string,
  port: number,
  options: Socks5Options = {},
): Promise<void> {
  const auth = options.auth;
  let user: Uint8Array | undefined, pass: Uint8Array | undefined;
  if (auth) {
    user = encoder.encode(auth.user);
    pass = encoder.encode(auth.password);
    if (user.length < 1 || user.length > 255 || pass.length > 255) {
      throw new DenocatError(
        "cannot use these SOCKS5 credentials: user name 1-255 bytes and password at most 255 bytes",
      );
    }
  }
  // The request is built first, so a bad target fails before any byte goes out.
  const v4 = parseIPv4(host);
  const v6 = v4 ? undefined : parseIPv6(host);
  const name = v4 || v6 ? undefined : encoder.encode(host);
  if (name && (name.length < 1 || name.length > 255)) {
    throw new DenocatError(
      `cannot send host name ${host} to a SOCKS5 proxy: 1-255 bytes allowed`,
    );
  }
  const addrLen = v4 ? 4 : v6 ? 16 : 1 + name!.length;
  const request = new Uint8Array(4 + addrLen + 2);
  request.set([5, 1, 0, v4 ? 1 : v6 ? 4 : 3]);
  if (v4) request.set(v4, 4);
  else if (v6) request.set(v6, 4);
  else {
    request[4] = name!.length;
    request.set(name!, 5);
  }
  request[4 + addrLen] = port >> 8;
  request[5 + addrLen] = port & 0xff;

  // Greeting: the methods we can do.
  await writeAll(conn, new Uint8Array(auth ? [5, 2, 0, 2] : [5, 1, 0]));
  const choice = await readExactly(
    conn,
    new Uint8Array(2),
    "the SOCKS5 method choice",
  );
  if (choice[0] !== 5) {
    throw new DenocatError(
      `the proxy did not answer as a SOCKS5 server (version byte ${choice[0]})`,
    );
  }
  if (choice[1] === 0xff) {
    throw new DenocatError(
      auth
        ? "the SOCKS5 proxy accepts none of our methods (offered: none, username/password)"
        : "the SOCKS5 proxy requires authentication (give --proxy-auth USER:PASS)",
    );
  }
  if (choice[1] === 2) {
    if (!user || !pass) {
      throw new DenocatError(
        "the SOCKS5 proxy chose username/password, which we did not offer",
      );
    }
    const sub = new Uint8Array(3 + user.length + pass.length);
    sub[0] = 1;
    sub[1] = user.length;
    sub.set(user, 2);
    sub[2 + user.length] = pass.length;
    sub.set(pass, 3 + user.length);
    await writeAll(conn, sub);
    const status = await readExactly(
      conn,
      new Uint8Array(2),
      "the SOCKS5 authentication reply",
    );
    if (status[1] !== 0) {
      throw new DenocatError(
        `the SOCKS5 proxy refused the credentials for user ${
          auth!.user
        } (status ${status[1]})`,
      );
    }
  } else if (choice[1] !== 0) {
    throw new DenocatError(
      `the SOCKS5 proxy chose method ${choice[1]}, which we did not offer`,
    );
  }

  await writeAll(conn, request);
  const head = await readExactly(conn, new Uint8Array(5), "the SOCKS5 reply");
  if (head[0] !== 5) {
    throw new DenocatError(
      `the proxy did not answer as a SOCKS5 server (reply version ${head[0]})`,
    );
  }
  if (head[1] !== 0) {
    const why = SOCKS5_REPLIES[head[1]!] ?? "unknown reply";
    throw new DenocatError(
      `the SOCKS5 proxy refused: ${why} (reply ${head[1]})`,
    );
  }
  // BND.ADDR and BND.PORT: read and drop, exactly, so no target byte is eaten.
  const rest = head[3] === 1
    ? 4 - 1 + 2
    : head[3] === 4
    ? 16 - 1 + 2
    : head[3] === 3
    ? head[4]! + 2
    : -1;
  if (rest < 0) {
    throw new DenocatError(
      `the SOCKS5 reply has an unknown address type ${head[3]}`,
    );
  }
  await readExactly(conn, new Uint8Array(rest), "the SOCKS5 reply");
}
