/**
 * TCP (and Unix stream socket) modes: connect and listen with timeouts, the
 * netcat client and listener that relay a reader and a writer over one
 * connection, the half-close-correct duplex pipe under both, an echo server
 * and a connect-scan probe.
 *
 * @example Echo round trip
 * ```ts
 * import { connect, echoServer } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using server = echoServer({ hostname: "127.0.0.1", port: 0 });
 * const port = (server.addr as Deno.NetAddr).port;
 * using conn = await connect({ hostname: "127.0.0.1", port });
 * await conn.write(new TextEncoder().encode("ping"));
 * const buf = new Uint8Array(4);
 * const n = await conn.read(buf);
 * assertEquals(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "ping");
 * ```
 *
 * @module
 */
export {
  closeQuietly,
  type Conn,
  connect,
  type ConnectOptions,
  type Endpoint,
  listen,
  type Listener,
  type ListenOptions,
} from "./connect.ts";
export type { Family } from "../address.ts";
export { type ClientOptions, tcpClient } from "./client.ts";
export {
  type ListenerOptions,
  type ListenerResult,
  tcpListen,
} from "./listener.ts";
export { pipeDuplex, type PipeOptions, type PipeResult } from "./pipe.ts";
export { type EchoOptions, type EchoServer, echoServer } from "./echo.ts";
export {
  parsePortList,
  parsePortRange,
  type PortOpener,
  probeTcp,
  type ProbeTcpOptions,
  scanPorts,
  type ScanPortsOptions,
  type TcpPortResult,
  type TcpProbeReport,
} from "./probe.ts";
export type { KeepaliveTimers } from "../native/socket_fd.ts";
