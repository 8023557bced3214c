/**
 * The size of the reliability suite: 1 under `deno task test`, 10 under
 * `deno task soak` (`DENOCAT_SOAK=1`).
 *
 * @module
 */

/** 10 when `DENOCAT_SOAK=1`, else 1. */
export const SCALE: number = Deno.env.get("DENOCAT_SOAK") === "1" ? 10 : 1;

/** `base` times the scale. */
export function scaled(base: number): number {
  return base * SCALE;
}

/** A time bound for a figure, in ms, grown with the scale. */
export function budget(ms: number): number {
  return ms * SCALE;
}
