/**
 * `denocat forward -u`: UDP forwarding with one session per client
 * address. Each client gets its own socket toward the target, so the
 * target's replies find their way back; a session that moves no datagram
 * for the idle timeout is closed.
 *
 * @module
 */
import { type Family, formatAddr, ipFamily, unbracket } from "../address.ts";
import { describeError, UsageError } from "../errors.ts";
import { IdleWatch } from "../idle.ts";
import type { SessionRecorder } from "../session_log.ts";
import { type Logger, silent } from "../log.ts";
import { AccessList } from "../access/list.ts";
import { resolveHost } from "../tcp/connect.ts";
import {
  bindUdp,
  bindUdpFor,
  sameUdpAddr,
  type UdpSocket,
} from "../udp/socket.ts";
import { netError } from "../errors.ts";

/** Sessions a UDP forwarder holds at once unless told otherwise. */
export const DEFAULT_MAX_SESSIONS = 1024;

/** Options for {@linkcode forwardUdp}. */
export interface UdpForwardOptions {
  /** Where to receive clients' datagrams. */
  listen: { hostname?: string; port: number };
  /** Where to send them (a name is resolved once, at start). */
  target: { hostname: string; port: number };
  /** IPv4 or IPv6 only. */
  family?: Family;
  /** Peers whose datagrams are forwarded; others are dropped. @default {everyone} */
  access?: AccessList;
  /**
   * Sessions at once; datagrams from further clients are dropped. Each
   * session holds a socket, and UDP source addresses cost an attacker
   * nothing to vary, so there is a bound by default. @default {1024}
   */
  maxSessions?: number;
  /** Close a session after this many ms without a datagram either way. @default {60000} */
  idleTimeout?: number;
  /** Where sessions, drops and failures are reported. */
  logger?: Logger;
  /**
   * Records every session's datagrams (`--hex-dump`/`--session-log`), each
   * under the client's address; "received" is from the client. The caller
   * opens and closes it.
   */
  record?: SessionRecorder;
}

/** A running UDP forwarder. */
export interface UdpForwardServer extends AsyncDisposable {
  /** The bound address clients send to. */
  readonly addr: Deno.NetAddr;
  /** The target's resolved address. */
  readonly target: Deno.NetAddr;
  /** Sessions open now. */
  readonly sessions: number;
  /** Datagrams dropped: access list, --max-conns, or a sender that is not the target. */
  readonly dropped: number;
  /** Stops, closing every session socket. */
  close(): Promise<void>;
}

interface Session {
  key: string;
  client: Deno.NetAddr;
  socket: UdpSocket;
  loop: Promise<void>;
  /** This session's recorder, when recording. */
  record?: SessionRecorder;
}

async function resolveTarget(
  target: { hostname: string; port: number },
  family: Family | undefined,
): Promise<Deno.NetAddr> {
  let host = unbracket(target.hostname);
  if (ipFamily(host) === undefined) {
    if (family) host = await resolveHost(host, family);
    else {
      const { lookup } = await import("node:dns/promises");
      try {
        host = (await lookup(host)).address;
      } catch (err) {
        throw netError(`resolve ${host}`, err);
      }
    }
  }
  return { transport: "udp", hostname: host, port: target.port };
}

/**
 * Starts the UDP forwarder. Binding and resolving the target fail here;
 * afterwards a failing send is logged and the forwarder keeps going.
 *
 * @example Through to a UDP echo server
 * ```ts
 * import { forwardUdp } from "./udp.ts";
 * import { udpEcho } from "../udp/echo.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using echo = udpEcho({ hostname: "127.0.0.1", port: 0 });
 * await using fwd = await forwardUdp({
 *   listen: { hostname: "127.0.0.1", port: 0 },
 *   target: { hostname: "127.0.0.1", port: echo.addr.port },
 * });
 * const c = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * await c.send(new TextEncoder().encode("hi"), fwd.addr);
 * const [data] = await c.receive();
 * c.close();
 * assertEquals(new TextDecoder().decode(data), "hi");
 * ```
 */
export async function forwardUdp(
  options: UdpForwardOptions,
): Promise<UdpForwardServer> {
  const logger = options.logger ?? silent;
  const access = options.access ?? AccessList.open;
  const idleMs = options.idleTimeout ?? 60_000;
  const maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
  if (!(idleMs > 0)) {
    throw new UsageError("--idle-timeout must be above 0 for -u");
  }
  const target = await resolveTarget(options.target, options.family);
  const main = bindUdp({
    port: options.listen.port,
    ...(options.listen.hostname !== undefined
      ? { hostname: options.listen.hostname }
      : {}),
    ...(options.family ? { family: options.family } : {}),
  });
  const sessions = new Map<string, Session>();
  let dropped = 0;
  // Ends `key`'s session; with `only`, only if that session is still the
  // one under `key` (a closed session's loop must not end its successor:
  // after an idle expiry the same client may already have a new one).
  const endSession = (key: string, why: string, only?: Session) => {
    const s = sessions.get(key);
    if (!s || (only !== undefined && s !== only)) return;
    sessions.delete(key);
    idle.delete(key);
    s.socket.close();
    logger.log(`session ${key} ended: ${why}`);
  };
  const idle = new IdleWatch<string>(
    idleMs,
    (key) => endSession(key, `no datagram for ${idleMs / 1000} s`),
  );

  const openSession = (client: Deno.NetAddr, key: string): Session => {
    const socket = bindUdpFor(target);
    const replyTo: Deno.NetAddr = { ...client };
    const session: Session = {
      key,
      client: replyTo,
      socket,
      loop: Promise.resolve(),
      ...(options.record ? { record: options.record.forPeer(key) } : {}),
    };
    session.loop = (async () => {
      let strangers = 0;
      while (true) {
        let d;
        try {
          d = await socket.receiveView();
        } catch (err) {
          logger.log(`session ${key}: ${describeError(err)}`);
          break;
        }
        if (d === null) break;
        // Only the target may answer through this session.
        if (!sameUdpAddr(d.from, target)) {
          dropped++;
          if (strangers++ === 0) {
            logger.log(
              `session ${key}: dropped a datagram from ${
                formatAddr(d.from)
              } (not the target)`,
            );
          }
          continue;
        }
        idle.touch(key);
        try {
          await main.send(d.data, replyTo);
          session.record?.sent(d.data);
        } catch (err) {
          logger.log(`session ${key}: ${describeError(err)}`);
        }
      }
      endSession(key, "socket closed", session);
    })();
    sessions.set(key, session);
    idle.add(key);
    logger.log(
      `session ${key} -> ${
        formatAddr(target)
      } via local port ${socket.addr.port}`,
    );
    return session;
  };

  const mainLoop = (async () => {
    while (true) {
      let d;
      try {
        d = await main.receiveView();
      } catch (err) {
        logger.log(describeError(err));
        continue;
      }
      if (d === null) return;
      const key = formatAddr(d.from);
      let session = sessions.get(key);
      if (!session) {
        if (!access.allows(d.from.hostname)) {
          dropped++;
          logger.log(
            `ignored a datagram from ${key}: not allowed by the access list`,
          );
          continue;
        }
        if (sessions.size >= maxSessions) {
          dropped++;
          logger.log(
            `ignored a datagram from ${key}: ${sessions.size} sessions already (--max-conns)`,
          );
          continue;
        }
        try {
          session = openSession(d.from, key);
        } catch (err) {
          logger.log(`cannot open a session for ${key}: ${describeError(err)}`);
          continue;
        }
      }
      idle.touch(key);
      session.record?.received(d.data);
      try {
        await session.socket.send(d.data, target);
      } catch (err) {
        logger.log(`session ${key}: ${describeError(err)}`);
      }
    }
  })();

  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      main.close();
      await mainLoop;
      const loops = [...sessions.values()].map((s) => s.loop);
      for (const key of [...sessions.keys()]) endSession(key, "shutting down");
      await Promise.all(loops);
      idle[Symbol.dispose]();
    })();
  return {
    addr: main.addr,
    target,
    get sessions() {
      return sessions.size;
    },
    get dropped() {
      return dropped;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
