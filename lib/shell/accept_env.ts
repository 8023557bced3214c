/**
 * Which environment variables a client may set, on ssh's `AcceptEnv`
 * model: none unless the server names them, by exact name or by a pattern
 * with `*` (any run of characters) and `?` (one character). A variable
 * that no pattern matches refuses the whole command, so a client cannot
 * reach a restricted `--shell` through `BASH_ENV`, `ENV`, `PATH`,
 * `LD_PRELOAD` or the like.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** Names a client can set that change what a shell or the loader runs. */
const DANGEROUS = [
  "BASH_ENV",
  "ENV",
  "PATH",
  "IFS",
  "SHELLOPTS",
  "BASHOPTS",
  "PS4",
  "PROMPT_COMMAND",
  "CDPATH",
  "LD_PRELOAD",
  "LD_LIBRARY_PATH",
  "LD_AUDIT",
  "BASH_FUNC_x%%",
  "PYTHONSTARTUP",
  "PERL5OPT",
  "NODE_OPTIONS",
];

/** A compiled `--accept-env` list. */
export interface EnvPolicy {
  /** The patterns as given. */
  readonly patterns: readonly string[];
  /** Whether a client may set `name`. */
  accepts(name: string): boolean;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Compiles `--accept-env` patterns (names, `*`, `?`; letters, digits and
 * `_` otherwise). Throws a `UsageError` for anything else.
 *
 * @example Usage
 * ```ts
 * import { envPolicy } from "./accept_env.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * const p = envPolicy(["LANG", "LC_*"]);
 * assertEquals(["LANG", "LC_ALL", "BASH_ENV", "LANGUAGE"].map((n) => p.accepts(n)), [true, true, false, false]);
 * assertEquals(envPolicy([]).accepts("TERM"), false);
 * assertThrows(() => envPolicy(["A=B"]), Error, "--accept-env");
 * ```
 */
export function envPolicy(patterns: readonly string[]): EnvPolicy {
  const res = patterns.map((p) => {
    if (!/^[A-Za-z0-9_*?]+$/.test(p)) {
      throw new UsageError(
        `invalid --accept-env pattern ${
          JSON.stringify(p)
        }: names, * and ? only`,
      );
    }
    return new RegExp(
      `^${p.replaceAll("*", "[A-Za-z0-9_]*").replaceAll("?", "[A-Za-z0-9_]")}$`,
    );
  });
  return {
    patterns: [...patterns],
    accepts: (name) => NAME.test(name) && res.some((re) => re.test(name)),
  };
}

/**
 * The dangerous names (see the module doc) that `policy` lets clients set,
 * for a warning at startup.
 *
 * @example Usage
 * ```ts
 * import { envPolicy, riskyAccepted } from "./accept_env.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(riskyAccepted(envPolicy(["LC_*"])), []);
 * assertEquals(riskyAccepted(envPolicy(["*"])).includes("BASH_ENV"), true);
 * ```
 */
export function riskyAccepted(policy: EnvPolicy): string[] {
  return DANGEROUS.filter((n) =>
    policy.patterns.some((p) =>
      new RegExp(
        `^${p.replaceAll("*", ".*").replaceAll("?", ".")}$`,
      ).test(n)
    )
  );
}

/**
 * The names of `env` that `policy` refuses, in order.
 *
 * @example Usage
 * ```ts
 * import { envPolicy, refusedNames } from "./accept_env.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(refusedNames(envPolicy(["LC_*"]), { LC_ALL: "C", PATH: "/x" }), ["PATH"]);
 * ```
 */
export function refusedNames(
  policy: EnvPolicy,
  env: Record<string, string>,
): string[] {
  return Object.keys(env).filter((n) => !policy.accepts(n));
}
