/**
 * A program on a connection (`-e PROG` / `-c CMD`, ncat's `--exec` and
 * `--sh-exec`): the connection becomes the child's stdin and stdout.
 *
 * - Bytes from the peer go to the child's stdin; the peer's FIN closes it
 *   (half-close), so a program that answers after its input ends (`sort`,
 *   `wc`) still answers.
 * - The child's stdout goes to the peer; when the child has exited and all
 *   of its output is delivered, our FIN goes out and the connection closes,
 *   whatever the peer still holds open.
 * - The child's stderr stays the server's (as with ncat).
 * - `NCAT_REMOTE_ADDR`, `NCAT_REMOTE_PORT`, `NCAT_LOCAL_ADDR`,
 *   `NCAT_LOCAL_PORT` and `NCAT_PROTO` describe the connection, so programs
 *   written for ncat work unchanged.
 *
 * @module
 */
import { writeAll } from "../copy.ts";
import { UsageError } from "../errors.ts";
/**
 * The connection a program gets: a TCP or Unix connection, or a TLS layer
 * over one (then give its addresses in {@linkcode ExecOverOptions.addrs}).
 */
export interface ExecStream {
  /** Reads into `p`; resolves with the byte count, or `null` at end of input. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; resolves with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
  /** Sends FIN (TLS: close_notify, then FIN). */
  closeWrite(): Promise<void>;
  /** Closes at once. */
  close(): void;
  /** The local address, when the stream is a socket. */
  readonly localAddr?: Deno.Addr;
  /** The peer's address, when the stream is a socket. */
  readonly remoteAddr?: Deno.Addr;
}

async function closeWriteQuietly(s: ExecStream): Promise<void> {
  try {
    await s.closeWrite();
  } catch { /* already closed or reset */ }
}

function closeQuietly(s: ExecStream): void {
  try {
    s.close();
  } catch { /* already closed */ }
}

/** What to run: a program with arguments, or a line for `sh -c`. */
export type ExecSpec =
  | {
    /** `-e`: the program and its arguments, run without a shell. */ argv:
      string[];
  }
  | { /** `-c`: a command line run by `/bin/sh -c`. */ shell: string };

/** Options for {@linkcode execOver}. */
export interface ExecOverOptions {
  /** Transport name for `NCAT_PROTO`. @default {"TCP"} */
  proto?: "TCP" | "UDP" | "UNIX" | "SSL";
  /** Extra environment variables for the child. */
  env?: Record<string, string>;
  /** Ends the child's process group (SIGTERM) and closes the connection. */
  signal?: AbortSignal;
  /** Size of the buffer for the peer's bytes. @default {256 KiB} */
  bufferSize?: number;
  /**
   * The addresses for `NCAT_*` when the stream does not carry them (a TLS
   * layer): those of the connection underneath.
   */
  addrs?: { localAddr: Deno.Addr; remoteAddr: Deno.Addr };
}

/** What {@linkcode execOver} moved, and how the child ended. */
export interface ExecOverResult {
  /** Bytes from the child's stdout delivered to the peer. */
  sent: number;
  /** Bytes from the peer written to the child's stdin. */
  received: number;
  /** The child's exit code (128 + signal number when killed). */
  code: number;
  /** The signal that ended the child, if one did. */
  signal: Deno.Signal | null;
}

/**
 * Splits a `-e` value into a program and its arguments at white space, as
 * ncat does (no quoting: use `-c` for a command line).
 *
 * @example Usage
 * ```ts
 * import { parseExec } from "./stream.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(parseExec("/bin/cat -v"), { argv: ["/bin/cat", "-v"] });
 * ```
 */
export function parseExec(value: string): ExecSpec {
  const argv = value.trim().split(/\s+/).filter((w) => w !== "");
  if (argv.length === 0) throw new UsageError("-e needs a program to run");
  return { argv };
}

/** The environment variables ncat gives an executed program. */
export function ncatEnv(
  conn: { localAddr: Deno.Addr; remoteAddr: Deno.Addr },
  proto: string,
): Record<string, string> {
  const env: Record<string, string> = { NCAT_PROTO: proto };
  const put = (prefix: string, a: Deno.Addr) => {
    if (a.transport === "tcp" || a.transport === "udp") {
      env[`NCAT_${prefix}_ADDR`] = a.hostname;
      env[`NCAT_${prefix}_PORT`] = String(a.port);
    }
  };
  put("REMOTE", conn.remoteAddr);
  put("LOCAL", conn.localAddr);
  return env;
}

function ncatEnvOf(
  s: { localAddr?: Deno.Addr; remoteAddr?: Deno.Addr },
  proto: string,
): Record<string, string> {
  return s.localAddr && s.remoteAddr
    ? ncatEnv({ localAddr: s.localAddr, remoteAddr: s.remoteAddr }, proto)
    : { NCAT_PROTO: proto };
}

/**
 * Sends `signal` to the child's process group (it was started detached), or
 * to the child alone where there are no process groups (Windows).
 */
export function killGroup(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    if (Deno.build.os === "windows") child.kill(signal);
    else Deno.kill(-child.pid, signal);
  } catch {
    // No such group: gone, or (started through setsid(1), see spawnExec)
    // not yet a group of its own. The child itself still gets the signal.
    try {
      child.kill(signal);
    } catch { /* already gone */ }
  }
}

/**
 * `setsid(1)` where it is, on Linux: the child then makes its own session
 * and process group before it runs the program. Deno's `detached: true`
 * does the same after a `fork` of this whole process, copying the page
 * tables of its heap on every connection; without it Deno starts the child
 * with `posix_spawn`, which copies nothing.
 */
const SETSID = (() => {
  if (Deno.build.os !== "linux") return undefined;
  for (const path of ["/usr/bin/setsid", "/bin/setsid"]) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not here, or not allowed to look */ }
  }
  return undefined;
})();

/**
 * Starts `spec` with piped stdin and stdout, the caller's stderr, and
 * `env` added, in a process group of its own (so that ending it ends what
 * it started too; see {@linkcode killGroup}).
 */
export function spawnExec(
  spec: ExecSpec,
  env: Record<string, string>,
): Deno.ChildProcess {
  const [program, args] = execCommand(spec);
  const start = (wrap: boolean) =>
    new Deno.Command(wrap ? SETSID! : program, {
      args: wrap ? ["--", program, ...args] : args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      detached: !wrap,
      env,
    }).spawn();
  // A child started by posix_spawn is never a group leader, so setsid(1)
  // calls setsid() and execs the program in the same process (no fork):
  // the pid Deno reports is the program's, and so is the group. Only for a
  // program that can be found, so that a missing one still fails here
  // (NotFound) rather than in the child; and where running setsid(1) is
  // not permitted, the direct way.
  if (SETSID === undefined || !runnable(program)) return start(false);
  try {
    return start(true);
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) return start(false);
    throw err;
  }
}

/**
 * Whether `program` names an executable file, as `execvp` would find it: a
 * path with a slash as it is, a bare name in the directories of `PATH`.
 */
function runnable(program: string): boolean {
  const exec = (path: string) => {
    try {
      const st = Deno.statSync(path);
      return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
    } catch {
      return false;
    }
  };
  if (program.includes("/")) return exec(program);
  let path: string | undefined;
  try {
    path = Deno.env.get("PATH");
  } catch {
    return false;
  }
  return (path ?? "/usr/bin:/bin").split(":").some((dir) =>
    exec(`${dir || "."}/${program}`)
  );
}

/** The command for `spec`: `[program, args]`. */
export function execCommand(spec: ExecSpec): [string, string[]] {
  return "argv" in spec
    ? [spec.argv[0]!, spec.argv.slice(1)]
    : ["/bin/sh", ["-c", spec.shell]];
}

/**
 * Runs `spec` with `conn` as its stdin and stdout; resolves when the child
 * has exited and its output is delivered (the connection is then closed).
 * Throws when the program cannot be started.
 *
 * @example A child that answers after its input ends
 * ```ts
 * import { execOver } from "./stream.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const served = (async () => {
 *   const conn = await l.accept();
 *   return await execOver(conn, { shell: "sort" });
 * })();
 * const c = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * await c.write(new TextEncoder().encode("b\na\n"));
 * await c.closeWrite();
 * const buf = new Uint8Array(16);
 * let text = "", n;
 * while ((n = await c.read(buf)) !== null) text += new TextDecoder().decode(buf.subarray(0, n));
 * c.close();
 * assertEquals(text, "a\nb\n");
 * assertEquals((await served).code, 0);
 * ```
 */
export async function execOver(
  conn: ExecStream,
  spec: ExecSpec,
  options: ExecOverOptions = {},
): Promise<ExecOverResult> {
  const child = spawnExec(spec, {
    ...ncatEnvOf(options.addrs ?? conn, options.proto ?? "TCP"),
    ...options.env,
  });
  let sent = 0, received = 0;
  const stdin = child.stdin.getWriter();
  const stdout = child.stdout.getReader();
  const onAbort = () => {
    killGroup(child, "SIGTERM");
    closeQuietly(conn);
  };
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  // The peer's bytes to the child's stdin; the peer's FIN closes it. A child
  // that stops reading (or exits) ends this direction; the peer's further
  // bytes are dropped, as they would be by a program that closed stdin.
  const inbound = (async () => {
    const buf = new Uint8Array(options.bufferSize ?? 256 * 1024);
    try {
      let n: number | null;
      while ((n = await conn.read(buf)) !== null) {
        await stdin.write(buf.subarray(0, n));
        received += n;
      }
    } catch { /* the peer reset, or the child closed its stdin */ }
    try {
      await stdin.close();
    } catch { /* already gone */ }
  })();

  // The child's stdout to the peer.
  let peerGone = false;
  try {
    for (;;) {
      const { value, done } = await stdout.read();
      if (done) break;
      if (peerGone) continue; // keep draining so the child is not blocked
      try {
        await writeAll(conn, value);
        sent += value.length;
      } catch {
        peerGone = true;
      }
    }
  } catch { /* stdout closed under us (abort) */ }
  const status = await child.status;
  options.signal?.removeEventListener("abort", onAbort);
  await closeWriteQuietly(conn);
  closeQuietly(conn);
  await inbound;
  return { sent, received, code: status.code, signal: status.signal };
}
