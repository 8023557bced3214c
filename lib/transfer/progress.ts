/**
 * A one-line progress display for transfers: bytes, rate, ETA and items
 * done of total, redrawn at most ten times a second. Only for terminals:
 * callers create it when stderr is a TTY and `--no-progress` is absent.
 *
 * @module
 */

/** Options for {@linkcode Progress}. */
export interface ProgressOptions {
  /** Where the line goes. @default {Deno.stderr.writeSync} */
  write?: (bytes: Uint8Array) => void;
  /** Milliseconds between redraws. @default {100} */
  interval?: number;
  /** Clock in milliseconds (tests). @default {performance.now} */
  now?: () => number;
  /** Terminal width. @default {80} */
  columns?: number;
}

function mb(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function clock(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "--:--";
  s = Math.round(s);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * Renders one progress line (without control characters).
 *
 * @example Usage
 * ```ts
 * import { progressLine } from "./progress.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(
 *   progressLine({ bytes: 5e6, total: 10e6, ms: 1000, done: 1, items: 2 }, 60),
 *   "[##########----------] 5.0 MB/10.0 MB 5.0 MB/s ETA 0:01 1/2",
 * );
 * ```
 */
export function progressLine(
  s: {
    bytes: number;
    total?: number;
    ms: number;
    done: number;
    items?: number;
  },
  columns = 80,
): string {
  const rate = s.ms > 0 ? s.bytes / (s.ms / 1000) : 0;
  const items = s.items ? `${s.done}/${s.items}` : `${s.done} done`;
  const total = s.total !== undefined && s.total > 0 ? s.total : undefined;
  let line = `${mb(s.bytes)}${total !== undefined ? "/" + mb(total) : ""} ${
    mb(rate)
  }/s`;
  if (total !== undefined) {
    const eta = rate > 0 ? (total - s.bytes) / rate : Infinity;
    line += ` ETA ${clock(eta)}`;
    const width = 20;
    const fill = Math.min(width, Math.floor(width * s.bytes / total));
    line = `[${"#".repeat(fill)}${"-".repeat(width - fill)}] ${line}`;
  }
  line += ` ${items}`;
  return line.length > columns - 1 ? line.slice(0, columns - 1) : line;
}

/**
 * A live progress line. `add` counts bytes, `itemDone` counts items;
 * `end` erases the line. Disposable.
 *
 * @example Usage
 * ```ts
 * import { Progress } from "./progress.ts";
 * import { assertOk } from "../_assert.ts";
 * let out = "";
 * let t = 0;
 * const p = new Progress({ write: (b) => { out += new TextDecoder().decode(b); }, now: () => t });
 * p.setTotals(2, 100);
 * t = 500;
 * p.add(50);
 * p.end();
 * assertOk(out.includes("50 B/100 B") && out.endsWith("\r\x1b[K"));
 * ```
 */
export class Progress implements Disposable {
  #write: (b: Uint8Array) => void;
  #interval: number;
  #now: () => number;
  #columns: number;
  #start: number;
  #last = -Infinity;
  #bytes = 0;
  #total: number | undefined;
  #items: number | undefined;
  #done = 0;
  #ended = false;
  #shown = false;

  /** Creates a progress display; see {@linkcode ProgressOptions}. */
  constructor(options: ProgressOptions = {}) {
    this.#write = options.write ?? ((b) => Deno.stderr.writeSync(b));
    this.#interval = options.interval ?? 100;
    this.#now = options.now ?? (() => performance.now());
    this.#columns = options.columns ?? 80;
    this.#start = this.#now();
  }

  /** Sets the expected items and bytes, when known. */
  setTotals(items?: number, bytes?: number): void {
    this.#items = items;
    this.#total = bytes;
  }

  /** Counts `n` more bytes, redrawing if due. */
  add(n: number): void {
    this.#bytes += n;
    this.#draw(false);
  }

  /** Counts one finished item and redraws. */
  itemDone(): void {
    this.#done++;
    this.#draw(true);
  }

  /** Erases the line before other output (it reappears on the next redraw). */
  clear(): void {
    if (this.#shown) this.#write(new TextEncoder().encode("\r\x1b[K"));
    this.#shown = false;
  }

  #draw(force: boolean): void {
    if (this.#ended) return;
    const now = this.#now();
    if (!force && now - this.#last < this.#interval) return;
    this.#last = now;
    const line = progressLine({
      bytes: this.#bytes,
      ms: now - this.#start,
      done: this.#done,
      ...(this.#total !== undefined ? { total: this.#total } : {}),
      ...(this.#items !== undefined ? { items: this.#items } : {}),
    }, this.#columns);
    this.#write(new TextEncoder().encode(`\r\x1b[K${line}`));
    this.#shown = true;
  }

  /** Erases the line for good. Idempotent. */
  end(): void {
    if (this.#ended) return;
    this.#draw(true);
    this.clear();
    this.#ended = true;
  }

  /** Erases the line for good, as {@linkcode Progress.end}. */
  [Symbol.dispose](): void {
    this.end();
  }
}

/**
 * A {@linkcode Progress} when stderr is a terminal and `enabled`, else
 * `undefined`.
 */
export function terminalProgress(enabled: boolean): Progress | undefined {
  if (!enabled || !Deno.stderr.isTerminal()) return undefined;
  let columns = 80;
  try {
    columns = Deno.consoleSize().columns;
  } catch { /* not a console */ }
  return new Progress({ columns });
}
