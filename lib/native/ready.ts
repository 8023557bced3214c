/**
 * Readiness waits for standard descriptors a parent handed over in
 * non-blocking mode (rsync does, unless `--blocking-io`). Reads and writes
 * on such a descriptor fail with EAGAIN when it is not ready; the flag is
 * shared with the parent, so it must never be cleared: the caller waits
 * here and tries again.
 *
 * Deno's own stdio cannot be used on such a descriptor: `Deno.stdin.read`
 * retries EAGAIN in a tight loop (measured: 164,581 failed `read` calls in
 * 3 s), and `Deno.stdout.write` may take bytes into its internal buffer and
 * still throw `WouldBlock`, so a retry duplicates them (measured: 3,451,962
 * to 4,038,235 bytes out for 3,000,000 in). With FFI the bytes therefore
 * go through libc's `read`/`write` here, and only the wait is shared.
 *
 * With FFI (Linux), the wait is `poll(2)` itself, run as a non-blocking FFI
 * call (on a runtime helper thread, so the event loop keeps running) in
 * slices of {@linkcode POLL_SLICE_MS}; the synchronous variant blocks the
 * calling thread in `poll`. Without FFI there is no readiness to ask for:
 * the wait is a timer that backs off from 1 to 20 ms, which costs a few
 * wake-ups per second instead of a spinning loop.
 *
 * @module
 */
import {
  EAGAIN,
  EINTR,
  errnoReader,
  type Libc,
  libc,
  osError,
  POLLIN,
  POLLOUT,
} from "./libc.ts";

/** Longest single `poll` call, so an abandoned wait ends and sees its signal. */
export const POLL_SLICE_MS = 500;

const F_GETFL = 3;
const O_NONBLOCK = 0o4000;

const ASYNC_POLL = {
  poll: {
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

let asyncPoll:
  | Deno.DynamicLibrary<typeof ASYNC_POLL>["symbols"]["poll"]
  | null
  | undefined;

function openAsyncPoll() {
  if (asyncPoll !== undefined) return asyncPoll;
  asyncPoll = null;
  if (libc() === null) return asyncPoll;
  try {
    asyncPoll = Deno.dlopen("libc.so.6", ASYNC_POLL).symbols.poll;
  } catch {
    asyncPoll = null;
  }
  return asyncPoll;
}

function pollFd(fd: number, events: number): Uint8Array {
  const set = new Uint8Array(8);
  const view = new DataView(set.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, events, true);
  return set;
}

/**
 * Resolves once `fd` is ready for `events` (or has an error or hang-up
 * pending, which the next read or write reports), or when `signal` aborts.
 * Without FFI, resolves after a short backoff instead (see the module doc).
 */
export async function waitReady(
  fd: number,
  events: number,
  signal?: AbortSignal,
): Promise<void> {
  const poll = openAsyncPoll();
  if (poll === null) {
    await backoff.sleep();
    return;
  }
  const set = pollFd(fd, events);
  while (!signal?.aborted) {
    const r = await poll(set, 1n, POLL_SLICE_MS);
    if (r > 0) return;
    // 0: a slice passed; -1: EINTR. Either way, look again.
  }
}

/**
 * Blocks the calling thread until `fd` is ready for `events` (`poll` with no
 * timeout); without FFI, sleeps a short backoff instead.
 */
export function waitReadySync(fd: number, events: number): void {
  const c = libc();
  if (c === null) {
    backoff.sleepSync();
    return;
  }
  const set = pollFd(fd, events);
  while (c.poll(set, 1n, -1) < 0) { /* EINTR: wait again */ }
}

/**
 * Whether `fd` has something for `read` this instant (data, end of input or
 * an error: `poll` with no wait); `undefined` without FFI.
 */
export function readyNow(fd: number): boolean | undefined {
  const c = libc();
  if (c === null) return undefined;
  const set = pollFd(fd, POLLIN);
  return c.poll(set, 1n, 0) > 0;
}

/**
 * Whether `fd` has O_NONBLOCK set: `undefined` when that cannot be known
 * (no FFI).
 */
export function isNonBlocking(fd: number): boolean | undefined {
  const c = libc();
  if (c === null) return undefined;
  const flags = c.fcntl(fd, F_GETFL, 0);
  return flags >= 0 && (flags & O_NONBLOCK) !== 0;
}

let mainErrno: (() => number) | undefined;

/**
 * One `read(2)` from a non-blocking `fd` into `p` through libc, waiting for
 * readiness on EAGAIN: the byte count, or `null` at end of input. Only for
 * descriptors known to be non-blocking (a blocking one would stall the
 * event loop).
 */
export async function readNonBlocking(
  c: Libc,
  fd: number,
  p: Uint8Array,
): Promise<number | null> {
  const errno = mainErrno ??= errnoReader(c);
  for (;;) {
    const n = Number(c.read(fd, p, BigInt(p.length)));
    if (n > 0) return n;
    if (n === 0) return p.length === 0 ? 0 : null;
    const e = errno();
    if (e === EAGAIN) await waitReady(fd, POLLIN);
    else if (e !== EINTR) throw osError(c, e, "read");
  }
}

/**
 * One `write(2)` of `p` to a non-blocking `fd` through libc, waiting for
 * readiness on EAGAIN: the byte count taken (may be fewer than `p.length`).
 * EPIPE throws `Deno.errors.BrokenPipe`, like Deno's own writes.
 */
export async function writeNonBlocking(
  c: Libc,
  fd: number,
  p: Uint8Array,
): Promise<number> {
  const errno = mainErrno ??= errnoReader(c);
  for (;;) {
    const n = Number(c.write(fd, p, BigInt(p.length)));
    if (n >= 0) return n;
    const e = errno();
    if (e === EAGAIN) await waitReady(fd, POLLOUT);
    else if (e !== EINTR) throw osError(c, e, "write");
  }
}

/** {@linkcode writeNonBlocking}, blocking the calling thread in `poll` instead. */
export function writeNonBlockingSync(
  c: Libc,
  fd: number,
  p: Uint8Array,
): number {
  const errno = mainErrno ??= errnoReader(c);
  for (;;) {
    const n = Number(c.write(fd, p, BigInt(p.length)));
    if (n >= 0) return n;
    const e = errno();
    if (e === EAGAIN) waitReadySync(fd, POLLOUT);
    else if (e !== EINTR) throw osError(c, e, "write");
  }
}

/** The no-FFI wait: 1 ms, doubling to 20 ms while waits follow each other. */
const backoff = {
  ms: 1,
  last: 0,
  next(): number {
    const now = performance.now();
    // A wait long after the previous one starts again at 1 ms.
    this.ms = now - this.last > 100 ? 1 : Math.min(this.ms * 2, 20);
    this.last = now;
    return this.ms;
  },
  sleep(): Promise<void> {
    const ms = this.next();
    return new Promise((resolve) => setTimeout(resolve, ms));
  },
  sleepSync(): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, this.next());
  },
};
