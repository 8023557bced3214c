/**
 * Directory and symlink items (protocol version 2) as the receiver makes
 * them: a directory with any missing parents and its mode, a symlink only
 * when it stays inside the target directory. Both go through the held
 * directory of `place.ts`, like files.
 *
 * @module
 */
import { show } from "./show.ts";
import { linkDestination, UnsafeNameError } from "./names.ts";
import type { TargetDir, Walk } from "./place.ts";
import {
  checkItemName,
  clash,
  type Destination,
  fileMode,
  holdRoot,
  ioError,
  RefusedError,
  type Session,
  tempName,
} from "./store.ts";

/**
 * Creates the directory item `name` (and any missing parent), never
 * through a symlink, and sets its mode ({@linkcode fileMode}) when this
 * connection created it or with `overwrite`; a directory that was there
 * before keeps its mode. An existing non-directory is refused.
 */
export async function makeDir(
  dest: Destination,
  name: string,
  mode: number,
  session?: Session,
): Promise<void> {
  if ("output" in dest) {
    throw new RefusedError(
      "refused",
      "this receiver writes a single item to stdout",
    );
  }
  const parts = checkItemName(name, dest.maxDepth);
  const { root, owned } = await holdRoot(dest);
  let walk: Walk | undefined;
  try {
    walk = await root.walk(parts, true, name);
    const created = walk.created;
    if (created.at(-1) === name || session?.has(name) || dest.overwrite) {
      await root.chmodDir(walk.dir, fileMode(mode));
    }
    for (const d of created) session?.add(d);
  } catch (err) {
    walk?.removeCreated();
    throw ioError(name, err);
  } finally {
    walk?.release();
    if (owned) root[Symbol.dispose]();
  }
}

/**
 * Creates the symlink item `name` -> `target`, only when the target stays
 * inside the target directory: by its text (see `linkDestination`) and
 * through every symlink already on its way. Without `overwrite` an
 * existing name is a clash; with it, a file or symlink is replaced (never
 * a directory).
 */
export async function makeSymlink(
  dest: Destination,
  name: string,
  target: string,
  session?: Session,
): Promise<void> {
  if ("output" in dest) {
    throw new RefusedError(
      "refused",
      "this receiver writes a single item to stdout",
    );
  }
  const parts = checkItemName(name, dest.maxDepth);
  const base = parts.at(-1)!;
  const { root, owned } = await holdRoot(dest);
  let walk: Walk | undefined;
  try {
    const points = linkDestination(parts, target);
    if (points.length > (dest.maxDepth ?? 64)) {
      throw new UnsafeNameError(
        `unsafe symlink ${show(name)}: its target has too many components`,
      );
    }
    walk = await root.walk(parts.slice(0, -1), true, name);
    await checkResolvesInside(root, points, name, target);
    const there = await root.lstat(walk.dir, base);
    if (there?.isDirectory) {
      throw new UnsafeNameError(
        `unsafe name ${show(name)}: the target is a directory`,
      );
    }
    if (there && !dest.overwrite) throw clash(name);
    if (there) {
      // Replace atomically: a new link beside it, renamed over it.
      const tmp = tempName(base);
      await root.symlink(target, walk.dir, tmp);
      try {
        await root.rename(walk.dir, tmp, walk.dir, base);
      } catch (err) {
        await root.unlink(walk.dir, tmp).catch(() => {});
        throw err;
      }
    } else {
      await root.symlink(target, walk.dir, base);
    }
    for (const d of walk.created) session?.add(d);
  } catch (err) {
    walk?.removeCreated();
    throw ioError(name, err);
  } finally {
    walk?.release();
    if (owned) root[Symbol.dispose]();
  }
}

function inside(root: string, path: string): boolean {
  return path === root ||
    path.startsWith(root.endsWith("/") ? root : root + "/");
}

/**
 * Follows the existing part of `points` (components under the root): any
 * symlink on the way must resolve inside the root; a dangling one is
 * refused (it could be made to point anywhere later).
 */
async function checkResolvesInside(
  root: TargetDir,
  points: string[],
  name: string,
  target: string,
): Promise<void> {
  let path = root.path;
  for (const p of points) {
    path = `${path}/${p}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      return; // missing (or under a file): nothing further exists yet
    }
    if (info.isSymlink) {
      let real: string;
      try {
        real = await Deno.realPath(path);
      } catch {
        throw new UnsafeNameError(
          `unsafe symlink ${show(name)} -> ${
            show(target)
          }: it passes through a symlink that leads nowhere`,
        );
      }
      if (!inside(root.path, real)) {
        throw new UnsafeNameError(
          `unsafe symlink ${show(name)} -> ${
            show(target)
          }: it leads outside the target directory through an existing symlink`,
        );
      }
      path = real;
    } else if (!info.isDirectory) {
      return;
    }
  }
}
