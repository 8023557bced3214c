/**
 * The C library through Deno FFI, for the Linux fast paths (pipe sizing and
 * the threaded byte pump). Opened once per thread on first use; `null` where
 * the platform is not Linux or `--allow-ffi` was not granted, and every
 * caller then keeps to the portable Deno APIs.
 *
 * @module
 */

const SYMBOLS = {
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  dup: { parameters: ["i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The libc functions denocat calls. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Descriptors the socket searches below look at: 0 to 4095. */
const FD_SCAN = 4096;

/**
 * The one descriptor below 4096 for which `test` holds; `undefined` when
 * none or several do. This is how the fast paths find a socket Deno opened,
 * whose descriptor Deno does not expose.
 */
export function uniqueFd(test: (fd: number) => boolean): number | undefined {
  let found: number | undefined;
  for (let fd = 0; fd < FD_SCAN; fd++) {
    if (!test(fd)) continue;
    if (found !== undefined) return undefined;
    found = fd;
  }
  return found;
}

const saBuf = new Uint8Array(128);
const lenBuf = new Uint32Array(1);
const lenBytes = new Uint8Array(lenBuf.buffer);
const optBuf = new Int32Array(1);
const optBytes = new Uint8Array(optBuf.buffer);

/** The local (`getsockname`) or peer (`getpeername`) port of `fd`; -1 when it has none. */
export function socketPort(
  c: Libc,
  fd: number,
  side: "local" | "peer",
): number {
  lenBuf[0] = saBuf.length;
  const get = side === "local" ? c.getsockname : c.getpeername;
  if (get(fd, saBuf, lenBytes) !== 0) return -1;
  return sockaddrToAddr(saBuf)?.port ?? -1;
}

/** An integer `SOL_SOCKET` option of `fd` (`SO_TYPE` 3, `SO_ACCEPTCONN` 30); -1 on failure. */
export function socketOption(c: Libc, fd: number, name: number): number {
  lenBuf[0] = 4;
  return c.getsockopt(fd, 1, /* SOL_SOCKET */ name, optBytes, lenBytes) === 0
    ? optBuf[0]!
    : -1;
}

/**
 * The one socket of this process of `type` (1 stream, 2 datagram) bound to
 * `port`, listening when `listening` (stream sockets); see {@linkcode uniqueFd}.
 */
export function findBoundSocket(
  c: Libc,
  type: 1 | 2,
  port: number,
  listening: boolean,
): number | undefined {
  return uniqueFd((fd) =>
    socketPort(c, fd, "local") === port &&
    socketOption(c, fd, 3 /* SO_TYPE */) === type &&
    (socketOption(c, fd, 30 /* SO_ACCEPTCONN */) === 1) === listening
  );
}

/** errno values the fast paths act on. */
export const EINTR = 4;
/** Resource temporarily unavailable (non-blocking descriptor). */
export const EAGAIN = 11;
/** `poll` event bits. */
export const POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 16;
/** `shutdown` how. */
export const SHUT_RDWR = 2;
/** Broken pipe, connection reset, too many open files (process, system). */
export const EPIPE = 32, ECONNRESET = 104, EMFILE = 24, ENFILE = 23;

let lib: Libc | null | undefined;

/**
 * Whether the FFI fast paths can run here (Linux, `--allow-ffi` granted),
 * without opening libc yet.
 */
export function ffiAllowed(): boolean {
  return Deno.build.os === "linux" &&
    Deno.permissions.querySync({ name: "ffi" }).state === "granted";
}

/** libc's symbols, or `null` when FFI is unavailable here. */
export function libc(): Libc | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (!ffiAllowed()) return lib;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch {
    lib = null;
  }
  return lib;
}

/**
 * A reader of the calling thread's `errno`. Take it once per thread: the
 * read itself then allocates nothing, so no garbage collection can run
 * (and clobber errno) between a failed call and the read.
 */
export function errnoReader(c: Libc): () => number {
  const p = c.__errno_location();
  if (p === null) return () => 0;
  const view = new Deno.UnsafePointerView(p);
  return () => view.getInt32();
}

/** The C library's text for an errno value ("Connection reset by peer"). */
export function strerror(c: Libc, code: number): string {
  const p = c.strerror(code);
  return p === null
    ? `error ${code}`
    : new Deno.UnsafePointerView(p).getCString();
}

/**
 * The error Deno's own I/O would throw for `code`, so callers describe it
 * the same way (errors.ts).
 */
export function osError(c: Libc | null, code: number, op?: string): Error {
  const text = `${c ? strerror(c, code) : "error"} (os error ${code})`;
  switch (code) {
    case EPIPE:
      return new Deno.errors.BrokenPipe(text);
    case ECONNRESET:
      return new Deno.errors.ConnectionReset(text);
    case 107:
      return new Deno.errors.NotConnected(text);
    case 110:
      return new Deno.errors.TimedOut(text);
    default:
      return new Error(op ? `${op}: ${text}` : text);
  }
}

/**
 * The address in a `sockaddr_in`/`sockaddr_in6` as Deno prints it
 * (`127.0.0.1`, `::1`, `::ffff:10.0.0.1`), or `undefined` for another family.
 *
 * @example Usage
 * ```ts
 * import { sockaddrToAddr } from "./libc.ts";
 * import { assertEquals } from "../_assert.ts";
 * const v4 = new Uint8Array(16);
 * v4.set([2, 0, 0x1f, 0x90, 127, 0, 0, 1]);
 * assertEquals(sockaddrToAddr(v4), { transport: "tcp", hostname: "127.0.0.1", port: 8080 });
 * const v6 = new Uint8Array(28);
 * v6.set([10, 0, 0, 80]);
 * v6[23] = 1;
 * assertEquals(sockaddrToAddr(v6)?.hostname, "::1");
 * v6.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7], 8);
 * assertEquals(sockaddrToAddr(v6)?.hostname, "::ffff:10.0.0.7");
 * v6.set([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], 8);
 * assertEquals(sockaddrToAddr(v6)?.hostname, "2001:db8::1:0:0:1");
 * ```
 */
export function sockaddrToAddr(sa: Uint8Array): Deno.NetAddr | undefined {
  const family = sa[0]! | (sa[1]! << 8);
  const port = (sa[2]! << 8) | sa[3]!;
  if (family === 2) {
    return { transport: "tcp", hostname: sa.subarray(4, 8).join("."), port };
  }
  if (family !== 10) return undefined;
  const b = sa.subarray(8, 24);
  const groups = Array.from(
    { length: 8 },
    (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!,
  );
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return {
      transport: "tcp",
      hostname: `::ffff:${b.subarray(12).join(".")}`,
      port,
    };
  }
  // RFC 5952: the longest run of two or more zero groups becomes "::".
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  const hostname = best < 0
    ? hex(groups)
    : `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
  return { transport: "tcp", hostname, port };
}
