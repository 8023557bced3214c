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

/**
 * Default limit of slots one source address (an IPv6 /64) holds at once:
 * more senders from it are told `busy`, so one host cannot take every slot.
 */
export const DEFAULT_MAX_CONNS_PER_IP = 8;

/**
 * Default idle timeout of a receiver's connection, in ms: a sender that
 * sends nothing for this long (mid-item or between items) is closed.
 */
export const DEFAULT_IDLE_TIMEOUT = 60_000;

/**
 * The source a connection is counted under: an IPv4 address (IPv4-mapped
 * IPv6 included), or the /64 prefix of an IPv6 address, since one host
 * usually holds a whole /64; every Unix-socket peer is one source.
 *
 * @example Usage
 * ```ts
 * import { sourceOf } from "./busy.ts";
 * import { assertEquals } from "../_assert.ts";
 * const tcp = (hostname: string) => ({ transport: "tcp" as const, hostname, port: 5 });
 * assertEquals(sourceOf(tcp("::ffff:10.0.0.1")), "10.0.0.1");
 * assertEquals(sourceOf(tcp("10.0.0.1")), "10.0.0.1");
 * assertEquals(sourceOf(tcp("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
 * assertEquals(sourceOf(tcp("2001:db8:1:2::9")), "2001:db8:1:2::/64");
 * assertEquals(sourceOf(tcp("::1")), "0:0:0:0::/64");
 * ```
 */
export function sourceOf(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return "unix";
  const h = addr.hostname;
  if (!h.includes(":")) return h;
  if (h.startsWith("::ffff:") && h.includes(".")) return h.slice(7);
  const [head = "", tail] = h.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [
    ...left,
    ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"),
    ...right,
  ];
  return `${
    groups.slice(0, 4).map((g) => parseInt(g || "0", 16).toString(16)).join(":")
  }::/64`;
}

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
