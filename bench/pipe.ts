/**
 * Benchmark 1 (raw TCP pipe) and 6 (memory): SIZE bytes from a pipe through
 * a client and a listener to /dev/null, denocat beside nc -N, socat (default
 * and -b 131072), ncat, iperf3 (memory-to-memory ceiling) and `head | cat`
 * (pipe ceiling); then the listener's peak RSS for 1 GiB and 4 GiB.
 *
 * Usage: deno run -A bench/pipe.ts [--size MiB] [--runs N] [--no-memory]
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

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "2048" },
    runs: { type: "string", default: "5" },
    "no-memory": { type: "boolean" },
  },
});
const MIB = Number(values.size);
const RUNS = Number(values.runs);
const dc = DENOCAT.map(q).join(" ");

interface Tool {
  name: string;
  needs: string[];
  /** Listener command for a port; output goes to /dev/null. */
  listen?: (port: number) => string;
  /** Client command reading stdin. */
  send?: (port: number) => string;
  /** Whole-pipeline alternative (ceilings). */
  whole?: (port: number) => { server?: string; client: string };
}

const TOOLS: Tool[] = [
  {
    name: "denocat",
    needs: [],
    listen: (p) => `${dc} -l 127.0.0.1 ${p}`,
    send: (p) => `${dc} 127.0.0.1 ${p}`,
  },
  {
    name: "nc -N",
    needs: ["nc"],
    listen: (p) => `nc -l 127.0.0.1 ${p}`,
    send: (p) => `nc -N 127.0.0.1 ${p}`,
  },
  {
    name: "socat",
    needs: ["socat"],
    listen: (p) => `socat -u TCP-LISTEN:${p},bind=127.0.0.1,reuseaddr STDOUT`,
    send: (p) => `socat -u STDIN TCP:127.0.0.1:${p}`,
  },
  {
    name: "socat -b 131072",
    needs: ["socat"],
    listen: (p) =>
      `socat -b 131072 -u TCP-LISTEN:${p},bind=127.0.0.1,reuseaddr STDOUT`,
    send: (p) => `socat -b 131072 -u STDIN TCP:127.0.0.1:${p}`,
  },
  {
    name: "ncat",
    needs: ["ncat"],
    listen: (p) => `ncat -l --recv-only 127.0.0.1 ${p}`,
    send: (p) => `ncat --send-only 127.0.0.1 ${p}`,
  },
  {
    name: "iperf3 (ceiling)",
    needs: ["iperf3"],
    whole: (p) => ({
      server: `iperf3 -s -1 -p ${p} -B 127.0.0.1`,
      client: `iperf3 -c 127.0.0.1 -p ${p} -n ${MIB}M`,
    }),
  },
  {
    name: "head | cat (ceiling)",
    needs: [],
    whole: () => ({ client: `head -c ${MIB}M /dev/zero | cat` }),
  },
];

async function once(tool: Tool): Promise<number> {
  const port = freePort();
  const plan = tool.whole ? tool.whole(port) : {
    server: `${tool.listen!(port)} > /dev/null`,
    client: `head -c ${MIB}M /dev/zero | ${tool.send!(port)}`,
  };
  const server = plan.server ? background(plan.server) : undefined;
  try {
    if (server) await waitListening(port);
    const t0 = performance.now();
    const r = await sh(plan.client);
    if (r.code !== 0) {
      throw new Error(`${tool.name} client failed: ${r.stderr.trim()}`);
    }
    if (server) {
      const status = await Promise.race([
        server.exited,
        new Promise<undefined>((res) =>
          setTimeout(() => res(undefined), 30000)
        ),
      ]);
      if (!status) throw new Error(`${tool.name} listener did not exit`);
    }
    return performance.now() - t0;
  } finally {
    await server?.stop();
  }
}

const results: Record<string, { gbps: number; runs: number[] }> = {};
console.log(
  `Raw TCP pipe: ${MIB} MiB from a pipe through client and listener to /dev/null, median of ${RUNS}`,
);
for (const tool of TOOLS) {
  if (!tool.needs.every(has)) {
    console.log(`  (skipping ${tool.name}: not installed)`);
    continue;
  }
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await once(tool));
  const ms = median(runs);
  results[tool.name] = { gbps: (MIB * 2 ** 20) / 1e9 / (ms / 1000), runs };
}
const nc = results["nc -N"]?.gbps;
const dn = results["denocat"]!.gbps;
table(
  ["tool", "GB/s", "denocat / tool"],
  Object.entries(results).map((
    [name, r],
  ) => [name, r.gbps.toFixed(2), (dn / r.gbps).toFixed(2) + "x"]),
);
if (nc) {
  console.log(
    `target: denocat >= 1.0x nc -N: ${(dn / nc).toFixed(2)}x ${
      dn >= nc ? "MET" : "NOT MET"
    }`,
  );
}

const memory: Record<string, number> = {};
if (!values["no-memory"]) {
  console.log(`\nMemory: peak RSS of 'denocat -l' receiving 1 GiB and 4 GiB`);
  for (const gib of [1, 4]) {
    const port = freePort();
    const out = await Deno.makeTempFile();
    const server = background(
      `/usr/bin/time -f %M -o ${out} ${dc} -l 127.0.0.1 ${port} > /dev/null`,
    );
    await waitListening(port);
    const r = await sh(`head -c ${gib}G /dev/zero | nc -N 127.0.0.1 ${port}`);
    if (r.code !== 0) throw new Error(`memory run failed: ${r.stderr}`);
    await server.exited;
    memory[`${gib} GiB`] =
      Number(Deno.readTextFileSync(out).trim().split("\n").at(-1)) / 1024;
    Deno.removeSync(out);
  }
  table(
    ["stream", "peak RSS (MB)"],
    Object.entries(memory).map(([k, v]) => [k, v.toFixed(1)]),
  );
  const [a, b] = [memory["1 GiB"]!, memory["4 GiB"]!];
  const flat = Math.abs(b - a) / a <= 0.1;
  console.log(
    `target: flat within 10% and under 150 MB: ${
      flat && b < 150 ? "MET" : "NOT MET"
    }`,
  );
}
console.log(
  `results: ${
    saveResults("pipe", {
      sizeMiB: MIB,
      runs: RUNS,
      throughput: results,
      peakRssMB: memory,
    })
  }`,
);
