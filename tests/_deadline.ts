/**
 * A time limit for every test, loaded before each test module
 * (`deno test --preload tests/_deadline.ts`, see the `test` task).
 *
 * `deno test` has no per-test timeout: one await that never settles (a lost
 * datagram, a peer that never answers) holds the whole run until CI's own
 * limit kills it, and then no summary is printed at all. Here every test's
 * function races a timer; past the limit the test fails with its name and
 * the limit, and the run goes on to the next test and prints its summary.
 * Tests still bound their own waits (`within()` in `_helpers.ts`, `-w` on
 * the CLI); this is the net under them, not a replacement.
 *
 * The limit is `DENOCAT_TEST_TIMEOUT` seconds (default 180: the slowest
 * test takes about 20 s on an idle two-core machine).
 *
 * @module
 */

const seconds = Number(Deno.env.get("DENOCAT_TEST_TIMEOUT") ?? "180");
if (!(seconds > 0)) {
  throw new RangeError(
    `DENOCAT_TEST_TIMEOUT must be a number of seconds above 0, not ${
      Deno.env.get("DENOCAT_TEST_TIMEOUT")
    }`,
  );
}

type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/** `fn`, failing with `name` and the limit when it has not settled in time. */
function bounded(name: string, fn: TestFn): TestFn {
  return async (t) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        (async () => await fn(t))(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `"${name}" did not finish within ${seconds} s (DENOCAT_TEST_TIMEOUT)`,
                ),
              ),
            seconds * 1000,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * Every form `Deno.test` takes, normalised to one definition:
 * `(def)`, `(fn)`, `(name, fn)`, `(options, fn)`, `(name, options, fn)`.
 */
function definitionOf(args: unknown[]): Deno.TestDefinition {
  const [a, b, c] = args;
  if (typeof a === "function") {
    return { name: a.name, fn: a as TestFn };
  }
  if (typeof a === "string") {
    return typeof b === "function"
      ? { name: a, fn: b as TestFn }
      : { ...(b as object), name: a, fn: c as TestFn };
  }
  const def = a as Partial<Deno.TestDefinition>;
  if (typeof b === "function") {
    return { ...def, name: def.name ?? b.name, fn: b as TestFn };
  }
  return def as Deno.TestDefinition;
}

const original = Deno.test;

function test(...args: unknown[]): void {
  const def = definitionOf(args);
  original({ ...def, fn: bounded(def.name, def.fn) });
}

// `ignore`/`only` keep their meaning; they go through the same wrapper.
test.ignore = (...args: unknown[]) =>
  test({ ...definitionOf(args), ignore: true });
test.only = (...args: unknown[]) => test({ ...definitionOf(args), only: true });

Object.defineProperty(Deno, "test", {
  value: test,
  writable: true,
  configurable: true,
  enumerable: true,
});
