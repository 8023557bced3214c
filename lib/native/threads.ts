/**
 * Worker threads for the FFI engines (the TCP echo epoll loop, the UDP
 * echo loop): start a group on one job, forward its log lines, read its
 * counters, stop it.
 *
 * Every job carries `shared`, an Int32Array over a SharedArrayBuffer whose
 * slot 0 is the stop flag; the other slots are the job's counters. A thread
 * posts `{ ready: boolean }` once it knows whether it can serve, `{ log }`
 * lines, and `{ closed: true }` when it has stopped.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { workerScope } from "./_worker_scope.ts";

/** Slot of the stop flag in every job's `shared` array. */
export const STOP = 0;

/**
 * How long {@linkcode ThreadGroup.stop} waits for threads to confirm: they
 * look at the stop flag every 50 ms or so, so this is only reached by a
 * thread that is stuck or starved of CPU.
 */
const STOP_MS = 10_000;

/**
 * {@linkcode ThreadGroup.start}'s answer when a thread could not serve.
 * `stopped`: every thread that did start confirmed that it stopped, so the
 * job's descriptors are the caller's again; when false they must stay open
 * (see {@linkcode ThreadGroup.stop}).
 */
export interface NotStarted {
  stopped: boolean;
}

/** Log lines a thread may have in flight before it waits for the main thread. */
const LOG_BACKLOG = 256;

/**
 * A thread's side of log lines: posts each to the main thread, and waits
 * while `LOG_BACKLOG` are still unwritten, so a slow stderr slows the thread
 * down (as it does the event loop) instead of queueing without bound.
 * `logs` is the job's `logs` array, set by {@linkcode ThreadGroup.start}.
 */
export function threadLog(logs: SharedArrayBuffer): (line: string) => void {
  const pending = new Int32Array(logs);
  return (line) => {
    for (;;) {
      const n = Atomics.load(pending, 0);
      if (n < LOG_BACKLOG) break;
      Atomics.wait(pending, 0, n, 100);
    }
    Atomics.add(pending, 0, 1);
    workerScope().postMessage({ log: line });
  };
}

/** A running group of threads serving one job. */
export class ThreadGroup {
  #workers: Worker[];
  #stats: Int32Array;
  #closed: Promise<unknown>[];

  private constructor(
    workers: Worker[],
    stats: Int32Array,
    closed: Promise<unknown>[],
  ) {
    this.#workers = workers;
    this.#stats = stats;
    this.#closed = closed;
  }

  /**
   * Starts `count` threads of `module` on `job`; when any of them cannot
   * serve, the others are stopped and the result says whether they all
   * confirmed it (see {@linkcode NotStarted}).
   */
  static async start(
    module: URL,
    count: number,
    job: { shared: SharedArrayBuffer; logs?: SharedArrayBuffer },
    logger: Logger,
  ): Promise<ThreadGroup | NotStarted> {
    const logs = new SharedArrayBuffer(4);
    const pending = new Int32Array(logs);
    const workers: Worker[] = [];
    const readies: Promise<boolean>[] = [];
    const closed: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) {
      const w = new Worker(module, { type: "module" });
      const ready = Promise.withResolvers<boolean>();
      const done = Promise.withResolvers<void>();
      w.onmessage = (e) => {
        const m = e.data;
        if (typeof m.log === "string") {
          logger.log(m.log);
          Atomics.sub(pending, 0, 1);
          Atomics.notify(pending, 0);
        } else if ("ready" in m) {
          ready.resolve(m.ready);
          // A thread that cannot serve has nothing to close.
          if (!m.ready) done.resolve();
        } else if (m.closed) done.resolve();
      };
      w.onerror = (e) => {
        // Before `ready`: a thread that cannot load (a binary built without
        // it), so no engine. After: a thread died; say so, the rest go on.
        e.preventDefault();
        logger.log(`thread failed: ${e.message}`);
        ready.resolve(false);
        done.resolve();
      };
      workers.push(w);
      readies.push(ready.promise);
      closed.push(done.promise);
      w.postMessage({ ...job, logs });
    }
    const group = new ThreadGroup(workers, new Int32Array(job.shared), closed);
    if ((await Promise.all(readies)).every(Boolean)) return group;
    return { stopped: await group.stop(STOP_MS) };
  }

  /** Counter `slot` of the job's shared array. */
  counter(slot: number): number {
    return Atomics.load(this.#stats, slot);
  }

  /**
   * Asks every thread to stop and waits (`ms` at most) before ending them.
   * True when every thread confirmed that it stopped: only then are the
   * descriptors it used free to close. False means a thread was ended
   * while it may still be inside a call on one of them (`terminate()`
   * cannot interrupt native code), so the caller must leave them open: a
   * closed number is soon another socket's, which the thread's next
   * receive would read from.
   */
  async stop(ms = STOP_MS): Promise<boolean> {
    Atomics.store(this.#stats, STOP, 1);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const all = await Promise.race([
      Promise.all(this.#closed).then(() => true),
      new Promise<false>((r) => timer = setTimeout(r, ms, false)),
    ]);
    clearTimeout(timer);
    for (const w of this.#workers) w.terminate();
    return all;
  }
}
