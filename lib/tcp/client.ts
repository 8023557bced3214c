/**
 * The TCP client mode: connect, then run the duplex pipe.
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import { formatTransfer, type Logger, pumpNote, silent } from "../log.ts";
import { pipeDuplex, type PipeOptions, type PipeResult } from "./pipe.ts";
import {
  type Conn,
  connect,
  type ConnectOptions,
  describeEndpoint,
  type Endpoint,
} from "./connect.ts";

/** Options for {@linkcode tcpClient}: how to connect and how to relay. */
export interface ClientOptions extends ConnectOptions, PipeOptions {
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
  /**
   * Makes the connection instead of {@linkcode connect} (through a proxy,
   * say); it must return a plain TCP or Unix connection.
   */
  dial?: () => Promise<Conn>;
}

/**
 * Connects to `endpoint` and relays `input`/`output` until the peer closes.
 *
 * @example Usage
 * ```ts
 * import { tcpClient } from "./client.ts";
 * import { echoServer } from "./echo.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using server = echoServer({ hostname: "127.0.0.1", port: 0 });
 * const port = (server.addr as Deno.NetAddr).port;
 * const chunks = [new TextEncoder().encode("ping")];
 * const input = { read(p: Uint8Array) {
 *   const c = chunks.shift(); if (!c) return Promise.resolve(null);
 *   p.set(c); return Promise.resolve(c.length);
 * } };
 * let text = "";
 * const output = { write(p: Uint8Array) { text += new TextDecoder().decode(p); return Promise.resolve(p.length); } };
 * const r = await tcpClient({ hostname: "127.0.0.1", port }, { input, output });
 * assertEquals(text, "ping");
 * assertEquals(r.received, 4);
 * ```
 */
export async function tcpClient(
  endpoint: Endpoint,
  options: ClientOptions,
): Promise<PipeResult> {
  const logger = options.logger ?? silent;
  const start = performance.now();
  const conn = options.dial
    ? await options.dial()
    : await connect(endpoint, options);
  const resolved = formatAddr(conn.remoteAddr);
  const asked = describeEndpoint(endpoint);
  logger.log(
    `connected to ${resolved}${resolved === asked ? "" : ` (${asked})`}`,
  );
  const t0 = performance.now();
  const result = await pipeDuplex(conn, options);
  const ms = performance.now() - t0;
  logger.log(
    `closed (${result.reason}): sent ${
      formatTransfer(result.sent, ms)
    }, received ${formatTransfer(result.received, ms)}; connect took ${
      (t0 - start).toFixed(1)
    } ms${pumpNote(result.pumped)}`,
  );
  return result;
}
