/**
 * Fast standard input and output for the byte-moving modes.
 *
 * Measured here (see bench/pipe.ts): when stdin is a pipe, the 64 KiB
 * default pipe capacity makes the writer and Deno's read loop take turns;
 * growing the pipe to 1 MiB with `fcntl(F_SETPIPE_SZ)` through FFI roughly
 * doubled client throughput. When stdout is a regular file or /dev/null,
 * synchronous writes skip a thread hop per chunk and never block for long.
 * Both fall back silently to the plain Deno streams where FFI is not allowed
 * or the platform is not Linux.
 *
 * @module
 */
import type { Reader, Writer } from "./copy.ts";

const F_SETPIPE_SZ = 1031;
const PIPE_SIZE = 1 << 20;

let fcntl:
  | ((fd: number, cmd: number, arg: number) => number)
  | null
  | undefined;

function loadFcntl(): typeof fcntl {
  if (fcntl !== undefined) return fcntl;
  fcntl = null;
  if (Deno.build.os !== "linux") return fcntl;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return fcntl;
    }
    const lib = Deno.dlopen("libc.so.6", {
      fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
    });
    fcntl = (fd, cmd, arg) => lib.symbols.fcntl(fd, cmd, arg);
  } catch {
    fcntl = null;
  }
  return fcntl;
}

/** What kind of file a standard descriptor is, from /proc (Linux). */
export function fdKind(
  fd: 0 | 1 | 2,
): "pipe" | "file" | "terminal" | "socket" | "unknown" {
  if (
    (fd === 0 ? Deno.stdin : fd === 1 ? Deno.stdout : Deno.stderr).isTerminal()
  ) return "terminal";
  try {
    const target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
    if (target.startsWith("pipe:")) return "pipe";
    if (target.startsWith("socket:")) return "socket";
    if (target.startsWith("/")) return "file";
  } catch { /* no /proc or no permission */ }
  return "unknown";
}

/**
 * Grows the pipe behind `fd` to 1 MiB when it is a pipe; returns the new
 * size, or `undefined` when nothing was changed.
 */
export function growPipe(fd: 0 | 1): number | undefined {
  if (fdKind(fd) !== "pipe") return undefined;
  const f = loadFcntl();
  if (!f) return undefined;
  const r = f(fd, F_SETPIPE_SZ, PIPE_SIZE);
  return r > 0 ? r : undefined;
}

/** Standard input as a {@linkcode Reader}, with its pipe grown when it is one. */
export function stdinReader(): Reader {
  growPipe(0);
  return Deno.stdin;
}

/**
 * Standard output as a {@linkcode Writer}: synchronous writes for regular
 * files and /dev/null, the async stream otherwise (with the pipe grown).
 */
export function stdoutWriter(): Writer {
  const kind = fdKind(1);
  if (kind === "file") {
    return { write: (p) => Promise.resolve(Deno.stdout.writeSync(p)) };
  }
  if (kind === "pipe") growPipe(1);
  return Deno.stdout;
}
