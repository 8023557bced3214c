/**
 * `denocat probe`: UDP echo probes with loss and RTT statistics, one-shot UDP
 * requests, and TCP connect probes / port scans.
 *
 * @module
 */
import { formatAddr, hostPort, parsePort } from "../address.ts";
import { DenocatError, EXIT_FAILURE, UsageError } from "../errors.ts";
import { hexdump, isPrintableText } from "../hexdump.ts";
import { stderrLogger } from "../log.ts";
import {
  formatPortResult,
  parsePortList,
  type PortOpener,
  probeTcp,
  type TcpProbeReport,
} from "../tcp/probe.ts";
import type { ClientTlsOptions } from "../forward/tls.ts";
import type { ProxySpec } from "../proxy/connect.ts";
import { type ProbeReply, type ProbeReport, probeUdp } from "../udp/probe.ts";
import { udpQuery, type UdpQueryReply } from "../udp/query.ts";
import { PROXY_OPTIONS, TLS_OPTIONS } from "./_net_flags.ts";
import {
  COMMON_OPTIONS,
  familyOf,
  parse,
  positiveInt,
  print,
  seconds,
  shutdownSignal,
} from "./_args.ts";

/** Help for `denocat probe`. */
export const HELP = `Usage:
  denocat probe -u [options] HOST PORT                  probe a UDP echo service
  denocat probe -u --data TEXT|--data-hex HEX HOST PORT  one request to any UDP service
  denocat probe [options] HOST PORT...                  TCP connect probe / port scan

PORT: a number, a range LO-HI, a service name from /etc/services, or several
of these separated by commas (80,443,8000-8010); several PORT arguments too.

UDP echo probe (-u): sends COUNT datagrams, each carrying a sequence number and
its send time in characters upper-casing leaves unchanged (so upper-casing echo
servers work too), matches replies by sequence number, prints one line per
reply and a summary: loss, duplicates, reordering, RTT min/avg/p50/p95/max/mdev.

One-shot (-u --data/--data-hex): sends the payload once, prints the reply (a hex
dump unless it is printable text) and the round-trip time.

TCP (no -u): connects to each port; prints the open ones with connect times.
'denocat -z HOST PORT...' runs the same scan with nc's output and exit codes.

Options:
  -u, --udp             UDP instead of TCP
  -c, --count N         UDP probes to send (default 5; not ncat's -c, --sh-exec)
  -i, --interval SECS   between UDP probes (default 0.2)
  -s, --size BYTES      UDP probe size, at least 32 (default 32; not nc's -s,
                        the source address)
  -w, --wait SECS       UDP: wait this long for replies after the last send;
                        TCP: connect timeout per port (default 1)
      --data TEXT       one-shot UDP payload
      --data-hex HEX    one-shot UDP payload given in hex
      --concurrency N   TCP connects in flight at once (default 512 for a scan
                        of 16 ports or more on Linux, where non-blocking
                        connects run on threads through libc; 64 elsewhere)
      --ssl, --tls      TCP: also complete a TLS handshake on each open port
                        (verified as 'denocat --ssl' verifies; --ssl-trustfile/
                        --ca, --ssl-servername, --ssl-alpn, --ssl-pin,
                        --insecure, --ssl-cert/--ssl-key); open means the
                        handshake succeeded, and its time is shown; a failed
                        one is an error with why
  -x, --proxy ADDR[:PORT]
                        TCP: connect through a proxy (-X 4|5|connect, -P
                        USER[:PASS], --proxy-dns as the main mode); a port the
                        proxy cannot reach is reported with the proxy's reason
      --json            print one JSON object instead of text
  -4, -6                IPv4 / IPv6 only
  -v, --verbose         diagnostics on stderr
  -h, --help            this help

Exit codes: 0 at least one reply / open port, 1 none (or failure), 2 usage error.
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  udp: { type: "boolean", short: "u" },
  count: { type: "string", short: "c" },
  interval: { type: "string", short: "i" },
  size: { type: "string", short: "s" },
  wait: { type: "string", short: "w" },
  data: { type: "string" },
  "data-hex": { type: "string" },
  concurrency: { type: "string" },
  json: { type: "boolean" },
  ...PROXY_OPTIONS,
  ...TLS_OPTIONS,
} as const;

const encoder = new TextEncoder();
const ms = (n: number) => n.toFixed(3);
const pct = (n: number) => `${Number(n.toFixed(1))}%`;

/** Runs `denocat probe`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS);
  if (values.help) {
    print(HELP);
    return 0;
  }
  if (values.unix) {
    throw new UsageError("probe does not support -U (Unix sockets)");
  }
  const family = familyOf(values);
  const wait = seconds(values.wait, "-w");
  if (positionals.length < 2) {
    throw new UsageError("missing HOST and PORT (see --help)");
  }
  if (values.udp && positionals.length > 2) {
    throw new UsageError(
      `unexpected argument: ${positionals[2]} (-u probes one port)`,
    );
  }
  const [hostname, portText] = positionals as [string, string];
  const udpOnly = (["count", "interval", "size", "data", "data-hex"] as const)
    .filter((k) => values[k] !== undefined);
  using signal = shutdownSignal();

  // _net.ts (node:crypto, node:tls, proxies) is loaded only when a proxy or
  // TLS flag is given: a plain scan would otherwise start about 20 ms later
  // and peak about 10 MB higher (measured here).
  const netFlag = [...Object.keys(PROXY_OPTIONS), ...Object.keys(TLS_OPTIONS)]
    .some((k) => values[k as keyof typeof values] !== undefined);
  const net = netFlag ? await import("./_net.ts") : undefined;
  const proxy = net?.proxyFrom(values);
  const tls = net
    ? (await net.tlsFrom(values, "client", "server")).client
    : undefined;
  if (values.udp && (proxy || tls)) {
    throw new UsageError(
      `${proxy ? "--proxy" : "--ssl"} applies to TCP probes`,
    );
  }
  if (!values.udp) {
    if (udpOnly.length) throw new UsageError(`--${udpOnly[0]} needs -u`);
    const ports = parsePortList(positionals.slice(1));
    const concurrency = positiveInt(values.concurrency, "--concurrency");
    const report = await probeTcp({
      hostname,
      ports,
      signal,
      ...(wait !== undefined ? { timeout: wait } : {}),
      ...(concurrency !== undefined ? { concurrency } : {}),
      ...(family ? { family } : {}),
      ...(proxy || tls ? { open: await opener(proxy, tls, family) } : {}),
    });
    printTcp(
      report,
      ports.length > 1 || positionals.length > 2 || /[-,]/.test(portText),
      values.json ?? false,
    );
    return report.open.length ? 0 : EXIT_FAILURE;
  }

  if (values.concurrency !== undefined) {
    throw new UsageError("--concurrency is for TCP scans (drop -u)");
  }
  const port = parsePort(portText, { protocol: "udp" });
  if (values.data !== undefined || values["data-hex"] !== undefined) {
    if (values.data !== undefined && values["data-hex"] !== undefined) {
      throw new UsageError("--data and --data-hex cannot be combined");
    }
    const extra = udpOnly.filter((k) => k !== "data" && k !== "data-hex");
    if (extra.length) {
      throw new UsageError(`--${extra[0]} does not apply to a one-shot probe`);
    }
    const data = values.data !== undefined
      ? encoder.encode(values.data)
      : parseHex(values["data-hex"]!);
    const reply = await udpQuery({
      hostname,
      port,
      data,
      ...(wait !== undefined ? { timeout: wait } : {}),
      ...(family ? { family } : {}),
    });
    return printQuery(
      hostPort(hostname, port),
      data.length,
      reply,
      wait ?? 1000,
      values.json ?? false,
    );
  }

  const count = positiveInt(values.count, "-c");
  const interval = seconds(values.interval, "-i");
  const size = positiveInt(values.size, "-s");
  const json = values.json ?? false;
  // A reply line that finds stdout closed (`probe … | head -3`) ends the
  // probe; the error then surfaces from print() below, which exits 0.
  const stop = new AbortController();
  let stdoutClosed: unknown;
  const onReply = (r: ProbeReply) => {
    if (stdoutClosed !== undefined) return;
    try {
      print(replyLine(r));
    } catch (err) {
      stdoutClosed = err;
      stop.abort();
    }
  };
  const report = await probeUdp({
    hostname,
    port,
    signal: AbortSignal.any([signal, stop.signal]),
    logger: stderrLogger(values.verbose ?? false),
    ...(count !== undefined ? { count } : {}),
    ...(interval !== undefined ? { interval } : {}),
    ...(size !== undefined ? { size } : {}),
    ...(wait !== undefined ? { wait } : {}),
    ...(family ? { family } : {}),
    ...(json ? {} : { onReply }),
  });
  if (stdoutClosed !== undefined) throw stdoutClosed;
  if (json) {
    print(JSON.stringify(report));
  } else {
    print(summary(report));
  }
  return report.received > 0 ? 0 : EXIT_FAILURE;
}

function parseHex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  if (!/^([0-9a-fA-F]{2})+$/.test(clean)) {
    throw new UsageError(
      `invalid --data-hex value: ${text} (pairs of hex digits expected)`,
    );
  }
  return Uint8Array.fromHex(clean);
}

function replyLine(r: ProbeReply): string {
  return `seq=${r.seq} bytes=${r.bytes} rtt=${ms(r.rtt)} ms${
    r.duplicate ? " (DUP!)" : ""
  }${r.reordered ? " (reordered)" : ""}`;
}

function summary(r: ProbeReport): string {
  let out = `--- ${r.target} udp probe statistics ---\n` +
    `${r.sent} sent, ${r.received} received, ${pct(r.loss)} loss, ` +
    `${r.duplicates} duplicates, ${r.reordered} reordered` +
    (r.invalid ? `, ${r.invalid} invalid` : "") + "\n";
  if (r.rtt) {
    const s = r.rtt;
    out += `rtt min/avg/p50/p95/max/mdev = ${
      [s.min, s.avg, s.p50, s.p95, s.max, s.mdev].map(ms).join("/")
    } ms\n`;
  }
  return out;
}

function printQuery(
  target: string,
  sent: number,
  reply: UdpQueryReply | null,
  timeout: number,
  json: boolean,
): number {
  if (json) {
    print(JSON.stringify({
      target,
      sent,
      reply: reply && {
        from: formatAddr(reply.from),
        bytes: reply.data.length,
        rtt: reply.rtt,
        text: isPrintableText(reply.data)
          ? new TextDecoder().decode(reply.data)
          : null,
        hex: reply.data.toHex(),
      },
    }));
    return reply ? 0 : EXIT_FAILURE;
  }
  if (!reply) {
    throw new DenocatError(
      `no reply from udp ${target} within ${timeout / 1000} s`,
    );
  }
  print(
    `reply from ${formatAddr(reply.from)}: ${reply.data.length} bytes, rtt=${
      ms(reply.rtt)
    } ms`,
  );
  if (reply.data.length === 0) return 0;
  print(
    isPrintableText(reply.data)
      ? new TextDecoder().decode(reply.data)
      : hexdump(reply.data),
  );
  return 0;
}

function printTcp(r: TcpProbeReport, range: boolean, json: boolean): void {
  const { open, closed, timeout, error } = r.counts;
  const scanned = open + closed + timeout + error;
  if (json) {
    print(JSON.stringify({
      host: r.host,
      scanned,
      open: r.openResults.map((x) => ({
        port: x.port,
        connectTime: x.connectTime,
        ...(x.tlsTime !== undefined ? { tlsTime: x.tlsTime } : {}),
      })),
      closed,
      timeout,
      error,
    }));
    return;
  }
  if (!range) {
    const only = r.results[0];
    if (only) print(formatPortResult(r.host, only));
    return;
  }
  for (const x of r.openResults) print(formatPortResult(r.host, x));
  print(
    `${open} of ${scanned} ports open on ${r.host} (${closed} closed, ${timeout} timed out, ${error} errors)`,
  );
}

/** How `--proxy` and `--ssl` open each probed port. */
async function opener(
  proxy: ProxySpec | undefined,
  tls: ClientTlsOptions | undefined,
  family: 4 | 6 | undefined,
): Promise<PortOpener> {
  const { connectViaProxy } = await import("../proxy/connect.ts");
  const { startClientTls } = await import("../forward/tls.ts");
  return {
    ...(proxy
      ? {
        // The proxy resolves the name (unless --proxy-dns local).
        remoteDns: true,
        connect: (hostname: string, port: number, timeout: number) =>
          connectViaProxy(proxy, { hostname, port }, {
            timeout,
            ...(family ? { family } : {}),
          }),
      }
      : {}),
    ...(tls
      ? {
        // closeable: the probe's timer ends a handshake that hangs.
        handshake: (conn: Deno.TcpConn, hostname: string) =>
          startClientTls(conn, hostname, { ...tls, closeable: true }),
      }
      : {}),
  };
}
