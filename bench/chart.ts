/**
 * Renders bench/results/*.json into one SVG chart (bench/results/chart.svg)
 * with Vega-Lite, so the README shows the comparison at a glance.
 *
 * Usage: deno run -A bench/chart.ts
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import { ROOT } from "./_util.ts";

const dir = `${ROOT}bench/results`;
function load(name: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/${name}.json`));
  } catch {
    return undefined;
  }
}

type Row = { label: string; value: number; denocat: boolean };
const panels: Array<{ title: string; unit: string; rows: Row[] }> = [];
const isDenocat = (s: string) => s.startsWith("denocat");

const pipe = load("pipe") as
  | { throughput?: Record<string, { gbps: number }> }
  | undefined;
if (pipe?.throughput) {
  panels.push({
    title: "Raw TCP pipe (GB/s, higher is better)",
    unit: "GB/s",
    rows: Object.entries(pipe.throughput).map(([k, v]) => ({
      label: k,
      value: v.gbps,
      denocat: isDenocat(k),
    })),
  });
}
const echo = load("echo_load") as {
  results?: Array<{ server: string; conns: number; msgsPerSec: number }>;
} | undefined;
if (echo?.results) {
  const top = Math.max(...echo.results.map((r) => r.conns));
  panels.push({
    title: `TCP echo, ${top} connections (messages/s, higher is better)`,
    unit: "msgs/s",
    rows: echo.results.filter((r) => r.conns === top).map((r) => ({
      label: r.server,
      value: r.msgsPerSec,
      denocat: isDenocat(r.server),
    })),
  });
}
const udp = load("udp_echo") as {
  throughput_datagrams_per_s?: Record<string, number>;
} | undefined;
if (udp?.throughput_datagrams_per_s) {
  panels.push({
    title: "UDP echo, 16 in flight (datagrams/s, higher is better)",
    unit: "datagrams/s",
    rows: Object.entries(udp.throughput_datagrams_per_s).map(([k, v]) => ({
      label: k,
      value: v,
      denocat: isDenocat(k),
    })),
  });
}
const transfer = load("transfer") as {
  throughput?: Record<string, { mbps: number }>;
} | undefined;
if (transfer?.throughput) {
  panels.push({
    title:
      "Verified file transfer, file to file (MB/s end to end, higher is better)",
    unit: "MB/s",
    rows: Object.entries(transfer.throughput).map(([k, v]) => ({
      label: k,
      value: v.mbps,
      denocat: isDenocat(k),
    })),
  });
}
const startup = load("startup") as
  | { medianMs?: Record<string, number> }
  | undefined;
if (startup?.medianMs) {
  panels.push({
    title: "Startup (ms, lower is better)",
    unit: "ms",
    rows: Object.entries(startup.medianMs).map(([k, v]) => ({
      label: k,
      value: v,
      denocat: isDenocat(k),
    })),
  });
}
if (!panels.length) {
  console.error(
    "chart: no results in bench/results; run deno task bench first",
  );
  Deno.exit(1);
}

const spec = vl.compile({
  config: { font: "sans-serif", view: { stroke: null } },
  vconcat: panels.map((p) => ({
    title: { text: p.title, anchor: "start" },
    width: 520,
    data: { values: p.rows },
    mark: { type: "bar", tooltip: true },
    encoding: {
      y: {
        field: "label",
        type: "nominal",
        sort: null,
        title: null,
        axis: { labelLimit: 260 },
      },
      x: { field: "value", type: "quantitative", title: p.unit },
      color: {
        field: "denocat",
        type: "nominal",
        scale: { domain: [true, false], range: ["#1f77b4", "#b0b0b0"] },
        legend: null,
      },
    },
  })),
} as vl.TopLevelSpec).spec;
const view = new vega.View(vega.parse(spec), { renderer: "none" });
const svg = await view.toSVG();
await Deno.writeTextFile(`${dir}/chart.svg`, svg);
console.log(`chart: ${dir}/chart.svg (${panels.length} panels)`);
