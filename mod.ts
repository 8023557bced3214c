/**
 * denocat: a netcat for the Deno era, as a library.
 *
 * Every mode of the `denocat` command is a function here with a typed
 * options object: connect and listen with timeouts, a duplex pipe that
 * half-closes correctly, an echo server, UDP endpoints and probes, framing
 * codecs, verified file transfer and a remote shell.
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

// Errors and addresses
export * from "./lib/errors.ts";
export * from "./lib/address.ts";
export { VERSION } from "./lib/version.ts";

// TCP core
export * from "./lib/tcp.ts";
export * from "./lib/copy.ts";
export {
  fastCopy,
  type FastCopyOptions,
  type Pump,
  socketFd,
} from "./lib/fdpump.ts";
export * from "./lib/pipe.ts";
export * from "./lib/client.ts";
export * from "./lib/listener.ts";
export * from "./lib/echo.ts";
export {
  formatTransfer,
  type Logger,
  pumpNote,
  silent,
  stderrLogger,
} from "./lib/log.ts";

// Framing codecs
export * from "./lib/frame/mod.ts";

// Framed streams (--frame): stdin as frames, frames decoded to stdout
export * from "./lib/framed.ts";
export * from "./lib/framed_decoder.ts";
export * from "./lib/framed_output.ts";
export * from "./lib/framed_send.ts";
export * from "./lib/framed_receive.ts";
export * from "./lib/framed_listen.ts";
export * from "./lib/framed_udp.ts";

// UDP: endpoint, client/listener modes, echo server, probes
export * from "./lib/udp.ts";
export * from "./lib/udp_client.ts";
export * from "./lib/udp_listener.ts";
export * from "./lib/udp_echo.ts";
export * from "./lib/udp_query.ts";
export * from "./lib/probe_payload.ts";
export * from "./lib/probe_udp.ts";
export * from "./lib/probe_tcp.ts";
export * from "./lib/hexdump.ts";

// Verified file transfer
export * from "./lib/transfer/mod.ts";

// Remote shell: server, clients, seed compatibility
export * from "./lib/shell/mod.ts";
