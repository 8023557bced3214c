/**
 * The connect-scan loop that every thread of a native scan runs (the main
 * thread in slices between event-loop turns, each worker to the end): it
 * claims `chunk` ports at a time from the job's shared counter and scans
 * them in one of two modes.
 *
 * 1. Blocking connects, one at a time, each bounded by `SO_SNDTIMEO`,
 *    reusing the socket after each refusal (a refused TCP socket can connect
 *    again). Where ports answer at once, as every port of a local host does,
 *    that is one system call per closed port: measured here, a C loop of it
 *    scans 65,535 loopback ports in 0.33-0.38 s against 0.55-0.74 s with a
 *    new socket per port (what `nc -z` does) and 1.0-1.2 s for non-blocking
 *    connects waited for with `poll`.
 * 2. From the first connect not answered within the slice (20 ms, or the
 *    timeout if shorter: a host that drops SYNs, or a distant one), that
 *    connect and the ports after it go to non-blocking connects, up to
 *    `window` in flight, one `poll` over all of them per round, so that
 *    silent ports cost their timeout once per window rather than once per
 *    port. After a round in which every connect in flight answered within
 *    2 ms (the stall is over), the thread goes back to mode 1.
 *
 * Either way each connect is timed from its own `connect(2)` call, so a port
 * is reported timed out only when it truly went unanswered for `timeout` ms.
 * A blocking connect cut short by a signal (`EINTR`) is waited for with
 * `poll` for the rest of its slice, not reported as failed.
 *
 * With a {@linkcode ConnectRing} (the main thread's helper on a second
 * core), every 16 blocking connects the scanner collects what the ring
 * finished and refills it from the same counter. The ring reports only
 * "accepted" and "refused"; any other outcome, and every port of a ring
 * that has held a connect for 100 ms (a slow host, or a starved kernel
 * thread: the ring is then retired), comes back to be connected here.
 *
 * Every socket is created here (or in the ring's module) by `socket(2)` and
 * closed here.
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  EADDRNOTAVAIL,
  EAGAIN,
  ECONNREFUSED,
  EINPROGRESS,
  EINTR,
  EMFILE,
  ENFILE,
  errnoReader,
  type Libc,
  POLLERR,
  POLLHUP,
  POLLOUT,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
} from "./libc.ts";
import type { ConnectRing, RingResult } from "./_connect_ring.ts";
import {
  CLOSED,
  FAILED,
  NEXT,
  OPEN,
  type ScanJob,
  SOCKETS,
  STOP,
  TIMEOUT,
} from "./scan_job.ts";

const ENOMEM = 12, ENOBUFS = 105;
const SOCK_STREAM_NONBLOCK_CLOEXEC = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
const SOCK_STREAM_CLOEXEC = SOCK_STREAM | SOCK_CLOEXEC;
const SO_ERROR = 4, SO_SNDTIMEO = 21;

/** Longest one blocking connect may hold the thread before mode 2 takes it. */
export const BLOCKING_SLICE_MS = 20;
/**
 * Mode 2 hands back to mode 1 after a round in which every connect in
 * flight answered within this many ms.
 */
const BACK_TO_BLOCKING_MS = 2;
/**
 * How long a connect may stay in the ring before the ring is retired (or
 * the timeout, if shorter): a distant host, or a kernel thread starved by
 * a loaded machine.
 */
const RING_LATE_MS = 100;
/** How long the last connects in the ring may keep this thread waiting. */
const RING_TAIL_MS = 10;
/**
 * Blocking connects between two visits to the ring (about 60 µs): measured
 * here, 16 with 64 slots scanned 65,535 ports in 163-177 ms, 32 in 194-205.
 */
const RING_EVERY = 16;

/**
 * errno values of `connect` that tell about this machine at this moment
 * (no local port free: other programs' connections in TIME_WAIT can hold
 * them all; no buffer or routing entry), not about the port: such a
 * connect is tried again, 1 ms later, up to LOCAL_RETRIES times.
 */
function localShortage(code: number): boolean {
  return code === EADDRNOTAVAIL || code === EAGAIN || code === ENOBUFS ||
    code === ENOMEM;
}
const LOCAL_RETRIES = 5;

/** One thread's scanner over a shared {@linkcode ScanJob}. */
export class ConnectScanner {
  #c: Libc;
  #errno: () => number;
  #job: ScanJob;
  #ports: Int32Array;
  #states: Int8Array;
  #errnos: Int32Array;
  #times: Float64Array;
  #control: Int32Array;
  #sa: Uint8Array;
  #domain: number;
  #pollCap: number;
  // struct timeval { long tv_sec; long tv_usec; } for SO_SNDTIMEO.
  #tv: Uint8Array;
  /** This thread's claimed ports not yet started: indices [lo, hi). */
  #lo = 0;
  #hi = 0;
  /** The reusable blocking socket of mode 1, or -1. */
  #fd = -1;
  #slow = false;
  /** Ports to connect again here (the ring gave them back), as indices. */
  #redo: number[] = [];
  /** Ports tried again after a local shortage, and how often. */
  #retries = new Map<number, number>();
  #ring: ConnectRing | undefined;
  // Mode 2: struct pollfd { int fd; short events; short revents; } per slot.
  #pfd: Uint8Array;
  #pv: DataView;
  #slotAt: Int32Array;
  #slotStart: Float64Array;
  #active = 0;
  /** The longest connect settled in the last round of mode 2, in ms. */
  #roundMax = 0;
  /** One struct pollfd, for a connect that a signal interrupted. */
  #one = new Uint8Array(8);
  #opt = new Int32Array(1);
  #optLen = new Uint32Array(1);
  #optBytes = new Uint8Array(this.#opt.buffer);
  #optLenBytes = new Uint8Array(this.#optLen.buffer);

  /**
   * `pollCap` bounds one wait of mode 2 in ms (the main thread keeps it
   * short to return to its event loop). With a `ring`, the kernel connects
   * ports beside this thread (see _connect_ring.ts); the scanner closes it.
   */
  constructor(c: Libc, job: ScanJob, pollCap = 100, ring?: ConnectRing) {
    this.#ring = ring;
    this.#c = c;
    this.#errno = errnoReader(c);
    this.#job = job;
    this.#ports = new Int32Array(job.ports);
    this.#states = new Int8Array(job.states);
    this.#errnos = new Int32Array(job.errnos);
    this.#times = new Float64Array(job.times);
    this.#control = new Int32Array(job.control);
    this.#sa = job.sockaddr.slice();
    const family = this.#sa[0]! | (this.#sa[1]! << 8);
    this.#domain = family === AF_INET6 ? AF_INET6 : AF_INET;
    this.#pollCap = pollCap;
    const slice = Math.min(job.timeout, BLOCKING_SLICE_MS);
    this.#tv = new Uint8Array(
      new BigInt64Array([
        BigInt(Math.floor(slice / 1000)),
        BigInt(Math.max(1, Math.round((slice % 1000) * 1000))),
      ]).buffer,
    );
    const window = Math.max(1, job.window);
    this.#pfd = new Uint8Array(window * 8);
    this.#pv = new DataView(this.#pfd.buffer);
    this.#slotAt = new Int32Array(window);
    this.#slotStart = new Float64Array(window);
  }

  /**
   * Scans until this thread has nothing left (returns true: no port left
   * to claim, nothing in flight, or a stop request) or `budget` ms have
   * passed (returns false: call again).
   */
  run(budget = Infinity): boolean {
    const until = performance.now() + budget;
    for (;;) {
      if (Atomics.load(this.#control, STOP) !== 0) {
        this.#closeAll();
        return true;
      }
      if (this.#ring) this.#serviceRing();
      if (this.#slow) {
        if (this.#slowRound()) return true;
      } else if (
        this.#redo.length === 0 && this.#lo >= this.#hi && !this.#claim()
      ) {
        // Nothing left to start here: wait for the ring, or finish. On
        // loopback the ring's last connects finish within a millisecond;
        // later than RING_TAIL_MS, they are done here (the kernel thread
        // may be starved by a loaded machine).
        const ring = this.#ring;
        if (ring && ring.pending > 0) {
          if (performance.now() - ring.oldest() > RING_TAIL_MS) {
            this.#retireRing();
          } else ring.wait(1);
        } else if (this.#redo.length === 0) {
          this.#closeAll();
          return true;
        }
      } else {
        this.#blockingRun(this.#ring ? RING_EVERY : Infinity);
      }
      if (performance.now() >= until) return false;
    }
  }

  /** What the ring reports: a result, or a port to connect here again. */
  #fromRing: RingResult = (at, outcome, submitted, now) => {
    if (outcome === "retry") {
      this.#redo.push(at);
      return;
    }
    this.#states[at] = outcome === "open" ? OPEN : CLOSED;
    this.#errnos[at] = outcome === "open" ? 0 : ECONNREFUSED;
    // From submission: an upper bound of the connect's own time.
    this.#times[at] = now - submitted;
  };

  /**
   * Collects the ring's results and refills it. A connect left in it past
   * the slice (a slow host, or a kernel thread starved by a loaded
   * machine) retires the ring: its ports come back here, where each is
   * connected again and timed from its own start.
   */
  #serviceRing(): void {
    const ring = this.#ring!;
    ring.reap(this.#fromRing);
    const late = Math.min(this.#job.timeout, RING_LATE_MS);
    if (
      this.#slow ||
      (ring.pending > 0 && performance.now() - ring.oldest() > late)
    ) {
      this.#retireRing();
      return;
    }
    const k = ring.free;
    if (k === 0) return;
    const n = this.#ports.length;
    const at = Atomics.add(this.#control, NEXT, k);
    if (at >= n) return;
    const hi = Math.min(n, at + k);
    const now = performance.now(); // one time for the batch
    for (let i = at; i < hi; i++) {
      if (!ring.submit(i, this.#ports[i]!, now)) this.#redo.push(i);
    }
    ring.flush();
  }

  #retireRing(): void {
    const ring = this.#ring;
    if (!ring) return;
    this.#ring = undefined;
    ring.retire(this.#fromRing);
  }

  /** Takes the next chunk of ports; false when none are left. */
  #claim(): boolean {
    const n = this.#ports.length;
    const at = Atomics.add(this.#control, NEXT, this.#job.chunk);
    if (at >= n) return false;
    this.#lo = at;
    this.#hi = Math.min(n, at + this.#job.chunk);
    return true;
  }

  /**
   * Mode 1 over the claimed ports; hands over to mode 2 at the first
   * connect still unanswered after the slice, keeping that connect.
   */
  #blockingRun(limit: number): void {
    const c = this.#c, sa = this.#sa, ports = this.#ports;
    const states = this.#states, errnos = this.#errnos, times = this.#times;
    const redo = this.#redo;
    let fd = this.#fd;
    for (let count = 0; count < limit; count++) {
      let at: number;
      if (redo.length > 0) at = redo.pop()!;
      else if (this.#lo < this.#hi) at = this.#lo++;
      else break;
      if ((count & 31) === 31 && Atomics.load(this.#control, STOP) !== 0) {
        redo.push(at);
        break;
      }
      if (fd < 0) {
        fd = this.#socket(SOCK_STREAM_CLOEXEC);
        if (fd < 0) {
          states[at] = FAILED;
          errnos[at] = this.#errno();
          continue;
        }
        c.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, this.#tv, 16);
      }
      const port = ports[at]!;
      sa[2] = port >> 8;
      sa[3] = port & 0xff;
      const start = performance.now();
      const r = c.connect(fd, sa, sa.length);
      let code = r === 0 ? 0 : this.#errno();
      let reusable = true;
      if (code === EINTR) {
        // A signal cut the wait short; the attempt goes on in the kernel.
        code = this.#awaitInterrupted(fd, start);
        reusable = false; // its state is the kernel's to settle: a new one
      }
      if (localShortage(code) && this.#retryLater(at)) {
        this.#close(fd);
        fd = -1;
        c.poll(null, 0n, 1);
        continue;
      }
      if (code === EINPROGRESS) {
        // Unanswered within the slice: mode 2 waits for it from its start.
        this.#slow = true;
        this.#watch(fd, at, start);
        this.#fd = -1;
        this.#retireRing();
        return;
      }
      errnos[at] = code;
      if (code === ECONNREFUSED && reusable) {
        // The socket is unconnected again: reuse it. No time is taken (a
        // clock read is a tenth of a connect here): only an open port's
        // time is reported.
        states[at] = CLOSED;
        continue;
      }
      times[at] = performance.now() - start;
      this.#close(fd);
      fd = -1;
      states[at] = code === 0 ? OPEN : code === ECONNREFUSED ? CLOSED : FAILED;
    }
    this.#fd = fd;
  }

  /**
   * The outcome of a blocking connect that a signal interrupted: its
   * `SO_ERROR` once it answers within the rest of the slice, else
   * `EINPROGRESS` (mode 2 then waits for it, timed from `start`).
   */
  #awaitInterrupted(fd: number, start: number): number {
    const slice = Math.min(this.#job.timeout, BLOCKING_SLICE_MS);
    const one = this.#one;
    const view = new DataView(one.buffer);
    view.setInt32(0, fd, true);
    view.setInt16(4, POLLOUT, true);
    for (;;) {
      const left = Math.ceil(start + slice - performance.now());
      if (left <= 0) return EINPROGRESS;
      view.setInt16(6, 0, true);
      const r = this.#c.poll(one, 1n, left);
      if (r > 0) break;
      if (r === 0) return EINPROGRESS;
      const e = this.#errno();
      if (e !== EINTR) return e;
    }
    this.#optLen[0] = 4;
    return this.#c.getsockopt(
        fd,
        SOL_SOCKET,
        SO_ERROR,
        this.#optBytes,
        this.#optLenBytes,
      ) === 0
      ? this.#opt[0]!
      : this.#errno();
  }

  /** A new TCP socket of this scan (counted in `control[SOCKETS]`), or -1. */
  #socket(type: number): number {
    const fd = this.#c.socket(this.#domain, type, 0);
    if (fd >= 0) Atomics.add(this.#control, SOCKETS, 1);
    return fd;
  }

  #close(fd: number): void {
    this.#c.close(fd);
    Atomics.sub(this.#control, SOCKETS, 1);
  }

  /** Queues `at` to be tried again; false once it has had its retries. */
  #retryLater(at: number): boolean {
    const n = (this.#retries.get(at) ?? 0) + 1;
    if (n > LOCAL_RETRIES) return false;
    this.#retries.set(at, n);
    this.#redo.push(at);
    return true;
  }

  #watch(fd: number, at: number, start: number): void {
    const i = this.#active++;
    this.#pv.setInt32(i * 8, fd, true);
    this.#pv.setInt16(i * 8 + 4, POLLOUT, true);
    this.#pv.setInt16(i * 8 + 6, 0, true);
    this.#slotAt[i] = at;
    this.#slotStart[i] = start;
  }

  #settle(i: number, state: number, code: number, now: number): void {
    const at = this.#slotAt[i]!;
    this.#states[at] = state;
    this.#errnos[at] = code;
    const took = now - this.#slotStart[i]!;
    this.#times[at] = took;
    if (took > this.#roundMax) this.#roundMax = took;
    this.#close(this.#pv.getInt32(i * 8, true));
    // Move the last slot into this one.
    const last = --this.#active;
    if (i !== last) {
      this.#pfd.copyWithin(i * 8, last * 8, last * 8 + 8);
      this.#slotAt[i] = this.#slotAt[last]!;
      this.#slotStart[i] = this.#slotStart[last]!;
    }
  }

  /**
   * Mode 2, one round: fill the window (claiming more ports as needed), one
   * `poll`, settle what answered or ran out of time. True when nothing is
   * left to do.
   */
  #slowRound(): boolean {
    const c = this.#c, sa = this.#sa, ports = this.#ports, pv = this.#pv;
    const states = this.#states, errnos = this.#errnos, times = this.#times;
    const window = this.#slotAt.length, timeout = this.#job.timeout;
    if (this.#fd >= 0) {
      this.#close(this.#fd);
      this.#fd = -1;
    }
    const redo = this.#redo;
    let short = false;
    while (this.#active < window) {
      let at: number;
      if (redo.length > 0) at = redo.pop()!;
      else if (this.#lo < this.#hi || this.#claim()) at = this.#lo++;
      else break;
      const fd = this.#socket(SOCK_STREAM_NONBLOCK_CLOEXEC);
      if (fd < 0) {
        const code = this.#errno();
        if ((code === EMFILE || code === ENFILE) && this.#active > 0) {
          redo.push(at);
          break;
        }
        states[at] = FAILED;
        errnos[at] = code;
        continue;
      }
      const port = ports[at]!;
      sa[2] = port >> 8;
      sa[3] = port & 0xff;
      const start = performance.now();
      const r = c.connect(fd, sa, sa.length);
      const code = r === 0 ? 0 : this.#errno();
      if (localShortage(code) && this.#retryLater(at)) {
        this.#close(fd);
        short = true; // wait for what is in flight, or 1 ms
        break;
      }
      if (r === 0 || code !== EINPROGRESS) {
        states[at] = r === 0 ? OPEN : code === ECONNREFUSED ? CLOSED : FAILED;
        errnos[at] = code;
        times[at] = performance.now() - start;
        this.#close(fd);
        continue;
      }
      this.#watch(fd, at, start);
    }
    if (this.#active === 0) {
      if (short) c.poll(null, 0n, 1);
      return this.#lo >= this.#hi && redo.length === 0;
    }
    let oldest = Infinity;
    for (let i = 0; i < this.#active; i++) {
      if (this.#slotStart[i]! < oldest) oldest = this.#slotStart[i]!;
    }
    const wait = Math.max(0, Math.ceil(oldest + timeout - performance.now()));
    const ready = c.poll(
      this.#pfd,
      BigInt(this.#active),
      Math.min(wait, this.#pollCap),
    );
    const now = performance.now();
    if (ready < 0) return false; // EINTR
    this.#roundMax = 0;
    for (let i = this.#active - 1; i >= 0; i--) {
      const revents = pv.getInt16(i * 8 + 6, true);
      if (revents === 0) {
        if (now - this.#slotStart[i]! >= timeout) {
          this.#settle(i, TIMEOUT, 0, now);
        }
        continue;
      }
      let code = 0;
      if (revents & (POLLERR | POLLHUP)) {
        this.#optLen[0] = 4;
        code = c.getsockopt(
            pv.getInt32(i * 8, true),
            SOL_SOCKET,
            SO_ERROR,
            this.#optBytes,
            this.#optLenBytes,
          ) === 0
          ? this.#opt[0]!
          : this.#errno();
      }
      this.#settle(
        i,
        code === 0 ? OPEN : code === ECONNREFUSED ? CLOSED : FAILED,
        code,
        now,
      );
    }
    // Everything in flight answered at once: the stall that sent this
    // thread here (a loaded machine, one silent port) is over, and mode 1
    // is the faster way on.
    if (this.#active === 0 && this.#roundMax < BACK_TO_BLOCKING_MS) {
      this.#slow = false;
    }
    return false;
  }

  /** Closes every socket (and the ring) still open; their ports stay pending. */
  close(): void {
    this.#closeAll();
  }

  #closeAll(): void {
    this.#ring?.close();
    this.#ring = undefined;
    if (this.#fd >= 0) this.#close(this.#fd);
    this.#fd = -1;
    for (let i = 0; i < this.#active; i++) {
      this.#close(this.#pv.getInt32(i * 8, true));
    }
    this.#active = 0;
  }
}
