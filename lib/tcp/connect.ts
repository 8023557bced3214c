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
  unixName,
} from "../address.ts";
import { bindAddress } from "../bind.ts";
import { DenocatError, netError, UsageError } from "../errors.ts";
import {
  type KeepaliveTimers,
  sourceSocketsUnavailable,
  tcpConnectFrom,
} from "../native/socket_fd.ts";
import { resolveIp } from "../udp/socket.ts";

/** Where to connect or listen: a TCP host and port, or a Unix socket path. */
export type Endpoint =
  | { hostname: string; port: number; path?: undefined }
  | { path: string; hostname?: undefined; port?: undefined };

/**
 * A connection over TCP or a Unix socket. (A connection made from a source
 * address, native/socket_fd.ts, keeps the same contract and is passed as a
 * `Deno.TcpConn`.)
 */
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
  return ep.path !== undefined
    ? unixName(ep.path)
    : hostPort(ep.hostname, ep.port);
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
  /**
   * The local address to connect from (`-s`); an IP literal, or a name
   * resolved like the host. Needs a socket of our own (Linux, FFI).
   */
  sourceHost?: string;
  /** The local port to connect from (`-p`). Needs a socket of our own (Linux, FFI). */
  sourcePort?: number;
  /**
   * TCP keepalive: `true` for the system's timers (`setKeepAlive`), or the
   * timers to set (a socket of our own, Linux, FFI).
   */
  keepalive?: boolean | KeepaliveTimers;
  /** Refuse host names: IP literals only (`-n`). @default {false} */
  numeric?: boolean;
}

/** Refuses a host name under `-n`. */
export function checkNumeric(hostname: string, numeric?: boolean): void {
  if (numeric && ipFamily(unbracket(hostname)) === undefined) {
    throw new UsageError(
      `-n: ${hostname} is not a numeric address (no DNS lookups with -n)`,
    );
  }
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
  const timers = typeof options.keepalive === "object";
  if (
    endpoint.path !== undefined &&
    (options.sourceHost !== undefined || options.sourcePort !== undefined)
  ) {
    throw new UsageError("-s and -p apply to TCP (and -u -U -s LOCALPATH)");
  }
  if (endpoint.path !== undefined && options.keepalive) {
    throw new UsageError("--keepalive applies to TCP, not to Unix sockets");
  }
  if (endpoint.path === undefined) {
    checkNumeric(endpoint.hostname, options.numeric);
    if (options.sourceHost !== undefined) {
      checkNumeric(options.sourceHost, options.numeric);
    }
  }
  if (
    endpoint.path === undefined &&
    (options.sourceHost !== undefined || options.sourcePort !== undefined ||
      timers)
  ) {
    const why = sourceSocketsUnavailable();
    if (why !== undefined) {
      const what = options.sourceHost !== undefined
        ? "-s (source address)"
        : options.sourcePort !== undefined
        ? "-p (source port)"
        : "--keepalive timers";
      throw new DenocatError(`cannot use ${what}: ${why}`);
    }
    return await connectFrom(endpoint, options, what, signal);
  }
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
    if (options.keepalive) conn.setKeepAlive(true);
    return conn;
  } catch (err) {
    throw netError(what, err);
  }
}

async function connectFrom(
  endpoint: { hostname: string; port: number },
  options: ConnectOptions,
  what: string,
  signal: AbortSignal | undefined,
): Promise<Conn> {
  let localIp: string | undefined;
  let family = options.family;
  if (options.sourceHost !== undefined) {
    localIp = await resolveIp(options.sourceHost, family);
    family = ipFamily(localIp);
  }
  const destFamily = ipFamily(unbracket(endpoint.hostname));
  if (
    localIp !== undefined && destFamily !== undefined && destFamily !== family
  ) {
    throw new DenocatError(
      `cannot ${what} from ${localIp}: the source is IPv${family}, the destination IPv${destFamily}`,
    );
  }
  const remoteIp = await resolveIp(endpoint.hostname, family);
  try {
    const conn = await tcpConnectFrom({
      remoteIp,
      remotePort: endpoint.port,
      ...(localIp !== undefined ? { localIp } : {}),
      ...(options.sourcePort !== undefined
        ? { localPort: options.sourcePort }
        : {}),
      ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
      ...(signal ? { signal } : {}),
      ...(options.keepalive
        ? {
          keepalive: typeof options.keepalive === "object"
            ? options.keepalive
            : {},
        }
        : {}),
    });
    if (options.noDelay) conn.setNoDelay(true);
    return conn as unknown as Deno.TcpConn;
  } catch (err) {
    // The source is named when one was asked for: a taken port shows here.
    const from = localIp !== undefined || options.sourcePort !== undefined
      ? ` from ${
        hostPort(
          localIp ?? (ipFamily(remoteIp) === 6 ? "::" : "0.0.0.0"),
          options.sourcePort ?? 0,
        )
      }`
      : "";
    throw netError(what + from, err);
  }
}

/** Options for {@linkcode listen}. */
export interface ListenOptions {
  /** Restrict to IPv4 or IPv6 when no host is given or a name is given. */
  family?: Family;
  /**
   * Turn TCP keepalive on (the system's timers) for every connection
   * accepted through the listener's `accept()`. @default {false}
   */
  keepalive?: boolean;
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
    if (options.keepalive) {
      throw new UsageError("--keepalive applies to TCP, not to Unix sockets");
    }
    try {
      requireUnixSockets(`listen on ${endpoint.path}`);
      return Deno.listen({ transport: "unix", path: endpoint.path });
    } catch (err) {
      throw netError(`listen on ${unixName(endpoint.path)}`, err);
    }
  }
  const port = endpoint.port;
  const listener = bindAddress(
    endpoint.hostname,
    port,
    options.family,
    "",
    (hostname) => Deno.listen({ hostname, port, transport: "tcp" }),
  );
  if (options.keepalive) {
    // Every accept path (accept(), the async iterator) goes through here.
    const accept = listener.accept.bind(listener);
    listener.accept = async () => {
      const conn = await accept();
      conn.setKeepAlive(true);
      return conn;
    };
  }
  return listener;
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
