/**
 * Sockets this process creates itself through libc, for what `Deno.connect`
 * cannot do: bind a source address or port before connecting (`-s`, `-p`),
 * set keepalive timers (`--keepalive=IDLE,INTVL,CNT`), and connected UDP
 * sockets that report ICMP "port unreachable" (`-zu`).
 *
 * Every descriptor here is created by {@linkcode tcpConnectFrom} or
 * {@linkcode udpPortState} (`socket(..., SOCK_NONBLOCK | SOCK_CLOEXEC)`), so
 * nothing has to be found: the number is ours from birth to `close`. I/O
 * runs on the main thread (`recv`/`send` never block: the socket is
 * non-blocking); waiting for readiness is a `poll` call made with FFI's
 * `nonblocking` option, which runs it on a thread of the runtime's blocking
 * pool and resolves a promise. A wait is woken by `shutdown`, which is how
 * {@linkcode FdConn.close} cancels pending reads before closing the number.
 *
 * Linux only, and only with `--allow-ffi`; {@linkcode sourceSocketsAvailable}
 * says whether it can run, and callers fail with a one-line error otherwise.
 *
 * @module
 */
import { ffiAllowed } from "./libc.ts";

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
  waitReady: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

type Sym = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Sym | null | undefined;
let errnoView: Deno.UnsafePointerView | undefined;

function sym(): Sym | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (!ffiAllowed()) return lib;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    const p = lib.__errno_location();
    if (p !== null) errnoView = new Deno.UnsafePointerView(p);
  } catch {
    lib = null;
  }
  return lib;
}

/**
 * Why sockets of our own cannot be made here, or `undefined` when they can
 * (Linux with `--allow-ffi`).
 */
export function sourceSocketsUnavailable(): string | undefined {
  if (Deno.build.os !== "linux") {
    return `needs Linux (this is ${Deno.build.os})`;
  }
  if (!ffiAllowed()) return "needs --allow-ffi";
  if (sym() === null) return "cannot open libc.so.6";
  return undefined;
}

/** Whether {@linkcode tcpConnectFrom} and {@linkcode udpPortState} can run. */
export function sourceSocketsAvailable(): boolean {
  return sourceSocketsUnavailable() === undefined;
}

const AF_INET = 2, AF_INET6 = 10;
const SOCK_STREAM = 1, SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_REUSEADDR = 2, SO_ERROR = 4, SO_KEEPALIVE = 9;
const IPPROTO_TCP = 6, TCP_NODELAY = 1;
const TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5, TCP_KEEPCNT = 6;
const SHUT_WR = 1, SHUT_RDWR = 2;
const MSG_NOSIGNAL = 0x4000;
const EINTR = 4, EAGAIN = 11, EINPROGRESS = 115, ECONNREFUSED = 111;
const POLLIN = 1, POLLOUT = 4;

function errno(): number {
  return errnoView?.getInt32() ?? 0;
}

/** The error Deno's own socket calls throw for `code`, for errors.ts to phrase. */
function osError(c: Sym, code: number): Error {
  const p = c.strerror(code);
  const text = `${
    p === null ? `error ${code}` : new Deno.UnsafePointerView(p).getCString()
  } (os error ${code})`;
  switch (code) {
    case 32:
      return new Deno.errors.BrokenPipe(text);
    case 98:
      return new Deno.errors.AddrInUse(text);
    case 99:
      return new Deno.errors.AddrNotAvailable(text);
    case 101:
      return new Deno.errors.NetworkUnreachable(text);
    case 104:
      return new Deno.errors.ConnectionReset(text);
    case 107:
      return new Deno.errors.NotConnected(text);
    case 110:
      return new Deno.errors.TimedOut(text);
    case ECONNREFUSED:
      return new Deno.errors.ConnectionRefused(text);
    case 13:
    case 1:
      return new Deno.errors.PermissionDenied(text);
    default:
      return new Error(text);
  }
}

/**
 * Encodes an IP literal and port as a `sockaddr_in` / `sockaddr_in6`.
 *
 * @example Usage
 * ```ts
 * import { sockaddr } from "./socket_fd.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals([...sockaddr("127.0.0.1", 8080).subarray(0, 8)], [2, 0, 0x1f, 0x90, 127, 0, 0, 1]);
 * assertEquals(sockaddr("::1", 80)[23], 1);
 * assertEquals(sockaddr("::ffff:10.0.0.7", 1)[20], 10);
 * ```
 */
export function sockaddr(ip: string, port: number): Uint8Array {
  const v4 = parseIPv4(ip);
  if (v4) {
    const sa = new Uint8Array(16);
    sa[0] = AF_INET;
    sa[2] = port >> 8;
    sa[3] = port & 0xff;
    sa.set(v4, 4);
    return sa;
  }
  const v6 = parseIPv6(ip);
  if (!v6) throw new TypeError(`not an IP address: ${ip}`);
  const sa = new Uint8Array(28);
  sa[0] = AF_INET6;
  sa[2] = port >> 8;
  sa[3] = port & 0xff;
  sa.set(v6, 8);
  return sa;
}

function parseIPv4(ip: string): Uint8Array | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i]!) || Number(parts[i]) > 255) {
      return undefined;
    }
    out[i] = Number(parts[i]);
  }
  return out;
}

function parseIPv6(ip: string): Uint8Array | undefined {
  const zone = ip.indexOf("%");
  if (zone >= 0) ip = ip.slice(0, zone);
  const halves = ip.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const words: number[] = [];
  const push = (list: string[], last: boolean) => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i]!;
      if (last && i === list.length - 1 && g.includes(".")) {
        const v4 = parseIPv4(g);
        if (!v4) return false;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) words.push(parseInt(g, 16));
      else return false;
    }
    return true;
  };
  if (!push(head, halves.length === 1)) return undefined;
  const headLen = words.length;
  if (!push(tail, true)) return undefined;
  const missing = 8 - words.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [
    ...words.slice(0, headLen),
    ...new Array(halves.length === 2 ? missing : 0).fill(0),
    ...words.slice(headLen),
  ];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

function addrOf(bytes: Uint8Array): Deno.NetAddr {
  const family = bytes[0]! | (bytes[1]! << 8);
  const port = (bytes[2]! << 8) | bytes[3]!;
  if (family === AF_INET) {
    return {
      transport: "tcp",
      hostname: bytes.subarray(4, 8).join("."),
      port,
    };
  }
  const b = bytes.subarray(8, 24);
  const words = Array.from(
    { length: 8 },
    (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!),
  );
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return {
      transport: "tcp",
      hostname: `::ffff:${b.subarray(12).join(".")}`,
      port,
    };
  }
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  return {
    transport: "tcp",
    hostname: best < 0
      ? hex(words)
      : `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`,
    port,
  };
}

function intOpt(c: Sym, fd: number, level: number, name: number, v: number) {
  const val = new Int32Array([v]);
  if (c.setsockopt(fd, level, name, new Uint8Array(val.buffer), 4) !== 0) {
    throw osError(c, errno());
  }
}

function getError(c: Sym, fd: number): number {
  const val = new Int32Array(1);
  const len = new Uint32Array([4]);
  if (
    c.getsockopt(
      fd,
      SOL_SOCKET,
      SO_ERROR,
      new Uint8Array(val.buffer),
      new Uint8Array(len.buffer),
    ) !== 0
  ) return errno();
  return val[0]!;
}

/**
 * Waits (off the main thread) until `fd` is ready for `events`, for at most
 * `ms` (-1: no limit); true when ready, false on timeout.
 */
async function ready(
  c: Sym,
  fd: number,
  events: number,
  ms: number,
): Promise<boolean> {
  const set = new Uint8Array(8);
  const v = new DataView(set.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  const n = await c.waitReady(set, 1n, ms);
  return n > 0;
}

/** TCP keepalive timers in seconds (`--keepalive=IDLE,INTVL,CNT`). */
export interface KeepaliveTimers {
  /** Idle seconds before the first probe (`TCP_KEEPIDLE`). */
  idle?: number;
  /** Seconds between probes (`TCP_KEEPINTVL`). */
  interval?: number;
  /** Unanswered probes before the connection is dropped (`TCP_KEEPCNT`). */
  count?: number;
}

/** Options for {@linkcode tcpConnectFrom}. */
export interface ConnectFromOptions {
  /** The peer's IP address (a literal). */
  remoteIp: string;
  /** The peer's port. */
  remotePort: number;
  /** The local IP address to bind (a literal of the peer's family); any when omitted. */
  localIp?: string;
  /** The local port to bind; the system picks one when omitted or 0. */
  localPort?: number;
  /** Give up connecting after this many ms. */
  timeout?: number;
  /** Abort the attempt (checked every 100 ms while connecting). */
  signal?: AbortSignal;
  /** Turn keepalive on, with these timers where given. */
  keepalive?: KeepaliveTimers;
}

/**
 * A TCP connection on a socket of our own: the same read/write/closeWrite/
 * close contract as a `Deno.TcpConn`, so the relay (tcp/pipe.ts) runs on it
 * unchanged.
 */
export class FdConn {
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  #c: Sym;
  #fd: number;
  #pending = 0;
  #closed = false;
  #released = false;

  constructor(c: Sym, fd: number) {
    this.#c = c;
    this.#fd = fd;
    const buf = new Uint8Array(128);
    const len = new Uint32Array([buf.length]);
    c.getsockname(fd, buf, new Uint8Array(len.buffer));
    this.localAddr = addrOf(buf);
    len[0] = buf.length;
    c.getpeername(fd, buf, new Uint8Array(len.buffer));
    this.remoteAddr = addrOf(buf);
  }

  /** Reads like `Deno.Conn.read`: bytes, or `null` at the peer's FIN. */
  async read(p: Uint8Array): Promise<number | null> {
    while (true) {
      if (this.#closed) throw new Deno.errors.BadResource("connection closed");
      const n = Number(this.#c.recv(this.#fd, p, BigInt(p.length), 0));
      if (n > 0) return n;
      if (n === 0) return p.length === 0 ? 0 : null;
      const e = errno();
      if (e === EINTR) continue;
      if (e !== EAGAIN) throw osError(this.#c, e);
      await this.#wait(POLLIN);
    }
  }

  /** Writes like `Deno.Conn.write` (possibly partially). */
  async write(p: Uint8Array): Promise<number> {
    while (true) {
      if (this.#closed) throw new Deno.errors.BadResource("connection closed");
      const n = Number(
        this.#c.send(this.#fd, p, BigInt(p.length), MSG_NOSIGNAL),
      );
      if (n >= 0) return n;
      const e = errno();
      if (e === EINTR) continue;
      if (e !== EAGAIN) throw osError(this.#c, e);
      await this.#wait(POLLOUT);
    }
  }

  /** Sends FIN (`shutdown(SHUT_WR)`). */
  closeWrite(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("connection closed"));
    }
    if (this.#c.shutdown(this.#fd, SHUT_WR) !== 0) {
      return Promise.reject(osError(this.#c, errno()));
    }
    return Promise.resolve();
  }

  /** Nagle off (`TCP_NODELAY`). */
  setNoDelay(on = true): void {
    if (!this.#closed) {
      intOpt(this.#c, this.#fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
    }
  }

  /** Keepalive on or off, with optional timers. */
  setKeepAlive(on = true, timers: KeepaliveTimers = {}): void {
    if (this.#closed) return;
    setKeepalive(this.#c, this.#fd, on, timers);
  }

  /**
   * Closes the socket. Reads or writes still waiting are woken first (by
   * `shutdown`), and the number is closed once they have returned, so it
   * cannot be reused under them. With nothing waiting the number is simply
   * closed, like Deno's own close, and duplicates (a pump thread's) live on.
   */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("connection closed");
    this.#closed = true;
    if (this.#pending > 0) this.#c.shutdown(this.#fd, SHUT_RDWR);
    else this.#release();
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.close();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#c.close(this.#fd);
  }

  async #wait(events: number): Promise<void> {
    this.#pending++;
    try {
      await ready(this.#c, this.#fd, events, -1);
    } finally {
      this.#pending--;
      if (this.#closed && this.#pending === 0) this.#release();
    }
  }
}

function setKeepalive(
  c: Sym,
  fd: number,
  on: boolean,
  timers: KeepaliveTimers,
): void {
  intOpt(c, fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
  if (!on) return;
  if (timers.idle !== undefined) {
    intOpt(c, fd, IPPROTO_TCP, TCP_KEEPIDLE, timers.idle);
  }
  if (timers.interval !== undefined) {
    intOpt(c, fd, IPPROTO_TCP, TCP_KEEPINTVL, timers.interval);
  }
  if (timers.count !== undefined) {
    intOpt(c, fd, IPPROTO_TCP, TCP_KEEPCNT, timers.count);
  }
}

function familyOf(ip: string): number {
  return parseIPv4(ip) ? AF_INET : AF_INET6;
}

/**
 * Connects to `remoteIp:remotePort` from `localIp:localPort` on a socket of
 * our own (`socket`, `bind`, non-blocking `connect`). Throws Deno's error
 * classes (`AddrInUse`, `ConnectionRefused`, `TimedOut`, ...) so callers
 * phrase them as for `Deno.connect`.
 *
 * @example Usage
 * ```ts ignore
 * import { tcpConnectFrom } from "./socket_fd.ts";
 * const conn = await tcpConnectFrom({ remoteIp: "127.0.0.1", remotePort: 7, localPort: 40000 });
 * conn.close();
 * ```
 */
export async function tcpConnectFrom(
  options: ConnectFromOptions,
): Promise<FdConn> {
  const c = sym();
  if (c === null) {
    throw new Error(
      `cannot bind a source address or port: ${sourceSocketsUnavailable()}`,
    );
  }
  const family = familyOf(options.remoteIp);
  const local = options.localIp ?? (family === AF_INET ? "0.0.0.0" : "::");
  if (familyOf(local) !== family) {
    throw new Error(
      `source ${local} and destination ${options.remoteIp} are of different address families`,
    );
  }
  const fd = c.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw osError(c, errno());
  let ok = false;
  try {
    // nc sets SO_REUSEADDR before binding a source port; so does Deno's listen.
    intOpt(c, fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (options.keepalive) setKeepalive(c, fd, true, options.keepalive);
    if (options.localIp !== undefined || options.localPort) {
      const sa = sockaddr(local, options.localPort ?? 0);
      if (c.bind(fd, sa, sa.length) !== 0) {
        throw osError(c, errno());
      }
    }
    const sa = sockaddr(options.remoteIp, options.remotePort);
    if (c.connect(fd, sa, sa.length) !== 0) {
      const e = errno();
      if (e !== EINPROGRESS) throw osError(c, e);
      const deadline = options.timeout === undefined
        ? Infinity
        : performance.now() + options.timeout;
      while (true) {
        if (options.signal?.aborted) {
          throw options.signal.reason ??
            new DOMException("aborted", "AbortError");
        }
        const left = deadline - performance.now();
        if (left <= 0) {
          throw new DOMException("connect timed out", "TimeoutError");
        }
        if (await ready(c, fd, POLLOUT, Math.ceil(Math.min(left, 100)))) {
          break;
        }
      }
      const err = getError(c, fd);
      if (err !== 0) throw osError(c, err);
    }
    ok = true;
    return new FdConn(c, fd);
  } finally {
    if (!ok) c.close(fd);
  }
}

/**
 * The UDP port test of `nc -zu`: a connected UDP socket sends one byte and
 * listens for the ICMP "port unreachable" the kernel reports as
 * `ECONNREFUSED`. `closed` when it comes within `ms`; `open` otherwise
 * (nothing came back: open, or filtered — UDP cannot tell those apart).
 */
export async function udpPortState(
  ip: string,
  port: number,
  ms: number,
): Promise<"open" | "closed"> {
  const c = sym();
  if (c === null) {
    throw new Error(`cannot scan UDP ports: ${sourceSocketsUnavailable()}`);
  }
  const fd = c.socket(
    familyOf(ip),
    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) throw osError(c, errno());
  try {
    const sa = sockaddr(ip, port);
    if (c.connect(fd, sa, sa.length) !== 0) throw osError(c, errno());
    const probe = new Uint8Array([0x58]); // "X"
    const buf = new Uint8Array(1);
    const deadline = performance.now() + ms;
    // Several sends, spread over the wait: the refusal of one shows as the
    // error of a later call.
    while (true) {
      if (Number(c.send(fd, probe, 1n, MSG_NOSIGNAL)) < 0) {
        const e = errno();
        if (e === ECONNREFUSED) return "closed";
        if (e !== EAGAIN && e !== EINTR) throw osError(c, e);
      }
      const left = deadline - performance.now();
      if (left <= 0) return "open";
      if (await ready(c, fd, POLLIN, Math.ceil(Math.min(left, 100)))) {
        if (Number(c.recv(fd, buf, 1n, 0)) < 0 && errno() === ECONNREFUSED) {
          return "closed";
        }
        return "open"; // an answer: something is there
      }
    }
  } finally {
    c.close(fd);
  }
}

const AF_UNIX = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A `sockaddr_un` for `path` (`"\0name"`: abstract) and its length. */
function sockaddrUn(path: string): [Uint8Array, number] {
  const bytes = encoder.encode(path);
  const abstract = path.startsWith("\0");
  if (bytes.length + (abstract ? 0 : 1) > 108) {
    throw new Error(`Unix socket path too long (108 bytes at most): ${path}`);
  }
  const sa = new Uint8Array(110);
  sa[0] = AF_UNIX;
  sa.set(bytes, 2);
  return [sa, 2 + bytes.length + (abstract ? 0 : 1)];
}

function unPath(sa: Uint8Array, len: number): string {
  if (len <= 2) return "";
  if (sa[2] === 0) return "\0" + decoder.decode(sa.subarray(3, len));
  const end = sa.indexOf(0, 2);
  return decoder.decode(sa.subarray(2, end < 0 || end > len ? len : end));
}

/**
 * A Unix datagram socket of our own, bound to a path (`-u -U`). Deno's
 * `"unixpacket"` socket cannot send while a receive is pending ("Busy"),
 * which a relay that prints replies while it sends needs; this one can.
 * The bound file is removed on close (abstract names have none).
 */
export class UnixDatagramSocket implements Disposable {
  readonly path: string;
  #c: Sym;
  #fd: number;
  #closed = false;
  #waits = 0;
  #released = false;
  #from = new Uint8Array(110);
  #fromLen = new Uint32Array(1);

  /** Binds `path`; throws Deno's error classes (`AddrInUse`, ...). */
  constructor(path: string) {
    const c = sym();
    if (c === null) {
      throw new Error(
        `cannot open a Unix datagram socket: ${sourceSocketsUnavailable()}`,
      );
    }
    this.#c = c;
    this.path = path;
    const [sa, len] = sockaddrUn(path);
    const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw osError(c, errno());
    if (c.bind(fd, sa, len) !== 0) {
      const e = errno();
      c.close(fd);
      throw osError(c, e);
    }
    this.#fd = fd;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one datagram to the socket at `to`. */
  async send(data: Uint8Array, to: string): Promise<void> {
    const [sa, len] = sockaddrUn(to);
    while (true) {
      if (this.#closed) throw new Deno.errors.BadResource("socket closed");
      const n = Number(
        this.#c.sendto(this.#fd, data, BigInt(data.length), 0, sa, len),
      );
      if (n >= 0) return;
      const e = errno();
      if (e === EINTR) continue;
      if (e !== EAGAIN) throw osError(this.#c, e);
      await this.#wait(POLLOUT);
    }
  }

  /**
   * The next datagram (a view of `buf`) and its sender's path ("" when the
   * sender is unbound); `null` once closed.
   */
  async receive(
    buf: Uint8Array,
  ): Promise<{ data: Uint8Array; from: string } | null> {
    while (!this.#closed) {
      this.#fromLen[0] = this.#from.length;
      const n = Number(
        this.#c.recvfrom(
          this.#fd,
          buf,
          BigInt(buf.length),
          0,
          this.#from,
          new Uint8Array(this.#fromLen.buffer),
        ),
      );
      if (n >= 0) {
        return {
          data: buf.subarray(0, n),
          from: unPath(this.#from, this.#fromLen[0]!),
        };
      }
      const e = errno();
      if (e !== EAGAIN && e !== EINTR) throw osError(this.#c, e);
      await this.#wait(POLLIN);
    }
    return null;
  }

  /** Closes the socket (waits end within 200 ms) and removes its file. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.path.startsWith("\0")) {
      try {
        Deno.removeSync(this.path);
      } catch { /* gone already */ }
    }
    if (this.#waits === 0) this.#release();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#c.close(this.#fd);
  }

  // Waits in slices so close() is noticed without touching a descriptor
  // another thread is polling.
  async #wait(events: number): Promise<void> {
    this.#waits++;
    try {
      while (!this.#closed) {
        if (await ready(this.#c, this.#fd, events, 200)) return;
      }
    } finally {
      this.#waits--;
      if (this.#closed && this.#waits === 0) this.#release();
    }
  }
}
