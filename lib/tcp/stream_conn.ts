/**
 * A byte stream layered on a connection (TLS), presented as a connection:
 * reads, writes, FIN and close go to the layer; the addresses are those of
 * the connection underneath, and Nagle is set there.
 *
 * The pump threads must never be given such a connection: they would find
 * the socket underneath and move bytes past the layer. Relays of a layered
 * connection therefore use a reader and writer without descriptors (see
 * {@linkcode withoutFd}), which keeps every copy in JavaScript.
 *
 * @module
 */
import type { Reader, Writer } from "../copy.ts";
import type { Conn } from "./connect.ts";

/** What a layer on a connection offers. */
export interface LayeredStream {
  /** Reads into `p`; resolves with the byte count, or `null` at end of input. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; resolves with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
  /** Ends our direction (TLS: close_notify, then FIN). */
  closeWrite(): Promise<void>;
  /** Closes the layer and the connection under it. */
  close(): void;
}

/**
 * `stream` as a {@linkcode Conn} with `raw`'s addresses. A TLS peer that
 * closes without `close_notify` ends the input as a FIN would (as curl,
 * OpenSSL's s_client and ncat take it) instead of failing the relay.
 */
export function streamConn(stream: LayeredStream, raw: Conn): Conn {
  const conn = {
    read: async (p: Uint8Array) => {
      try {
        return await stream.read(p);
      } catch (err) {
        if (err instanceof Deno.errors.UnexpectedEof) return null;
        throw err;
      }
    },
    write: (p: Uint8Array) => stream.write(p),
    closeWrite: () => stream.closeWrite(),
    close: () => stream.close(),
    localAddr: raw.localAddr,
    remoteAddr: raw.remoteAddr,
    setNoDelay: (on = true) => {
      if (raw.remoteAddr.transport === "tcp") {
        (raw as Deno.TcpConn).setNoDelay(on);
      }
    },
    [Symbol.dispose]: () => stream.close(),
  };
  return conn as unknown as Conn;
}

/** `r` without its descriptor: copies from it stay in JavaScript. */
export function withoutFd<T extends Reader | Writer>(r: T): T {
  if (r.fd === undefined) return r;
  return ("read" in r
    ? { read: (p: Uint8Array) => (r as Reader).read(p) }
    : { write: (p: Uint8Array) => (r as Writer).write(p) }) as T;
}
