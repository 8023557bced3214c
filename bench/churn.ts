/**
 * Benchmark 7: short connections. Generator lanes each repeat connect, send
 * 64 bytes, read the 64 bytes back, close, as fast as they can for a fixed
 * time (bench/churn_gen.c): connections/s and the p50/p99 time of one whole
 * connection, for `denocat echo` beside a Node.js `net` echo server, socat
 * `fork` and the single-threaded C epoll server as a reference.
 *
 * Usage: deno run -A bench/churn.ts [--secs N] [--lanes 16,128] [--gens N] [--only REGEX]
 */
import { parseArgs } from "node:util";
import {
  background,
  buildC,
  DENOCAT,
  freePort,
  has,
  percentile,
  q,
  ROOT,
  saveResults,
  table,
  waitListening,
} from "./_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    secs: { type: "string", default: "3" },
    lanes: { type: "string", default: "16,128" },
    gens: { type: "string", default: "1" },
    only: { type: "string" },
  },
});
const SECS = Number(values.secs);
const LEVELS = values.lanes.split(",").map(Number);
const GENS = Number(values.gens);
const dc = DENOCAT.map(q).join(" ");

const gen = await buildC("churn_gen");
if (!gen) {
  console.log("churn: no C compiler (cc), skipped");
  Deno.exit(0);
}
const reference = await buildC("echo_server");

const SERVERS: Array<
  { name: string; needs: string[]; cmd: (port: number) => string }
> = [
  { name: "denocat echo", needs: [], cmd: (p) => `${dc} echo 127.0.0.1 ${p}` },
  {
    name: "node net",
    needs: ["node"],
    cmd: (p) => `node ${q(`${ROOT}bench/node_echo.cjs`)} ${p}`,
  },
  {
    name: "socat fork PIPE",
    needs: ["socat"],
    cmd: (p) =>
      `socat TCP-LISTEN:${p},bind=127.0.0.1,reuseaddr,fork,backlog=4096 PIPE`,
  },
];
if (reference) {
  SERVERS.push({
    name: "C epoll, 1 thread (reference)",
    needs: [],
    cmd: (p) => `${reference} ${p}`,
  });
}
if (values.only) {
  const keep = new RegExp(values.only);
  SERVERS.splice(
    0,
    SERVERS.length,
    ...SERVERS.filter((s) => keep.test(s.name)),
  );
}

interface Result {
  server: string;
  lanes: number;
  connsPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

async function measure(
  cmd: (port: number) => string,
  lanes: number,
): Promise<Omit<Result, "server" | "lanes">> {
  const port = freePort();
  const server = background(cmd(port));
  try {
    await waitListening(port);
    const per = Math.ceil(lanes / GENS);
    const outs = await Promise.all(
      Array.from({ length: GENS }, () =>
        new Deno.Command(gen!, {
          args: [String(port), String(per), String(SECS)],
          stdout: "piped",
          stderr: "inherit",
          signal: AbortSignal.timeout((SECS + 30) * 1000),
        }).output()),
    );
    let errors = 0, rate = 0;
    const sample: number[] = [];
    for (const o of outs) {
      const r = JSON.parse(new TextDecoder().decode(o.stdout));
      errors += r.errors;
      rate += r.connections / r.seconds;
      for (const x of r.sample) sample.push(x);
    }
    return {
      connsPerSec: rate,
      p50ms: percentile(sample, 50),
      p99ms: percentile(sample, 99),
      errors,
    };
  } finally {
    await server.stop();
  }
}

console.log(
  `Short connections: connect, 64 bytes each way, close; ${SECS} s per case, ${GENS} C generator process(es)`,
);
const results: Result[] = [];
for (const lanes of LEVELS) {
  for (const s of SERVERS) {
    if (!s.needs.every(has)) {
      console.log(`  (skipping ${s.name}: not installed)`);
      continue;
    }
    results.push({ server: s.name, lanes, ...await measure(s.cmd, lanes) });
    // Let TIME_WAIT sockets of the previous case drain a little.
    await new Promise((r) => setTimeout(r, 500));
  }
}
const find = (lanes: number, name: string) =>
  results.find((r) => r.lanes === lanes && r.server === name);
table(
  [
    "server",
    "lanes",
    "conns/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "denocat / server",
  ],
  results.map((r) => {
    const d = find(r.lanes, "denocat echo");
    return [
      r.server,
      r.lanes,
      Math.round(r.connsPerSec),
      r.p50ms.toFixed(3),
      r.p99ms.toFixed(3),
      r.errors,
      d ? (d.connsPerSec / r.connsPerSec).toFixed(2) + "x" : "-",
    ];
  }),
);
for (const lanes of LEVELS) {
  const d = find(lanes, "denocat echo"), n = find(lanes, "node net");
  if (d && n) {
    console.log(
      `denocat echo at ${lanes} lanes: >= 1.0x node conns/s: ${
        (d.connsPerSec / n.connsPerSec).toFixed(2)
      }x ${
        d.connsPerSec >= n.connsPerSec ? "MET" : "NOT MET"
      }; p99 <= node's: ${d.p99ms.toFixed(2)} vs ${n.p99ms.toFixed(2)} ms ${
        d.p99ms <= n.p99ms ? "MET" : "NOT MET"
      }`,
    );
  }
}
console.log(
  `results: ${
    saveResults(values.only ? "churn.partial" : "churn", {
      seconds: SECS,
      generators: GENS,
      results,
    })
  }`,
);
