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
 * Every reader and writer here also copes with descriptors the parent made
 * non-blocking (waiting with `poll`, see `native/ready.ts`), and turns a
 * closed stdout (EPIPE) into {@linkcode OutputClosedError}.
 *
 * @module
 */
import type { Reader, Writer } from "./copy.ts";
import { DenocatError, EXIT_FAILURE, OutputClosedError } from "./errors.ts";
import { libc } from "./native/libc.ts";
import {
  isNonBlocking,
  readNonBlocking,
  writeNonBlocking,
  writeNonBlockingSync,
} from "./native/ready.ts";

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
 * to the threaded pump (`native/pump.ts`).
 *
 * A non-blocking stdin (O_NONBLOCK handed over by the parent) is read
 * through libc and waited for with `poll` on EAGAIN (`native/ready.ts`);
 * the flag is looked at on every read, since the parent may change it.
 * Deno's own `Deno.stdin.read` would retry such a descriptor in a tight
 * loop (measured: 164,581 failed `read` calls in 3 s). Without FFI that is
 * what happens, as the README says.
 */
export function stdinReader(): Reader {
  const kind = fdKind(0);
  if (kind === "pipe") growPipe(0);
  const c = libc();
  const read = c === null
    ? (p: Uint8Array) => Deno.stdin.read(p)
    : (p: Uint8Array) =>
      isNonBlocking(0) ? readNonBlocking(c, 0, p) : Deno.stdin.read(p);
  if (kind !== "pipe" && kind !== "file") return { read };
  return { read, fd: 0 };
}

/**
 * Standard output as a {@linkcode Writer}: synchronous writes for regular
 * files and /dev/null, async writes otherwise (with the pipe grown). A
 * pipe or file carries its descriptor, as for {@linkcode stdinReader}.
 *
 * A non-blocking stdout (O_NONBLOCK from the parent, looked at on every
 * write) is written through libc and waited for with `poll` on EAGAIN
 * (`native/ready.ts`); without FFI such a write fails with a clear error,
 * since Deno's own write cannot say which bytes it kept. A closed stdout
 * (EPIPE) throws {@linkcode OutputClosedError}, which ends the program
 * quietly with exit 0.
 */
export function stdoutWriter(): Writer {
  return stdWriter(1);
}

/** Standard error as a {@linkcode Writer}, with the same waits as {@linkcode stdoutWriter}. */
export function stderrWriter(): Writer {
  return stdWriter(2);
}

function stdWriter(fd: 1 | 2): Writer {
  const kind = fdKind(fd);
  const file = fd === 1 ? Deno.stdout : Deno.stderr;
  if (kind === "pipe" && fd === 1) growPipe(1);
  const c = libc();
  const once: (p: Uint8Array) => Promise<number> = kind === "file"
    ? (p) => Promise.resolve(file.writeSync(p))
    : (p) => file.write(p);
  const write = async (p: Uint8Array): Promise<number> => {
    try {
      if (c !== null && isNonBlocking(fd)) {
        return await writeNonBlocking(c, fd, p);
      }
      return await once(p);
    } catch (err) {
      throw stdWriteError(fd, err);
    }
  };
  return kind === "pipe" || kind === "file" ? { write, fd } : { write };
}

/** EPIPE becomes {@linkcode OutputClosedError}; EAGAIN without FFI, a clear failure. */
function stdWriteError(fd: 1 | 2, err: unknown): unknown {
  if (err instanceof Deno.errors.BrokenPipe) {
    return new OutputClosedError(fd, { cause: err });
  }
  if (err instanceof Deno.errors.WouldBlock) {
    // Deno may have kept part of the bytes: no retry can be exact.
    return new DenocatError(
      `cannot write to ${
        fd === 1 ? "stdout" : "stderr"
      }: it is non-blocking, and waiting for it needs FFI (Linux, --allow-ffi)`,
      EXIT_FAILURE,
      { cause: err },
    );
  }
  return err;
}

/**
 * Writes every byte of `bytes` to stdout synchronously (help text, report
 * lines), blocking in `poll` while a non-blocking stdout is full; a closed
 * stdout throws {@linkcode OutputClosedError}.
 */
export function writeStdoutSync(bytes: Uint8Array): void {
  const c = libc();
  const nonBlocking = c !== null && isNonBlocking(1);
  try {
    for (let off = 0; off < bytes.length;) {
      const rest = bytes.subarray(off);
      off += nonBlocking
        ? writeNonBlockingSync(c, 1, rest)
        : Deno.stdout.writeSync(rest);
    }
  } catch (err) {
    throw stdWriteError(1, err);
  }
}
