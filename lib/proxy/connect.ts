/**
 * Connecting through a proxy: reach the proxy, run the handshake its type
 * asks for, and hand back the connection carrying the target's bytes.
 * Plus the command-line spellings (ncat's `--proxy ADDR[:PORT]
 * --proxy-type --proxy-auth --proxy-dns`, nc's `-x -X -P`) as pure parsers.
 *
 * @module
 */
import { hostPort, ipFamily, parsePort, unbracket } from "../address.ts";
import {
  DenocatError,
  describeError,
  EXIT_FAILURE,
  netError,
  UsageError,
} from "../errors.ts";
import {
  closeQuietly,
  type ConnectOptions,
  resolveHost,
} from "../tcp/connect.ts";
import type { ByteStream } from "./_io.ts";
import { httpConnect } from "./http_connect.ts";
import { socks4Connect } from "./socks4.ts";
import { socks5Connect } from "./socks5.ts";

/** The proxy protocols spoken. */
export type ProxyType = "socks4" | "socks5" | "http";

/** Where the target's host name is resolved. */
export type ProxyDns = "local" | "remote";

/** A proxy to go through. */
export interface ProxySpec {
  /** The proxy's host. */
  hostname: string;
  /** The proxy's port. */
  port: number;
  /** Its protocol. */
  type: ProxyType;
  /** Credentials: SOCKS5 username/password or HTTP Basic; for SOCKS4 only `user` is sent. */
  auth?: { user: string; password: string };
  /**
   * Where a target host name is resolved: `remote` sends the name to the
   * proxy (SOCKS4a, SOCKS5 domain, CONNECT name), `local` resolves it here
   * and sends the address. @default {"remote", except "local" for socks4}
   */
  dns?: ProxyDns;
}

/** Default port per proxy type: 1080 for SOCKS, 3128 for HTTP (ncat's). */
export const DEFAULT_PROXY_PORT: Record<ProxyType, number> = {
  socks4: 1080,
  socks5: 1080,
  http: 3128,
};

/**
 * Parses `--proxy-type` (`socks4`, `socks5`, `http`) or nc's `-X` value
 * (`4`, `5`, `connect`).
 *
 * @example Usage
 * ```ts
 * import { parseProxyType } from "./connect.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(parseProxyType("connect"), "http");
 * assertEquals(parseProxyType("5"), "socks5");
 * ```
 */
export function parseProxyType(text: string): ProxyType {
  switch (text.toLowerCase()) {
    case "4":
    case "socks4":
    case "socks4a":
      return "socks4";
    case "5":
    case "socks5":
      return "socks5";
    case "connect":
    case "http":
      return "http";
  }
  throw new UsageError(
    `invalid proxy type: ${text} (socks4, socks5, http; or nc's 4, 5, connect)`,
  );
}

/**
 * Parses `ADDR[:PORT]` (IPv6 in brackets when a port follows) into a
 * proxy spec; the port defaults by type.
 *
 * @example Usage
 * ```ts
 * import { parseProxy } from "./connect.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(parseProxy("[::1]:9050", { type: "socks5" }), { hostname: "::1", port: 9050, type: "socks5" });
 * assertEquals(parseProxy("proxy.test", { type: "http" }).port, 3128);
 * ```
 */
export function parseProxy(
  text: string,
  options: { type: ProxyType; auth?: string; dns?: string },
): ProxySpec {
  let hostname: string, port: number;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (m) {
    hostname = m[1]!;
    port = m[2] !== undefined
      ? parsePort(m[2])
      : DEFAULT_PROXY_PORT[options.type];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    const at = text.lastIndexOf(":");
    hostname = text.slice(0, at);
    port = parsePort(text.slice(at + 1));
  } else {
    hostname = text;
    port = DEFAULT_PROXY_PORT[options.type];
  }
  if (hostname === "") throw new UsageError(`invalid proxy address: ${text}`);
  const spec: ProxySpec = { hostname, port, type: options.type };
  if (options.auth !== undefined) spec.auth = parseProxyAuth(options.auth);
  if (options.dns !== undefined) {
    if (options.dns !== "local" && options.dns !== "remote") {
      throw new UsageError(
        `invalid --proxy-dns value: ${options.dns} (local or remote)`,
      );
    }
    spec.dns = options.dns;
  }
  return spec;
}

/** Parses `USER[:PASS]` (the password may contain colons). */
export function parseProxyAuth(
  text: string,
): { user: string; password: string } {
  const at = text.indexOf(":");
  const user = at < 0 ? text : text.slice(0, at);
  if (user === "") {
    throw new UsageError("invalid --proxy-auth value: empty user name");
  }
  return { user, password: at < 0 ? "" : text.slice(at + 1) };
}

/** Options for {@linkcode proxyHandshake} and {@linkcode connectViaProxy}. */
export interface ProxyConnectOptions extends ConnectOptions {
  /**
   * Give up the handshake (and, for connectViaProxy, connecting) after this
   * many ms. @default {ConnectOptions.timeout, else 30 s}
   */
  handshakeTimeout?: number;
}

/**
 * Runs `spec`'s handshake on `conn` (already connected to the proxy) for
 * `target`. A host name is resolved here first when `spec.dns` is
 * `local` (honouring `options.family`). On failure `conn` is closed and a
 * one-line {@linkcode DenocatError} says what the proxy said.
 */
export async function proxyHandshake(
  conn: ByteStream & { close(): void },
  spec: ProxySpec,
  target: { hostname: string; port: number },
  options: ProxyConnectOptions = {},
): Promise<void> {
  const dns = spec.dns ?? (spec.type === "socks4" ? "local" : "remote");
  let host = unbracket(target.hostname);
  if (ipFamily(host) === undefined && (dns === "local" || options.family)) {
    host = await resolveLocally(host, options.family);
  }
  const ms = options.handshakeTimeout ?? options.timeout ?? 30_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(conn);
  }, ms);
  const onAbort = () => closeQuietly(conn);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    switch (spec.type) {
      case "socks4":
        await socks4Connect(
          conn,
          host,
          target.port,
          spec.auth ? { user: spec.auth.user } : {},
        );
        break;
      case "socks5":
        await socks5Connect(
          conn,
          host,
          target.port,
          spec.auth ? { auth: spec.auth } : {},
        );
        break;
      case "http":
        await httpConnect(
          conn,
          host,
          target.port,
          spec.auth ? { auth: spec.auth } : {},
        );
        break;
    }
  } catch (err) {
    closeQuietly(conn);
    const what = `connect to ${
      hostPort(host, target.port)
    } through ${spec.type} proxy ${hostPort(spec.hostname, spec.port)}`;
    if (timedOut) {
      throw new DenocatError(`cannot ${what}: no answer within ${ms / 1000} s`);
    }
    const why = options.signal?.aborted ? options.signal.reason : err;
    throw new DenocatError(
      `cannot ${what}: ${describeError(why)}`,
      EXIT_FAILURE,
      { cause: why },
    );
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

async function resolveLocally(
  host: string,
  family: 4 | 6 | undefined,
): Promise<string> {
  if (family) return await resolveHost(host, family);
  const { lookup } = await import("node:dns/promises");
  try {
    return (await lookup(host)).address;
  } catch (err) {
    throw netError(`resolve ${host}`, err);
  }
}

/**
 * Connects to the proxy in `spec` and through it to `target`. The returned
 * connection is the socket to the proxy, now carrying the target's bytes
 * (half-close and the pump threads work on it as on a direct one).
 *
 * @example A refused handshake is one line
 * ```ts
 * import { connectViaProxy } from "./connect.ts";
 * import { assertRejects } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const proxy = (async () => {
 *   const c = await l.accept();
 *   await c.read(new Uint8Array(3));
 *   await c.write(new Uint8Array([5, 0xff]));
 *   c.close();
 * })();
 * await assertRejects(
 *   () => connectViaProxy({ hostname: "127.0.0.1", port: l.addr.port, type: "socks5" }, { hostname: "example.test", port: 80 }),
 *   Error,
 *   "requires authentication",
 * );
 * await proxy;
 * ```
 */
export async function connectViaProxy(
  spec: ProxySpec,
  target: { hostname: string; port: number },
  options: ProxyConnectOptions = {},
): Promise<Deno.TcpConn> {
  const started = performance.now();
  // The proxy's own address may be of either family: -4/-6 concern the target.
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({
      hostname: unbracket(spec.hostname),
      port: spec.port,
      ...(options.timeout !== undefined
        ? {
          signal: AbortSignal.any([
            AbortSignal.timeout(options.timeout),
            ...(options.signal ? [options.signal] : []),
          ]),
        }
        : options.signal
        ? { signal: options.signal }
        : {}),
    });
  } catch (err) {
    throw netError(
      `connect to ${spec.type} proxy ${hostPort(spec.hostname, spec.port)}`,
      err,
    );
  }
  if (options.noDelay) conn.setNoDelay(true);
  const left = options.timeout !== undefined
    ? Math.max(1, options.timeout - (performance.now() - started))
    : options.handshakeTimeout;
  await proxyHandshake(conn, spec, target, {
    ...options,
    ...(left !== undefined ? { handshakeTimeout: left } : {}),
  });
  return conn;
}
