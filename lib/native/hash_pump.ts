/**
 * The hashing pump: a verified transfer's body moved and hashed on a
 * thread of its own, through libc, between a file and a TCP connection.
 *
 * A transfer body costs sha256 (about 0.65 CPU-seconds per GiB here) plus
 * the copies; on the event loop every chunk also pays an async read and an
 * async write of Deno's, and their wake-ups (README, "Verified transfer").
 * {@linkcode HashThread.run} instead reads, hashes and writes in one
 * blocking loop (`_hash_pump_worker.ts`) on a close-on-exec duplicate of
 * the socket, claimed by the connection's exact identity (identity.ts),
 * and on a file descriptor its caller opened itself. Where the socket
 * cannot be proved to be the connection's, {@linkcode claimConn} says why
 * and the caller keeps to the portable loop.
 *
 * @module
 */
import { libc, osError, SHUT_RDWR } from "./libc.ts";
import { claimSocket, identityOf } from "./identity.ts";
import type { HashPumpEnd, HashPumpJob } from "./_hash_pump_worker.ts";

/** What a finished body moved. */
export interface HashedBody {
  /** Bytes read from the source (the prefix not counted). */
  bytes: number;
  /** Hex sha256 of the prefix and every byte read. */
  sha256: string;
  /** With `keepReading`: why writing to the destination failed. */
  writeError?: Error;
}

/** A job as {@linkcode HashThread.run} takes it. */
export type HashJob = Omit<HashPumpJob, "shared" | "bufferSize"> & {
  /** Buffer size of the loop. @default {256 KiB} */
  bufferSize?: number;
};

/** A running job. */
export interface HashRun {
  /**
   * Resolves when all bytes moved; rejects with the I/O error, with a
   * `TruncatedError`-like `Error` when the source ended early, or with an
   * `AbortError` after stop(). Settles only once the thread has let go of
   * the descriptors.
   */
  readonly done: Promise<HashedBody>;
  /** Bytes read so far. */
  moved(): number;
  /** Stops the job: the thread ends at its next wait or chunk. */
  stop(): void;
}

/** The source reached its end before `n` bytes (errno -3 of the worker). */
export class EarlyEndError extends Error {
  /** Bytes read before the end. */
  readonly bytes: number;
  /** Creates the error for an end after `bytes` bytes. */
  constructor(bytes: number) {
    super(`the source ended after ${bytes} bytes`);
    this.name = "EarlyEndError";
    this.bytes = bytes;
  }
}

/**
 * A close-on-exec duplicate of `conn`'s socket, proved to be that very
 * connection; `undefined` (with `onDecline` told why, when there was a
 * socket to look for) where FFI is unavailable, the connection is not
 * plain TCP, or no socket matches.
 */
export function claimConn(
  conn: unknown,
  onDecline?: (why: string) => void,
): number | undefined {
  const c = libc();
  if (c === null) return undefined;
  const id = identityOf(conn as Deno.Conn);
  if (id === undefined) return undefined;
  const claim = claimSocket(c, id);
  if ("declined" in claim) {
    onDecline?.(claim.declined);
    return undefined;
  }
  return claim.fd;
}

/**
 * One worker thread: boots, reports whether libc opened, then runs jobs one
 * after another (a session boots it once).
 */
export class HashThread implements Disposable {
  #worker: Worker;
  #ready = Promise.withResolvers<boolean>();
  #end: PromiseWithResolvers<HashPumpEnd> | undefined;
  #busy = false;
  #failed = false;

  /** Boots the thread (see {@linkcode HashThread.ready}). */
  constructor() {
    this.#worker = new Worker(
      new URL("./_hash_pump_worker.ts", import.meta.url),
      { type: "module" },
    );
    this.#worker.onmessage = (
      e: MessageEvent<{ ready: boolean } | HashPumpEnd>,
    ) => {
      if ("ready" in e.data) this.#ready.resolve(e.data.ready);
      else this.#end?.resolve(e.data);
    };
    this.#worker.onerror = (e) => {
      // A worker that cannot load (a binary built without it): no thread.
      e.preventDefault();
      this.#failed = true;
      this.#ready.resolve(false);
      this.#end?.resolve({ bytes: 0, sha256: "", errno: -1, writeErrno: 0 });
    };
  }

  /** Resolves true once the thread can run a job, false if it cannot. */
  get ready(): Promise<boolean> {
    return this.#ready.promise;
  }

  /**
   * Starts `job`, after the previous job's `done` settled. The caller owns
   * the descriptors and may close them only after `done` settled.
   */
  run(job: HashJob): HashRun {
    if (this.#busy) throw new Error("Cannot run two hash pump jobs at once");
    this.#busy = true;
    const end = this.#end = Promise.withResolvers<HashPumpEnd>();
    if (this.#failed) {
      end.resolve({ bytes: 0, sha256: "", errno: -1, writeErrno: 0 });
    }
    const shared = new SharedArrayBuffer(3 * 8);
    const stats = new Float64Array(shared);
    const { bufferSize = 256 * 1024, ...rest } = job;
    this.#worker.postMessage(
      { ...rest, bufferSize, shared } satisfies HashPumpJob,
    );
    const done = end.promise.then((end): HashedBody => {
      this.#busy = false;
      const c = libc();
      if (end.errno === -1) throw new Error("the hash pump thread failed");
      if (end.errno === -2) {
        throw new DOMException("the pump was stopped", "AbortError");
      }
      if (end.errno === -3) throw new EarlyEndError(end.bytes);
      if (end.errno !== 0) throw osError(c, end.errno, end.op);
      return {
        bytes: end.bytes,
        sha256: end.sha256,
        ...(end.writeErrno !== 0
          ? { writeError: osError(c, end.writeErrno, "write") }
          : {}),
      };
    });
    return {
      done,
      moved: () => stats[0]!,
      stop: () => {
        if (stats[2] === 1) return;
        stats[2] = 1;
        // Wakes the thread wherever it waits on the socket.
        libc()?.shutdown(job.socket, SHUT_RDWR);
      },
    };
  }

  /** Ends the thread (a job that runs is not waited for: stop it first). */
  [Symbol.dispose](): void {
    this.#worker.terminate();
    this.#ready.resolve(false);
  }
}
