/**
 * The shell server's brake on token guessing. Every login attempt from a
 * source passes this gate before the server sends its hello (so before a
 * single byte of the attempt is read). A source with no failures on record
 * is admitted at once, however many connections it opens. Once it has
 * failed, each further attempt waits, after the previous admission from it,
 * the penalty for its failures plus its attempts still undecided; and never
 * starts before the sum of the penalties its failures have earned since its
 * streak began. So n wrong guesses from one source take at least the sum
 * of the schedule's first n penalties, however they are spread over
 * connections. A success clears the source's record.
 *
 * @module
 */

/** Options for {@linkcode AuthGate}. */
export interface AuthThrottleOptions {
  /**
   * Failures that cost nothing: an attempt made after fewer failures from
   * its source (counting undecided attempts as failures) is admitted at once.
   * @default {2}
   */
  freeFailures?: number;
  /** Penalty after the first slowed failure; doubles with each further one. @default {250} */
  baseDelayMs?: number;
  /** Largest penalty. @default {8000} */
  maxDelayMs?: number;
  /** A source's failures are forgotten this long after its last one. @default {600000} */
  forgetAfterMs?: number;
}

/** One admitted login attempt; exactly one of its methods counts. */
export interface AuthAttempt {
  /** A wrong proof: returns the source's failures and the next attempt's penalty. */
  fail(): { failures: number; delayMs: number };
  /** A right proof: the source's record is cleared. */
  succeed(): void;
  /** Ended without a proof (closed, timed out, broke the protocol). */
  abandon(): void;
}

/**
 * What waits at the gate: its owner sets `dropped` and calls
 * {@linkcode AuthGate.cancel} when it gives up. (No closure is stored on it:
 * a closure per waiting connection, set and cleared on a long-lived object
 * graph, made the server's heap grow with every guess.)
 */
export interface GateTicket {
  /** Set by the owner once it has given up. */
  dropped: boolean;
}

interface Waiter {
  resolve(attempt: AuthAttempt | undefined): void;
  ticket: GateTicket;
}

interface SourceState {
  failures: number;
  /** Sum of the penalties earned by `failures`. */
  owed: number;
  /** Admission time of the first failed attempt of the current streak. */
  streakStart: number | undefined;
  lastFailure: number;
  inFlight: number;
  lastAdmit: number;
  queue: Waiter[];
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Sources remembered at most (those with nothing pending are dropped first). */
const MAX_SOURCES = 10_000;

/**
 * Per-source admission with a penalty schedule: nothing for the first
 * `freeFailures` failures, then `baseDelayMs` doubling up to `maxDelayMs`.
 *
 * @example Serial penalties
 * ```ts
 * import { AuthGate } from "./auth_gate.ts";
 * import { assertEquals, assertOk } from "../_assert.ts";
 * const gate = new AuthGate({ freeFailures: 1, baseDelayMs: 40, maxDelayMs: 80 });
 * const signal = { dropped: false };
 * const t0 = performance.now();
 * (await gate.admit("10.0.0.1", signal))!.fail(); // at once
 * (await gate.admit("10.0.0.1", signal))!.fail(); // after 1 failure: 40 ms
 * (await gate.admit("10.0.0.1", signal))!.fail(); // after 2: 80 ms
 * (await gate.admit("10.0.0.1", signal))!.succeed(); // after 3: 80 ms
 * assertOk(performance.now() - t0 >= 195);
 * assertEquals(gate.failures("10.0.0.1"), 0);
 * gate.close();
 * ```
 */
export class AuthGate {
  readonly #free: number;
  readonly #base: number;
  readonly #max: number;
  readonly #forget: number;
  readonly #sources = new Map<string, SourceState>();
  #closed = false;

  /** A gate with the given penalty schedule. */
  constructor(options: AuthThrottleOptions = {}) {
    this.#free = options.freeFailures ?? 2;
    this.#base = options.baseDelayMs ?? 250;
    this.#max = options.maxDelayMs ?? 8000;
    this.#forget = options.forgetAfterMs ?? 600_000;
  }

  /**
   * The penalty before an attempt made after `failures` failures (or
   * undecided attempts).
   *
   * @example The default schedule
   * ```ts
   * import { AuthGate } from "./auth_gate.ts";
   * import { assertEquals } from "../_assert.ts";
   * const g = new AuthGate();
   * assertEquals([0, 1, 2, 3, 4, 7, 8, 100].map((f) => g.penalty(f)),
   *   [0, 0, 250, 500, 1000, 8000, 8000, 8000]);
   * ```
   */
  penalty(failures: number): number {
    const over = failures - this.#free + 1;
    if (over <= 0 || this.#base <= 0) return 0;
    return Math.min(this.#max, this.#base * 2 ** Math.min(over - 1, 30));
  }

  /** Failures recorded for `source` (after forgetting old ones). */
  failures(source: string): number {
    const s = this.#sources.get(source);
    return s ? this.#fresh(s).failures : 0;
  }

  /** Attempts from `source` waiting to be admitted. */
  waiting(source: string): number {
    return this.#sources.get(source)?.queue.length ?? 0;
  }

  /**
   * An attempt from `source` admitted at once, when nobody from it waits
   * and its penalty (if any) is already served (the common case, which
   * allocates no promise); else `undefined`: call {@linkcode admit}.
   */
  admitNow(source: string): AuthAttempt | undefined {
    if (this.#closed) return undefined;
    const s = this.#sources.get(source);
    const now = performance.now();
    if (s && (s.queue.length > 0 || now < this.#due(s, now))) {
      return undefined;
    }
    const state = s ?? this.#add(source);
    state.inFlight++;
    state.lastAdmit = now;
    return this.#attempt(source, state, now);
  }

  /**
   * Resolves once an attempt from `source` may begin, or with `undefined`
   * when `ticket` is dropped first (or the gate is closed).
   */
  admit(
    source: string,
    ticket: GateTicket,
  ): Promise<AuthAttempt | undefined> {
    if (this.#closed || ticket.dropped) return Promise.resolve(undefined);
    const s = this.#sources.get(source) ?? this.#add(source);
    return new Promise((resolve) => {
      s.queue.push({ resolve, ticket });
      this.#pump(source);
    });
  }

  /**
   * Turns `ticket`'s attempt away if it still waits (its connection was
   * dropped): {@linkcode admit} resolves with `undefined`.
   */
  cancel(source: string, ticket: GateTicket): void {
    const s = this.#sources.get(source);
    const i = s?.queue.findIndex((w) => w.ticket === ticket) ?? -1;
    if (i < 0) return;
    const [w] = s!.queue.splice(i, 1);
    w!.resolve(undefined);
    this.#pump(source);
  }

  #add(source: string): SourceState {
    const state: SourceState = {
      failures: 0,
      owed: 0,
      streakStart: undefined,
      lastFailure: 0,
      inFlight: 0,
      lastAdmit: -Infinity,
      queue: [],
      timer: undefined,
    };
    this.#trim();
    this.#sources.set(source, state);
    return state;
  }

  /** Clears every timer and turns every waiting attempt away. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const s of this.#sources.values()) {
      clearTimeout(s.timer);
      for (const w of s.queue.splice(0)) w.resolve(undefined);
    }
    this.#sources.clear();
  }

  #fresh(s: SourceState): SourceState {
    if (s.failures > 0 && Date.now() - s.lastFailure > this.#forget) {
      this.#clear(s);
    }
    return s;
  }

  /** When the next attempt from `s` may pass. */
  #due(s: SourceState, now: number): number {
    return this.#fresh(s).failures === 0 ? now : Math.max(
      s.lastAdmit + this.penalty(s.failures + s.inFlight),
      (s.streakStart ?? now) + s.owed,
    );
  }

  #clear(s: SourceState): void {
    s.failures = 0;
    s.owed = 0;
    s.streakStart = undefined;
  }

  #pump(source: string): void {
    const s = this.#sources.get(source);
    if (!s || this.#closed) return;
    clearTimeout(s.timer);
    s.timer = undefined;
    while (s.queue.length > 0) {
      const now = performance.now();
      const due = this.#due(s, now);
      if (now < due) {
        s.timer = setTimeout(() => this.#pump(source), Math.ceil(due - now));
        return;
      }
      const w = s.queue.shift()!;
      s.inFlight++;
      s.lastAdmit = now;
      w.resolve(this.#attempt(source, s, now));
    }
    if (s.failures === 0 && s.inFlight === 0) this.#sources.delete(source);
  }

  #attempt(
    source: string,
    s: SourceState,
    admittedAt: number,
  ): AuthAttempt {
    let done = false;
    const settle = (how: () => void) => {
      if (done) return;
      done = true;
      s.inFlight--;
      how();
      // A cleared or forgotten entry may have been replaced meanwhile.
      if (this.#sources.get(source) === s) this.#pump(source);
    };
    return {
      fail: () => {
        settle(() => {
          if (this.#fresh(s).failures++ === 0) s.streakStart = admittedAt;
          s.owed += this.penalty(s.failures);
          s.lastFailure = Date.now();
        });
        return {
          failures: s.failures,
          delayMs: this.penalty(s.failures + s.inFlight),
        };
      },
      succeed: () => settle(() => this.#clear(s)),
      abandon: () => settle(() => {}),
    };
  }

  /** Bounds memory: forgets the oldest idle sources beyond MAX_SOURCES. */
  #trim(): void {
    if (this.#sources.size < MAX_SOURCES) return;
    for (const [key, s] of this.#sources) {
      if (s.queue.length === 0 && s.inFlight === 0) {
        clearTimeout(s.timer);
        this.#sources.delete(key);
        if (this.#sources.size < MAX_SOURCES) return;
      }
    }
  }
}

/**
 * The source an address counts against: an IPv4 address (also when mapped
 * into IPv6), or an IPv6 address's /64 network, the block one host is
 * usually given.
 *
 * @example Usage
 * ```ts
 * import { sourceKey } from "./auth_gate.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(sourceKey("10.0.0.7"), "10.0.0.7");
 * assertEquals(sourceKey("::ffff:10.0.0.7"), "10.0.0.7");
 * assertEquals(sourceKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
 * assertEquals(sourceKey("2001:db8:1:2::9"), "2001:db8:1:2::/64");
 * assertEquals(sourceKey("::1"), "0:0:0:0::/64");
 * ```
 */
export function sourceKey(hostname: string): string {
  const h = hostname.toLowerCase();
  if (!h.includes(":")) return h;
  const mapped = h.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
  if (mapped) return mapped[1]!;
  const [head = "", tail] = h.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [
    ...left,
    ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"),
    ...right,
  ];
  const net = groups.slice(0, 4).map((g) =>
    parseInt(g || "0", 16).toString(16)
  );
  return `${net.join(":")}::/64`;
}
