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
import { show } from "./show.ts";
import {
  checkName,
  MAX_NAME_BYTES,
  UnsafeNameError,
  utf8Length,
} from "./names.ts";
import { type Held, TargetDir, type Walk } from "./place.ts";
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

/** Where items go: a directory or a single output stream. */
export type Destination =
  | {
    /** The directory (a path; `root` holds it when given). */
    dir: string;
    /** Replace existing files and symlinks. */
    overwrite: boolean;
    /** The directory, held; opened per item when absent. */
    root?: TargetDir;
    /** Most components of a name. @default {DEFAULT_MAX_DEPTH} */
    maxDepth?: number;
  }
  | { output: Writer };

/** What one connection created, so a directory item may set its mode. */
export type Session = Set<string>;

/** An item being written. */
export interface Stored {
  /** Receives the body. */
  sink: Sink;
  /** Where it will appear (`-` for the output stream). */
  path: string;
  /** Moves the verified file into place with {@linkcode fileMode}`(mode)`. */
  commit(mode: number): Promise<void>;
  /** Body bytes written so far. */
  readonly written: number;
  /** The body size announced, if any. */
  readonly size?: number | undefined;
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

/** At most 100 bytes of `base`, cut between characters. */
function shortBase(base: string): string {
  if (base.length <= 33) return base; // 33 UTF-16 units are <= 100 bytes
  let out = "";
  for (const ch of base) {
    if (utf8Length(out + ch) > 100) break;
    out += ch;
  }
  return out;
}

/** A fresh temporary name for `base` (see `TEMP_NAME`). */
export function tempName(base: string): string {
  const tag = crypto.getRandomValues(new Uint8Array(6)).toHex();
  // A short base keeps the whole name under NAME_MAX (255 bytes).
  return `.${shortBase(base)}.denocat-${tag}.part`;
}

/** The `exists` refusal for `name`. */
export function clash(name: string): RefusedError {
  return new RefusedError(
    "exists",
    `${name} already exists on the receiver (it needs --overwrite)`,
  );
}

/** Any failure while storing `name`, as the refusal the sender is told. */
export function ioError(name: string, err: unknown): RefusedError {
  if (err instanceof RefusedError) return err;
  if (err instanceof UnsafeNameError) {
    return new RefusedError("unsafe-name", err.message);
  }
  if (err instanceof Deno.errors.AlreadyExists) return clash(name);
  const why = describeError(err);
  return new RefusedError(
    /os error 28\b/.test(why) ? "no-space" : "io",
    `cannot write ${name}: ${why}`,
  );
}

/** Checks a name as {@linkcode checkName} does, as a refusal. */
export function checkItemName(name: string, maxDepth?: number): string[] {
  try {
    return checkName(name, maxDepth !== undefined ? { maxDepth } : {});
  } catch (err) {
    throw ioError(name, err);
  }
}

/** The final component of `dir` must be absent, or a file we may replace. */
async function checkFinal(
  root: TargetDir,
  dir: Held,
  base: string,
  name: string,
  overwrite: boolean,
): Promise<boolean> {
  const info = await root.lstat(dir, base);
  if (info === null) return false;
  if (info.isDirectory) {
    throw new RefusedError(
      "unsafe-name",
      `unsafe name ${show(name)}: the target is a directory`,
    );
  }
  if (info.isSymlink && !overwrite) {
    throw new RefusedError(
      "unsafe-name",
      `unsafe name ${show(name)}: the target is a symlink`,
    );
  }
  if (!overwrite) throw clash(name);
  return true;
}

/** A destination that is a directory. */
export type DirDest = Exclude<Destination, { output: Writer }>;

/** The destination's held directory, or one opened for this item (`owned`). */
export async function holdRoot(
  dest: DirDest,
): Promise<{ root: TargetDir; owned: boolean }> {
  if (dest.root) return { root: dest.root, owned: false };
  try {
    return { root: await TargetDir.open(dest.dir), owned: true };
  } catch (err) {
    throw new RefusedError("io", describeError(err));
  }
}

/** Options for {@linkcode openItem}. */
export interface OpenOptions {
  /** The body size announced, to check free space before accepting it. */
  size?: number;
  /** This connection's created directories (see {@linkcode Session}). */
  session?: Session;
}

/** Bytes promised to items being written, per target directory. */
const promised = new WeakMap<TargetDir, Set<Stored>>();

/**
 * Opens `name` for writing at `dest`. Throws {@linkcode RefusedError} with
 * code `unsafe-name`, `exists`, `no-space` or `io` when the item cannot be
 * written. The temporary file goes into the deepest existing directory of
 * the path; missing parent directories are created only by `commit`, which
 * walks the path again (a symlink swapped in meanwhile is refused) and
 * removes the directories it made if the item still fails. Every call is
 * relative to a directory the receiver holds (see `place.ts`).
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
  options: OpenOptions = {},
): Promise<Stored> {
  if ("output" in dest) {
    const sink = new Sink(dest.output);
    return {
      sink,
      path: "-",
      written: 0,
      commit: () => Promise.resolve(),
      abort: () => Promise.resolve(),
    };
  }
  const parts = checkItemName(name, dest.maxDepth);
  const base = parts.at(-1)!;
  const parents = parts.slice(0, -1);
  const { root, owned } = await holdRoot(dest);
  let walk: Walk | undefined;
  let tmp: Awaited<ReturnType<TargetDir["createTemp"]>> | undefined;
  let settled = false;
  const me: { stored?: Stored } = {};
  const release = async (removeTemp: boolean) => {
    if (settled) return;
    settled = true;
    tmp?.close();
    if (removeTemp && tmp && walk) {
      await root.unlink(walk.dir, tmp.name).catch(() => {});
    }
    walk?.release();
    if (me.stored) promised.get(root)?.delete(me.stored);
    if (owned) root[Symbol.dispose]();
  };
  try {
    walk = await root.walk(parents, false, name);
    if (walk.missing.length === 0) {
      await checkFinal(root, walk.dir, base, name, dest.overwrite);
    }
    if (options.size !== undefined) checkSpace(root, name, options.size);
    tmp = await root.createTemp(walk.dir, tempName(base));
  } catch (err) {
    await release(true);
    throw ioError(name, err);
  }
  const held = walk;
  const temp = tmp;
  const path = `${root.path}/${name}`;
  let written = 0;
  const counted = {
    write: async (p: Uint8Array) => {
      const n = await temp.file.write(p);
      written += n;
      return n;
    },
  };
  const stored: Stored = me.stored = {
    sink: new Sink(counted),
    path,
    get written() {
      return written;
    },
    size: options.size,
    async commit(mode: number) {
      let final: Walk | undefined;
      try {
        // Only now, verified, may the item create directories: walk the
        // path again (it may have changed while we wrote).
        final = await root.walk(parents, true, name);
        await checkFinal(root, final.dir, base, name, dest.overwrite);
        await temp.chmod(fileMode(mode));
        temp.close();
        if (dest.overwrite) {
          await root.rename(held.dir, temp.name, final.dir, base);
        } else {
          // link() never replaces: a file created meanwhile is a clash too.
          await root.link(held.dir, temp.name, final.dir, base);
          await root.unlink(held.dir, temp.name);
        }
        for (const d of final.created) options.session?.add(d);
        await release(false);
      } catch (err) {
        final?.removeCreated();
        await release(true);
        throw ioError(name, err);
      } finally {
        final?.release();
      }
    },
    abort: () => release(true),
  };
  if (options.size !== undefined) {
    let set = promised.get(root);
    if (!set) promised.set(root, set = new Set());
    set.add(stored);
  }
  return stored;
}

function checkSpace(root: TargetDir, name: string, size: number): void {
  const free = root.freeBytes();
  if (free === undefined) return;
  let owed = 0;
  for (const s of promised.get(root) ?? []) {
    owed += Math.max(0, (s.size ?? 0) - s.written);
  }
  if (size > free - owed) {
    throw new RefusedError(
      "no-space",
      `${name}: ${size} bytes do not fit: the receiver has ${
        Math.max(0, free - owed)
      } bytes free`,
    );
  }
}

/** Longest name accepted, in bytes (re-exported for callers of the store). */
export { MAX_NAME_BYTES };
