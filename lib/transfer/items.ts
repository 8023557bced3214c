/**
 * What a sender sends: files, directory trees (with their relative paths)
 * and a stream (stdin), gathered from command-line paths.
 *
 * @module
 */
import type { Reader } from "../frame/reader.ts";
import { DenocatError, UsageError } from "../errors.ts";

/** One item to send. */
export type SendItem =
  | { kind: "file"; path: string; name: string; size: number; mode: number }
  | { kind: "stream"; name: string; reader: Reader; mode?: number };

/** Options for {@linkcode collectItems}. */
export interface CollectOptions {
  /** Descend into directories (`-r`). @default {false} */
  recursive?: boolean;
  /** The reader used for `-`. @default {Deno.stdin} */
  stdin?: Reader;
  /** Name given to the stdin stream. @default {"stdin"} */
  stdinName?: string;
  /** Told about every symlink skipped inside a directory tree. */
  onSkip?: (path: string, why: string) => void;
}

function baseName(path: string): string {
  // Windows paths may use either separator.
  const windows = Deno.build.os === "windows";
  const trimmed = path.replace(windows ? /[\\/]+$/ : /\/+$/, "");
  const cut = windows
    ? Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\"))
    : trimmed.lastIndexOf("/");
  return trimmed.slice(cut + 1);
}

async function walk(
  dir: string,
  prefix: string,
  out: SendItem[],
  onSkip?: (path: string, why: string) => void,
): Promise<void> {
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    const name = `${prefix}/${e.name}`;
    if (e.isSymlink) {
      onSkip?.(path, "symlink not followed");
    } else if (e.isDirectory) {
      await walk(path, name, out, onSkip);
    } else if (e.isFile) {
      const info = await Deno.stat(path);
      out.push({
        kind: "file",
        path,
        name,
        size: info.size,
        mode: (info.mode ?? 0o644) & 0o777,
      });
    } else {
      onSkip?.(path, "not a regular file");
    }
  }
}

/**
 * Turns paths into items: `-` (or no path at all) is stdin, a file is sent
 * under its base name, a directory (with `recursive`) as
 * `dirname/relative/path` for every regular file inside it. Symlinks inside
 * trees are skipped; empty directories are not sent.
 *
 * @example Usage
 * ```ts
 * import { collectItems } from "./items.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/top/sub`, { recursive: true });
 * await Deno.writeTextFile(`${dir}/top/sub/b.txt`, "b");
 * await Deno.writeTextFile(`${dir}/top/a.txt`, "aa");
 * const items = await collectItems([`${dir}/top`], { recursive: true });
 * assertEquals(items.map((i) => i.name), ["top/a.txt", "top/sub/b.txt"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function collectItems(
  paths: string[],
  options: CollectOptions = {},
): Promise<SendItem[]> {
  const out: SendItem[] = [];
  const list = paths.length ? paths : ["-"];
  if (list.filter((p) => p === "-").length > 1) {
    throw new UsageError("stdin (-) can be sent only once");
  }
  for (const p of list) {
    if (p === "-") {
      out.push({
        kind: "stream",
        name: options.stdinName ?? "stdin",
        reader: options.stdin ?? Deno.stdin,
      });
      continue;
    }
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(p);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new DenocatError(`cannot send ${p}: no such file or directory`);
      }
      if (err instanceof Deno.errors.PermissionDenied) {
        throw new DenocatError(`cannot send ${p}: permission denied`);
      }
      throw err;
    }
    if (info.isDirectory) {
      if (!options.recursive) {
        throw new UsageError(`${p} is a directory (use -r)`);
      }
      let base = baseName(p);
      if (base === "" || base === "." || base === "..") {
        base = baseName(await Deno.realPath(p));
      }
      if (base === "") throw new UsageError(`cannot send ${p} as a tree`);
      await walk(p.replace(/\/+$/, "") || "/", base, out, options.onSkip);
    } else if (info.isFile) {
      out.push({
        kind: "file",
        path: p,
        name: baseName(p),
        size: info.size,
        mode: (info.mode ?? 0o644) & 0o777,
      });
    } else {
      throw new DenocatError(`cannot send ${p}: not a regular file`);
    }
  }
  return out;
}
