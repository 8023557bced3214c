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
 * Then the scale runs: `denocat echo`, Node and the C server at 1,000, 4,000
 * and 10,000 connections, several rounds in alternating order, each round's
 * ratios taken within the round, and their medians. Every case also reports
 * the server's CPU time per message and the cores it and the generators
 * kept busy (so a case bound by the generators, or by other load on the
 * machine, shows as such), and the machine's backlog drops, retransmissions
 * and retransmission timeouts over the window.
 *
 * Usage: deno run -A bench/echo_load.ts [--secs N] [--conns 10,100,1000] [--gens N]
 *        [--scale 1000,4000,10000] [--rounds 3] [--pin yes|no]
 *        [--only REGEX]   (servers whose name matches; keep "denocat echo" for ratios)
 *        [--server NAME=COMMAND]   (another server, {port} in COMMAND; repeatable)
 *   --conns "" or --scale "" skips that part. --pin yes runs the scale cases
 *   with the server on CPU 0 and the generators on CPU 1 (taskset).
 */
import { parseArgs } from "node:util";
import {
  background,
  buildC,
  cpuSeconds,
  DENOCAT,
  freePort,
  has,
  median,
  netLoss,
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
    scale: { type: "string", default: "1000,4000,10000" },
    rounds: { type: "string", default: "3" },
    // "yes": scale runs with the server on CPU 0 and the generators on
    // CPU 1 (taskset); "no": the scheduler places them, as in the table.
    pin: { type: "string", default: "no" },
    // Experiments: another server, "NAME=COMMAND" with {port} in COMMAND;
    // measured in the table and at scale.
    server: { type: "string", multiple: true },
  },
});
const SECS = Number(values.secs);
const LEVELS = values.conns.split(",").filter(Boolean).map(Number);
const GENS = Number(values.gens);
const SCALE = values.scale.split(",").filter(Boolean).map(Number);
const ROUNDS = Number(values.rounds);
const PIN = values.pin === "yes" && has("taskset") &&
  navigator.hardwareConcurrency >= 2;
/** The servers measured at scale (ncat and socat fork a process per connection). */
const SCALE_SERVERS = [
  "denocat echo",
  "denocat echo --threads 2",
  "node net",
  "C epoll, 1 thread (reference)",
];
const dc = DENOCAT.map(q).join(" ");

const ceiling = await buildC("echo_server");
// The C generator costs far less CPU than a Deno one, leaving the servers the
// rest of this 2-core machine; bench/load_gen.ts is the portable fallback.
const cGen = values.generator === "c" ? await buildC("load_gen") : undefined;
const genCommand = (
  port: number,
  conns: number,
  pin: boolean,
): [string, string[]] =>
  pin
    ? ["taskset", ["-c", "1", ...genCommand(port, conns, false).flat()]]
    : cGen
    ? [cGen, [String(port), String(conns), String(SECS), "64", "wait"]]
    : [Deno.execPath(), [
      "run",
      "-A",
      `${ROOT}bench/load_gen.ts`,
      String(port),
      String(conns),
      String(SECS),
    ]];
const SERVERS: Array<{
  name: string;
  needs: string[];
  cmd: (port: number) => string;
  /** Echoes in child processes, which the server's CPU time leaves out. */
  forks?: boolean;
}> = [
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
    forks: true,
    cmd: (p) => `ncat -l -k --max-conns 5000 --exec /bin/cat 127.0.0.1 ${p}`,
  },
  {
    name: "socat fork cat",
    needs: ["socat"],
    forks: true,
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

for (const spec of values.server ?? []) {
  const at = spec.indexOf("=");
  const name = spec.slice(0, at), command = spec.slice(at + 1);
  SERVERS.push({
    name,
    needs: [],
    cmd: (p) => command.replaceAll("{port}", String(p)),
  });
  SCALE_SERVERS.push(name);
}
if (values.only) {
  const keep = new RegExp(values.only);
  SERVERS.splice(
    0,
    SERVERS.length,
    ...SERVERS.filter((s) => keep.test(s.name)),
  );
}

interface Sample {
  msgsPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  /** Server CPU µs per message over the window (C generator only). */
  serverUsPerMsg?: number;
  /** The generators' CPU seconds per second of window, summed (C generator only). */
  genCpu?: number;
  /**
   * Over the window, machine-wide: packets dropped at a full input backlog,
   * TCP retransmissions and retransmission timeouts (see netLoss).
   */
  loss?: { backlogDrops: number; retrans: number; rto: number };
}
interface Result extends Sample {
  server: string;
  conns: number;
}

/** Reads `stream` line by line, calling `each`; resolves at its end. */
async function lines(
  stream: ReadableStream<Uint8Array>,
  each: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    parts.forEach(each);
  }
  if (rest) each(rest);
}

async function measure(
  cmd: (port: number) => string,
  conns: number,
  pin = false,
): Promise<Sample> {
  const port = freePort();
  const server = background(pin ? `taskset -c 0 ${cmd(port)}` : cmd(port), {
    files: true,
  });
  try {
    await waitListening(port);
    const per = Math.ceil(conns / GENS);
    // The C generators open their connections, say "ready" and wait: the
    // window opens for all of them at once, with every connection up.
    const gens = Array.from({ length: GENS }, () => {
      const [cmd, args] = genCommand(port, per, pin);
      return new Deno.Command(cmd, {
        args,
        stdin: cGen ? "piped" : "null",
        stdout: "piped",
        stderr: cGen ? "piped" : "inherit",
      }).spawn();
    });
    // No case may hang the suite: setup of 10,000 connections takes a few
    // seconds; far beyond that something is stuck.
    const killer = setTimeout(() => {
      for (const g of gens) {
        try {
          g.kill("SIGKILL");
        } catch { /* exited */ }
      }
    }, (SECS + 120) * 1000);
    let ready = 0, cpu0: number | undefined;
    let loss0: ReturnType<typeof netLoss> | undefined;
    const watched = cGen
      ? gens.map((g) =>
        lines(g.stderr, (line) => {
          if (line === "ready") {
            if (++ready === GENS) {
              for (const h of gens) {
                const w = h.stdin.getWriter();
                w.write(new Uint8Array([10])).finally(() => w.close());
              }
            }
          } else if (line === "window") {
            cpu0 ??= cpuSeconds(server.pid);
            loss0 ??= netLoss();
          } else console.error(line);
        })
      )
      : [];
    const outs = await Promise.all(gens.map(async (g) => {
      const [out, status] = await Promise.all([
        new Response(g.stdout).arrayBuffer(),
        g.status,
      ]);
      return { stdout: new Uint8Array(out), ...status };
    }));
    await Promise.all(watched);
    clearTimeout(killer);
    const cpu1 = cpuSeconds(server.pid);
    const loss1 = netLoss();
    let errors = 0, rate = 0, messages = 0, genCpu = 0, secs = 0;
    const sample: number[] = [];
    for (const o of outs) {
      if (!o.success) throw new Error(`load generator failed (${o.code})`);
      const r = JSON.parse(new TextDecoder().decode(o.stdout));
      errors += r.errors;
      rate += r.messages / r.seconds;
      messages += r.messages;
      secs = Math.max(secs, r.seconds);
      if (typeof r.cpu === "number") genCpu += r.cpu / r.seconds;
      for (const x of r.sample) sample.push(x);
    }
    return {
      msgsPerSec: rate,
      p50ms: percentile(sample, 50),
      p99ms: percentile(sample, 99),
      errors,
      ...(cpu0 !== undefined && messages > 0
        ? { serverUsPerMsg: ((cpu1 - cpu0) / messages) * 1e6, genCpu }
        : {}),
      ...(loss0
        ? {
          loss: {
            backlogDrops: loss1.backlogDrops - loss0.backlogDrops,
            retrans: loss1.retrans - loss0.retrans,
            rto: loss1.rto - loss0.rto,
          },
        }
        : {}),
    };
  } finally {
    await server.stop();
  }
}

const results: Result[] = [];
const runnable = SERVERS.filter((s) => {
  if (s.needs.every(has)) return true;
  console.log(`  (skipping ${s.name}: not installed)`);
  return false;
});
console.log(
  `TCP echo under load: 64-byte request/response, ${SECS} s per case, ${GENS} ${
    cGen ? "C" : "Deno"
  } generator processes`,
);
for (const conns of LEVELS) {
  for (const s of runnable) {
    const r = await measure(s.cmd, conns);
    if (s.forks) delete r.serverUsPerMsg;
    results.push({ server: s.name, conns, ...r });
  }
}
const us = (r: Sample) =>
  r.serverUsPerMsg === undefined ? "-" : r.serverUsPerMsg.toFixed(2);
/** Cores the server kept busy over the window. */
const cores = (r: Sample) =>
  r.serverUsPerMsg === undefined
    ? "-"
    : (r.serverUsPerMsg * r.msgsPerSec / 1e6).toFixed(2);
const gcpu = (r: Sample) => r.genCpu === undefined ? "-" : r.genCpu.toFixed(2);
const base = (conns: number, name: string) =>
  results.find((r) => r.conns === conns && r.server === name);
if (results.length) {
  table(
    [
      "server",
      "conns",
      "msgs/s",
      "p50 ms",
      "p99 ms",
      "errors",
      "server µs/msg",
      "gen cores",
      "denocat / server",
    ],
    results.map((r) => {
      const d = base(r.conns, "denocat echo");
      return [
        r.server,
        r.conns,
        Math.round(r.msgsPerSec),
        r.p50ms.toFixed(3),
        r.p99ms.toFixed(3),
        r.errors,
        us(r),
        gcpu(r),
        d ? (d.msgsPerSec / r.msgsPerSec).toFixed(2) + "x" : "-",
      ];
    }),
  );
}

// Scale: the same few servers at many connections, ROUNDS times with the
// order alternating, each round's ratios taken within that round; medians.
const scaleServers = runnable.filter((s) => SCALE_SERVERS.includes(s.name));
const scale: Result[][] = [];
if (SCALE.length && scaleServers.length) {
  console.log(
    `\nScale: ${
      SCALE.join(", ")
    } connections, ${ROUNDS} alternating rounds of ${
      scaleServers.map((s) => s.name).join(", ")
    }`,
  );
}
for (let round = 0; round < ROUNDS && scaleServers.length; round++) {
  const order = round % 2 ? [...scaleServers].reverse() : scaleServers;
  const got: Result[] = [];
  for (const conns of SCALE) {
    for (const s of order) {
      const r = {
        server: s.name,
        conns,
        ...await measure(s.cmd, conns, PIN),
      };
      got.push(r);
      console.log(
        `  round ${round + 1}  ${s.name.padEnd(30)} ${
          String(conns).padStart(5)
        }  ${Math.round(r.msgsPerSec)} msgs/s  p99 ${r.p99ms.toFixed(2)} ms  ${
          us(r)
        } µs/msg  server ${cores(r)} cores  gen ${gcpu(r)} cores  ${
          r.loss
            ? `drops ${r.loss.backlogDrops} retrans ${r.loss.retrans} rto ${r.loss.rto}`
            : ""
        }`,
      );
    }
  }
  scale.push(got);
}
interface Summary {
  server: string;
  conns: number;
  msgsPerSec: number;
  p50ms: number;
  p99ms: number;
  serverUsPerMsg?: number;
  /** Median over rounds of denocat's msgs/s over this server's, same round. */
  denocatRatio?: number;
  /** Median over rounds of denocat's p99 over this server's, same round. */
  denocatP99Ratio?: number;
}
const summary: Summary[] = [];
for (const conns of SCALE) {
  for (const s of scaleServers) {
    const runs = scale.map((g) =>
      g.find((r) => r.conns === conns && r.server === s.name)!
    );
    const mine = scale.map((g) =>
      g.find((r) => r.conns === conns && r.server === "denocat echo")
    );
    const pairs = runs.map((r, i) => [mine[i], r] as const).filter((
      p,
    ): p is readonly [Result, Result] => p[0] !== undefined);
    const cpu = runs.map((r) => r.serverUsPerMsg).filter((x) =>
      x !== undefined
    );
    summary.push({
      server: s.name,
      conns,
      msgsPerSec: median(runs.map((r) => r.msgsPerSec)),
      p50ms: median(runs.map((r) => r.p50ms)),
      p99ms: median(runs.map((r) => r.p99ms)),
      ...(cpu.length ? { serverUsPerMsg: median(cpu) } : {}),
      ...(pairs.length
        ? {
          denocatRatio: median(
            pairs.map(([d, r]) => d.msgsPerSec / r.msgsPerSec),
          ),
          denocatP99Ratio: median(pairs.map(([d, r]) => d.p99ms / r.p99ms)),
        }
        : {}),
    });
  }
}
if (summary.length) {
  console.log(`\nScale, medians of ${ROUNDS} rounds:`);
  table(
    [
      "server",
      "conns",
      "msgs/s",
      "p50 ms",
      "p99 ms",
      "server µs/msg",
      "denocat / server",
      "denocat p99 / server's",
    ],
    summary.map((r) => [
      r.server,
      r.conns,
      Math.round(r.msgsPerSec),
      r.p50ms.toFixed(3),
      r.p99ms.toFixed(3),
      r.serverUsPerMsg?.toFixed(2) ?? "-",
      r.denocatRatio?.toFixed(2).concat("x") ?? "-",
      r.denocatP99Ratio?.toFixed(2).concat("x") ?? "-",
    ]),
  );
  for (const conns of SCALE) {
    const n = summary.find((r) => r.conns === conns && r.server === "node net");
    if (n?.denocatRatio === undefined) continue;
    const ok = n.denocatRatio >= 1.3 && n.denocatP99Ratio! <= 1;
    console.log(
      `denocat echo at ${conns}: >= 1.3x node msgs/s with p99 no worse: ${
        n.denocatRatio.toFixed(2)
      }x, p99 ${n.denocatP99Ratio!.toFixed(2)}x node's (${
        ok ? "met" : "NOT met"
      })`,
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
      pinned: PIN,
      ...(values.only ? { only: values.only } : {}),
      load: Deno.loadavg(),
      results,
      scale: { rounds: scale, summary },
    })
  }`,
);
