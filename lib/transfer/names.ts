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
  constructor(message: string) {
    super(message, 1);
    this.name = "UnsafeNameError";
  }
}

/** Longest name accepted, in UTF-16 units. */
export const MAX_NAME_LENGTH = 4096;

/**
 * Checks an untrusted relative name and returns its components. Refuses
 * empty names, absolute paths, `.` and `..` components, empty components,
 * backslashes, NUL and control characters (C0, DEL, C1), and names longer
 * than {@linkcode MAX_NAME_LENGTH}.
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
export function checkName(name: string): string[] {
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
  /** The directory that will hold the file (real path, inside the root). */
  dir: string;
  /** The final path of the file. */
  path: string;
  /** The last component of the name. */
  base: string;
  /** Whether something already exists under the final path. */
  exists: boolean;
}

/**
 * Resolves `name` inside `root` (a real path, e.g. from `Deno.realPath`),
 * creating missing parent directories one by one. Every existing component
 * is checked: a symlink whose target lies outside `root` is refused, as is
 * a final component that is a symlink or a directory.
 *
 * @example Usage
 * ```ts
 * import { resolveTarget, UnsafeNameError } from "./names.ts";
 * import { assertEquals, assertRejects } from "../_assert.ts";
 * const root = await Deno.realPath(await Deno.makeTempDir());
 * const t = await resolveTarget(root, "a/b.txt");
 * assertEquals(t.path, `${root}/a/b.txt`);
 * await Deno.symlink("/tmp", `${root}/out`);
 * await assertRejects(() => resolveTarget(root, "out/x"), UnsafeNameError, "outside");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function resolveTarget(
  root: string,
  name: string,
): Promise<Target> {
  const parts = checkName(name);
  let dir = root;
  for (const part of parts.slice(0, -1)) {
    const next = `${dir}/${part}`;
    const info = await lstatOrNull(next);
    if (info === null) {
      try {
        await Deno.mkdir(next);
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
    } else if (info.isSymlink) {
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
    if (!inside(root, real)) {
      throw new UnsafeNameError(
        `unsafe name ${show(name)}: resolves outside the target directory`,
      );
    }
    dir = real;
  }
  const base = parts.at(-1)!;
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
  return { dir, path, base, exists: info !== null };
}
