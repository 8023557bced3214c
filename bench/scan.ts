/**
 * Benchmark 8: a TCP connect scan of every port of 127.0.0.1 (65,535), with a
 * few listeners opened by the benchmark itself: wall time and peak memory of
 * `denocat probe 127.0.0.1 1-65535` beside `nc -z` (OpenBSD, sequential) and
 * `nmap -sT -p- -n -Pn`, in alternating rounds; median of the rounds. Also
 * checks that denocat reported every listener open and no port timed out.
 *
 * Usage: deno run -A bench/scan.ts [--rounds N]
 */
import { parseArgs } from "node:util";
import { DENOCAT, has, median, q, saveResults, table } from "./_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "3" } },
});
const ROUNDS = Number(values.rounds);
const dc = DENOCAT.map(q).join(" ");

// Eleven listeners, as in the issue's measurement.
const listeners = Array.from(
  { length: 11 },
  () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
);
const ours = listeners.map((l) => l.addr.port);

const TOOLS: Array<{ name: string; needs: string; cmd: string }> = [
  {
    name: "denocat probe",
    needs: "deno",
    cmd: `${dc} probe --json 127.0.0.1 1-65535`,
  },
  { name: "nc -z", needs: "nc", cmd: "nc -z 127.0.0.1 1-65535" },
  {
    name: "nmap -sT -p- -n -Pn",
    needs: "nmap",
    cmd: "nmap -sT -p- -n -Pn -oG - 127.0.0.1",
  },
];

/** Runs `sh -c cmd` under GNU time; wall ms, peak RSS KB and stdout. */
async function timed(cmd: string) {
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%e %M", "sh", "-c", cmd],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const last = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)!;
  const [secs, kb] = last.split(" ").map(Number);
  return {
    ms: secs! * 1000,
    kb: kb!,
    stdout: new TextDecoder().decode(out.stdout),
  };
}

const samples: Record<string, { ms: number[]; kb: number[] }> = {};
let checked = "";
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
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of tools) {
      const r = await timed(t.cmd);
      (samples[t.name] ??= { ms: [], kb: [] }).ms.push(r.ms);
      samples[t.name]!.kb.push(r.kb);
      if (t.name === "denocat probe" && round === 0) {
        const report = JSON.parse(r.stdout);
        const open = new Set(
          report.open.map((o: { port: number }) => o.port),
        );
        const missing = ours.filter((p) => !open.has(p));
        checked =
          `denocat: ${report.scanned} ports, ${report.open.length} open (all ${ours.length} of ours: ${
            missing.length ? `NO, missing ${missing}` : "yes"
          }), ${report.timeout} timed out, ${report.error} errors`;
      }
    }
  }
} finally {
  for (const l of listeners) l.close();
}

const med = Object.fromEntries(
  Object.entries(samples).map((
    [k, v],
  ) => [k, { ms: median(v.ms), kb: median(v.kb) }]),
);
const d = med["denocat probe"];
console.log(
  `Connect scan of 127.0.0.1 ports 1-65535, ${ROUNDS} alternating rounds, median`,
);
table(
  ["tool", "seconds", "peak RSS MB", "denocat time / tool"],
  Object.entries(med).map(([name, r]) => [
    name,
    (r.ms / 1000).toFixed(2),
    (r.kb / 1024).toFixed(1),
    d ? (d.ms / r.ms).toFixed(2) + "x" : "-",
  ]),
);
console.log(checked);
const nc = med["nc -z"], nmap = med["nmap -sT -p- -n -Pn"];
if (d && nc) {
  console.log(
    `denocat <= 0.5x nc -z time: ${(d.ms / nc.ms).toFixed(2)}x ${
      d.ms <= 0.5 * nc.ms ? "MET" : "NOT MET"
    }`,
  );
}
if (d && nmap) {
  console.log(
    `denocat faster than nmap -sT: ${(d.ms / nmap.ms).toFixed(2)}x ${
      d.ms < nmap.ms ? "MET" : "NOT MET"
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
    saveResults("scan", { rounds: ROUNDS, samples, median: med, checked })
  }`,
);
