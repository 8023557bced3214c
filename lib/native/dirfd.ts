/**
 * Directory descriptors through Deno FFI: the `*at` calls (`openat`,
 * `mkdirat`, `renameat`, `linkat`, `unlinkat`, `symlinkat`) that Deno does
 * not expose, so a receiver can create and rename entries relative to a
 * directory it holds open instead of re-walking a path string another user
 * may change between two calls. Linux only; {@linkcode dirCalls} is `null`
 * elsewhere or without `--allow-ffi`, and callers keep to the portable path.
 *
 * What Deno itself must do on a file (async writes, locks, `lstat`) goes
 * through `/proc/self/fd/N`: for a descriptor of a file that names the very
 * inode, and `/proc/self/fd/N/NAME` resolves `NAME` in the directory held
 * by `N`, without walking any path above it.
 *
 * @module
 */
import { ffiAllowed } from "./libc.ts";

const SYMBOLS = {
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  renameat: {
    parameters: ["i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
  linkat: {
    parameters: ["i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
  },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  symlinkat: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  fstatvfs: { parameters: ["i32", "buffer"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// open(2) flags differ between x86_64 and aarch64 for these two.
const ARM = Deno.build.arch === "aarch64";
const O_WRONLY = 0o1;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_DIRECTORY = ARM ? 0o40000 : 0o200000;
const O_NOFOLLOW = ARM ? 0o100000 : 0o400000;
const O_CLOEXEC = 0o2000000;
const AT_REMOVEDIR = 0x200;
const LOCK_EX = 2, LOCK_NB = 4;

/** errno values callers act on. */
export const ENOENT = 2,
  EEXIST = 17,
  ENOTDIR = 20,
  EISDIR = 21,
  ENOSPC = 28,
  ELOOP = 40,
  ENOTEMPTY = 39,
  EWOULDBLOCK = 11;

/**
 * A failed `*at` call, as the matching `Deno.errors` class where there is
 * one (so `instanceof Deno.errors.NotFound` works as with Deno's own calls),
 * with the errno in `code`.
 */
export type DirError = Error & { errno: number };

const encoder = new TextEncoder();
const cstr = (s: string) => encoder.encode(s + "\0");

/** The calls, each throwing a {@linkcode DirError} on failure. */
export interface DirCalls {
  /** Opens a directory the user named (symlinks followed: it is theirs). */
  openRoot(path: string): number;
  /**
   * Opens the directory `name` inside `dir` without following a symlink
   * (`O_NOFOLLOW | O_DIRECTORY`): a symlink fails with errno `ELOOP`,
   * anything else that is not a directory with `ENOTDIR`.
   */
  openDir(dir: number, name: string): number;
  /** `mkdirat(dir, name, mode)` (the umask applies). */
  mkdir(dir: number, name: string, mode: number): void;
  /** Creates `name` in `dir` for writing: `O_CREAT | O_EXCL | O_NOFOLLOW`. */
  createFile(dir: number, name: string, mode: number): number;
  /** Opens an existing `name` in `dir` read-only, never through a symlink. */
  openFile(dir: number, name: string): number;
  /** `renameat`: replaces `to` (never a directory by a file). */
  rename(fromDir: number, from: string, toDir: number, to: string): void;
  /** `linkat` without following: fails with `EEXIST` if `to` exists. */
  link(fromDir: number, from: string, toDir: number, to: string): void;
  /** `unlinkat`; with `dir` an empty directory (`AT_REMOVEDIR`). */
  unlink(dir: number, name: string, isDir?: boolean): void;
  /** `symlinkat(target, dir, name)`: fails with `EEXIST` if `name` exists. */
  symlink(target: string, dir: number, name: string): void;
  /** `fchmod`. */
  chmod(fd: number, mode: number): void;
  /** Bytes an unprivileged user may still write on `fd`'s file system. */
  freeBytes(fd: number): number;
  /** Takes an exclusive `flock` without waiting; false if someone holds it. */
  tryLock(fd: number): boolean;
  /** Closes a descriptor from these calls; never throws. */
  close(fd: number): void;
}

/**
 * The path under which Deno's own file calls reach `name` inside the
 * directory held by `dir` (or, without `name`, the file `dir` itself).
 *
 * @example Usage
 * ```ts
 * import { fdPath } from "./dirfd.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(fdPath(7, "a.txt"), "/proc/self/fd/7/a.txt");
 * assertEquals(fdPath(7), "/proc/self/fd/7");
 * ```
 */
export function fdPath(dir: number, name?: string): string {
  return name === undefined
    ? `/proc/self/fd/${dir}`
    : `/proc/self/fd/${dir}/${name}`;
}

function errorFor(c: Symbols, code: number, what: string): DirError {
  const p = c.strerror(code);
  const text = `${what}: ${
    p === null ? `error ${code}` : new Deno.UnsafePointerView(p).getCString()
  } (os error ${code})`;
  let err: Error;
  switch (code) {
    case ENOENT:
      err = new Deno.errors.NotFound(text);
      break;
    case EEXIST:
    case ENOTEMPTY:
      err = new Deno.errors.AlreadyExists(text);
      break;
    case 1:
    case 13:
      err = new Deno.errors.PermissionDenied(text);
      break;
    case ENOTDIR:
      err = new Deno.errors.NotADirectory(text);
      break;
    case EISDIR:
      err = new Deno.errors.IsADirectory(text);
      break;
    case ELOOP:
      err = new Deno.errors.FilesystemLoop(text);
      break;
    default:
      err = new Error(text);
  }
  return Object.assign(err, { errno: code });
}

let calls: DirCalls | null | undefined;

/**
 * The directory-descriptor calls, or `null` where FFI is unavailable
 * (another OS, no `--allow-ffi`, no `/proc`).
 * The library is opened when this module loads and stays open.
 */
export function dirCalls(): DirCalls | null {
  if (calls !== undefined) return calls;
  calls = null;
  if (!ffiAllowed()) return calls;
  let c: Symbols;
  try {
    Deno.statSync("/proc/self/fd");
    c = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch {
    return calls;
  }
  const errp = c.__errno_location();
  if (errp === null) return calls;
  const errno = new Deno.UnsafePointerView(errp);
  // The message is built only after errno is read: no allocation (and so
  // no garbage collection) runs between the failed call and the read.
  const check = (r: number, verb: string, name = ""): number => {
    if (r < 0) {
      const code = errno.getInt32();
      throw errorFor(c, code, name ? `${verb} ${name}` : verb);
    }
    return r;
  };
  const vfs = new BigUint64Array(16); // struct statvfs is 112 bytes
  const vfsBytes = new Uint8Array(vfs.buffer);
  calls = {
    openRoot: (path) =>
      check(
        c.openat(-100, cstr(path), O_DIRECTORY | O_CLOEXEC, 0),
        "cannot open",
        path,
      ),
    openDir: (dir, name) =>
      check(
        c.openat(dir, cstr(name), O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0),
        "cannot open directory",
        name,
      ),
    mkdir(dir, name, mode) {
      check(c.mkdirat(dir, cstr(name), mode), "cannot create", name);
    },
    createFile: (dir, name, mode) =>
      check(
        c.openat(
          dir,
          cstr(name),
          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
          mode,
        ),
        "cannot create",
        name,
      ),
    openFile: (dir, name) =>
      check(
        c.openat(dir, cstr(name), O_NOFOLLOW | O_CLOEXEC, 0),
        "cannot open",
        name,
      ),
    rename(fromDir, from, toDir, to) {
      check(
        c.renameat(fromDir, cstr(from), toDir, cstr(to)),
        "cannot rename to",
        to,
      );
    },
    link(fromDir, from, toDir, to) {
      check(
        c.linkat(fromDir, cstr(from), toDir, cstr(to), 0),
        "cannot link",
        to,
      );
    },
    unlink(dir, name, isDir = false) {
      check(
        c.unlinkat(dir, cstr(name), isDir ? AT_REMOVEDIR : 0),
        "cannot remove",
        name,
      );
    },
    symlink(target, dir, name) {
      check(
        c.symlinkat(cstr(target), dir, cstr(name)),
        "cannot create symlink",
        name,
      );
    },
    chmod(fd, mode) {
      check(c.fchmod(fd, mode), "cannot set the mode");
    },
    freeBytes(fd) {
      check(c.fstatvfs(fd, vfsBytes), "cannot read free space");
      // f_frsize (index 1) x f_bavail (index 4)
      return Number(vfs[1]! * vfs[4]!);
    },
    tryLock(fd) {
      if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
      const code = errno.getInt32();
      if (code === EWOULDBLOCK) return false;
      throw errorFor(c, code, "cannot lock");
    },
    close(fd) {
      c.close(fd);
    },
  };
  return calls;
}

// Opened at load, once per process: a library opened later, inside a test,
// would count as a resource that test leaked.
dirCalls();
