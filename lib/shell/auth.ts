/**
 * Mutual challenge-response authentication for the shell protocol: the
 * server sends a fresh random nonce, the client answers with its own nonce
 * and HMAC-SHA256(key = token, message = client label || server nonce ||
 * client nonce), and the server, once it has checked that in constant
 * time, proves itself with the same HMAC under the server label. Neither
 * side's proof can be replayed as the other's, and the token itself never
 * crosses the wire. Repeated failures from one address are slowed down by
 * {@linkcode AuthThrottle}.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Bytes in a nonce (either side's). */
export const NONCE_SIZE = 32;
/** Bytes in a proof (an HMAC-SHA256). */
export const MAC_SIZE = 32;
/** Label hashed before the nonces in the client's proof. */
export const CLIENT_AUTH_LABEL = "denocat-shell-auth-v2 client";
/** Label hashed before the nonces in the server's proof. */
export const SERVER_AUTH_LABEL = "denocat-shell-auth-v2 server";

const labels: Record<"client" | "server", Uint8Array> = {
  client: new TextEncoder().encode(CLIENT_AUTH_LABEL),
  server: new TextEncoder().encode(SERVER_AUTH_LABEL),
};

/** Which side a proof comes from. */
export type AuthRole = keyof typeof labels;

/**
 * A fresh random nonce.
 *
 * @example Usage
 * ```ts
 * import { createNonce } from "./auth.ts";
 * import { assertOk } from "../_assert.ts";
 * assertOk(createNonce().length === 32);
 * assertOk(createNonce().toHex() !== createNonce().toHex());
 * ```
 */
export function createNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
}

/**
 * `role`'s proof of knowing `token` for one login: HMAC-SHA256 keyed with
 * the token's UTF-8 bytes over the role's label, the server nonce and the
 * client nonce.
 *
 * @example The two roles differ
 * ```ts
 * import { authProof } from "./auth.ts";
 * import { assertEquals, assertOk } from "../_assert.ts";
 * const sn = new Uint8Array(32).fill(1);
 * const cn = new Uint8Array(32).fill(2);
 * assertEquals(authProof("t", "client", sn, cn).length, 32);
 * assertEquals(authProof("t", "client", sn, cn), authProof("t", "client", sn, cn));
 * assertOk(authProof("t", "client", sn, cn).toHex() !== authProof("t", "server", sn, cn).toHex());
 * ```
 */
export function authProof(
  token: string,
  role: AuthRole,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
): Uint8Array {
  const mac = createHmac("sha256", token).update(labels[role])
    .update(serverNonce).update(clientNonce).digest();
  return new Uint8Array(mac.buffer, mac.byteOffset, mac.byteLength);
}

/**
 * Whether `proof` is `role`'s right proof for these nonces and `token`,
 * compared in constant time.
 *
 * @example Usage
 * ```ts
 * import { authProof, createNonce, verifyProof } from "./auth.ts";
 * import { assertEquals } from "../_assert.ts";
 * const sn = createNonce();
 * const cn = createNonce();
 * const proof = authProof("secret", "client", sn, cn);
 * assertEquals(verifyProof("secret", "client", sn, cn, proof), true);
 * assertEquals(verifyProof("secret", "server", sn, cn, proof), false);
 * assertEquals(verifyProof("other", "client", sn, cn, proof), false);
 * assertEquals(verifyProof("secret", "client", sn, cn, new Uint8Array(3)), false);
 * ```
 */
export function verifyProof(
  token: string,
  role: AuthRole,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
  proof: Uint8Array,
): boolean {
  const expected = authProof(token, role, serverNonce, clientNonce);
  if (proof.length !== expected.length) return false;
  return timingSafeEqual(expected, proof);
}

/** Options for {@linkcode AuthThrottle}. */
export interface AuthThrottleOptions {
  /** Failures from one address answered without delay. @default {2} */
  freeFailures?: number;
  /** Delay after the first slowed failure; doubles with each further one. @default {250} */
  baseDelayMs?: number;
  /** Largest delay. @default {8000} */
  maxDelayMs?: number;
  /** Failures older than this are forgotten. @default {600000} */
  forgetAfterMs?: number;
}

/**
 * Counts authentication failures per peer address and says how long to
 * wait before answering the next attempt from it: nothing for the first
 * `freeFailures`, then `baseDelayMs`, doubling up to `maxDelayMs`.
 *
 * @example Usage
 * ```ts
 * import { AuthThrottle } from "./auth.ts";
 * import { assertEquals } from "../_assert.ts";
 * const t = new AuthThrottle({ freeFailures: 1, baseDelayMs: 100 });
 * assertEquals(t.delayFor("10.0.0.1"), 0);
 * t.fail("10.0.0.1");
 * t.fail("10.0.0.1");
 * assertEquals(t.delayFor("10.0.0.1"), 100);
 * t.fail("10.0.0.1");
 * assertEquals(t.delayFor("10.0.0.1"), 200);
 * t.succeed("10.0.0.1");
 * assertEquals(t.delayFor("10.0.0.1"), 0);
 * ```
 */
export class AuthThrottle {
  readonly #free: number;
  readonly #base: number;
  readonly #max: number;
  readonly #forget: number;
  readonly #failures = new Map<string, { count: number; last: number }>();

  constructor(options: AuthThrottleOptions = {}) {
    this.#free = options.freeFailures ?? 2;
    this.#base = options.baseDelayMs ?? 250;
    this.#max = options.maxDelayMs ?? 8000;
    this.#forget = options.forgetAfterMs ?? 600_000;
  }

  /** Failures recorded for `peer` (after forgetting old ones). */
  failures(peer: string): number {
    const f = this.#failures.get(peer);
    if (!f) return 0;
    if (Date.now() - f.last > this.#forget) {
      this.#failures.delete(peer);
      return 0;
    }
    return f.count;
  }

  /** Milliseconds to wait before answering `peer`'s next attempt. */
  delayFor(peer: string): number {
    const over = this.failures(peer) - this.#free;
    if (over <= 0 || this.#base <= 0) return 0;
    return Math.min(this.#max, this.#base * 2 ** Math.min(over - 1, 30));
  }

  /** Records a failure from `peer`; returns its failure count. */
  fail(peer: string): number {
    const count = this.failures(peer) + 1;
    this.#failures.set(peer, { count, last: Date.now() });
    if (this.#failures.size > 10_000) {
      // Bound memory: drop the oldest entry (Map keeps insertion order).
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
    return count;
  }

  /** Forgets `peer`'s failures after a success. */
  succeed(peer: string): void {
    this.#failures.delete(peer);
  }
}
