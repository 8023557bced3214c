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
import { createHash, X509Certificate } from "node:crypto";
import { DenocatError, UsageError } from "../errors.ts";
import { NodeSocketTransport } from "../shell/tls_client.ts";
import { duplexOf } from "../shell/tls_server.ts";
import type { Stream } from "./relay.ts";
import { FdConn } from "../native/socket_fd.ts";

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
  /**
   * A client certificate (PEM, the chain's leaf first) and its key, for
   * servers that ask for one (`--ssl-cert`/`--ssl-key` when connecting).
   */
  cert?: { cert: string; key: string };
  /**
   * Run the handshake where closing the connection underneath ends it
   * (node:tls over the Deno socket; Deno's startTls holds the socket until
   * its handshake ends), for callers that bound it with a timer.
   * @default {false}
   */
  closeable?: boolean;
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
  if (
    /UnknownIssuer|unable to get local issuer|self.signed|unable to verify the first/i
      .test(m)
  ) {
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
  if (/peer sent no certificates/i.test(m)) {
    return "no client certificate (this listener demands one: --ssl-verify-client)";
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
    if (
      options.insecure || options.pins || options.cert || options.closeable ||
      isOwnSocket(conn)
    ) {
      // Deno's own startTls cannot present a client certificate.
      return await startNodeTls(conn, name, options);
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
 * Whether `conn` is a socket denocat made itself (native/socket_fd.ts, for
 * `-s`/`-p`): Deno's startTls takes only its own connections, node:tls any
 * byte stream.
 */
function isOwnSocket(conn: RawConn): boolean {
  return (conn as unknown) instanceof FdConn;
}

/**
 * TLS through node:tls: for a client certificate (verified as Deno's own
 * TLS verifies: the system roots plus `caCerts`, and the name), for
 * `--insecure` (no verification), or for `--ssl-pin`, where the
 * certificate's SHA-256 is checked once the handshake (which proves the
 * server holds the certificate's key) is done and before any byte of data
 * moves.
 */
function startNodeTls(
  conn: RawConn,
  name: string,
  options: ClientTlsOptions,
): Promise<Stream> {
  const verify = !options.insecure && !options.pins;
  const under = duplexOf(conn);
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      socket: under,
      rejectUnauthorized: verify,
      // node's `ca` replaces the roots; Deno's caCerts add to them.
      ...(verify && options.caCerts
        ? { ca: [...tls.rootCertificates, ...options.caCerts] }
        : {}),
      // Checked against the name asked for, IP literals included.
      ...(verify
        ? {
          checkServerIdentity: (_: string, c: tls.PeerCertificate) =>
            tls.checkServerIdentity(name, c),
        }
        : {}),
      ...(/^[\d.]+$|:/.test(name) ? {} : { servername: name }),
      ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
      ...(options.cert ? options.cert : {}),
    });
    sock.once("error", reject);
    sock.once("secureConnect", () => {
      sock.off("error", reject);
      if (options.pins) {
        const raw = sock.getPeerCertificate(false)?.raw;
        const got = raw
          ? createHash("sha256").update(raw).digest("hex")
          : undefined;
        // A pin is only as good as the proof that the server holds the
        // certificate's key, which Deno's node:tls does not check for a
        // certificate it cannot parse (X.509 v1): such a pin is refused.
        if (raw && got && options.pins.includes(got) && !isX509v3(raw)) {
          sock.destroy();
          reject(
            new DenocatError(
              "the pinned certificate is X.509 v1, whose key the TLS stack does not check: make a v3 one (openssl req -x509 does)",
            ),
          );
          return;
        }
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
      resolve(new NodeSocketTransport(sock, under));
    });
  });
}

/** A listener's certificate and key (PEM), and whom it accepts. */
export interface ServerTlsPem {
  /** The server's certificate chain, leaf first (PEM). */
  cert: string;
  /** Its private key (PEM). */
  key: string;
  /**
   * Demand a client certificate issued by one of these CAs (PEM;
   * `--ssl-verify-client --ssl-trustfile CA`); a client without one, or
   * with one from another CA or out of its validity, is refused.
   */
  clientCas?: string[];
}

/** A listener's TLS, ready for {@linkcode acceptServerTls}. */
export interface ServerTls {
  /** The reusable context (certificate and key). */
  context: tls.SecureContext;
  /** The CAs a client certificate must chain to, when one is demanded. */
  clientCas?: X509Certificate[];
}

/**
 * Checks the certificate and key (and the client CAs) once, at start, so
 * a bad file is an error before any client connects.
 */
export function serverTls(pem: ServerTlsPem): ServerTls {
  const context = serverTlsContext(pem);
  if (!pem.clientCas) return { context };
  const clientCas: X509Certificate[] = [];
  for (const text of pem.clientCas) {
    const blocks = text.match(
      /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
    ) ?? [];
    for (const b of blocks) {
      try {
        clientCas.push(new X509Certificate(b));
      } catch (err) {
        throw new DenocatError(
          `cannot use --ssl-trustfile: not a certificate (${
            err instanceof Error ? err.message : err
          })`,
        );
      }
    }
  }
  if (clientCas.length === 0) {
    throw new DenocatError(
      "cannot use --ssl-trustfile: no PEM certificate in it",
    );
  }
  return { context, clientCas };
}

/**
 * Whether `chain` (DER, the client's certificate first, then what it sent
 * along) leads to one of `cas` by signatures, every certificate on the
 * way within its validity; `undefined` when it does, else why not.
 */
export function clientChainProblem(
  chain: Uint8Array[],
  cas: X509Certificate[],
  now: Date = new Date(),
): string | undefined {
  if (chain.length === 0) return "no client certificate";
  let certs: X509Certificate[];
  try {
    certs = chain.map((d) => new X509Certificate(d));
  } catch {
    return "unreadable client certificate";
  }
  // Deno's node:tls skips the check of the client's handshake signature
  // (its proof that it holds the certificate's key) for a certificate its
  // verifier cannot parse, X.509 v1 among them: anyone could present a v1
  // certificate of the CA's that they copied. Only v3 is accepted.
  if (!isX509v3(chain[0]!)) {
    return "client certificate is not X.509 v3 (issue it with extensions)";
  }
  const inTime = (c: X509Certificate) =>
    c.validFromDate <= now && now <= c.validToDate;
  // A key the crypto library refuses (an RSA exponent as long as its
  // modulus: "public exponent too large") makes no link; it must not
  // throw out of the walk.
  const issued = (c: X509Certificate, by: X509Certificate) => {
    try {
      return c.checkIssued(by) && c.verify(by.publicKey);
    } catch {
      return false;
    }
  };
  let current = certs[0]!;
  if (!inTime(current)) return "client certificate expired or not yet valid";
  for (let depth = 0; depth < 8; depth++) {
    const ca = cas.find((ca) => issued(current, ca));
    if (ca) {
      return inTime(ca) ? undefined : "the issuing CA is out of its validity";
    }
    const next = certs.find((c) =>
      c !== current && c.ca && inTime(c) && issued(current, c)
    );
    if (!next) break;
    current = next;
  }
  return `client certificate not issued by a trusted CA (${
    certs[0]!.subject.replaceAll("\n", ", ")
  })`;
}

/**
 * Whether DER certificate `der` says it is version 3: its TBSCertificate
 * opens with the explicit `[0]` version field holding INTEGER 2 (v1
 * leaves the field out; v2 holds 1).
 */
function isX509v3(der: Uint8Array): boolean {
  // Skips a DER tag and length; returns the offset of the contents.
  const enter = (at: number): number => {
    const len = der[at + 1];
    if (len === undefined) return -1;
    return len < 0x80 ? at + 2 : at + 2 + (len & 0x7f);
  };
  if (der[0] !== 0x30) return false; // Certificate ::= SEQUENCE
  const tbs = enter(0);
  if (tbs < 0 || der[tbs] !== 0x30) return false; // TBSCertificate ::= SEQUENCE
  const v = enter(tbs);
  return der[v] === 0xa0 && der[v + 1] === 3 && der[v + 2] === 0x02 &&
    der[v + 3] === 1 && der[v + 4] === 2;
}

/** A TLS server context checked for usability; see {@linkcode acceptServerTls}. */
export { serverTlsContext } from "../shell/tls_server.ts";
import { serverTlsContext } from "../shell/tls_server.ts";

/**
 * Terminates TLS on an accepted connection and completes the handshake
 * within `timeoutMs`; with client CAs, the client's certificate must lead
 * to one of them. On failure the connection is closed and the error is
 * one line.
 */
export async function acceptServerTls(
  conn: RawConn,
  server: ServerTls,
  timeoutMs: number,
): Promise<Stream> {
  const { acceptTls } = await import("../shell/tls_server.ts");
  const { context, clientCas } = server;
  const t = acceptTls(
    conn as Deno.TcpConn,
    context,
    undefined,
    clientCas ? { requestCert: true } : {},
  );
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    t.close();
  }, timeoutMs);
  try {
    await t.handshake();
    if (clientCas) {
      const why = clientChainProblem(t.peerChain(), clientCas);
      if (why !== undefined) throw new DenocatError(why);
    }
    return t;
  } catch (err) {
    t.close();
    // Closed by the timer, the handshake says only that it was closed.
    const why = timedOut
      ? `no handshake within ${timeoutMs / 1000} s`
      : describeTlsError(err).replace(/^TLS handshake failed: /, "");
    throw new DenocatError(
      `TLS handshake with the client failed: ${why}`,
      1,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
  }
}
