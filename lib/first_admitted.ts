/**
 * How a single-connection listener picks its one client when admitting a
 * client takes time (a TLS handshake): admissions run side by side, the
 * first to succeed wins, and the others are closed. Taken one at a time, a
 * peer that connects and never handshakes would hold the only slot for the
 * whole handshake timeout, and a few such peers queued in the backlog would
 * keep every real client waiting for as long as they liked, at no cost.
 *
 * @module
 */
import { acceptLoop } from "./accept.ts";
import { formatAddr } from "./address.ts";
import { type Logger, silent } from "./log.ts";

/** Options for {@linkcode firstAdmitted}. */
export interface FirstAdmittedOptions {
  /**
   * Admissions in progress at once; a new connection beyond them closes
   * the oldest one in progress (a real client's handshake takes
   * milliseconds, a slot holder's takes the whole timeout). @default {16}
   */
  limit?: number;
  /** Stops waiting: every admission in progress is closed. */
  signal?: AbortSignal;
  /** Where dropped admissions and accept failures are reported. */
  logger?: Logger;
}

/** Admissions in progress at once by default. */
export const DEFAULT_ADMISSIONS = 16;

/**
 * Accepts connections on `listener` until `admit` returns one (`null` or a
 * rejection refuses the connection; `admit` logs and closes it), then closes
 * the listener and every other admission in progress and returns the
 * winner; `null` when the listener closed or `signal` aborted first.
 * `admit`'s `dropped` signal aborts when this function closes the
 * connection (a winner was found, or it was the oldest beyond `limit`,
 * which is logged here): its failure then needs no report.
 *
 * @example The first peer to speak wins over one that came earlier
 * ```ts
 * import { firstAdmitted } from "./first_admitted.ts";
 * import { assertEquals } from "./_assert.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = listener.addr.port;
 * using silent = await Deno.connect({ hostname: "127.0.0.1", port });
 * using talker = await Deno.connect({ hostname: "127.0.0.1", port });
 * await talker.write(new Uint8Array([1]));
 * // Admitted once it sends a byte; closing it ends a read with an error.
 * const won = await firstAdmitted(listener, async (conn) => {
 *   const n = await conn.read(new Uint8Array(1)).catch(() => null);
 *   if (n === null) conn.close();
 *   return n === null ? null : conn;
 * });
 * assertEquals(won?.remoteAddr, talker.localAddr);
 * assertEquals(await silent.read(new Uint8Array(1)), null);
 * won?.close();
 * ```
 */
export async function firstAdmitted<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  admit: (conn: C, dropped: AbortSignal) => Promise<C | null>,
  options: FirstAdmittedOptions = {},
): Promise<C | null> {
  const limit = Math.max(1, options.limit ?? DEFAULT_ADMISSIONS);
  const logger = options.logger ?? silent;
  // In order of arrival: the first is the oldest.
  const inProgress = new Map<C, AbortController>();
  const { promise, resolve } = Promise.withResolvers<C | null>();
  let done = false;
  const finish = (winner: C | null) => {
    if (done) {
      if (winner) close(winner);
      return;
    }
    done = true;
    close(listener);
    for (const [c, drop] of inProgress) {
      drop.abort();
      close(c);
    }
    resolve(winner);
  };
  const onAbort = () => finish(null);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  const loop = acceptLoop<C>(listener, async (raw) => {
    if (done) {
      close(raw);
      return;
    }
    if (inProgress.size >= limit) {
      const [oldest, drop] = inProgress.entries().next().value!;
      inProgress.delete(oldest);
      drop.abort();
      logger.log(
        `${
          formatAddr(oldest.remoteAddr)
        }: dropped, the oldest of ${limit} connections still being admitted`,
      );
      close(oldest);
    }
    const drop = new AbortController();
    inProgress.set(raw, drop);
    let conn: C | null = null;
    try {
      conn = await admit(raw, drop.signal);
    } finally {
      inProgress.delete(raw);
    }
    if (conn) finish(conn);
  }, { logger });
  loop.stopped.then(() => finish(null));
  try {
    return await promise;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    // The losers settle on their own once closed; nothing waits on them.
    loop.drain().catch(() => {});
  }
}

function close(r: { close(): void }): void {
  try {
    r.close();
  } catch { /* already closed */ }
}

/**
 * The connections a keep-open listener has accepted and is still
 * handshaking with (TLS), which count against its cap. At the cap a
 * newcomer makes room by closing the oldest of them (a real client's
 * handshake takes milliseconds, a slot holder's the whole timeout), so
 * peers that never handshake cannot keep a client out.
 */
export class Handshakes<C extends { remoteAddr: Deno.Addr; close(): void }> {
  readonly #open = new Set<C>();
  readonly #evicted = new WeakSet<C>();

  /** Handshakes in progress. */
  get size(): number {
    return this.#open.size;
  }

  /** `conn` starts its handshake. */
  add(conn: C): void {
    this.#open.add(conn);
  }

  /** `conn`'s handshake is over, one way or the other. */
  delete(conn: C): void {
    this.#open.delete(conn);
  }

  /** Whether `conn` was closed to make room (its failure needs no report). */
  evicted(conn: C): boolean {
    return this.#evicted.has(conn);
  }

  /**
   * Closes the oldest handshake in progress to make room, logged; false
   * when there is none (every slot is an established client).
   */
  evictOldest(logger: Logger): boolean {
    const oldest = this.#open.values().next().value;
    if (oldest === undefined) return false;
    this.#open.delete(oldest);
    this.#evicted.add(oldest);
    close(oldest);
    logger.log(
      `${
        formatAddr(oldest.remoteAddr)
      }: closed, still handshaking when --max-conns was reached`,
    );
    return true;
  }

  /** Closes every handshake in progress (the listener stops). */
  closeAll(): void {
    for (const c of this.#open) close(c);
  }
}
