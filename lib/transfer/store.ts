/**
 * Where a received item is written: a temporary file beside its final
 * name, renamed into place only after verification, removed on any
 * failure; or the receiver's stdout. Shared by the native and seed
 * receivers.
 *
 * @module
 */
import type { Writer } from "../frame/reader.ts";
import { DenocatError, describeError } from "../errors.ts";
import { Sink } from "./_pump.ts";
import {
  removeCreated,
  resolveTarget,
  type Target,
  UnsafeNameError,
} from "./names.ts";
import type { AckCode } from "./protocol.ts";

/** An item the receiver will not write; `code` goes into the ack. */
export class RefusedError extends DenocatError {
  /** The ack code. */
  readonly code: AckCode;
  /** Creates a refusal with the ack `code` sent back and a one-line `message`. */
  constructor(code: AckCode, message: string, options?: ErrorOptions) {
    super(message, code === "integrity" ? 3 : 1, options);
    this.name = "RefusedError";
    this.code = code;
  }
}

/** Where items go: a directory (real path) or a single output stream. */
export type Destination =
  | { dir: string; overwrite: boolean }
  | { output: Writer };

/** An item being written. */
export interface Stored {
  /** Receives the body. */
  sink: Sink;
  /** Where it will appear (`-` for the output stream). */
  path: string;
  /** Moves the verified file into place with {@linkcode fileMode}`(mode)`. */
  commit(mode: number): Promise<void>;
  /** Removes the temporary file. Idempotent, never throws. */
  abort(): Promise<void>;
}

let umaskCache: number | undefined;

/**
 * The receiver's umask, read once (`Deno.umask()`; 0o022 where it cannot
 * be read).
 */
export function receiverUmask(): number {
  if (umaskCache === undefined) {
    try {
      umaskCache = Deno.umask();
    } catch {
      umaskCache = 0o022;
    }
  }
  return umaskCache;
}

/**
 * The permission bits a received file gets from the `mode` a peer sent:
 * only the rwx bits (never setuid, setgid or sticky), less the receiver's
 * umask, as if the receiver had created the file itself.
 *
 * @example Usage
 * ```ts
 * import { fileMode } from "./store.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(fileMode(0o777, 0o022), 0o755);
 * assertEquals(fileMode(0o6777, 0o027), 0o750);
 * assertEquals(fileMode(0o640, 0o002), 0o640);
 * ```
 */
export function fileMode(
  mode: number,
  umask: number = receiverUmask(),
): number {
  return mode & 0o777 & ~umask;
}

function tempName(dir: string, base: string): string {
  const tag = crypto.getRandomValues(new Uint8Array(6)).toHex();
  const short = base.length > 100 ? base.slice(0, 100) : base;
  return `${dir}/.${short}.denocat-${tag}.part`;
}

async function resolve(
  root: string,
  name: string,
  create: boolean,
): Promise<Target> {
  try {
    return await resolveTarget(root, name, { create });
  } catch (err) {
    if (err instanceof UnsafeNameError) {
      throw new RefusedError("unsafe-name", err.message);
    }
    throw new RefusedError("io", `cannot write ${name}: ${describeError(err)}`);
  }
}

function clash(name: string): RefusedError {
  return new RefusedError(
    "exists",
    `${name} already exists on the receiver (it needs --overwrite)`,
  );
}

/**
 * Opens `name` for writing at `dest`. Throws {@linkcode RefusedError} with
 * code `unsafe-name`, `exists` or `io` when the item cannot be written.
 * The temporary file goes into the deepest existing directory of the
 * path; missing parent directories are created only by `commit`, which
 * checks the whole path again (a symlink swapped in meanwhile is refused)
 * and removes the directories it made if the item still fails.
 *
 * @example Write, verify elsewhere, commit
 * ```ts
 * import { openItem } from "./store.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * const item = await openItem({ dir, overwrite: false }, "a/b.txt");
 * await item.sink.write(new TextEncoder().encode("hi"));
 * assertEquals([...Deno.readDirSync(dir)].length, 1); // only the temp file, no a/
 * await item.commit(0o640);
 * assertEquals(await Deno.readTextFile(`${dir}/a/b.txt`), "hi");
 * assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["a"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openItem(
  dest: Destination,
  name: string,
): Promise<Stored> {
  if ("output" in dest) {
    return {
      sink: new Sink(dest.output),
      path: "-",
      commit: () => Promise.resolve(),
      abort: () => Promise.resolve(),
    };
  }
  const target = await resolve(dest.dir, name, false);
  if (target.exists && !dest.overwrite) throw clash(name);
  const tmp = tempName(target.dir, target.base);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    // Held until closed (by us or by the kernel when we die): a temp file
    // nobody holds is stale, and the next receiver removes it.
    file.lockSync(true);
  } catch (err) {
    throw new RefusedError("io", `cannot write ${name}: ${describeError(err)}`);
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      file.close();
    } catch { /* already closed */ }
  };
  let settled = false;
  const abort = async () => {
    close();
    if (settled) return;
    settled = true;
    try {
      await Deno.remove(tmp);
    } catch { /* already gone */ }
  };
  return {
    sink: new Sink(file),
    path: target.path,
    async commit(mode: number) {
      let final: Target | undefined;
      try {
        close();
        // Only now, verified, may the item create directories: check the
        // path again on the way (it may have changed while we wrote).
        final = await resolve(dest.dir, name, true);
        if (final.exists && !dest.overwrite) throw clash(name);
        // Windows has no permission bits (Deno.chmod throws there).
        if (Deno.build.os !== "windows") {
          await Deno.chmod(tmp, fileMode(mode));
        }
        if (dest.overwrite) {
          await Deno.rename(tmp, final.path);
        } else {
          // link() never replaces: a file created meanwhile is a clash too.
          await Deno.link(tmp, final.path);
          await Deno.remove(tmp);
        }
        settled = true;
      } catch (err) {
        await abort();
        if (final) await removeCreated(final.created);
        if (err instanceof RefusedError) throw err;
        if (err instanceof Deno.errors.AlreadyExists) throw clash(name);
        throw new RefusedError(
          "io",
          `cannot write ${name}: ${describeError(err)}`,
        );
      }
    },
    abort,
  };
}
