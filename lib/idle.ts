/**
 * Idle timeouts for servers with many connections: one sweep timer per
 * server instead of one timer per connection, and no work per byte beyond
 * storing a timestamp.
 *
 * @module
 */

/**
 * Tracks when each key (a connection) last moved a byte and calls `onIdle`
 * once for a key idle for `ms` milliseconds; the key is then forgotten.
 * A sweep runs every quarter of `ms` (at least every 50 ms) while any key
 * is tracked, so a key is reported between `ms` and `1.25 * ms` after its
 * last activity. The timer stops when nothing is tracked.
 *
 * @example Usage
 * ```ts
 * import { IdleWatch } from "./idle.ts";
 * import { assertEquals } from "./_assert.ts";
 * const idle: string[] = [];
 * using watch = new IdleWatch<string>(60, (k) => idle.push(k));
 * watch.add("quiet");
 * watch.add("busy");
 * for (let i = 0; i < 6; i++) {
 *   await new Promise((r) => setTimeout(r, 20));
 *   watch.touch("busy");
 * }
 * assertEquals(idle, ["quiet"]);
 * watch.delete("busy");
 * assertEquals(watch.size, 0);
 * ```
 */
export class IdleWatch<K> implements Disposable {
  readonly #ms: number;
  readonly #onIdle: (key: K) => void;
  readonly #last = new Map<K, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Watches for `ms` of silence; `onIdle` gets each idle key once. */
  constructor(ms: number, onIdle: (key: K) => void) {
    if (!(ms > 0)) throw new RangeError(`Cannot watch idleness: ${ms} ms`);
    this.#ms = ms;
    this.#onIdle = onIdle;
  }

  /** Keys being watched. */
  get size(): number {
    return this.#last.size;
  }

  /** Starts (or restarts) watching `key`, counting from now. */
  add(key: K): void {
    this.#last.set(key, performance.now());
    this.#timer ??= setInterval(
      () => this.#sweep(),
      Math.max(50, Math.floor(this.#ms / 4)),
    );
  }

  /** Records activity on `key`; does nothing for a key not watched. */
  touch(key: K): void {
    if (this.#last.has(key)) this.#last.set(key, performance.now());
  }

  /** Stops watching `key` (a closed connection, or one busy on purpose). */
  delete(key: K): void {
    this.#last.delete(key);
    if (this.#last.size === 0) this.#stop();
  }

  #sweep(): void {
    const cutoff = performance.now() - this.#ms;
    for (const [key, at] of this.#last) {
      if (at <= cutoff) {
        this.#last.delete(key);
        this.#onIdle(key);
      }
    }
    if (this.#last.size === 0) this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Stops watching everything. */
  [Symbol.dispose](): void {
    this.#last.clear();
    this.#stop();
  }
}
