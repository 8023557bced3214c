/**
 * Port forwarding: `denocat forward` as a library. TCP (or Unix stream)
 * forwarding with half-close passed on both ways, TLS on either side, a
 * proxy toward the target, access lists and limits; UDP forwarding with
 * one session per client address.
 *
 * @module
 */
export { type ForwardOptions, type ForwardServer, forwardTcp } from "./tcp.ts";
export {
  forwardUdp,
  type UdpForwardOptions,
  type UdpForwardServer,
} from "./udp.ts";
export {
  relay,
  type RelayOptions,
  type RelayResult,
  type Stream,
} from "./relay.ts";
export {
  acceptServerTls,
  CA_AS_END_ENTITY_HINT,
  clientChainProblem,
  type ClientTlsOptions,
  describeTlsError,
  parsePin,
  type RawConn,
  type ServerTls,
  serverTls,
  serverTlsContext,
  type ServerTlsPem,
  startClientTls,
} from "./tls.ts";
export type { Endpoint } from "../tcp/connect.ts";
export type { Family } from "../address.ts";
export type { Logger } from "../log.ts";
export type { ProxySpec, ProxyType } from "../proxy/connect.ts";
export { AccessList } from "../access/list.ts";
export {
  type RecordedStream,
  type SessionLogOptions,
  SessionRecorder,
} from "../session_log.ts";
