/**
 * The denocat command-line entry: pick the command, run it, map errors to
 * exit codes. Commands are loaded lazily so each pays only for what it uses.
 *
 * @module
 */
import {
  DenocatError,
  describeError,
  EXIT_FAILURE,
  OutputClosedError,
} from "./lib/errors.ts";
import { VERSION } from "./lib/version.ts";

type Command = { run(args: string[]): Promise<number> };

const COMMANDS: Record<string, () => Promise<Command>> = {
  echo: () => import("./lib/commands/echo.ts"),
  shell: () => import("./lib/commands/shell.ts"),
  probe: () => import("./lib/commands/probe.ts"),
  send: () => import("./lib/commands/send.ts"),
  recv: () => import("./lib/commands/recv.ts"),
  forward: () => import("./lib/commands/forward.ts"),
};

/** Runs denocat with `args`; returns the exit code. Never calls `Deno.exit`. */
export async function main(args: string[]): Promise<number> {
  try {
    if (args[0] === "--version" || args[0] === "-V") {
      // The target names the build (a compiled binary's is the one it
      // was compiled for); the Deno version is the runtime it carries.
      console.log(
        `denocat ${VERSION} (${Deno.build.target}; deno ${Deno.version.deno})`,
      );
      return 0;
    }
    const load = COMMANDS[args[0] ?? ""];
    const command = load
      ? await load()
      : await import("./lib/commands/netcat.ts");
    return await command.run(load ? args.slice(1) : args);
  } catch (err) {
    // `denocat … | head`: the reader has all it wanted; nc exits 0 quietly.
    if (outputClosed(err)) return 0;
    console.error(`denocat: ${describeError(err)}`);
    return err instanceof DenocatError ? err.exitCode : EXIT_FAILURE;
  }
}

function outputClosed(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof OutputClosedError) return true;
    e = e.cause;
  }
  return false;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
