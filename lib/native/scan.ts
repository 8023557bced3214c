/**
 * The native connect scan: `probe HOST A-B` (and `-z`) on threads that run
 * non-blocking connects through libc, many in flight, one `poll` per round
 * (Linux, FFI allowed). Returns `undefined` where it cannot run, and the
 * caller scans on Deno's event loop instead.
 *
 * This owns every socket it uses: each is created by `socket(2)` in the
 * thread and closed there, so nothing has to be found or shared with Deno.
 *
 * @module
 */
import { ffiAllowed, sockaddrOf } from "./libc.ts";
import type { ScanJob } from "./scan_job.ts";

export { CLOSED, FAILED, OPEN, PENDING, TIMEOUT } from "./scan_job.ts";

/**
 * What {@linkcode nativeScan} found, one entry per port in the order given:
 * `states` holds {@linkcode OPEN}, {@linkcode CLOSED}, {@linkcode TIMEOUT},
 * `FAILED`, or {@linkcode PENDING} for a port not reached before a stop.
 */
export interface NativeScanResult {
  states: Int8Array;
  /** errno per port, for `FAILED` (and 111 for `CLOSED`). */
  errnos: Int32Array;
  /** Milliseconds from each port's own connect call to its answer. */
  times: Float64Array;
}

/** Options for {@linkcode nativeScan}. */
export interface NativeScanOptions {
  /** Milliseconds each connect may go unanswered. */
  timeout: number;
  /** Connects in flight at once, over all threads. */
  window: number;
  /** Threads to use. @default {min(2, cores)} */
  threads?: number;
  /** Stops early: ports not reached are left out of the result. */
  signal?: AbortSignal;
}

/** How long a thread may take to start before the scan gives up on it. */
const START_TIMEOUT = 5000;

/**
 * Scans `ports` of the IP address `ip` (already resolved) with non-blocking
 * connects on threads; `undefined` when the native engine cannot run here.
 */
export async function nativeScan(
  ip: string,
  ports: number[],
  options: NativeScanOptions,
): Promise<NativeScanResult | undefined> {
  if (!ffiAllowed() || ports.length === 0) return undefined;
  const sockaddr = sockaddrOf(ip, 0);
  if (!sockaddr) return undefined;
  const n = ports.length;
  const shared = new SharedArrayBuffer(n * 4);
  new Int32Array(shared).set(ports);
  const states = new SharedArrayBuffer(n);
  const errnos = new SharedArrayBuffer(n * 4);
  const times = new SharedArrayBuffer(n * 8);
  const stop = new SharedArrayBuffer(4);
  const threads = Math.max(
    1,
    Math.min(options.threads ?? Math.min(2, navigator.hardwareConcurrency), n),
  );
  const window = Math.max(1, Math.ceil(options.window / threads));
  const workers: Worker[] = [];
  const onAbort = () => Atomics.store(new Int32Array(stop), 0, 1);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const runs = Array.from({ length: threads }, (_, first) => {
      const w = new Worker(new URL("./_scan_worker.ts", import.meta.url), {
        type: "module",
      });
      workers.push(w);
      const job: ScanJob = {
        sockaddr,
        ports: shared,
        first,
        stride: threads,
        window,
        timeout: options.timeout,
        states,
        errnos,
        times,
        stop,
      };
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), START_TIMEOUT);
        w.onmessage = (
          e: MessageEvent<{ ready?: boolean; done?: boolean }>,
        ) => {
          if (e.data.ready === false) {
            clearTimeout(timer);
            resolve(false);
          } else if (e.data.ready) {
            clearTimeout(timer);
            w.postMessage(job);
          } else if (e.data.done) resolve(true);
        };
        w.onerror = (e) => {
          e.preventDefault();
          clearTimeout(timer);
          resolve(false);
        };
      });
    });
    const ok = await Promise.all(runs);
    if (!ok.every(Boolean)) return undefined;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    for (const w of workers) w.terminate();
  }
  return {
    states: new Int8Array(states),
    errnos: new Int32Array(errnos),
    times: new Float64Array(times),
  };
}
