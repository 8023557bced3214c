/**
 * Benchmark 7: short connections. Generator lanes each repeat connect, send
 * 64 bytes, read the 64 bytes back, close, as fast as they can for a fixed
 * time (bench/churn_gen.c): connections/s and the p50/p99 time of one whole
 * connection, for `denocat echo` beside a Node.js `net` echo server, socat
 * `fork` and the single-threaded C epoll server as a reference; and, a
 * process per connection, `denocat -l -k -c cat` beside `ncat -l -k -c cat`
 * and socat `fork EXEC:cat`.
 *
 * Each case runs `--rounds` times, the servers in alternating order; the
 * table holds the medians (conns/s, p50, p99) and the ratios are taken
 * within each round, then their median.
 *
 * Usage: deno run -A bench/churn.ts [--secs N] [--lanes 16,128] [--gens N]
 *        [--rounds 3] [--only REGEX]
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
    rounds: { type: "string", default: "3" },
    only: { type: "string" },
  },
});
const SECS = Number(values.secs);
const LEVELS = values.lanes.split(",").map(Number);
const GENS = Number(values.gens);
const ROUNDS = Math.max(1, Number(values.rounds));
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
  // A process per connection: far below the echo servers by nature; the
  // comparison is with the other tools that exec per connection.
  {
    name: "denocat -l -k -c cat",
    needs: [],
    cmd: (p) => `${dc} -l -k -c cat 127.0.0.1 ${p}`,
  },
  {
    name: "ncat -l -k -c cat",
    needs: ["ncat"],
    cmd: (p) => `ncat -l -k --max-conns 5000 -c cat 127.0.0.1 ${p}`,
  },
  {
    name: "socat fork EXEC:cat",
    needs: ["socat"],
    cmd: (p) =>
      `socat TCP-LISTEN:${p},bind=127.0.0.1,reuseaddr,fork,backlog=4096 EXEC:cat`,
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
  `Short connections: connect, 64 bytes each way, close; ${SECS} s per case, ${GENS} C generator process(es), ${ROUNDS} round(s)`,
);
const runnable = SERVERS.filter((s) => {
  if (s.needs.every(has)) return true;
  console.log(`  (skipping ${s.name}: not installed)`);
  return false;
});
const rounds: Result[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 ? [...runnable].reverse() : runnable;
  const got: Result[] = [];
  for (const lanes of LEVELS) {
    for (const s of order) {
      got.push({ server: s.name, lanes, ...await measure(s.cmd, lanes) });
      // Let TIME_WAIT sockets of the previous case drain a little.
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  rounds.push(got);
}
interface Summary extends Result {
  /** Median over rounds of denocat echo's conns/s over this server's. */
  denocatRatio?: number;
}
const results: Summary[] = [];
for (const lanes of LEVELS) {
  for (const s of runnable) {
    const runs = rounds.map((g) =>
      g.find((r) => r.lanes === lanes && r.server === s.name)!
    );
    const ratios = rounds.flatMap((g) => {
      const d = g.find((r) => r.lanes === lanes && r.server === "denocat echo");
      const r = g.find((r) => r.lanes === lanes && r.server === s.name)!;
      return d ? [d.connsPerSec / r.connsPerSec] : [];
    });
    results.push({
      server: s.name,
      lanes,
      connsPerSec: median(runs.map((r) => r.connsPerSec)),
      p50ms: median(runs.map((r) => r.p50ms)),
      p99ms: median(runs.map((r) => r.p99ms)),
      errors: runs.reduce((n, r) => n + r.errors, 0),
      ...(ratios.length ? { denocatRatio: median(ratios) } : {}),
    });
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
    "denocat echo / server",
  ],
  results.map((r) => [
    r.server,
    r.lanes,
    Math.round(r.connsPerSec),
    r.p50ms.toFixed(3),
    r.p99ms.toFixed(3),
    r.errors,
    r.denocatRatio === undefined ? "-" : r.denocatRatio.toFixed(2) + "x",
  ]),
);
for (const lanes of LEVELS) {
  const d = find(lanes, "denocat echo"), n = find(lanes, "node net");
  if (d && n) {
    console.log(
      `denocat echo at ${lanes} lanes: >= 1.0x node conns/s: ${
        n.denocatRatio!.toFixed(2)
      }x ${n.denocatRatio! >= 1 ? "MET" : "NOT MET"}; p99 <= node's: ${
        d.p99ms.toFixed(2)
      } vs ${n.p99ms.toFixed(2)} ms ${d.p99ms <= n.p99ms ? "MET" : "NOT MET"}`,
    );
  }
  const x = find(lanes, "denocat -l -k -c cat");
  for (const other of ["ncat -l -k -c cat", "socat fork EXEC:cat"]) {
    const o = find(lanes, other);
    if (x && o) {
      console.log(
        `denocat -l -k -c cat at ${lanes} lanes: ${
          (x.connsPerSec / o.connsPerSec).toFixed(2)
        }x ${other}'s conns/s (medians)`,
      );
    }
  }
}
console.log(
  `results: ${
    saveResults(values.only ? "churn.partial" : "churn", {
      seconds: SECS,
      generators: GENS,
      rounds,
      results,
    })
  }`,
);
