/**
 * Benchmark 8: a TCP connect scan of every port of 127.0.0.1 (65,535), with a
 * few listeners opened by the benchmark itself: wall time, CPU time and peak
 * memory of `denocat probe 127.0.0.1 1-65535` beside `nc -z` (OpenBSD,
 * sequential), `nmap -sT -p- -n -Pn` and the floor (bench/scan_floor.c:
 * blocking connects in C on one and on two threads), in alternating rounds.
 * Ratios are taken within each round, then the median over rounds, so a
 * machine busy with other work moves both sides of a ratio alike. Also
 * checks that denocat reported every listener open and no port timed out,
 * and prints the load average before and after: the lead's figures come
 * from a quiet machine.
 *
 * Usage: deno run -A bench/scan.ts [--rounds N]
 */
import { parseArgs } from "node:util";
import {
  buildC,
  DENOCAT,
  has,
  median,
  q,
  saveResults,
  table,
} from "./_util.ts";
import { ConnectRing } from "../lib/native/_connect_ring.ts";
import { libc, sockaddrOf } from "../lib/native/libc.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "5" } },
});
const ROUNDS = Number(values.rounds);
const dc = DENOCAT.map(q).join(" ");
const floor = await buildC("scan_floor");

// Eleven listeners, as in the issue's measurement.
const listeners = Array.from(
  { length: 11 },
  () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
);
const ours = listeners.map((l) => l.addr.port);

const DENOCAT_NAME = "denocat probe";
const TOOLS: Array<{ name: string; needs: string; cmd: string }> = [
  {
    name: DENOCAT_NAME,
    needs: "deno",
    cmd: `${dc} probe --json 127.0.0.1 1-65535`,
  },
  { name: "nc -z", needs: "nc", cmd: "nc -z 127.0.0.1 1-65535" },
  {
    name: "nmap -sT -p- -n -Pn",
    needs: "nmap",
    cmd: "nmap -sT -p- -n -Pn -oG - 127.0.0.1",
  },
  ...(floor
    ? [
      { name: "C floor, 1 thread", needs: "cc", cmd: `${q(floor)} 1` },
      { name: "C floor, 2 threads", needs: "cc", cmd: `${q(floor)} 2` },
    ]
    : []),
];

/**
 * Runs `sh -c cmd` under GNU time: wall ms (timed here: GNU time's own
 * figure has 10 ms steps, 5% of a 0.2 s scan), CPU ms, peak RSS KB, stdout.
 * The wall time includes starting `time` and `sh`, alike for every tool.
 */
async function timed(cmd: string) {
  const start = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%U %S %M", "sh", "-c", cmd],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const ms = performance.now() - start;
  const last = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)!;
  const [user, sys, kb] = last.split(" ").map(Number);
  return {
    ms,
    cpuMs: (user! + sys!) * 1000,
    kb: kb!,
    stdout: new TextDecoder().decode(out.stdout),
  };
}

const loadavg = () => Deno.readTextFileSync("/proc/loadavg").split(" ", 3);

/** Whether this kernel runs the scan's io_uring helper (else: one worker). */
function ringAvailable(): boolean {
  const c = libc();
  const ring = c && ConnectRing.open(c, sockaddrOf("127.0.0.1", 0)!, 4);
  ring?.close();
  return !!ring;
}

type Samples = { ms: number[]; cpuMs: number[]; kb: number[] };
const samples: Record<string, Samples> = {};
/** Per round: denocat's wall time divided by each tool's. */
const ratios: Record<string, number[]> = {};
let checked = "";
const loadBefore = loadavg();
try {
  if (!has("/usr/bin/time")) {
    console.log("scan: /usr/bin/time (GNU time) is needed, skipped");
    Deno.exit(0);
  }
  const tools = TOOLS.filter((t) => has(t.needs));
  for (const t of TOOLS) {
    if (!tools.includes(t)) {
      console.log(`  (skipping ${t.name}: not installed)`);
    }
  }
  if (!floor) console.log("  (skipping the C floor: no C compiler)");
  for (let round = 0; round < ROUNDS; round++) {
    const ms: Record<string, number> = {};
    for (const t of tools) {
      const r = await timed(t.cmd);
      const s = samples[t.name] ??= { ms: [], cpuMs: [], kb: [] };
      s.ms.push(r.ms);
      s.cpuMs.push(r.cpuMs);
      s.kb.push(r.kb);
      ms[t.name] = r.ms;
      if (t.name === DENOCAT_NAME) {
        const report = JSON.parse(r.stdout);
        const open = new Set(
          report.open.map((o: { port: number }) => o.port),
        );
        const missing = ours.filter((p) => !open.has(p));
        if (round === 0 || missing.length || report.timeout || report.error) {
          checked =
            `denocat: ${report.scanned} ports, ${report.open.length} open (all ${ours.length} of ours: ${
              missing.length ? `NO, missing ${missing}` : "yes"
            }), ${report.timeout} timed out, ${report.error} errors`;
        }
      }
    }
    for (const [name, t] of Object.entries(ms)) {
      (ratios[name] ??= []).push(ms[DENOCAT_NAME]! / t);
    }
  }
} finally {
  for (const l of listeners) l.close();
}
const loadAfter = loadavg();

const med = Object.fromEntries(
  Object.entries(samples).map(([k, v]) => [k, {
    ms: median(v.ms),
    cpuMs: median(v.cpuMs),
    kb: median(v.kb),
    ratio: ratios[k] ? median(ratios[k]!) : undefined,
  }]),
);
console.log(
  `Connect scan of 127.0.0.1 ports 1-65535, ${ROUNDS} alternating rounds, median (load average ${
    loadBefore.join(" ")
  } before, ${loadAfter.join(" ")} after)`,
);
table(
  ["tool", "seconds", "CPU s", "peak RSS MB", "denocat time / tool"],
  Object.entries(med).map(([name, r]) => [
    name,
    (r.ms / 1000).toFixed(3),
    (r.cpuMs / 1000).toFixed(2),
    (r.kb / 1024).toFixed(1),
    r.ratio !== undefined ? r.ratio.toFixed(2) + "x" : "-",
  ]),
);
const ring = ringAvailable();
console.log(
  `denocat's second core: ${
    ring ? "io_uring SQPOLL ring" : "one worker thread (no io_uring here)"
  }`,
);
console.log(checked);
const d = med[DENOCAT_NAME];
const nc = med["nc -z"], nmap = med["nmap -sT -p- -n -Pn"];
if (d && nc) {
  console.log(
    `denocat <= 0.5x nc -z time: ${nc.ratio!.toFixed(2)}x ${
      nc.ratio! <= 0.5 ? "MET" : "NOT MET"
    }`,
  );
}
if (d && nmap) {
  console.log(
    `denocat faster than nmap -sT: ${nmap.ratio!.toFixed(2)}x ${
      nmap.ratio! < 1 ? "MET" : "NOT MET"
    }`,
  );
}
if (d) {
  console.log(
    `denocat peak RSS <= 60 MB: ${(d.kb / 1024).toFixed(1)} MB ${
      d.kb / 1024 <= 60 ? "MET" : "NOT MET"
    }`,
  );
}
console.log(
  `results: ${
    saveResults("scan", {
      rounds: ROUNDS,
      load: { before: loadBefore, after: loadAfter },
      secondCore: ring ? "io_uring SQPOLL ring" : "worker",
      samples,
      ratios,
      median: med,
      checked,
    })
  }`,
);
