/**
 * What a UDP server that answers every datagram (`echo -u`) refuses to
 * answer, so that it can neither be set echoing to itself or to another
 * responder nor be used to flood one address without bound:
 *
 * - a datagram from the server's own port, from port 0, or from the port of
 *   a UDP service that answers anything (echo 7, daytime 13, qotd 17,
 *   chargen 19, time 37): answering would start or feed a loop, the check
 *   inetd makes before its built-in services reply;
 * - beyond a rate per source address (a token bucket of one second's
 *   worth), so a loop with any other responder dies out and one victim
 *   address gets at most that many reflected datagrams a second.
 *
 * Both echo engines (the event loop and the libc thread) run the same
 * {@linkcode SourceGuard}.
 *
 * @module
 */

/**
 * Source ports never answered besides 0 and the server's own: UDP echo (7),
 * daytime (13), quote of the day (17), chargen (19) and time (37) answer any
 * datagram, so a reply to one of them would be answered in turn.
 */
export const LOOP_PORTS: readonly number[] = Object.freeze([7, 13, 17, 19, 37]);

/** Datagrams a second each source address may have answered by default. */
export const DEFAULT_RATE = 10_000;

/**
 * Source addresses tracked at once by default. Beyond it, new addresses
 * share one bucket until tracked ones age out: memory stays bounded however
 * many addresses a sender makes up.
 */
export const DEFAULT_MAX_SOURCES = 4096;

/** {@linkcode SourceGuard.check}: answer it. */
export const ADMIT = 0;
/** {@linkcode SourceGuard.check}: a loop source (own port, 0, {@linkcode LOOP_PORTS}). */
export const LOOP = 1;
/** {@linkcode SourceGuard.check}: its address is over the rate. */
export const OVER_RATE = 2;
/** What {@linkcode SourceGuard.check} decided. */
export type Verdict = typeof ADMIT | typeof LOOP | typeof OVER_RATE;

/** Options for {@linkcode SourceGuard}. */
export interface SourceGuardOptions {
  /** The server's own port: datagrams from it are never answered. */
  ownPort: number;
  /**
   * Datagrams a second answered per source address; `Infinity` for no
   * limit. @default {DEFAULT_RATE}
   */
  rate?: number;
  /** Source addresses tracked at once. @default {DEFAULT_MAX_SOURCES} */
  maxSources?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Decides, per datagram, whether a UDP responder may answer it (see the
 * module doc). Time is in ms (`performance.now()`).
 *
 * Each source address has a bucket of `rate` tokens refilled at `rate` a
 * second. Buckets live in two generations swapped every second: a bucket
 * untouched for a whole second is full again, the same as no bucket, so
 * forgetting it loses nothing. At most `maxSources` buckets exist; an
 * address seen when that many are live shares one overflow bucket.
 *
 * @example Usage
 * ```ts
 * import { ADMIT, LOOP, OVER_RATE, SourceGuard } from "./source_guard.ts";
 * import { assertEquals } from "./_assert.ts";
 * const guard = new SourceGuard({ ownPort: 7000, rate: 2 });
 * assertEquals(guard.check("127.0.0.1", 7000, 0), LOOP);
 * assertEquals(guard.check("127.0.0.1", 19, 0), LOOP);
 * assertEquals(guard.check("127.0.0.1", 0, 0), LOOP);
 * assertEquals(guard.check("10.0.0.1", 5000, 0), ADMIT);
 * assertEquals(guard.check("10.0.0.1", 5001, 0), ADMIT);
 * assertEquals(guard.check("10.0.0.1", 5002, 0), OVER_RATE);
 * assertEquals(guard.check("10.0.0.2", 5000, 0), ADMIT);
 * assertEquals(guard.check("10.0.0.1", 5000, 500), ADMIT); // one token back
 * ```
 */
export class SourceGuard {
  readonly #ownPort: number;
  readonly #rate: number;
  readonly #perMs: number;
  readonly #max: number;
  #current = new Map<string | number, Bucket>();
  #previous = new Map<string | number, Bucket>();
  #swappedAt = -Infinity;
  #overflow: Bucket;

  /** See {@linkcode SourceGuardOptions}. */
  constructor(options: SourceGuardOptions) {
    const rate = options.rate ?? DEFAULT_RATE;
    if (!(rate > 0)) {
      throw new RangeError(
        `Cannot limit the rate: a positive number expected, got ${rate}`,
      );
    }
    this.#ownPort = options.ownPort;
    this.#rate = rate;
    this.#perMs = rate / 1000;
    this.#max = Math.max(1, options.maxSources ?? DEFAULT_MAX_SOURCES);
    this.#overflow = { tokens: rate, at: 0 };
  }

  /** Source addresses tracked now (at most `maxSources`). */
  get tracked(): number {
    return this.#current.size + this.#previous.size;
  }

  /**
   * The verdict on a datagram from `port` at address `key` (any stable
   * spelling of the address: a string, or a number for IPv4), at `now` ms.
   */
  check(key: string | number, port: number, now: number): Verdict {
    if (
      port === this.#ownPort || port === 0 || port === 7 || port === 13 ||
      port === 17 || port === 19 || port === 37
    ) return LOOP;
    const rate = this.#rate;
    if (rate === Infinity) return ADMIT;
    if (now - this.#swappedAt >= 1000) {
      // Every bucket in #previous has been idle for a second or more: full.
      const old = this.#previous;
      old.clear();
      this.#previous = this.#current;
      this.#current = old;
      this.#swappedAt = now;
    }
    let b = this.#current.get(key);
    if (b === undefined) {
      b = this.#previous.get(key);
      if (b !== undefined) {
        this.#previous.delete(key);
        this.#current.set(key, b);
      } else if (this.tracked < this.#max) {
        b = { tokens: rate, at: now };
        this.#current.set(key, b);
      } else b = this.#overflow;
    }
    const tokens = Math.min(rate, b.tokens + (now - b.at) * this.#perMs);
    b.at = now;
    if (tokens < 1) {
      b.tokens = tokens;
      return OVER_RATE;
    }
    b.tokens = tokens - 1;
    return ADMIT;
  }
}

const LOOP_REASON =
  "a loop source (the server's own port, 0, 7, 13, 17, 19 or 37)";

/**
 * Counts refused datagrams and words them for a log at most once a
 * second, so a flood of them cannot flood the log.
 *
 * @example Usage
 * ```ts
 * import { DropLog, LOOP, OVER_RATE } from "./source_guard.ts";
 * import { assertEquals } from "./_assert.ts";
 * const log = new DropLog();
 * assertEquals(log.note(LOOP, () => "127.0.0.1:19", 0), "dropped a datagram from 127.0.0.1:19: a loop source (the server's own port, 0, 7, 13, 17, 19 or 37)");
 * assertEquals(log.note(OVER_RATE, () => "10.0.0.1:5000", 10), undefined);
 * assertEquals(log.note(LOOP, () => "127.0.0.1:7", 20), undefined);
 * assertEquals(log.note(OVER_RATE, () => "10.0.0.1:5000", 1000), "dropped 3 datagrams in 1.0 s: 1 from loop sources, 2 over --rate (last from 10.0.0.1:5000)");
 * assertEquals([log.loop, log.rate], [2, 2]);
 * ```
 */
export class DropLog {
  /** Datagrams dropped as loop sources, in all. */
  loop = 0;
  /** Datagrams dropped over the rate, in all. */
  rate = 0;
  #since = -Infinity;
  #loopSince = 0;
  #rateSince = 0;

  /**
   * Counts one drop; returns a line to log when a second has passed since
   * the last one (`from` is called only then).
   */
  note(verdict: Verdict, from: () => string, now: number): string | undefined {
    if (verdict === LOOP) {
      this.loop++;
      this.#loopSince++;
    } else {
      this.rate++;
      this.#rateSince++;
    }
    const elapsed = now - this.#since;
    if (elapsed < 1000) return undefined;
    const loop = this.#loopSince, rate = this.#rateSince;
    this.#since = now;
    this.#loopSince = this.#rateSince = 0;
    if (loop + rate === 1) {
      return `dropped a datagram from ${from()}: ${
        loop ? LOOP_REASON : "over --rate"
      }`;
    }
    return `dropped ${loop + rate} datagrams in ${
      (elapsed / 1000).toFixed(1)
    } s: ${loop} from loop sources, ${rate} over --rate (last from ${from()})`;
  }
}
