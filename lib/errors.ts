/**
 * Error types shared by every mode, and the mapping from Deno's socket errors
 * to the short phrases users see (`connection refused`, `unknown host`, ...).
 *
 * @module
 */

/** Exit code for a network or runtime failure. */
export const EXIT_FAILURE = 1;
/** Exit code for a usage error (bad flag, bad port, missing argument). */
export const EXIT_USAGE = 2;
/** Exit code for an integrity failure (a checksum or size did not match). */
export const EXIT_INTEGRITY = 3;

/** An error meant for the user: one line of text and the exit code it maps to. */
export class DenocatError extends Error {
  /** The process exit code the CLI uses for this error. */
  readonly exitCode: number;
  /** Creates an error with `message` and the exit code the CLI returns for it. */
  constructor(
    message: string,
    exitCode = EXIT_FAILURE,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "DenocatError";
    this.exitCode = exitCode;
  }
}

/** A command line that cannot be run as written (exit code 2). */
export class UsageError extends DenocatError {
  /** Creates a usage error (exit code 2) with `message`. */
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = "UsageError";
  }
}

/** Data arrived but failed verification (exit code 3). */
export class IntegrityError extends DenocatError {
  /** Creates an integrity error (exit code 3) with `message`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, EXIT_INTEGRITY, options);
    this.name = "IntegrityError";
  }
}

/**
 * Standard output (or error) was closed by its reader, as `denocat … | head`
 * does: the program stops quietly with exit code 0, like nc.
 */
export class OutputClosedError extends DenocatError {
  /** Creates the error for descriptor `fd` (1 stdout, 2 stderr). */
  constructor(fd: number = 1, options?: ErrorOptions) {
    super(`${fd === 2 ? "stderr" : "stdout"} closed`, 0, options);
    this.name = "OutputClosedError";
  }
}

/**
 * A short, lower-case phrase naming what went wrong with a socket call.
 *
 * @example Usage
 * ```ts
 * import { describeError } from "./errors.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(describeError(new Deno.errors.ConnectionRefused("x")), "connection refused");
 * ```
 */
export function describeError(err: unknown): string {
  if (err instanceof DenocatError) return err.message;
  if (err instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (err instanceof Deno.errors.ConnectionReset) {
    return "connection reset by peer";
  }
  if (err instanceof Deno.errors.ConnectionAborted) return "connection aborted";
  if (err instanceof Deno.errors.BrokenPipe) return "broken pipe";
  if (err instanceof Deno.errors.AddrInUse) return "address already in use";
  if (err instanceof Deno.errors.AddrNotAvailable) {
    return "address not available";
  }
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.TimedOut) return "timed out";
  if (err instanceof Deno.errors.NetworkUnreachable) {
    return "network unreachable";
  }
  if (err instanceof DOMException && err.name === "TimeoutError") {
    return "timed out";
  }
  if (err instanceof DOMException && err.name === "AbortError") {
    return "aborted";
  }
  if (err instanceof Error) {
    const m = err.message;
    if (
      /failed to lookup address|Name or service not known|ENOTFOUND|No address associated/i
        .test(m)
    ) {
      return "unknown host";
    }
    if (/Permission denied|EACCES/i.test(m)) return "permission denied";
    // "Not a directory (os error 20): mkdir '/x'" -> "Not a directory"
    return (m.split("\n")[0] ?? m).replace(/ \(os error \d+\).*$/, "");
  }
  return String(err);
}

/**
 * Wraps a low-level error as `cannot <action>: <reason>`.
 *
 * @example Usage
 * ```ts
 * import { netError } from "./errors.ts";
 * import { assertEquals } from "./_assert.ts";
 * const e = netError("connect to 127.0.0.1:9", new Deno.errors.ConnectionRefused("x"));
 * assertEquals(e.message, "cannot connect to 127.0.0.1:9: connection refused");
 * ```
 */
export function netError(action: string, err: unknown): DenocatError {
  if (err instanceof DenocatError) return err;
  return new DenocatError(
    `cannot ${action}: ${describeError(err)}`,
    EXIT_FAILURE,
    {
      cause: err,
    },
  );
}
