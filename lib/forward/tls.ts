/**
 * TLS for the forwarder: originating it toward the target over an open
 * connection (verified by default; `insecure` skips verification through
 * `node:tls`, since Deno's own TLS has no per-connection switch for
 * that), and terminating it on accepted connections (`node:tls` server
 * side over the Deno socket, so a peer that never handshakes can be
 * closed at once; see lib/shell/tls_server.ts).
 *
 * @module
 */
import * as tls from "node:tls";
import { createHash } from "node:crypto";
import { DenocatError, UsageError } from "../errors.ts";
import { NodeSocketTransport } from "../shell/tls_client.ts";
import { duplexOf } from "../shell/tls_server.ts";
import type { Stream } from "./relay.ts";

/** How to originate TLS toward a target. */
export interface ClientTlsOptions {
  /** PEM CA certificates trusted in addition to the built-in roots (`--ssl-trustfile`/`--ca`). */
  caCerts?: string[];
  /** Name sent as SNI and checked against the certificate. @default {the target host} */
  serverName?: string;
  /** ALPN protocols to offer. */
  alpn?: string[];
  /** Skip certificate verification entirely (`--insecure`). @default {false} */
  insecure?: boolean;
  /**
   * Accept exactly the certificates whose DER SHA-256 is one of these
   * (lower-case hex, from {@linkcode parsePin}), instead of verifying a
   * chain and a name (`--ssl-pin`): how a self-signed `openssl req -x509`
   * certificate, which rustls refuses as a server certificate, is trusted.
   */
  pins?: string[];
}

/**
 * Parses `--ssl-pin sha256:HEX`: the SHA-256 of the certificate's DER, in
 * hex with or without colons (as `openssl x509 -noout -fingerprint
 * -sha256` prints it). Returns lower-case hex.
 *
 * @example Usage
 * ```ts
 * import { parsePin } from "./tls.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * assertEquals(parsePin("sha256:" + "AB:".repeat(31) + "AB"), "ab".repeat(32));
 * assertThrows(() => parsePin("md5:00"), Error, "--ssl-pin");
 * ```
 */
export function parsePin(text: string): string {
  const m = /^sha256:([0-9a-fA-F:]+)$/.exec(text.trim());
  const hex = m?.[1]?.replaceAll(":", "").toLowerCase();
  if (!hex || hex.length !== 64) {
    throw new UsageError(
      `invalid --ssl-pin value: ${text} (sha256:HEX expected, 64 hex digits; ` +
        "openssl x509 -in CERT -noout -fingerprint -sha256 prints it)",
    );
  }
  return hex;
}

/** The one-line explanation for a CA:TRUE server certificate, with the fixes. */
export const CA_AS_END_ENTITY_HINT: string =
  "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as openssl req -x509 makes by default), which rustls refuses as a server certificate; " +
  "pin it with --ssl-pin sha256:HEX (openssl x509 -in CERT -noout -fingerprint -sha256), or give the server a usable pair: " +
  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out cert.pem -days 365 -subj /CN=NAME " +
  "-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:NAME";

/** A plain connection the TLS layer runs over. */
export type RawConn = Deno.TcpConn | Deno.UnixConn;

/** Rewords rustls and OpenSSL certificate failures as one short phrase. */
export function describeTlsError(err: unknown): string {
  if (err instanceof DenocatError) return err.message;
  const m = err instanceof Error ? err.message : String(err);
  if (/UnknownIssuer|unable to get local issuer|self.signed/i.test(m)) {
    return "certificate not trusted (unknown issuer; give --ssl-trustfile CA.pem)";
  }
  if (/not valid for name|NotValidForName/.test(m)) {
    // rustls names both sides: "certificate not valid for name "x";
    // certificate is only valid for ..."
    const detail = (m.split("\n")[0] ?? m).replace(
      /^.*?invalid peer certificate: /,
      "",
    );
    return `${detail} (use --ssl-servername NAME)`;
  }
  if (/altnames|Hostname\/IP does not match/i.test(m)) {
    return "certificate does not match the name (use --ssl-servername NAME)";
  }
  if (/Expired|certificate has expired/i.test(m)) return "certificate expired";
  if (/CaUsedAsEndEntity/.test(m)) return CA_AS_END_ENTITY_HINT;
  if (/NotValidYet|not yet valid/i.test(m)) return "certificate not yet valid";
  return `TLS handshake failed: ${
    (m.split("\n")[0] ?? m).replace(/ \(os error \d+\).*$/, "")
  }`;
}

/**
 * Starts TLS as a client on `conn` toward `host` and completes the
 * handshake, so a bad certificate surfaces here. On failure `conn` is
 * closed and the error is one line, `TLS with HOST: <reason>`.
 */
export async function startClientTls(
  conn: RawConn,
  host: string,
  options: ClientTlsOptions = {},
): Promise<Stream> {
  const name = options.serverName ?? host;
  try {
    if (options.insecure || options.pins) {
      return await startUnverified(conn, name, options);
    }
    if (conn.remoteAddr.transport !== "tcp") {
      throw new Error(
        "verified TLS over a Unix socket needs --insecure here (Deno starts TLS on TCP only)",
      );
    }
    const tlsConn = await Deno.startTls(conn as Deno.TcpConn, {
      hostname: name,
      ...(options.caCerts ? { caCerts: options.caCerts } : {}),
      ...(options.alpn ? { alpnProtocols: options.alpn } : {}),
    });
    try {
      await tlsConn.handshake();
    } catch (err) {
      tlsConn.close();
      throw err;
    }
    return tlsConn;
  } catch (err) {
    try {
      conn.close();
    } catch { /* closed */ }
    throw new DenocatError(`TLS with ${name}: ${describeTlsError(err)}`, 1, {
      cause: err,
    });
  }
}

/**
 * TLS through node:tls without chain verification: for `--insecure`, or
 * for `--ssl-pin`, where the certificate's SHA-256 is checked once the
 * handshake (which proves the server holds the certificate's key) is done
 * and before any byte of data moves.
 */
function startUnverified(
  conn: RawConn,
  name: string,
  options: ClientTlsOptions,
): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      socket: duplexOf(conn),
      rejectUnauthorized: false,
      ...(/^[\d.]+$|:/.test(name) ? {} : { servername: name }),
      ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
    });
    sock.once("error", reject);
    sock.once("secureConnect", () => {
      sock.off("error", reject);
      if (options.pins) {
        const raw = sock.getPeerCertificate(false)?.raw;
        const got = raw
          ? createHash("sha256").update(raw).digest("hex")
          : undefined;
        if (!got || !options.pins.includes(got)) {
          sock.destroy();
          reject(
            new DenocatError(
              `certificate does not match --ssl-pin (the server's is sha256:${
                got ?? "none"
              })`,
            ),
          );
          return;
        }
      }
      resolve(new NodeSocketTransport(sock));
    });
  });
}

/** A TLS server context checked for usability; see {@linkcode acceptServerTls}. */
export { serverTlsContext } from "../shell/tls_server.ts";

/**
 * Terminates TLS on an accepted connection and completes the handshake
 * within `timeoutMs`; on failure the connection is closed and the error is
 * one line.
 */
export async function acceptServerTls(
  conn: RawConn,
  context: tls.SecureContext,
  timeoutMs: number,
): Promise<Stream> {
  const { acceptTls } = await import("../shell/tls_server.ts");
  const t = acceptTls(conn as Deno.TcpConn, context);
  const timer = setTimeout(() => t.close(), timeoutMs);
  try {
    await t.handshake();
    return t;
  } catch (err) {
    t.close();
    throw new DenocatError(
      `TLS handshake with the client failed: ${
        describeTlsError(err).replace(/^TLS handshake failed: /, "")
      }`,
      1,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
  }
}
