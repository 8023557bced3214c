/**
 * `deno task bench`: the whole suite, one case after another (each bounds
 * its own time and stops what it started), then the chart.
 *
 *   1. raw TCP pipe + 6. memory   bench/pipe.ts
 *   2. verified transfer          bench/transfer.ts
 *   3. TCP echo under load        bench/echo_load.ts
 *   4. UDP echo and probe RTT     bench/udp_echo.ts
 *   5. startup                    bench/startup.ts
 *   7. short connections          bench/churn.ts
 *   8. port scan                  bench/scan.ts
 *   9. port forwarding            bench/forward.ts
 *   codec decoding throughput     bench/frame_decode_bench.ts (deno bench)
 *
 * Usage: deno task bench [--quick] [CASE...]   (CASE: pipe transfer echo udp startup churn scan forward frame)
 */
import { ROOT } from "./_util.ts";

const quick = Deno.args.includes("--quick");
const only = Deno.args.filter((a) => !a.startsWith("--"));
const run = (
  file: string,
  args: string[] = [],
) => ["run", "-A", `${ROOT}bench/${file}`, ...args];
const CASES: Array<[string, string[]]> = [
  ["pipe", run("pipe.ts", quick ? ["--size", "512", "--runs", "3"] : [])],
  ["transfer", run("transfer.ts", quick ? ["256"] : [])],
  [
    "echo",
    run("echo_load.ts", quick ? ["--secs", "2", "--rounds", "1"] : []),
  ],
  ["udp", run("udp_echo.ts")],
  ["startup", run("startup.ts", quick ? ["--runs", "10"] : [])],
  [
    "churn",
    run("churn.ts", quick ? ["--secs", "1", "--rounds", "1"] : []),
  ],
  ["scan", run("scan.ts", quick ? ["--rounds", "1"] : [])],
  [
    "forward",
    run(
      "forward.ts",
      quick ? ["--size", "256", "--runs", "1", "--secs", "1"] : [],
    ),
  ],
  ["frame", ["bench", "-A", `${ROOT}bench/frame_decode_bench.ts`]],
];

let failed = 0;
for (const [name, args] of CASES) {
  if (only.length && !only.includes(name)) continue;
  const file = args.find((a) => a.includes("/bench/"))!;
  try {
    Deno.statSync(file);
  } catch {
    console.log(`\n## ${name}: ${file} not present, skipped`);
    continue;
  }
  console.log(`\n## ${name}`);
  const status = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn()
    .status;
  if (!status.success) {
    console.log(`## ${name}: FAILED (exit ${status.code})`);
    failed++;
  }
}
console.log("\n## chart");
await new Deno.Command(Deno.execPath(), {
  args: run("chart.ts"),
  stdout: "inherit",
  stderr: "inherit",
}).output();
Deno.exit(failed ? 1 : 0);
