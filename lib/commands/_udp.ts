/**
 * The `-u` branches of `denocat` and `denocat echo`: UDP client, listener and
 * echo server on the command line.
 *
 * @module
 */
import type { Family } from "../address.ts";
import type { AccessList } from "../access/list.ts";
import { execPerPeer, execToPeer } from "../exec/datagram.ts";
import type { ExecSpec } from "../exec/stream.ts";
import { bindUdp, bindUdpFor, resolveUdp } from "../udp/socket.ts";
import { formatAddr } from "../address.ts";
import { DenocatError, UsageError } from "../errors.ts";
import { sourceSocketsUnavailable } from "../native/socket_fd.ts";
import type { Logger } from "../log.ts";
import { udpClient } from "../udp/client.ts";
import { udpEcho } from "../udp/echo.ts";
import { DEFAULT_RATE } from "../source_guard.ts";
import { udpListen } from "../udp/listener.ts";
import { stdinReader, stdoutWriter } from "../stdio.ts";
import type { Reader, Writer } from "../copy.ts";
import type { SessionRecorder } from "../session_log.ts";
import type { SplitMode } from "../udp/_datagram_input.ts";
import { removeStaleSocket } from "../unix_stale.ts";
import {
  hostAndPort,
  serverEndpoint,
  shutdownSignal,
  splitMode,
  unixPath,
} from "./_args.ts";

/** Parsed flags the UDP netcat modes use. */
export interface UdpNetcatFlags {
  listen: boolean;
  /** `-w` in ms: after stdin EOF, exit once this long passes with no reply. */
  wait: number | undefined;
  /** `-q` in ms: after stdin EOF, exit after this long regardless. */
  quit: number | undefined;
  split: string | undefined;
  /** `-U`: PATH is a Unix datagram socket. */
  unix: boolean;
  /** `-s`: the local address (with `-U`: the local path replies come to). */
  source?: string | undefined;
  /** `-p`: the local port to send from. */
  sourcePort?: number | undefined;
  family: Family | undefined;
  logger: Logger;
  /** `--allow`/`--deny` (listener only). */
  access?: AccessList;
  /** `-e`/`-c`: a program per peer (listener) or for the one peer (client). */
  exec?: ExecSpec;
  /** `--hex-dump`/`--session-log`: what is sent (stdin) and received (stdout). */
  record?: SessionRecorder;
}

/** Stdin and stdout, recorded when `record` is given. */
function stdio(record: SessionRecorder | undefined): {
  input: Reader;
  output: Writer;
} {
  return record
    ? {
      input: record.tapInput(stdinReader()),
      output: record.tapOutput(stdoutWriter()),
    }
    : { input: stdinReader(), output: stdoutWriter() };
}

/**
 * `--split`, or nc's rule when it is not given: a terminal sends each line
 * as typed, anything else each read (a binary request stays one datagram).
 */
export function datagramSplit(value: string | undefined): SplitMode {
  if (value !== undefined) return splitMode(value);
  return Deno.stdin.isTerminal() ? "line" : "chunk";
}

/**
 * `-u -l -e PROG`: a child per peer (ncat's UDP exec); `-u -e PROG HOST
 * PORT`: one child talking to that peer.
 */
async function runUdpExec(
  positionals: string[],
  flags: UdpNetcatFlags,
  spec: ExecSpec,
  signal: AbortSignal,
  accept: ((from: Deno.NetAddr) => boolean) | undefined,
): Promise<number> {
  if (flags.listen) {
    const ep = serverEndpoint(positionals, undefined, undefined, "udp");
    const socket = bindUdp({
      port: ep.port!,
      ...(ep.hostname !== undefined ? { hostname: ep.hostname } : {}),
      ...(flags.family ? { family: flags.family } : {}),
    });
    flags.logger.log(`listening on udp ${formatAddr(socket.addr)}`);
    const r = await execPerPeer(socket, spec, {
      signal,
      logger: flags.logger,
      ...(accept ? { accept } : {}),
    });
    flags.logger.log(
      `shutting down: ${r.sessions} sessions served, ${r.dropped} datagrams dropped`,
    );
    return 0;
  }
  const target = hostAndPort(positionals, "udp");
  const peer = await resolveUdp(target.hostname, target.port, flags.family);
  const socket = bindUdpFor(peer);
  const code = await execToPeer(socket, peer, spec, { signal });
  flags.logger.log(`program exited with ${code}`);
  return 0;
}

/** `denocat -u HOST PORT` and `denocat -u -l [HOST] PORT`. */
export async function runUdpNetcat(
  positionals: string[],
  flags: UdpNetcatFlags,
): Promise<number> {
  const split = datagramSplit(flags.split);
  if (flags.unix) return await runUnixDatagram(positionals, flags, split);
  using signal = shutdownSignal();
  const accept = flags.access?.active
    ? (a: Deno.NetAddr) => flags.access!.allows(a.hostname)
    : undefined;
  // -e/-c: the program has the peer; our stdin and stdout are not opened.
  if (flags.exec) {
    return await runUdpExec(positionals, flags, flags.exec, signal, accept);
  }
  const { input, output } = stdio(flags.record);
  const common = {
    output,
    split,
    logger: flags.logger,
    ...(flags.family ? { family: flags.family } : {}),
  };
  if (flags.listen) {
    const ep = serverEndpoint(positionals, undefined, undefined, "udp");
    await udpListen({
      ...(accept ? { accept } : {}),
      ...common,
      port: ep.port!,
      input,
      signal,
      ...(ep.hostname !== undefined ? { hostname: ep.hostname } : {}),
    });
    return 0;
  }
  const target = hostAndPort(positionals, "udp");
  await udpClient(target.hostname, target.port, {
    ...common,
    input,
    signal,
    ...(flags.wait !== undefined ? { wait: flags.wait } : {}),
    ...(flags.quit !== undefined ? { quitAfterEof: flags.quit } : {}),
    ...(flags.source !== undefined ? { sourceHost: flags.source } : {}),
    ...(flags.sourcePort !== undefined ? { sourcePort: flags.sourcePort } : {}),
  });
  return 0;
}

async function runUnixDatagram(
  positionals: string[],
  flags: UdpNetcatFlags,
  split: SplitMode,
): Promise<number> {
  const path = unixPath(positionals);
  const why = sourceSocketsUnavailable();
  if (why !== undefined) {
    throw new DenocatError(
      `cannot use -u -U (Unix datagram sockets): ${why}`,
    );
  }
  const { unixDatagramClient, unixDatagramListen } = await import(
    "../udp/unix_datagram.ts"
  );
  using signal = shutdownSignal();
  const { input, output } = stdio(flags.record);
  if (flags.listen) {
    await removeStaleSocket(path, flags.logger);
    await unixDatagramListen(path, {
      input,
      output,
      split,
      signal,
      logger: flags.logger,
    });
    return 0;
  }
  if (flags.source !== undefined) {
    await removeStaleSocket(unixPath([flags.source]), flags.logger);
  }
  await unixDatagramClient(path, {
    input,
    output,
    split,
    signal,
    logger: flags.logger,
    ...(flags.source !== undefined
      ? { localPath: unixPath([flags.source]) }
      : {}),
    ...(flags.wait !== undefined ? { wait: flags.wait } : {}),
    ...(flags.quit !== undefined ? { quitAfterEof: flags.quit } : {}),
  });
  return 0;
}

/** Parsed flags `denocat echo -u` uses. */
export interface UdpEchoFlags {
  upper: boolean;
  /** `--allow`/`--deny`. */
  access?: AccessList;
  /** `--rate`: datagrams a second per source address (`Infinity`: off). */
  rate?: number;
  unix: boolean;
  family: Family | undefined;
  logger: Logger;
}

/** `denocat echo -u [--upper] [HOST] PORT`: runs until SIGINT/SIGTERM. */
export async function runUdpEcho(
  positionals: string[],
  flags: UdpEchoFlags,
): Promise<number> {
  if (flags.unix) {
    throw new UsageError("-u cannot be combined with -U");
  }
  const ep = serverEndpoint(positionals, undefined, undefined, "udp");
  using signal = shutdownSignal();
  const server = udpEcho({
    port: ep.port!,
    upper: flags.upper,
    logger: flags.logger,
    logDatagrams: true,
    ...(flags.rate !== undefined ? { rate: flags.rate } : {}),
    ...(flags.access
      ? { accept: (a: Deno.NetAddr) => flags.access!.allows(a.hostname) }
      : {}),
    ...(ep.hostname !== undefined ? { hostname: ep.hostname } : {}),
    ...(flags.family ? { family: flags.family } : {}),
  });
  const engine = await server.ready;
  flags.logger.log(`udp echo server listening on ${formatAddr(server.addr)}`);
  flags.logger.log(
    engine === "thread"
      ? "serving on its own thread"
      : "serving on the event loop",
  );
  const limit = flags.rate ?? DEFAULT_RATE;
  flags.logger.log(
    limit === Infinity
      ? "no rate limit per source (--rate off)"
      : `answering at most ${limit} datagrams a second per source address (--rate)`,
  );
  await new Promise((resolve) =>
    signal.addEventListener("abort", resolve, { once: true })
  );
  // Counts once the engine has stopped: a thread counts a datagram just
  // after sending its reply, which the client may already have.
  await server.close();
  const { loop, rate } = server.dropped;
  flags.logger.log(
    `shutting down: ${server.echoed} datagrams echoed, ${
      loop + rate
    } dropped (${loop} from loop sources, ${rate} over --rate)`,
  );
  return 0;
}
