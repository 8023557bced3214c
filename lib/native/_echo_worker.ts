/**
 * One echo thread of the epoll engine (see echo.ts): accepts on the
 * server's listening socket and echoes on every connection it accepted,
 * in a level-triggered `epoll` loop through libc with one reused buffer.
 *
 * Messages in: one {@linkcode EchoJob}. Messages out: `{ ready }` first,
 * `{ log }` lines when the job is verbose, and `{ closed: true }` once
 * stopped (every connection closed).
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import { type EchoJob, OPEN, SERVED } from "./echo_job.ts";
import { upperAsciiInPlace } from "../upper.ts";
import { describeError } from "../errors.ts";
import { STOP, threadLog } from "./threads.ts";
import {
  EAGAIN,
  EINTR,
  EMFILE,
  ENFILE,
  EPOLL_CLOEXEC,
  errnoReader,
  IPPROTO_TCP,
  type Libc,
  libc,
  osError,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  sockaddrToAddr,
} from "./libc.ts";
import { workerScope } from "./_worker_scope.ts";

const scope = workerScope<EchoJob>();

const EPOLLIN = 0x1, EPOLLOUT = 0x4, EPOLLEXCLUSIVE = 1 << 28;
const EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
const TCP_NODELAY = 1;
/** Wake-ups at least this often, to see a stop request and sweep idlers. */
const TICK_MS = 50;
// struct epoll_event is packed on x86-64 (12 bytes), padded elsewhere (16).
const EV_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const EV_DATA = Deno.build.arch === "x86_64" ? 4 : 8;
const MAX_EVENTS = 1024;

interface Client {
  peer: Deno.NetAddr | undefined;
  bytes: number;
  start: number;
  last: number;
  /** Bytes a write could not take yet; reading pauses until they are out. */
  pending: Uint8Array | null;
}

const c = libc();
scope.onmessage = (e: MessageEvent<EchoJob>) => {
  if (c === null) {
    scope.postMessage({ ready: false });
    return;
  }
  const job = e.data;
  const lfd = job.fd;
  const ep = c.epoll_create1(EPOLL_CLOEXEC);
  if (lfd < 0 || ep < 0) {
    if (ep >= 0) c.close(ep);
    scope.postMessage({ ready: false });
    return;
  }
  scope.postMessage({ ready: true });
  serve(c, lfd, ep, job);
  scope.postMessage({ closed: true });
};

function serve(c: Libc, lfd: number, ep: number, job: EchoJob): void {
  const stats = new Int32Array(job.shared);
  const errno = errnoReader(c);
  const log = job.verbose ? threadLog(job.logs!) : undefined;
  const ev = new Uint8Array(EV_SIZE);
  const evView = new DataView(ev.buffer);
  const ctl = (op: number, fd: number, events: number) => {
    evView.setUint32(0, events, true);
    evView.setInt32(EV_DATA, fd, true);
    return c.epoll_ctl(ep, op, fd, ev);
  };
  const events = new Uint8Array(EV_SIZE * MAX_EVENTS);
  const eventsView = new DataView(events.buffer);
  const buf = new Uint8Array(job.bufferSize);
  const size = BigInt(buf.length);
  const sa = new Uint8Array(128);
  const saLen = new Uint32Array(1);
  const saLenBytes = new Uint8Array(saLen.buffer);
  const one = new Uint8Array(new Int32Array([1]).buffer);
  // Indexed by descriptor (small integers): cheaper than a Map per event.
  const clients: (Client | undefined)[] = [];
  let listening = ctl(EPOLL_CTL_ADD, lfd, EPOLLIN | EPOLLEXCLUSIVE) === 0;
  let resumeAt = 0;
  let lastSweep = performance.now();
  // The clock is read once per epoll_wait, not per event: a batch takes
  // milliseconds at most, far below any idle timeout, and at 10,000
  // connections a read per event is 10,000 reads per round.
  let now = lastSweep;
  const name = (cl: Client) => cl.peer ? formatAddr(cl.peer) : "(peer)";

  const drop = (fd: number) => {
    ctl(EPOLL_CTL_DEL, fd, 0);
    c.close(fd);
    clients[fd] = undefined;
    Atomics.sub(stats, OPEN, 1);
  };
  const fail = (fd: number, cl: Client, code: number) => {
    log?.(
      `${name(cl)}: ${describeError(osError(c, code))} after ${cl.bytes} bytes`,
    );
    drop(fd);
  };
  // Lengths as the bigints `usize` takes, made once: no allocation per
  // message on the hot path.
  const lengths = Array.from({ length: buf.length + 1 }, (_, i) => BigInt(i));
  /** Writes `data[0, len)`; true when all of it went out. */
  const send = (
    fd: number,
    cl: Client,
    data: Uint8Array,
    len: number,
  ): boolean => {
    let off = 0;
    while (off < len) {
      const left = len - off;
      const w = Number(
        c.write(
          fd,
          off === 0 ? data : data.subarray(off),
          lengths[left] ?? BigInt(left),
        ),
      );
      if (w > 0) {
        off += w;
        cl.bytes += w; // bytes echoed, as the event-loop engine counts
        continue;
      }
      const e = errno();
      if (e === EINTR) continue;
      if (e !== EAGAIN) {
        fail(fd, cl, e);
        return false;
      }
      // The peer is not reading: keep the rest and wait until it can take it.
      if (cl.pending === null) ctl(EPOLL_CTL_MOD, fd, EPOLLOUT);
      cl.pending = data.slice(off, len);
      return false;
    }
    if (cl.pending !== null) {
      cl.pending = null;
      ctl(EPOLL_CTL_MOD, fd, EPOLLIN);
    }
    return true;
  };

  const acceptAll = () => {
    for (;;) {
      saLen[0] = sa.length;
      const fd = c.accept4(lfd, sa, saLenBytes, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const e = errno();
        if (e === EAGAIN) return;
        if (e === EMFILE || e === ENFILE) {
          // Out of descriptors: stop accepting for a moment (the kernel
          // keeps the backlog) instead of spinning on the same error.
          log?.(`accept: ${describeError(osError(c, e))}; pausing 100 ms`);
          ctl(EPOLL_CTL_DEL, lfd, 0);
          listening = false;
          resumeAt = performance.now() + 100;
          return;
        }
        if (e === EINTR || e === 103 /* ECONNABORTED */) continue;
        log?.(`accept: ${describeError(osError(c, e))}`);
        return;
      }
      const peer = job.verbose ? sockaddrToAddr(sa) : undefined;
      const open = Atomics.add(stats, OPEN, 1);
      if (job.maxConns >= 0 && open >= job.maxConns) {
        Atomics.sub(stats, OPEN, 1);
        log?.(
          `${
            peer ? formatAddr(peer) : "(peer)"
          } refused: ${open} connections open (--max-conns)`,
        );
        c.close(fd);
        continue;
      }
      Atomics.add(stats, SERVED, 1);
      c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4);
      clients[fd] = { peer, bytes: 0, start: now, last: now, pending: null };
      ctl(EPOLL_CTL_ADD, fd, EPOLLIN);
      if (peer) log?.(`connection from ${formatAddr(peer)}`);
    }
  };

  const onReady = (fd: number) => {
    const cl = clients[fd];
    if (cl === undefined) return;
    cl.last = now;
    if (cl.pending !== null) {
      send(fd, cl, cl.pending, cl.pending.length);
      return;
    }
    const n = Number(c.read(fd, buf, size));
    if (n > 0) {
      if (job.upper) upperAsciiInPlace(buf, n);
      send(fd, cl, buf, n);
      return;
    }
    if (n === 0) {
      log?.(
        `${name(cl)} closed after ${cl.bytes} bytes echoed in ${
          ((performance.now() - cl.start) / 1000).toFixed(3)
        } s`,
      );
      drop(fd);
      return;
    }
    const e = errno();
    if (e !== EAGAIN && e !== EINTR) fail(fd, cl, e);
  };

  while (Atomics.load(stats, STOP) !== 1) {
    const n = c.epoll_wait(ep, events, MAX_EVENTS, TICK_MS);
    now = performance.now();
    for (let i = 0; i < n; i++) {
      const fd = eventsView.getInt32(i * EV_SIZE + EV_DATA, true);
      if (fd === lfd) acceptAll();
      else onReady(fd);
    }
    if (!listening && now >= resumeAt) {
      listening = ctl(EPOLL_CTL_ADD, lfd, EPOLLIN | EPOLLEXCLUSIVE) === 0;
    }
    if (job.idleMs && now - lastSweep >= Math.min(job.idleMs / 4, 250)) {
      lastSweep = now;
      clients.forEach((cl, fd) => {
        if (cl === undefined || now - cl.last < job.idleMs) return;
        log?.(`${name(cl)}: idle, closed`);
        drop(fd);
      });
    }
  }
  clients.forEach((cl, fd) => cl && drop(fd));
  if (listening) ctl(EPOLL_CTL_DEL, lfd, 0);
  c.close(ep);
}
