/**
 * Mutual challenge-response authentication for the shell protocol: the
 * server sends a fresh random nonce, the client answers with its own nonce
 * and HMAC-SHA256(key = token, message = client label || server nonce ||
 * client nonce), and the server, once it has checked that in constant
 * time, proves itself with the same HMAC under the server label. Neither
 * side's proof can be replayed as the other's, and the token itself never
 * crosses the wire. Tokens are bytes: a token file is never decoded, so two
 * different binary tokens can never compare equal. Repeated failures from
 * one source are slowed down by `AuthGate` (`auth_gate.ts`).
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

/** A shared secret: bytes, or text taken as its UTF-8 bytes. */
export type Token = string | Uint8Array;

/**
 * The bytes of a token: a string's UTF-8 encoding, bytes as they are.
 *
 * @example Usage
 * ```ts
 * import { tokenBytes } from "./auth.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(tokenBytes("hé").toHex(), "68c3a9");
 * assertEquals(tokenBytes(new Uint8Array([0xff])).toHex(), "ff");
 * ```
 */
export function tokenBytes(token: Token): Uint8Array {
  return typeof token === "string" ? new TextEncoder().encode(token) : token;
}

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
 * the token's bytes ({@linkcode tokenBytes}) over the role's label, the
 * server nonce and the client nonce.
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
  token: Token,
  role: AuthRole,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
): Uint8Array {
  const mac = createHmac("sha256", tokenBytes(token)).update(labels[role])
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
 * // Bytes, never decoded: two different non-UTF-8 tokens differ.
 * const a = new Uint8Array([0x80, 0xbf]), b = new Uint8Array([0xff, 0xff]);
 * assertEquals(verifyProof(b, "client", sn, cn, authProof(a, "client", sn, cn)), false);
 * ```
 */
export function verifyProof(
  token: Token,
  role: AuthRole,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
  proof: Uint8Array,
): boolean {
  const expected = authProof(token, role, serverNonce, clientNonce);
  if (proof.length !== expected.length) return false;
  return timingSafeEqual(expected, proof);
}

/**
 * A token imported once for WebCrypto, for the server's hot path: proofs
 * computed and checked natively (`crypto.subtle`), the same values as
 * {@linkcode authProof} and a constant-time check as
 * {@linkcode verifyProof}, without the garbage a `node:crypto` HMAC object
 * leaves per login.
 *
 * @example Same proofs as authProof
 * ```ts
 * import { AuthKey, authProof } from "./auth.ts";
 * import { assertEquals } from "../_assert.ts";
 * const key = await AuthKey.import("secret");
 * const sn = new Uint8Array(32).fill(1), cn = new Uint8Array(32).fill(2);
 * assertEquals(await key.proof("server", sn, cn), authProof("secret", "server", sn, cn));
 * assertEquals(await key.verify("client", sn, cn, authProof("secret", "client", sn, cn)), true);
 * assertEquals(await key.verify("client", sn, cn, authProof("other", "client", sn, cn)), false);
 * ```
 */
export class AuthKey {
  readonly #key: CryptoKey;
  private constructor(key: CryptoKey) {
    this.#key = key;
  }

  /** Imports `token` (see {@linkcode tokenBytes}). */
  static async import(token: Token): Promise<AuthKey> {
    return new AuthKey(
      await crypto.subtle.importKey(
        "raw",
        tokenBytes(token) as Uint8Array<ArrayBuffer>,
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign", "verify"],
      ),
    );
  }

  static #message(
    role: AuthRole,
    serverNonce: Uint8Array,
    clientNonce: Uint8Array,
  ): Uint8Array<ArrayBuffer> {
    const label = labels[role];
    const m = new Uint8Array(
      label.length + serverNonce.length + clientNonce.length,
    );
    m.set(label);
    m.set(serverNonce, label.length);
    m.set(clientNonce, label.length + serverNonce.length);
    return m;
  }

  /** `role`'s proof, as {@linkcode authProof}. */
  async proof(
    role: AuthRole,
    serverNonce: Uint8Array,
    clientNonce: Uint8Array,
  ): Promise<Uint8Array> {
    return new Uint8Array(
      await crypto.subtle.sign(
        "HMAC",
        this.#key,
        AuthKey.#message(role, serverNonce, clientNonce),
      ),
    );
  }

  /** Whether `proof` is right, as {@linkcode verifyProof}. */
  verify(
    role: AuthRole,
    serverNonce: Uint8Array,
    clientNonce: Uint8Array,
    proof: Uint8Array,
  ): Promise<boolean> {
    if (proof.length !== MAC_SIZE) return Promise.resolve(false);
    return crypto.subtle.verify(
      "HMAC",
      this.#key,
      proof as Uint8Array<ArrayBuffer>,
      AuthKey.#message(role, serverNonce, clientNonce),
    );
  }
}
