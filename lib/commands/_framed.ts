/**
 * The `--frame FORMAT` branches of `denocat`: framed sending (TCP or UDP)
 * and framed receiving (`-l`, with `-k` or `-u`).
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import type { Family } from "../address.ts";
import { describeError, UsageError } from "../errors.ts";
import { FRAME_NAMES, framingByName } from "../framed/options.ts";
import { framedListen } from "../framed/listen.ts";
import { FRAME_OUTPUT_MODES, type FrameOutputMode } from "../framed/output.ts";
import { framedClient } from "../framed/send.ts";
import { framedUdpClient, framedUdpListen } from "../framed/udp.ts";
import type { Logger } from "../log.ts";
import type { Conn } from "../tcp/connect.ts";
import { stdinReader, stdoutWriter } from "../stdio.ts";
import { withoutFd } from "../tcp/stream_conn.ts";
import type { AccessList } from "../access/list.ts";
import type { ClientTlsOptions, ServerTlsPem } from "../forward/tls.ts";
import type { ProxySpec } from "../proxy/connect.ts";
import { type ConnectFrom, dialerFor, recorded, tlsWrap } from "./_net.ts";
import type { SessionRecorder } from "../session_log.ts";
import {
  clientEndpoint,
  hostAndPort,
  serverEndpoint,
  shutdownSignal,
  splitMode,
} from "./_args.ts";

/** Parsed flags the framed modes use. */
export interface FramedNetcatFlags {
  frame: string;
  output: string | undefined;
  /** `--max-frame` in bytes. */
  maxFrame?: number | undefined;
  split: string | undefined;
  listen: boolean;
  keep: boolean;
  udp: boolean;
  /** `-q` in ms. */
  quit: number | undefined;
  /** `-w` in ms. */
  wait: number | undefined;
  /** `--idle-timeout` in ms (listeners only). */
  idle?: number | undefined;
  /** `--max-conns` (`-l -k` only). */
  maxConns?: number | undefined;
  noShutdown: boolean;
  unix: boolean;
  family: Family | undefined;
  logger: Logger;
  /** `-s`, `-p`, `-n`, `--keepalive` for the TCP client. */
  connectFrom?: ConnectFrom;
  /** `--allow`/`--deny` (TCP listeners). */
  access?: AccessList;
  /** `--proxy` (TCP clients). */
  proxy?: ProxySpec;
  /** `--ssl` and its companions (TCP clients). */
  clientTls?: ClientTlsOptions;
  /** `--ssl-cert`/`--ssl-key` (TCP listeners). */
  serverTls?: ServerTlsPem;
  /** `--hex-dump`/`--session-log`: the framed bytes on the wire. */
  record?: SessionRecorder;
}

const encoder = new TextEncoder();

/**
 * The listener's `wrap`: TLS (`--ssl-cert`), then recording, each client
 * under its address (`--hex-dump`); none when neither is asked for.
 */
async function listenWrap(
  flags: FramedNetcatFlags,
): Promise<{ wrap?: (conn: Conn) => Promise<Conn> }> {
  const tls = flags.serverTls ? await tlsWrap(flags.serverTls) : undefined;
  const record = flags.record;
  if (!record) return tls ? { wrap: tls } : {};
  return {
    wrap: async (conn) =>
      await recorded(
        tls ? await tls(conn) : conn,
        record.forPeer(formatAddr(conn.remoteAddr)),
      ),
  };
}

/** A line on stderr whatever `-v` says: malformed input is always reported. */
function warn(message: string): void {
  Deno.stderr.writeSync(encoder.encode(`denocat: ${message}\n`));
}

function outputMode(value: string | undefined): FrameOutputMode {
  if (value === undefined) return "lines";
  if ((FRAME_OUTPUT_MODES as readonly string[]).includes(value)) {
    return value as FrameOutputMode;
  }
  throw new UsageError(
    `invalid --output value: ${value} (${FRAME_OUTPUT_MODES.join(", ")})`,
  );
}

/** `denocat --frame FORMAT ...`: checks the flag combination, then sends or receives. */
export async function runFramedNetcat(
  positionals: string[],
  flags: FramedNetcatFlags,
): Promise<number> {
  const named = framingByName(flags.frame);
  if (named === undefined) {
    throw new UsageError(
      `invalid --frame value: ${flags.frame} (${FRAME_NAMES.join(", ")})`,
    );
  }
  const framing = flags.maxFrame === undefined
    ? named
    : { ...named, maxFrameSize: flags.maxFrame };
  if (flags.udp && flags.unix) {
    throw new UsageError("-u cannot be combined with -U");
  }
  const { logger } = flags;
  if (flags.listen) {
    if (flags.split !== undefined) {
      throw new UsageError("--split applies to sending, not to -l");
    }
    for (
      const [set, flag] of [
        [flags.quit !== undefined, "-q"],
        [flags.wait !== undefined, "-w"],
        [flags.noShutdown, "--no-shutdown"],
      ] as const
    ) {
      if (set) {
        throw new UsageError(`${flag} does not apply to -l --frame`);
      }
    }
    const mode = outputMode(flags.output);
    using signal = shutdownSignal();
    if (flags.udp) {
      const ep = serverEndpoint(positionals, undefined, undefined, "udp");
      await framedUdpListen({
        ...framing,
        ...(flags.record ? { record: flags.record } : {}),
        mode,
        output: stdoutWriter(),
        port: ep.port!,
        signal,
        logger,
        ...(flags.access
          ? { accept: (a: Deno.NetAddr) => flags.access!.allows(a.hostname) }
          : {}),
        onMalformed: (err, from) =>
          logger.enabled
            ? logger.log(
              `malformed datagram from ${
                formatAddr(from)
              } skipped: ${err.message}`,
            )
            : warn(`malformed datagram skipped: ${err.message}`),
        ...(ep.hostname !== undefined ? { hostname: ep.hostname } : {}),
        ...(flags.family ? { family: flags.family } : {}),
      });
      return 0;
    }
    await framedListen(serverEndpoint(positionals, flags.unix), {
      ...(flags.connectFrom?.keepalive ? { keepalive: true } : {}),
      ...framing,
      mode,
      output: stdoutWriter(),
      keep: flags.keep,
      signal,
      logger,
      ...(flags.idle !== undefined ? { idleTimeout: flags.idle } : {}),
      ...(flags.maxConns !== undefined ? { maxConns: flags.maxConns } : {}),
      ...(flags.access
        ? {
          accept: (a: Deno.Addr) => flags.access!.allowsAddr(a),
        }
        : {}),
      ...(await listenWrap(flags)),
      onClientError: (err, peer) =>
        logger.enabled
          ? logger.log(`${peer} dropped: ${describeError(err)}`)
          : warn(`client dropped: ${describeError(err)}`),
      ...(flags.family ? { family: flags.family } : {}),
    });
    return 0;
  }
  if (flags.output !== undefined) {
    throw new UsageError("--output applies to received frames: it needs -l");
  }
  if (flags.keep) throw new UsageError("-k needs -l");
  const split = splitMode(flags.split);
  if (flags.udp) {
    if (flags.noShutdown) {
      throw new UsageError("--no-shutdown does not apply to -u");
    }
    const target = hostAndPort(positionals, "udp");
    using signal = shutdownSignal();
    await framedUdpClient(target.hostname, target.port, {
      ...framing,
      ...(flags.record ? { record: flags.record } : {}),
      split,
      input: stdinReader(),
      output: stdoutWriter(),
      signal,
      logger,
      ...(flags.family ? { family: flags.family } : {}),
      ...(flags.wait !== undefined ? { wait: flags.wait } : {}),
      ...(flags.quit !== undefined ? { quitAfterEof: flags.quit } : {}),
    });
    return 0;
  }
  const interactive = Deno.stdin.isTerminal();
  const endpoint = clientEndpoint(positionals, flags.unix);
  const dial = dialerFor(endpoint, flags.proxy, flags.clientTls, {
    family: flags.family,
    wait: flags.wait,
    record: flags.record,
    ...(flags.connectFrom ? { connectFrom: flags.connectFrom } : {}),
  });
  await framedClient(endpoint, {
    ...framing,
    split,
    input: stdinReader(),
    // A TLS layer keeps every copy in JavaScript (tcp/stream_conn.ts).
    output: flags.clientTls ? withoutFd(stdoutWriter()) : stdoutWriter(),
    ...(dial ? { dial } : {}),
    halfClose: !flags.noShutdown,
    endOnPeerEof: interactive,
    noDelay: interactive,
    logger,
    ...flags.connectFrom,
    ...(flags.family ? { family: flags.family } : {}),
    ...(flags.quit !== undefined ? { quitAfterEof: flags.quit } : {}),
    ...(flags.wait !== undefined
      ? { idleTimeout: flags.wait, timeout: flags.wait }
      : {}),
  });
  return 0;
}
