/**
 * The threaded byte pump: bulk copies between a TCP connection and stdin or
 * stdout, moved off the event loop.
 *
 * Each Deno async read waits one trip through the event loop (about 33 µs
 * here), and loopback hands over about 50 KiB per read, so a receive loop
 * is bound by that latency, not by CPU (README, "Raw TCP pipe"). On Linux,
 * with FFI allowed, {@linkcode fastCopy} starts as an ordinary
 * {@linkcode copyUntil} loop and, once a transfer has proved to be bulk
 * (4 MiB), hands both descriptors to a worker thread that runs a blocking
 * `read`/`write` loop through libc. Small and interactive transfers never
 * pay for the thread; everywhere else the plain loop runs to the end.
 *
 * The worker works on a close-on-exec duplicate of the socket, claimed by
 * the connection's exact identity (identity.ts), so the connection's own
 * descriptor stays Deno's; when the socket cannot be proved to be the
 * connection's, the plain loop carries on and `onDecline` says why.
 * {@linkcode Pump.stop} shuts the socket down (which wakes the worker
 * wherever it waits on it) before the caller closes the connection.
 *
 * @module
 */
import {
  copy,
  type CopyOptions,
  copyUntil,
  type Reader,
  type Writer,
} from "../copy.ts";
import { libc, osError, SHUT_RDWR } from "./libc.ts";
import { claimSocket, findSocket, identityOf } from "./identity.ts";
import type { PumpEnd, PumpJob } from "./_pump_worker.ts";

/** Bytes copied the ordinary way before a hand-off to the pump thread. */
export const HANDOFF_AFTER = 4 << 20;

/** A pump thread at work. */
export interface Pump {
  /**
   * Resolves with the bytes moved when the source reached EOF; rejects with
   * the I/O error, or with an `AbortError` as soon as stop() is called.
   */
  readonly done: Promise<number>;
  /** Bytes moved so far. */
  moved(): number;
  /** Wall-clock time (epoch ms) of the last chunk, 0 before the first. */
  lastActive(): number;
  /** Stops the pump: shuts the socket down, lets the thread exit, rejects `done`. */
  stop(): void;
}

/** Options for {@linkcode fastCopy}. */
export interface FastCopyOptions extends CopyOptions {
  /** The connection that is `src` or `dst`; its descriptor is found at hand-off. */
  conn: Deno.Conn;
  /** Aborting stops the pump (call before closing `conn`). */
  signal?: AbortSignal;
  /** Told of the pump once it runs (for idle checks and progress). */
  onPump?: (pump: Pump) => void;
  /** Hand off after this many bytes. @default {HANDOFF_AFTER} */
  handoffAfter?: number;
  /**
   * Told why a transfer that reached the hand-off stays on the plain loop:
   * the socket could not be proved to be `conn`'s.
   */
  onDecline?: (why: string) => void;
}

/**
 * Copies `src` to `dst` like {@linkcode copy}, one of them being
 * `options.conn` and the other carrying an `fd` (stdin or stdout as a pipe
 * or file); bulk transfers move to the pump thread where the platform
 * allows. `onChunk` is called per chunk before the hand-off and once with
 * the pumped total when the pump ends, however it ends. Aborting
 * `options.signal` during the pump rejects with an `AbortError`.
 *
 * @example Usage
 * ```ts
 * import { fastCopy } from "./pump.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * const server = await l.accept();
 * const data = new Uint8Array(1000).fill(42);
 * await client.write(data);
 * client.close();
 * let got = 0;
 * const dst = { write(p: Uint8Array) { got += p.length; return Promise.resolve(p.length); } };
 * assertEquals(await fastCopy(server, dst, { conn: server }), 1000);
 * assertEquals(got, 1000);
 * server.close();
 * ```
 */
export async function fastCopy(
  src: Reader,
  dst: Writer,
  options: FastCopyOptions,
): Promise<number> {
  const { conn } = options;
  const socketIsSrc = (src as unknown) === conn;
  const otherFd = socketIsSrc ? dst.fd : src.fd;
  // (libc is opened only for a copy that could use it.)
  const id = identityOf(conn);
  const c = otherFd === undefined || id === undefined ? null : libc();
  if (
    c === null || otherFd === undefined || id === undefined ||
    options.signal?.aborted
  ) {
    return await copy(src, dst, options);
  }
  const { first, thread } = await untilHandoff(src, dst, options);
  if (thread === undefined) return first;
  // The pump gets its own close-on-exec duplicate, proved to be this very
  // connection (identity.ts), or nothing: then the plain loop goes on.
  const claim = claimSocket(c, id);
  if ("declined" in claim) {
    thread.dispose();
    options.onDecline?.(claim.declined);
    return first + await copy(src, dst, options);
  }
  const dup = claim.fd;
  const pump = thread.run(
    {
      src: socketIsSrc ? dup : otherFd,
      dst: socketIsSrc ? otherFd : dup,
      socket: dup,
      bufferSize: options.bufferSize ?? 256 * 1024,
    },
  );
  return first + await watchPump(pump, options);
}

/** Options for {@linkcode socketCopy}. */
export interface SocketCopyOptions extends CopyOptions {
  /** Aborting stops the pump (call before closing either connection). */
  signal?: AbortSignal;
  /** Told of the pump once it runs (for idle checks and progress). */
  onPump?: (pump: Pump) => void;
  /** Hand off after this many bytes. @default {HANDOFF_AFTER} */
  handoffAfter?: number;
  /** Told why a transfer that reached the hand-off stays on the plain loop. */
  onDecline?: (why: string) => void;
}

/**
 * Copies TCP connection `src` to TCP connection `dst` like
 * {@linkcode copy}; a bulk transfer moves to a pump thread (Linux, FFI)
 * working on close-on-exec duplicates of both sockets, each claimed by
 * its exact identity (identity.ts). The thread closes the source duplicate when it ends and the
 * destination duplicate is closed only then, so no descriptor number is
 * ever written to after it could have been reused. Falls back to the
 * ordinary loop whenever a socket cannot be proved to be the connection's
 * (`onDecline` says why). Used by `forward`.
 *
 * @example Usage (run for real in tests/forward/forward_test.ts: the libc
 * handle it opens would outlive a doc test)
 * ```ts ignore
 * import { socketCopy } from "./pump.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const a = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * const a2 = await l.accept();
 * const b = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * const b2 = await l.accept();
 * await a.write(new Uint8Array(1000).fill(1));
 * a.close();
 * assertEquals(await socketCopy(a2, b, { handoffAfter: 100 }), 1000);
 * b.close();
 * let got = 0, n;
 * const buf = new Uint8Array(2048);
 * while ((n = await b2.read(buf)) !== null) got += n;
 * assertEquals(got, 1000);
 * a2.close();
 * b2.close();
 * ```
 */
export async function socketCopy(
  src: Deno.Conn,
  dst: Deno.Conn,
  options: SocketCopyOptions = {},
): Promise<number> {
  const srcId = identityOf(src), dstId = identityOf(dst);
  const c = srcId && dstId ? libc() : null;
  if (c === null || !srcId || !dstId || options.signal?.aborted) {
    return await copy(src, dst, options);
  }
  const { first, thread } = await untilHandoff(src, dst, options);
  if (thread === undefined) return first;
  const srcClaim = claimSocket(c, srcId);
  const dstClaim = "fd" in srcClaim ? claimSocket(c, dstId) : srcClaim;
  if (!("fd" in srcClaim) || !("fd" in dstClaim)) {
    if ("fd" in srcClaim) c.close(srcClaim.fd);
    thread.dispose();
    // dstClaim is the refusal: srcClaim's own when the source declined.
    options.onDecline?.("declined" in dstClaim ? dstClaim.declined : "");
    return first + await copy(src, dst, options);
  }
  const srcDup = srcClaim.fd, dstDup = dstClaim.fd;
  const pump = thread.run(
    {
      src: srcDup,
      dst: dstDup,
      socket: srcDup,
      bufferSize: options.bufferSize ?? 256 * 1024,
    },
    // The thread has ended: only now may the destination duplicate go.
    () => c.close(dstDup),
  );
  return first + await watchPump(pump, options);
}

/**
 * The ordinary loop up to the hand-off point, with a pump thread booting on
 * the way (at a quarter of it, so the hand-off does not wait). `thread` is
 * set only when the copy reached the point with the thread ready; otherwise
 * the copy is complete (EOF, an abort, or no thread) and `first` is all it
 * moved.
 */
async function untilHandoff(
  src: Reader,
  dst: Writer,
  options: CopyOptions & { signal?: AbortSignal; handoffAfter?: number },
): Promise<{ first: number; thread?: PumpThread }> {
  const handoffAfter = options.handoffAfter ?? HANDOFF_AFTER;
  let thread: PumpThread | undefined;
  let first;
  try {
    first = await copyUntil(src, dst, (total) => {
      if (total >= handoffAfter / 4) thread ??= new PumpThread();
      return total >= handoffAfter && thread?.ready === true;
    }, options);
  } catch (err) {
    thread?.dispose();
    throw err;
  }
  if (first.eof || options.signal?.aborted || thread === undefined) {
    thread?.dispose();
    return { first: first.bytes };
  }
  return { first: first.bytes, thread };
}

/**
 * Waits for a running pump, stopping it when `signal` aborts; however it
 * ends (EOF, an error, a stop), the bytes it moved are reported to
 * `onChunk`.
 */
async function watchPump(
  pump: Pump,
  options: Pick<SocketCopyOptions, "onChunk" | "onPump" | "signal">,
): Promise<number> {
  options.onPump?.(pump);
  const onAbort = () => pump.stop();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await pump.done;
  } finally {
    options.onChunk?.(pump.moved());
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/** One worker thread: boots, reports whether libc opened, runs one job. */
class PumpThread {
  ready: boolean | undefined;
  #worker: Worker;
  #end = Promise.withResolvers<PumpEnd>();

  constructor() {
    this.#worker = new Worker(
      new URL("./_pump_worker.ts", import.meta.url),
      { type: "module" },
    );
    this.#worker.onmessage = (
      e: MessageEvent<{ ready: boolean } | PumpEnd>,
    ) => {
      if ("ready" in e.data) {
        this.ready = e.data.ready;
        if (!e.data.ready) this.dispose();
      } else this.#end.resolve(e.data);
    };
    this.#worker.onerror = (e) => {
      // A worker that cannot load (a binary built without it) means no pump.
      e.preventDefault();
      this.ready = false;
      this.#end.resolve({ bytes: 0, errno: -1 });
    };
  }

  dispose(): void {
    this.ready = false;
    this.#worker.terminate();
  }

  /**
   * Starts the job. `job.socket` is our duplicate of the socket: the thread
   * only uses it; this side closes it once the thread has ended, and then
   * calls `onEnd`. Until then stop() can shut it down without any risk of
   * the number having been reused.
   */
  run(job: Omit<PumpJob, "shared">, onEnd?: () => void): Pump {
    const shared = new SharedArrayBuffer(3 * 8);
    const stats = new Float64Array(shared);
    let settled = false;
    const { promise: done, resolve, reject } = Promise.withResolvers<number>();
    this.#worker.postMessage({ ...job, shared } satisfies PumpJob);
    this.#end.promise.then((end) => {
      this.#worker.terminate();
      libc()?.close(job.socket);
      onEnd?.();
      if (settled) return;
      settled = true;
      if (end.errno === -1) reject(new Error("the pump thread failed"));
      else if (end.errno !== 0) reject(osError(libc(), end.errno, end.op));
      else resolve(end.bytes);
    });
    return {
      done,
      moved: () => stats[0]!,
      lastActive: () => stats[1]!,
      stop: () => {
        if (settled) return;
        settled = true;
        stats[2] = 1;
        // Shutting the socket down wakes the thread wherever it waits on
        // it, and ends the connection even if Deno's descriptor was closed
        // already. `done` settles now: a thread blocked reading stdin
        // finishes on its own once that read returns.
        libc()?.shutdown(job.socket, SHUT_RDWR);
        reject(new DOMException("the pump was stopped", "AbortError"));
      },
    };
  }
}

/**
 * The descriptor behind a TCP connection (Linux, FFI): the socket whose
 * family, local and remote addresses and ports are the connection's (see
 * identity.ts). `undefined` when FFI is unavailable, the connection is not
 * TCP, or no single socket matches. For tests and diagnostics: the pump
 * claims its own duplicate instead.
 */
export function socketFd(conn: Deno.Conn): number | undefined {
  const c = libc();
  const id = identityOf(conn);
  if (c === null || id === undefined) return undefined;
  const found = findSocket(c, id);
  return "fd" in found ? found.fd : undefined;
}
