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
import { libc } from "./native/libc.ts";

const F_SETPIPE_SZ = 1031;
const PIPE_SIZE = 1 << 20;

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
  const c = libc();
  if (!c) return undefined;
  const r = c.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE);
  return r > 0 ? r : undefined;
}

/**
 * Standard input as a {@linkcode Reader}, with its pipe grown when it is one.
 * A pipe or file also carries its descriptor, so a bulk copy can be handed
 * to the threaded pump (`fdpump.ts`).
 */
export function stdinReader(): Reader {
  const kind = fdKind(0);
  if (kind === "pipe") growPipe(0);
  if (kind !== "pipe" && kind !== "file") return Deno.stdin;
  return { read: (p) => Deno.stdin.read(p), fd: 0 };
}

/**
 * Standard output as a {@linkcode Writer}: synchronous writes for regular
 * files and /dev/null, the async stream otherwise (with the pipe grown). A
 * pipe or file carries its descriptor, as for {@linkcode stdinReader}.
 */
export function stdoutWriter(): Writer {
  const kind = fdKind(1);
  if (kind === "file") {
    return { write: (p) => Promise.resolve(Deno.stdout.writeSync(p)), fd: 1 };
  }
  if (kind !== "pipe") return Deno.stdout;
  growPipe(1);
  return { write: (p) => Deno.stdout.write(p), fd: 1 };
}
