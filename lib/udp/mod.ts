/**
 * UDP modes: a bound datagram socket, the netcat client and listener
 * (`-u`), an echo server, a one-shot query, and a probe that reports round
 * trip times, loss, duplicates and reordering.
 *
 * @example Probe an echo server
 * ```ts
 * import { probeUdp, udpEcho } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using server = udpEcho({ hostname: "127.0.0.1", port: 0 });
 * const report = await probeUdp({
 *   hostname: "127.0.0.1",
 *   port: server.addr.port,
 *   count: 3,
 *   interval: 1,
 * });
 * assertEquals(report.received, 3);
 * ```
 *
 * @module
 */
export type { Family } from "../address.ts";
export {
  bindUdp,
  type BindUdpOptions,
  type Datagram,
  MAX_UDP_PAYLOAD_V4,
  MAX_UDP_PAYLOAD_V6,
  type UdpSocket,
} from "./socket.ts";
export type { SplitMode } from "./_datagram_input.ts";
export {
  udpClient,
  type UdpClientOptions,
  type UdpClientResult,
} from "./client.ts";
export {
  udpListen,
  type UdpListenOptions,
  type UdpListenResult,
} from "./listener.ts";
export {
  udpEcho,
  type UdpEchoDrops,
  type UdpEchoOptions,
  type UdpEchoServer,
} from "./echo.ts";
export { udpQuery, type UdpQueryOptions, type UdpQueryReply } from "./query.ts";
export {
  type ProbeReply,
  type ProbeReport,
  probeUdp,
  type ProbeUdpOptions,
  type RttStats,
} from "./probe.ts";
export {
  unixDatagramClient,
  type UnixDatagramClientOptions,
  unixDatagramListen,
  type UnixDatagramListenOptions,
  type UnixDatagramResult,
} from "./unix_datagram.ts";
