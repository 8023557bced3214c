/**
 * Peer-supplied text made safe to print: names and messages from the
 * network never reach a terminal with control characters (ESC sequences,
 * BEL, C1 CSI) or invisible reordering marks in them.
 *
 * @module
 */
import type { Logger } from "../log.ts";

// C0, DEL, C1, and the bidirectional / line-separator marks that reorder or
// break what a terminal shows.
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const escapeChar = (c: string) =>
  `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/**
 * Replaces every control or reordering character of `text` with a visible
 * `\uXXXX` escape and cuts it to `max` characters (marked `…`).
 *
 * @example Usage
 * ```ts
 * import { escapeText } from "./show.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(escapeText("a\x1b[2Jb\u009b1m"), "a\\u001b[2Jb\\u009b1m");
 * assertEquals(escapeText("abcdef", 3), "abc…");
 * ```
 */
export function escapeText(text: string, max = 500): string {
  const cut = text.length > max ? text.slice(0, max) + "…" : text;
  return cut.replace(UNSAFE, escapeChar);
}

/**
 * A peer-supplied name as printed everywhere: JSON-quoted, control and
 * reordering characters escaped, cut to `max` characters.
 *
 * @example Usage
 * ```ts
 * import { show } from "./show.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(show("ok.txt"), '"ok.txt"');
 * assertEquals(show("\x1b]0;title\x07"), '"\\u001b]0;title\\u0007"');
 * assertEquals(show("a\u009bb\u202ec"), '"a\\u009bb\\u202ec"');
 * ```
 */
export function show(name: string, max = 80): string {
  const cut = name.length > max ? name.slice(0, max) + "…" : name;
  // JSON escapes C0, quotes and backslashes; the rest is ours.
  return JSON.stringify(cut).replace(UNSAFE, escapeChar);
}

/**
 * `logger` with {@linkcode escapeText} applied to every line, for loggers
 * that print what peers sent.
 *
 * @example Usage
 * ```ts
 * import { safeLogger } from "./show.ts";
 * import { assertEquals } from "../_assert.ts";
 * const lines: string[] = [];
 * safeLogger({ enabled: true, log: (m) => lines.push(m) }).log("x\x1b[31m");
 * assertEquals(lines, ["x\\u001b[31m"]);
 * ```
 */
export function safeLogger(logger: Logger): Logger {
  return {
    enabled: logger.enabled,
    log: (message) => logger.log(escapeText(message, 4096)),
  };
}
