/**
 * The libc calls behind the sockets denocat makes itself (socket_fd.ts,
 * unix_dgram_fd.ts): bindings opened once, errno, Deno-style errors, socket
 * addresses, and the readiness wait (`poll` with FFI's `nonblocking`, run
 * on a thread of the runtime's blocking pool).
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  ECONNREFUSED,
  EINPROGRESS,
  EINTR,
  ffiAllowed,
  IPPROTO_TCP,
  POLLIN,
  POLLOUT,
  SHUT_RDWR,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  sockaddrOf,
  sockaddrToAddr,
  SOL_SOCKET,
} from "./libc.ts";

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

export type Sym = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Sym | null | undefined;
let errnoView: Deno.UnsafePointerView | undefined;

export function sym(): Sym | null {
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

export {
  AF_INET,
  AF_INET6,
  EAGAIN,
  EINTR,
  IPPROTO_TCP,
  POLLIN,
  POLLOUT,
  SHUT_RDWR,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
};
export const SO_ERROR = 4, SO_KEEPALIVE = 9;
export const TCP_NODELAY = 1;
export const TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5, TCP_KEEPCNT = 6;
export const SHUT_WR = 1;
export const MSG_NOSIGNAL = 0x4000;
export { ECONNREFUSED, EINPROGRESS };

export function errno(): number {
  return errnoView?.getInt32() ?? 0;
}

/** The error Deno's own socket calls throw for `code`, for errors.ts to phrase. */
export function osError(c: Sym, code: number): Error {
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
  const sa = sockaddrOf(ip, port);
  if (!sa) throw new TypeError(`not an IP address: ${ip}`);
  return sa;
}

/** The address in a `sockaddr_in`/`sockaddr_in6` our socket reported. */
export function addrOf(bytes: Uint8Array): Deno.NetAddr {
  return sockaddrToAddr(bytes)!;
}

export function intOpt(
  c: Sym,
  fd: number,
  level: number,
  name: number,
  v: number,
) {
  const val = new Int32Array([v]);
  if (c.setsockopt(fd, level, name, new Uint8Array(val.buffer), 4) !== 0) {
    throw osError(c, errno());
  }
}

export function getError(c: Sym, fd: number): number {
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
export function ready(
  c: Sym,
  fd: number,
  events: number,
  ms: number,
  set: Uint8Array = pollSet(fd, events),
): Promise<boolean> {
  return c.waitReady(set, 1n, ms).then((n) => n > 0);
}

/**
 * A one-entry `struct pollfd` for `fd` and `events`, made once and reused
 * by a socket's waits (`poll` rewrites only its `revents`).
 */
export function pollSet(fd: number, events: number): Uint8Array {
  const set = new Uint8Array(8);
  const v = new DataView(set.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  return set;
}
