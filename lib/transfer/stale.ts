/**
 * Temporary files left behind by a receiver that died (SIGKILL, power
 * loss): each writer holds an exclusive lock on its temporary file while it
 * writes, so a temporary file of ours that nobody holds is stale.
 *
 * @module
 */

/** The temporary names `openItem` uses: `.<base>.denocat-<12 hex>.part`. */
export const TEMP_NAME: RegExp = /^\..+\.denocat-[0-9a-f]{12}\.part$/;

/** Options for {@linkcode removeStaleTemps}. */
export interface StaleOptions {
  /** Called with the path of each file removed. */
  onRemoved?: (path: string) => void;
}

async function isStale(path: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return false; // gone already, or not ours to read
  }
  try {
    return await file.tryLock(true);
  } catch {
    return false;
  } finally {
    file.close(); // releases the lock we may have taken
  }
}

/**
 * Removes, under `root` and its subdirectories (symlinks are not
 * followed), every regular file named like a receiver's temporary file
 * (`.<base>.denocat-<12 hex>.part`) that no live receiver holds locked.
 * Files of live receivers, in this process or another, are left alone.
 * Returns how many files were removed.
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
  root: string,
  options: StaleOptions = {},
): Promise<number> {
  let removed = 0;
  const dirs = [root];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      continue; // vanished or unreadable: nothing of ours to clean
    }
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) dirs.push(path);
      else if (e.isFile && TEMP_NAME.test(e.name) && await isStale(path)) {
        try {
          await Deno.remove(path);
          removed++;
          options.onRemoved?.(path);
        } catch { /* removed meanwhile */ }
      }
    }
  }
  return removed;
}
