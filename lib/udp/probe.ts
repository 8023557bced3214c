/**
 * The UDP probe: sequence-numbered, time-stamped datagrams sent to an echo
 * service at a fixed interval, replies matched by sequence number, and a
 * report of loss, duplicates, reordering and round-trip times.
 *
 * @module
 */
import type { Family } from "../address.ts";
import { formatAddr } from "../address.ts";
import { UsageError } from "../errors.ts";
import { type Logger, silent } from "../log.ts";
import {
  decodeProbe,
  elapsedUs,
  encodeProbe,
  MAX_PROBE_SEQ,
  newSession,
  PROBE_HEADER_SIZE,
} from "./payload.ts";
import { bindUdpFor, maxPayload, resolveUdp, sameUdpAddr } from "./socket.ts";

/** Options for {@linkcode probeUdp}. */
export interface ProbeUdpOptions {
  /** The echo service's host. */
  hostname: string;
  /** The echo service's port. */
  port: number;
  /** Probes to send (sequence numbers 1 to count). @default {5} */
  count?: number;
  /** Milliseconds between probes. @default {200} */
  interval?: number;
  /** Milliseconds to wait for replies after the last probe is sent. @default {1000} */
  wait?: number;
  /** Payload size in bytes, at least 32. @default {32} */
  size?: number;
  /** Restrict a host name to IPv4 or IPv6. */
  family?: Family;
  /** Stop early; the report covers what happened until then. */
  signal?: AbortSignal;
  /** Called for each reply as it arrives (duplicates included). */
  onReply?: (reply: ProbeReply) => void;
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
}

/** One reply, as matched to its probe. */
export interface ProbeReply {
  /** The sequence number it carried. */
  seq: number;
  /** Its size in bytes. */
  bytes: number;
  /** Milliseconds from sending the probe to receiving this reply. */
  rtt: number;
  /** A second (or later) reply for the same sequence number. */
  duplicate: boolean;
  /** Arrived after a reply with a higher sequence number. */
  reordered: boolean;
}

/** Round-trip time statistics in milliseconds, over first replies only. */
export interface RttStats {
  /** Fastest round trip. */
  min: number;
  /** Mean round trip. */
  avg: number;
  /** Median (nearest-rank 50th percentile). */
  p50: number;
  /** Nearest-rank 95th percentile. */
  p95: number;
  /** Slowest round trip. */
  max: number;
  /** Mean deviation as ping computes it: the standard deviation sqrt(E[x²] − E[x]²). */
  mdev: number;
}

/** The result of a {@linkcode probeUdp} run. */
export interface ProbeReport {
  /** The address probed, as `HOST:PORT` (the resolved IP). */
  target: string;
  /** Bytes per probe. */
  size: number;
  /** Probes sent. */
  sent: number;
  /** Distinct probes that got at least one reply. */
  received: number;
  /** Share of probes without a reply, in percent: 100 × (sent − received) / sent. */
  loss: number;
  /** Extra replies for a sequence number already answered. */
  duplicates: number;
  /** First replies that arrived after a reply with a higher sequence number. */
  reordered: number;
  /** Datagrams from the target that were not an intact probe of this run. */
  invalid: number;
  /** Round-trip statistics; `null` when nothing came back. */
  rtt: RttStats | null;
  /** Every reply in arrival order. */
  replies: ProbeReply[];
}

/**
 * Nearest-rank percentile of ascending `sorted` (non-empty).
 *
 * @example Usage
 * ```ts
 * import { percentile } from "./probe.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(percentile([1, 2, 3, 4], 50), 2);
 * assertEquals(percentile([1, 2, 3, 4], 95), 4);
 * ```
 */
export function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/**
 * Statistics over round-trip times in milliseconds; `null` for none.
 *
 * @example Usage
 * ```ts
 * import { rttStats } from "./probe.ts";
 * import { assertEquals } from "../_assert.ts";
 * const s = rttStats([3, 1, 2])!;
 * assertEquals([s.min, s.avg, s.p50, s.p95, s.max], [1, 2, 2, 3, 3]);
 * assertEquals(s.mdev.toFixed(4), "0.8165"); // sqrt(2/3)
 * assertEquals(rttStats([]), null);
 * ```
 */
export function rttStats(rtts: number[]): RttStats | null {
  if (rtts.length === 0) return null;
  const sorted = rtts.toSorted((a, b) => a - b);
  const avg = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  const sq = sorted.reduce((a, b) => a + b * b, 0) / sorted.length;
  return {
    min: sorted[0]!,
    avg,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted.at(-1)!,
    mdev: Math.sqrt(Math.max(0, sq - avg * avg)),
  };
}

/**
 * Probes a UDP echo service (one that returns each datagram, possibly
 * upper-cased) and reports what came back.
 *
 * @example Usage
 * ```ts
 * import { probeUdp } from "./probe.ts";
 * import { udpEcho } from "./echo.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using server = udpEcho({ hostname: "127.0.0.1", upper: true });
 * const report = await probeUdp({ hostname: "127.0.0.1", port: server.addr.port, count: 3, interval: 10 });
 * assertEquals([report.sent, report.received, report.loss, report.duplicates], [3, 3, 0, 0]);
 * assertEquals(report.replies.map((r) => r.seq), [1, 2, 3]);
 * ```
 */
export async function probeUdp(options: ProbeUdpOptions): Promise<ProbeReport> {
  const count = options.count ?? 5;
  const interval = options.interval ?? 200;
  const wait = options.wait ?? 1000;
  const size = options.size ?? PROBE_HEADER_SIZE;
  const logger = options.logger ?? silent;
  if (!Number.isInteger(count) || count < 1 || count > MAX_PROBE_SEQ) {
    throw new UsageError(
      `invalid probe count: ${count} (1 to ${MAX_PROBE_SEQ})`,
    );
  }
  if (!Number.isInteger(size) || size < PROBE_HEADER_SIZE) {
    throw new UsageError(
      `invalid probe size: ${size} (at least ${PROBE_HEADER_SIZE} bytes)`,
    );
  }
  const target = await resolveUdp(
    options.hostname,
    options.port,
    options.family,
  );
  const max = maxPayload(target.hostname);
  if (size > max) {
    throw new UsageError(
      `invalid probe size: ${size} (the UDP maximum to ${target.hostname} is ${max} bytes)`,
    );
  }
  using socket = bindUdpFor(target);
  const session = newSession();
  const t0 = performance.now();
  const nowUs = () => (performance.now() - t0) * 1000;
  logger.log(
    `probing udp ${formatAddr(target)} from ${
      formatAddr(socket.addr)
    }: ${count} probes of ${size} bytes, session ${session}`,
  );

  const report: ProbeReport = {
    target: formatAddr(target),
    size,
    sent: 0,
    received: 0,
    loss: 0,
    duplicates: 0,
    reordered: 0,
    invalid: 0,
    rtt: null,
    replies: [],
  };
  const answered = new Set<number>();
  const firstRtts: number[] = [];
  let highest = 0;
  const allIn = Promise.withResolvers<void>();

  const receiving = (async () => {
    let d;
    while ((d = await socket.receive()) !== null) {
      const now = nowUs();
      if (!sameUdpAddr(d.from, target)) {
        logger.log(`ignored ${d.data.length} bytes from ${formatAddr(d.from)}`);
        continue;
      }
      const fields = decodeProbe(d.data);
      if (
        !fields || fields.session !== session || fields.seq < 1 ||
        fields.seq > report.sent
      ) {
        report.invalid++;
        logger.log(`${d.data.length} bytes that are not a probe of this run`);
        continue;
      }
      const duplicate = answered.has(fields.seq);
      const reordered = !duplicate && fields.seq < highest;
      const reply: ProbeReply = {
        seq: fields.seq,
        bytes: d.data.length,
        rtt: elapsedUs(fields.sentUs, now) / 1000,
        duplicate,
        reordered,
      };
      if (duplicate) {
        report.duplicates++;
      } else {
        answered.add(fields.seq);
        firstRtts.push(reply.rtt);
        report.received++;
        if (reordered) report.reordered++;
        highest = Math.max(highest, fields.seq);
      }
      report.replies.push(reply);
      options.onReply?.(reply);
      if (report.received === count) allIn.resolve();
    }
  })();

  // Resolves at time `t`, on abort, or when `early` settles.
  const sleepUntil = (t: number, early?: Promise<void>) =>
    new Promise<void>((resolve) => {
      const signal = options.signal;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, t - performance.now()));
      signal?.addEventListener("abort", done, { once: true });
      early?.then(done);
    });

  try {
    for (let seq = 1; seq <= count && !options.signal?.aborted; seq++) {
      await sleepUntil(t0 + (seq - 1) * interval);
      if (options.signal?.aborted) break;
      // Count before sending: a fast reply may arrive before send() resolves.
      report.sent++;
      await socket.send(
        encodeProbe({ session, seq, sentUs: nowUs() }, size),
        target,
      );
    }
    if (!options.signal?.aborted) {
      await sleepUntil(performance.now() + wait, allIn.promise);
    }
  } finally {
    socket.close();
    await receiving;
  }
  report.loss = report.sent
    ? (100 * (report.sent - report.received)) / report.sent
    : 0;
  report.rtt = rttStats(firstRtts);
  return report;
}
