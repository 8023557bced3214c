/**
 * Benchmark: verified file transfer. SIZE MiB of random data file to file
 * over loopback: `denocat send` / `denocat recv -o` (verified end to end)
 * beside the raw `nc` pipe and beside `sha256sum` + `nc` + `sha256sum`
 * (what people do by hand), same run; then the peak RSS of `denocat recv`
 * for 1 GiB and 4 GiB streams.
 *
 * Files live in /dev/shm when it has room (this measures the tools, not the
 * disk; `--dir` overrides). Every process is bounded and stopped.
 *
 * Usage: deno run -A bench/transfer.ts [SIZE_MIB (default 2048)] [--runs N] [--dir DIR] [--no-memory]
 */
import { parseArgs } from "node:util";
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
  },
});
const MIB = Number(positionals[0] ?? "2048");
const RUNS = Number(values.runs);
const dc = DENOCAT.map(q).join(" ");

for (const tool of ["nc", "sha256sum", "head"]) {
  if (!has(tool)) throw new Error(`bench/transfer.ts needs ${tool}`);
}

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

console.log(
  `Verified transfer: ${MIB} MiB random, file to file over 127.0.0.1, files in ${base}, median of ${RUNS}`,
);

const results: Record<string, { ms: number; mbps: number }> = {};
const memory: Record<string, number> = {};
try {
  const made = await sh(`head -c ${bytes} /dev/urandom > ${q(src)}`, timeLimit);
  if (made.code !== 0) throw new Error(`cannot create ${src}: ${made.stderr}`);

  const ncPipe = async (): Promise<number> => {
    const port = freePort();
    const server = background(`nc -l 127.0.0.1 ${port} > ${q(dst)}`);
    try {
      await waitListening(port);
      const t0 = performance.now();
      const r = await sh(`nc -N 127.0.0.1 ${port} < ${q(src)}`, timeLimit);
      if (r.code !== 0) throw new Error(`nc failed: ${r.stderr}`);
      await server.exited;
      return performance.now() - t0;
    } finally {
      await server.stop();
    }
  };

  const runs: Record<string, number[]> = {
    "nc (raw pipe, unverified)": [],
    "sha256sum + nc + sha256sum": [],
    "denocat send/recv (verified)": [],
  };
  for (let i = 0; i < RUNS; i++) {
    await Deno.remove(dst).catch(() => {});
    runs["nc (raw pipe, unverified)"]!.push(await ncPipe());

    await Deno.remove(dst).catch(() => {});
    const a = await sh(`sha256sum ${q(src)}`, timeLimit);
    const moved = await ncPipe();
    const b = await sh(`sha256sum ${q(dst)}`, timeLimit);
    runs["sha256sum + nc + sha256sum"]!.push(a.ms + moved + b.ms);

    await Deno.remove(outDir, { recursive: true }).catch(() => {});
    const port = freePort();
    const recv = background(
      `${dc} recv --no-progress -o ${q(outDir)} 127.0.0.1 ${port}`,
    );
    try {
      await waitListening(port);
      const t0 = performance.now();
      const s = await sh(
        `${dc} send --no-progress 127.0.0.1 ${port} ${q(src)}`,
        timeLimit,
      );
      const status = await recv.exited;
      const ms = performance.now() - t0;
      if (s.code !== 0 || status.code !== 0) {
        throw new Error(
          `denocat failed (send ${s.code}, recv ${status.code}): ${s.stderr}`,
        );
      }
      runs["denocat send/recv (verified)"]!.push(ms);
    } finally {
      await recv.stop();
    }
  }
  const check = await sh(`cmp ${q(src)} ${q(`${outDir}/src.bin`)}`);
  if (check.code !== 0) {
    throw new Error("denocat output differs from the source");
  }

  for (const [name, ms] of Object.entries(runs)) {
    const m = median(ms);
    results[name] = { ms: m, mbps: bytes / 1e6 / (m / 1000) };
  }
  const nc = results["nc (raw pipe, unverified)"]!;
  const ncSha = results["sha256sum + nc + sha256sum"]!;
  const den = results["denocat send/recv (verified)"]!;
  table(
    ["method", "time (s)", "MB/s", "vs raw nc"],
    Object.entries(results).map(([k, r]) => [
      k,
      (r.ms / 1000).toFixed(2),
      r.mbps.toFixed(0),
      (r.mbps / nc.mbps).toFixed(2) + "x",
    ]),
  );
  console.log(
    `target: denocat >= 0.8x raw nc: ${(den.mbps / nc.mbps).toFixed(2)}x ${
      den.mbps >= 0.8 * nc.mbps ? "MET" : "NOT MET"
    }`,
  );
  console.log(
    `target: faster than sha256sum + nc + sha256sum: ${
      (ncSha.ms / den.ms).toFixed(2)
    }x ${den.ms < ncSha.ms ? "MET" : "NOT MET"}`,
  );
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
      throughput: results,
      recvPeakRssMB: memory,
    })
  }`,
);
