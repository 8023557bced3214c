// Test helpers for the framing codecs.
import type { Reader } from "../../lib/copy.ts";

export { concat } from "../_helpers.ts";

/**
 * Cuts `bytes` into chunks whose sizes cycle through `sizes` (each >= 1).
 * Chunks are copies, so views into them stay independent of `bytes`.
 */
export function cut(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = Math.max(
      1,
      sizes.length === 0 ? bytes.length : sizes[i++ % sizes.length]!,
    );
    out.push(bytes.slice(at, at + n));
    at += n;
  }
  return out;
}

/** A {@linkcode Reader} over in-memory chunks: each read returns at most one chunk's rest. */
export function memoryReader(
  chunks: readonly Uint8Array[],
): Reader & { reads: number } {
  let i = 0;
  let pos = 0;
  const r = {
    reads: 0,
    read(p: Uint8Array): Promise<number | null> {
      r.reads++;
      while (i < chunks.length && pos >= chunks[i]!.length) {
        i++;
        pos = 0;
      }
      if (i >= chunks.length) return Promise.resolve(null);
      const c = chunks[i]!;
      const n = Math.min(p.length, c.length - pos);
      p.set(c.subarray(pos, pos + n));
      pos += n;
      return Promise.resolve(n);
    },
  };
  return r;
}

/**
 * Runs `fn` while `new Uint8Array(n)` (and `new Uint8Array(arrayBuffer)`) are
 * recorded: returns the largest length requested by a numeric construction,
 * and throws if one exceeds `limit` (so a runaway allocation fails fast
 * instead of taking memory). The codecs resolve `Uint8Array` from the global
 * scope at call time, so this sees their allocations.
 */
export function withAllocationLimit(limit: number, fn: () => void): number {
  const spy = installAllocationSpy(limit);
  try {
    fn();
  } finally {
    spy.restore();
  }
  return spy.largest();
}

/** Async twin of {@linkcode withAllocationLimit}. */
export async function withAllocationLimitAsync(
  limit: number,
  fn: () => Promise<void>,
): Promise<number> {
  const spy = installAllocationSpy(limit);
  try {
    await fn();
  } finally {
    spy.restore();
  }
  return spy.largest();
}

function installAllocationSpy(limit: number) {
  const Original = globalThis.Uint8Array;
  let largest = 0;
  class Counting extends Original {
    // deno-lint-ignore no-explicit-any
    constructor(...args: any[]) {
      if (typeof args[0] === "number") {
        if (args[0] > limit) {
          throw new Error(`allocation of ${args[0]} bytes exceeds ${limit}`);
        }
        largest = Math.max(largest, args[0]);
      }
      // deno-lint-ignore no-explicit-any
      super(...(args as [any]));
    }
  }
  globalThis.Uint8Array = Counting as Uint8ArrayConstructor;
  return {
    restore: () => void (globalThis.Uint8Array = Original),
    largest: () => largest,
  };
}
