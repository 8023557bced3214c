/**
 * Connecting and listening, over TCP or Unix sockets, with timeouts,
 * address-family selection and errors phrased for users.
 *
 * @module
 */
import {
  type Family,
  formatAddr,
  hostPort,
  ipFamily,
  unbracket,
} from "../address.ts";
import { bindAddress } from "../bind.ts";
import { DenocatError, netError } from "../errors.ts";

/** Where to connect or listen: a TCP host and port, or a Unix socket path. */
export type Endpoint =
  | { hostname: string; port: number; path?: undefined }
  | { path: string; hostname?: undefined; port?: undefined };

/** A connection over TCP or a Unix socket. */
export type Conn = Deno.TcpConn | Deno.UnixConn;
/** A listener over TCP or a Unix socket. */
export type Listener = Deno.TcpListener | Deno.UnixListener;

/**
 * Deno has no Unix sockets on Windows: say so in one line rather than fail
 * with an internal error.
 */
function requireUnixSockets(action: string): void {
  if (Deno.build.os === "windows") {
    throw new DenocatError(
      `cannot ${action}: Unix sockets are not available on windows`,
    );
  }
}

/** Describes an endpoint for messages. */
export function describeEndpoint(ep: Endpoint): string {
  return ep.path !== undefined ? ep.path : hostPort(ep.hostname, ep.port);
}

/**
 * Resolves `hostname` to an address of the given family, so `-4`/`-6` are
 * honoured for names as well as literals.
 */
export async function resolveHost(
  hostname: string,
  family?: Family,
): Promise<string> {
  const literal = ipFamily(hostname);
  if (literal !== undefined) {
    if (family !== undefined && literal !== family) {
      throw new DenocatError(
        `cannot use ${hostname}: not an IPv${family} address`,
      );
    }
    return hostname;
  }
  if (family === undefined) return hostname;
  if (hostname === "localhost") return family === 4 ? "127.0.0.1" : "::1";
  const { lookup } = await import("node:dns/promises");
  try {
    return (await lookup(hostname, { family })).address;
  } catch (err) {
    throw netError(`resolve ${hostname}`, err);
  }
}

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /** Restrict a host name to IPv4 or IPv6 addresses. */
  family?: Family;
  /** Give up connecting after this many milliseconds. */
  timeout?: number;
  /** Abort the connection attempt. */
  signal?: AbortSignal;
  /** Disable Nagle's algorithm (interactive and request/response use). @default {false} */
  noDelay?: boolean;
}

/**
 * Opens a connection to `endpoint`. Failures become one-line errors such as
 * `cannot connect to 127.0.0.1:9: connection refused`.
 *
 * @example Usage
 * ```ts
 * import { connect } from "./connect.ts";
 * import { assertRejects } from "../_assert.ts";
 * const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = l.addr.port;
 * l.close();
 * await assertRejects(() => connect({ hostname: "127.0.0.1", port }), Error, "connection refused");
 * ```
 */
export async function connect(
  endpoint: Endpoint,
  options: ConnectOptions = {},
): Promise<Conn> {
  const what = `connect to ${describeEndpoint(endpoint)}`;
  const signals: AbortSignal[] = [];
  if (options.signal) signals.push(options.signal);
  if (options.timeout !== undefined) {
    signals.push(AbortSignal.timeout(options.timeout));
  }
  const signal = signals.length ? AbortSignal.any(signals) : undefined;
  try {
    if (endpoint.path !== undefined) {
      requireUnixSockets(what);
      return await Deno.connect({ transport: "unix", path: endpoint.path });
    }
    const hostname = await resolveHost(
      unbracket(endpoint.hostname),
      options.family,
    );
    const conn = await Deno.connect({
      hostname,
      port: endpoint.port,
      transport: "tcp",
      ...(signal ? { signal } : {}),
    });
    if (options.noDelay) conn.setNoDelay(true);
    return conn;
  } catch (err) {
    throw netError(what, err);
  }
}

/** Options for {@linkcode listen}. */
export interface ListenOptions {
  /** Restrict to IPv4 or IPv6 when no host is given or a name is given. */
  family?: Family;
}

/**
 * Binds a listener. Without a hostname it binds every interface: dual-stack
 * `::` where IPv6 exists, else `0.0.0.0` (`family` narrows this).
 *
 * @example Usage
 * ```ts
 * import { listen } from "./connect.ts";
 * import { assertOk } from "../_assert.ts";
 * using l = listen({ hostname: "127.0.0.1", port: 0 });
 * assertOk(l.addr.transport === "tcp" && l.addr.port > 0);
 * ```
 */
export function listen(
  endpoint: Endpoint | { hostname?: undefined; port: number; path?: undefined },
  options: ListenOptions = {},
): Listener {
  if (endpoint.path !== undefined) {
    try {
      requireUnixSockets(`listen on ${endpoint.path}`);
      return Deno.listen({ transport: "unix", path: endpoint.path });
    } catch (err) {
      throw netError(`listen on ${endpoint.path}`, err);
    }
  }
  const port = endpoint.port;
  return bindAddress(
    endpoint.hostname,
    port,
    options.family,
    "",
    (hostname) => Deno.listen({ hostname, port, transport: "tcp" }),
  );
}

/** Closes a resource, ignoring "already closed". */
export function closeQuietly(r: { close(): void }): void {
  try {
    r.close();
  } catch (err) {
    if (!(err instanceof Deno.errors.BadResource)) throw err;
  }
}

/** Half-closes a connection (sends FIN), ignoring a peer that is already gone. */
export async function closeWriteQuietly(conn: Conn): Promise<void> {
  try {
    await conn.closeWrite();
  } catch (err) {
    if (
      !(err instanceof Deno.errors.BadResource) &&
      !(err instanceof Deno.errors.NotConnected) &&
      !(err instanceof Deno.errors.BrokenPipe) &&
      !(err instanceof Deno.errors.ConnectionReset)
    ) throw err;
  }
}

export { formatAddr };
