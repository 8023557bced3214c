/**
 * `denocat forward [options] [LISTEN_HOST] LISTEN_PORT TARGET_HOST
 * TARGET_PORT`: a port forwarder (socat's `TCP-LISTEN:P,fork TCP:H:P`).
 *
 * @module
 */
import { formatAddr, parsePort } from "../address.ts";
import { UsageError } from "../errors.ts";
import { stderrLogger } from "../log.ts";
import type { Endpoint } from "../tcp/connect.ts";
import { forwardTcp } from "../forward/tcp.ts";
import { forwardUdp } from "../forward/udp.ts";
import {
  ACCESS_OPTIONS,
  accessFrom,
  CLIENT_TLS_OPTIONS,
  clientTlsFrom,
  PROXY_OPTIONS,
  proxyFrom,
  SERVER_TLS_OPTIONS,
  serverTlsFrom,
  SESSION_LOG_OPTIONS,
  sessionLogFrom,
} from "./_net.ts";
import { SessionRecorder } from "../session_log.ts";
import {
  COMMON_OPTIONS,
  familyOf,
  parse,
  positiveInt,
  print,
  seconds,
  shutdownSignal,
  unixPath,
} from "./_args.ts";

/** Help for `denocat forward`. */
export const HELP =
  `Usage: denocat forward [options] [LISTEN_HOST] LISTEN_PORT TARGET_HOST TARGET_PORT
       denocat forward -U [options] PATH TARGET_HOST TARGET_PORT

Accept connections on LISTEN_PORT and forward each to TARGET_HOST:TARGET_PORT,
any number at once, until SIGINT or SIGTERM. Half-closes are passed on both
ways. LISTEN_HOST defaults to loopback (127.0.0.1; ::1 with -6): give 0.0.0.0
or :: to accept from other machines.

Options:
  -u, --udp             forward UDP: one session per client address
  -U, --unix            listen on a Unix socket: PATH (@NAME: abstract, Linux)
                        instead of [LISTEN_HOST] LISTEN_PORT
      --target-unix PATH
                        forward to a Unix socket instead of TARGET_HOST TARGET_PORT
      --max-conns N     forward at most N connections (-u: sessions, default
                        1024) at once; close (-u: ignore) the rest
      --idle-timeout SECS
                        close a connection (-u: session) idle for SECS
                        (default: never; -u: 60)
  -w, --wait SECS       time to connect to the target, proxy included (default 10)
      --allow LIST      accept only these peers: addresses, CIDR blocks, host
                        names (resolved at start), comma-separated; repeatable
      --deny LIST       refuse these peers (wins over --allow); repeatable
      --allowfile FILE, --denyfile FILE
                        the same, one or more entries per line, # comments
      --proxy ADDR[:PORT]
                        reach the target through a proxy (nc: -x)
      --proxy-type TYPE socks4, socks5 (default) or http (nc: -X 4|5|connect)
      --proxy-auth USER[:PASS]
                        proxy credentials (nc: -P USER); DENOCAT_PROXY_AUTH
                        in the environment keeps them out of ps
      --proxy-dns local|remote
                        who resolves TARGET_HOST (default: remote; socks4: local)
      --ssl, --tls      TLS toward the target, certificate verified
      --ssl-trustfile FILE, --ca FILE
                        also trust the CA certificates in FILE (PEM)
      --ssl-servername NAME
                        SNI and the name the certificate must carry
      --ssl-alpn LIST   ALPN protocols to offer, comma-separated
      --ssl-pin sha256:HEX
                        accept exactly the certificate with this SHA-256 (of
                        its DER) instead of verifying a chain and name: for a
                        self-signed openssl req -x509 certificate; repeatable
      --insecure        do not verify the target's certificate (says so on stderr)
      --ssl-cert FILE, --ssl-key FILE
                        TLS toward clients: terminate it with this certificate
                        chain and key (PEM)
      --ssl-verify-client
                        with --ssl-cert: demand a client certificate issued
                        by the CA in --ssl-trustfile (then not combinable
                        with --ssl); others are refused, logged with -v
      --hex-dump FILE   every client's bytes both ways as a hex dump, each
                        chunk under the client's address; --session-log FILE
                        the raw bytes received from clients; --append appends
                        (-u: each datagram; recorded TCP connections stay
                        off the pump threads)
  -4, -6                IPv4 / IPv6 only
  -v, --verbose         log connections, refusals and byte counts to stderr
  -h, --help            this help
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  udp: { type: "boolean", short: "u" },
  "target-unix": { type: "string" },
  "max-conns": { type: "string" },
  "idle-timeout": { type: "string" },
  wait: { type: "string", short: "w" },
  ...ACCESS_OPTIONS,
  ...PROXY_OPTIONS,
  ...CLIENT_TLS_OPTIONS,
  ...SERVER_TLS_OPTIONS,
  ...SESSION_LOG_OPTIONS,
} as const;

/** Splits the positionals into the listening and the target side. */
function sides(
  positionals: string[],
  listenUnix: boolean,
  targetUnix: string | undefined,
  defaultHost: string,
): { listen: Endpoint; target: Endpoint } {
  const want = 1 + (targetUnix ? 0 : 2);
  const optionalHost = listenUnix ? 0 : 1;
  if (positionals.length < want || positionals.length > want + optionalHost) {
    const shape = `${listenUnix ? "PATH " : "[LISTEN_HOST] LISTEN_PORT "}${
      targetUnix ? "" : "TARGET_HOST TARGET_PORT"
    }`.trim();
    throw new UsageError(
      positionals.length < want
        ? `missing arguments: ${shape} (see --help)`
        : `unexpected argument: ${positionals[want + optionalHost]}`,
    );
  }
  const p = [...positionals];
  let listen: Endpoint;
  if (listenUnix) listen = { path: unixPath([p.shift()!]) };
  else {
    const host = p.length === want + 1 ? p.shift()! : defaultHost;
    listen = {
      hostname: host,
      port: parsePort(p.shift()!, { allowZero: true }),
    };
  }
  const target: Endpoint = targetUnix
    ? { path: targetUnix }
    : { hostname: p[0]!, port: parsePort(p[1]!) };
  return { listen, target };
}

/** Runs `denocat forward`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS);
  if (values.help) {
    print(HELP);
    return 0;
  }
  const family = familyOf(values);
  const udp = values.udp ?? false;
  const { listen, target } = sides(
    positionals,
    values.unix ?? false,
    values["target-unix"],
    family === 6 ? "::1" : "127.0.0.1",
  );
  const maxConns = positiveInt(values["max-conns"], "--max-conns");
  const idleTimeout = seconds(values["idle-timeout"], "--idle-timeout");
  if (idleTimeout === 0) {
    throw new UsageError("invalid --idle-timeout value: 0 (above 0 expected)");
  }
  const wait = seconds(values.wait, "--wait") ?? 10_000;
  const logger = stderrLogger(values.verbose ?? false);

  // Proxy and TLS toward the target, TLS toward clients.
  const proxy = proxyFrom(values);
  if (proxy && target.path !== undefined) {
    throw new UsageError(
      "--proxy needs TARGET_HOST TARGET_PORT, not --target-unix",
    );
  }
  // --ssl-trustfile is the target's CA, or with --ssl-verify-client (and
  // no --ssl) the CA of the clients' certificates.
  const verifyClient = values["ssl-verify-client"] ?? false;
  if (verifyClient && (values.ssl || values.tls)) {
    throw new UsageError(
      "--ssl-verify-client and --ssl cannot share --ssl-trustfile here: verify clients with a plain target, or put the TLS target behind a second forward",
    );
  }
  const listenTls = await serverTlsFrom(values);
  const targetValues = { ...values };
  if (verifyClient) {
    delete targetValues["ssl-trustfile"];
    delete targetValues.ca;
  }
  const targetTls = await clientTlsFrom(targetValues, "target");
  const ssl = targetTls !== undefined;

  const access = await accessFrom(values);
  if (access.active && values.unix) {
    throw new UsageError(
      "--allow/--deny apply to TCP and UDP peers, not to -U",
    );
  }
  if (access.active) logger.log(`access list: ${access.describe()}`);

  const sessionLog = sessionLogFrom(values);
  using signal = shutdownSignal();
  const wake = new Promise((resolve) =>
    signal.addEventListener("abort", resolve, { once: true })
  );
  if (udp) {
    if (listen.path !== undefined || target.path !== undefined) {
      throw new UsageError(
        "-u forwards UDP between host ports, not Unix sockets",
      );
    }
    for (
      const [flag, set] of [["--proxy", proxy], ["--ssl", ssl || undefined], [
        "--ssl-cert",
        listenTls,
      ]] as const
    ) {
      if (set) throw new UsageError(`${flag} does not apply to -u`);
    }
    using record = sessionLog ? SessionRecorder.open(sessionLog) : undefined;
    const server = await forwardUdp({
      listen,
      target,
      access,
      logger,
      ...(record ? { record } : {}),
      ...(family ? { family } : {}),
      ...(maxConns ? { maxSessions: maxConns } : {}),
      ...(idleTimeout ? { idleTimeout } : {}),
    });
    logger.log(`forwarding to udp ${formatAddr(server.target)}`);
    logger.log(`listening on udp ${formatAddr(server.addr)}`);
    await wake;
    logger.log(`shutting down: ${server.sessions} sessions open`);
    await server.close();
    return 0;
  }
  using record = sessionLog ? SessionRecorder.open(sessionLog) : undefined;
  const server = forwardTcp({
    listen,
    target,
    access,
    logger,
    ...(record ? { record } : {}),
    connectTimeout: wait,
    ...(family ? { family } : {}),
    ...(maxConns ? { maxConns } : {}),
    ...(idleTimeout ? { idleTimeout } : {}),
    ...(proxy ? { proxy } : {}),
    ...(targetTls ? { targetTls } : {}),
    ...(listenTls ? { listenTls } : {}),
  });
  const to = target.path ?? `${target.hostname}:${target.port}`;
  logger.log(
    `forwarding to ${to}${targetTls ? " (TLS)" : ""}${
      proxy
        ? ` through ${proxy.type} proxy ${proxy.hostname}:${proxy.port}`
        : ""
    }${listenTls ? "; clients use TLS" : ""}`,
  );
  logger.log(`listening on ${formatAddr(server.addr)}`);
  await wake;
  logger.log(`shutting down: ${server.active} open, ${server.served} served`);
  await server.close();
  return 0;
}
