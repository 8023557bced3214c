/**
 * Exact reads for handshakes: a proxy's reply is read to its last byte and
 * not one byte further, so whatever the target sends next stays in the
 * socket for the relay.
 *
 * @module
 */
import { DenocatError } from "../errors.ts";

/** The two calls a handshake needs from a connection. */
export interface ByteStream {
  /** Reads into `p`; resolves with the byte count, or `null` at end of input. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; resolves with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
}

/**
 * Fills `buf` completely; a connection that ends first is an error naming
 * `what` (`the SOCKS5 reply`).
 */
export async function readExactly(
  conn: ByteStream,
  buf: Uint8Array,
  what: string,
): Promise<Uint8Array> {
  let got = 0;
  while (got < buf.length) {
    const n = await conn.read(got === 0 ? buf : buf.subarray(got));
    if (n === null) {
      throw new DenocatError(
        `the proxy closed the connection during ${what} (after ${got} of ${buf.length} bytes)`,
      );
    }
    got += n;
  }
  return buf;
}
