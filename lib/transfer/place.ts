/**
 * The receiver's target directory, held so that no name from the network
 * can lead out of it. With FFI (Linux, `--allow-ffi`) it is a directory
 * descriptor: every component is opened with `O_NOFOLLOW | O_DIRECTORY`
 * relative to its parent's descriptor, and files are created, linked,
 * renamed and removed relative to the descriptor of their directory
 * (`openat`, `mkdirat`, `linkat`, `renameat`, `unlinkat`), so a local user
 * who swaps a directory for a symlink mid-transfer changes nothing. Without
 * FFI it is a path, walked with `lstat`; since path strings are resolved
 * again at every call, that mode refuses to serve a directory (or to walk
 * into one) that other users can write to.
 *
 * @module
 */
import { DenocatError } from "../errors.ts";
import { type DirCalls, dirCalls, fdPath } from "../native/dirfd.ts";
import { UnsafeNameError } from "./names.ts";
import { show } from "./show.ts";

/** A directory held during one operation. */
export interface Held {
  /** Its descriptor (FFI mode), or -1. */
  readonly fd: number;
  /** Its path, for messages (and for every call in portable mode). */
  readonly path: string;
}

/** Options for {@linkcode TargetDir.open}. */
export interface TargetOptions {
  /**
   * Use directory descriptors when FFI is available; `false` forces the
   * portable path (tests of the fallback). @default {true}
   */
  native?: boolean;
}

/** A temporary file being written in a held directory. */
export interface TempFile {
  /** Deno's handle, for the body and the lock. */
  readonly file: Deno.FsFile;
  /** Its name inside its directory. */
  readonly name: string;
  /** Sets its permission bits. */
  chmod(mode: number): Promise<void>;
  /** Closes it (idempotent). */
  close(): void;
}

let ids: { uid: number; gid: number } | null | undefined;

/**
 * This process's user and group: `Deno.uid()` needs `--allow-sys`, which
 * the binary is not given; then `/proc/self`, which belongs to the same
 * user and group.
 */
function myIds(): { uid: number; gid: number } | null {
  if (ids !== undefined) return ids;
  try {
    const [uid, gid] = [Deno.uid(), Deno.gid()];
    if (uid !== null && gid !== null) return ids = { uid, gid };
  } catch { /* no --allow-sys */ }
  try {
    // (Owned by root instead when the process is not dumpable.)
    const info = Deno.statSync("/proc/self");
    ids = info.uid !== null && info.gid !== null
      ? { uid: info.uid, gid: info.gid }
      : null;
  } catch {
    ids = null;
  }
  return ids;
}

/**
 * Whether another user may create or rename entries in a directory: it is
 * world-writable, owned by someone else, or group-writable for a group
 * other than our own (umask 002 with a private group is fine).
 */
function writableByOthers(info: Deno.FileInfo): boolean {
  const mode = info.mode ?? 0;
  if (mode & 0o002) return true;
  const me = myIds();
  if (me === null) return (mode & 0o020) !== 0;
  if (info.uid !== null && info.uid !== me.uid) return true;
  return (mode & 0o020) !== 0 && info.gid !== me.gid;
}

function walkRefusal(
  name: string,
  prefix: string,
  err: unknown,
): unknown {
  if (err instanceof Deno.errors.FilesystemLoop) {
    return new UnsafeNameError(
      `unsafe name ${
        show(name)
      }: ${prefix} is a symlink, and the receiver follows none (it could lead outside the target directory)`,
    );
  }
  if (err instanceof Deno.errors.NotADirectory) {
    return new UnsafeNameError(
      `unsafe name ${show(name)}: ${prefix} exists and is not a directory`,
    );
  }
  return err;
}

/** The outcome of {@linkcode TargetDir.walk}; release it when done. */
export class Walk {
  #target: TargetDir;
  #parts: string[];
  #anchor: Held | undefined;
  #createdFrom = -1;
  /** The deepest directory reached (held). */
  dir: Held;
  /** Components that do not exist (only without `create`). */
  missing: string[] = [];

  /** A walk of `parts` under `target`, starting (and so far ending) at `start`. */
  constructor(target: TargetDir, parts: string[], start: Held) {
    this.#target = target;
    this.#parts = parts;
    this.dir = start;
  }

  /** @internal Records that `parts[i]` was created inside `parent`. */
  noteCreated(i: number, parent: Held): boolean {
    if (this.#createdFrom >= 0) return false;
    this.#createdFrom = i;
    this.#anchor = parent;
    return true;
  }

  /** Relative paths of the directories this walk created, outermost first. */
  get created(): string[] {
    if (this.#createdFrom < 0) return [];
    const out: string[] = [];
    for (let i = this.#createdFrom; i < this.#parts.length; i++) {
      out.push(this.#parts.slice(0, i + 1).join("/"));
    }
    return out;
  }

  /** Removes the directories this walk created, deepest first, while empty. */
  removeCreated(): void {
    if (this.#createdFrom < 0 || !this.#anchor) return;
    this.#target.removeChain(
      this.#anchor,
      this.#parts.slice(this.#createdFrom),
    );
    this.#createdFrom = -1;
  }

  /** Lets go of the held directories. Idempotent. */
  release(): void {
    this.#target.release(this.dir);
    if (this.#anchor) this.#target.release(this.#anchor);
    this.#anchor = undefined;
  }
}

/**
 * The target directory of a receiver.
 *
 * @example Walk, create, write, link
 * ```ts
 * import { TargetDir } from "./place.ts";
 * import { assertEquals } from "../_assert.ts";
 * const tmp = await Deno.makeTempDir();
 * using root = await TargetDir.open(tmp, { native: false });
 * const w = await root.walk(["a", "b"], true, "a/b/f");
 * assertEquals(w.created, ["a", "a/b"]);
 * const t = await root.createTemp(w.dir, ".f.tmp");
 * await t.file.write(new TextEncoder().encode("hi"));
 * t.close();
 * await root.link(w.dir, t.name, w.dir, "f");
 * await root.unlink(w.dir, t.name);
 * w.release();
 * assertEquals(await Deno.readTextFile(`${tmp}/a/b/f`), "hi");
 * await Deno.remove(tmp, { recursive: true });
 * ```
 */
export class TargetDir implements Disposable {
  /** The real path of the directory. */
  readonly path: string;
  /** Whether directory descriptors are in use. */
  readonly native: boolean;
  #c: DirCalls | null;
  #root: Held;
  #closed = false;

  private constructor(path: string, c: DirCalls | null, fd: number) {
    this.path = path;
    this.#c = c;
    this.native = c !== null;
    this.#root = { fd, path };
  }

  /**
   * Opens `dir` (which must exist). In portable mode, throws a one-line
   * `DenocatError` when other users can write to it.
   */
  static async open(
    dir: string,
    options: TargetOptions = {},
  ): Promise<TargetDir> {
    const path = await Deno.realPath(dir);
    const c = options.native === false ? null : dirCalls();
    if (c) return new TargetDir(path, c, c.openRoot(path));
    const info = await Deno.stat(path);
    if (!info.isDirectory) {
      throw new DenocatError(`cannot receive into ${dir}: not a directory`);
    }
    if (writableByOthers(info)) {
      throw new DenocatError(
        `cannot receive into ${dir}: other users can write to it, and without FFI (Linux, --allow-ffi) the receiver cannot guard it against a symlink swapped in; use a directory only you can write to`,
      );
    }
    return new TargetDir(path, null, -1);
  }

  /** The root itself, held for the target's lifetime. */
  get root(): Held {
    return this.#root;
  }

  /**
   * Walks the directories `parts` from the root, never through a symlink.
   * Without `create` it stops at the first missing one (`missing` lists the
   * rest); with `create` it makes them (the umask applies). A symlink or a
   * non-directory on the way is an {@linkcode UnsafeNameError} naming
   * `name`. Time and calls are linear in the number of components.
   */
  async walk(parts: string[], create: boolean, name: string): Promise<Walk> {
    const w = new Walk(this, parts, this.#root);
    const c = this.#c;
    let cur = this.#root;
    let i = 0;
    const prefix = () => parts.slice(0, i + 1).join("/");
    try {
      for (; i < parts.length; i++) {
        const part = parts[i]!;
        if (c) {
          let fd: number;
          let made = false;
          try {
            fd = c.openDir(cur.fd, part);
          } catch (err) {
            if (err instanceof Deno.errors.NotADirectory) {
              // O_DIRECTORY answers ENOTDIR for a symlink too: which is it?
              const info = await lstatOrNull(fdPath(cur.fd, part));
              if (info?.isSymlink) throw new Deno.errors.FilesystemLoop(part);
            }
            if (!(err instanceof Deno.errors.NotFound)) throw err;
            if (!create) {
              w.missing = parts.slice(i);
              break;
            }
            try {
              c.mkdir(cur.fd, part, 0o777);
              made = true;
            } catch (err) {
              if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
            }
            fd = c.openDir(cur.fd, part);
          }
          // The parent of the first directory made stays open (removeCreated).
          if (!(made && w.noteCreated(i, cur))) this.release(cur);
          cur = { fd, path: "" };
        } else {
          const next = `${cur.path}/${part}`;
          let info = await lstatOrNull(next);
          if (info === null) {
            if (!create) {
              w.missing = parts.slice(i);
              break;
            }
            try {
              await Deno.mkdir(next);
              w.noteCreated(i, cur);
            } catch (err) {
              if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
            }
            info = await Deno.lstat(next);
          }
          if (info.isSymlink) throw new Deno.errors.FilesystemLoop(next);
          if (!info.isDirectory) throw new Deno.errors.NotADirectory(next);
          if (writableByOthers(info)) {
            throw new UnsafeNameError(
              `unsafe name ${
                show(name)
              }: ${prefix()} is writable by other users, which this receiver cannot guard without FFI`,
            );
          }
          cur = { fd: -1, path: next };
        }
      }
    } catch (err) {
      this.release(cur);
      w.dir = this.#root;
      w.removeCreated();
      w.release();
      throw walkRefusal(name, prefix(), err);
    }
    const reached = parts.length - w.missing.length;
    w.dir = c
      ? {
        fd: cur.fd,
        path: reached
          ? `${this.path}/${parts.slice(0, reached).join("/")}`
          : this.path,
      }
      : cur;
    return w;
  }

  /** `lstat` of `base` inside `dir`; `null` when it does not exist. */
  lstat(dir: Held, base: string): Promise<Deno.FileInfo | null> {
    return lstatOrNull(this.#at(dir, base));
  }

  /** Creates `name` in `dir` (never through a symlink), mode 0600, locked. */
  async createTemp(dir: Held, name: string): Promise<TempFile> {
    const c = this.#c;
    let fd = -1;
    let file: Deno.FsFile;
    if (c) {
      fd = c.createFile(dir.fd, name, 0o600);
      try {
        // The very inode we created, whatever its name points to now.
        file = await Deno.open(fdPath(fd), { write: true });
      } catch (err) {
        c.close(fd);
        throw err;
      }
    } else {
      file = await Deno.open(`${dir.path}/${name}`, {
        write: true,
        createNew: true,
        mode: 0o600,
      });
    }
    try {
      // Held until closed (by us or by the kernel when we die): a temp file
      // nobody holds is stale, and the next receiver removes it.
      file.lockSync(true);
    } catch (err) {
      file.close();
      if (c) c.close(fd);
      throw err;
    }
    let closed = false;
    const path = `${dir.path}/${name}`;
    return {
      file,
      name,
      chmod: async (mode) => {
        if (c) c.chmod(fd, mode);
        // Windows has no permission bits (Deno.chmod throws there).
        else if (Deno.build.os !== "windows") await Deno.chmod(path, mode);
      },
      close() {
        if (closed) return;
        closed = true;
        try {
          file.close();
        } catch { /* closed */ }
        if (c) c.close(fd);
      },
    };
  }

  /** Hard-links `from` in `fromDir` as `to` in `toDir`; fails if `to` exists. */
  async link(fromDir: Held, from: string, toDir: Held, to: string) {
    if (this.#c) this.#c.link(fromDir.fd, from, toDir.fd, to);
    else await Deno.link(this.#at(fromDir, from), this.#at(toDir, to));
  }

  /** Renames `from` in `fromDir` over `to` in `toDir`. */
  async rename(fromDir: Held, from: string, toDir: Held, to: string) {
    if (this.#c) this.#c.rename(fromDir.fd, from, toDir.fd, to);
    else await Deno.rename(this.#at(fromDir, from), this.#at(toDir, to));
  }

  /** Removes the file (or empty directory, `isDir`) `name` in `dir`. */
  async unlink(dir: Held, name: string, isDir = false) {
    if (this.#c) this.#c.unlink(dir.fd, name, isDir);
    else await Deno.remove(this.#at(dir, name));
  }

  /** Creates the symlink `name` -> `target` in `dir`; fails if it exists. */
  async symlink(target: string, dir: Held, name: string) {
    if (this.#c) this.#c.symlink(target, dir.fd, name);
    else await Deno.symlink(target, this.#at(dir, name));
  }

  /** Sets the mode of the held directory itself. */
  async chmodDir(dir: Held, mode: number) {
    if (this.#c) this.#c.chmod(dir.fd, mode);
    else if (Deno.build.os !== "windows") await Deno.chmod(dir.path, mode);
  }

  /**
   * Bytes an unprivileged user may still write under the root (`statvfs`),
   * or `undefined` without FFI.
   */
  freeBytes(): number | undefined {
    return this.#c?.freeBytes(this.#root.fd);
  }

  /** Names in `dir` (a held directory). */
  async list(dir: Held): Promise<Deno.DirEntry[]> {
    return await Array.fromAsync(
      Deno.readDir(this.#c ? fdPath(dir.fd) : dir.path),
    );
  }

  /** Holds the subdirectory `name` of `dir`, never through a symlink. */
  async child(dir: Held, name: string): Promise<Held> {
    const path = `${dir.path}/${name}`;
    if (this.#c) return { fd: this.#c.openDir(dir.fd, name), path };
    const info = await Deno.lstat(path);
    if (!info.isDirectory) throw new Deno.errors.NotADirectory(path);
    return { fd: -1, path };
  }

  /**
   * Whether `name` in `dir` is a regular file no process holds a lock on
   * (opened without following a symlink, locked and released at once).
   */
  async unlocked(dir: Held, name: string): Promise<boolean> {
    const c = this.#c;
    if (c) {
      let fd: number;
      try {
        fd = c.openFile(dir.fd, name);
      } catch {
        return false;
      }
      try {
        return c.tryLock(fd);
      } catch {
        return false;
      } finally {
        c.close(fd);
      }
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.#at(dir, name), { read: true });
    } catch {
      return false;
    }
    try {
      return await file.tryLock(true);
    } catch {
      return false;
    } finally {
      file.close();
    }
  }

  /** @internal Removes `chain` below `anchor`, deepest first, while empty. */
  removeChain(anchor: Held, chain: string[]): void {
    const c = this.#c;
    if (c) {
      const down = (parent: number, i: number): boolean => {
        if (i < chain.length - 1) {
          let fd: number;
          try {
            fd = c.openDir(parent, chain[i]!);
          } catch {
            return false;
          }
          const ok = down(fd, i + 1);
          c.close(fd);
          if (!ok) return false;
        }
        try {
          c.unlink(parent, chain[i]!, true);
          return true;
        } catch {
          return false; // not empty (another item uses it) or gone
        }
      };
      down(anchor.fd, 0);
      return;
    }
    for (let i = chain.length; i > 0; i--) {
      try {
        Deno.removeSync(`${anchor.path}/${chain.slice(0, i).join("/")}`);
      } catch {
        return;
      }
    }
  }

  /** Lets go of a held directory (never the root). */
  release(dir: Held): void {
    if (this.#c && dir.fd >= 0 && dir.fd !== this.#root.fd) {
      this.#c.close(dir.fd);
    }
  }

  #at(dir: Held, name: string): string {
    return this.#c ? fdPath(dir.fd, name) : `${dir.path}/${name}`;
  }

  /** Closes the root descriptor. Idempotent. */
  [Symbol.dispose](): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#c) this.#c.close(this.#root.fd);
  }
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}
