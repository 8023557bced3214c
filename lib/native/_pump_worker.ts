/**
 * The pump thread (see fdpump.ts): a blocking read/write loop between two
 * descriptors through libc, with one reused buffer. Blocking here costs the
 * main thread nothing, and each chunk skips the event-loop round trip that
 * bounds Deno's async reads.
 *
 * Messages in: one {@linkcode PumpJob}. Messages out: `{ ready: boolean }`
 * once libc is open, then one {@linkcode PumpEnd}.
 *
 * @module
 */
import {
  EAGAIN,
  EINTR,
  errnoReader,
  type Libc,
  libc,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLOUT,
} from "./libc.ts";
import { workerScope } from "./_worker_scope.ts";

const scope = workerScope<PumpJob>();

/** What the pump thread is asked to move. */
export interface PumpJob {
  src: number;
  dst: number;
  /** Which of `src`/`dst` is the (duplicated) socket; fdpump closes it after. */
  socket: number;
  bufferSize: number;
  /** Float64Array: [0] bytes moved, [1] epoch ms of the last chunk, [2] 1 = stop. */
  shared: SharedArrayBuffer;
}

/** How the pump ended. */
export interface PumpEnd {
  bytes: number;
  /** 0 when `src` reached EOF (or the pump was stopped). */
  errno: number;
  /** The call that failed. */
  op?: "read" | "write";
}

const c = libc();
scope.postMessage({ ready: c !== null });
scope.onmessage = (e: MessageEvent<PumpJob>) => {
  if (c === null) return;
  const end = run(c, e.data);
  scope.postMessage(end);
  scope.close();
};

function run(c: Libc, job: PumpJob): PumpEnd {
  const { src, dst, socket } = job;
  const stats = new Float64Array(job.shared);
  const buf = new Uint8Array(job.bufferSize);
  const size = BigInt(buf.length);
  const errno = errnoReader(c);
  const pollSet = new Uint8Array(16);
  const pv = new DataView(pollSet.buffer);
  // Waits until `fd` is ready for `events`; false once stopped. The socket
  // is watched too: stop() shuts it down, which wakes a wait on it or
  // beside it. After the peer hangs up (not a stop) `fd` is waited on alone,
  // in slices, so a later stop is still seen. A blocking descriptor (stdin
  // from a shell pipe) is read without waiting here, and a stop cannot
  // interrupt that read: fdpump settles `done` at once anyway.
  let socketHungUp = false;
  const wait = (fd: number, events: number): boolean => {
    for (;;) {
      if (stats[2] === 1) return false;
      const both = fd !== socket && !socketHungUp;
      pv.setInt32(0, fd, true);
      pv.setInt16(4, events, true);
      pv.setInt16(6, 0, true);
      pv.setInt32(8, socket, true);
      pv.setInt16(12, 0, true);
      pv.setInt16(14, 0, true);
      const alone = fd !== socket && socketHungUp;
      const r = c.poll(pollSet, both ? 2n : 1n, alone ? 100 : -1);
      if (r > 0 && pv.getInt16(6, true) !== 0) return stats[2] !== 1;
      if (both && (pv.getInt16(14, true) & (POLLHUP | POLLERR)) !== 0) {
        socketHungUp = true;
      }
      // Otherwise a timeout slice or EINTR: look again.
    }
  };
  let bytes = 0;
  for (;;) {
    if (stats[2] === 1) return { bytes, errno: 0 };
    const n = Number(c.read(src, buf, size));
    if (stats[2] === 1) return { bytes, errno: 0 };
    if (n === 0) return { bytes, errno: 0 };
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN) {
        if (!wait(src, POLLIN)) return { bytes, errno: 0 };
        continue;
      }
      if (e === EINTR) continue;
      return { bytes, errno: e, op: "read" };
    }
    let off = 0;
    while (off < n) {
      const w = Number(
        c.write(dst, off === 0 ? buf : buf.subarray(off), BigInt(n - off)),
      );
      if (w >= 0) {
        off += w;
        continue;
      }
      const e = errno();
      if (e === EAGAIN) {
        if (!wait(dst, POLLOUT)) return { bytes, errno: 0 };
        continue;
      }
      if (e === EINTR) continue;
      return { bytes, errno: e, op: "write" };
    }
    bytes += n;
    stats[0] = bytes;
    stats[1] = Date.now();
  }
}
