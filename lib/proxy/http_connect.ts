/**
 * The HTTP CONNECT handshake (RFC 9110 section 9.3.6, client side), with
 * optional Basic proxy authentication. Byte layout in docs/PROTOCOL.md,
 * "Proxy handshakes".
 *
 * @module
 */
import { DenocatError } from "../errors.ts";
import { writeAll } from "../copy.ts";
import type { ByteStream } from "./_io.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The most header bytes accepted from a proxy before giving up. */
export const MAX_RESPONSE_HEAD = 16 * 1024;

/** Options for {@linkcode httpConnect}. */
export interface HttpConnectOptions {
  /** Sent as `Proxy-Authorization: Basic base64(user:password)`. */
  auth?: { user: string; password: string };
}

/**
 * Asks an HTTP proxy on `conn` to open a tunnel to `host:port`. Resolves
 * on a 2xx status; anything else is a one-line {@linkcode DenocatError}
 * with the proxy's status line. The response head is read without
 * reading past its blank line (at most 4 bytes per read, fewer once the
 * end is in sight), so bytes the target sends at once stay in the socket.
 *
 * @example Against a proxy that opens the tunnel
 * ```ts
 * import { httpConnect } from "./http_connect.ts";
 * import { assertEquals } from "../_assert.ts";
 * let sent = "";
 * const reply = [...new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\nhello")];
 * const conn = {
 *   write(p: Uint8Array) { sent += new TextDecoder().decode(p); return Promise.resolve(p.length); },
 *   read(p: Uint8Array) { p.set(reply.splice(0, p.length)); return Promise.resolve(p.length); },
 * };
 * await httpConnect(conn, "::1", 22);
 * assertEquals(sent, "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n");
 * assertEquals(reply.length, 5); // "hello" is left for the relay
 * ```
 */
export async function httpConnect(
  conn: ByteStream,
  host: string,
  port: number,
  options: HttpConnectOptions = {},
): Promise<void> {
  if (hasControl(host) || /[\s/@?#]/.test(host)) {
    throw new DenocatError(
      `cannot send host name ${
        JSON.stringify(host)
      } in an HTTP CONNECT request`,
    );
  }
  const authority = host.includes(":")
    ? `[${host}]:${port}`
    : `${host}:${port}`;
  let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  if (options.auth) {
    const { user, password } = options.auth;
    if (user.includes(":") || hasControl(user + password)) {
      throw new DenocatError(
        "cannot use these proxy credentials: the user name may not contain ':' or control characters",
      );
    }
    head += `Proxy-Authorization: Basic ${
      encoder.encode(`${user}:${password}`).toBase64()
    }\r\n`;
  }
  await writeAll(conn, encoder.encode(head + "\r\n"));

  const text = await readHead(conn);
  const status = text.slice(0, text.indexOf("\r\n") >>> 0).trim();
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(status);
  if (!m) {
    throw new DenocatError(
      `the proxy did not answer as an HTTP proxy: ${
        JSON.stringify(status.slice(0, 80))
      }`,
    );
  }
  const code = Number(m[1]);
  if (code >= 200 && code < 300) return;
  const line = `${code}${
    m[2] ? " " + [...m[2]].map((c) => hasControl(c) ? "?" : c).join("") : ""
  }`;
  // 407 is the standard answer; some proxies (tinyproxy) send 401.
  if (code === 407 || code === 401) {
    throw new DenocatError(
      options.auth
        ? `the HTTP proxy refused the credentials for user ${options.auth.user} (${line})`
        : `the HTTP proxy requires authentication (${line}; give --proxy-auth USER:PASS)`,
    );
  }
  throw new DenocatError(
    `the HTTP proxy refused: ${line}`,
  );
}

/** Reads up to and including the blank line ending the head, and nothing more. */
async function readHead(conn: ByteStream): Promise<string> {
  const buf = new Uint8Array(MAX_RESPONSE_HEAD);
  let len = 0;
  // How many bytes of "\r\n\r\n" the data read so far ends with.
  let matched = 0;
  while (matched < 4) {
    if (len + 4 - matched > buf.length) {
      throw new DenocatError(
        `the HTTP proxy's response head exceeds ${MAX_RESPONSE_HEAD} bytes`,
      );
    }
    // The end needs at least 4 - matched more bytes: reading that many can
    // never overshoot it.
    const n = await conn.read(buf.subarray(len, len + 4 - matched));
    if (n === null) {
      throw new DenocatError(
        len === 0
          ? "the HTTP proxy closed the connection without answering"
          : "the HTTP proxy closed the connection in the middle of its response",
      );
    }
    for (let i = len; i < len + n; i++) {
      const want = matched === 0 || matched === 2 ? 13 : 10;
      if (buf[i] === want) matched++;
      else matched = buf[i] === 13 ? 1 : 0;
    }
    len += n;
  }
  return decoder.decode(buf.subarray(0, len));
}

/** Whether `s` holds an ASCII control character (CR and LF included). */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
