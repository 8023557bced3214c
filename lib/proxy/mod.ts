/**
 * Proxy clients: SOCKS4/4a, SOCKS5 (no authentication or
 * username/password) and HTTP CONNECT (optionally with Basic
 * authentication), as handshakes over any connection and as
 * {@linkcode connectViaProxy}. The bytes are in docs/PROTOCOL.md.
 *
 * @module
 */
export type { ByteStream } from "./_io.ts";
export { socks4Connect, type Socks4Options } from "./socks4.ts";
export { socks5Connect, type Socks5Options } from "./socks5.ts";
export { httpConnect, type HttpConnectOptions } from "./http_connect.ts";
export {
  connectViaProxy,
  DEFAULT_PROXY_PORT,
  parseProxy,
  parseProxyAuth,
  parseProxyType,
  type ProxyConnectOptions,
  type ProxyDns,
  proxyHandshake,
  type ProxySpec,
  type ProxyType,
} from "./connect.ts";
export type { ConnectOptions } from "../tcp/connect.ts";
export type { Family } from "../address.ts";
