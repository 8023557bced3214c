/**
 * The UDP echo thread (see udp_echo.ts): `recvfrom`/`sendto` through libc
 * on the server's socket, each datagram back to its sender, with one
 * reused buffer and no promise per datagram.
 *
 * Messages in: one {@linkcode UdpEchoJob}. Messages out: `{ ready }` first,
 * `{ log }` lines, and `{ closed: true }` once stopped.
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import { upperAsciiInPlace } from "../upper.ts";
import { STOP, threadLog } from "./threads.ts";
import { describeError } from "../errors.ts";
import {
  EAGAIN,
  EINTR,
  errnoReader,
  libc,
  osError,
  sockaddrToAddr,
  SOL_SOCKET,
} from "./libc.ts";
import { workerScope } from "./_worker_scope.ts";
import { ADMIT, DropLog, SourceGuard } from "../source_guard.ts";

const scope = workerScope<UdpEchoJob>();

/** What the UDP echo thread serves. */
export interface UdpEchoJob {
  /**
   * The socket: a close-on-exec duplicate the main thread claimed by its
   * identity (identity.ts) and closes once this thread has stopped.
   */
  fd: number;
  /** The port it is bound to (a datagram from it is a loop source). */
  port: number;
  upper: boolean;
  /** Log each datagram's size and sender. */
  logDatagrams: boolean;
  /** Log errors (and, once a second at most, refused datagrams). */
  verbose: boolean;
  /** Datagrams a second answered per source address (`Infinity`: no limit). */
  rate: number;
  /** Source addresses the rate limit tracks at once. */
  maxSources: number;
  /** Int32Array: [STOP] 1 = stop (threads.ts). */
  shared: SharedArrayBuffer;
  /**
   * Float64Array: [0] datagrams echoed, [1] dropped as loop sources, [2]
   * dropped over the rate, [3] source addresses tracked (one writer, this
   * thread; floats so the counts do not wrap at 2^31 as Int32 counters
   * would).
   */
  echoed: SharedArrayBuffer;
  /** Log backlog counter, set by ThreadGroup.start (threads.ts). */
  logs?: SharedArrayBuffer;
}

/** Wake-ups at least this often, to see a stop request. */
const TICK_MS = 50;
const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000;
const SO_RCVTIMEO = 20;

const c = libc();
scope.onmessage = (e: MessageEvent<UdpEchoJob>) => {
  const job = e.data;
  const fd = job.fd;
  if (c === null || fd < 0) {
    scope.postMessage({ ready: false });
    return;
  }
  scope.postMessage({ ready: true });
  const stats = new Int32Array(job.shared);
  const errno = errnoReader(c);
  const log = threadLog(job.logs!);
  const echoedOut = new Float64Array(job.echoed);
  let echoed = 0;
  const guard = new SourceGuard({
    ownPort: job.port,
    rate: job.rate,
    maxSources: job.maxSources,
  });
  const drops = new DropLog();
  // The largest UDP payload, so no datagram is ever cut short.
  const buf = new Uint8Array(65536);
  const size = BigInt(buf.length);
  const sa = new Uint8Array(128);
  const saLen = new Uint32Array(1);
  const saLenBytes = new Uint8Array(saLen.buffer);
  // Deno made the socket non-blocking; only this thread uses it now.
  // Blocking receives with a 50 ms timeout cost one call per datagram
  // instead of a failed receive, a poll and a receive, and still let the
  // loop see a stop request.
  c.fcntl(fd, F_SETFL, c.fcntl(fd, F_GETFL, 0) & ~O_NONBLOCK);
  const timeout = new BigInt64Array([0n, BigInt(TICK_MS * 1000)]);
  c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(timeout.buffer), 16);
  const lengths = Array.from({ length: 2049 }, (_, i) => BigInt(i));
  while (Atomics.load(stats, STOP) !== 1) {
    saLen[0] = sa.length;
    const n = Number(c.recvfrom(fd, buf, size, 0, sa, saLenBytes));
    if (n < 0) {
      const code = errno();
      if (code !== EAGAIN && code !== EINTR && job.verbose) {
        log(describeError(osError(c, code)));
      }
      continue;
    }
    const now = performance.now();
    const verdict = guard.check(sourceKey(sa), (sa[2]! << 8) | sa[3]!, now);
    echoedOut[3] = guard.tracked;
    if (verdict !== ADMIT) {
      const line = drops.note(verdict, () => describeSource(sa), now);
      echoedOut[1] = drops.loop;
      echoedOut[2] = drops.rate;
      if (line !== undefined && job.verbose) log(line);
      continue;
    }
    if (job.upper) upperAsciiInPlace(buf, n);
    if (job.logDatagrams) log(`${n} bytes from ${describeSource(sa)}`);
    const sent = Number(
      c.sendto(fd, buf, lengths[n] ?? BigInt(n), 0, sa, saLen[0]!),
    );
    if (sent >= 0) echoedOut[0] = ++echoed;
    else if (job.verbose) log(describeError(osError(c, errno())));
  }
  scope.postMessage({ closed: true });
};

function describeSource(sa: Uint8Array): string {
  const from = sockaddrToAddr(sa);
  return from ? formatAddr(from) : "(unknown)";
}

/**
 * The rate limit's key for the sender in `sa`: the IPv4 address as a
 * number (no allocation per datagram), else the IPv6 address in hex.
 */
function sourceKey(sa: Uint8Array): number | string {
  if ((sa[0]! | (sa[1]! << 8)) === 2) {
    return ((sa[4]! << 24) | (sa[5]! << 16) | (sa[6]! << 8) | sa[7]!) >>> 0;
  }
  return sa.subarray(8, 24).toHex();
}
