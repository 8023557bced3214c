/**
 * What the TCP echo engine's threads are given (echo.ts starts them,
 * _echo_worker.ts runs them): kept apart from both so neither imports the
 * other's side effects and the slots stay out of the public API.
 *
 * @module
 */

/** Counter slots of {@linkcode EchoJob.shared}: open connections, served. */
export const OPEN = 1, SERVED = 2;

/** What an echo thread serves. */
export interface EchoJob {
  /**
   * The listening socket: one the engine made itself (listener.ts) or a
   * duplicate proved to be Deno's listener (identity.ts). Non-blocking,
   * close-on-exec; echo.ts closes it once every thread has stopped.
   */
  fd: number;
  upper: boolean;
  /** -1: no limit. Counted across all threads. */
  maxConns: number;
  /** 0: never. */
  idleMs: number;
  verbose: boolean;
  bufferSize: number;
  /** Int32Array: [STOP] 1 = stop (threads.ts), [OPEN], [SERVED]. */
  shared: SharedArrayBuffer;
  /** Log backlog counter, set by ThreadGroup.start (threads.ts). */
  logs?: SharedArrayBuffer;
}
