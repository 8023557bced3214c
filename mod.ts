/**
 * denocat: a netcat for the Deno era, as a library.
 *
 * Every mode of the `denocat` command is a function here with a typed
 * options object: connect and listen with timeouts, a duplex pipe that
 * half-closes correctly, an echo server, UDP endpoints and probes, framing
 * codecs, verified file transfer and a remote shell. Each area has its own
 * entry point with the rest of its API: `./tcp`, `./udp`, `./frame`,
 * `./framed`, `./transfer` and `./shell`.
 *
 * @example Echo round trip
 * ```ts
 * import { echoServer, tcpClient } from "./mod.ts";
 * import { assertEquals } from "./lib/_assert.ts";
 * await using server = echoServer({ hostname: "127.0.0.1", port: 0 });
 * const port = (server.addr as Deno.NetAddr).port;
 * const chunks = [new TextEncoder().encode("hello")];
 * let reply = "";
 * await tcpClient({ hostname: "127.0.0.1", port }, {
 *   input: { read: (p) => { const c = chunks.shift(); if (!c) return Promise.resolve(null); p.set(c); return Promise.resolve(c.length); } },
 *   output: { write: (p) => { reply += new TextDecoder().decode(p); return Promise.resolve(p.length); } },
 * });
 * assertEquals(reply, "hello");
 * ```
 *
 * @module
 */

// Errors and exit codes
export {
  DenocatError,
  describeError,
  EXIT_FAILURE,
  EXIT_INTEGRITY,
  EXIT_USAGE,
  IntegrityError,
  UsageError,
} from "./lib/errors.ts";
export type { Family } from "./lib/address.ts";
export { VERSION } from "./lib/version.ts";
export { type Logger, silent, stderrLogger } from "./lib/log.ts";
export type { Reader, Writer } from "./lib/copy.ts";

// TCP
export {
  type ClientOptions,
  type Conn,
  connect,
  type ConnectOptions,
  type EchoOptions,
  type EchoServer,
  echoServer,
  type Endpoint,
  listen,
  type Listener,
  type ListenerOptions,
  type ListenerResult,
  type ListenOptions,
  pipeDuplex,
  type PipeOptions,
  type PipeResult,
  type PortOpener,
  probeTcp,
  type ProbeTcpOptions,
  scanPorts,
  type ScanPortsOptions,
  tcpClient,
  tcpListen,
  type TcpPortResult,
  type TcpProbeReport,
} from "./lib/tcp/mod.ts";

// UDP
export {
  bindUdp,
  type BindUdpOptions,
  type Datagram,
  type ProbeReport,
  probeUdp,
  type ProbeUdpOptions,
  udpClient,
  type UdpClientOptions,
  type UdpClientResult,
  udpEcho,
  type UdpEchoOptions,
  type UdpEchoServer,
  udpListen,
  type UdpListenOptions,
  type UdpListenResult,
  udpQuery,
  type UdpQueryOptions,
  type UdpQueryReply,
  type UdpSocket,
  unixDatagramClient,
  type UnixDatagramClientOptions,
  unixDatagramListen,
  type UnixDatagramListenOptions,
  type UnixDatagramResult,
} from "./lib/udp/mod.ts";

// Framing codecs and framed streams
export {
  encodeFrame,
  encodeJsonHeaderFrame,
  FrameDecoder,
  FrameDecoderStream,
  FrameError,
  type JsonHeader,
  JsonHeaderDecoder,
  type PrefixFormat,
} from "./lib/frame/mod.ts";
export {
  framedClient,
  type FramedClientOptions,
  type FramedClientResult,
  framedListen,
  type FramedListenOptions,
  type FramedListenResult,
  framedUdpClient,
  type FramedUdpClientOptions,
  framedUdpListen,
  type FramedUdpListenOptions,
  type FramingOptions,
} from "./lib/framed/mod.ts";

// Verified file transfer
export {
  collectItems,
  type ReceiveServer,
  receiveServer,
  type ReceiveServerOptions,
  type SendItem,
  sendItems,
  type SendOptions,
  type SendResult,
} from "./lib/transfer/mod.ts";

// Remote shell
export {
  connectShell,
  type ConnectShellOptions,
  type ShellExit,
  type ShellServer,
  shellServer,
  type ShellServerOptions,
  type ShellSession,
} from "./lib/shell/mod.ts";
