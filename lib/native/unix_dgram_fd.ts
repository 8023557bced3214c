/**
 * Unix datagram sockets of our own (`-u -U`), through libc: Deno's
 * `"unixpacket"` socket refuses to send while a receive is pending.
 *
 * @module
 */
import {
  EAGAIN,
  EINTR,
  errno,
  osError,
  POLLIN,
  POLLOUT,
  pollSet,
  ready,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  sourceSocketsUnavailable,
  type Sym,
  sym,
} from "./_sockets.ts";

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
  #fromLenBytes = new Uint8Array(this.#fromLen.buffer);
  #readSet: Uint8Array;
  #writeSet: Uint8Array;

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
    this.#readSet = pollSet(fd, POLLIN);
    this.#writeSet = pollSet(fd, POLLOUT);
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
          this.#fromLenBytes,
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
        const set = events === POLLIN ? this.#readSet : this.#writeSet;
        if (await ready(this.#c, this.#fd, events, 200, set)) return;
      }
    } finally {
      this.#waits--;
      if (this.#closed && this.#waits === 0) this.#release();
    }
  }
}
