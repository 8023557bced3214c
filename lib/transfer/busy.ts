/**
 * Limits of a `keep` receiver (`recv -k`): how many senders it serves at
 * once (`--max-conns`), how many connections may wait for their first item
 * header (`--max-pending`), and the orderly close of a sender turned away.
 *
 * @module
 */
import { closeQuietly, closeWriteQuietly, type Conn } from "../tcp/connect.ts";

/**
 * Default limit of senders a `keep` receiver serves at once: a sender holds
 * one of these slots from its first item header until it is done.
 */
export const DEFAULT_MAX_CONNS = 64;

/**
 * Default limit of connections a `keep` receiver holds before their first
 * item header (the hello exchange, or idle); beyond it the oldest is closed.
 */
export const DEFAULT_MAX_PENDING = 256;

const discard = new Uint8Array(16 * 1024);

/**
 * Half-closes `conn`, drops what it reads for at most `drainMs`, then
 * closes it: a close with unread input would reset the connection before
 * the peer has read what was sent to it (a `busy` ack). Never throws.
 *
 * @example Usage
 * ```ts
 * import { drainAndClose } from "./busy.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using c = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * const server = await l.accept();
 * await server.write(new TextEncoder().encode("bye"));
 * await c.write(new Uint8Array(100)); // unread by the server
 * const closing = drainAndClose(server, 500);
 * const buf = new Uint8Array(16);
 * let got = 0;
 * for (let n; (n = await c.read(buf.subarray(got))) !== null;) got += n;
 * c.closeWrite();
 * await closing;
 * assertEquals(new TextDecoder().decode(buf.subarray(0, got)), "bye");
 * ```
 */
export async function drainAndClose(
  conn: Conn,
  drainMs = 500,
): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), drainMs);
  try {
    await closeWriteQuietly(conn);
    while ((await conn.read(discard)) !== null) { /* dropped */ }
  } catch {
    /* gone, or closed by the timer */
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}
