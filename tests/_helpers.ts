/**
 * Test fixtures: spawning the CLI exactly as users run it (`deno run -A
 * cli.ts`), finding interop peers, and small byte helpers.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const decoder = new TextDecoder();

/** Whether a command is on PATH. */
export function hasCommand(name: string): boolean {
  try {
    const r = new Deno.Command("sh", {
      args: ["-c", `command -v ${name}`],
      stdout: "null",
      stderr: "null",
    })
      .outputSync();
    return r.success;
  } catch {
    return false;
  }
}

/**
 * `ignore` flag for tests that need peer `name`: ignored when missing,
 * unless DENOCAT_REQUIRE_PEERS=1 (CI), where the test runs and fails.
 */
export function needs(...names: string[]): boolean {
  if (Deno.env.get("DENOCAT_REQUIRE_PEERS") === "1") return false;
  const missing = names.filter((name) => !hasCommand(name));
  if (missing.length === 0) return false;
  skipNote(`needs ${missing.join(", ")}, not installed`);
  return true;
}

/**
 * `ignore` flag for tests that drive OpenBSD nc (its `-N`, which other
 * netcats lack): ignored with the reason printed when the nc on PATH has no
 * `-N`, unless DENOCAT_REQUIRE_PEERS=1.
 */
export function needsOpenbsdNc(): boolean {
  if (needs("nc")) return true;
  if (Deno.env.get("DENOCAT_REQUIRE_PEERS") === "1") return false;
  try {
    const r = new Deno.Command("nc", {
      args: ["-h"],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const help = decoder.decode(r.stdout) + decoder.decode(r.stderr);
    if (/-N\s/.test(help)) return false;
  } catch { /* not runnable */ }
  skipNote("needs OpenBSD nc (with -N); the nc here has none");
  return true;
}

/**
 * `ignore` flag for tests of a feature that only some systems have: true
 * (and the reason printed once) when `Deno.build.os` is not among `oses`.
 * `feature` names what the tests need, e.g. "Unix sockets".
 */
export function onlyOn(
  oses: readonly (typeof Deno.build.os)[],
  feature: string,
): boolean {
  if (oses.includes(Deno.build.os)) return false;
  skipNote(`on ${Deno.build.os}: needs ${feature}`);
  return true;
}

type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/**
 * A `Deno.test` for tests that need a feature only `oses` have: elsewhere
 * each test is registered as ignored and the reason printed (see
 * {@linkcode onlyOn}). Takes `(name, fn)` or a test definition, whose own
 * `ignore` still counts.
 */
export function testOnlyOn(
  oses: readonly (typeof Deno.build.os)[],
  feature: string,
): {
  (name: string, fn: TestFn): void;
  (
    name: string,
    options: Omit<Deno.TestDefinition, "name" | "fn">,
    fn: TestFn,
  ): void;
  (definition: Deno.TestDefinition): void;
} {
  const lacking = onlyOn(oses, feature);
  return (
    a: string | Deno.TestDefinition,
    b?: TestFn | Omit<Deno.TestDefinition, "name" | "fn">,
    c?: TestFn,
  ) => {
    const def: Deno.TestDefinition = typeof a !== "string"
      ? a
      : typeof b === "function"
      ? { name: a, fn: b }
      : { ...b, name: a, fn: c! };
    Deno.test({ ...def, ignore: lacking || (def.ignore ?? false) });
  };
}

const notes = new Set<string>();

/** Prints why tests are ignored, once per reason, so no skip passes silently. */
function skipNote(reason: string): void {
  if (notes.has(reason)) return;
  notes.add(reason);
  console.log(`ignored: ${reason}`);
}

/** Hex sha256 of bytes. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** `n` random bytes (crypto.getRandomValues in 64 KiB steps). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** Result of a finished process. */
export interface Output {
  code: number;
  stdout: Uint8Array;
  stderr: string;
  /** stdout decoded as UTF-8. */
  text: string;
}

/** Options for {@linkcode runCli} and {@linkcode startCli}. */
export interface SpawnOptions {
  /** Bytes for stdin; stdin is closed after them. Omit for an empty stdin. */
  stdin?: Uint8Array | string;
  /** Kill the process after this many ms. @default {20000} */
  timeout?: number;
  env?: Record<string, string>;
  cwd?: string;
}

/** A running process with collected output; disposing kills it and reaps it. */
export interface Running extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** Resolves with everything once the process exits. */
  output: Promise<Output>;
  /** stderr collected so far. */
  stderrSoFar(): string;
  /** Resolves with the first stderr match of `re` (rejects on exit or timeout). */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends a signal, ignoring "already exited". */
  kill(signal?: Deno.Signal): void;
  /** Writes to stdin (only when started with `stdin: "keep"`). */
  stdin?: WritableStreamDefaultWriter<Uint8Array>;
}

/** Spawns any command with piped stdio. */
export function spawn(
  cmd: string,
  args: string[],
  options: SpawnOptions & { keepStdin?: boolean } = {},
): Running {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  const timeoutMs = options.timeout ?? 20000;
  const timer = setTimeout(() => kill("SIGKILL"), timeoutMs);
  let stderr = "";
  const waiters: Array<() => void> = [];
  const kill = (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch { /* already exited */ }
  };
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      for (const w of waiters.splice(0)) w();
    }
  })();
  const stdoutDone = new Response(child.stdout).bytes();
  let stdinWriter: WritableStreamDefaultWriter<Uint8Array> | undefined;
  if (options.keepStdin) {
    stdinWriter = child.stdin.getWriter();
  } else {
    const w = child.stdin.getWriter();
    const data = typeof options.stdin === "string"
      ? new TextEncoder().encode(options.stdin)
      : options.stdin;
    (async () => {
      try {
        if (data?.length) await w.write(data);
        await w.close();
      } catch { /* process exited early */ }
    })();
  }
  let exited = false;
  const output = (async () => {
    const status = await child.status;
    exited = true;
    clearTimeout(timer);
    const stdout = await stdoutDone;
    await stderrDone;
    for (const w of waiters.splice(0)) w();
    return { code: status.code, stdout, stderr, text: decoder.decode(stdout) };
  })();
  const running: Running = {
    child,
    output,
    stderrSoFar: () => stderr,
    kill,
    async waitForStderr(re, ms = 10000) {
      const deadline = Date.now() + ms;
      while (true) {
        const m = stderr.match(re);
        if (m) return m;
        if (exited) throw new Error(`process exited before ${re}: ${stderr}`);
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${re}; stderr: ${stderr}`);
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 50);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    async [Symbol.asyncDispose]() {
      if (stdinWriter) await stdinWriter.close().catch(() => {});
      kill("SIGKILL");
      await output;
    },
  };
  if (stdinWriter) running.stdin = stdinWriter;
  return running;
}

/** Spawns `deno run -A cli.ts ...args`. */
export function startCli(
  args: string[],
  options: SpawnOptions & { keepStdin?: boolean } = {},
): Running {
  return spawn(Deno.execPath(), ["run", "-A", CLI, ...args], options);
}

/** Runs the CLI to completion. */
export async function runCli(
  args: string[],
  options: SpawnOptions = {},
): Promise<Output> {
  await using p = startCli(args, options);
  return await p.output;
}

/**
 * Starts a denocat server with `-v` on port 0 and returns it with the port it
 * logged (`listening on HOST:PORT`).
 */
export async function startServer(
  args: string[],
  options: SpawnOptions & { keepStdin?: boolean } = {},
): Promise<Running & { port: number }> {
  const p = startCli([...args.slice(0, -1), "-v", args.at(-1)!], options);
  try {
    const m = await p.waitForStderr(/listening on .*:(\d+)\s*$/m);
    return Object.assign(p, { port: Number(m[1]) });
  } catch (err) {
    await p[Symbol.asyncDispose]();
    throw err;
  }
}

/** The lowest port of the kernel's ephemeral range (where `port: 0` lands). */
export function ephemeralLow(): number {
  try {
    const low = Number(
      Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range")
        .trim().split(/\s+/)[0],
    );
    if (low > 11000) return low;
  } catch { /* not Linux */ }
  return 32768;
}

/**
 * Where tests that scan a range of 127.0.0.1's ports put their ranges
 * (`start` to `end - 1`): below {@linkcode freePort}'s ports and the
 * ephemeral range, so a scan never reaches another test's server.
 */
export const SCAN_PORTS = { start: 10000, end: 20000 } as const;

/**
 * A TCP port free on 127.0.0.1 right now, for peers that cannot report
 * theirs and for tests that need a closed port. It is drawn from between
 * {@linkcode SCAN_PORTS} and the ephemeral range: tests running in parallel bind `port: 0`, and a port
 * from that range, once let go, can become another test's listener a
 * moment later, which then takes this test's connects (seen: a forward
 * test's target got a scan's empty connection).
 */
export function freePort(): number {
  const top = ephemeralLow();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = SCAN_PORTS.end +
      Math.floor(Math.random() * (top - SCAN_PORTS.end));
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch { /* taken: draw again */ }
  }
  throw new Error("no free port below the ephemeral range");
}

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(
  port: number,
  hostname = "127.0.0.1",
  ms = 10000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (true) {
    try {
      const c = await Deno.connect({ hostname, port });
      c.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Waits until `ss` shows a TCP listener on `port` (without connecting to
 * it, which would use up a one-shot `-l`).
 */
export async function waitForListen(port: number, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (true) {
    const ss = await new Deno.Command("ss", {
      args: ["-Hltn", `sport = :${port}`],
    }).output();
    if (decoder.decode(ss.stdout).includes(`:${port}`)) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Reads a connection to EOF. */
export async function readAll(
  r: { read(p: Uint8Array): Promise<number | null> },
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  let n: number | null;
  while ((n = await r.read(buf)) !== null) chunks.push(buf.slice(0, n));
  return concat(chunks);
}

/** Concatenates byte arrays into one. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Starts a python3 server that prints its port on the first stdout line. */
export async function startPy(code: string) {
  const child = new Deno.Command("python3", {
    args: ["-c", code],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  })
    .spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("python server exited");
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  await child.stdout.cancel();
  return {
    port: Number(text.trim()),
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

/** `promise`, or a failure naming `what` after `ms` (a test never waits forever on a lost datagram or a wrong hand-off). */
export async function within<T>(
  promise: Promise<T>,
  what: string,
  ms = 30_000,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${what}`)),
          ms,
        )
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
