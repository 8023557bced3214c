/**
 * Server-side TLS for the shell over a plain TCP connection the server
 * owns. `Deno.listenTls` connections cannot be closed before their TLS
 * handshake completes (closing waits for the handshake, so a peer that
 * connects and sends nothing holds the socket for good); here the TLS
 * layer is `node:tls` over the accepted `Deno.TcpConn`, and closing closes
 * that TCP connection at once, handshake or not.
 *
 * @module
 */
import * as tls from "node:tls";
import { Duplex } from "node:stream";
import type { Buffer } from "node:buffer";
import { closeQuietly } from "../tcp/connect.ts";
import { NodeSocketTransport } from "./tls_client.ts";

/** A server-side TLS connection: the shape the shell server uses. */
export interface TlsServerConn {
  readonly remoteAddr: Deno.Addr;
  readonly localAddr: Deno.Addr;
  /** Resolves once the TLS handshake is complete; rejects if it fails or the connection closes. */
  handshake(): Promise<void>;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  /** Closes the TCP connection at once (idempotent). */
  close(): void;
  /**
   * The certificates the client presented (DER, its own first), once the
   * handshake is done; empty when none was asked for or sent.
   */
  peerChain(): Uint8Array[];
}

/** Options for {@linkcode acceptTls}. */
export interface AcceptTlsOptions {
  /**
   * Ask the client for a certificate and fail the handshake without one.
   * The TLS stack checks that the client holds the certificate's key; the
   * chain itself must be checked by the caller ({@linkcode TlsServerConn.peerChain}).
   * @default {false}
   */
  requestCert?: boolean;
}

/** Largest read buffer of {@linkcode duplexOf}. */
const MAX_READ = 64 * 1024;

/**
 * A node Duplex over a Deno connection, for `node:tls` on top of it (server
 * and client side). Its read buffer starts at 2 KiB (a TLS ClientHello
 * fits) and grows only when reads fill it, so a connection that never
 * completes its handshake costs little. `onEnd` is told when the
 * connection's read side ends, with how many bytes it carried.
 */
export function duplexOf(
  conn: Deno.TcpConn | Deno.UnixConn,
  first?: Uint8Array,
  onEnd?: (bytesRead: number) => void,
): Duplex {
  let buf = new Uint8Array(2048);
  let early = first;
  let total = first?.length ?? 0;
  return new Duplex({
    read() {
      if (early) {
        this.push(early);
        early = undefined;
        return;
      }
      conn.read(buf).then(
        (n) => {
          if (n === null) {
            onEnd?.(total);
            this.push(null);
            return;
          }
          total += n;
          const full = n === buf.length;
          this.push(buf.slice(0, n));
          if (full && buf.length < MAX_READ) {
            buf = new Uint8Array(buf.length * 4);
          }
        },
        (err) => this.destroy(err),
      );
    },
    write(chunk: Buffer, _encoding, callback) {
      (async () => {
        let off = 0;
        while (off < chunk.length) off += await conn.write(chunk.subarray(off));
      })().then(() => callback(), callback);
    },
    final(callback) {
      conn.closeWrite().then(() => callback(), callback);
    },
    destroy(err, callback) {
      closeQuietly(conn);
      callback(err);
    },
  });
}

/**
 * Starts TLS (server side) on an accepted TCP connection with `context`
 * (see {@linkcode serverTlsContext}). `first`: bytes already read from the
 * connection (the start of the ClientHello). The handshake starts at once;
 * `close()` never waits for it.
 *
 * @example A peer that never handshakes is closed at once
 * ```ts
 * import { acceptTls } from "./tls_server.ts";
 * import { createSecureContext } from "node:tls";
 * import { assertEquals } from "../_assert.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using peer = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * // No certificate needed: the handshake never happens.
 * const conn = acceptTls(await listener.accept(), createSecureContext());
 * const hs = conn.handshake().catch(() => "failed");
 * conn.close();
 * assertEquals(await peer.read(new Uint8Array(1)), null);
 * assertEquals(await hs, "failed");
 * ```
 */
export function acceptTls(
  raw: Deno.TcpConn,
  context: tls.SecureContext,
  first?: Uint8Array,
  options: AcceptTlsOptions = {},
): TlsServerConn {
  let closed = false;
  // node:tls does not notice the end of a wrapped stream during the
  // handshake: a peer that connects and hangs up without a byte (a port
  // scan) would hold the handshake until the caller's timeout. With no
  // byte received no handshake can be under way, so that ends it at once.
  let hungUp: (() => void) | undefined;
  const under = duplexOf(raw, first, (n) => {
    if (n === 0) hungUp?.();
  });
  const sock = new tls.TLSSocket(
    under,
    {
      isServer: true,
      secureContext: context,
      ...(options.requestCert
        ? { requestCert: true, rejectUnauthorized: true }
        : {}),
    },
  );
  const transport = new NodeSocketTransport(sock, under);
  const handshake = new Promise<void>((resolve, reject) => {
    hungUp = () =>
      reject(new Error("the client hung up without starting a TLS handshake"));
    sock.once("secure", () => resolve());
    sock.once("error", (err: Error) => reject(err));
    sock.once(
      "close",
      () => reject(new Error("connection closed during the TLS handshake")),
    );
  });
  handshake.catch(() => {});
  return {
    remoteAddr: raw.remoteAddr,
    localAddr: raw.localAddr,
    handshake: () => handshake,
    read: (p) => transport.read(p),
    write: (p) => transport.write(p),
    closeWrite: () => transport.closeWrite(),
    close() {
      if (closed) return;
      closed = true;
      transport.close();
      closeQuietly(raw);
    },
    peerChain() {
      const chain: Uint8Array[] = [];
      let c = sock.getPeerCertificate(true) as tls.DetailedPeerCertificate;
      // The issuer links end in a self-reference (a root) or nothing.
      while (c?.raw && chain.length < 10) {
        chain.push(new Uint8Array(c.raw));
        if (!c.issuerCertificate || c.issuerCertificate === c) break;
        c = c.issuerCertificate;
      }
      return chain;
    },
  };
}

/**
 * A reusable TLS context for {@linkcode acceptTls}. Throws when the
 * certificate or key is unusable (checked by Deno's own TLS stack on a
 * throwaway loopback listener, since `createSecureContext` accepts
 * anything).
 *
 * @example A bad key
 * ```ts
 * import { serverTlsContext } from "./tls_server.ts";
 * import { assertThrows } from "../_assert.ts";
 * assertThrows(() => serverTlsContext({ cert: "nope", key: "nope" }), Error);
 * ```
 */
export function serverTlsContext(
  pem: { cert: string; key: string },
): tls.SecureContext {
  Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...pem }).close();
  return tls.createSecureContext(pem);
}
