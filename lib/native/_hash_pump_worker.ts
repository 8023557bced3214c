/**
 * The hashing pump thread (see hash_pump.ts): moves exactly `n` bytes from
 * one descriptor to another through one reused buffer, feeding every byte
 * read to a sha256, all on this thread. The transfer sender runs it file to
 * socket, the receiver socket to file; the main thread only waits.
 *
 * Messages in: {@linkcode HashPumpJob}s, one at a time. Messages out:
 * `{ ready: boolean }` once libc is open, then one {@linkcode HashPumpEnd}
 * per job.
 *
 * @module
 */
import { createHash } from "node:crypto";
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

const scope = workerScope<HashPumpJob>();

/** What the hashing pump thread is asked to move. */
export interface HashPumpJob {
  /** Read from here: a file (sender) or the socket duplicate (receiver). */
  src: number;
  /** Write to here: the socket duplicate (sender) or a file (receiver). */
  dst: number;
  /** Which of `src`/`dst` is the socket (waited on, shut down by stop). */
  socket: number;
  /** Exactly this many bytes are read from `src` (after `prefix`). */
  n: number;
  /** Bytes hashed and written before any read (the receiver's buffered part). */
  prefix: Uint8Array;
  /**
   * `true` (receiver): a failed write to `dst` is recorded and the rest is
   * still read and hashed, so the stream stays in step; `false` (sender):
   * a failed write ends the job.
   */
  keepReading: boolean;
  bufferSize: number;
  /** Float64Array: [0] bytes moved, [1] epoch ms of the last chunk, [2] 1 = stop. */
  shared: SharedArrayBuffer;
}

/** How the job ended. */
export interface HashPumpEnd {
  /** Bytes read from `src` (the prefix not counted). */
  bytes: number;
  /** Hex sha256 of the prefix and every byte read; "" unless complete. */
  sha256: string;
  /** 0 when all `n` bytes were moved; otherwise why not (-2: stopped, -3: EOF first). */
  errno: number;
  /** The call that failed. */
  op?: "read" | "write";
  /** With `keepReading`: the errno of the first failed write to `dst`, else 0. */
  writeErrno: number;
}

const c = libc();
scope.postMessage({ ready: c !== null });
scope.onmessage = (e: MessageEvent<HashPumpJob>) => {
  if (c === null) return;
  scope.postMessage(run(c, e.data));
};

function run(c: Libc, job: HashPumpJob): HashPumpEnd {
  const { src, socket, n } = job;
  let dst = job.dst;
  const stats = new Float64Array(job.shared);
  const buf = new Uint8Array(job.bufferSize);
  const errno = errnoReader(c);
  const hash = createHash("sha256");
  const pollSet = new Uint8Array(8);
  const pv = new DataView(pollSet.buffer);
  let writeErrno = 0;
  // Waits until `fd` (the socket) is ready, in slices so that a stop is
  // seen; false once stopped. stop() also shuts the socket down, which
  // wakes the wait at once.
  const wait = (fd: number, events: number): boolean => {
    for (;;) {
      if (stats[2] === 1) return false;
      pv.setInt32(0, fd, true);
      pv.setInt16(4, events, true);
      pv.setInt16(6, 0, true);
      const r = c.poll(pollSet, 1n, 250);
      if (r > 0 && (pv.getInt16(6, true) & (events | POLLHUP | POLLERR))) {
        return stats[2] !== 1;
      }
    }
  };
  // Writes all of `chunk`; 0, or the errno that ended it (-2: stopped).
  const put = (chunk: Uint8Array): number => {
    let off = 0;
    while (off < chunk.length) {
      const w = Number(
        c.write(
          dst,
          off === 0 ? chunk : chunk.subarray(off),
          BigInt(chunk.length - off),
        ),
      );
      if (w >= 0) {
        off += w;
        continue;
      }
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN && dst === socket) {
        if (!wait(dst, POLLOUT)) return -2;
        continue;
      }
      return e;
    }
    return 0;
  };
  const deliver = (chunk: Uint8Array): HashPumpEnd | undefined => {
    hash.update(chunk);
    if (dst < 0) return undefined;
    const e = put(chunk);
    if (e === 0) return undefined;
    if (job.keepReading && e !== -2) {
      writeErrno = e;
      dst = -1;
      return undefined;
    }
    return { bytes, sha256: "", errno: e, op: "write", writeErrno };
  };
  let bytes = 0;
  if (job.prefix.length > 0) {
    const end = deliver(job.prefix);
    if (end) return end;
  }
  while (bytes < n) {
    if (stats[2] === 1) {
      return { bytes, sha256: "", errno: -2, writeErrno };
    }
    const want = Math.min(buf.length, n - bytes);
    const got = Number(c.read(src, buf, BigInt(want)));
    if (got === 0) return { bytes, sha256: "", errno: -3, writeErrno };
    if (got < 0) {
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN && src === socket) {
        if (!wait(src, POLLIN)) {
          return { bytes, sha256: "", errno: -2, writeErrno };
        }
        continue;
      }
      return { bytes, sha256: "", errno: e, op: "read", writeErrno };
    }
    const end = deliver(got === buf.length ? buf : buf.subarray(0, got));
    bytes += got;
    stats[0] = bytes;
    stats[1] = Date.now();
    if (end) return { ...end, bytes };
  }
  return { bytes, sha256: hash.digest("hex"), errno: 0, writeErrno };
}
