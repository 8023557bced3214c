/**
 * `prctl(PR_SET_DUMPABLE, 0)` through Deno FFI: a process that is not
 * dumpable writes no core file, cannot be attached with ptrace by other
 * processes of its user, and its `/proc/PID/environ`, `mem`, `maps` and
 * `fd/` belong to root, so the commands a shell server runs (same user)
 * cannot read its token from there. `/proc/PID/cmdline` stays readable by
 * everyone: a token given with `--token` is visible whatever this does.
 *
 * @module
 */

const PR_SET_DUMPABLE = 4;
const PR_GET_DUMPABLE = 3;

const SYMBOLS = {
  prctl: {
    parameters: ["i32", "u64", "u64", "u64", "u64"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

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
