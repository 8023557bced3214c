/**
 * A transfer body on the hashing pump thread (lib/native/hash_pump.ts):
 * the sender's file to the socket, the receiver's socket to its temporary
 * file, each read, hashed and written in one blocking loop off the event
 * loop. Used for bodies of at least {@linkcode NATIVE_BODY_MIN} bytes on
 * Linux with FFI, when the socket is proved to be the connection's and the
 * file descriptor is one this process opened itself; `undefined` from
 * either function means "not here", and the caller runs the portable loop
 * (`_pump.ts`), which computes the same bytes and the same digest.
 *
 * @module
 */
import type { BufferedReader } from "../frame/reader.ts";
import { TruncatedFrameError } from "../frame/errors.ts";
import { fdPath } from "../native/dirfd.ts";
import {
  claimConn,
  EarlyEndError,
  type HashedBody,
  type HashRun,
  HashThread,
} from "../native/hash_pump.ts";
import { libc, O_CLOEXEC, O_RDONLY } from "../native/libc.ts";

/** Smallest body moved by the pump thread (smaller ones stay on the loop). */
export const NATIVE_BODY_MIN = 8 << 20;

/** Bodies moved by the pump thread in this process so far (for tests). */
export const nativeBodies = { sent: 0, received: 0 };

/** How often the waiting side reports progress (and checks for a stop). */
const TICK_MS = 200;

/** A session's pump thread, booted on first need and reused. */
export class BodyThread implements Disposable {
  #thread: HashThread | undefined;
  #ok: Promise<boolean> | undefined;

  /** Starts booting the thread now (a sender that knows it will need it). */
  warm(): void {
    if (this.#ok !== undefined || libc() === null) return;
    this.#thread = new HashThread();
    this.#ok = this.#thread.ready;
  }

  /** The thread, booted; `undefined` when there can be none. */
  async get(): Promise<HashThread | undefined> {
    this.warm();
    if (this.#ok === undefined || !(await this.#ok)) return undefined;
    return this.#thread;
  }

  /** Ends the thread (no job may be running). */
  [Symbol.dispose](): void {
    this.#thread?.[Symbol.dispose]();
    this.#thread = undefined;
    this.#ok = undefined;
  }
}

/** Hooks of a body on the thread. */
export interface BodyHooks {
  /** Told of bytes moved, in batches, and of the rest at the end. */
  onBytes?: (n: number) => void;
  /** Polled every tick: true stops the job (it then rejects with an AbortError). */
  stopped?: () => boolean;
  /** Given a function that stops the job at once, while it runs. */
  onStop?: (stop: (() => void) | undefined) => void;
  /** Told why the socket could not be claimed (the portable loop then runs). */
  onDecline?: (why: string) => void;
}

async function watch(run: HashRun, hooks: BodyHooks): Promise<HashedBody> {
  let seen = 0;
  const report = () => {
    const now = run.moved();
    if (now > seen) hooks.onBytes?.(now - seen);
    seen = now;
  };
  const timer = setInterval(() => {
    report();
    if (hooks.stopped?.()) run.stop();
  }, TICK_MS);
  hooks.onStop?.(() => run.stop());
  try {
    return await run.done;
  } finally {
    clearInterval(timer);
    hooks.onStop?.(undefined);
    report();
  }
}

/**
 * Sends exactly `n` bytes of the file at `path` to `conn` on the pump
 * thread and returns their raw sha256; `undefined` when the body stays on
 * the portable loop (nothing was sent then). `info` is the stat of the
 * file the caller opened: the descriptor opened here must be that very
 * file (same device and inode), or nothing is done.
 */
export async function sendFileBody(
  threads: BodyThread,
  conn: unknown,
  path: string,
  info: Deno.FileInfo,
  n: number,
  hooks: BodyHooks = {},
): Promise<Uint8Array | undefined> {
  const c = libc();
  if (c === null || n < NATIVE_BODY_MIN) return undefined;
  const thread = await threads.get();
  if (thread === undefined) return undefined;
  const fd = c.open(
    new TextEncoder().encode(`${path}\0`),
    O_RDONLY | O_CLOEXEC,
    0,
  );
  if (fd < 0) return undefined;
  let sock: number | undefined;
  try {
    const mine = Deno.statSync(fdPath(fd));
    if (mine.dev !== info.dev || mine.ino !== info.ino || !mine.isFile) {
      return undefined;
    }
    sock = claimConn(conn, hooks.onDecline);
    if (sock === undefined) return undefined;
    const run = thread.run({
      src: fd,
      dst: sock,
      socket: sock,
      n,
      prefix: new Uint8Array(0),
      keepReading: false,
    });
    try {
      const body = await watch(run, hooks);
      nativeBodies.sent++;
      return Uint8Array.fromHex(body.sha256);
    } catch (err) {
      if (err instanceof EarlyEndError) {
        throw new Error(
          `file shrank while being sent (${err.bytes} of ${n} bytes)`,
        );
      }
      throw err;
    }
  } finally {
    if (sock !== undefined) c.close(sock);
    c.close(fd);
  }
}

/** What {@linkcode receiveFileBody} received. */
export interface ReceivedBody {
  /** Hex sha256 of the body. */
  sha256: string;
  /** Why writing the file failed, if it did (the body was still read). */
  writeError?: Error;
}

/**
 * Receives exactly `n` body bytes from `br`'s connection `conn` into file
 * descriptor `fd` (the receiver's own temporary file) on the pump thread:
 * bytes `br` holds already go first. `undefined` when the body stays on the
 * portable loop (nothing was read then). Throws `TruncatedFrameError` when
 * the sender closes first, the socket's error when it fails.
 */
export async function receiveFileBody(
  threads: BodyThread,
  conn: unknown,
  br: BufferedReader,
  n: number,
  fd: number,
  hooks: BodyHooks = {},
): Promise<ReceivedBody | undefined> {
  const c = libc();
  if (c === null || n < NATIVE_BODY_MIN || br.buffered >= n) return undefined;
  const thread = await threads.get();
  if (thread === undefined) return undefined;
  const sock = claimConn(conn, hooks.onDecline);
  if (sock === undefined) return undefined;
  const at = br.offset;
  try {
    const prefix = br.buffered > 0
      ? (await br.readSome(br.buffered))!.slice()
      : new Uint8Array(0);
    hooks.onBytes?.(prefix.length);
    const run = thread.run({
      src: sock,
      dst: fd,
      socket: sock,
      n: n - prefix.length,
      prefix,
      keepReading: true,
    });
    try {
      const body = await watch(run, hooks);
      nativeBodies.received++;
      return {
        sha256: body.sha256,
        ...(body.writeError ? { writeError: body.writeError } : {}),
      };
    } catch (err) {
      if (err instanceof EarlyEndError) {
        throw new TruncatedFrameError(
          `cannot decode frame at byte ${at}: expected a body of ${n} bytes, got ${
            prefix.length + err.bytes
          } bytes then end of input`,
          at,
        );
      }
      throw err;
    }
  } finally {
    c.close(sock);
  }
}
