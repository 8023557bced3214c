/**
 * The accept loop every server shares: hands each connection to a handler,
 * keeps track of the handlers still running, and backs off instead of
 * spinning when accept fails (out of file descriptors, say), logging such
 * failures at most once a second.
 *
 * @module
 */
import { describeError } from "./errors.ts";
import { type Logger, silent } from "./log.ts";

/** Options for {@linkcode acceptLoop}. */
export interface AcceptOptions {
  /** Where accept failures and handler errors are reported. */
  logger?: Logger;
  /** First pause after a failed accept, doubled per failure up to 1 s. @default {10} */
  backoffMs?: number;
}

/** A running accept loop. */
export interface AcceptLoop {
  /** Resolves once the listener is closed and the loop has stopped. */
  readonly stopped: Promise<void>;
  /** Handlers still running. */
  readonly running: number;
  /** Waits for the loop to stop (close the listener first) and every handler to settle. */
  drain(): Promise<void>;
}

const MAX_BACKOFF_MS = 1000;

/**
 * Accepts connections on `listener` until it is closed, calling `handle` for
 * each without waiting for it. A handler's rejection is logged, never left
 * unhandled.
 *
 * @example Usage
 * ```ts
 * import { acceptLoop } from "./accept.ts";
 * import { assertEquals } from "./_assert.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const seen: string[] = [];
 * const loop = acceptLoop(listener, async (conn) => {
 *   seen.push(conn.remoteAddr.transport);
 *   conn.close();
 * });
 * (await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port })).close();
 * while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
 * listener.close();
 * await loop.drain();
 * assertEquals(seen, ["tcp"]);
 * ```
 */
export function acceptLoop<C extends Deno.Conn>(
  listener: { accept(): Promise<C> },
  handle: (conn: C) => Promise<unknown>,
  options: AcceptOptions = {},
): AcceptLoop {
  const logger = options.logger ?? silent;
  const firstBackoff = options.backoffMs ?? 10;
  const handlers = new Set<Promise<unknown>>();
  let lastLog = 0;
  let suppressed = 0;

  const stopped = (async () => {
    let backoff = firstBackoff;
    while (true) {
      let conn: C;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (
          err instanceof Deno.errors.BadResource ||
          err instanceof Deno.errors.Interrupted
        ) return;
        // One peer gone before it was taken: no reason to slow down.
        if (isGoneBeforeAccept(err)) continue;
        const now = Date.now();
        if (now - lastLog >= 1000) {
          logger.log(
            `accept failed: ${describeError(err)}` +
              (suppressed
                ? ` (${suppressed} more since the last report)`
                : "") +
              `; retrying in ${backoff} ms`,
          );
          lastLog = now;
          suppressed = 0;
        } else suppressed++;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        continue;
      }
      backoff = firstBackoff;
      const h = handle(conn).catch((err) =>
        logger.log(`connection failed: ${describeError(err)}`)
      );
      handlers.add(h);
      h.finally(() => handlers.delete(h));
    }
  })();

  return {
    stopped,
    get running() {
      return handlers.size;
    },
    async drain() {
      await stopped;
      while (handlers.size) await Promise.allSettled([...handlers]);
    },
  };
}

/**
 * Whether an `accept()` failure concerns only the connection it took: a
 * peer that reset before Deno read its address (`NotConnected`: Deno's
 * accept asks for the peer's address and fails when it is gone). That
 * connection has left the queue; the next accept serves the next peer, so
 * a loop retries at once: backing off would let a flood of resets (a
 * port scan, or an attacker) stall every real client behind them.
 */
export function isGoneBeforeAccept(err: unknown): boolean {
  return err instanceof Deno.errors.NotConnected ||
    err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.ConnectionAborted;
}

/**
 * `listener.accept()`, skipping connections whose peer reset before they
 * were taken (see {@linkcode isGoneBeforeAccept}), for servers that take
 * one connection: such a peer must not end them.
 *
 * @example Usage
 * ```ts
 * import { acceptNext } from "./accept.ts";
 * import { assertEquals } from "./_assert.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * using server = await acceptNext(listener);
 * assertEquals(server.remoteAddr, client.localAddr);
 * ```
 */
export async function acceptNext<C extends Deno.Conn>(
  listener: { accept(): Promise<C> },
): Promise<C> {
  for (;;) {
    try {
      return await listener.accept();
    } catch (err) {
      if (!isGoneBeforeAccept(err)) throw err;
    }
  }
}
