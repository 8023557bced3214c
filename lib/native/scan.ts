/**
 * The native connect scan: `probe HOST A-B` (and `-z`) through libc (Linux,
 * FFI allowed). The calling thread scans from the start, in slices between
 * turns of its event loop (see _scan_core.ts), and a second core helps:
 *
 * - by default an io_uring kernel thread that connects ports from a ring
 *   in shared memory (_connect_ring.ts): no second JavaScript isolate, so
 *   about 8 MB less memory and no 30-40 ms boot;
 * - where no ring can run (an old kernel, io_uring turned off or filtered),
 *   one worker thread that joins when it has booted.
 *
 * All of them claim ports from one shared counter, so whoever is faster or
 * starts earlier takes more. Returns `undefined` where the engine cannot run
 * at all, and the caller scans on Deno's event loop instead.
 *
 * This owns every socket it uses: each is created by `socket(2)` here or in
 * the worker that uses it and closed there, so nothing has to be found or
 * shared with Deno.
 *
 * @module
 */
import { ffiAllowed, libc, sockaddrOf } from "./libc.ts";
import { ConnectScanner } from "./_scan_core.ts";
import { ConnectRing } from "./_connect_ring.ts";
import {
  BUSY,
  CONTROL_SLOTS,
  PENDING,
  type ScanJob,
  SOCKETS,
  STOP,
} from "./scan_job.ts";

export { CLOSED, FAILED, OPEN, PENDING, TIMEOUT } from "./scan_job.ts";

/**
 * What {@linkcode nativeScan} found, one entry per port in the order given:
 * `states` holds {@linkcode OPEN}, {@linkcode CLOSED}, {@linkcode TIMEOUT},
 * `FAILED`, or {@linkcode PENDING} for a port not reached before a stop.
 */
export interface NativeScanResult {
  /** One state per port, in the order given. */
  states: Int8Array;
  /** errno per port, for `FAILED` (and 111 for `CLOSED`). */
  errnos: Int32Array;
  /**
   * Milliseconds from each port's own connect call to its answer (for a
   * port the kernel's ring connected: from the request, an upper bound);
   * 0 for a port refused at once by a blocking connect (not timed).
   */
  times: Float64Array;
  /**
   * How the scan ran: with the kernel's ring or not, the threads, and the
   * sockets it made and did not close (0, or a bug).
   */
  used: { ring: boolean; threads: number; socketsOpen: number };
}

/** Options for {@linkcode nativeScan}. */
export interface NativeScanOptions {
  /** Milliseconds each connect may go unanswered. */
  timeout: number;
  /** Connects in flight at once, over all threads. */
  window: number;
  /**
   * Threads to use, the calling one included, where the kernel's ring
   * cannot help (workers are started only for 4,096 ports or more).
   * @default {min(2, cores)}
   */
  threads?: number;
  /**
   * Let an io_uring kernel thread connect ports beside this thread (see
   * _connect_ring.ts); no worker is started when it runs.
   * @default {true when there are 4,096 ports or more and 2 cores or more}
   */
  ring?: boolean;
  /** Stops early: ports not reached are left out of the result. */
  signal?: AbortSignal;
}

/** Ports a thread claims at a time (about a millisecond on loopback). */
const CHUNK = 256;
/** Connects in the kernel's ring at once. */
const RING_SLOTS = 64;
/** Below this many ports a worker would boot after the main thread is done. */
const WORKER_MIN_PORTS = 4096;
/**
 * Longest the main thread scans before it lets its event loop run (a turn
 * costs about 2 ms here), and before the first turn: the first timer of a
 * process costs about 5 MB of memory here (a whole loopback scan peaked at
 * 55 MB without one, 60 MB with), and a scan of a local host is done
 * within that time. An abort is seen at the next turn.
 */
const MAIN_SLICE_MS = 50, MAIN_FIRST_SLICE_MS = 250;
/** Longest one `poll` of the main thread (mode 2). */
const MAIN_POLL_MS = 10;

/**
 * One turn of the event loop, timers included (a `MessageChannel` turn
 * costs 0.03 ms against 2.3 ms, but measured here it let a 150 ms timer
 * wait 2.6 s: an abort by timer must be seen).
 */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Scans `ports` of the IP address `ip` (already resolved) with connects
 * through libc on this thread and `threads - 1` workers; `undefined` when
 * the native engine cannot run here (or a worker failed: the caller then
 * scans again on the event loop).
 */
export async function nativeScan(
  ip: string,
  ports: number[],
  options: NativeScanOptions,
): Promise<NativeScanResult | undefined> {
  if (!ffiAllowed() || ports.length === 0) return undefined;
  const c = libc();
  const sockaddr = sockaddrOf(ip, 0);
  if (!c || !sockaddr) return undefined;
  const n = ports.length;
  const cores = navigator.hardwareConcurrency;
  const controlBuffer = new SharedArrayBuffer(CONTROL_SLOTS * 4);
  const control = new Int32Array(controlBuffer);
  const ring = (options.ring ??
      (n >= WORKER_MIN_PORTS && cores >= 2))
    ? ConnectRing.open(c, sockaddr, RING_SLOTS, control)
    : undefined;
  const threads = ring ? 1 : Math.max(
    1,
    Math.min(
      options.threads ?? Math.min(2, cores),
      n >= WORKER_MIN_PORTS ? 64 : 1,
    ),
  );
  const shared = new SharedArrayBuffer(n * 4);
  new Int32Array(shared).set(ports);
  const job: ScanJob = {
    sockaddr,
    ports: shared,
    chunk: CHUNK,
    window: Math.max(1, Math.ceil(options.window / threads)),
    timeout: options.timeout,
    states: new SharedArrayBuffer(n),
    errnos: new SharedArrayBuffer(n * 4),
    times: new SharedArrayBuffer(n * 8),
    control: controlBuffer,
  };
  const workers: Worker[] = [];
  let failed = false;
  let notify: (() => void) | undefined;
  const onAbort = () => Atomics.store(control, STOP, 1);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  let scanner: ConnectScanner | undefined;
  try {
    // Workers first, so that they boot while this thread scans.
    for (let i = 1; i < threads; i++) {
      const w = new Worker(new URL("./_scan_worker.ts", import.meta.url), {
        type: "module",
      });
      workers.push(w);
      w.onmessage = () => notify?.();
      w.onerror = (e) => {
        e.preventDefault();
        failed = true;
        notify?.();
      };
      w.postMessage(job);
    }
    scanner = new ConnectScanner(c, job, MAIN_POLL_MS, ring);
    let slice = MAIN_FIRST_SLICE_MS;
    while (!scanner.run(slice)) {
      await turn();
      slice = MAIN_SLICE_MS;
    }
    // Every port is claimed; wait for the workers that claimed some.
    while (Atomics.load(control, BUSY) !== 0 && !failed) {
      await new Promise<void>((resolve) => {
        notify = resolve;
        if (Atomics.load(control, BUSY) === 0 || failed) resolve();
      });
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    scanner?.close();
    ring?.close();
    for (const w of workers) w.terminate();
  }
  const states = new Int8Array(job.states);
  if (failed && Atomics.load(control, STOP) === 0 && states.includes(PENDING)) {
    return undefined;
  }
  return {
    states,
    errnos: new Int32Array(job.errnos),
    times: new Float64Array(job.times),
    used: {
      ring: ring !== undefined,
      threads,
      socketsOpen: Atomics.load(control, SOCKETS),
    },
  };
}
