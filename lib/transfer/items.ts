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
  | { kind: "stream"; name: string; reader: Reader; mode?: number }
  | { kind: "dir"; name: string; mode: number }
  | { kind: "symlink"; name: string; target: string };

/** Options for {@linkcode collectItems}. */
export interface CollectOptions {
  /** Descend into directories (`-r`). @default {false} */
  recursive?: boolean;
  /** The reader used for `-`. @default {Deno.stdin} */
  stdin?: Reader;
  /** Name given to the stdin stream. @default {"stdin"} */
  stdinName?: string;
  /**
   * Inside trees, follow symlinks and send what they point to (`-L`);
   * otherwise a symlink is sent as a symlink. Symlinks named on the command
   * line are always followed. @default {false}
   */
  followLinks?: boolean;
  /**
   * Told about everything left out of a tree: sockets, FIFOs, devices, and
   * with `followLinks` broken symlinks and symlink loops.
   */
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

interface Walker {
  out: SendItem[];
  follow: boolean;
  onSkip: ((path: string, why: string) => void) | undefined;
  /** `dev:ino` of the directories being walked (loops under `-L`). */
  ancestors: Set<string>;
}

const idOf = (info: Deno.FileInfo) => `${info.dev}:${info.ino}`;

/** Sends `dir` as `prefix`: its contents first, then the directory itself. */
async function walk(
  dir: string,
  prefix: string,
  info: Deno.FileInfo,
  w: Walker,
): Promise<void> {
  const id = idOf(info);
  if (w.ancestors.has(id)) {
    w.onSkip?.(dir, "symlink loop (a directory inside itself)");
    return;
  }
  w.ancestors.add(id);
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    const name = `${prefix}/${e.name}`;
    let st: Deno.FileInfo;
    if (e.isSymlink && !w.follow) {
      w.out.push({ kind: "symlink", name, target: await Deno.readLink(path) });
      continue;
    }
    try {
      st = e.isSymlink ? await Deno.stat(path) : await Deno.lstat(path);
    } catch (err) {
      if (e.isSymlink && err instanceof Deno.errors.NotFound) {
        w.onSkip?.(path, "broken symlink (-L follows symlinks)");
        continue;
      }
      if (err instanceof Deno.errors.FilesystemLoop) {
        w.onSkip?.(path, "symlink loop");
        continue;
      }
      throw err;
    }
    if (st.isDirectory) {
      await walk(path, name, st, w);
    } else if (st.isFile) {
      w.out.push({
        kind: "file",
        path,
        name,
        size: st.size,
        mode: (st.mode ?? 0o644) & 0o777,
      });
    } else {
      w.onSkip?.(path, "not a regular file, directory or symlink");
    }
  }
  w.ancestors.delete(id);
  w.out.push({ kind: "dir", name: prefix, mode: (info.mode ?? 0o755) & 0o777 });
}

/**
 * Turns paths into items: `-` (or no path at all) is stdin, a file is sent
 * under its base name, a directory (with `recursive`) as
 * `dirname/relative/path` for everything inside it: regular files,
 * directories (each after its contents, so its mode can be set last, and
 * empty ones too) and symlinks as symlinks (with `followLinks`, what they
 * point to). Paths named here are followed if they are symlinks, as `cp -H`
 * does. Other kinds of file inside a tree go to `onSkip`.
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
 * assertEquals(items.map((i) => i.name), ["top/a.txt", "top/sub/b.txt", "top/sub", "top"]);
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
      await walk(p.replace(/\/+$/, "") || "/", base, info, {
        out,
        follow: options.followLinks ?? false,
        onSkip: options.onSkip,
        ancestors: new Set(),
      });
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
