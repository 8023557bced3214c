/**
 * The `-u` branches of `denocat` and `denocat echo`: UDP client, listener and
 * echo server on the command line.
 *
 * @module
 */
import type { Family } from "../address.ts";
import { formatAddr } from "../address.ts";
import { UsageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { udpClient } from "../udp/client.ts";
import { udpEcho } from "../udp/echo.ts";
import { DEFAULT_RATE } from "../source_guard.ts";
import { udpListen } from "../udp/listener.ts";
import {
  hostAndPort,
  serverEndpoint,
  shutdownSignal,
  splitMode,
} from "./_args.ts";

/** Parsed flags the UDP netcat modes use. */
export interface UdpNetcatFlags {
  listen: boolean;
  /** `-w` in ms: after stdin EOF, exit once this long passes with no reply. */
  wait: number | undefined;
  /** `-q` in ms: after stdin EOF, exit after this long regardless. */
  quit: number | undefined;
  split: string | undefined;
  unix: string | undefined;
  family: Family | undefined;
  logger: Logger;
}

/** `denocat -u HOST PORT` and `denocat -u -l [HOST] PORT`. */
export async function runUdpNetcat(
  positionals: string[],
  flags: UdpNetcatFlags,
): Promise<number> {
  if (flags.unix !== undefined) {
    throw new UsageError("-u cannot be combined with -U");
  }
  const split = splitMode(flags.split);
  const common = {
    output: Deno.stdout,
    split,
    logger: flags.logger,
    ...(flags.family ? { family: flags.family } : {}),
  };
  using signal = shutdownSignal();
  if (flags.listen) {
    const ep = serverEndpoint(positionals, undefined);
    await udpListen({
      ...common,
      port: ep.port!,
      input: Deno.stdin,
      signal,
      ...(ep.hostname !== undefined ? { hostname: ep.hostname } : {}),
    });
    return 0;
  }
  const target = hostAndPort(positionals);
  await udpClient(target.hostname, target.port, {
    ...common,
    input: Deno.stdin,
    signal,
    ...(flags.wait !== undefined ? { wait: flags.wait } : {}),
    ...(flags.quit !== undefined ? { quitAfterEof: flags.quit } : {}),
  });
  return 0;
}

/** Parsed flags `denocat echo -u` uses. */
export interface UdpEchoFlags {
  upper: boolean;
  /** `--rate`: datagrams a second per source address (`Infinity`: off). */
  rate?: number;
  unix: string | undefined;
  family: Family | undefined;
  logger: Logger;
}

/** `denocat echo -u [--upper] [HOST] PORT`: runs until SIGINT/SIGTERM. */
export async function runUdpEcho(
  positionals: string[],
  flags: UdpEchoFlags,
): Promise<number> {
  if (flags.unix !== undefined) {
    throw new UsageError("-u cannot be combined with -U");
  }
  const ep = serverEndpoint(positionals, undefined);
  using signal = shutdownSignal();
  const server = udpEcho({
    port: ep.port!,
    upper: flags.upper,
    logger: flags.logger,
    logDatagrams: true,
    ...(flags.rate !== undefined ? { rate: flags.rate } : {}),
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
  const { loop, rate } = server.dropped;
  flags.logger.log(
    `shutting down: ${server.echoed} datagrams echoed, ${
      loop + rate
    } dropped (${loop} from loop sources, ${rate} over --rate)`,
  );
  await server.close();
  return 0;
}
