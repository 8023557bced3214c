/**
 * What the main thread and a connect-scan thread share: the job and the
 * state codes (kept apart from the worker module, which starts running as
 * soon as it is imported).
 *
 * @module
 */

/** Port states as stored in {@linkcode ScanJob.states}. */
export const PENDING = 0, OPEN = 1, CLOSED = 2, TIMEOUT = 3, FAILED = 4;

/** One thread's share of a scan. */
export interface ScanJob {
  /** A `sockaddr_in` or `sockaddr_in6` for the host, port bytes left zero. */
  sockaddr: Uint8Array;
  /** Every port of the scan (Int32Array over a SharedArrayBuffer). */
  ports: SharedArrayBuffer;
  /** This thread takes ports `first`, `first + stride`, ... */
  first: number;
  stride: number;
  /** Connects in flight at once. */
  window: number;
  /** Milliseconds each connect may go unanswered. */
  timeout: number;
  /** Int8Array: one state per port (see {@linkcode OPEN} ...). */
  states: SharedArrayBuffer;
  /** Int32Array: the errno of each `FAILED` port. */
  errnos: SharedArrayBuffer;
  /** Float64Array: ms from connect to the answer, per port. */
  times: SharedArrayBuffer;
  /** Int32Array [1]: set to 1 to stop early. */
  stop: SharedArrayBuffer;
}
