/**
 * Connects run by the kernel beside the scanning thread: an io_uring with a
 * submission-polling kernel thread (`IORING_SETUP_SQPOLL`) that takes
 * `IORING_OP_CONNECT` requests from shared memory, so a second core scans
 * without a second JavaScript isolate (a worker costs about 10 MB and
 * 30-40 ms to boot). Measured here with C, 65,535 loopback ports: one
 * thread of blocking connects 0.21-0.23 s, two threads 0.14-0.16 s, one
 * thread of blocking connects plus this ring 0.15-0.17 s.
 *
 * The ring is only an accelerator: the scanner takes from it the ports it
 * reports accepted (`OPEN`) or refused (`CLOSED`); every other outcome (any
 * error), and every connect still in the ring when it is retired, sends the
 * port back to be connected again on the thread, where each connect is
 * timed from its own start. Nothing here ever reports a timeout. Each slot owns one socket made here by `socket(2)`,
 * reused after a refusal as the blocking loop does, and closed here.
 *
 * `open()` returns `undefined` wherever the ring cannot run (no io_uring, a
 * kernel without unprivileged SQPOLL, a seccomp filter, a big-endian CPU),
 * and the caller scans without it.
 *
 * @module
 */
import {
  ECONNREFUSED,
  type Libc,
  POLLIN,
  SOCK_CLOEXEC,
  SOCK_STREAM,
} from "./libc.ts";
import { SOCKETS } from "./scan_job.ts";

// The same numbers on x86-64 and arm64.
const SYS_IO_URING_SETUP = 425n, SYS_IO_URING_ENTER = 426n;
const IORING_SETUP_SQPOLL = 2;
const IORING_FEAT_SINGLE_MMAP = 1;
const IORING_SQ_NEED_WAKEUP = 1;
const IORING_ENTER_SQ_WAKEUP = 2;
const IORING_OFF_SQ_RING = 0n, IORING_OFF_CQ_RING = 0x8000000n;
const IORING_OFF_SQES = 0x10000000n;
const IORING_OP_CONNECT = 16;
const PROT_RW = 3, MAP_SHARED_POPULATE = 0x01 | 0x8000;
const SOCK_STREAM_CLOEXEC = SOCK_STREAM | SOCK_CLOEXEC;
const SQE = 64, CQE = 16;
/** How long the kernel thread spins for new requests before it sleeps. */
const SQ_IDLE_MS = 2;

/** One finished ring connect, as {@linkcode ConnectRing.reap} hands it over. */
export type RingResult = (
  at: number,
  outcome: "open" | "closed" | "retry",
  submitted: number,
  now: number,
) => void;

/** An io_uring of connects, `slots` in flight at most. */
export class ConnectRing {
  #c: Libc;
  #fd: number;
  #maps: Array<[Deno.PointerValue, number]>;
  #sqWords: Uint32Array;
  #sqTail: number;
  #sqMask: number;
  #sqFlags: number;
  #sqes: Uint32Array;
  #cqWords: Uint32Array;
  /** The same completion ring as signed words (a CQE's `res` is an s32). */
  #cqRes: Int32Array;
  #cqHead: number;
  #cqTail: number;
  #cqMask: number;
  #cqes: number;
  #tail: number;
  #addrs: Uint8Array;
  #addrLo: number;
  #addrHi: number;
  #addrLen: number;
  #socks: Int32Array;
  #slotAt: Int32Array;
  #slotStart: Float64Array;
  #free: number[];
  #domain: number;
  #pfd = new Uint8Array(8);
  #pending = 0;
  #closed = false;
  /** Where the sockets made here are counted (`control[SOCKETS]`). */
  #count: Int32Array | undefined;

  private constructor(
    c: Libc,
    fd: number,
    maps: Array<[Deno.PointerValue, number]>,
    params: Uint32Array,
    sqRing: ArrayBuffer,
    cqRing: ArrayBuffer,
    sqes: ArrayBuffer,
    sockaddr: Uint8Array,
    slots: number,
  ) {
    this.#c = c;
    this.#fd = fd;
    this.#maps = maps;
    // io_uring_params: u32 words; sq_off at byte 40, cq_off at byte 80.
    this.#sqWords = new Uint32Array(sqRing);
    this.#sqTail = params[11]! / 4;
    this.#sqMask = this.#sqWords[params[12]! / 4]!;
    this.#sqFlags = params[14]! / 4;
    const array = params[16]! / 4;
    const entries = params[0]!;
    // Slot i of the array always names SQE i: the SQE used is tail & mask.
    for (let i = 0; i < entries; i++) this.#sqWords[array + i] = i;
    this.#sqes = new Uint32Array(sqes);
    this.#cqWords = new Uint32Array(cqRing);
    this.#cqRes = new Int32Array(cqRing);
    this.#cqHead = params[20]! / 4;
    this.#cqTail = params[21]! / 4;
    this.#cqMask = this.#cqWords[params[22]! / 4]!;
    this.#cqes = params[25]! / 4;
    this.#tail = this.#sqWords[this.#sqTail]!;
    const addrLen = sockaddr.length;
    this.#addrLen = addrLen;
    // An ArrayBuffer of its own: its memory never moves while the kernel
    // may read a slot's address.
    this.#addrs = new Uint8Array(new ArrayBuffer(slots * 32));
    for (let i = 0; i < slots; i++) this.#addrs.set(sockaddr, i * 32);
    const base = BigInt(
      Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#addrs)),
    );
    this.#addrLo = Number(base & 0xffffffffn);
    this.#addrHi = Number(base >> 32n);
    const family = sockaddr[0]! | (sockaddr[1]! << 8);
    this.#domain = family;
    this.#socks = new Int32Array(slots).fill(-1);
    this.#slotAt = new Int32Array(slots).fill(-1);
    this.#slotStart = new Float64Array(slots);
    this.#free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
    new DataView(this.#pfd.buffer).setInt32(0, fd, true);
    new DataView(this.#pfd.buffer).setInt16(4, POLLIN, true);
  }

  /**
   * A ring for `sockaddr`'s host, or `undefined` where none can run.
   * `control`, a scan's control array, counts the ring's sockets.
   */
  static open(
    c: Libc,
    sockaddr: Uint8Array,
    slots: number,
    control?: Int32Array,
  ): ConnectRing | undefined {
    if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) return undefined;
    if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
      return undefined;
    }
    const params = new Uint32Array(30);
    params[2] = IORING_SETUP_SQPOLL;
    params[4] = SQ_IDLE_MS;
    const pb = new Uint8Array(params.buffer);
    const fd = c.io_uring_setup(SYS_IO_URING_SETUP, slots, pb);
    if (fd < 0) return undefined;
    const maps: Array<[Deno.PointerValue, number]> = [];
    const map = (len: number, off: bigint): ArrayBuffer | undefined => {
      const p = c.mmap(
        null,
        BigInt(len),
        PROT_RW,
        MAP_SHARED_POPULATE,
        fd,
        off,
      );
      if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) {
        return undefined;
      }
      maps.push([p, len]);
      return Deno.UnsafePointerView.getArrayBuffer(p, len);
    };
    const sqLen = params[16]! + params[0]! * 4;
    const cqLen = params[25]! + params[1]! * CQE;
    const single = (params[5]! & IORING_FEAT_SINGLE_MMAP) !== 0;
    const sqRing = map(
      single ? Math.max(sqLen, cqLen) : sqLen,
      IORING_OFF_SQ_RING,
    );
    const cqRing = single ? sqRing : map(cqLen, IORING_OFF_CQ_RING);
    const sqes = map(params[0]! * SQE, IORING_OFF_SQES);
    if (!sqRing || !cqRing || !sqes) {
      for (const [p, len] of maps) c.munmap(p, BigInt(len));
      c.close(fd);
      return undefined;
    }
    const ring = new ConnectRing(
      c,
      fd,
      maps,
      params,
      sqRing,
      cqRing,
      sqes,
      sockaddr,
      slots,
    );
    ring.#count = control;
    return ring;
  }

  #closeSocket(i: number): void {
    this.#c.close(this.#socks[i]!);
    this.#socks[i] = -1;
    if (this.#count) Atomics.sub(this.#count, SOCKETS, 1);
  }

  /** Connects submitted and not yet reaped. */
  get pending(): number {
    return this.#pending;
  }

  /** Slots free for {@linkcode submit}. */
  get free(): number {
    return this.#free.length;
  }

  /** When the oldest connect still in the ring was submitted, or Infinity. */
  oldest(): number {
    let t = Infinity;
    for (let i = 0; i < this.#slotAt.length; i++) {
      if (this.#slotAt[i]! >= 0 && this.#slotStart[i]! < t) {
        t = this.#slotStart[i]!;
      }
    }
    return t;
  }

  #sqe(
    opcode: number,
    fd: number,
    addrLo: number,
    addrHi: number,
    off: number,
    tag: number,
  ): void {
    // Only these words are ever written (the rest stay as the kernel
    // zeroed them), so each use overwrites all that the last one set.
    const w = (this.#tail & this.#sqMask) * (SQE / 4);
    const s = this.#sqes;
    s[w] = opcode;
    s[w + 1] = fd;
    s[w + 2] = off;
    s[w + 4] = addrLo;
    s[w + 5] = addrHi;
    s[w + 8] = tag;
    this.#tail = (this.#tail + 1) >>> 0;
  }

  /**
   * Queues a connect to `port` for the port at index `at`, submitted at
   * `now`; false when no slot is free or no socket could be made (the
   * caller connects it).
   */
  submit(at: number, port: number, now = performance.now()): boolean {
    if (this.#closed) return false;
    const i = this.#free.pop();
    if (i === undefined) return false;
    let fd = this.#socks[i]!;
    if (fd < 0) {
      fd = this.#c.socket(this.#domain, SOCK_STREAM_CLOEXEC, 0);
      if (fd >= 0 && this.#count) Atomics.add(this.#count, SOCKETS, 1);
      if (fd < 0) {
        this.#free.push(i);
        return false;
      }
      this.#socks[i] = fd;
    }
    const a = this.#addrs, o = i * 32;
    a[o + 2] = port >> 8;
    a[o + 3] = port & 0xff;
    const lo = this.#addrLo + o;
    this.#sqe(
      IORING_OP_CONNECT,
      fd,
      lo >>> 0,
      this.#addrHi + (lo > 0xffffffff ? 1 : 0),
      this.#addrLen,
      i,
    );
    this.#slotAt[i] = at;
    this.#slotStart[i] = now;
    this.#pending++;
    return true;
  }

  /** Publishes what was queued and wakes the kernel thread if it sleeps. */
  flush(): void {
    if (this.#closed) return; // its memory is unmapped: never touch it
    Atomics.store(this.#sqWords, this.#sqTail, this.#tail);
    if (
      (Atomics.load(this.#sqWords, this.#sqFlags) & IORING_SQ_NEED_WAKEUP) !== 0
    ) {
      this.#c.io_uring_enter(
        SYS_IO_URING_ENTER,
        this.#fd,
        0,
        0,
        IORING_ENTER_SQ_WAKEUP,
        null,
        0n,
      );
    }
  }

  /** Hands every finished connect to `done`; returns how many. */
  reap(done: RingResult): number {
    if (this.#closed) return 0;
    const cq = this.#cqWords;
    let head = cq[this.#cqHead]!;
    const tail = Atomics.load(cq, this.#cqTail);
    if (head === tail) return 0;
    const now = performance.now();
    let n = 0;
    const res = this.#cqRes;
    for (; head !== tail; head = (head + 1) >>> 0) {
      const w = this.#cqes + (head & this.#cqMask) * (CQE / 4);
      const i = cq[w]!; // user_data: the slot
      const r = res[w + 2]!;
      const at = this.#slotAt[i]!;
      this.#slotAt[i] = -1;
      this.#pending--;
      n++;
      if (r !== -ECONNREFUSED) {
        // Connected, or in some other state: this socket is done.
        this.#closeSocket(i);
      }
      this.#free.push(i);
      done(
        at,
        r === 0 ? "open" : r === -ECONNREFUSED ? "closed" : "retry",
        this.#slotStart[i]!,
        now,
      );
    }
    Atomics.store(cq, this.#cqHead, head);
    return n;
  }

  /**
   * Collects what finished, hands every connect still in the ring to
   * `done` as "retry" and closes the ring: closing makes the kernel cancel
   * the rest, and nothing waits for the kernel thread (which may be what
   * is late: a loaded machine starves it).
   */
  retire(done: RingResult): void {
    if (this.#closed) return;
    this.reap(done);
    const now = performance.now();
    for (let i = 0; i < this.#slotAt.length; i++) {
      const at = this.#slotAt[i]!;
      if (at >= 0) {
        this.#slotAt[i] = -1;
        this.#pending--;
        done(at, "retry", this.#slotStart[i]!, now);
      }
    }
    this.close();
  }

  /** Waits up to `ms` for a connect to finish (nothing else to do). */
  wait(ms: number): void {
    if (this.#closed || this.#pending === 0) return;
    if (
      this.#cqWords[this.#cqHead] !== Atomics.load(this.#cqWords, this.#cqTail)
    ) {
      return;
    }
    this.#c.poll(this.#pfd, 1n, ms);
  }

  /**
   * Closes the ring (the kernel cancels what is still in it) and every
   * slot's socket. Ports still pending are the caller's to redo.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#c.close(this.#fd);
    for (const [p, len] of this.#maps) this.#c.munmap(p, BigInt(len));
    for (let i = 0; i < this.#socks.length; i++) {
      if (this.#socks[i]! >= 0) this.#closeSocket(i);
    }
  }
}
