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
import { sockaddrOf } from "./libc.ts";
import {
  addrOf,
  AF_INET,
  AF_INET6,
  EAGAIN,
  ECONNREFUSED,
  EINPROGRESS,
  EINTR,
  errno,
  getError,
  intOpt,
  IPPROTO_TCP,
  MSG_NOSIGNAL,
  osError,
  POLLIN,
  POLLOUT,
  pollSet,
  ready,
  SHUT_RDWR,
  SHUT_WR,
  SO_KEEPALIVE,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  sockaddr,
  SOL_SOCKET,
  sourceSocketsUnavailable,
  type Sym,
  sym,
  TCP_KEEPCNT,
  TCP_KEEPIDLE,
  TCP_KEEPINTVL,
  TCP_NODELAY,
} from "./_sockets.ts";

export {
  sockaddr,
  sourceSocketsAvailable,
  sourceSocketsUnavailable,
} from "./_sockets.ts";

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
  #readSet: Uint8Array;
  #writeSet: Uint8Array;
  #closed = false;
  #released = false;

  constructor(c: Sym, fd: number) {
    this.#c = c;
    this.#fd = fd;
    this.#readSet = pollSet(fd, POLLIN);
    this.#writeSet = pollSet(fd, POLLOUT);
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
      await ready(
        this.#c,
        this.#fd,
        events,
        -1,
        events === POLLIN ? this.#readSet : this.#writeSet,
      );
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
  return sockaddrOf(ip, 0)?.[0] === AF_INET ? AF_INET : AF_INET6;
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
