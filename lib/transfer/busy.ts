/**
 * Turning a sender away when the receiver already serves as many as it
 * allows (`recv -k --max-conns N`): a native sender is told why with a
 * `busy` ack, a seed sender (no ack channel) sees the connection close.
 *
 * @module
 */
import { closeQuietly, closeWriteQuietly, type Conn } from "../tcp.ts";
import { writeAll } from "./_pump.ts";
import { encodeAck, encodeHello } from "./protocol.ts";

/** Default limit of senders a `keep` receiver serves at once. */
export const DEFAULT_MAX_CONNS = 64;

/** Options for {@linkcode refuseBusy}. */
export interface RefuseBusyOptions {
  /** The protocol the sender speaks. @default {"native"} */
  compat?: "native" | "seed";
  /**
   * How long to read and drop what the sender already sent before closing,
   * so the close does not reset the connection before the sender has read
   * the ack. @default {500}
   */
  drainMs?: number;
}

const discard = new Uint8Array(16 * 1024);

/**
 * Sends HELLO and a `busy` ack (native senders), half-closes, drops input
 * for at most `drainMs`, then closes `conn`. Never throws.
 *
 * @example Usage
 * ```ts
 * import { refuseBusy } from "./busy.ts";
 * import { parseAck, TRANSFER_HELLO_SIZE } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using c = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * const refusing = refuseBusy(await l.accept(), "receiver busy");
 * const buf = new Uint8Array(1024);
 * let got = 0;
 * for (let n; (n = await c.read(buf.subarray(got))) !== null;) got += n;
 * await refusing;
 * const ack = parseAck(buf.subarray(TRANSFER_HELLO_SIZE + 5, got));
 * assertEquals([ack.ok, ack.ok ? "" : ack.code], [false, "busy"]);
 * ```
 */
export async function refuseBusy(
  conn: Conn,
  message: string,
  options: RefuseBusyOptions = {},
): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), options.drainMs ?? 500);
  try {
    if (options.compat !== "seed") {
      await writeAll(conn, encodeHello());
      await writeAll(
        conn,
        encodeAck({ ok: false, name: "", code: "busy", error: message }),
      );
    }
    await closeWriteQuietly(conn);
    while ((await conn.read(discard)) !== null) { /* dropped */ }
  } catch {
    /* gone, or closed by the timer */
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}
