/**
 * A Disposable UDP endpoint over `Deno.listenDatagram`: never truncates a
 * datagram, refuses payloads above the protocol maximum with a clear error,
 * copies what it receives, and closes idempotently.
 *
 * @module
 */
import { type Family, formatAddr, ipFamily, unbracket } from "../address.ts";
import { bindAddress } from "../bind.ts";
import { DenocatError, netError } from "../errors.ts";

/** Largest UDP payload over IPv4 (65535 - 20 IP header - 8 UDP header). */
export const MAX_UDP_PAYLOAD_V4 = 65507;
/** Largest UDP payload over IPv6 (65535 - 8 UDP header; the IPv6 header is not counted). */
export const MAX_UDP_PAYLOAD_V6 = 65527;
/**
 * Size of every receive buffer: larger than any UDP payload, so Deno's silent
 * truncation of oversized datagrams can never happen.
 */
export const RECEIVE_BUFFER_SIZE = 65536;

/** One received datagram: a private copy of its bytes and its sender. */
export interface Datagram {
  /** The payload (a copy; safe to keep). */
  data: Uint8Array;
  /** Who sent it. */
  from: Deno.NetAddr;
}

/** Where to bind a UDP socket. */
export interface BindUdpOptions {
  /**
   * Address to bind. Without it, every interface: dual-stack `::` where IPv6
   * exists, else `0.0.0.0` (`family` narrows this).
   */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {0} */
  port?: number;
  /** Restrict to IPv4 or IPv6. */
  family?: Family;
}

/**
 * The largest payload a datagram to `hostname` may carry: 65507 bytes for
 * IPv4 (and IPv4-mapped IPv6) addresses, 65527 for IPv6.
 *
 * @example Usage
 * ```ts
 * import { maxPayload } from "./socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(maxPayload("127.0.0.1"), 65507);
 * assertEquals(maxPayload("::1"), 65527);
 * assertEquals(maxPayload("::ffff:127.0.0.1"), 65507);
 * ```
 */
export function maxPayload(hostname: string): number {
  const h = unbracket(hostname).toLowerCase();
  if (ipFamily(h) === 6 && !h.startsWith("::ffff:")) return MAX_UDP_PAYLOAD_V6;
  return MAX_UDP_PAYLOAD_V4;
}

/**
 * A bound UDP socket. Create it with {@linkcode bindUdp}; `using` closes it.
 */
export class UdpSocket implements Disposable {
  #conn: Deno.DatagramConn;
  #buf = new Uint8Array(RECEIVE_BUFFER_SIZE);
  #closed = false;
  // The last destination's payload limit: echo replies go to few peers.
  #limitHost = "";
  #limit = 0;
  /** The bound address (read the port from here when you bound port 0). */
  readonly addr: Deno.NetAddr;

  /** Wraps a bound datagram connection; prefer {@linkcode bindUdp}. */
  constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
    this.addr = conn.addr as Deno.NetAddr;
  }

  /** Whether {@linkcode UdpSocket.close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends `data` as one datagram to `to`. Payloads above the protocol maximum
   * are refused with `cannot send N-byte datagram to HOST:PORT: ...`.
   */
  async send(data: Uint8Array, to: Deno.NetAddr): Promise<void> {
    if (to.hostname !== this.#limitHost) {
      this.#limitHost = to.hostname;
      this.#limit = maxPayload(to.hostname);
    }
    const max = this.#limit;
    if (data.length > max) {
      throw new DenocatError(
        `cannot send ${data.length}-byte datagram to ${
          formatAddr(to)
        }: larger than the UDP maximum of ${max} bytes`,
      );
    }
    try {
      await this.#conn.send(data, to);
    } catch (err) {
      throw netError(`send to ${formatAddr(to)}`, err);
    }
  }

  /**
   * Waits for the next datagram. Resolves `null` once the socket is closed
   * (also when it is closed while waiting).
   */
  async receive(): Promise<Datagram | null> {
    const d = await this.receiveView();
    return d && { data: d.data.slice(), from: d.from };
  }

  /**
   * Like {@linkcode UdpSocket.receive}, but `data` is a view of the socket's
   * own buffer, valid only until the next receive: for loops that are done
   * with each datagram before receiving the next (an echo server).
   */
  async receiveView(): Promise<Datagram | null> {
    if (this.#closed) return null;
    try {
      const [view, from] = await this.#conn.receive(this.#buf);
      return { data: view, from: from as Deno.NetAddr };
    } catch (err) {
      if (
        this.#closed || err instanceof Deno.errors.BadResource ||
        err instanceof Deno.errors.Interrupted
      ) return null;
      throw netError(`receive on ${formatAddr(this.addr)}`, err);
    }
  }

  /** Closes the socket; calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource)) throw err;
    }
  }

  /** Closes the socket (the same as {@linkcode UdpSocket.close}). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Binds a UDP socket. Failures become one-line errors such as
 * `cannot listen on udp 127.0.0.1:53: address already in use`.
 *
 * @example Usage
 * ```ts
 * import { bindUdp } from "./socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * using a = bindUdp({ hostname: "127.0.0.1" });
 * using b = bindUdp({ hostname: "127.0.0.1" });
 * await a.send(new TextEncoder().encode("hah"), b.addr);
 * const got = await b.receive();
 * assertEquals(new TextDecoder().decode(got!.data), "hah");
 * assertEquals(got!.from.port, a.addr.port);
 * ```
 */
export function bindUdp(options: BindUdpOptions = {}): UdpSocket {
  const port = options.port ?? 0;
  return bindAddress(
    options.hostname,
    port,
    options.family,
    "udp ",
    (hostname) =>
      new UdpSocket(Deno.listenDatagram({ transport: "udp", hostname, port })),
  );
}

/**
 * Resolves `hostname` to one IP address (of `family` when given). IP literals
 * are checked against `family` and returned in canonical form.
 *
 * @example Usage
 * ```ts
 * import { resolveIp } from "./socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(await resolveIp("[0:0::1]"), "::1");
 * assertEquals(await resolveIp("localhost", 4), "127.0.0.1");
 * ```
 */
export async function resolveIp(
  hostname: string,
  family?: Family,
): Promise<string> {
  const host = unbracket(hostname);
  const literal = ipFamily(host);
  if (literal !== undefined) {
    if (family !== undefined && literal !== family) {
      throw new DenocatError(
        `cannot use ${host}: not an IPv${family} address`,
      );
    }
    // Canonical form, so replies (which carry the kernel's spelling) match.
    return literal === 6 ? canonicalIpv6(host) : host;
  }
  if (host === "localhost" && family !== undefined) {
    return family === 4 ? "127.0.0.1" : "::1";
  }
  const { lookup } = await import("node:dns/promises");
  try {
    return (await lookup(host, family ? { family } : {})).address;
  } catch (err) {
    throw netError(`resolve ${host}`, err);
  }
}

/**
 * Resolves `hostname` and returns it with `port` as a UDP address. Replies
 * are matched against this exact address.
 *
 * @example Usage
 * ```ts
 * import { resolveUdp } from "./socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(await resolveUdp("[::1]", 53), { transport: "udp", hostname: "::1", port: 53 });
 * ```
 */
export async function resolveUdp(
  hostname: string,
  port: number,
  family?: Family,
): Promise<Deno.NetAddr> {
  return {
    transport: "udp",
    hostname: await resolveIp(hostname, family),
    port,
  };
}

function canonicalIpv6(host: string): string {
  try {
    return unbracket(new URL(`http://[${host}]/`).hostname);
  } catch {
    return host; // zone ids (fe80::1%eth0) are not URL hosts
  }
}

/**
 * Binds a socket suited to talking to `target`: every interface, port 0, of
 * the target's address family.
 */
export function bindUdpFor(target: Deno.NetAddr): UdpSocket {
  return bindUdp({ family: ipFamily(target.hostname) === 6 ? 6 : 4 });
}

/**
 * Whether two UDP addresses name the same endpoint, treating an IPv4 address
 * and its IPv4-mapped IPv6 form (`::ffff:127.0.0.1`) as equal.
 *
 * @example Usage
 * ```ts
 * import { sameUdpAddr } from "./socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * const a = { transport: "udp" as const, hostname: "127.0.0.1", port: 9 };
 * assertEquals(sameUdpAddr(a, { ...a, hostname: "::ffff:127.0.0.1" }), true);
 * assertEquals(sameUdpAddr(a, { ...a, port: 10 }), false);
 * ```
 */
export function sameUdpAddr(a: Deno.NetAddr, b: Deno.NetAddr): boolean {
  const norm = (h: string) => h.toLowerCase().replace(/^::ffff:(?=\d+\.)/, "");
  return a.port === b.port && norm(a.hostname) === norm(b.hostname);
}
