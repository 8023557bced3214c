/**
 * `prctl(PR_SET_DUMPABLE, 0)` through Deno FFI: a process that is not
 * dumpable writes no core file, cannot be attached with ptrace by other
 * processes of its user, and its `/proc/PID/environ`, `mem`, `maps` and
 * `fd/` belong to root, so the commands a shell server runs (same user)
 * cannot read its token from there. `/proc/PID/cmdline` stays readable by
 * everyone: a token given with `--token` is visible whatever this does.
 *
 * Deno (2.9.2 and later) also opens a V8 inspector on 127.0.0.1:9229 when
 * the process gets SIGUSR1, and an inspector can read and run anything in
 * the process, non-dumpable or not; any process of the same user (a command
 * the shell server runs) can send that signal. {@linkcode ignoreInspectorSignal}
 * sets SIGUSR1 to be ignored.
 *
 * @module
 */
import { ffiAllowed } from "./libc.ts";

const PR_SET_DUMPABLE = 4;
const PR_GET_DUMPABLE = 3;

const SYMBOLS = {
  prctl: {
    parameters: ["i32", "u64", "u64", "u64", "u64"],
    result: "i32",
  },
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
  sigaction: { parameters: ["i32", "pointer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

const SIGUSR1 = 10;

/**
 * Sets SIGUSR1 to be ignored (Linux, with `--allow-ffi`), so that no
 * process can open Deno's inspector in this one. Deno installs its own
 * SIGUSR1 handler about 500 ms after it starts, over ours: until 5 s after
 * start, the disposition is checked every 20 ms and set back to ignored
 * once Deno's handler appears (timers that do not keep the process alive).
 * Returns false (and does nothing) where it cannot.
 */
export function ignoreInspectorSignal(): boolean {
  if (!ffiAllowed()) return false;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    return false;
  }
  const ignore = Deno.UnsafePointer.create(1n); // SIG_IGN
  // struct sigaction starts with the handler (a pointer); 256 bytes hold it all.
  const old = new BigUint64Array(32);
  const ignored = () =>
    lib.symbols.sigaction(SIGUSR1, null, new Uint8Array(old.buffer)) === 0 &&
    old[0] === 1n;
  lib.symbols.signal(SIGUSR1, ignore);
  if (!ignored()) {
    lib.close();
    return false;
  }
  const poll = setInterval(() => {
    if (!ignored()) lib.symbols.signal(SIGUSR1, ignore);
    if (performance.now() > 5000) {
      clearInterval(poll);
      lib.close();
    }
  }, 20);
  Deno.unrefTimer(poll);
  return true;
}

/** Why a process could not be made non-dumpable, or `undefined` when it was. */
export type DumpableResult = { ok: true } | { ok: false; reason: string };

/**
 * Makes this process non-dumpable (Linux, with `--allow-ffi`). Says why
 * not otherwise; never throws.
 *
 * @example Usage
 * ```ts ignore
 * import { makeNonDumpable } from "./prctl.ts";
 * const r = makeNonDumpable();
 * if (!r.ok) console.error(`still dumpable: ${r.reason}`);
 * ```
 */
export function makeNonDumpable(): DumpableResult {
  if (Deno.build.os !== "linux") {
    return { ok: false, reason: `prctl is Linux only (${Deno.build.os})` };
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { ok: false, reason: "FFI is not allowed (--allow-ffi)" };
  }
  let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
    if (lib.symbols.prctl(PR_SET_DUMPABLE, 0n, 0n, 0n, 0n) !== 0) {
      return { ok: false, reason: "prctl(PR_SET_DUMPABLE) failed" };
    }
    if (lib.symbols.prctl(PR_GET_DUMPABLE, 0n, 0n, 0n, 0n) !== 0) {
      return { ok: false, reason: "the process is still dumpable" };
    }
    return { ok: true };
  } catch (err) {
    return {
      ok: false,
      reason: `cannot call prctl: ${
        err instanceof Error ? err.message : String(err)
      }`,
    };
  } finally {
    lib?.close();
  }
}
