/**
 * A one-shot UDP request: send one payload to any UDP service (DNS, syslog,
 * a game server) and wait for the first reply from that address.
 *
 * @module
 */
import type { Family } from "../address.ts";
import {
  bindUdpFor,
  type Datagram,
  resolveUdp,
  sameUdpAddr,
} from "./socket.ts";

/** Options for {@linkcode udpQuery}. */
export interface UdpQueryOptions {
  /** The service's host. */
  hostname: string;
  /** The service's port. */
  port: number;
  /** The payload to send once. */
  data: Uint8Array;
  /** Milliseconds to wait for the reply. @default {1000} */
  timeout?: number;
  /** Restrict a host name to IPv4 or IPv6. */
  family?: Family;
}

/** The reply to a {@linkcode udpQuery}. */
export interface UdpQueryReply extends Datagram {
  /** Milliseconds from sending to receiving the reply. */
  rtt: number;
}

/**
 * Sends `data` once and resolves with the first reply from the target, or
 * `null` when none comes within the timeout.
 *
 * @example Usage
 * ```ts
 * import { udpQuery } from "./query.ts";
 * import { udpEcho } from "./echo.ts";
 * import { assertEquals, assertOk } from "../_assert.ts";
 * await using server = udpEcho({ hostname: "127.0.0.1", upper: true });
 * const data = new TextEncoder().encode("ping");
 * const reply = await udpQuery({ hostname: "127.0.0.1", port: server.addr.port, data });
 * assertEquals(new TextDecoder().decode(reply!.data), "PING");
 * assertOk(reply!.rtt >= 0);
 * ```
 */
export async function udpQuery(
  options: UdpQueryOptions,
): Promise<UdpQueryReply | null> {
  const target = await resolveUdp(
    options.hostname,
    options.port,
    options.family,
  );
  using socket = bindUdpFor(target);
  const timer = setTimeout(() => socket.close(), options.timeout ?? 1000);
  try {
    const start = performance.now();
    await socket.send(options.data, target);
    let d;
    while ((d = await socket.receive()) !== null) {
      if (sameUdpAddr(d.from, target)) {
        return { ...d, rtt: performance.now() - start };
      }
    }
    return null;
  } finally {
    clearTimeout(timer);
  }
}
