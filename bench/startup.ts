/**
 * Benchmark 5: startup. `denocat --version` beside a trivial `deno run`
 * script and `nc -h`, median wall time over many runs.
 *
 * Usage: deno run -A bench/startup.ts [--runs N]
 */
import { parseArgs } from "node:util";
import { CLI, has, median, saveResults, table } from "./_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "30" } },
});
const RUNS = Number(values.runs);
const trivial = await Deno.makeTempFile({ suffix: ".ts" });
await Deno.writeTextFile(trivial, 'console.log("hi");\n');

async function time(cmd: string, args: string[]): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < RUNS + 2; i++) {
    const t0 = performance.now();
    await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" })
      .output();
    if (i >= 2) samples.push(performance.now() - t0); // two warm-up runs
  }
  return median(samples);
}

const results: Record<string, number> = {
  "denocat --version": await time(Deno.execPath(), [
    "run",
    "-A",
    CLI,
    "--version",
  ]),
  "denocat echo --help": await time(Deno.execPath(), [
    "run",
    "-A",
    CLI,
    "echo",
    "--help",
  ]),
  "deno run trivial.ts": await time(Deno.execPath(), ["run", trivial]),
};
if (has("nc")) results["nc -h"] = await time("nc", ["-h"]);
await Deno.remove(trivial);
const trivialMs = results["deno run trivial.ts"]!;
console.log(`Startup: median of ${RUNS} runs`);
table(
  ["command", "ms", "/ trivial deno run"],
  Object.entries(results).map((
    [k, v],
  ) => [k, v.toFixed(1), (v / trivialMs).toFixed(2) + "x"]),
);
const ratio = results["denocat --version"]! / trivialMs;
console.log(
  `target: denocat --version <= 2.0x a trivial deno run: ${ratio.toFixed(2)}x ${
    ratio <= 2 ? "MET" : "NOT MET"
  }`,
);
console.log(
  `results: ${saveResults("startup", { runs: RUNS, medianMs: results })}`,
);
