/**
 * `denocat [options] HOST PORT` and `denocat -l [options] [HOST] PORT`.
 *
 * @module
 */
import { tcpClient } from "../tcp/client.ts";
import { UsageError } from "../errors.ts";
import { tcpListen } from "../tcp/listener.ts";
import { stderrLogger } from "../log.ts";
import { stdinReader, stdoutWriter } from "../stdio.ts";
import {
  clientEndpoint,
  COMMON_OPTIONS,
  familyOf,
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
  denocat -u [options] HOST PORT       UDP: each stdin line is one datagram;
                                       replies are printed until -w passes idle
  denocat -u -l [options] [HOST] PORT  UDP: print datagrams from any peers;
                                       stdin lines go to the latest peer
  denocat --frame FORMAT [--split line|chunk] HOST PORT
                                       send each stdin line (or read) as one frame
  denocat -l --frame FORMAT [--output MODE] [-k] [HOST] PORT
                                       decode frames and print each payload
  denocat echo|probe|send|recv|shell   other modes; see 'denocat COMMAND --help'

Options:
  -l, --listen        listen instead of connecting (default bind: all interfaces)
  -k, --keep-open     with -l: keep listening, serve clients concurrently;
                      stdin is copied to every connected client
  -q SECS             quit SECS seconds after stdin EOF
  -w SECS             timeout for connecting and for idle connections
      --idle-timeout SECS
                      with -l (TCP, -k and --frame included): close a client
                      that moves no byte for SECS (default: never)
      --max-conns N   with -l -k --frame: serve at most N clients at once; more
                      are closed unread (default 256)
      --no-shutdown   do not send FIN when stdin ends (keep the write side open)
  -4, -6              IPv4 / IPv6 only
  -U, --unix PATH     use a Unix socket instead of HOST PORT
  -u, --udp           UDP instead of TCP; with -u, -w SECS (default 1) is how
                      long to wait after stdin EOF with no reply before exiting
      --split MODE    with -u or --frame: one datagram or frame per 'line'
                      (default; the newline is not framed) or per 'chunk'
                      read from stdin
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
      --output MODE   with -l --frame: print each payload as 'lines' (payload
                      and a newline; default), 'raw', 'hex' (one line per
                      frame) or 'json' ({"len":n,"data":"<base64>"} per line,
                      plus "header" for json/seed-json frames)
  -v, --verbose       log connections, byte counts and rates to stderr
  -h, --help          this help
      --version       print the version

On stdin EOF denocat half-closes (sends FIN) and keeps printing until the
peer closes, so 'echo hi | denocat HOST PORT' always gets the reply.

Exit codes: 0 ok, 1 network or runtime failure, 2 usage error, 3 integrity failure.
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  listen: { type: "boolean", short: "l" },
  "keep-open": { type: "boolean", short: "k" },
  quit: { type: "string", short: "q" },
  wait: { type: "string", short: "w" },
  "idle-timeout": { type: "string" },
  "max-conns": { type: "string" },
  "no-shutdown": { type: "boolean" },
  udp: { type: "boolean", short: "u" },
  split: { type: "string" },
  frame: { type: "string" },
  output: { type: "string" },
} as const;

/** Runs the netcat modes; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS);
  if (values.help) {
    print(HELP);
    return 0;
  }
  const family = familyOf(values);
  const quit = seconds(values.quit, "-q");
  const wait = seconds(values.wait, "-w");
  const idle = seconds(values["idle-timeout"], "--idle-timeout") || undefined;
  if (idle !== undefined && (!values.listen || values.udp)) {
    throw new UsageError("--idle-timeout needs -l (TCP)");
  }
  const maxConns = positiveInt(values["max-conns"], "--max-conns");
  if (
    maxConns !== undefined &&
    (!values.listen || !values["keep-open"] || values.udp ||
      values.frame === undefined)
  ) {
    throw new UsageError("--max-conns applies to -l -k --frame");
  }
  const logger = stderrLogger(values.verbose ?? false);
  if (values.frame !== undefined) {
    const { runFramedNetcat } = await import("./_framed.ts");
    return await runFramedNetcat(positionals, {
      frame: values.frame,
      output: values.output,
      split: values.split,
      listen: values.listen ?? false,
      keep: values["keep-open"] ?? false,
      udp: values.udp ?? false,
      quit,
      wait,
      idle,
      maxConns,
      noShutdown: values["no-shutdown"] ?? false,
      unix: values.unix,
      family,
      logger,
    });
  }
  if (values.output !== undefined) {
    throw new UsageError("--output needs --frame and -l");
  }
  if (values.udp) {
    if (values["no-shutdown"]) {
      throw new UsageError("--no-shutdown does not apply to -u");
    }
    const { runUdpNetcat } = await import("./_udp.ts");
    return await runUdpNetcat(positionals, {
      listen: values.listen ?? false,
      wait,
      quit,
      split: values.split,
      unix: values.unix,
      family,
      logger,
    });
  }
  if (values.split !== undefined) {
    throw new UsageError("--split needs -u or --frame");
  }
  const interactive = Deno.stdin.isTerminal();
  const common = {
    input: stdinReader(),
    output: stdoutWriter(),
    halfClose: !values["no-shutdown"],
    // A person at a terminal expects the session to end when the peer hangs up.
    endOnPeerEof: interactive,
    logger,
    ...(family ? { family } : {}),
    ...(quit !== undefined ? { quitAfterEof: quit } : {}),
    ...(wait !== undefined ? { idleTimeout: wait } : {}),
  };
  if (values.listen) {
    const endpoint = serverEndpoint(positionals, values.unix);
    using signal = shutdownSignal();
    await tcpListen(endpoint, {
      ...common,
      ...(idle !== undefined ? { idleTimeout: idle } : {}),
      keep: values["keep-open"] ?? false,
      noDelay: interactive,
      signal,
    });
    return 0;
  }
  if (values["keep-open"]) throw new UsageError("-k needs -l");
  const endpoint = clientEndpoint(positionals, values.unix);
  await tcpClient(endpoint, {
    ...common,
    noDelay: interactive,
    ...(wait !== undefined ? { timeout: wait } : {}),
  });
  return 0;
}
