/**
 * Framing choices shared by the framed stream modes (`--frame FORMAT`): which
 * frame layout, which prefix, the seeds' signed-length rule and the size cap,
 * plus the names the command line accepts for them.
 *
 * @module
 */
import { DEFAULT_MAX_FRAME_SIZE, type PrefixFormat } from "../frame/prefix.ts";

/** A frame layout: a length prefix format, or `json` for JSON-header frames. */
export type FramedFormat = PrefixFormat | "json";

/** How frames are laid out on the wire; shared by senders and receivers. */
export interface FramingOptions {
  /**
   * Length-prefixed frames in this prefix format, or `"json"` for
   * JSON-header frames (`{"total_size": n}` then the body).
   *
   * @default {"u32be"}
   */
  format?: FramedFormat;
  /**
   * With `format: "json"`: the prefix format of the header length.
   *
   * @default {"u32be"}
   */
  headerFormat?: PrefixFormat;
  /**
   * Python `struct.pack('i', n)` compatibility: a prefix of 2^31 or more is
   * refused (it is negative for Python). Senders refuse to write one.
   *
   * @default {false}
   */
  seedCompat?: boolean;
  /**
   * Largest payload (or JSON body) sent or accepted.
   *
   * @default {DEFAULT_MAX_FRAME_SIZE}
   */
  maxFrameSize?: number;
}

/** The framing names the command line accepts after `--frame`. */
export type FrameName = FramedFormat | "seed" | "seed-json";

/**
 * Every {@linkcode FrameName}, in help order.
 *
 * @example Usage
 * ```ts
 * import { FRAME_NAMES } from "./options.ts";
 * import { assertOk } from "../_assert.ts";
 * assertOk(FRAME_NAMES.includes("seed-json"));
 * ```
 */
export const FRAME_NAMES: readonly FrameName[] = Object.freeze([
  "u16be",
  "u32be",
  "u32le",
  "u64be",
  "varint",
  "json",
  "seed",
  "seed-json",
]);

/**
 * Maps a `--frame` name to {@linkcode FramingOptions}. `seed` is `u32le` with
 * `seedCompat`; `seed-json` is a JSON header whose length is written as
 * `u32le` with `seedCompat` (the seeds' `struct.pack('i', len(header))`).
 * Returns `undefined` for an unknown name.
 *
 * @example Usage
 * ```ts
 * import { framingByName } from "./options.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(framingByName("seed"), { format: "u32le", seedCompat: true });
 * assertEquals(framingByName("seed-json"), { format: "json", headerFormat: "u32le", seedCompat: true });
 * assertEquals(framingByName("u16be"), { format: "u16be" });
 * assertEquals(framingByName("u128"), undefined);
 * ```
 */
export function framingByName(name: string): FramingOptions | undefined {
  switch (name) {
    case "seed":
      return { format: "u32le", seedCompat: true };
    case "seed-json":
      return { format: "json", headerFormat: "u32le", seedCompat: true };
    case "u16be":
    case "u32be":
    case "u32le":
    case "u64be":
    case "varint":
    case "json":
      return { format: name };
  }
  return undefined;
}

/** Largest value a seed-compatible (signed 32-bit) prefix may carry. */
export const SEED_MAX_LENGTH = 0x7fffffff;

/**
 * The effective payload cap for `options`: `maxFrameSize`, lowered to
 * 2^31 - 1 for seed-compatible length-prefixed frames.
 *
 * @example Usage
 * ```ts
 * import { frameCap } from "./options.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(frameCap({}), 16 * 1024 * 1024);
 * assertEquals(frameCap({ maxFrameSize: 2 ** 40, seedCompat: true }), 2 ** 31 - 1);
 * ```
 */
export function frameCap(options: FramingOptions): number {
  const max = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new TypeError(
      `Cannot use maxFrameSize: a non-negative safe integer expected, got ${max}`,
    );
  }
  const json = options.format === "json";
  return options.seedCompat && !json ? Math.min(max, SEED_MAX_LENGTH) : max;
}
