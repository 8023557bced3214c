/**
 * Temporary files left behind by a receiver that died (SIGKILL, power
 * loss): each writer holds an exclusive lock on its temporary file while it
 * writes, so a temporary file of ours that nobody holds is stale.
 *
 * @module
 */

import { TEMP_NAME } from "./names.ts";

/** The temporary names `openItem` uses (defined beside the name rules). */
export { TEMP_NAME };
import { type Held, TargetDir } from "./place.ts";

/** Options for {@linkcode removeStaleTemps}. */
export interface StaleOptions {
  /** Called with the path of each file removed. */
  onRemoved?: (path: string) => void;
}

/**
 * Removes, under `root` and its subdirectories (symlinks are not
 * followed), every regular file named like a receiver's temporary file
 * (`.<base>.denocat-<12 hex>.part`) that no live receiver holds locked.
 * Files of live receivers, in this process or another, are left alone.
 * Each directory is held while it is cleaned (see `place.ts`), so a
 * directory swapped for a symlink meanwhile leads nowhere. Sent names can
 * never look like these (`checkName` refuses them). Returns how many files
 * were removed.
 *
 * @example A temporary file whose writer is gone
 * ```ts
 * import { removeStaleTemps } from "./stale.ts";
 * import { openItem } from "./store.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * const live = await openItem({ dir, overwrite: false }, "live.bin");
 * await Deno.writeFile(`${dir}/.dead.bin.denocat-0123456789ab.part`, new Uint8Array(3));
 * assertEquals(await removeStaleTemps(dir), 1);
 * assertEquals([...Deno.readDirSync(dir)].length, 1); // live's file stays
 * await live.abort();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function removeStaleTemps(
  root: string | TargetDir,
  options: StaleOptions = {},
): Promise<number> {
  const target = typeof root === "string" ? await TargetDir.open(root) : root;
  let removed = 0;
  const clean = async (dir: Held, depth: number): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await target.list(dir);
    } catch {
      return; // vanished or unreadable: nothing of ours to clean
    }
    for (const e of entries) {
      if (e.isDirectory && depth < MAX_CLEAN_DEPTH) {
        let sub: Held;
        try {
          sub = await target.child(dir, e.name);
        } catch {
          continue; // swapped for something else meanwhile
        }
        try {
          await clean(sub, depth + 1);
        } finally {
          target.release(sub);
        }
      } else if (
        e.isFile && TEMP_NAME.test(e.name) && await target.unlocked(dir, e.name)
      ) {
        try {
          await target.unlink(dir, e.name);
          removed++;
          options.onRemoved?.(`${dir.path}/${e.name}`);
        } catch { /* removed meanwhile */ }
      }
    }
  };
  try {
    await clean(target.root, 0);
  } finally {
    if (typeof root === "string") target[Symbol.dispose]();
  }
  return removed;
}

/** How deep the cleaner descends (each level holds one descriptor). */
const MAX_CLEAN_DEPTH = 256;
