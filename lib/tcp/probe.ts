/**
 * The TCP connect probe: does anything accept connections on a port, and how
 * long does connecting take? Over a range of ports it is a concurrent scan.
 *
 * @module
 */
import type { Family } from "../address.ts";
import { hostPort, serviceName, servicePort } from "../address.ts";
import { describeError, UsageError } from "../errors.ts";
import { udpPortState } from "../native/socket_fd.ts";
import {
  CLOSED,
  nativeScan,
  type NativeScanResult,
  OPEN,
  PENDING,
  TIMEOUT,
} from "../native/scan.ts";
import { resolveIp } from "../udp/socket.ts";

/** Options for {@linkcode probeTcp}. */
export interface ProbeTcpOptions {
  /** The host to probe. */
  hostname: string;
  /** Ports to try, each 1 to 65535. */
  ports: number[];
  /** Milliseconds to wait for each connection. @default {1000} */
  timeout?: number;
  /**
   * Connection attempts in flight at once.
   * @default {512 on the native scan engine, 64 on Deno's event loop}
   */
  concurrency?: number;
  /**
   * `native`: non-blocking connects through libc on threads (Linux, FFI;
   * falls back to `deno` where it cannot run); `deno`: `Deno.connect` on
   * the event loop. `auto` uses the native engine for 16 ports or more.
   * @default {"auto"}
   */
  engine?: "auto" | "native" | "deno";
  /** Restrict a host name to IPv4 or IPv6. */
  family?: Family;
  /** Stop early: ports not yet tried are left out of the report. */
  signal?: AbortSignal;
  /**
   * How each port is opened when it is not a plain connect (a proxy, a
   * TLS handshake); the probe then runs on `deno`.
   */
  open?: PortOpener;
}

/**
 * A connection made some other way than `Deno.connect` (through a proxy)
 * and/or a layer completed on it (TLS): a port is open only once both
 * succeed. Failures are classified by their words: `connection refused`
 * is `closed`, `timed out`/`no answer within` is `timeout`, anything else
 * `error` with the one-line reason.
 */
export interface PortOpener {
  /**
   * Connects to `hostname:port` within `timeoutMs` (a proxy handshake
   * included). @default {Deno.connect}
   */
  connect?: (
    hostname: string,
    port: number,
    timeoutMs: number,
  ) => Promise<Deno.TcpConn>;
  /**
   * Completes a layer on the connection (a TLS handshake), timed as
   * `tlsTime`. The connection is closed after `timeoutMs` if it has not
   * finished, so the layer must give up when that happens.
   */
  handshake?: (
    conn: Deno.TcpConn,
    hostname: string,
  ) => Promise<{ close(): void }>;
  /**
   * Hand the host name to `connect` as given (a proxy resolves it) instead
   * of resolving it first. @default {false}
   */
  remoteDns?: boolean;
}

/** What happened on one port. */
export interface TcpPortResult {
  /** The port tried. */
  port: number;
  /**
   * `open`: a connection was accepted; `closed`: refused; `timeout`: no
   * answer within the timeout (filtered or dropped); `error`: anything else.
   */
  state: "open" | "closed" | "timeout" | "error";
  /** Milliseconds until the connection was accepted (open ports only). */
  connectTime?: number;
  /** Milliseconds the TLS handshake took after connecting (with `tls`). */
  tlsTime?: number;
  /** Why the port is not open, in words (`connection refused`, ...). */
  reason?: string;
}

/** The result of a {@linkcode probeTcp} run. */
export interface TcpProbeReport {
  /** The address probed (the resolved IP). */
  host: string;
  /**
   * Every port tried, in ascending order. After a native scan this list is
   * built when first read (a full scan is 65,535 objects, which a caller
   * that wants only the open ports and the counts never needs).
   */
  readonly results: TcpPortResult[];
  /** The open ports, ascending. */
  open: number[];
  /** The results of the open ports (with their connect times), ascending. */
  openResults: TcpPortResult[];
  /** How many ports ended in each state. */
  counts: Record<TcpPortResult["state"], number>;
}

/** A report whose per-port results are given (the event loop, UDP). */
function reportOf(host: string, results: TcpPortResult[]): TcpProbeReport {
  if (!isAscending(results)) results.sort((a, b) => a.port - b.port);
  const counts = { open: 0, closed: 0, timeout: 0, error: 0 };
  for (const r of results) counts[r.state]++;
  const openResults = results.filter((r) => r.state === "open");
  return {
    host,
    results,
    open: openResults.map((r) => r.port),
    openResults,
    counts,
  };
}

/**
 * A report over the native engine's arrays: the counts and the open ports
 * at once, the full `results` list when first read.
 */
function nativeReport(
  host: string,
  ports: number[],
  r: NativeScanResult,
): TcpProbeReport {
  const counts = { open: 0, closed: 0, timeout: 0, error: 0 };
  const openResults: TcpPortResult[] = [];
  let ascending = true;
  for (let i = 0; i < ports.length; i++) {
    const state = r.states[i]!;
    if (i > 0 && ports[i - 1]! > ports[i]!) ascending = false;
    if (state === OPEN) {
      counts.open++;
      openResults.push({
        port: ports[i]!,
        state: "open",
        connectTime: r.times[i]!,
      });
    } else if (state === CLOSED) counts.closed++;
    else if (state === TIMEOUT) counts.timeout++;
    else if (state !== PENDING) counts.error++;
  }
  if (!ascending) openResults.sort((a, b) => a.port - b.port);
  let results: TcpPortResult[] | undefined;
  return {
    host,
    get results() {
      if (results === undefined) {
        results = fromNative(ports, r);
        if (!ascending) results.sort((a, b) => a.port - b.port);
      }
      return results;
    },
    open: openResults.map((x) => x.port),
    openResults,
    counts,
  };
}

/**
 * Parses `PORT` or `PORT1-PORT2` into the list of ports it names.
 *
 * @example Usage
 * ```ts
 * import { parsePortRange } from "./probe.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * assertEquals(parsePortRange("80"), [80]);
 * assertEquals(parsePortRange("8000-8003"), [8000, 8001, 8002, 8003]);
 * assertThrows(() => parsePortRange("9-1"), Error, "invalid port range");
 * ```
 */
export function parsePortRange(
  text: string,
  protocol: "tcp" | "udp" = "tcp",
): number[] {
  const [lo, hi] = portSpan(text, protocol);
  const out = new Array<number>(hi - lo + 1);
  for (let p = lo; p <= hi; p++) out[p - lo] = p;
  return out;
}

/** The first and last port that `PORT`, `PORT1-PORT2` or a service name names. */
function portSpan(text: string, protocol: "tcp" | "udp"): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m && /^[a-zA-Z][\w.+-]*$/.test(text)) {
    const named = servicePort(text, protocol);
    if (named !== undefined) return [named, named];
    throw new UsageError(
      `invalid port: ${text} (not a ${protocol} service in /etc/services)`,
    );
  }
  const lo = Number(m?.[1]);
  const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
  if (!m || lo < 1 || hi > 65535 || hi < lo) {
    throw new UsageError(
      `invalid port range: ${text} (PORT or PORT1-PORT2, 1 to 65535)`,
    );
  }
  return [lo, hi];
}

/**
 * Parses the port arguments of a scan (`nc -z HOST 22 80-90 http`,
 * `denocat probe HOST 80,443`): each argument a comma-separated list of
 * ports, ranges and service names. Duplicates are dropped, order kept.
 *
 * @example Usage
 * ```ts
 * import { parsePortList } from "./probe.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(parsePortList(["80,443", "8000-8002", "443"]), [80, 443, 8000, 8001, 8002]);
 * ```
 */
export function parsePortList(
  args: readonly string[],
  protocol: "tcp" | "udp" = "tcp",
): number[] {
  // Spans first, then one pass into an array of the final size at most: a
  // full range is 65,535 ports, and a Set of them (or a growing array)
  // cost about 10 MB of peak memory and 11 ms here.
  const spans: Array<[number, number]> = [];
  let total = 0;
  for (const arg of args) {
    for (const part of arg.split(",")) {
      if (part === "") {
        throw new UsageError(`invalid port list: ${arg} (an empty item)`);
      }
      const span = portSpan(part, protocol);
      spans.push(span);
      total += span[1] - span[0] + 1;
    }
  }
  if (total === 0) throw new UsageError("missing PORT (see --help)");
  const seen = new Uint8Array(65536);
  const out = new Array<number>(Math.min(total, 65535));
  let n = 0;
  for (const [lo, hi] of spans) {
    for (let p = lo; p <= hi; p++) {
      if (seen[p] === 0) {
        seen[p] = 1;
        out[n++] = p;
      }
    }
  }
  out.length = n;
  return out;
}

async function tryPort(
  hostname: string,
  port: number,
  timeout: number,
): Promise<TcpPortResult> {
  const start = performance.now();
  try {
    const conn = await Deno.connect({
      hostname,
      port,
      transport: "tcp",
      signal: AbortSignal.timeout(timeout),
    });
    const connectTime = performance.now() - start;
    conn.close();
    return { port, state: "open", connectTime };
  } catch (err) {
    const reason = describeError(err);
    if (err instanceof Deno.errors.ConnectionRefused) {
      return { port, state: "closed", reason };
    }
    if (
      err instanceof Deno.errors.TimedOut ||
      (err instanceof DOMException && err.name === "TimeoutError")
    ) {
      return { port, state: "timeout", reason: "timed out" };
    }
    return { port, state: "error", reason };
  }
}

/**
 * One port through a proxy and/or with TLS: the connection (proxy
 * handshake included) is `connectTime`, the TLS handshake `tlsTime`.
 */
async function tryPortOpener(
  hostname: string,
  port: number,
  timeout: number,
  opener: PortOpener,
): Promise<TcpPortResult> {
  const start = performance.now();
  let raw: Deno.TcpConn;
  try {
    raw = opener.connect
      ? await opener.connect(hostname, port, timeout)
      : await Deno.connect({
        hostname,
        port,
        transport: "tcp",
        signal: AbortSignal.timeout(timeout),
      });
  } catch (err) {
    const reason = describeError(err);
    if (
      err instanceof Deno.errors.ConnectionRefused ||
      /connection refused/i.test(reason)
    ) {
      return { port, state: "closed", reason };
    }
    if (
      err instanceof Deno.errors.TimedOut ||
      (err instanceof DOMException && err.name === "TimeoutError") ||
      /no answer within|timed out/i.test(reason)
    ) {
      return { port, state: "timeout", reason: "timed out" };
    }
    return { port, state: "error", reason };
  }
  const connectTime = performance.now() - start;
  if (!opener.handshake) {
    raw.close();
    return { port, state: "open", connectTime };
  }
  const t0 = performance.now();
  const timer = setTimeout(() => {
    try {
      raw.close();
    } catch { /* closed by the layer */ }
  }, timeout);
  try {
    const layer = await opener.handshake(raw, hostname);
    const tlsTime = performance.now() - t0;
    layer.close();
    return { port, state: "open", connectTime, tlsTime };
  } catch (err) {
    return { port, state: "error", reason: describeError(err) };
  } finally {
    clearTimeout(timer);
    // Whether or not the layer closed the connection under it.
    try {
      raw.close();
    } catch { /* closed by the layer */ }
  }
}

function isAscending(rs: TcpPortResult[]): boolean {
  for (let i = 1; i < rs.length; i++) {
    if (rs[i - 1]!.port > rs[i]!.port) return false;
  }
  return true;
}

/** Below this many ports a thread costs more than it saves. */
const NATIVE_MIN_PORTS = 16;
const NATIVE_CONCURRENCY = 512;

const REFUSED = "connection refused", TIMED_OUT = "timed out";

/** The native engine's arrays as results, in the order of `ports`. */
function fromNative(ports: number[], r: NativeScanResult): TcpPortResult[] {
  const out: TcpPortResult[] = [];
  for (let i = 0; i < ports.length; i++) {
    const port = ports[i]!, state = r.states[i]!;
    if (state === PENDING) continue; // stopped early
    out.push(
      state === OPEN
        ? { port, state: "open", connectTime: r.times[i]! }
        : state === CLOSED
        ? { port, state: "closed", reason: REFUSED }
        : state === TIMEOUT
        ? { port, state: "timeout", reason: TIMED_OUT }
        : { port, state: "error", reason: errnoText(r.errnos[i]!) },
    );
  }
  return out;
}

/** errno values a connect scan meets, in the words describeError uses. */
function errnoText(code: number): string {
  switch (code) {
    case 101:
      return "network unreachable";
    case 113:
      return "no route to host";
    case 99:
      return "address not available";
    case 13:
      return "permission denied";
    case 24:
    case 23:
      return "too many open files";
    default:
      return `os error ${code}`;
  }
}

/**
 * `Deno.connect` to each port, `concurrency` at a time. A port whose
 * connect timed out is tried once more on its own at the end: with many
 * connects in flight, a timer can fire while the answer waits in the event
 * loop's queue, and only an attempt with nothing else queued shows that the
 * port truly went unanswered.
 */
async function scanOnEventLoop(
  host: string,
  ports: number[],
  timeout: number,
  concurrency: number,
  signal: AbortSignal | undefined,
  attempt: typeof tryPort = tryPort,
): Promise<TcpPortResult[]> {
  const results: TcpPortResult[] = [];
  let next = 0;
  const worker = async () => {
    while (next < ports.length && !signal?.aborted) {
      const port = ports[next++]!;
      results.push(await attempt(host, port, timeout));
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, ports.length) }, worker),
  );
  if (concurrency > 1) {
    for (let i = 0; i < results.length && !signal?.aborted; i++) {
      if (results[i]!.state === "timeout") {
        results[i] = await attempt(host, results[i]!.port, timeout);
      }
    }
  }
  return results;
}

/**
 * Tries a TCP connection to each port, `concurrency` at a time: on Linux
 * with FFI, non-blocking connects through libc on threads, each timed from
 * its own start; elsewhere `Deno.connect` on the event loop.
 *
 * @example Usage
 * ```ts
 * import { probeTcp } from "./probe.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const report = await probeTcp({ hostname: "127.0.0.1", ports: [l.addr.port] });
 * assertEquals(report.open, [l.addr.port]);
 * ```
 */
export async function probeTcp(
  options: ProbeTcpOptions,
): Promise<TcpProbeReport> {
  const timeout = options.timeout ?? 1000;
  const concurrency = options.concurrency ?? 64;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new UsageError(`invalid concurrency: ${concurrency}`);
  }
  const ports = options.ports;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i]!;
    if (!Number.isInteger(p) || p < 1 || p > 65535) {
      throw new UsageError(`invalid port: ${p}`);
    }
  }
  const opener = options.open;
  const host = opener?.remoteDns
    ? options.hostname
    : await resolveIp(options.hostname, options.family);
  if (opener) {
    const results = await scanOnEventLoop(
      host,
      options.ports,
      timeout,
      concurrency,
      options.signal,
      (h, p, t) => tryPortOpener(h, p, t, opener),
    );
    return reportOf(host, results);
  }
  const engine = options.engine ?? "auto";
  const native = engine === "native" ||
      (engine === "auto" && options.ports.length >= NATIVE_MIN_PORTS)
    ? await nativeScan(host, options.ports, {
      timeout,
      window: options.concurrency ?? NATIVE_CONCURRENCY,
      ...(options.signal ? { signal: options.signal } : {}),
    })
    : undefined;
  return native ? nativeReport(host, options.ports, native) : reportOf(
    host,
    await scanOnEventLoop(
      host,
      options.ports,
      timeout,
      concurrency,
      options.signal,
    ),
  );
}

/** Options for {@linkcode scanPorts}. */
export interface ScanPortsOptions extends ProbeTcpOptions {
  /**
   * `tcp`: a connect probe per port ({@linkcode probeTcp}); `udp`: one byte
   * to each port on a connected UDP socket, closed when the system reports
   * "port unreachable" (Linux with FFI, as `nc -zu`). @default {"tcp"}
   */
  protocol?: "tcp" | "udp";
}

/**
 * The scan behind `denocat -z` and `denocat probe HOST PORTS`: TCP connect
 * probes, or nc's UDP test. A UDP port that answers nothing counts as
 * `open` (it may be filtered: UDP cannot tell).
 *
 * @example Usage
 * ```ts
 * import { scanPorts } from "./probe.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const r = await scanPorts({ hostname: "127.0.0.1", ports: [l.addr.port] });
 * assertEquals(r.open, [l.addr.port]);
 * ```
 */
export async function scanPorts(
  options: ScanPortsOptions,
): Promise<TcpProbeReport> {
  if ((options.protocol ?? "tcp") === "tcp") return await probeTcp(options);
  const timeout = options.timeout ?? 1000;
  const host = await resolveIp(options.hostname, options.family);
  const results: TcpPortResult[] = [];
  let next = 0;
  const worker = async () => {
    while (next < options.ports.length && !options.signal?.aborted) {
      const port = options.ports[next++]!;
      const start = performance.now();
      try {
        const state = await udpPortState(host, port, Math.min(timeout, 1000));
        results.push(
          state === "open"
            ? { port, state, connectTime: performance.now() - start }
            : { port, state, reason: "connection refused" },
        );
      } catch (err) {
        results.push({ port, state: "error", reason: describeError(err) });
      }
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.min(options.concurrency ?? 64, options.ports.length) },
      worker,
    ),
  );
  return reportOf(host, results);
}

/**
 * One result as `nc -zv` prints it on stderr (`Connection to HOST PORT port
 * [tcp/NAME] succeeded!` and `denocat: connect to HOST port PORT (tcp)
 * failed: REASON`); `undefined` for a closed UDP port, which nc does not
 * print. `asked` is the host as typed, `ip` what it resolved to.
 */
export function ncScanLine(
  asked: string,
  ip: string,
  protocol: "tcp" | "udp",
  r: TcpPortResult,
): string | undefined {
  const host = asked === ip ? ip : `${asked} (${ip})`;
  if (r.state === "open") {
    return `Connection to ${host} ${r.port} port [${protocol}/${
      serviceName(r.port, protocol) ?? "*"
    }] succeeded!`;
  }
  if (protocol === "udp" && r.state === "closed") return undefined;
  return `denocat: connect to ${host} port ${r.port} (${protocol}) failed: ${r.reason}`;
}

/** Formats a port result as `HOST:PORT open 0.123 ms` / `... closed (reason)`. */
export function formatPortResult(host: string, r: TcpPortResult): string {
  return r.state === "open"
    ? `${hostPort(host, r.port)} open ${r.connectTime!.toFixed(3)} ms${
      r.tlsTime !== undefined
        ? ` (TLS handshake ${r.tlsTime.toFixed(3)} ms)`
        : ""
    }`
    : `${hostPort(host, r.port)} ${r.state} (${r.reason})`;
}
