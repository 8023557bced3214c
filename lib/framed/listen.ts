/**
 * `denocat -l --frame FORMAT [-k]`: a TCP (or Unix socket) listener that
 * decodes each client's frames and writes the payloads out.
 *
 * @module
 */
import { firstAdmitted } from "../first_admitted.ts";
import { acceptLoop, acceptNext } from "../accept.ts";
import { formatAddr } from "../address.ts";
import type { Writer } from "../copy.ts";
import { DenocatError, describeError, EXIT_FAILURE } from "../errors.ts";
import { IdleWatch } from "../idle.ts";
import { SharedOutput } from "./output.ts";
import {
  receiveFrames,
  type ReceiveFramesOptions,
  type ReceiveFramesResult,
} from "./receive.ts";
import { formatTransfer, type Logger, silent } from "../log.ts";
import {
  closeQuietly,
  type Conn,
  type Endpoint,
  listen,
  type ListenOptions,
} from "../tcp/connect.ts";

/** Options for {@linkcode framedListen}. */
export interface FramedListenOptions
  extends ListenOptions, ReceiveFramesOptions {
  /** Where decoded payloads go (stdout). */
  output: Writer;
  /**
   * Keep listening and serve clients concurrently (`-k`). Each client's
   * frames are decoded on their own and written whole; a client sending
   * malformed frames is reported through `onClientError` and dropped.
   * Without it, one client is served and malformed input throws.
   *
   * @default {false}
   */
  keep?: boolean;
  /**
   * With `keep`: clients served at once. A connection beyond it is closed
   * as soon as it is accepted (logged through `logger`), before anything
   * is read from it or allocated for it.
   *
   * @default {DEFAULT_MAX_CONNS}
   */
  maxConns?: number;
  /** Stops listening; clients being served are closed. */
  signal?: AbortSignal;
  /**
   * Close a client that sends nothing for this many ms. Its session then
   * ends as if it had closed (not an error, like nc -w), unless it stopped
   * in the middle of a frame: then single mode fails with a timeout error
   * and with `keep` the client is dropped.
   * @default {no limit}
   */
  idleTimeout?: number;
  /** Called once bound, with the local address. */
  onListening?: (addr: Deno.Addr) => void;
  /** Diagnostic lines (`-v`): `listening on`, connections, totals. */
  logger?: Logger;
  /**
   * With `keep`: called when a client is dropped for an error (malformed
   * frames, a reset), with the error and the client's address.
   *
   * @default {logs through `logger`}
   */
  onClientError?: (err: unknown, peer: string) => void;
  /**
   * Whether a peer may connect (`--allow`/`--deny`); a refused peer is
   * closed at once, before a byte is read, and logged (`refused` counts
   * it); a single-connection listener goes on waiting. @default {every peer}
   */
  accept?: (addr: Deno.Addr) => boolean;
  /**
   * Layers each accepted connection before frames are read (TLS, see
   * tcp/stream_conn.ts), or throws to refuse it (logged; a
   * single-connection listener goes on waiting).
   */
  wrap?: (conn: Conn) => Promise<Conn>;
}

/** Totals for {@linkcode framedListen}. */
export interface FramedListenResult extends ReceiveFramesResult {
  /** Connections accepted. */
  connections: number;
  /** Connections dropped for an error (keep mode). */
  dropped: number;
  /**
   * Connections closed unread: refused by `accept`, or (keep mode) beyond
   * `maxConns`.
   */
  refused: number;
}

/** Clients a keep-mode framed listener serves at once by default. */
export const DEFAULT_MAX_CONNS = 256;

/**
 * Listens on `endpoint` and writes the payloads of the frames clients send.
 * Resolves when the single client is done or, with `keep`, when `signal`
 * aborts. Throws the client's `FrameError` in single mode, and a write
 * error on `output` in both modes.
 *
 * @example One client, u32le frames
 * ```ts
 * import { framedListen } from "./listen.ts";
 * import { encodeFrame } from "../frame/mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * let text = "";
 * const output = { write(p: Uint8Array) { text += new TextDecoder().decode(p); return Promise.resolve(p.length); } };
 * const { promise: bound, resolve } = Promise.withResolvers<Deno.Addr>();
 * const run = framedListen({ hostname: "127.0.0.1", port: 0 }, { output, format: "u32le", onListening: resolve });
 * const port = ((await bound) as Deno.NetAddr).port;
 * {
 *   using conn = await Deno.connect({ hostname: "127.0.0.1", port });
 *   const te = new TextEncoder();
 *   await conn.write(new Uint8Array([...encodeFrame(te.encode("a"), { format: "u32le" }), ...encodeFrame(te.encode("b"), { format: "u32le" })]));
 * }
 * const r = await run;
 * assertEquals(text, "a\nb\n");
 * assertEquals([r.connections, r.frames], [1, 2]);
 * ```
 */
export async function framedListen(
  endpoint: Endpoint | { port: number; hostname?: undefined; path?: undefined },
  options: FramedListenOptions,
): Promise<FramedListenResult> {
  const logger = options.logger ?? silent;
  const maxConns = options.maxConns ?? DEFAULT_MAX_CONNS;
  if (!(maxConns >= 1)) {
    throw new RangeError(
      `Cannot serve framed clients: maxConns must be at least 1, got ${maxConns}`,
    );
  }
  const listener = listen(endpoint as Endpoint, options);
  logger.log(`listening on ${formatAddr(listener.addr)}`);
  options.onListening?.(listener.addr);
  const onAbort = () => closeQuietly(listener);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  try {
    return options.keep
      ? await serveMany(listener, options, logger)
      : await serveOne(listener, options, logger);
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    closeQuietly(listener);
  }
}

const NONE: FramedListenResult = {
  connections: 0,
  dropped: 0,
  refused: 0,
  frames: 0,
  bytes: 0,
  received: 0,
};

async function accept(
  listener: Deno.Listener,
  signal: AbortSignal | undefined,
): Promise<Conn | null> {
  try {
    return await acceptNext(listener) as Conn;
  } catch (err) {
    if (signal?.aborted || err instanceof Deno.errors.BadResource) return null;
    throw err;
  }
}

/**
 * Applies `accept` and `wrap` to a new connection: the connection to
 * serve, or `null` when it was refused (closed and logged).
 */
async function admit(
  conn: Conn,
  options: FramedListenOptions,
  logger: Logger,
  handshaking?: Set<Conn>,
  /** Aborted when the caller closed it (first_admitted.ts): not reported. */
  dropped?: AbortSignal,
): Promise<Conn | null> {
  if (options.accept && !options.accept(conn.remoteAddr)) {
    logger.log(`${formatAddr(conn.remoteAddr)}: refused by the access list`);
    closeQuietly(conn);
    return null;
  }
  if (!options.wrap) return conn;
  handshaking?.add(conn);
  try {
    return await options.wrap(conn);
  } catch (err) {
    if (!dropped?.aborted) {
      logger.log(`${formatAddr(conn.remoteAddr)}: ${describeError(err)}`);
    }
    closeQuietly(conn);
    return null;
  } finally {
    handshaking?.delete(conn);
  }
}

function idleError(ms: number, cause: unknown): DenocatError {
  return new DenocatError(
    `timed out: no data for ${ms / 1000} s, in the middle of a frame`,
    EXIT_FAILURE,
    { cause },
  );
}

/**
 * Receives one client's frames, closing it when idle (see `idleTimeout`).
 * An idle client ends like one that closed: its session is over and the
 * frames it sent are written (nc -w's rule: not a failure), unless it went
 * quiet in the middle of a frame, which is a truncated frame.
 */
async function receiveWatched(
  conn: Conn,
  output: Writer | SharedOutput,
  options: FramedListenOptions,
  idle: IdleWatch<Conn> | undefined,
  idled: Set<Conn>,
  logger: Logger,
) {
  if (!idle) return await receiveFrames(conn, output, options);
  const onRead = options.onRead;
  idle.add(conn);
  // Once the watch has closed the connection, its reads end as EOF.
  const input = {
    read: (p: Uint8Array) =>
      conn.read(p).catch((err) => {
        if (idled.has(conn)) return null;
        throw err;
      }),
  };
  try {
    const r = await receiveFrames(input, output, {
      ...options,
      onRead: (n) => {
        idle.touch(conn);
        onRead?.(n);
      },
    });
    if (idled.has(conn)) {
      logger.log(
        `${formatAddr(conn.remoteAddr)}: no data for ${
          options.idleTimeout! / 1000
        } s, closed`,
      );
    }
    return r;
  } catch (err) {
    if (idled.has(conn)) throw idleError(options.idleTimeout!, err);
    throw err;
  } finally {
    idle.delete(conn);
    idled.delete(conn);
  }
}

/** An IdleWatch closing idle clients, when `idleTimeout` is set. */
function watchIdle(
  options: FramedListenOptions,
  idled: Set<Conn>,
): IdleWatch<Conn> | undefined {
  return options.idleTimeout
    ? new IdleWatch<Conn>(options.idleTimeout, (c) => {
      idled.add(c);
      closeQuietly(c);
    })
    : undefined;
}

async function serveOne(
  listener: Deno.Listener,
  options: FramedListenOptions,
  logger: Logger,
): Promise<FramedListenResult> {
  let refused = 0;
  let conn: Conn | null = null;
  if (options.wrap) {
    // Handshakes run side by side and the first client through wins: one
    // that connects and never handshakes holds no slot (first_admitted.ts).
    conn = await firstAdmitted(
      listener as Deno.Listener<Conn>,
      async (raw, dropped) => {
        const c = await admit(raw, options, logger, undefined, dropped);
        if (c === null) refused++;
        return c;
      },
      { ...(options.signal ? { signal: options.signal } : {}), logger },
    );
    if (conn === null || options.signal?.aborted) {
      if (conn) closeQuietly(conn);
      return { ...NONE, refused };
    }
  } else {
    while (conn === null) {
      const raw = await accept(listener, options.signal);
      if (raw === null) return { ...NONE, refused };
      conn = await admit(raw, options, logger);
      if (conn === null) refused++;
    }
  }
  closeQuietly(listener);
  const peer = formatAddr(conn.remoteAddr);
  logger.log(`connection from ${peer}`);
  const onAbort = () => closeQuietly(conn);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const t0 = performance.now();
  const idled = new Set<Conn>();
  using idle = watchIdle(options, idled);
  try {
    const r = await receiveWatched(
      conn,
      options.output,
      options,
      idle,
      idled,
      logger,
    );
    logger.log(
      `${peer} closed: ${r.frames} frames, ${
        formatTransfer(r.received, performance.now() - t0)
      }`,
    );
    return { ...r, connections: 1, dropped: 0, refused };
  } catch (err) {
    if (options.signal?.aborted) return { ...NONE, connections: 1, refused };
    throw err;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    closeQuietly(conn);
  }
}

async function serveMany(
  listener: Deno.Listener,
  options: FramedListenOptions,
  logger: Logger,
): Promise<FramedListenResult> {
  const shared = new SharedOutput(options.output);
  const onClientError = options.onClientError ??
    ((err: unknown, peer: string) =>
      logger.log(`${peer}: ${describeError(err)}; dropped`));
  const total: FramedListenResult = { ...NONE };
  const maxConns = options.maxConns ?? DEFAULT_MAX_CONNS;
  const clients = new Set<Conn>();
  const idled = new Set<Conn>();
  using idle = watchIdle(options, idled);

  const handle = async (conn: Conn) => {
    const peer = formatAddr(conn.remoteAddr);
    try {
      const r = await receiveWatched(
        conn,
        shared,
        options,
        idle,
        idled,
        logger,
      );
      total.frames += r.frames;
      total.bytes += r.bytes;
      total.received += r.received;
      logger.log(`${peer} closed: ${r.frames} frames, ${r.received} bytes`);
    } catch (err) {
      if (shared.failure !== undefined) {
        closeQuietly(listener); // the output is gone: stop serving
      } else if (!options.signal?.aborted) {
        total.dropped++;
        onClientError(err, peer);
      }
    } finally {
      clients.delete(conn);
      closeQuietly(conn);
    }
  };

  const handshaking = new Set<Conn>();
  const loop = acceptLoop<Conn>(
    listener as Deno.Listener<Conn>,
    async (raw) => {
      if (clients.size + handshaking.size >= maxConns) {
        total.refused++;
        logger.log(
          `${
            formatAddr(raw.remoteAddr)
          } refused: ${clients.size} clients open (--max-conns)`,
        );
        closeQuietly(raw);
        return;
      }
      const conn = await admit(raw, options, logger, handshaking);
      if (conn === null) {
        total.refused++;
        return;
      }
      if (clients.size >= maxConns) {
        total.refused++;
        logger.log(
          `${
            formatAddr(conn.remoteAddr)
          } refused: ${clients.size} clients open (--max-conns)`,
        );
        closeQuietly(conn);
        return;
      }
      total.connections++;
      logger.log(`connection from ${formatAddr(conn.remoteAddr)}`);
      clients.add(conn);
      await handle(conn);
    },
    { logger },
  );
  await loop.stopped;
  for (const c of clients) closeQuietly(c);
  for (const c of handshaking) closeQuietly(c);
  await loop.drain();
  if (shared.failure !== undefined) throw shared.failure;
  return total;
}
