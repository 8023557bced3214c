/**
 * Tiny assertion helpers for doc examples and tests (JSR's @std/assert is not
 * reachable here; these wrap `node:assert/strict`).
 *
 * @module
 */
import assert from "node:assert/strict";

/** Asserts deep equality. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  assert.deepStrictEqual(actual, expected, msg);
}

/** Asserts a truthy value. */
export function assertOk(value: unknown, msg?: string): asserts value {
  assert.ok(value, msg);
}

/** Asserts that `fn` rejects with an instance of `cls` whose message includes `includes`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err}`);
    if (includes !== undefined) {
      assert.ok(
        (err as Error).message.includes(includes),
        `expected message to include ${JSON.stringify(includes)}, got ${
          JSON.stringify((err as Error).message)
        }`,
      );
    }
    return err as Error;
  }
  throw new assert.AssertionError({
    message: `expected ${cls.name} to be thrown`,
  });
}

/** Asserts that `fn` throws synchronously an instance of `cls`. */
export function assertThrows(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => Error,
  includes?: string,
): Error {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err}`);
    if (includes !== undefined) {
      assert.ok(
        (err as Error).message.includes(includes),
        `message: ${(err as Error).message}`,
      );
    }
    return err as Error;
  }
  throw new assert.AssertionError({
    message: `expected ${cls.name} to be thrown`,
  });
}
