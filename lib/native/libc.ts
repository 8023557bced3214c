/**
 * The C library through Deno FFI, for the Linux fast paths (pipe sizing,
 * the threaded byte pump, the echo engines). Opened once per thread on
 * first use; `null` where the platform is not Linux or `--allow-ffi` was
 * not granted, and every caller then keeps to the portable Deno APIs.
 *
 * Every descriptor made through these bindings is close-on-exec
 * (`F_DUPFD_CLOEXEC`, `SOCK_CLOEXEC`, `EPOLL_CLOEXEC`; `opendir` sets it
 * itself), so no child process ever inherits one.
 *
 * @module
 */

const SYMBOLS = {
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
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
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  mmap: {
    parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "pointer",
  },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  // syscall(2) for io_uring (no libc wrapper): one typed alias per call.
  io_uring_setup: {
    name: "syscall",
    parameters: ["i64", "u32", "buffer"],
    result: "i32",
  },
  io_uring_enter: {
    name: "syscall",
    parameters: ["i64", "i32", "u32", "u32", "u32", "pointer", "usize"],
    result: "i32",
  },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The libc functions denocat calls. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** `fcntl` command: duplicate to the lowest free number >= arg, close-on-exec. */
export const F_DUPFD_CLOEXEC = 1030;
/** `socket` type flags and `epoll_create1` flag (the same bit as `O_CLOEXEC`). */
export const SOCK_NONBLOCK = 0o4000,
  SOCK_CLOEXEC = 0o2000000,
  EPOLL_CLOEXEC = 0o2000000;
/** `SOL_SOCKET` options read or set by the fast paths. */
export const SOL_SOCKET = 1,
  SO_REUSEADDR = 2,
  SO_TYPE = 3,
  SO_ACCEPTCONN = 30,
  SO_PROTOCOL = 38;
/** Socket types and protocols. */
export const SOCK_STREAM = 1, SOCK_DGRAM = 2, IPPROTO_TCP = 6, IPPROTO_UDP = 17;
/** Address families. */
export const AF_INET = 2, AF_INET6 = 10;

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
/** Binding: permission denied, address in use, address not available. */
export const EACCES = 13, EADDRINUSE = 98, EADDRNOTAVAIL = 99;
/** Connecting: in progress (non-blocking), refused. */
export const EINPROGRESS = 115, ECONNREFUSED = 111;

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

// Opened as this module loads (where FFI is allowed), not on first use: the
// handle lives as long as the thread, and a library user's test that starts
// an echo server (which binds through libc at once) would otherwise see it
// reported by the resource sanitizer as a leak of that test.
libc();

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
    case EADDRINUSE:
      return new Deno.errors.AddrInUse(text);
    case EADDRNOTAVAIL:
      return new Deno.errors.AddrNotAvailable(text);
    case EACCES:
      return new Deno.errors.PermissionDenied(text);
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

/**
 * The `sockaddr_in`/`sockaddr_in6` for an IP literal and port (the reverse
 * of {@linkcode sockaddrToAddr}); `undefined` when `hostname` is not a
 * literal this parser accepts (a name, or an IPv6 zone such as `%eth0`).
 *
 * @example Usage
 * ```ts
 * import { sockaddrOf, sockaddrToAddr } from "./libc.ts";
 * import { assertEquals } from "../_assert.ts";
 * for (const hostname of ["127.0.0.2", "::1", "::", "::ffff:10.0.0.7", "2001:db8::1:0:0:1"]) {
 *   const sa = sockaddrOf(hostname, 4242)!;
 *   assertEquals(sockaddrToAddr(sa), { transport: "tcp", hostname, port: 4242 });
 * }
 * assertEquals(sockaddrOf("localhost", 1), undefined);
 * assertEquals(sockaddrOf("256.0.0.1", 1), undefined);
 * assertEquals(sockaddrOf("1::2::3", 1), undefined);
 * ```
 */
export function sockaddrOf(
  hostname: string,
  port: number,
): Uint8Array | undefined {
  const v4 = ipv4Bytes(hostname);
  if (v4 !== undefined) {
    const sa = new Uint8Array(16);
    sa.set([AF_INET, 0, port >> 8, port & 0xff]);
    sa.set(v4, 4);
    return sa;
  }
  const v6 = ipv6Bytes(hostname);
  if (v6 === undefined) return undefined;
  const sa = new Uint8Array(28);
  sa.set([AF_INET6, 0, port >> 8, port & 0xff]);
  sa.set(v6, 8);
  return sa;
}

function ipv4Bytes(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => /^\d{1,3}$/.test(p) ? Number(p) : 256);
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

function ipv6Bytes(s: string): Uint8Array | undefined {
  if (!s.includes(":") || s.includes("%")) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (i === pieces.length - 1 && p.includes(".")) {
        const v4 = ipv4Bytes(p);
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => bytes.set([g >> 8, g & 0xff], 2 * i));
  return bytes;
}
