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
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The libc functions denocat calls. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** errno values the fast paths act on. */
export const EINTR = 4;
/** Resource temporarily unavailable (non-blocking descriptor). */
export const EAGAIN = 11;
/** `poll` event bits. */
export const POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 16;
/** `shutdown` how. */
export const SHUT_RDWR = 2;

let lib: Libc | null | undefined;

/** libc's symbols, or `null` when FFI is unavailable here. */
export function libc(): Libc | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (Deno.build.os !== "linux") return lib;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return lib;
    }
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
