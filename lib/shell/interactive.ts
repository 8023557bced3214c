/**
 * The interactive shell client: a prompt, one command per line, each run
 * remotely with its output shown as it comes and its status shown when it
 * is not zero. Lines stay bytes from end to end. Ctrl-C (and Ctrl-\) while
 * a command runs go to that command's process group on the server, and
 * the prompt comes back once it ends; at the prompt, Ctrl-C starts a fresh
 * line. Each line is its own `SHELL -c`: for a real shell session (`cd`
 * that persists, programs that read the terminal) use `shell -t`.
 *
 * @module
 */
import type { Reader, Writer } from "../frame/reader.ts";
import { writeAll } from "../frame/reader.ts";
import { DenocatError } from "../errors.ts";
import type { ShellExit, ShellSession } from "./client.ts";
import { ErrorCode } from "./protocol.ts";
import { ShellRemoteError } from "./wire.ts";

/** Longest line accepted as one command: 1 MiB. */
export const MAX_LINE = 1024 * 1024;

/**
 * Splits a byte stream into lines without decoding it. `next()` returns a
 * line without its `\n` (and without a `\r` before it), or `null` at EOF.
 *
 * @example Usage
 * ```ts
 * import { LineReader } from "./interactive.ts";
 * import { assertEquals } from "../_assert.ts";
 * const data = new TextEncoder().encode("ls\r\npwd\nlast");
 * let done = false;
 * const src = { read(p: Uint8Array) {
 *   if (done) return Promise.resolve(null);
 *   done = true; p.set(data); return Promise.resolve(data.length);
 * } };
 * const lines = new LineReader(src);
 * const dec = (b: Uint8Array | null) => b && new TextDecoder().decode(b);
 * assertEquals(dec(await lines.next()), "ls");
 * assertEquals(dec(await lines.next()), "pwd");
 * assertEquals(dec(await lines.next()), "last");
 * assertEquals(await lines.next(), null);
 * ```
 */
export class LineReader {
  readonly #src: Reader;
  #buf = new Uint8Array(4096);
  #start = 0;
  #end = 0;
  #eof = false;

  constructor(src: Reader) {
    this.#src = src;
  }

  /** The next line (a fresh array), or `null` at end of input. */
  async next(): Promise<Uint8Array | null> {
    let scanned = this.#start;
    for (;;) {
      const nl = this.#buf.subarray(scanned, this.#end).indexOf(0x0a);
      if (nl >= 0) {
        const at = scanned + nl;
        let stop = at;
        if (stop > this.#start && this.#buf[stop - 1] === 0x0d) stop--;
        const line = this.#buf.slice(this.#start, stop);
        this.#start = at + 1;
        return line;
      }
      scanned = this.#end;
      if (this.#eof) {
        if (this.#start === this.#end) return null;
        const line = this.#buf.slice(this.#start, this.#end);
        this.#start = this.#end;
        return line;
      }
      if (this.#end === this.#buf.length) {
        const have = this.#end - this.#start;
        if (have >= MAX_LINE) {
          throw new DenocatError(`line longer than ${MAX_LINE} bytes`);
        }
        const bigger = new Uint8Array(
          have * 2 > this.#buf.length ? this.#buf.length * 2 : this.#buf.length,
        );
        bigger.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = bigger;
        scanned -= this.#start;
        this.#end = have;
        this.#start = 0;
      }
      const n = await this.#src.read(this.#buf.subarray(this.#end));
      if (n === null) this.#eof = true;
      else this.#end += n;
    }
  }
}

/** Options for {@linkcode interactiveShell}. */
export interface InteractiveOptions {
  /** Where commands come from, one per line. */
  input: Reader;
  /** Receives the commands' stdout. */
  stdout: Writer;
  /** Receives the commands' stderr, the prompt and status notes. */
  stderr: Writer;
  /** The prompt. @default {"denocat> "} */
  prompt?: string;
  /**
   * Where Ctrl-C and Ctrl-\ come from: called with a listener, returns the
   * unsubscribe. The CLI passes the process's SIGINT and SIGQUIT.
   * @default {none}
   */
  interrupts?: (
    listener: (signal: "SIGINT" | "SIGQUIT") => void,
  ) => () => void;
}

/**
 * Subscribes to this process's SIGINT and SIGQUIT, for
 * {@linkcode InteractiveOptions.interrupts}.
 */
export function processInterrupts(
  listener: (signal: "SIGINT" | "SIGQUIT") => void,
): () => void {
  const onInt = () => listener("SIGINT");
  const onQuit = () => listener("SIGQUIT");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGQUIT", onQuit);
  return () => {
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGQUIT", onQuit);
  };
}

const encoder = new TextEncoder();
const EXIT = encoder.encode("exit");

/** A status note for a non-zero exit: `[exit 7]`, `[killed by SIGTERM, timed out]`. */
export function describeExit(exit: ShellExit): string {
  const parts = [
    exit.signal ? `killed by ${exit.signalName}` : `exit ${exit.code}`,
  ];
  if (exit.timedOut) parts.push("timed out");
  if (exit.truncated) parts.push("output truncated");
  return `[${parts.join(", ")}]`;
}

/**
 * Reads commands line by line and runs each in `session` until EOF or a
 * line `exit`. Empty lines are skipped; a command the server refuses is
 * reported and the loop goes on; a failed session throws. Returns 0.
 *
 * @example Two commands
 * ```ts
 * import { interactiveShell } from "./interactive.ts";
 * import { connectShell } from "./client.ts";
 * import { shellServer } from "./server.ts";
 * import { assertEquals } from "../_assert.ts";
 * // Windows has no process groups: the server refuses to start there.
 * if (Deno.build.os !== "windows") {
 *   await using server = shellServer({ port: 0 }, { insecureNoAuth: true });
 *   await using session = await connectShell({ hostname: "127.0.0.1", port: server.addr.port });
 *   const lines = new TextEncoder().encode("echo one\n\nexit 3\nexit\necho never\n");
 *   let given = false;
 *   const input = { read(p: Uint8Array) {
 *     if (given) return Promise.resolve(null);
 *     given = true; p.set(lines); return Promise.resolve(lines.length);
 *   } };
 *   let out = "", err = "";
 *   const dec = new TextDecoder();
 *   await interactiveShell(session, {
 *     input,
 *     stdout: { write: (p) => ((out += dec.decode(p)), Promise.resolve(p.length)) },
 *     stderr: { write: (p) => ((err += dec.decode(p)), Promise.resolve(p.length)) },
 *     prompt: "> ",
 *   });
 *   assertEquals(out, "one\n");
 *   assertEquals(err, "> > > [exit 3]\n> ");
 * }
 * ```
 */
export async function interactiveShell(
  session: ShellSession,
  options: InteractiveOptions,
): Promise<number> {
  const lines = new LineReader(options.input);
  const text = options.prompt ?? "denocat> ";
  const prompt = encoder.encode(text);
  const unsubscribe = options.interrupts?.((signal) => {
    if (session.running) {
      session.signal(signal);
    } else if (signal === "SIGINT") {
      // The terminal dropped the half-typed line; start a fresh one.
      writeAll(options.stderr, encoder.encode(`\n${text}`)).catch(() => {});
    }
  });
  try {
    return await loop(session, options, lines, prompt);
  } finally {
    unsubscribe?.();
  }
}

async function loop(
  session: ShellSession,
  options: InteractiveOptions,
  lines: LineReader,
  prompt: Uint8Array,
): Promise<number> {
  for (;;) {
    await writeAll(options.stderr, prompt);
    const line = await lines.next();
    if (line === null) {
      await writeAll(options.stderr, encoder.encode("\n"));
      return 0;
    }
    const trimmed = trim(line);
    if (trimmed.length === 0) continue;
    if (
      trimmed.length === EXIT.length && trimmed.every((b, i) => b === EXIT[i])
    ) {
      return 0;
    }
    try {
      const exit = await session.exec(line, {
        stdout: options.stdout,
        stderr: options.stderr,
      });
      if (exit.exitCode !== 0 || exit.truncated) {
        await writeAll(
          options.stderr,
          encoder.encode(`${describeExit(exit)}\n`),
        );
      }
    } catch (err) {
      if (err instanceof ShellRemoteError && err.code === ErrorCode.Refused) {
        await writeAll(
          options.stderr,
          encoder.encode(`denocat: ${err.message}\n`),
        );
        continue;
      }
      throw err;
    }
  }
}

function trim(line: Uint8Array): Uint8Array {
  let a = 0;
  let b = line.length;
  while (a < b && (line[a] === 0x20 || line[a] === 0x09)) a++;
  while (b > a && (line[b - 1] === 0x20 || line[b - 1] === 0x09)) b--;
  return line.subarray(a, b);
}
