/**
 * Shared pieces of the benchmark suite: timing whole commands, peak memory,
 * medians, tables and the JSON results.
 *
 * @module
 */
export const ROOT = new URL("..", import.meta.url).pathname;
export const CLI = `${ROOT}cli.ts`;
export const DENOCAT = [Deno.execPath(), "run", "-A", CLI];

/** Whether a command is on PATH. */
export function has(cmd: string): boolean {
  return new Deno.Command("sh", {
    args: ["-c", `command -v ${cmd}`],
    stdout: "null",
    stderr: "null",
  }).outputSync()
    .success;
}

/**
 * Compiles `bench/NAME.c` with `cc -O2` into a temporary directory; the
 * path of the program, or `undefined` where there is no C compiler (the
 * caller then skips or falls back).
 */
export async function buildC(name: string): Promise<string | undefined> {
  if (!has("cc")) return undefined;
  const out = `${await Deno.makeTempDir()}/${name}`;
  const r = await new Deno.Command("cc", {
    args: ["-O2", "-o", out, `${ROOT}bench/${name}.c`],
    stderr: "null",
  }).output();
  return r.success ? out : undefined;
}

/** Shell-quotes one argument. */
export function q(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg)
    ? arg
    : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A free loopback TCP port. */
export function freePort(): number {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return l.addr.port;
}

/** Waits until 127.0.0.1:port is bound (polls ss, so no connection is used up). */
export async function waitListening(
  port: number,
  udp = false,
  ms = 10000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const out = await new Deno.Command("ss", {
      args: [udp ? "-lunH" : "-ltnH", `sport = :${port}`],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (new TextDecoder().decode(out.stdout).includes(`:${port}`)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nothing listened on port ${port}`);
}

/** Runs `sh -c script` with a time bound; returns its wall time (ms) and status. */
export async function sh(
  script: string,
  timeoutMs = 120000,
): Promise<{ ms: number; code: number; stderr: string }> {
  const t0 = performance.now();
  const child = new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  })
    .spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  return {
    ms: performance.now() - t0,
    code: out.code,
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/**
 * Starts a background `sh -c script` that the caller must stop. `pid` is
 * the script's own process (it is exec'd). With `files`, the soft limit on
 * open descriptors is first raised to the hard limit.
 */
export function background(
  script: string,
  opts: { files?: boolean } = {},
): {
  pid: number;
  stop(): Promise<void>;
  exited: Promise<Deno.CommandStatus>;
} {
  const raise = opts.files ? `ulimit -n "$(ulimit -Hn)" 2>/dev/null; ` : "";
  const child = new Deno.Command("sh", {
    args: ["-c", `${raise}exec ${script}`],
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  return {
    pid: child.pid,
    exited: child.status,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, 2000);
      await child.status;
      clearTimeout(t);
    },
  };
}

/** CPU seconds (user + system, all threads) process `pid` has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) in parentheses:
  // utime and stime are the 12th and 13th, in clock ticks of 1/100 s.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * Loss counters of the whole machine (every process counts, so read them
 * around one case): packets the kernel dropped because a CPU's input
 * backlog was full (`/proc/net/softnet_stat`, loopback traffic goes
 * through it), TCP segments retransmitted, and retransmission timeouts.
 */
export function netLoss(): {
  backlogDrops: number;
  retrans: number;
  rto: number;
} {
  const drops = Deno.readTextFileSync("/proc/net/softnet_stat").trim().split(
    "\n",
  ).reduce((sum, line) => sum + parseInt(line.split(" ")[1] ?? "0", 16), 0);
  const field = (file: string, prefix: string, name: string) => {
    const lines = Deno.readTextFileSync(file).split("\n").filter((l) =>
      l.startsWith(prefix)
    );
    const names = lines[0]?.split(" ") ?? [],
      values = lines[1]?.split(" ") ?? [];
    return Number(values[names.indexOf(name)] ?? NaN);
  };
  return {
    backlogDrops: drops,
    retrans: field("/proc/net/snmp", "Tcp:", "RetransSegs"),
    rto: field("/proc/net/netstat", "TcpExt:", "TCPTimeouts"),
  };
}

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Percentile (0..100) of numbers, nearest rank. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[
    Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))
  ]!;
}

/** Prints an aligned table. */
export function table(headers: string[], rows: (string | number)[][]): void {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) =>
    Math.max(...cells.map((r) => (r[i] ?? "").length))
  );
  for (const [i, r] of cells.entries()) {
    console.log(
      r.map((c, j) => j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))
        .join("  "),
    );
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

/** Describes the machine for the results file. */
export function machine(): Record<string, unknown> {
  const cpu =
    Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)
      ?.[1] ?? "unknown";
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    date: new Date().toISOString(),
  };
}

/** Writes `bench/results/NAME.json`. */
export function saveResults(name: string, data: unknown): string {
  const path = `${ROOT}bench/results/${name}.json`;
  Deno.mkdirSync(`${ROOT}bench/results`, { recursive: true });
  Deno.writeTextFileSync(
    path,
    JSON.stringify({ machine: machine(), ...data as object }, null, 2) + "\n",
  );
  return path;
}
