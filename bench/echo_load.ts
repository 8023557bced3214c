/**
 * Benchmark 3: TCP echo under load. 10, 100 and 1000 concurrent connections
 * doing 64-byte request/response for a fixed time, driven by load generator
 * processes (bench/load_gen.c, or bench/load_gen.ts without a C compiler):
 * messages/s and p50/p99 latency for
 * `denocat echo` (default threads, and `--threads 2`) beside a Node.js `net`
 * echo server, `ncat --exec /bin/cat` and `socat ... fork EXEC:cat`, plus a
 * small single-threaded C epoll server for reference (denocat's two threads
 * outrunning it shows the generators are not the bottleneck).
 *
 * Usage: deno run -A bench/echo_load.ts [--secs N] [--conns 10,100,1000] [--gens N]
 *        [--only REGEX]   (servers whose name matches; keep "denocat echo" for ratios)
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
    secs: { type: "string", default: "4" },
    conns: { type: "string", default: "10,100,1000" },
    gens: { type: "string", default: "2" },
    generator: { type: "string", default: "c" },
    only: { type: "string" },
  },
});
const SECS = Number(values.secs);
const LEVELS = values.conns.split(",").map(Number);
const GENS = Number(values.gens);
const dc = DENOCAT.map(q).join(" ");

const ceiling = await buildC("echo_server");
// The C generator costs far less CPU than a Deno one, leaving the servers the
// rest of this 2-core machine; bench/load_gen.ts is the portable fallback.
const cGen = values.generator === "c" ? await buildC("load_gen") : undefined;
const genCommand = (port: number, conns: number): [string, string[]] =>
  cGen
    ? [cGen, [String(port), String(conns), String(SECS)]]
    : [Deno.execPath(), [
      "run",
      "-A",
      `${ROOT}bench/load_gen.ts`,
      String(port),
      String(conns),
      String(SECS),
    ]];
const SERVERS: Array<
  { name: string; needs: string[]; cmd: (port: number) => string }
> = [
  { name: "denocat echo", needs: [], cmd: (p) => `${dc} echo 127.0.0.1 ${p}` },
  {
    name: "denocat echo --threads 2",
    needs: [],
    cmd: (p) => `${dc} echo --threads 2 127.0.0.1 ${p}`,
  },
  {
    name: "raw Deno loop",
    needs: [],
    cmd: (p) =>
      `${q(Deno.execPath())} run -A ${q(`${ROOT}bench/raw_echo.ts`)} ${p}`,
  },
  {
    name: "node net",
    needs: ["node"],
    cmd: (p) => `node ${q(`${ROOT}bench/node_echo.cjs`)} ${p}`,
  },
  {
    name: "ncat --exec cat",
    needs: ["ncat"],
    cmd: (p) => `ncat -l -k --max-conns 5000 --exec /bin/cat 127.0.0.1 ${p}`,
  },
  {
    name: "socat fork cat",
    needs: ["socat"],
    cmd: (p) =>
      `socat TCP-LISTEN:${p},bind=127.0.0.1,reuseaddr,fork,backlog=4096 EXEC:cat`,
  },
];
if (ceiling) {
  SERVERS.push({
    name: "C epoll, 1 thread (reference)",
    needs: [],
    cmd: (p) => `${ceiling} ${p}`,
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
  conns: number;
  msgsPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

async function measure(
  cmd: (port: number) => string,
  conns: number,
): Promise<Omit<Result, "server" | "conns">> {
  const port = freePort();
  const server = background(cmd(port));
  try {
    await waitListening(port);
    const per = Math.ceil(conns / GENS);
    const gens = Array.from({ length: GENS }, () => {
      const [cmd, args] = genCommand(port, per);
      return new Deno.Command(cmd, { args, stdout: "piped", stderr: "inherit" })
        .output();
    });
    const outs = await Promise.all(gens);
    let errors = 0, rate = 0;
    const sample: number[] = [];
    for (const o of outs) {
      const r = JSON.parse(new TextDecoder().decode(o.stdout));
      errors += r.errors;
      rate += r.messages / r.seconds;
      for (const x of r.sample) sample.push(x);
    }
    return {
      msgsPerSec: rate,
      p50ms: percentile(sample, 50),
      p99ms: percentile(sample, 99),
      errors,
    };
  } finally {
    await server.stop();
  }
}

const results: Result[] = [];
console.log(
  `TCP echo under load: 64-byte request/response, ${SECS} s per case, ${GENS} ${
    cGen ? "C" : "Deno"
  } generator processes`,
);
for (const conns of LEVELS) {
  for (const s of SERVERS) {
    if (!s.needs.every(has)) {
      console.log(`  (skipping ${s.name}: not installed)`);
      continue;
    }
    results.push({ server: s.name, conns, ...await measure(s.cmd, conns) });
  }
}
const base = (conns: number, name: string) =>
  results.find((r) => r.conns === conns && r.server === name);
table(
  [
    "server",
    "conns",
    "msgs/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "denocat / server",
  ],
  results.map((r) => {
    const d = base(r.conns, "denocat echo")!;
    return [
      r.server,
      r.conns,
      Math.round(r.msgsPerSec),
      r.p50ms.toFixed(3),
      r.p99ms.toFixed(3),
      r.errors,
      (d.msgsPerSec / r.msgsPerSec).toFixed(2) + "x",
    ];
  }),
);
const top = Math.max(...LEVELS);
const n = base(top, "node net"), nc = base(top, "ncat --exec cat");
for (const name of ["denocat echo", "denocat echo --threads 2"]) {
  const d = base(top, name);
  if (d && n) {
    console.log(
      `${name} at ${top}: >= 1.0x node msgs/s: ${
        (d.msgsPerSec / n.msgsPerSec).toFixed(2)
      }x; p99 <= node's: ${d.p99ms.toFixed(2)} vs ${n.p99ms.toFixed(2)} ms`,
    );
  }
  if (d && nc) {
    console.log(
      `${name} at ${top}: >= 5x ncat msgs/s: ${
        (d.msgsPerSec / nc.msgsPerSec).toFixed(1)
      }x`,
    );
  }
}
// A partial run (--only) must not replace the full results the README and
// the chart are drawn from.
console.log(
  `results: ${
    saveResults(values.only ? "echo_load.partial" : "echo_load", {
      seconds: SECS,
      generators: GENS,
      generator: cGen ? "c" : "deno",
      ...(values.only ? { only: values.only } : {}),
      results,
    })
  }`,
);
