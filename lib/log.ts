/**
 * The `-v` logger: timestamped lines on stderr, and throughput formatting.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Something that records diagnostic lines. */
export interface Logger {
  /** Whether lines are written at all. */
  readonly enabled: boolean;
  /** Writes one line (a timestamp and `denocat:` are added). */
  log(message: string): void;
}

/** A logger that prints nothing. */
export const silent: Logger = { enabled: false, log() {} };

/** Creates a logger writing `denocat: [hh:mm:ss.mmm] message` lines to stderr. */
export function stderrLogger(enabled: boolean): Logger {
  return {
    enabled,
    log(message: string) {
      if (!enabled) return;
      const ts = new Date().toISOString().slice(11, 23);
      Deno.stderr.writeSync(encoder.encode(`denocat: [${ts}] ${message}\n`));
    },
  };
}

/**
 * Formats a byte count, a duration and the rate between them.
 *
 * @example Usage
 * ```ts
 * import { formatTransfer } from "./log.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(formatTransfer(2_000_000, 1000), "2000000 bytes in 1.000 s (2.00 MB/s)");
 * ```
 */
export function formatTransfer(bytes: number, ms: number): string {
  const rate = ms > 0 ? bytes / 1e6 / (ms / 1000) : 0;
  return `${bytes} bytes in ${(ms / 1000).toFixed(3)} s (${
    rate.toFixed(2)
  } MB/s)`;
}

/**
 * The `-v` suffix saying how much of a relay ran on pump threads.
 *
 * @example Usage
 * ```ts
 * import { pumpNote } from "./log.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(pumpNote(0), "");
 * assertEquals(pumpNote(5000), "; 5000 bytes via pump threads");
 * ```
 */
export function pumpNote(pumped: number): string {
  return pumped > 0 ? `; ${pumped} bytes via pump threads` : "";
}

/**
 * Lets a repeated log line through at most once every `ms` (a flood of
 * refusals is counted, not logged one by one): `due()` is true when the
 * line may be written now, and then starts the next wait.
 *
 * @example Usage
 * ```ts
 * import { Throttle } from "./log.ts";
 * import { assertEquals } from "./_assert.ts";
 * const t = new Throttle(1000);
 * assertEquals([t.due(), t.due()], [true, false]);
 * ```
 */
export class Throttle {
  #ms: number;
  #last: number;

  /** At most once every `ms`; `last` is when the line was last written. */
  constructor(ms: number, last = -Infinity) {
    this.#ms = ms;
    this.#last = last;
  }

  /** Whether the line may be written now (and if so, the wait restarts). */
  due(now: number = performance.now()): boolean {
    if (now - this.#last < this.#ms) return false;
    this.#last = now;
    return true;
  }
}
