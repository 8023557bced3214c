/**
 * The connect-scan thread (see scan.ts): non-blocking connects through libc,
 * up to `window` in flight, one `poll` over all of them per round. Each
 * connect is timed from its own `connect(2)` call, so a port is reported
 * timed out only when it truly went unanswered for `timeout` ms, however
 * many others are waiting.
 *
 * Messages in: one {@linkcode ScanJob}. Messages out: `{ ready: boolean }`
 * once libc is open, then `{ done: true }` when every assigned port has a
 * state.
 *
 * @module
 */
import {
  errnoReader,
  type Libc,
  libc,
  POLLERR,
  POLLHUP,
  POLLOUT,
} from "./libc.ts";
import { workerScope } from "./_worker_scope.ts";
import { CLOSED, FAILED, OPEN, type ScanJob, TIMEOUT } from "./scan_job.ts";

const scope = workerScope<ScanJob>();

const EINPROGRESS = 115, ECONNREFUSED = 111, EMFILE = 24, ENFILE = 23;
const AF_INET = 2, AF_INET6 = 10;
const SOCK_STREAM_NONBLOCK_CLOEXEC = 1 | 0o4000 | 0o2000000;
const SOL_SOCKET = 1, SO_ERROR = 4;

const c = libc();
scope.postMessage({ ready: c !== null });
scope.onmessage = (e: MessageEvent<ScanJob>) => {
  if (c === null) return;
  run(c, e.data);
  scope.postMessage({ done: true });
  scope.close();
};

function run(c: Libc, job: ScanJob): void {
  const errno = errnoReader(c);
  const ports = new Int32Array(job.ports);
  const states = new Int8Array(job.states);
  const errnos = new Int32Array(job.errnos);
  const times = new Float64Array(job.times);
  const stop = new Int32Array(job.stop);
  const sa = job.sockaddr.slice();
  const family = sa[0]! | (sa[1]! << 8);
  const domain = family === AF_INET6 ? AF_INET6 : AF_INET;
  const window = job.window;
  // struct pollfd { int fd; short events; short revents; }, one per slot.
  const pfd = new Uint8Array(window * 8);
  const pv = new DataView(pfd.buffer);
  const slotPort = new Int32Array(window);
  const slotStart = new Float64Array(window);
  const opt = new Int32Array(1), optLen = new Uint32Array([4]);
  const optBytes = new Uint8Array(opt.buffer);
  const optLenBytes = new Uint8Array(optLen.buffer);
  let active = 0;
  let next = job.first;

  const settle = (i: number, state: number, code: number, now: number) => {
    const at = slotPort[i]!;
    states[at] = state;
    errnos[at] = code;
    times[at] = now - slotStart[i]!;
    c.close(pv.getInt32(i * 8, true));
    // Move the last slot into this one.
    active--;
    if (i !== active) {
      pfd.copyWithin(i * 8, active * 8, active * 8 + 8);
      slotPort[i] = slotPort[active]!;
      slotStart[i] = slotStart[active]!;
    }
  };

  while ((next < ports.length || active > 0) && Atomics.load(stop, 0) === 0) {
    // Fill the window.
    while (active < window && next < ports.length) {
      const at = next;
      const fd = c.socket(domain, SOCK_STREAM_NONBLOCK_CLOEXEC, 0);
      if (fd < 0) {
        const code = errno();
        if ((code === EMFILE || code === ENFILE) && active > 0) break;
        states[at] = FAILED;
        errnos[at] = code;
        next += job.stride;
        continue;
      }
      const port = ports[at]!;
      sa[2] = port >> 8;
      sa[3] = port & 0xff;
      const start = performance.now();
      const r = c.connect(fd, sa, sa.length);
      const code = r === 0 ? 0 : errno();
      next += job.stride;
      if (r === 0 || code !== EINPROGRESS) {
        states[at] = r === 0 ? OPEN : code === ECONNREFUSED ? CLOSED : FAILED;
        errnos[at] = code;
        times[at] = performance.now() - start;
        c.close(fd);
        continue;
      }
      pv.setInt32(active * 8, fd, true);
      pv.setInt16(active * 8 + 4, POLLOUT, true);
      pv.setInt16(active * 8 + 6, 0, true);
      slotPort[active] = at;
      slotStart[active] = start;
      active++;
    }
    if (active === 0) continue;
    let oldest = Infinity;
    for (let i = 0; i < active; i++) {
      if (slotStart[i]! < oldest) oldest = slotStart[i]!;
    }
    const wait = Math.max(
      0,
      Math.ceil(oldest + job.timeout - performance.now()),
    );
    // 100 ms at most, so that a stop request is seen promptly.
    const ready = c.poll(pfd, BigInt(active), Math.min(wait, 100));
    const now = performance.now();
    if (ready < 0) continue; // EINTR
    for (let i = active - 1; i >= 0; i--) {
      const revents = pv.getInt16(i * 8 + 6, true);
      if (revents === 0) {
        if (now - slotStart[i]! >= job.timeout) settle(i, TIMEOUT, 0, now);
        continue;
      }
      let code = 0;
      if (revents & (POLLERR | POLLHUP)) {
        optLen[0] = 4;
        const fd = pv.getInt32(i * 8, true);
        code = c.getsockopt(fd, SOL_SOCKET, SO_ERROR, optBytes, optLenBytes) ===
            0
          ? opt[0]!
          : errno();
      }
      settle(
        i,
        code === 0 ? OPEN : code === ECONNREFUSED ? CLOSED : FAILED,
        code,
        now,
      );
    }
  }
  // Stopped early: close what is still in flight, leave those ports pending.
  for (let i = 0; i < active; i++) c.close(pv.getInt32(i * 8, true));
}
