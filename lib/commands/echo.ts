/**
 * `denocat echo [--upper] [HOST] PORT`: a concurrent echo server.
 *
 * @module
 */
import { echoServer } from "../tcp/echo.ts";
import { formatAddr } from "../address.ts";
import { stderrLogger } from "../log.ts";
import { UsageError } from "../errors.ts";
import {
  ACCESS_OPTIONS,
  accessFrom,
  LISTENER_TLS_OPTIONS,
  tlsFrom,
  tlsWrap,
} from "./_net.ts";
import {
  COMMON_OPTIONS,
  familyOf,
  parse,
  positiveInt,
  print,
  seconds,
  serverEndpoint,
  serverKeepalive,
  shutdownSignal,
} from "./_args.ts";

/** Help for `denocat echo`. */
export const HELP = `Usage: denocat echo [options] [HOST] PORT

Echo every byte back to its sender, any number of clients at once, until
SIGINT or SIGTERM. With -u, echo every UDP datagram to its own sender.

Options:
  -u, --udp           UDP: echo datagrams (any number of senders at once);
                      never answers its own port, port 0 or ports 7, 13, 17,
                      19, 37 (loop check)
      --rate N[/s]    with -u: answer at most N datagrams a second per source
                      address, bursts of N (default 10000; 'off': no limit)
      --upper         upper-case ASCII letters before echoing (the seeds' server)
      --max-conns N   close connections beyond N at once
      --idle-timeout SECS
                      close a connection that moves no byte for SECS
                      (default: never)
      --threads N     TCP echo threads, 1-64 (default: half the cores, 1 to 4;
                      Linux with FFI allowed, else one event loop)
      --keepalive     TCP keepalive on every connection (the system's timers);
                      serves on the event loop, not on epoll threads
      --allow LIST, --deny LIST, --allowfile FILE, --denyfile FILE
                      serve only / never these peers (addresses, CIDR blocks,
                      names resolved at start; --deny wins): refused TCP
                      peers are closed at once, refused datagrams dropped.
                      Serves on the event loop
      --ssl-cert FILE --ssl-key FILE
                      TCP: clients speak TLS (PEM files); what they send is
                      echoed decrypted, re-encrypted. Serves on the event
                      loop (the epoll threads never see TLS connections)
      --ssl-verify-client --ssl-trustfile CA
                      with --ssl-cert: demand a client certificate issued by
                      CA; clients without one are refused (logged with -v)
  -4, -6              IPv4 / IPv6 only
  -U, --unix          PATH is a Unix socket (@NAME: abstract, Linux) instead of
                      [HOST] PORT
  -v, --verbose       log connections (with -u: datagrams) to stderr
  -h, --help          this help
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  upper: { type: "boolean" },
  "max-conns": { type: "string" },
  "idle-timeout": { type: "string" },
  threads: { type: "string" },
  udp: { type: "boolean", short: "u" },
  keepalive: { type: "string" },
  rate: { type: "string" },
  ...ACCESS_OPTIONS,
  ...LISTENER_TLS_OPTIONS,
} as const;

/** `--rate N`, `N/s` or `off` (no limit: `Infinity`). */
function rateOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value === "off") return Infinity;
  const n = /^\d+(\/s)?$/.test(value) ? Number.parseInt(value) : 0;
  if (n < 1 || n > 1e9) {
    throw new UsageError(
      `invalid --rate value: ${value} (N or N/s, 1 to 1000000000, or off)`,
    );
  }
  return n;
}

/** `--threads`: 1 to 64 (each thread is a V8 isolate of about 10 MB). */
function threadCount(value: string | undefined): number | undefined {
  const n = positiveInt(value, "--threads");
  if (n !== undefined && n > 64) {
    throw new UsageError(`invalid --threads value: ${n} (at most 64)`);
  }
  return n;
}

/** Runs `denocat echo`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS);
  if (values.help) {
    print(HELP);
    return 0;
  }
  const family = familyOf(values);
  const maxConns = positiveInt(values["max-conns"], "--max-conns");
  const idleTimeout = seconds(values["idle-timeout"], "--idle-timeout");
  // Half the cores (1 to 4): the clients often share the machine, and on 2
  // cores a second echo thread bought throughput at the cost of p99.
  const threads = threadCount(values.threads) ??
    Math.max(
      1,
      Math.min(4, Math.floor((navigator.hardwareConcurrency || 1) / 2)),
    );
  const logger = stderrLogger(values.verbose ?? false);
  const rate = values.udp ? rateOf(values.rate) : undefined;
  const access = await accessFrom(values);
  if (access.active && values.unix) {
    throw new UsageError("--allow/--deny apply to IP peers, not to -U");
  }
  if (access.active) logger.log(`access list: ${access.describe()}`);
  const { server: serverTls } = await tlsFrom(values, "server");
  if (values.udp) {
    if (serverTls) throw new UsageError("--ssl-cert does not apply to -u");
    if (maxConns !== undefined) {
      throw new UsageError("--max-conns does not apply to -u");
    }
    if (idleTimeout !== undefined) {
      throw new UsageError("--idle-timeout does not apply to -u");
    }
    if (values.threads !== undefined) {
      throw new UsageError("--threads does not apply to -u");
    }
    if (values.keepalive !== undefined) {
      throw new UsageError("--keepalive does not apply to -u");
    }
    const { runUdpEcho } = await import("./_udp.ts");
    return await runUdpEcho(positionals, {
      upper: values.upper ?? false,
      unix: values.unix ?? false,
      family,
      logger,
      ...(rate !== undefined ? { rate } : {}),
      ...(access.active ? { access } : {}),
    });
  }
  if (values.rate !== undefined) {
    throw new UsageError("--rate applies to -u");
  }
  const keepalive = serverKeepalive(values.keepalive);
  if (keepalive && values.threads !== undefined) {
    throw new UsageError(
      "--keepalive and --threads cannot be combined (keepalive serves on the event loop)",
    );
  }
  if (serverTls && values.unix) {
    throw new UsageError("--ssl-cert/--ssl-key apply to TCP, not to -U");
  }
  if (serverTls && values.threads !== undefined) {
    throw new UsageError(
      "--ssl-cert and --threads cannot be combined (TLS serves on the event loop)",
    );
  }
  const endpoint = serverEndpoint(positionals, values.unix);
  const wrap = serverTls ? await tlsWrap(serverTls) : undefined;
  using signal = shutdownSignal();
  const server = echoServer(endpoint as Parameters<typeof echoServer>[0], {
    upper: values.upper ?? false,
    logger,
    ...(family ? { family } : {}),
    ...(maxConns ? { maxConns } : {}),
    ...(idleTimeout ? { idleTimeout } : {}),
    ...(keepalive ? { keepalive } : {}),
    ...(access.active
      ? { accept: (a: Deno.Addr) => access.allowsAddr(a) }
      : {}),
    ...(wrap ? { wrap } : {}),
    threads,
  });
  const engine = await server.ready;
  logger.log(`echo server listening on ${formatAddr(server.addr)}`);
  logger.log(
    engine === "epoll"
      ? `serving on ${threads} epoll thread${threads === 1 ? "" : "s"}`
      : "serving on the event loop",
  );
  await new Promise((resolve) =>
    signal.addEventListener("abort", resolve, { once: true })
  );
  logger.log(`shutting down: ${server.active} open, ${server.served} served`);
  await server.close();
  return 0;
}
