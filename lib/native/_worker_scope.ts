/**
 * The part of a worker's global scope that the native workers use, typed
 * here so that no file needs a `deno.worker` lib directive (which would
 * change the globals of every module that imports it).
 *
 * @module
 */

/** What a native worker calls on its global scope. */
export interface WorkerScope<Job> {
  /** Receives the job the main thread posts. */
  onmessage: ((e: MessageEvent<Job>) => void) | null;
  /** Sends a message to the main thread. */
  postMessage(message: unknown): void;
  /** Ends the worker. */
  close(): void;
}

/** The running worker's global scope, typed for jobs of type `Job`. */
export function workerScope<Job>(): WorkerScope<Job> {
  return globalThis as unknown as WorkerScope<Job>;
}
