/**
 * Names from the network are untrusted: checking a relative path and
 * resolving it inside a target directory without ever leaving it, through
 * `..` or through symlinks.
 *
 * @module
 */
import { DenocatError } from "../errors.ts";
import { show } from "./show.ts";

/** A name the receiver refuses; the message says why. */
export class UnsafeNameError extends DenocatError {
  /** Creates the error with a one-line `message` saying why the name is refused. */
  constructor(message: string) {
    super(message, 1);
    this.name = "UnsafeNameError";
  }
}

/**
 * A component Windows reads as something else: a `:` (drive or stream), a
 * device name with or without extension, or a trailing dot or space.
 */
const WINDOWS_UNSAFE =
  /:|^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$|[. ]$|[<>"|?*]/i;

/** Longest name accepted, in UTF-16 units. */
export const MAX_NAME_LENGTH = 4096;

/**
 * Checks an untrusted relative name and returns its components. Refuses
 * empty names, absolute paths, `.` and `..` components, empty components,
 * backslashes, NUL and control characters (C0, DEL, C1), and names longer
 * than {@linkcode MAX_NAME_LENGTH}. On Windows (`os`) it also refuses `:`
 * (drive letters, alternate data streams), reserved device names (`CON`,
 * `NUL`, `COM1`, ...) and components ending in `.` or a space, which
 * Windows would silently change.
 *
 * @example Usage
 * ```ts
 * import { checkName, UnsafeNameError } from "./names.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * assertEquals(checkName("dir/ünï.txt"), ["dir", "ünï.txt"]);
 * assertThrows(() => checkName("../etc/passwd"), UnsafeNameError, "..");
 * assertThrows(() => checkName("/etc/passwd"), UnsafeNameError, "absolute");
 * assertThrows(() => checkName("a\u0000b"), UnsafeNameError, "control");
 * ```
 */
export function checkName(
  name: string,
  os: typeof Deno.build.os = Deno.build.os,
): string[] {
  if (name.length === 0) throw new UnsafeNameError("unsafe name: empty");
  if (name.length > MAX_NAME_LENGTH) {
    throw new UnsafeNameError(`unsafe name ${show(name)}: too long`);
  }
  if (name.startsWith("/")) {
    throw new UnsafeNameError(`unsafe name ${show(name)}: absolute path`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
    throw new UnsafeNameError(
      `unsafe name ${show(name)}: NUL or control character`,
    );
  }
  if (name.includes("\\")) {
    throw new UnsafeNameError(`unsafe name ${show(name)}: backslash`);
  }
  const parts = name.split("/");
  for (const p of parts) {
    if (p === "..") {
      throw new UnsafeNameError(`unsafe name ${show(name)}: '..' component`);
    }
    if (p === "" || p === ".") {
      throw new UnsafeNameError(
        `unsafe name ${show(name)}: empty or '.' component`,
      );
    }
    if (os === "windows" && WINDOWS_UNSAFE.test(p)) {
      throw new UnsafeNameError(
        `unsafe name ${show(name)}: not a plain file name on windows`,
      );
    }
  }
  return parts;
}

function inside(root: string, path: string): boolean {
  return path === root ||
    path.startsWith(root.endsWith("/") ? root : root + "/");
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** Where an item goes, as resolved by {@linkcode resolveTarget}. */
export interface Target {
  /**
   * The deepest directory of the path that exists (real path, inside the
   * root): the file's parent once `missing` is empty.
   */
  dir: string;
  /** Parent components that do not exist yet, outermost first. */
  missing: string[];
  /** Directories this call created (with `create`), outermost first. */
  created: string[];
  /** The final path of the file. */
  path: string;
  /** The last component of the name. */
  base: string;
  /** Whether something already exists under the final path. */
  exists: boolean;
}

/** Options for {@linkcode resolveTarget}. */
export interface ResolveOptions {
  /**
   * Create the missing parent directories (at commit time); otherwise only
   * check the ones that exist. @default {false}
   */
  create?: boolean;
}

function checkInside(root: string, real: string, name: string): void {
  if (!inside(root, real)) {
    throw new UnsafeNameError(
      `unsafe name ${show(name)}: resolves outside the target directory`,
    );
  }
}

/**
 * Resolves `name` inside `root` (a real path, e.g. from `Deno.realPath`).
 * Every existing component is checked: a symlink whose target lies outside
 * `root` is refused, as is a final component that is a symlink or a
 * directory. Missing parent directories are only listed, unless `create`
 * is set: then they are made one by one, each checked again, and listed in
 * `created` so a failed commit can remove them. Call it without `create`
 * when an item arrives and with `create` when it is committed, so refused
 * or broken items leave no directories and a symlink swapped in meanwhile
 * is caught.
 *
 * @example Check now, create at commit
 * ```ts
 * import { resolveTarget, UnsafeNameError } from "./names.ts";
 * import { assertEquals, assertRejects } from "../_assert.ts";
 * const root = await Deno.realPath(await Deno.makeTempDir());
 * const t = await resolveTarget(root, "a/b/c.txt");
 * assertEquals([t.dir, t.missing, t.path], [root, ["a", "b"], `${root}/a/b/c.txt`]);
 * assertEquals([...Deno.readDirSync(root)], []); // nothing created yet
 * const c = await resolveTarget(root, "a/b/c.txt", { create: true });
 * assertEquals([c.dir, c.created], [`${root}/a/b`, [`${root}/a`, `${root}/a/b`]]);
 * await Deno.symlink("/tmp", `${root}/out`);
 * await assertRejects(() => resolveTarget(root, "out/x"), UnsafeNameError, "outside");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function resolveTarget(
  root: string,
  name: string,
  options: ResolveOptions = {},
): Promise<Target> {
  const parts = checkName(name);
  const created: string[] = [];
  try {
    return await walkTarget(root, name, parts, created, options.create);
  } catch (err) {
    await removeCreated(created);
    throw err;
  }
}

async function walkTarget(
  root: string,
  name: string,
  parts: string[],
  created: string[],
  create: boolean | undefined,
): Promise<Target> {
  const base = parts.at(-1)!;
  const parents = parts.slice(0, -1);
  let dir = root;
  for (let i = 0; i < parents.length; i++) {
    const part = parents[i]!;
    const next = `${dir}/${part}`;
    let info = await lstatOrNull(next);
    if (info === null) {
      if (!create) {
        // Nothing below a missing directory can exist yet.
        const missing = parents.slice(i);
        const path = `${dir}/${[...missing, base].join("/")}`;
        return { dir, missing, created, path, base, exists: false };
      }
      try {
        await Deno.mkdir(next);
        created.push(next);
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
      info = await Deno.lstat(next);
    }
    if (info.isSymlink) {
      const real = await Deno.realPath(next);
      if (!inside(root, real)) {
        throw new UnsafeNameError(
          `unsafe name ${
            show(name)
          }: ${part} is a symlink leading outside the target directory`,
        );
      }
    } else if (!info.isDirectory) {
      throw new UnsafeNameError(
        `unsafe name ${show(name)}: ${part} exists and is not a directory`,
      );
    }
    // Re-check the real path after each step: nothing may lead outside.
    const real = await Deno.realPath(next);
    checkInside(root, real, name);
    dir = real;
  }
  const path = `${dir}/${base}`;
  const info = await lstatOrNull(path);
  if (info?.isSymlink) {
    throw new UnsafeNameError(
      `unsafe name ${show(name)}: the target is a symlink`,
    );
  }
  if (info?.isDirectory) {
    throw new UnsafeNameError(
      `unsafe name ${show(name)}: the target is a directory`,
    );
  }
  return { dir, missing: [], created, path, base, exists: info !== null };
}

/**
 * Removes the directories a {@linkcode resolveTarget} call created, deepest
 * first, as long as they are empty. Never throws.
 */
export async function removeCreated(created: string[]): Promise<void> {
  for (const d of created.toReversed()) {
    try {
      await Deno.remove(d);
    } catch {
      return; // not empty (another item uses it) or gone: leave the rest
    }
  }
}
