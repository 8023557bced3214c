/**
 * `denocat [options] HOST PORT` and `denocat -l [options] [HOST] PORT`.
 *
 * @module
 */
import { parsePort, unbracket } from "../address.ts";
import type { Reader, Writer } from "../copy.ts";
import { crlfReader } from "../crlf.ts";
import { UsageError } from "../errors.ts";
import { stderrLogger } from "../log.ts";
import { stdinReader, stdoutWriter } from "../stdio.ts";
import { tcpClient } from "../tcp/client.ts";
import { checkNumeric } from "../tcp/connect.ts";
import { tcpListen } from "../tcp/listener.ts";
import { removeStaleSocket } from "../unix_stale.ts";
import { isLoopback } from "../shell/policy.ts";
import { withoutFd } from "../tcp/stream_conn.ts";
import { SessionRecorder } from "../session_log.ts";
import type { AccessList } from "../access/list.ts";
import type { ClientTlsOptions, ServerTlsPem } from "../forward/tls.ts";
import type { ProxySpec } from "../proxy/connect.ts";
import type { ExecSpec } from "../exec/stream.ts";
import {
  ACCESS_OPTIONS,
  accessFrom,
  type ConnectFrom,
  dialerFor,
  EXEC_OPTIONS,
  execFrom,
  PROXY_OPTIONS,
  proxyFrom,
  SESSION_LOG_OPTIONS,
  sessionLogFrom,
  TLS_OPTIONS,
  tlsFrom,
  tlsWrap,
} from "./_net.ts";
import {
  clientEndpoint,
  COMMON_OPTIONS,
  familyOf,
  keepaliveOption,
  parse,
  positiveInt,
  print,
  seconds,
  serverEndpoint,
  shutdownSignal,
} from "./_args.ts";

/** Help for the netcat modes. */
export const HELP = `denocat: a netcat for the Deno era

Usage:
  denocat [options] HOST PORT          connect; stdin to the socket, the socket to stdout
  denocat -l [options] [HOST] PORT     listen for one connection (-k: many)
  denocat -l -p PORT [-s ADDR]         the same, as nc and ncat users type it
  denocat -U [options] PATH            a Unix socket (-l: listen on it; @NAME: abstract)
  denocat -z [-u] [-v] HOST PORT...    scan ports as nc -z: PORT, LO-HI, A,B or a name
  denocat -u [options] HOST PORT       UDP: each read of stdin is one datagram (each
                                       line when stdin is a terminal); replies are
                                       printed until -w passes idle
  denocat -u -l [options] [HOST] PORT  UDP: print datagrams from any peers;
                                       stdin goes to the latest peer
  denocat -u -U [-s LOCALPATH] PATH    Unix datagram socket (-l: receive on PATH)
  denocat --frame FORMAT [--split line|chunk] HOST PORT
                                       send each stdin line (or read) as one frame
  denocat -l --frame FORMAT [--output MODE] [-k] [HOST] PORT
                                       decode frames and print each payload
  denocat echo|probe|send|recv|shell   other modes; see 'denocat COMMAND --help'

PORT is a number or a service name from /etc/services (http, ssh; domain
with -u).

Options:
  -l, --listen        listen instead of connecting (default bind: all interfaces)
  -k, --keep-open     with -l: keep listening, serve clients concurrently;
                      stdin is copied to every connected client
  -m, --max-conns N   with -l -k: at most N clients at once; more are closed
                      unread on arrival (default: no limit; with --frame 256).
                      ncat's -m; nc's -m, a minimum TTL, is not supported
  -p, --source-port PORT
                      connecting: the local port to connect from; with -l:
                      the port to listen on (as PORT; both given must agree)
  -s, --source ADDR   connecting: the local address to connect from; with -l:
                      the address to bind (as HOST); with -u -U: the local
                      socket path replies come to. -s and -p when connecting
                      need Linux and FFI (the compiled binary has it)
  -n, --numeric       IP addresses and port numbers only: no DNS or service
                      lookups (a name is a usage error)
  -N, --half-close    accepted for nc scripts: sending FIN on stdin EOF is
                      already what denocat does (--no-shutdown turns it off)
  -q SECS             quit SECS seconds after stdin EOF (0: at once; -1: never,
                      the default)
  -w SECS             timeout for connecting (exit 1) and for idle
                      connections (a normal end, exit 0, like nc -w)
      --idle-timeout SECS
                      with -l (TCP, -k and --frame included): close a client
                      that moves no byte for SECS (default: never); like the
                      client ending (exit 0), except mid-frame (exit 1)
      --no-shutdown   do not send FIN when stdin ends (keep the write side open)
  -d, --no-stdin      never read stdin; the write side stays open (nc's -d;
                      ncat's -d is a delay, not supported)
      --recv-only     as ncat: only receive (the same as -d)
      --send-only     as ncat: only send; received data is discarded and the
                      connection is closed once stdin ends
  -C, --crlf          send each LF of stdin as CR LF (as nc -C and ncat -C)
  -z, --zero-io       scan: connect to each PORT and close (-u: send one byte
                      and listen for "port unreachable"); -v prints each
                      result as nc does; exit 0 when a port is open
      --keepalive[=IDLE[,INTVL[,CNT]]]
                      TCP keepalive; the timers (seconds, probes) need a
                      socket of our own (connecting, Linux with FFI); with -l
                      only plain --keepalive (the system's timers)
  -4, -6              IPv4 / IPv6 only
  -U, --unix          PATH is a Unix socket instead of HOST PORT (-Ul PATH,
                      -U -l PATH; @NAME is an abstract socket, Linux). -l -U
                      removes a stale socket file nobody listens on (never a
                      file that is not a socket)
  -u, --udp           UDP instead of TCP; with -u, -w SECS (default 1) is how
                      long to wait after stdin EOF with no reply before exiting
      --split MODE    with -u or --frame: one datagram or frame per 'line'
                      (the newline is sent, not framed) or per 'chunk' read
                      from stdin. Default with -u: 'chunk' unless stdin is a
                      terminal; with --frame: 'line'
      --frame FORMAT  frame the stream (see docs/PROTOCOL.md): u16be, u32be,
                      u32le, u64be, varint (length prefixes), json (a header
                      {"total_size": n} whose length is u32be, then the body),
                      seed (u32le as Python's struct.pack('i', n); lengths of
                      2^31 or more refused), seed-json (the seeds' JSON header
                      {"filename","md5","total_size"} with a seed length).
                      Send mode frames stdin and prints replies as-is; -l
                      receives only (stdin is not read). A malformed, truncated
                      or oversize frame ends a single -l connection with exit
                      1; with -k that client is dropped (reported on stderr)
                      and others are served; whole frames never interleave.
                      With -u each datagram carries exactly one frame; a
                      malformed one is reported (-v names the peer) and skipped
      --max-frame BYTES
                      with --frame: the largest payload (or JSON body) sent
                      or accepted (default 16777216 = 16 MiB; at most
                      4294967295). A receiver allocates a frame's size once
                      its length has passed this cap: raise it only as far
                      as the peers are trusted
      --output MODE   with -l --frame: print each payload as 'lines' (payload
                      and a newline; default), 'raw', 'hex' (one line per
                      frame) or 'json' ({"len":n,"data":"<base64>"} per line,
                      plus "header" for json/seed-json frames)
  -e, --exec PROG     run PROG (split at spaces, no shell) with the connection
                      as its stdin and stdout; -c, --sh-exec CMD runs CMD with
                      /bin/sh. Connecting: one child; -l: one per client (-k:
                      concurrently); -u -l: one per peer address. The peer's
                      FIN closes the child's stdin; the child's exit closes
                      the connection. NCAT_REMOTE_ADDR/PORT, NCAT_LOCAL_ADDR/
                      PORT and NCAT_PROTO are set. Off loopback, -l with -e/-c
                      needs --allow
      --allow LIST, --deny LIST
                      with -l (TCP or UDP, --frame too): accept only / refuse
                      these peers:
                      addresses, CIDR blocks, host names (resolved at start),
                      comma-separated, repeatable; --deny wins. Refused peers
                      are closed at once (UDP: ignored), logged with -v
      --allowfile FILE, --denyfile FILE
                      the same lists, one entry per line (# comments)
  -x, --proxy ADDR[:PORT]
                      connect through a proxy (TCP, --frame too); -X,
                      --proxy-type 4|5|connect (or socks4, socks5, http;
                      default socks5); -P, --proxy-auth USER[:PASS] (or
                      DENOCAT_PROXY_AUTH); --proxy-dns local|remote (default
                      remote)
      --ssl, --tls    connect with TLS (--frame too), the certificate
                      verified against the system roots and --ssl-trustfile/
                      --ca FILE; also --ssl-servername NAME, --ssl-alpn LIST,
                      --ssl-pin sha256:HEX (accept exactly that certificate,
                      e.g. an openssl req -x509 one), --insecure (no
                      verification; said on stderr)
      --ssl-cert FILE --ssl-key FILE
                      with -l (TCP, --frame too): clients speak TLS (PEM
                      files); connecting with --ssl: the client certificate
                      to present
      --ssl-verify-client --ssl-trustfile CA
                      with -l --ssl-cert: demand a client certificate issued
                      by CA; others are closed (logged with -v)
      --hex-dump FILE both directions as a hex dump; --session-log FILE the
                      raw bytes received; --append appends to either (TCP
                      and -u relays, --frame: the framed bytes; a recorded
                      relay stays off the pump threads)
  -v, --verbose       log connections, byte counts and rates to stderr
  -h, --help          this help
      --version       print the version

On stdin EOF denocat half-closes (sends FIN) and keeps printing until the
peer closes, so 'echo hi | denocat HOST PORT' always gets the reply. A client
ends when both directions are done; a listener (-l, each -k client) ends once
its client's side has ended and all it sent is written out, even while stdin
is still open (OpenBSD nc's rule). A closed stdout ('| head') ends quietly
with exit 0. Non-blocking stdin/stdout (from rsync -e, say) are waited for
with poll, never switched to blocking.

Letters that differ from nc or ncat: -m (ncat's max-conns, not nc's minttl),
-d (nc's detach from stdin, not ncat's delay), -s/-p (nc's meaning; ncat
uses -p for the listen port too, which -l -p also accepts). In 'denocat
probe', -s is the probe size and -c the count, not ncat's --sh-exec; in
'denocat shell', -e sets a variable and -n means no stdin, not nc's exec and
numeric flags; 'recv -o' is a directory, not ncat's output log.

Exit codes: 0 ok (idle timeouts and a closed stdout included), 1 network or
runtime failure, 2 usage error, 3 integrity failure.

In the library (lib/): the plain TCP modes, echo and TCP probes are in tcp/,
-u and UDP echo/probes in udp/, --frame in framed/ (codecs in frame/), send
and recv in transfer/, shell in shell/, forward in forward/, -e/-c in exec/,
-x proxies in proxy/, --allow/--deny in access/; docs/ARCHITECTURE.md maps them.
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  listen: { type: "boolean", short: "l" },
  "keep-open": { type: "boolean", short: "k" },
  "max-conns": { type: "string", short: "m" },
  "source-port": { type: "string", short: "p" },
  source: { type: "string", short: "s" },
  numeric: { type: "boolean", short: "n" },
  "half-close": { type: "boolean", short: "N" },
  quit: { type: "string", short: "q" },
  wait: { type: "string", short: "w" },
  "idle-timeout": { type: "string" },
  "no-shutdown": { type: "boolean" },
  "no-stdin": { type: "boolean", short: "d" },
  "recv-only": { type: "boolean" },
  "send-only": { type: "boolean" },
  crlf: { type: "boolean", short: "C" },
  "zero-io": { type: "boolean", short: "z" },
  keepalive: { type: "string" },
  udp: { type: "boolean", short: "u" },
  split: { type: "string" },
  frame: { type: "string" },
  output: { type: "string" },
  "max-frame": { type: "string" },
  ...EXEC_OPTIONS,
  ...ACCESS_OPTIONS,
  ...PROXY_OPTIONS,
  ...TLS_OPTIONS,
  ...SESSION_LOG_OPTIONS,
} as const;

/** Largest `--max-frame`: 4 GiB - 1, a frame must fit one buffer. */
const MAX_FRAME_LIMIT = 2 ** 32 - 1;

/** Parses `--max-frame BYTES` (a plain byte count, 1 to 4 GiB - 1). */
function maxFrameSize(value: string | undefined): number | undefined {
  const n = positiveInt(value, "--max-frame");
  if (n !== undefined && n > MAX_FRAME_LIMIT) {
    throw new UsageError(
      `invalid --max-frame value: ${value} (at most ${MAX_FRAME_LIMIT})`,
    );
  }
  return n;
}

/** Runs the netcat modes; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals: given } = parse(args, OPTIONS);
  if (values.help) {
    print(HELP);
    return 0;
  }
  const family = familyOf(values);
  const numeric = values.numeric ?? false;
  const protocol = values.udp ? "udp" : "tcp";
  // -q -1 is nc's "never quit after EOF", which is the default here.
  const quit = values.quit === "-1" ? undefined : seconds(values.quit, "-q");
  const wait = seconds(values.wait, "-w");
  const idle = seconds(values["idle-timeout"], "--idle-timeout") || undefined;
  if (idle !== undefined && (!values.listen || values.udp)) {
    throw new UsageError("--idle-timeout needs -l (TCP)");
  }
  const logger = stderrLogger(values.verbose ?? false);
  const keepalive = keepaliveOption(values.keepalive);
  if (typeof keepalive === "object" && values.listen) {
    throw new UsageError(
      "--keepalive timers apply when connecting; -l takes plain --keepalive",
    );
  }
  const maxConns = positiveInt(values["max-conns"], "--max-conns");
  if (
    maxConns !== undefined &&
    (!values.listen || !values["keep-open"] || values.udp)
  ) {
    throw new UsageError("-m/--max-conns needs -l -k (TCP)");
  }
  const noStdin = values["no-stdin"] || values["recv-only"] || false;
  const sendOnly = values["send-only"] ?? false;
  if (sendOnly && noStdin) {
    throw new UsageError("--send-only cannot be combined with -d/--recv-only");
  }
  if (values["half-close"] && values["no-shutdown"]) {
    throw new UsageError("-N and --no-shutdown contradict each other");
  }

  if (values["zero-io"]) {
    const bad = (
      [
        ["-l", values.listen],
        ["-U", values.unix],
        ["--frame", values.frame !== undefined],
        ["-k", values["keep-open"]],
        ["-C", values.crlf],
        ["--send-only", values["send-only"]],
        ["-d/--recv-only", values["no-stdin"] || values["recv-only"]],
        ["-s", values.source !== undefined],
        ["-p", values["source-port"] !== undefined],
        ["-q", values.quit !== undefined],
        ["-m", values["max-conns"] !== undefined],
        ["--keepalive", values.keepalive !== undefined],
        ["--split", values.split !== undefined],
        ["--output", values.output !== undefined],
        ["--no-shutdown", values["no-shutdown"]],
        ["--idle-timeout", values["idle-timeout"] !== undefined],
        ["-e/-c", values.exec !== undefined || values["sh-exec"] !== undefined],
        ["--proxy", values.proxy !== undefined],
        ["--ssl", values.ssl || values.tls],
        ["--ssl-cert", values["ssl-cert"] !== undefined],
        ["--allow/--deny", values.allow || values.deny],
        [
          "--hex-dump/--session-log",
          values["hex-dump"] || values["session-log"],
        ],
      ] as const
    ).find(([, set]) => set);
    if (bad) throw new UsageError(`${bad[0]} does not apply to -z`);
    const { runNcScan } = await import("./_scan.ts");
    return await runNcScan(given, {
      udp: values.udp ?? false,
      verbose: values.verbose ?? false,
      numeric,
      family,
      wait,
    });
  }
  const net = await netFlags(values);
  const sourcePort = values["source-port"] === undefined
    ? undefined
    : parsePortNumeric(values["source-port"], numeric, protocol, true);
  // -s, -p, -n, --keepalive of a direct connection, for every connecting mode.
  const connectFrom: ConnectFrom = {
    numeric,
    ...(values.source !== undefined ? { sourceHost: values.source } : {}),
    ...(sourcePort !== undefined ? { sourcePort } : {}),
    ...(keepalive !== undefined ? { keepalive } : {}),
  };
  if (values.unix) {
    if (sourcePort !== undefined) {
      throw new UsageError("-p does not apply to -U (Unix sockets)");
    }
    if (values.source !== undefined && (!values.udp || values.listen)) {
      throw new UsageError(
        "-s with -U is the local path of a datagram client (-u -U -s LOCALPATH)",
      );
    }
  }
  // With -l, -s and -p name what to listen on, like [HOST] PORT.
  const positionals = values.listen && !values.unix
    ? listenPositionals(given, values.source, values["source-port"], numeric)
    : given;
  if (numeric && !values.unix) {
    // The last argument is the port, the one before it the host.
    if (positionals.length === 2) checkNumeric(positionals[0]!, true);
    const port = positionals.at(-1);
    if (port !== undefined) parsePortNumeric(port, true, protocol);
  }

  if (values.frame !== undefined) {
    // TCP framing connects and listens like the plain relay: proxies, TLS,
    // access lists and recordings apply; programs do not. Over UDP:
    // recordings, and access lists on a listener.
    const unsupported = netFlagsSet(net).find(([flag, set]) =>
      set &&
      (values.udp
        ? !((flag === "--allow/--deny" && values.listen) ||
          flag === "--hex-dump/--session-log")
        : ![
          "--allow/--deny",
          "--proxy",
          "--ssl",
          "--ssl-cert",
          "--hex-dump/--session-log",
        ].includes(flag))
    );
    if (unsupported) {
      throw new UsageError(
        `${unsupported[0]} does not apply to --frame${values.udp ? " -u" : ""}`,
      );
    }
    checkTcpNetFlags(values, net, sourcePort);
    for (const [flag, set] of nonFramedFlags(values)) {
      // Framed TCP connects and listens like the plain modes.
      if (flag === "--keepalive" && !values.udp) continue;
      if (set) throw new UsageError(`${flag} does not apply to --frame`);
    }
    if (
      !values.listen &&
      (values.udp || values.unix) &&
      (values.source !== undefined || sourcePort !== undefined)
    ) {
      throw new UsageError("-s and -p with --frame apply to TCP");
    }
    const { runFramedNetcat } = await import("./_framed.ts");
    using record = net.sessionLog
      ? SessionRecorder.open(net.sessionLog)
      : undefined;
    return await runFramedNetcat(positionals, {
      ...(record ? { record } : {}),
      frame: values.frame,
      output: values.output,
      maxFrame: maxFrameSize(values["max-frame"]),
      split: values.split,
      listen: values.listen ?? false,
      keep: values["keep-open"] ?? false,
      udp: values.udp ?? false,
      quit,
      wait,
      idle,
      maxConns,
      noShutdown: values["no-shutdown"] ?? false,
      unix: values.unix ?? false,
      family,
      logger,
      connectFrom,
      ...(net.access.active ? { access: net.access } : {}),
      ...(net.proxy ? { proxy: net.proxy } : {}),
      ...(net.clientTls ? { clientTls: net.clientTls } : {}),
      ...(net.serverTls ? { serverTls: net.serverTls } : {}),
    });
  }
  if (values.output !== undefined) {
    throw new UsageError("--output needs --frame and -l");
  }
  if (values["max-frame"] !== undefined) {
    throw new UsageError("--max-frame needs --frame");
  }
  if (values.udp) {
    if (values["no-shutdown"]) {
      throw new UsageError("--no-shutdown does not apply to -u");
    }
    for (const [flag, set] of nonFramedFlags(values)) {
      if (set) throw new UsageError(`${flag} does not apply to -u`);
    }
    const tcpOnly = netFlagsSet(net).find(([flag, set]) =>
      set && flag !== "-e/-c" && flag !== "--allow/--deny" &&
      flag !== "--hex-dump/--session-log"
    );
    if (tcpOnly) throw new UsageError(`${tcpOnly[0]} does not apply to -u`);
    if (net.exec && net.sessionLog) {
      throw new UsageError("--hex-dump/--session-log does not apply to -e/-c");
    }
    checkAccessFlags(values, net);
    if (net.exec && values.unix) {
      throw new UsageError("-e/-c with -u apply to UDP over IP, not to -U");
    }
    if (net.exec && values.listen) {
      checkExecPolicy(positionalsHost(positionals), net.access);
    }
    const { runUdpNetcat } = await import("./_udp.ts");
    using record = net.sessionLog
      ? SessionRecorder.open(net.sessionLog)
      : undefined;
    return await runUdpNetcat(positionals, {
      ...(record ? { record } : {}),
      listen: values.listen ?? false,
      wait,
      quit,
      split: values.split,
      unix: values.unix ?? false,
      source: values.listen ? undefined : values.source,
      sourcePort: values.listen ? undefined : sourcePort,
      family,
      logger,
      ...(net.access.active ? { access: net.access } : {}),
      ...(net.exec ? { exec: net.exec } : {}),
    });
  }
  if (values.split !== undefined) {
    throw new UsageError("--split needs -u or --frame");
  }
  checkTcpNetFlags(values, net, sourcePort);
  if (net.exec) {
    return await runExec(positionals, values, net, net.exec, {
      family,
      logger,
      numeric,
      wait,
      maxConns,
      connectFrom,
    });
  }
  const interactive = Deno.stdin.isTerminal();
  let input: Reader = noStdin ? NO_INPUT : stdinReader();
  if (values.crlf) input = crlfReader(input);
  let output: Writer = sendOnly ? DISCARD : stdoutWriter();
  // A TLS layer must never reach the pump threads (they would move bytes
  // past it): its relay copies in JavaScript, as does a recorded one.
  if (net.clientTls || net.serverTls) {
    input = withoutFd(input);
    output = withoutFd(output);
  }
  using recorder = net.sessionLog
    ? SessionRecorder.open(net.sessionLog)
    : undefined;
  if (recorder) {
    input = recorder.tapInput(input);
    output = recorder.tapOutput(output);
  }
  const common = {
    input,
    output,
    // -d keeps the write side open, as nc does: a peer that ends its session
    // on our FIN (nc -l does) still sends everything.
    halfClose: !values["no-shutdown"] && !noStdin,
    logger,
    ...(family ? { family } : {}),
    ...(sendOnly
      ? { quitAfterEof: 0 }
      : quit !== undefined
      ? { quitAfterEof: quit }
      : {}),
    ...(wait !== undefined ? { idleTimeout: wait } : {}),
  };
  if (values.listen) {
    const endpoint = serverEndpoint(positionals, values.unix);
    if (endpoint.hostname !== undefined) {
      checkNumeric(endpoint.hostname, numeric);
    }
    if (endpoint.path !== undefined) {
      await removeStaleSocket(endpoint.path, logger);
    }
    using signal = shutdownSignal();
    const served = await tcpListen(endpoint, {
      ...common,
      ...(idle !== undefined ? { idleTimeout: idle } : {}),
      keep: values["keep-open"] ?? false,
      noDelay: interactive,
      ...(keepalive ? { keepalive: true } : {}),
      ...(maxConns !== undefined ? { maxConns } : {}),
      ...(net.access.active
        ? { accept: (a: Deno.Addr) => net.access.allowsAddr(a) }
        : {}),
      ...(net.serverTls ? { wrap: await tlsWrap(net.serverTls) } : {}),
      signal,
    });
    if (served.inputLeft) {
      // nc's rule cut stdin short: say so, not an error (nc is silent).
      console.error(
        "denocat: the client ended first: stdin was not sent in full (a client keeps its side open with --no-shutdown)",
      );
    }
    return 0;
  }
  if (values["keep-open"]) throw new UsageError("-k needs -l");
  const endpoint = clientEndpoint(positionals, values.unix);
  const dial = dialerFor(endpoint, net.proxy, net.clientTls, {
    family,
    wait,
    connectFrom,
  });
  await tcpClient(endpoint, {
    ...common,
    ...(dial ? { dial } : {}),
    // A person at a terminal expects the session to end when the peer
    // hangs up; otherwise the client waits for both directions. (A
    // listener always ends with its client: tcpListen's default.)
    endOnPeerEof: interactive && !noStdin,
    noDelay: interactive,
    ...connectFrom,
    ...(wait !== undefined ? { timeout: wait } : {}),
  });
  return 0;
}

type Values = ReturnType<typeof parse<typeof OPTIONS>>["values"];

/** Flags of the plain byte relay that framed and UDP modes do not take. */
function nonFramedFlags(values: Values): Array<[string, boolean]> {
  return [
    ["-C", values.crlf ?? false],
    ["-d/--recv-only", (values["no-stdin"] || values["recv-only"]) ?? false],
    ["--send-only", values["send-only"] ?? false],
    ["--keepalive", values.keepalive !== undefined],
  ];
}

/** The `[HOST] PORT` of `-l`, with `-s ADDR` and `-p PORT` folded in. */
function listenPositionals(
  given: string[],
  source: string | undefined,
  portFlag: string | undefined,
  numeric: boolean,
): string[] {
  let host: string | undefined;
  let port: string | undefined;
  if (given.length > 2) {
    throw new UsageError(`unexpected argument: ${given[2]}`);
  }
  if (given.length === 2) [host, port] = given as [string, string];
  else if (given.length === 1) {
    // `-l -p 4444 ADDR` names the address; `-l 4444` the port.
    if (portFlag !== undefined && !/^\d+$/.test(given[0]!)) host = given[0];
    else port = given[0];
  }
  if (portFlag !== undefined) {
    if (
      port !== undefined &&
      parsePortNumeric(port, numeric, "tcp", true) !==
        parsePortNumeric(portFlag, numeric, "tcp", true)
    ) {
      throw new UsageError(
        `-p ${portFlag} and PORT ${port} disagree (give the port once)`,
      );
    }
    port = portFlag;
  }
  if (source !== undefined) {
    if (host !== undefined && unbracket(host) !== unbracket(source)) {
      throw new UsageError(
        `-s ${source} and HOST ${host} disagree (give the address once)`,
      );
    }
    host = source;
  }
  if (port === undefined) throw new UsageError("missing PORT (see --help)");
  return host === undefined ? [port] : [host, port];
}

function parsePortNumeric(
  text: string,
  numeric: boolean,
  protocol: "tcp" | "udp",
  allowZero = false,
): number {
  if (numeric && !/^\d+$/.test(text)) {
    throw new UsageError(
      `-n: ${text} is not a port number (no service lookups with -n)`,
    );
  }
  return parsePort(text, { protocol, allowZero });
}

/** Never yields a byte: `-d`, `--recv-only`. */
const NO_INPUT: Reader = { read: () => Promise.resolve(null) };
/** Swallows everything: `--send-only`. */
const DISCARD: Writer = { write: (p) => Promise.resolve(p.length) };

/** The shared flag groups of the TCP and UDP modes, parsed. */
interface NetFlags {
  exec: ExecSpec | undefined;
  access: AccessList;
  proxy: ProxySpec | undefined;
  clientTls: ClientTlsOptions | undefined;
  serverTls: ServerTlsPem | undefined;
  sessionLog: ReturnType<typeof sessionLogFrom>;
}

async function netFlags(values: Values): Promise<NetFlags> {
  const tls = await tlsFrom(values, values.listen ? "server" : "client");
  return {
    exec: execFrom(values),
    access: await accessFrom(values),
    proxy: proxyFrom(values),
    clientTls: tls.client,
    serverTls: tls.server,
    sessionLog: sessionLogFrom(values),
  };
}

/** Which groups were given, by flag name. */
function netFlagsSet(net: NetFlags): Array<[string, boolean]> {
  return [
    ["-e/-c", net.exec !== undefined],
    ["--allow/--deny", net.access.active],
    ["--proxy", net.proxy !== undefined],
    ["--ssl", net.clientTls !== undefined],
    ["--ssl-cert", net.serverTls !== undefined],
    ["--hex-dump/--session-log", net.sessionLog !== undefined],
  ];
}

/** An access list needs a listener on an IP address (TCP and UDP alike). */
function checkAccessFlags(values: Values, net: NetFlags): void {
  if (net.access.active && !values.listen) {
    throw new UsageError("--allow/--deny apply to listeners (-l)");
  }
  if (net.access.active && values.unix) {
    throw new UsageError("--allow/--deny apply to IP peers, not to -U");
  }
}

/** The combinations of the TCP modes that cannot work, as usage errors. */
function checkTcpNetFlags(
  values: Values,
  net: NetFlags,
  sourcePort: number | undefined,
): void {
  const listen = values.listen ?? false;
  checkAccessFlags(values, net);
  if (net.proxy) {
    if (listen) throw new UsageError("--proxy applies when connecting");
    if (values.unix) throw new UsageError("--proxy needs HOST PORT, not -U");
    if (values.source !== undefined || sourcePort !== undefined) {
      throw new UsageError(
        "-s/-p cannot be combined with --proxy (the proxy makes the connection)",
      );
    }
  }
  if (net.serverTls && values.unix) {
    throw new UsageError("--ssl-cert/--ssl-key apply to TCP, not to -U");
  }
  if (net.exec) {
    const conflicts: Array<[string, unknown]> = [
      ["-C", values.crlf],
      ["-d/--recv-only", values["no-stdin"] || values["recv-only"]],
      ["--send-only", values["send-only"]],
      ["-q", values.quit],
      ["--no-shutdown", values["no-shutdown"]],
      ["--hex-dump/--session-log", net.sessionLog],
    ];
    const bad = conflicts.find(([, v]) => v !== undefined && v !== false);
    if (bad) throw new UsageError(`${bad[0]} does not apply to -e/-c`);
    if (values["keep-open"] && !listen) throw new UsageError("-k needs -l");
  }
}

/** The HOST of `[HOST] PORT` (listener), or `undefined` (every interface). */
function positionalsHost(positionals: string[]): string | undefined {
  return positionals.length >= 2 ? positionals[0] : undefined;
}

/**
 * A listener that runs programs for whoever connects is a remote shell: off
 * loopback it needs an allow list naming who may.
 */
function checkExecPolicy(host: string | undefined, access: AccessList): void {
  if (host !== undefined && isLoopback(host)) return;
  if (access.allowsOnlyListed) return;
  throw new UsageError(
    `-e/-c on ${
      host ?? "every interface"
    } would run the program for anyone who connects: give --allow LIST (who may), or listen on 127.0.0.1`,
  );
}

/** `-e PROG` / `-c CMD` over TCP or a Unix socket, connecting or listening. */
async function runExec(
  positionals: string[],
  values: Values,
  net: NetFlags,
  spec: ExecSpec,
  o: {
    family: 4 | 6 | undefined;
    logger: ReturnType<typeof stderrLogger>;
    numeric: boolean;
    wait: number | undefined;
    maxConns: number | undefined;
    connectFrom: ConnectFrom;
  },
): Promise<number> {
  using signal = shutdownSignal();
  const proto = net.serverTls || net.clientTls
    ? "SSL"
    : values.unix
    ? "UNIX"
    : "TCP";
  if (values.listen) {
    const endpoint = serverEndpoint(positionals, values.unix);
    if (endpoint.hostname !== undefined) {
      checkNumeric(endpoint.hostname, o.numeric);
    }
    if (endpoint.path === undefined) {
      checkExecPolicy(endpoint.hostname, net.access);
    } else await removeStaleSocket(endpoint.path, o.logger);
    const { execListen } = await import("../exec/listen.ts");
    const wrap = net.serverTls ? await tlsWrap(net.serverTls) : undefined;
    await execListen(endpoint, spec, {
      keep: values["keep-open"] ?? false,
      logger: o.logger,
      signal,
      proto,
      ...(o.family ? { family: o.family } : {}),
      ...(o.maxConns !== undefined ? { maxConns: o.maxConns } : {}),
      ...(net.access.active
        ? { accept: (a: Deno.Addr) => net.access.allowsAddr(a) }
        : {}),
      ...(wrap ? { wrap } : {}),
    });
    return 0;
  }
  const endpoint = clientEndpoint(positionals, values.unix);
  const dial = dialerFor(endpoint, net.proxy, net.clientTls, {
    family: o.family,
    wait: o.wait,
    connectFrom: o.connectFrom,
  });
  const { connect } = await import("../tcp/connect.ts");
  const conn = dial ? await dial() : await connect(endpoint, {
    ...o.connectFrom,
    ...(o.family ? { family: o.family } : {}),
    ...(o.wait !== undefined ? { timeout: o.wait } : {}),
  });
  o.logger.log(`connected: running the program`);
  const { execOver } = await import("../exec/stream.ts");
  const r = await execOver(conn, spec, { signal, proto });
  o.logger.log(
    `program exited with ${r.code}${
      r.signal ? ` (${r.signal})` : ""
    }; sent ${r.sent} bytes, received ${r.received} bytes`,
  );
  return 0;
}
