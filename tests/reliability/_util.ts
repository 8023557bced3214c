/**
 * Shared tools of the reliability suite: peak memory of a process, process
 * scans, a recording TCP proxy, bounded concurrency and summary lines.
 *
 * @module
 */
import { assertOk } from "../../lib/_assert.ts";

/** Peak resident memory (VmHWM) of `pid` in MiB. */
export function peakMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = status.match(/^VmHWM:\s+(\d+) kB/m);
  assertOk(m, `no VmHWM for ${pid}`);
  return Math.round(Number(m[1]) / 1024);
}

/** PIDs (other than ours) whose command line contains `marker`. */
export function pidsWith(marker: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmd.replaceAll("\0", " ").includes(marker)) out.push(Number(e.name));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** Runs `task(i)` for i in [0, n) with at most `limit` at once. */
export async function pool<T>(
  n: number,
  limit: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return results;
}

/** Prints a figure's summary line on stdout. */
export function summary(line: string): void {
  console.log(line);
}

/** Sleeps `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until true or `ms` pass; returns the last result. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  ms: number,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (true) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/** Bytes each way through a {@linkcode recordingProxy}, one array per connection. */
export interface Recording {
  /** client → server bytes, per connection. */
  up: Uint8Array[][];
  /** server → client bytes, per connection. */
  down: Uint8Array[][];
}

export { concat } from "../_helpers.ts";

/**
 * A TCP proxy on 127.0.0.1 forwarding to `target` and recording every byte
 * both ways. Dispose to stop it and close every connection.
 */
export function recordingProxy(
  target: number,
): { port: number; recording: Recording } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const recording: Recording = { up: [], down: [] };
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const pump = async (
    from: Deno.Conn,
    to: Deno.TcpConn,
    log: Uint8Array[],
  ) => {
    const buf = new Uint8Array(65536);
    try {
      let n: number | null;
      while ((n = await from.read(buf)) !== null) {
        log.push(buf.slice(0, n));
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
      await to.closeWrite();
    } catch { /* either side went away */ }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      conns.add(client);
      const up: Uint8Array[] = [];
      const down: Uint8Array[] = [];
      recording.up.push(up);
      recording.down.push(down);
      const t = (async () => {
        let server: Deno.TcpConn;
        try {
          server = await Deno.connect({ hostname: "127.0.0.1", port: target });
        } catch {
          client.close();
          conns.delete(client);
          return;
        }
        conns.add(server);
        await Promise.all([
          pump(client, server, up),
          pump(server, client as Deno.TcpConn, down),
        ]);
        for (const c of [client, server]) {
          conns.delete(c);
          try {
            c.close();
          } catch { /* closed */ }
        }
      })();
      tasks.add(t);
      t.finally(() => tasks.delete(t));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    recording,
    async [Symbol.asyncDispose]() {
      try {
        listener.close();
      } catch { /* closed */ }
      await accepting;
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await Promise.allSettled([...tasks]);
    },
  };
}

/** Asserts a server's stderr shows no crash or unhandled rejection from Deno. */
export function assertNoCrash(name: string, stderr: string): void {
  // Deno prints "error: Uncaught ..." at the start of a line; our own
  // lines start with "denocat:" (and may say "protocol error: ...").
  for (const bad of [/Uncaught/, /^error: /m, /^\s+at .*:\d+:\d+\)?$/m]) {
    const m = stderr.match(bad);
    assertOk(!m, `${name} stderr matches ${bad}: ${m?.[0]}`);
  }
}
