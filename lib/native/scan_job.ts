/**
 * What the main thread and a connect-scan thread share: the job and the
 * state codes (kept apart from the worker module, which starts running as
 * soon as it is imported).
 *
 * @module
 */

/** Port states as stored in {@linkcode ScanJob.states}. */
export const PENDING = 0, OPEN = 1, CLOSED = 2, TIMEOUT = 3, FAILED = 4;

/** Slots of {@linkcode ScanJob.control} (an Int32Array). */
export const STOP = 0, NEXT = 1, BUSY = 2, SOCKETS = 3;
/** Ints in {@linkcode ScanJob.control}. */
export const CONTROL_SLOTS = 4;

/**
 * A scan shared by every thread that works on it (the main thread and the
 * workers): each claims the next `chunk` ports from `control[NEXT]` until
 * none are left, so a thread that starts late (a worker still booting) or
 * runs slowly simply claims fewer.
 */
export interface ScanJob {
  /** A `sockaddr_in` or `sockaddr_in6` for the host, port bytes left zero. */
  sockaddr: Uint8Array;
  /** Every port of the scan (Int32Array over a SharedArrayBuffer). */
  ports: SharedArrayBuffer;
  /** Ports claimed at a time. */
  chunk: number;
  /** Connects in flight at once per thread, once connects stop answering at once. */
  window: number;
  /** Milliseconds each connect may go unanswered. */
  timeout: number;
  /** Int8Array: one state per port (see {@linkcode OPEN} ...). */
  states: SharedArrayBuffer;
  /** Int32Array: the errno of each `FAILED` port. */
  errnos: SharedArrayBuffer;
  /** Float64Array: ms from connect to the answer, per port. */
  times: SharedArrayBuffer;
  /**
   * Int32Array [CONTROL_SLOTS]: `[STOP]` set to 1 to stop early; `[NEXT]`
   * the next port index to claim; `[BUSY]` workers that may still write
   * results (raised before a worker's first claim, lowered after its last
   * write); `[SOCKETS]` sockets made by the scan and not yet closed (0 once
   * it is over, or a socket leaked).
   */
  control: SharedArrayBuffer;
}
