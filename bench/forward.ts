/**
 * Benchmark 9: port forwarding. `denocat forward` beside socat
 * `TCP-LISTEN:P,fork,reuseaddr TCP:HOST:PORT`, in the same run:
 *
 *   - one stream: SIZE MiB from a pipe (`head -c | denocat`) through the
 *     forwarder into `denocat -l` writing to /dev/null; wall time, median
 *     of RUNS;
 *   - short connections: the C churn generator (connect, 64 bytes each
 *     way, close) through the forwarder to the single-threaded C epoll
 *     echo server, for SECS seconds at each lane count.
 *
 * The source, the sink and the echo target are the same for both
 * forwarders, so the ratio is the forwarders'.
 *
 * Usage: deno run -A bench/forward.ts [--size MiB] [--runs N] [--secs N] [--lanes 16,64]
 */
import { parseArgs } from "node:util";
import {
  background,
  buildC,
  DENOCAT,
  freePort,
  has,
  median,
  percentile,
  q,
  saveResults,
  sh,
  table,
  waitListening,
} from "./_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "2048" },
    runs: { type: "string", default: "3" },
    secs: { type: "string", default: "3" },
    lanes: { type: "string", default: "16,64" },
  },
});
const MIB = Number(values.size);
const RUNS = Number(values.runs);
const SECS = Number(values.secs);
const LANES = values.lanes.split(",").map(Number);
const dc = DENOCAT.map(q).join(" ");

const FORWARDERS: Array<
  {
    name: string;
    needs: string[];
    cmd: (port: number, target: number) => string;
  }
> = [
  {
    name: "denocat forward",
    needs: [],
    cmd: (p, t) => `${dc} forward 127.0.0.1 ${p} 127.0.0.1 ${t}`,
  },
  {
    name: "socat fork",
    needs: ["socat"],
    cmd: (p, t) =>
      `socat TCP-LISTEN:${p},bind=127.0.0.1,fork,reuseaddr,backlog=4096 TCP:127.0.0.1:${t}`,
  },
];

interface StreamResult {
  forwarder: string;
  mib: number;
  runsMs: number[];
  gbPerSec: number;
}
interface ChurnResult {
  forwarder: string;
  lanes: number;
  connsPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

async function oneStream(
  cmd: (p: number, t: number) => string,
): Promise<number> {
  const sinkPort = freePort(), fwdPort = freePort();
  const sink = background(`${dc} -l 127.0.0.1 ${sinkPort}`);
  const fwd = background(cmd(fwdPort, sinkPort));
  try {
    await waitListening(sinkPort);
    await waitListening(fwdPort);
    const r = await sh(
      `head -c ${MIB}M /dev/zero | ${dc} 127.0.0.1 ${fwdPort}`,
      300000,
    );
    if (r.code !== 0) throw new Error(`stream failed: ${r.stderr}`);
    // The sink exits once it has everything; a run counts only then.
    const status = await Promise.race([
      sink.exited,
      new Promise<null>((res) => setTimeout(() => res(null), 10000)),
    ]);
    if (status === null) throw new Error("the sink did not finish");
    return r.ms;
  } finally {
    await fwd.stop();
    await sink.stop();
  }
}

async function churn(
  gen: string,
  echo: string,
  cmd: (p: number, t: number) => string,
  lanes: number,
): Promise<Omit<ChurnResult, "forwarder" | "lanes">> {
  const echoPort = freePort(), fwdPort = freePort();
  const target = background(`${echo} ${echoPort}`);
  const fwd = background(cmd(fwdPort, echoPort));
  try {
    await waitListening(echoPort);
    await waitListening(fwdPort);
    const o = await new Deno.Command(gen, {
      args: [String(fwdPort), String(lanes), String(SECS)],
      stdout: "piped",
      stderr: "inherit",
      signal: AbortSignal.timeout((SECS + 30) * 1000),
    }).output();
    const r = JSON.parse(new TextDecoder().decode(o.stdout));
    return {
      connsPerSec: r.connections / r.seconds,
      p50ms: percentile(r.sample, 50),
      p99ms: percentile(r.sample, 99),
      errors: r.errors,
    };
  } finally {
    await fwd.stop();
    await target.stop();
  }
}

const streams: StreamResult[] = [];
console.log(`One stream: ${MIB} MiB through the forwarder, median of ${RUNS}`);
for (const f of FORWARDERS) {
  if (!f.needs.every(has)) {
    console.log(`  (skipping ${f.name}: not installed)`);
    continue;
  }
  const runsMs: number[] = [];
  for (let i = 0; i < RUNS; i++) runsMs.push(await oneStream(f.cmd));
  const ms = median(runsMs);
  streams.push({
    forwarder: f.name,
    mib: MIB,
    runsMs,
    gbPerSec: (MIB * 1048576) / 1e9 / (ms / 1000),
  });
}
const sd = streams.find((s) => s.forwarder === "denocat forward");
table(
  ["forwarder", "GB/s", "runs (s)", "denocat / forwarder"],
  streams.map((s) => [
    s.forwarder,
    s.gbPerSec.toFixed(2),
    s.runsMs.map((m) => (m / 1000).toFixed(2)).join(" "),
    sd ? (sd.gbPerSec / s.gbPerSec).toFixed(2) + "x" : "-",
  ]),
);

const churns: ChurnResult[] = [];
const gen = await buildC("churn_gen");
const echo = await buildC("echo_server");
if (!gen || !echo) {
  console.log("short connections: no C compiler (cc), skipped");
} else {
  console.log(
    `Short connections through the forwarder to the C epoll echo server: ${SECS} s per case`,
  );
  for (const lanes of LANES) {
    for (const f of FORWARDERS) {
      if (!f.needs.every(has)) continue;
      churns.push({
        forwarder: f.name,
        lanes,
        ...await churn(gen, echo, f.cmd, lanes),
      });
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  table(
    [
      "forwarder",
      "lanes",
      "conns/s",
      "p50 ms",
      "p99 ms",
      "errors",
      "denocat / forwarder",
    ],
    churns.map((r) => {
      const d = churns.find((x) =>
        x.lanes === r.lanes && x.forwarder === "denocat forward"
      );
      return [
        r.forwarder,
        r.lanes,
        Math.round(r.connsPerSec),
        r.p50ms.toFixed(3),
        r.p99ms.toFixed(3),
        r.errors,
        d ? (d.connsPerSec / r.connsPerSec).toFixed(2) + "x" : "-",
      ];
    }),
  );
}
const so = streams.find((s) => s.forwarder === "socat fork");
if (sd && so) {
  console.log(
    `one stream >= 1.0x socat: ${(sd.gbPerSec / so.gbPerSec).toFixed(2)}x ${
      sd.gbPerSec >= so.gbPerSec ? "MET" : "NOT MET"
    }`,
  );
}
for (const lanes of LANES) {
  const d = churns.find((x) =>
    x.lanes === lanes && x.forwarder === "denocat forward"
  );
  const s = churns.find((x) =>
    x.lanes === lanes && x.forwarder === "socat fork"
  );
  if (d && s) {
    console.log(
      `short connections at ${lanes} lanes >= 1.0x socat: ${
        (d.connsPerSec / s.connsPerSec).toFixed(2)
      }x ${d.connsPerSec >= s.connsPerSec ? "MET" : "NOT MET"}`,
    );
  }
}
console.log(
  `results: ${
    saveResults("forward", { mib: MIB, seconds: SECS, streams, churns })
  }`,
);
