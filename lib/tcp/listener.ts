/**
 * The TCP listener mode (`-l`): serve one connection like nc, or with
 * `keep` serve many at once, fanning local input out to every client.
 *
 * @module
 */
import { firstAdmitted, Handshakes } from "../first_admitted.ts";
import { formatAddr } from "../address.ts";
import { acceptLoop, acceptNext } from "../accept.ts";
import { writeAll } from "../copy.ts";
import { describeError, OutputClosedError } from "../errors.ts";
import { IdleWatch } from "../idle.ts";
import { formatTransfer, type Logger, pumpNote, silent } from "../log.ts";
import { pipeDuplex, type PipeOptions } from "./pipe.ts";
import {
  closeQuietly,
  closeWriteQuietly,
  type Conn,
  type Endpoint,
  listen,
  type ListenOptions,
} from "./connect.ts";

/**
 * Options for {@linkcode tcpListen}: where to bind and how to relay.
 * `endOnPeerEof` defaults to true here (OpenBSD nc's rule for `-l`): a
 * client's session ends when the client's side has ended and everything it
 * sent is written to `output`, whether or not `input` has ended. With
 * `keep` that holds per client.
 */
export interface ListenerOptions extends ListenOptions, PipeOptions {
  /**
   * Keep listening and serve clients concurrently (`-k`); input is copied to
   * every connected client. `quitAfterEof` applies only to single-connection
   * mode; `idleTimeout` closes each client that moves no byte for that long.
   * @default {false}
   */
  keep?: boolean;
  /** Disable Nagle's algorithm on accepted connections (interactive use). @default {false} */
  noDelay?: boolean;
  /**
   * With `keep`: serve at most this many clients at once; a client beyond
   * that is closed as soon as it is accepted (logged). @default {Infinity}
   */
  maxConns?: number;
  /** Called once bound, with the local address. */
  onListening?: (addr: Deno.Addr) => void;
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
  /**
   * Whether a peer may connect (`--allow`/`--deny`); a refused peer is
   * closed at once and logged, and a single-connection listener goes on
   * waiting for one that is allowed. @default {every peer}
   */
  accept?: (addr: Deno.Addr) => boolean;
  /**
   * Layers each accepted connection before it is served (TLS, see
   * `stream_conn.ts`), or throws to refuse it (logged; a single-connection
   * listener goes on waiting).
   */
  wrap?: (conn: Conn) => Promise<Conn>;
}

/** Totals for {@linkcode tcpListen}. */
export interface ListenerResult {
  /** Connections served. */
  connections: number;
  /** Bytes sent to clients (in keep mode, counted once per client). */
  sent: number;
  /** Bytes received from all clients. */
  received: number;
  /**
   * Single mode: the client ended first while `input` still had bytes
   * ready, which were not sent (nc's rule for -l; the client can keep its
   * side open with `--no-shutdown` to receive everything).
   */
  inputLeft?: boolean;
}

/**
 * Listens on `endpoint` and relays input/output with the client(s).
 *
 * @example One connection, like nc -l
 * ```ts
 * import { tcpListen } from "./listener.ts";
 * import { assertEquals } from "../_assert.ts";
 * const { promise: bound, resolve } = Promise.withResolvers<number>();
 * let text = "";
 * const done = tcpListen({ hostname: "127.0.0.1", port: 0 }, {
 *   input: { read: () => Promise.resolve(null) },
 *   output: { write(p) { text += new TextDecoder().decode(p); return Promise.resolve(p.length); } },
 *   onListening: (a) => resolve((a as Deno.NetAddr).port),
 * });
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: await bound });
 * await conn.write(new TextEncoder().encode("hi"));
 * conn.close();
 * assertEquals((await done).received, 2);
 * assertEquals(text, "hi");
 * ```
 */
export async function tcpListen(
  endpoint: Endpoint | { port: number },
  options: ListenerOptions,
): Promise<ListenerResult> {
  const logger = options.logger ?? silent;
  const listener = listen(endpoint as Endpoint, options);
  logger.log(`listening on ${formatAddr(listener.addr)}`);
  options.onListening?.(listener.addr);
  const onAbort = () => closeQuietly(listener);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (!options.keep) return await serveOne(listener, options, logger);
    return await serveMany(listener, options, logger);
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    closeQuietly(listener);
  }
}

/** Whether `accept` refuses `conn`; a refused one is logged and closed. */
function refused(
  conn: Conn,
  options: ListenerOptions,
  logger: Logger,
): boolean {
  if (!options.accept || options.accept(conn.remoteAddr)) return false;
  logger.log(`${formatAddr(conn.remoteAddr)}: refused by the access list`);
  closeQuietly(conn);
  return true;
}

async function serveOne(
  listener: Deno.Listener,
  options: ListenerOptions,
  logger: Logger,
): Promise<ListenerResult> {
  let conn: Conn;
  if (options.wrap) {
    // Handshakes run side by side and the first client through wins: one
    // that connects and never handshakes holds no slot (first_admitted.ts).
    const wrap = options.wrap;
    const won = await firstAdmitted(
      listener as Deno.Listener<Conn>,
      async (raw, dropped) => {
        if (refused(raw, options, logger)) return null;
        try {
          return await wrap(raw);
        } catch (err) {
          if (!options.signal?.aborted && !dropped.aborted) {
            logger.log(`${formatAddr(raw.remoteAddr)}: ${describeError(err)}`);
          }
          closeQuietly(raw);
          return null;
        }
      },
      { ...(options.signal ? { signal: options.signal } : {}), logger },
    );
    if (won === null) return { connections: 0, sent: 0, received: 0 };
    conn = won;
  } else {
    for (;;) {
      try {
        conn = await acceptNext(listener) as Conn;
      } catch (err) {
        if (options.signal?.aborted) {
          return { connections: 0, sent: 0, received: 0 };
        }
        throw err;
      }
      if (!refused(conn, options, logger)) break;
    }
  }
  closeQuietly(listener);
  if (options.noDelay) setNoDelay(conn);
  logger.log(`connection from ${formatAddr(conn.remoteAddr)}`);
  const t0 = performance.now();
  // OpenBSD nc's rule for -l: the session ends once the client's side has
  // ended and everything received is written out, whether or not local
  // input has ended (a relay fed by a pipe that stays open must still end).
  const r = await pipeDuplex(conn, {
    ...options,
    endOnPeerEof: options.endOnPeerEof ?? true,
  });
  const ms = performance.now() - t0;
  logger.log(
    `closed (${r.reason}): received ${formatTransfer(r.received, ms)}, sent ${
      formatTransfer(r.sent, ms)
    }${pumpNote(r.pumped)}`,
  );
  return {
    connections: 1,
    sent: r.sent,
    received: r.received,
    ...(r.inputLeft ? { inputLeft: true } : {}),
  };
}

async function serveMany(
  listener: Deno.Listener,
  options: ListenerOptions,
  logger: Logger,
): Promise<ListenerResult> {
  const clients = new Set<Conn>();
  const halfClose = options.halfClose ?? true;
  let inputDone = false;
  let connections = 0;
  let sent = 0;
  let received = 0;
  // Serialise writes to the shared output so client chunks never interleave mid-chunk.
  let outputChain: Promise<void> = Promise.resolve();
  const emit = (chunk: Uint8Array) =>
    outputChain = outputChain.then(() => writeAll(options.output, chunk));
  const idle = options.idleTimeout
    ? new IdleWatch<Conn>(options.idleTimeout, (c) => {
      logger.log(`${formatAddr(c.remoteAddr)}: idle, closed`);
      clients.delete(c);
      closeQuietly(c);
    })
    : undefined;

  // Each client has its own queue and writer, so one client that stops
  // reading cannot stall the others; a client that falls more than
  // MAX_BEHIND bytes behind is dropped. Input is read only while the
  // fastest client is less than half that far behind.
  const outboxes = new Map<Conn, Outbox>();
  const drop = (c: Conn, why: string) => {
    logger.log(`${formatAddr(c.remoteAddr)}: ${why}; dropped`);
    outboxes.get(c)?.close();
    outboxes.delete(c);
    clients.delete(c);
    closeQuietly(c);
  };
  const outboxFor = (c: Conn) => {
    const box = new Outbox(c, (n) => {
      sent += n;
      idle?.touch(c);
    }, (err) => drop(c, describeError(err)));
    outboxes.set(c, box);
    return box;
  };
  const broadcast = (async () => {
    const buf = new Uint8Array(256 * 1024);
    let n: number | null;
    while ((n = await options.input.read(buf)) !== null) {
      const chunk = buf.slice(0, n); // one copy, shared by every queue
      for (const [c, box] of outboxes) {
        if (box.queued + n > MAX_BEHIND) {
          drop(c, `not reading (${box.queued} bytes queued)`);
        } else box.push(chunk);
      }
      await Outbox.roomInAny([...outboxes.values()], MAX_BEHIND / 2);
    }
    inputDone = true;
    if (halfClose) {
      await Promise.all([...outboxes.values()].map((box) => box.end()));
    }
  })();
  broadcast.catch((err) => logger.log(`input: ${describeError(err)}`));

  const handle = async (conn: Conn) => {
    const peer = formatAddr(conn.remoteAddr);
    const buf = new Uint8Array(64 * 1024);
    let bytes = 0;
    try {
      let n: number | null;
      while ((n = await conn.read(buf)) !== null) {
        bytes += n;
        received += n;
        idle?.touch(conn);
        await emit(buf.subarray(0, n));
      }
      logger.log(`${peer} closed after sending ${bytes} bytes`);
    } catch (err) {
      if (err instanceof OutputClosedError) {
        // `denocat -l -k … | head`: nobody reads any more; stop serving.
        logger.log(`${describeError(err)}: no longer serving`);
        closeQuietly(listener);
      } else if (!options.signal?.aborted) {
        logger.log(`${peer}: ${describeError(err)} after ${bytes} bytes`);
      }
    } finally {
      idle?.delete(conn);
      outboxes.get(conn)?.close();
      outboxes.delete(conn);
      clients.delete(conn);
      closeQuietly(conn);
    }
  };

  const handshaking = new Handshakes<Conn>();
  let stopping = false;
  const loop = acceptLoop<Conn>(
    listener as Deno.Listener<Conn>,
    async (accepted) => {
      if (refused(accepted, options, logger)) return;
      let conn = accepted;
      if (options.wrap) {
        if (
          clients.size + handshaking.size >= (options.maxConns ?? Infinity) &&
          !handshaking.evictOldest(logger)
        ) {
          // Every slot is an established client: the newcomer goes.
          logger.log(
            `${
              formatAddr(accepted.remoteAddr)
            }: closed, ${clients.size} clients already (--max-conns)`,
          );
          closeQuietly(accepted);
          return;
        }
        // Closed with the listener while it handshakes.
        handshaking.add(accepted);
        try {
          conn = await options.wrap(accepted);
        } catch (err) {
          if (!stopping && !handshaking.evicted(accepted)) {
            logger.log(
              `${formatAddr(accepted.remoteAddr)}: ${describeError(err)}`,
            );
          }
          closeQuietly(accepted);
          return;
        } finally {
          handshaking.delete(accepted);
        }
        if (stopping || handshaking.evicted(accepted)) {
          closeQuietly(conn);
          return;
        }
      }
      if (clients.size >= (options.maxConns ?? Infinity)) {
        logger.log(
          `${
            formatAddr(conn.remoteAddr)
          }: closed, ${clients.size} clients already (--max-conns)`,
        );
        closeQuietly(conn);
        return;
      }
      connections++;
      if (options.noDelay) setNoDelay(conn);
      logger.log(`connection from ${formatAddr(conn.remoteAddr)}`);
      clients.add(conn);
      idle?.add(conn);
      const box = outboxFor(conn);
      if (inputDone && halfClose) await box.end();
      await handle(conn);
    },
    { logger },
  );
  await loop.stopped;
  stopping = true;
  for (const c of clients) closeQuietly(c);
  handshaking.closeAll();
  await loop.drain();
  idle?.[Symbol.dispose]();
  await outputChain.catch(() => {});
  return { connections, sent, received };
}

function setNoDelay(conn: Conn): void {
  if (conn.remoteAddr.transport === "tcp") {
    (conn as Deno.TcpConn).setNoDelay(true);
  }
}

/** How far (bytes) a `-k` client may fall behind the broadcast before it is dropped. */
const MAX_BEHIND = 8 * 1024 * 1024;

/** One client's queue of broadcast chunks and the loop writing them. */
class Outbox {
  #queue: Uint8Array[] = [];
  #queued = 0;
  #wake: (() => void) | undefined;
  #ending = false;
  #closed = false;
  #drained = new Set<() => void>();
  readonly done: Promise<void>;

  constructor(
    conn: Conn,
    onSent: (n: number) => void,
    onError: (err: unknown) => void,
  ) {
    this.done = (async () => {
      try {
        while (!this.#closed) {
          const chunk = this.#queue.shift();
          if (chunk === undefined) {
            if (this.#ending) {
              await closeWriteQuietly(conn);
              return;
            }
            await new Promise<void>((r) => this.#wake = r);
            continue;
          }
          await writeAll(conn, chunk);
          this.#queued -= chunk.length;
          onSent(chunk.length);
          for (const f of this.#drained) f();
        }
      } catch (err) {
        if (!this.#closed) onError(err);
      }
    })();
  }

  get queued(): number {
    return this.#queued;
  }

  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    this.#wake?.();
  }

  /** Sends FIN once everything queued is written. */
  end(): Promise<void> {
    this.#ending = true;
    this.#wake?.();
    return this.done;
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#wake?.();
    for (const f of this.#drained) f();
  }

  /** Resolves once some outbox has fewer than `limit` bytes queued (or there are none). */
  static roomInAny(boxes: Outbox[], limit: number): Promise<void> {
    if (
      boxes.length === 0 || boxes.some((b) => b.#queued < limit || b.#closed)
    ) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (boxes.some((b) => b.#queued < limit || b.#closed)) {
          for (const b of boxes) b.#drained.delete(check);
          resolve();
        }
      };
      for (const b of boxes) b.#drained.add(check);
    });
  }
}
