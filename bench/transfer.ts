/**
 * Benchmark: verified file transfer. SIZE MiB of random data file to file
 * over loopback: `denocat send` / `denocat recv -o` (verified end to end)
 * beside the raw `nc` pipe, in two set-ups in the same run:
 *
 * - shared: sender and receiver share the machine's cores (as scheduled);
 * - pinned: the sender on core 0, the receiver on core 1 (`taskset`), for
 *   nc and denocat alike: the case of two machines, one core each.
 *
 * Runs alternate the tools' order; each figure is a median, and each ratio
 * the median of the per-run ratios (denocat against nc in the same run and
 * set-up). CPU-seconds (user + system) of each side are read with
 * /usr/bin/time, per GiB, beside the CPU cost of sha256 alone here: that
 * is the floor's profile. Then `sha256sum` + `nc` + `sha256sum` (what
 * people do by hand), and the peak RSS of `denocat recv` for 1 GiB and
 * 4 GiB streams. The load average before and after is recorded: other
 * work on the machine moves every figure.
 *
 * Files live in /dev/shm when it has room (this measures the tools, not the
 * disk; `--dir` overrides). Every process is bounded and stopped.
 *
 * Usage: deno run -A bench/transfer.ts [SIZE_MIB (default 2048)] [--runs N] [--dir DIR] [--no-memory] [--no-pinned]
 */
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { cpuUsage } from "node:process";
import {
  background,
  DENOCAT,
  freePort,
  has,
  median,
  q,
  saveResults,
  sh,
  table,
  waitListening,
} from "./_util.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    runs: { type: "string", default: "3" },
    dir: { type: "string" },
    "no-memory": { type: "boolean" },
    "no-pinned": { type: "boolean" },
  },
});
const MIB = Number(positionals[0] ?? "2048");
const RUNS = Number(values.runs);
const dc = DENOCAT.map(q).join(" ");
const GIB = MIB / 1024;

for (const tool of ["nc", "sha256sum", "head"]) {
  if (!has(tool)) throw new Error(`bench/transfer.ts needs ${tool}`);
}
const timeCmd = has("/usr/bin/time");
const cores = navigator.hardwareConcurrency;
const pinned = !values["no-pinned"] && has("taskset") && cores >= 2;

/** Free bytes at `path` (df, 1K blocks). */
async function freeBytes(path: string): Promise<number> {
  const out = await new Deno.Command("df", {
    args: ["-k", "--output=avail", path],
    stdout: "piped",
  }).output();
  return Number(
    new TextDecoder().decode(out.stdout).trim().split("\n").at(-1),
  ) * 1024;
}

/** The 1, 5 and 15 minute load averages. */
function loadAvg(): number[] {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).map(
    Number,
  );
}

const need = MIB * 2 ** 20 * 2.2;
let base = values.dir;
if (base === undefined) {
  base = (await freeBytes("/dev/shm").catch(() => 0)) > need
    ? "/dev/shm"
    : "/tmp";
}
if ((await freeBytes(base)) < need) {
  throw new Error(
    `not enough space in ${base} for ${MIB} MiB twice (see df -h ${base})`,
  );
}
const work = await Deno.makeTempDir({ dir: base, prefix: "denocat-bench-" });
const src = `${work}/src.bin`;
const dst = `${work}/dst.bin`;
const outDir = `${work}/out`;
const bytes = MIB * 2 ** 20;
const timeLimit = Math.max(60000, MIB * 200);
const loadBefore = loadAvg();

console.log(
  `Verified transfer: ${MIB} MiB random, file to file over 127.0.0.1, files in ${base}, median of ${RUNS}; set-ups: shared${
    pinned ? ", pinned (sender taskset -c 0, receiver taskset -c 1)" : ""
  }; load average ${loadBefore.join(" ")}`,
);

type Setup = "shared" | "pinned";
const setups: Setup[] = pinned ? ["shared", "pinned"] : ["shared"];
const NC = "nc raw pipe (unverified)";
const DC = "denocat send/recv (verified)";
const HAND = "sha256sum + nc + sha256sum";

/** One timed run: wall ms and, with /usr/bin/time, CPU-seconds per side. */
interface Run {
  ms: number;
  send?: number;
  recv?: number;
}

/** `/usr/bin/time` and `taskset` prefixes of one side. */
function prefix(setup: Setup, core: 0 | 1, timeFile: string): string {
  return (timeCmd ? `/usr/bin/time -f '%U %S' -o ${q(timeFile)} ` : "") +
    (setup === "pinned" ? `taskset -c ${core} ` : "");
}

async function cpuOf(file: string): Promise<number | undefined> {
  if (!timeCmd) return undefined;
  const line = (await Deno.readTextFile(file)).trim().split("\n").at(-1)!;
  const [user, sys] = line.split(" ").map(Number);
  return user! + sys!;
}

/** Runs one transfer of `src` with `tool` in `setup`. */
async function transfer(tool: "nc" | "denocat", setup: Setup): Promise<Run> {
  await Deno.remove(dst).catch(() => {});
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  const port = freePort();
  const [st, rt] = [`${work}/send.time`, `${work}/recv.time`];
  const server = background(
    tool === "nc"
      ? `${prefix(setup, 1, rt)}nc -l 127.0.0.1 ${port} > ${q(dst)}`
      : `${prefix(setup, 1, rt)}${dc} recv --no-progress -o ${
        q(outDir)
      } 127.0.0.1 ${port}`,
  );
  try {
    await waitListening(port);
    const t0 = performance.now();
    const s = await sh(
      tool === "nc"
        ? `${prefix(setup, 0, st)}nc -N 127.0.0.1 ${port} < ${q(src)}`
        : `${prefix(setup, 0, st)}${dc} send --no-progress 127.0.0.1 ${port} ${
          q(src)
        }`,
      timeLimit,
    );
    const status = await server.exited;
    const ms = performance.now() - t0;
    if (s.code !== 0 || status.code !== 0) {
      throw new Error(
        `${tool} failed (send ${s.code}, recv ${status.code}): ${s.stderr}`,
      );
    }
    const out = tool === "nc" ? dst : `${outDir}/src.bin`;
    if ((await sh(`cmp ${q(src)} ${q(out)}`, timeLimit)).code !== 0) {
      throw new Error(`${tool}: the output differs from the source`);
    }
    const [send, recv] = [await cpuOf(st), await cpuOf(rt)];
    return {
      ms,
      ...(send !== undefined ? { send } : {}),
      ...(recv !== undefined ? { recv } : {}),
    };
  } finally {
    await server.stop();
  }
}

/** CPU-seconds of sha256 over 256 MiB here (node:crypto), per GiB. */
function sha256CpuPerGiB(): number {
  const buf = new Uint8Array(1 << 20);
  crypto.getRandomValues(buf.subarray(0, 65536));
  const h = createHash("sha256");
  const t0 = cpuUsage();
  for (let i = 0; i < 256; i++) h.update(buf);
  h.digest();
  const t = cpuUsage(t0);
  return (t.user + t.system) / 1e6 * 4;
}

const results: Record<string, { ms: number; mbps: number }> = {};
const ratios: Record<
  string,
  { medianOfRunRatios: number; target: number; met: boolean }
> = {};
const cpu: Record<string, { sendCpuSPerGiB: number; recvCpuSPerGiB: number }> =
  {};
const memory: Record<string, number> = {};
let hashCpu = 0;
try {
  const made = await sh(`head -c ${bytes} /dev/urandom > ${q(src)}`, timeLimit);
  if (made.code !== 0) throw new Error(`cannot create ${src}: ${made.stderr}`);
  hashCpu = sha256CpuPerGiB();

  const runs: Record<string, Run[]> = {};
  const perRun: Record<Setup, number[]> = { shared: [], pinned: [] };
  const add = (name: string, r: Run) => (runs[name] ??= []).push(r);
  for (let i = 0; i < RUNS; i++) {
    for (const setup of setups) {
      // Alternate who goes first: neither always meets a warmer machine.
      const order: Array<"nc" | "denocat"> = i % 2
        ? ["denocat", "nc"]
        : ["nc", "denocat"];
      const got: Record<string, Run> = {};
      for (const tool of order) got[tool] = await transfer(tool, setup);
      add(`${NC}, ${setup}`, got.nc!);
      add(`${DC}, ${setup}`, got.denocat!);
      perRun[setup].push(got.nc!.ms / got.denocat!.ms);
    }
    await Deno.remove(dst).catch(() => {});
    const a = await sh(`sha256sum ${q(src)}`, timeLimit);
    const moved = await transfer("nc", "shared");
    const b = await sh(`sha256sum ${q(dst)}`, timeLimit);
    add(`${HAND}, shared`, { ms: a.ms + moved.ms + b.ms });
  }

  for (const [name, rs] of Object.entries(runs)) {
    const m = median(rs.map((r) => r.ms));
    results[name] = { ms: m, mbps: bytes / 1e6 / (m / 1000) };
    const sends = rs.flatMap((r) => r.send === undefined ? [] : [r.send]);
    const recvs = rs.flatMap((r) => r.recv === undefined ? [] : [r.recv]);
    if (sends.length && recvs.length) {
      cpu[name] = {
        sendCpuSPerGiB: median(sends) / GIB,
        recvCpuSPerGiB: median(recvs) / GIB,
      };
    }
  }
  for (const setup of setups) {
    const r = median(perRun[setup]);
    ratios[setup] = { medianOfRunRatios: r, target: 0.8, met: r >= 0.8 };
  }
  table(
    ["method, set-up", "time (s)", "MB/s", "vs raw nc (same set-up)"],
    Object.entries(results).map(([k, r]) => {
      const setup = k.endsWith("pinned") ? "pinned" : "shared";
      const nc = results[`${NC}, ${setup}`]!;
      return [
        k,
        (r.ms / 1000).toFixed(2),
        r.mbps.toFixed(0),
        (r.mbps / nc.mbps).toFixed(2) + "x",
      ];
    }),
  );
  for (const setup of setups) {
    const r = ratios[setup]!;
    console.log(
      `target (${setup}): denocat >= 0.8x raw nc: ${
        r.medianOfRunRatios.toFixed(2)
      }x (median of the per-run ratios) ${r.met ? "MET" : "NOT MET"}`,
    );
  }
  const load = Math.max(loadBefore[0]!, loadAvg()[0]!);
  if (load > 1) {
    // A pinned side shares its core with that work: a tool that sleeps and
    // wakes for every 16 KiB (nc) waits for the core after each wake-up.
    console.log(
      `caution: load average ${load} on ${cores} cores: other work shares the cores, which penalizes the tool that wakes most often (nc: every 16 KiB); the CPU floor below holds on an idle machine`,
    );
  }
  const hand = results[`${HAND}, shared`]!;
  const den = results[`${DC}, shared`]!;
  console.log(
    `target: faster than sha256sum + nc + sha256sum: ${
      (hand.ms / den.ms).toFixed(2)
    }x ${den.ms < hand.ms ? "MET" : "NOT MET"}`,
  );
  if (Object.keys(cpu).length) {
    console.log(
      `\nCPU-seconds per GiB (user + system, median), and the floor: sha256 alone costs ${
        hashCpu.toFixed(2)
      } CPU-s/GiB here (node:crypto), on each side`,
    );
    table(
      ["method, set-up", "sender", "receiver"],
      Object.entries(cpu).map(([k, c]) => [
        k,
        c.sendCpuSPerGiB.toFixed(2),
        c.recvCpuSPerGiB.toFixed(2),
      ]),
    );
    for (const setup of setups) {
      const n = cpu[`${NC}, ${setup}`];
      if (!n) continue;
      // CPU-bound, a run takes at least its busiest core's CPU time: one
      // side's (pinned) or half of both sides' (shared, if they spread).
      const bound = (send: number, recv: number) =>
        setup === "pinned"
          ? Math.max(send, recv)
          : Math.max(send, recv, (send + recv) / 2);
      const ncBound = bound(n.sendCpuSPerGiB, n.recvCpuSPerGiB);
      // A verified side does at least nc's work on that side plus sha256.
      const floor = bound(
        n.sendCpuSPerGiB + hashCpu,
        n.recvCpuSPerGiB + hashCpu,
      );
      console.log(
        `floor (${setup}): nc's CPU bounds it at ${
          ncBound.toFixed(2)
        } s/GiB; with sha256 added to each side ${
          floor.toFixed(2)
        } s/GiB: a verified transfer with nc's I/O reaches at most ${
          (ncBound / floor).toFixed(2)
        }x raw nc`,
      );
    }
  }
  await Deno.remove(dst).catch(() => {});
  await Deno.remove(outDir, { recursive: true }).catch(() => {});

  if (!values["no-memory"] && has("/usr/bin/time")) {
    console.log(
      `\nMemory: peak RSS of 'denocat recv' (stream to stdout) for 1 GiB and 4 GiB`,
    );
    for (const gib of [1, 4]) {
      const port = freePort();
      const out = `${work}/rss-${gib}`;
      const recv = background(
        `/usr/bin/time -f %M -o ${
          q(out)
        } ${dc} recv --no-progress 127.0.0.1 ${port} > /dev/null`,
      );
      try {
        await waitListening(port);
        const s = await sh(
          `head -c ${gib}G /dev/zero | ${dc} send --no-progress 127.0.0.1 ${port}`,
          timeLimit * 4,
        );
        const status = await recv.exited;
        if (s.code !== 0 || status.code !== 0) {
          throw new Error(`memory run failed: ${s.stderr}`);
        }
      } finally {
        await recv.stop();
      }
      memory[`${gib} GiB`] =
        Number((await Deno.readTextFile(out)).trim().split("\n").at(-1)) / 1024;
    }
    table(
      ["stream", "recv peak RSS (MB)"],
      Object.entries(memory).map(([k, v]) => [k, v.toFixed(1)]),
    );
    const [a, b] = [memory["1 GiB"]!, memory["4 GiB"]!];
    console.log(
      `target: equal within 10%: ${((b / a - 1) * 100).toFixed(1)}% ${
        Math.abs(b - a) / a <= 0.1 ? "MET" : "NOT MET"
      }`,
    );
  }
} finally {
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
console.log(
  `results: ${
    saveResults("transfer", {
      sizeMiB: MIB,
      runs: RUNS,
      filesIn: base,
      setups,
      loadAverage: { before: loadBefore, after: loadAvg() },
      throughput: results,
      ratioToRawNc: ratios,
      cpuSecondsPerGiB: cpu,
      sha256CpuSecondsPerGiB: hashCpu,
      recvPeakRssMB: memory,
    })
  }`,
);
