/**
 * Who may serve a shell where: a server needs a token, except on a
 * loopback address where `--insecure-no-auth` (or a seed compatibility
 * mode, which cannot authenticate) is allowed.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { unbracket } from "../address.ts";

/**
 * Whether `hostname` is a loopback address: `localhost`, 127.0.0.0/8,
 * `::1`, or 127.x mapped into IPv6.
 *
 * @example Usage
 * ```ts
 * import { isLoopback } from "./policy.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(isLoopback("127.0.0.1"), true);
 * assertEquals(isLoopback("[::1]"), true);
 * assertEquals(isLoopback("::ffff:127.0.0.2"), true);
 * assertEquals(isLoopback("0.0.0.0"), false);
 * assertEquals(isLoopback("::"), false);
 * assertEquals(isLoopback("192.168.1.1"), false);
 * ```
 */
export function isLoopback(hostname: string): boolean {
  const h = unbracket(hostname).toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** What {@linkcode checkBindPolicy} looks at. */
export interface BindPolicyInput {
  /** The address to bind. */
  hostname: string;
  /** Whether a token is configured. */
  hasToken: boolean;
  /** Whether `--insecure-no-auth` was given. */
  insecureNoAuth?: boolean;
  /** A seed compatibility mode (no authentication possible), if any. */
  compat?: string;
}

/**
 * Throws a {@linkcode UsageError} when a shell server must not listen as
 * asked: no token and no `--insecure-no-auth`; `--insecure-no-auth` or a
 * compat mode off loopback; a token together with a compat mode.
 *
 * @example Usage
 * ```ts
 * import { checkBindPolicy } from "./policy.ts";
 * import { assertThrows } from "../_assert.ts";
 * checkBindPolicy({ hostname: "0.0.0.0", hasToken: true });
 * checkBindPolicy({ hostname: "127.0.0.1", hasToken: false, insecureNoAuth: true });
 * assertThrows(() => checkBindPolicy({ hostname: "0.0.0.0", hasToken: false }), Error, "without a token");
 * ```
 */
export function checkBindPolicy(input: BindPolicyInput): void {
  const loop = isLoopback(input.hostname);
  const where = unbracket(input.hostname);
  if (input.compat !== undefined) {
    if (!loop) {
      throw new UsageError(
        `refusing --compat ${input.compat} on ${where}: the seed protocols have no authentication, so they are served on loopback only`,
      );
    }
    if (input.hasToken) {
      throw new UsageError(
        `--compat ${input.compat} cannot check a token (the seed protocols have no authentication); drop --token/--token-file`,
      );
    }
    return;
  }
  if (input.insecureNoAuth && !loop) {
    throw new UsageError(
      `refusing --insecure-no-auth on ${where}: allowed on loopback only; set a token with --token, --token-file or DENOCAT_TOKEN`,
    );
  }
  if (input.hasToken || input.insecureNoAuth) return;
  throw new UsageError(
    loop
      ? `refusing to serve a shell without a token: set --token, --token-file or DENOCAT_TOKEN, or pass --insecure-no-auth (loopback only)`
      : `refusing to listen on ${where} without a token: set --token, --token-file or DENOCAT_TOKEN`,
  );
}
