/**
 * Running a shell command in its own process group, so that a timeout, a
 * vanished client or a server shutdown ends the whole tree it started (a
 * plain `child.kill()` would stop only the shell, see PLATFORM.md).
 *
 * @module
 */

import { DenocatError } from "../errors.ts";

/**
 * Throws the one-line error for Windows, which has neither process groups
 * (`kill(-pid)`) nor a POSIX shell to run commands with; the servers that
 * run commands call it before they bind.
 */
export function requireProcessGroups(): void {
  if (Deno.build.os === "windows") {
    throw new DenocatError(
      "cannot run commands: process groups are not available on windows (the shell server runs on Linux and macOS)",
    );
  }
}

/** Linux signal numbers for the names Deno reports in `status.signal`. */
const SIGNAL_NUMBERS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/**
 * The number of a signal name (`"SIGTERM"` → 15), or 0 when unknown.
 *
 * @example Usage
 * ```ts
 * import { signalNumber } from "./process_group.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(signalNumber("SIGKILL"), 9);
 * assertEquals(signalNumber("SIGNOPE"), 0);
 * ```
 */
export function signalNumber(name: string): number {
  return SIGNAL_NUMBERS[name] ?? 0;
}

/**
 * The name of a signal number (15 → `"SIGTERM"`), or `"signal N"`.
 *
 * @example Usage
 * ```ts
 * import { signalName } from "./process_group.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(signalName(15), "SIGTERM");
 * assertEquals(signalName(99), "signal 99");
 * ```
 */
export function signalName(n: number): string {
  for (const [name, num] of Object.entries(SIGNAL_NUMBERS)) {
    if (num === n) return name;
  }
  return `signal ${n}`;
}

/**
 * Sends `signal` to every process in the group led by `pid`
 * (`kill(-pid, signal)`). Returns false when the group no longer exists.
 *
 * @example Usage
 * ```ts
 * import { killGroup } from "./process_group.ts";
 * import { assertEquals } from "../_assert.ts";
 * // Windows has no process groups.
 * if (Deno.build.os !== "windows") {
 *   const child = new Deno.Command("sleep", { args: ["30"], detached: true }).spawn();
 *   assertEquals(killGroup(child.pid, "SIGKILL"), true);
 *   assertEquals((await child.status).signal, "SIGKILL");
 *   assertEquals(killGroup(child.pid, "SIGKILL"), false);
 * }
 * ```
 */
export function killGroup(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pid, signal);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    // ESRCH surfaces as NotFound on Linux; anything else is a real failure.
    if (err instanceof Error && /ESRCH|No such process/i.test(err.message)) {
      return false;
    }
    throw err;
  }
}

/**
 * Builds the argument list that makes `shell` run `command`. Commands that
 * are valid UTF-8 are passed as they are (`-c COMMAND`); other bytes cannot
 * travel through an argument vector from Deno, so they are spelled as octal
 * escapes and rebuilt by the shell itself (`eval "$(printf '\ooo...')"`),
 * which keeps the bytes intact for any POSIX shell.
 *
 * @example Usage
 * ```ts
 * import { shellArgs } from "./process_group.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(shellArgs(new TextEncoder().encode("echo hi")), ["-c", "echo hi"]);
 * assertEquals(shellArgs(new Uint8Array([0x65, 0xff])), ["-c", `eval "$(printf '\\145\\377')"`]);
 * ```
 */
export function shellArgs(command: Uint8Array): string[] {
  try {
    return ["-c", new TextDecoder("utf-8", { fatal: true }).decode(command)];
  } catch {
    let escaped = "";
    for (const b of command) escaped += "\\" + b.toString(8).padStart(3, "0");
    return ["-c", `eval "$(printf '${escaped}')"`];
  }
}

/**
 * Variables of the server's own environment that commands never inherit:
 * denocat's secrets. A client may still set them itself in EXEC.
 */
export const SCRUBBED_ENV: readonly string[] = ["DENOCAT_TOKEN"];

/**
 * The environment a command gets: the server's own without
 * {@linkcode SCRUBBED_ENV}, then `extra` on top.
 *
 * @example Usage
 * ```ts
 * import { commandEnv } from "./process_group.ts";
 * import { assertEquals } from "../_assert.ts";
 * Deno.env.set("DENOCAT_TOKEN", "secret");
 * try {
 *   assertEquals(commandEnv({}).DENOCAT_TOKEN, undefined);
 *   assertEquals(commandEnv({ A: "1" }).A, "1");
 * } finally {
 *   Deno.env.delete("DENOCAT_TOKEN");
 * }
 * ```
 */
export function commandEnv(
  extra: Record<string, string> = {},
): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of SCRUBBED_ENV) delete env[name];
  return Object.assign(env, extra);
}

/** Options for {@linkcode spawnGroup}. */
export interface SpawnGroupOptions {
  /** Working directory. @default {the server's} */
  cwd?: string;
  /**
   * Extra environment variables, on top of the server's own environment
   * minus {@linkcode SCRUBBED_ENV}.
   * @default {{}}
   */
  env?: Record<string, string>;
  /** Whether the command gets a stdin pipe; otherwise stdin is /dev/null. @default {false} */
  stdin?: boolean;
  /**
   * Run on a pseudo-terminal of this size, with this `TERM`, through
   * util-linux `script` (see {@linkcode ptyArgs}); an empty command then
   * runs the shell itself, interactively. stdin is always piped.
   */
  pty?: { rows: number; cols: number; term: string };
}

/**
 * A command running in its own process group. Disposing it kills the whole
 * group (SIGKILL) if anything is left; `kill` is idempotent once the group
 * is gone.
 */
export interface GroupProcess extends AsyncDisposable {
  /** The underlying child (the shell); its pid is the group id. */
  readonly child: Deno.ChildProcess;
  /** Resolves when the shell exits. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Signals the whole group; false when nothing was left to signal. */
  kill(signal?: Deno.Signal): boolean;
  /**
   * Sends SIGTERM to the group, then SIGKILL after `graceMs` if the shell
   * has not exited by then.
   */
  terminate(graceMs?: number): Promise<void>;
  /** A pty command only: sets the terminal's size (the kernel sends SIGWINCH). */
  resize?(rows: number, cols: number): Promise<void>;
}

/** The program that gives a command a pseudo-terminal. */
export const PTY_HELPER = "script";

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * The argument list of util-linux `script` that runs `command` with
 * `shell` on a new pseudo-terminal of `rows` × `cols`: `script -q -e -c
 * INNER /dev/null`, where INNER sets the size with `stty` and then execs
 * `shell -c COMMAND` (or `shell` alone for an empty command). `script`
 * runs INNER with `$SHELL`, so it is given `SHELL=/bin/sh`, and INNER puts
 * back `shell_env` (the server's own `SHELL`, or unsets it).
 *
 * @example Usage
 * ```ts
 * import { ptyArgs } from "./process_group.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(ptyArgs("/bin/sh", new TextEncoder().encode("ls"), 24, 80, undefined), [
 *   "-q", "-e", "-c",
 *   "stty rows 24 cols 80 2>/dev/null; unset SHELL; exec '/bin/sh' '-c' 'ls'",
 *   "/dev/null",
 * ]);
 * ```
 */
export function ptyArgs(
  shell: string,
  command: Uint8Array,
  rows: number,
  cols: number,
  shellEnv: string | undefined,
): string[] {
  const run = command.length > 0
    ? [shell, ...shellArgs(command)].map(quote).join(" ")
    : quote(shell);
  const size = rows > 0 && cols > 0
    ? `stty rows ${rows | 0} cols ${cols | 0} 2>/dev/null; `
    : "";
  const env = shellEnv !== undefined
    ? `SHELL=${quote(shellEnv)}; export SHELL`
    : "unset SHELL";
  return ["-q", "-e", "-c", `${size}${env}; exec ${run}`, "/dev/null"];
}

/** The pids whose parent is `ppid` (from /proc; empty where there is none). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  try {
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
        // pid (comm) state ppid ...: comm may hold spaces and parentheses.
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (Number(fields[1]) === ppid) out.push(Number(e.name));
      } catch { /* gone meanwhile */ }
    }
  } catch { /* no /proc */ }
  return out;
}

/**
 * Runs `shell -c command` as the leader of a new process group, with
 * stdout and stderr piped.
 *
 * @example Killing a tree
 * ```ts
 * import { spawnGroup } from "./process_group.ts";
 * import { assertEquals } from "../_assert.ts";
 * // Windows has no process groups: spawnGroup() refuses there.
 * if (Deno.build.os !== "windows") {
 *   await using p = spawnGroup("/bin/sh", new TextEncoder().encode("sleep 30 & sleep 30"));
 *   await p.child.stdout.cancel();
 *   await p.child.stderr.cancel();
 *   await p.terminate();
 *   assertEquals((await p.status).signal, "SIGTERM");
 * }
 * ```
 */
export function spawnGroup(
  shell: string,
  command: Uint8Array,
  options: SpawnGroupOptions = {},
): GroupProcess {
  requireProcessGroups();
  const pty = options.pty;
  const env = commandEnv(options.env);
  let program = shell;
  let args = shellArgs(command);
  if (pty) {
    const shellEnv = env.SHELL;
    env.SHELL = "/bin/sh";
    env.TERM = pty.term || "dumb";
    program = PTY_HELPER;
    args = ptyArgs(shell, command, pty.rows, pty.cols, shellEnv);
  }
  const child = new Deno.Command(program, {
    args,
    stdin: options.stdin || pty ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    clearEnv: true,
    env,
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  // A pty command's shell leads a session of its own under `script`.
  let session: number | undefined;
  const ptySession = () => {
    if (!pty || exited) return session;
    session ??= childrenOf(child.pid)[0];
    return session;
  };
  const kill = (signal: Deno.Signal = "SIGTERM") => {
    const inner = ptySession();
    const a = inner !== undefined && killGroup(inner, signal);
    const b = killGroup(child.pid, signal);
    return a || b;
  };
  const resize = async (rows: number, cols: number) => {
    const inner = ptySession();
    if (inner === undefined) return;
    let tty: string;
    try {
      tty = Deno.readLinkSync(`/proc/${inner}/fd/0`);
    } catch {
      return;
    }
    if (!tty.startsWith("/dev/pts/")) return;
    await new Deno.Command("stty", {
      args: ["-F", tty, "rows", String(rows | 0), "cols", String(cols | 0)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output().catch(() => {});
  };
  const terminate = async (graceMs = 2000) => {
    if (!kill("SIGTERM")) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([status, grace]);
    clearTimeout(timer);
    if (!exited) kill("SIGKILL");
  };
  return {
    child,
    status,
    kill,
    terminate,
    ...(pty ? { resize } : {}),
    async [Symbol.asyncDispose]() {
      kill("SIGKILL");
      await status;
    },
  };
}
