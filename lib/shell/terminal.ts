/**
 * `shell -t`: a command (or the server's shell itself) on a pseudo-terminal
 * of the server, driven from the local terminal as ssh -t does: the local
 * terminal is put in raw mode, so every key (Ctrl-C, Ctrl-D, arrows) goes
 * to the remote terminal, whose line discipline turns Ctrl-C into SIGINT
 * for the remote foreground job; window-size changes (SIGWINCH) are
 * forwarded; the remote exit code comes back. The local terminal is
 * restored however the session ends.
 *
 * @module
 */
import { DenocatError, UsageError } from "../errors.ts";
import type { Reader, Writer } from "../frame/reader.ts";
import type { ShellExit, ShellSession } from "./client.ts";
import { MAX_TERM } from "./protocol.ts";

/** What {@linkcode runOnTerminal} needs of the local terminal. */
export interface LocalTerminal {
  /** Keys typed. */
  input: Reader & { setRaw?(mode: boolean): void; isTerminal?(): boolean };
  /** Where the remote terminal's output goes. */
  output: Writer;
  /** The current size. */
  size(): { rows: number; cols: number };
  /** Calls `listener` on every size change; returns the unsubscribe. */
  onResize?(listener: () => void): () => void;
  /** `TERM` to ask for. @default {"dumb"} */
  term?: string;
}

/**
 * The process's own terminal: stdin in raw mode, stdout, `Deno.consoleSize`
 * and SIGWINCH. Throws a `UsageError` when stdin is not a terminal.
 */
export function processTerminal(): LocalTerminal {
  if (!Deno.stdin.isTerminal()) {
    throw new UsageError("-t needs a terminal on stdin");
  }
  const size = () => {
    try {
      const { rows, columns } = Deno.consoleSize();
      return { rows, cols: columns };
    } catch {
      return { rows: 24, cols: 80 };
    }
  };
  const term = Deno.env.get("TERM") ?? "dumb";
  return {
    input: Deno.stdin,
    output: Deno.stdout,
    size,
    onResize(listener) {
      Deno.addSignalListener("SIGWINCH", listener);
      return () => Deno.removeSignalListener("SIGWINCH", listener);
    },
    term: /^[\x21-\x7e]+$/.test(term) && term.length <= MAX_TERM
      ? term
      : "dumb",
  };
}

/**
 * Runs `command` (empty: the server's shell, interactively) on a
 * pseudo-terminal in `session`, with `terminal` in raw mode meanwhile.
 * Resolves with how it ended.
 */
export async function runOnTerminal(
  session: ShellSession,
  command: string,
  terminal: LocalTerminal,
): Promise<ShellExit> {
  const raw = terminal.input.setRaw !== undefined &&
    (terminal.input.isTerminal?.() ?? true);
  if (raw) terminal.input.setRaw!(true);
  let last = terminal.size();
  const unsubscribe = terminal.onResize?.(() => {
    const now = terminal.size();
    if (now.rows === last.rows && now.cols === last.cols) return;
    last = now;
    session.resize(now.rows, now.cols);
  });
  try {
    return await session.exec(command, {
      stdin: terminal.input,
      stdout: terminal.output,
      stderr: terminal.output,
      pty: { ...last, term: terminal.term ?? "dumb" },
    });
  } catch (err) {
    if (err instanceof DenocatError) throw err;
    throw new DenocatError(`terminal session failed: ${String(err)}`, 255);
  } finally {
    unsubscribe?.();
    if (raw) {
      try {
        terminal.input.setRaw!(false);
      } catch { /* the terminal went away */ }
    }
  }
}
