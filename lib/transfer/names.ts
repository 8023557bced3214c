/**
 * Names from the network are untrusted: checking a relative path before
 * any file-system call (`place.ts` then walks it inside the target
 * directory), and checking where a received symlink would point.
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

/** Longest name accepted, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 4096;
/** Default cap on a name's components (`recv --max-depth`). */
export const DEFAULT_MAX_DEPTH = 64;
/** Longest symlink target accepted, in UTF-8 bytes. */
export const MAX_TARGET_BYTES = 4096;

/**
 * Names a receiver's own temporary files have: `.<base>.denocat-<12 hex>.part`.
 * A sent name with such a component is refused, so no item can be taken for
 * a temporary file (and removed as stale) or collide with one.
 */
export const TEMP_NAME: RegExp = /^\..+\.denocat-[0-9a-f]{12}\.part$/;

// C0, DEL, C1; the bidirectional marks, overrides and isolates; line and
// paragraph separators. Each reorders or breaks what a terminal or a file
// manager shows.
const UNSAFE_CHARS =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/**
 * A component Windows reads as something else: a `:` (drive or stream), a
 * device name with or without extension, or a trailing dot or space.
 */
const WINDOWS_UNSAFE =
  /:|^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$|[. ]$|[<>"|?*]/i;

/** Options for {@linkcode checkName}. */
export interface NameOptions {
  /** Most components a name may have. @default {DEFAULT_MAX_DEPTH} */
  maxDepth?: number;
  /** The receiver's OS: Windows refuses more. @default {Deno.build.os} */
  os?: typeof Deno.build.os;
}

/** UTF-8 length of `s`, without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4; // a surrogate pair
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Checks an untrusted relative name and returns its components. Refuses
 * empty names, names over {@linkcode MAX_NAME_BYTES} bytes or with more
 * than `maxDepth` components (both checked first, in one pass), absolute
 * paths, `.` and `..` components, empty components, backslashes, control
 * characters (C0, DEL, C1), bidirectional and line/paragraph-separator
 * characters, and components named like a receiver's temporary file. On
 * Windows (`os`) it also refuses `:` (drive letters, alternate data
 * streams), reserved device names (`CON`, `NUL`, `COM1`, ...), `<>"|?*` and
 * components ending in `.` or a space, which Windows would silently change.
 * Runs in time linear in the name's length and touches no file. A string
 * second argument is the `os`.
 *
 * @example Usage
 * ```ts
 * import { checkName, UnsafeNameError } from "./names.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * assertEquals(checkName("dir/ünï.txt"), ["dir", "ünï.txt"]);
 * assertThrows(() => checkName("../etc/passwd"), UnsafeNameError, "..");
 * assertThrows(() => checkName("/etc/passwd"), UnsafeNameError, "absolute");
 * assertThrows(() => checkName("a\u0000b"), UnsafeNameError, "control");
 * assertThrows(() => checkName("a/".repeat(64) + "f"), UnsafeNameError, "65 components");
 * assertThrows(() => checkName("x\u202etxt.exe"), UnsafeNameError, "bidirectional");
 * assertThrows(() => checkName(".a.denocat-0123456789ab.part"), UnsafeNameError, "temporary");
 * ```
 */
export function checkName(
  name: string,
  options: NameOptions | typeof Deno.build.os = {},
): string[] {
  const opts = typeof options === "string" ? { os: options } : options;
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const os = opts.os ?? Deno.build.os;
  if (name.length === 0) throw new UnsafeNameError("unsafe name: empty");
  // Caps first: nothing below runs on a name above them.
  const bytes = name.length > MAX_NAME_BYTES ? name.length : utf8Length(name);
  if (bytes > MAX_NAME_BYTES) {
    throw new UnsafeNameError(
      `unsafe name ${
        show(name)
      }: too long (at least ${bytes} bytes; the limit is ${MAX_NAME_BYTES})`,
    );
  }
  let depth = 1;
  for (let i = name.indexOf("/"); i >= 0; i = name.indexOf("/", i + 1)) {
    depth++;
  }
  if (depth > maxDepth) {
    throw new UnsafeNameError(
      `unsafe name ${
        show(name)
      }: ${depth} components, more than the receiver's limit of ${maxDepth} (--max-depth)`,
    );
  }
  if (name.startsWith("/")) {
    throw new UnsafeNameError(`unsafe name ${show(name)}: absolute path`);
  }
  const bad = UNSAFE_CHARS.exec(name)?.[0];
  if (bad !== undefined) {
    const c = bad.charCodeAt(0);
    const what = c <= 0x9f
      ? "NUL or control character"
      : c === 0x2028 || c === 0x2029
      ? "line or paragraph separator"
      : "bidirectional control character";
    throw new UnsafeNameError(`unsafe name ${show(name)}: ${what}`);
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
    if (p.includes(".denocat-") && TEMP_NAME.test(p)) {
      throw new UnsafeNameError(
        `unsafe name ${
          show(name)
        }: named like a receiver's temporary file (.NAME.denocat-HEX.part)`,
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

/**
 * Where a symlink named `parts` (checked by {@linkcode checkName}) with
 * `target` would point, as components relative to the target directory;
 * throws {@linkcode UnsafeNameError} when it could point outside. The
 * rule, purely on the text: the target is relative, not empty, at most
 * {@linkcode MAX_TARGET_BYTES} bytes, free of control and reordering
 * characters, and its `..` components form a leading run that climbs no
 * higher than the directory that holds the link. (A `..` after a named
 * component would be resolved through that component, which may itself be
 * a symlink: `s/../..` with `s -> .` climbs one level more than its text
 * says, so it is refused.) The caller still checks that the existing part
 * of the result does not lead outside through symlinks already there.
 *
 * @example Usage
 * ```ts
 * import { linkDestination, UnsafeNameError } from "./names.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * assertEquals(linkDestination(["t", "sub", "l"], "../f"), ["t", "f"]);
 * assertEquals(linkDestination(["t", "l"], "./a/b"), ["t", "a", "b"]);
 * assertThrows(() => linkDestination(["t", "l"], "../../etc"), UnsafeNameError, "outside");
 * assertThrows(() => linkDestination(["t", "l"], "/etc/passwd"), UnsafeNameError, "absolute");
 * assertThrows(() => linkDestination(["t", "l"], "s/../.."), UnsafeNameError, "'..'");
 * ```
 */
export function linkDestination(parts: string[], target: string): string[] {
  const name = parts.join("/");
  const refuse = (why: string) =>
    new UnsafeNameError(
      `unsafe symlink ${show(name)} -> ${show(target)}: ${why}`,
    );
  if (target.length === 0) throw refuse("empty target");
  if (
    target.length > MAX_TARGET_BYTES || utf8Length(target) > MAX_TARGET_BYTES
  ) {
    throw refuse(`target longer than ${MAX_TARGET_BYTES} bytes`);
  }
  if (target.startsWith("/")) {
    throw refuse("absolute target (it cannot be checked to stay inside)");
  }
  if (UNSAFE_CHARS.test(target) || target.includes("\\")) {
    throw refuse("control, reordering or backslash character in the target");
  }
  const out = parts.slice(0, -1);
  let named = false;
  for (const p of target.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (named) throw refuse("'..' after a named component");
      if (out.length === 0) throw refuse("points outside the target directory");
      out.pop();
    } else {
      named = true;
      out.push(p);
    }
  }
  return out;
}
