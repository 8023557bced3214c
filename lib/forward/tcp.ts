/**
 * `denocat forward` over TCP or Unix stream sockets: accept on one side,
 * connect to the target for each client (directly or through a proxy),
 * optionally terminating and/or originating TLS, and relay both ways with
 * half-close passed on.
 *
 * @module
 */
import { acceptLoop } from "../accept.ts";
import { type Family, formatAddr } from "../address.ts";
import { describeError, UsageError } from "../errors.ts";
import { IdleWatch } from "../idle.ts";
import { type Logger, pumpNote, silent } from "../log.ts";
import { AccessList } from "../access/list.ts";
import { connectViaProxy, type ProxySpec } from "../proxy/connect.ts";
import {
  closeQuietly,
  connect,
  describeEndpoint,
  type Endpoint,
  listen,
  type Listener,
} from "../tcp/connect.ts";
import { relay, type Stream } from "./relay.ts";
import {
  acceptServerTls,
  type ClientTlsOptions,
  type ServerTls,
  serverTls,
  type ServerTlsPem,
  startClientTls,
} from "./tls.ts";
import type { SessionRecorder } from "../session_log.ts";

/** Options for {@linkcode forwardTcp}. */
export interface ForwardOptions {
  /** Where to listen: `[host] port` or a Unix socket path. */
  listen: Endpoint | { port: number; hostname?: undefined; path?: undefined };
  /** Where each client is forwarded: a host and port, or a Unix socket path. */
  target: Endpoint;
  /** IPv4 or IPv6 only (for the listening address and the target's name). */
  family?: Family;
  /** Peers allowed to connect. @default {everyone} */
  access?: AccessList;
  /** Clients served at once; more are closed at once (and logged). @default {unlimited} */
  maxConns?: number;
  /** Close a forwarded connection that moves no byte either way for this many ms. */
  idleTimeout?: number;
  /** Give up connecting to the target (and the proxy handshake) after this many ms. @default {10000} */
  connectTimeout?: number;
  /** Reach the target through this proxy (TCP targets only). */
  proxy?: ProxySpec;
  /** Originate TLS toward the target. */
  targetTls?: ClientTlsOptions;
  /** Terminate TLS from clients with this PEM certificate chain and key. */
  listenTls?: ServerTlsPem;
  /** Where connections, refusals and failures are reported. */
  logger?: Logger;
  /**
   * Records every client's bytes (`--hex-dump`/`--session-log`), each
   * chunk under the client's address; "received" is from the client.
   * Recorded connections are relayed in JavaScript, never on pump threads.
   * The caller opens and closes it.
   */
  record?: SessionRecorder;
}

/** A running forwarder. */
export interface ForwardServer extends AsyncDisposable {
  /** The listening address (read the port here after binding port 0). */
  readonly addr: Deno.Addr;
  /** Connections being forwarded now. */
  readonly active: number;
  /** Connections forwarded so far (finished or not). */
  readonly served: number;
  /** Connections refused: by the access list, --max-conns, a failed TLS handshake or target. */
  readonly refused: number;
  /** Stops listening, closes every forwarded connection and waits for them. */
  close(): Promise<void>;
}

/**
 * Starts forwarding. Listening errors (address in use, ...) throw here, at
 * once; per-connection failures (a target that refuses, a bad TLS
 * handshake) close that client, are logged and leave the others alone.
 *
 * @example Forward to an echo server
 * ```ts
 * import { forwardTcp } from "./tcp.ts";
 * import { echoServer } from "../tcp/echo.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using echo = echoServer({ hostname: "127.0.0.1", port: 0 });
 * await using fwd = forwardTcp({
 *   listen: { hostname: "127.0.0.1", port: 0 },
 *   target: { hostname: "127.0.0.1", port: (echo.addr as Deno.NetAddr).port },
 * });
 * using c = await Deno.connect({ hostname: "127.0.0.1", port: (fwd.addr as Deno.NetAddr).port });
 * await c.write(new TextEncoder().encode("ping"));
 * const buf = new Uint8Array(4);
 * let got = 0;
 * while (got < 4) got += (await c.read(buf.subarray(got)))!;
 * assertEquals(new TextDecoder().decode(buf), "ping");
 * ```
 */
export function forwardTcp(options: ForwardOptions): ForwardServer {
  const logger = options.logger ?? silent;
  const access = options.access ?? AccessList.open;
  const target = options.target;
  if (options.proxy && target.path !== undefined) {
    throw new UsageError("--proxy needs a TCP target, not a Unix socket");
  }
  const tlsOpts = options.targetTls;
  if (
    tlsOpts && target.path !== undefined && !tlsOpts.insecure && !tlsOpts.pins
  ) {
    throw new UsageError(
      "--ssl toward a Unix socket verifies only with --ssl-pin (or --insecure): Deno starts verified TLS on TCP only",
    );
  }
  if (access.active && options.listen.path !== undefined) {
    throw new UsageError(
      "--allow/--deny apply to TCP peers, not to a Unix socket listener",
    );
  }
  const context: ServerTls | undefined = options.listenTls
    ? serverTls(options.listenTls)
    : undefined;
  const connectTimeout = options.connectTimeout ?? 10_000;
  const listener: Listener = listen(
    options.listen,
    options.family ? { family: options.family } : {},
  );
  const targetName = describeEndpoint(target);
  const shutdown = new AbortController();
  let active = 0, served = 0, refused = 0;

  // One sweep timer for every connection's idleness.
  const pairs = new Map<number, () => void>();
  let nextId = 0;
  const idle = options.idleTimeout
    ? new IdleWatch<number>(options.idleTimeout, (id) => pairs.get(id)?.())
    : undefined;

  const handle = async (client: Deno.Conn) => {
    const peer = formatAddr(client.remoteAddr);
    if (!access.allowsAddr(client.remoteAddr)) {
      refused++;
      closeQuietly(client);
      logger.log(`refused ${peer}: not allowed by the access list`);
      return;
    }
    if (options.maxConns !== undefined && active >= options.maxConns) {
      refused++;
      closeQuietly(client);
      logger.log(
        `refused ${peer}: ${active} connections already (--max-conns)`,
      );
      return;
    }
    active++;
    served++;
    const id = nextId++;
    let near: Stream = client as Deno.TcpConn;
    let far: Stream | undefined;
    // Everything this pair opened; closed once (closing twice costs an
    // exception per resource, a measurable share of short connections).
    const pending = new Set<{ close(): void }>([client]);
    let closed = false;
    const abortPair = () => {
      if (closed) return;
      closed = true;
      for (const r of pending) closeQuietly(r);
    };
    const onShutdown = () => abortPair();
    shutdown.signal.addEventListener("abort", onShutdown, { once: true });
    try {
      if ("setNoDelay" in client) (client as Deno.TcpConn).setNoDelay(true);
      if (context) {
        near = await acceptServerTls(
          client as Deno.TcpConn,
          context,
          connectTimeout,
        );
        pending.add(near);
      }
      const started = performance.now();
      let raw: Deno.TcpConn | Deno.UnixConn;
      const timeoutOpts = { timeout: connectTimeout, signal: shutdown.signal };
      if (options.proxy) {
        raw = await connectViaProxy(
          options.proxy,
          target as { hostname: string; port: number },
          {
            ...timeoutOpts,
            noDelay: true,
            ...(options.family ? { family: options.family } : {}),
          },
        );
      } else {
        raw = await connect(target, {
          ...timeoutOpts,
          noDelay: true,
          ...(options.family ? { family: options.family } : {}),
        });
      }
      pending.add(raw);
      far = options.targetTls
        ? await startClientTls(
          raw,
          target.hostname ?? "localhost",
          options.targetTls,
        )
        : raw;
      pending.add(far);
      if (shutdown.signal.aborted) return;
      logger.log(
        `${peer} -> ${targetName}: connected in ${
          (performance.now() - started).toFixed(1)
        } ms`,
      );
      if (idle) {
        pairs.set(id, () => {
          logger.log(
            `${peer}: closed after ${
              options.idleTimeout! / 1000
            } s without data`,
          );
          abortPair();
        });
        idle.add(id);
      }
      if (options.record) near = options.record.forPeer(peer).tapStream(near);
      const result = await relay(near, far, {
        signal: shutdown.signal,
        // Pump threads only between two plain TCP sockets.
        tcp: near === client && far === raw &&
          client.remoteAddr.transport === "tcp" &&
          raw.remoteAddr.transport === "tcp",
        ...(idle ? { onActivity: () => idle.touch(id) } : {}),
      });
      // relay() has closed both sides (and with them what they ran over).
      closed = true;
      logger.log(
        `${peer} closed: ${result.aToB} bytes to the target, ${result.bToA} back` +
          pumpNote(result.pumped) +
          (result.error !== undefined
            ? ` (${describeError(result.error)})`
            : ""),
      );
    } catch (err) {
      if (!shutdown.signal.aborted) {
        refused++;
        logger.log(`${peer}: ${describeError(err)}; closing the client`);
      }
    } finally {
      abortPair();
      shutdown.signal.removeEventListener("abort", onShutdown);
      if (idle) {
        idle.delete(id);
        pairs.delete(id);
      }
      active--;
    }
  };

  const loop = acceptLoop(listener, handle, { logger });
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      closeQuietly(listener);
      shutdown.abort();
      await loop.drain();
      idle?.[Symbol.dispose]();
    })();
  return {
    addr: listener.addr,
    get active() {
      return active;
    },
    get served() {
      return served;
    },
    get refused() {
      return refused;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
