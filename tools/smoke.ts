/**
 * Smoke test of a denocat build on the machine it runs on, over loopback:
 * `--version`; an echo round trip; 64 MiB through `-l` and 64 MiB back, each
 * checked by sha256; `probe -u` against `echo -u`; `send`/`recv` of a file.
 * The release workflow runs it on a runner of each platform against the
 * compiled binary; here it runs against `deno run -A cli.ts`:
 *
 * ```sh
 * deno run -A tools/smoke.ts --version-is 1.2.3 --target-is x86_64-unknown-linux-gnu -- dist/denocat
 * deno run -A tools/smoke.ts -- deno run -A cli.ts
 * ```
 *
 * Prints one `ok:` line per check; the first failure ends it with exit 1.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";

const MIB = 1 << 20;

/** Options for {@linkcode smoke}. */
export interface SmokeOptions {
  /** The version `--version` must report. @default {any} */
  version?: string;
  /** The target `--version` must report. @default {any} */
  target?: string;
  /** Bytes sent each way through `-l`. @default {64 MiB} */
  bulkBytes?: number;
  /** Where each `ok:` line goes. @default {console.log} */
  log?: (line: string) => void;
}

/** A spawned denocat with its stderr collected. */
interface Proc extends AsyncDisposable {
  child: Deno.ChildProcess;
  stderr(): string;
  /** Resolves with the port the process logged (`listening on HOST:PORT`). */
  port(): Promise<number>;
}

const decoder = new TextDecoder();

function start(
  command: readonly string[],
  args: string[],
  stdout: "piped" | "null" = "piped",
): Proc {
  const child = new Deno.Command(command[0]!, {
    args: [...command.slice(1), ...args],
    stdin: "piped",
    stdout,
    stderr: "piped",
  }).spawn();
  let err = "";
  let exited = false;
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) {
      err += decoder.decode(chunk, { stream: true });
    }
  })();
  const status = child.status.finally(() => exited = true);
  return {
    child,
    stderr: () => err,
    async port() {
      const deadline = Date.now() + 15000;
      while (true) {
        const m = err.match(/listening on .*:(\d+)\s*$/m);
        if (m) return Number(m[1]);
        if (exited || Date.now() > deadline) {
          throw new Error(`no "listening on" from ${args.join(" ")}: ${err}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await status;
      await child.stdin.close().catch(() => {});
      if (stdout === "piped") await child.stdout.cancel().catch(() => {});
      await stderrDone;
    },
  };
}

/** Runs denocat to completion with `input` on stdin. */
async function run(
  command: readonly string[],
  args: string[],
  input: Uint8Array = new Uint8Array(),
  timeoutMs = 30000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(command[0]!, {
    args: [...command.slice(1), ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  const w = child.stdin.getWriter();
  const fed = w.write(input).then(() => w.close()).catch(() => {});
  const out = await child.output();
  await fed;
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(what);
}

/** Deterministic bytes (so a mismatch can be reproduced) in 1 MiB steps. */
function pattern(total: number, seed: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let x = seed >>> 0 || 1;
  for (let off = 0; off < total; off += MIB) {
    const chunk = new Uint8Array(Math.min(MIB, total - off));
    for (let i = 0; i < chunk.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      chunk[i] = x & 0xff;
    }
    chunks.push(chunk);
  }
  return chunks;
}

function digest(chunks: Uint8Array[]): string {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return h.digest("hex");
}

/** Writes `chunks` to a process's stdin and closes it. */
async function feed(p: Proc, chunks: Uint8Array[]): Promise<void> {
  const w = p.child.stdin.getWriter();
  for (const c of chunks) await w.write(c);
  await w.close();
}

/** sha256 and length of a process's stdout, to EOF. */
async function drain(p: Proc): Promise<{ sha: string; bytes: number }> {
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of p.child.stdout) {
    h.update(c);
    bytes += c.length;
  }
  return { sha: h.digest("hex"), bytes };
}

/**
 * Runs every check against `command` (the argv prefix that starts denocat).
 * Throws on the first failure.
 */
export async function smoke(
  command: readonly string[],
  options: SmokeOptions = {},
): Promise<void> {
  const log = options.log ?? console.log;

  // --version: "denocat VERSION (TARGET; deno DENO)"
  const v = await run(command, ["--version"]);
  const m = v.stdout.match(/^denocat (\S+) \((\S+); deno (\S+)\)\n$/);
  check(v.code === 0 && m !== null, `--version printed ${v.stdout}${v.stderr}`);
  if (options.version !== undefined) {
    check(
      m[1] === options.version,
      `version ${m[1]}, expected ${options.version}`,
    );
  }
  if (options.target !== undefined) {
    check(
      m[2] === options.target,
      `target ${m[2]}, expected ${options.target}`,
    );
  }
  log(`ok: --version: ${v.stdout.trim()}`);

  // Echo round trip.
  {
    await using echo = start(command, ["echo", "-v", "127.0.0.1", "0"], "null");
    const port = await echo.port();
    const r = await run(command, ["127.0.0.1", String(port)], text("ping\n"));
    check(r.code === 0 && r.stdout === "ping\n", `echo: ${JSON.stringify(r)}`);
    log(`ok: echo round trip on 127.0.0.1:${port}`);
  }

  // Bulk both ways through -l, each direction checked by sha256.
  {
    const size = options.bulkBytes ?? 64 * MIB;
    const up = pattern(size, 1), down = pattern(size, 2);
    await using listener = start(command, ["-l", "-v", "127.0.0.1", "0"]);
    const port = await listener.port();
    // --no-shutdown: -l ends its session once the client's side has ended
    // (nc's rule), so a client that finished sending first would cut the
    // listener's direction short; without FIN it receives it all.
    await using client = start(command, [
      "--no-shutdown",
      "127.0.0.1",
      String(port),
    ]);
    const began = performance.now();
    const [atListener, atClient] = await Promise.all([
      drain(listener),
      drain(client),
      feed(listener, down),
      feed(client, up),
    ]);
    const [lc, cc] = await Promise.all([
      listener.child.status,
      client.child.status,
    ]);
    check(lc.code === 0, `-l exited ${lc.code}: ${listener.stderr()}`);
    check(cc.code === 0, `client exited ${cc.code}: ${client.stderr()}`);
    check(
      atListener.bytes === size && atListener.sha === digest(up),
      `-l received ${atListener.bytes} bytes, sha256 ${atListener.sha}`,
    );
    check(
      atClient.bytes === size && atClient.sha === digest(down),
      `client received ${atClient.bytes} bytes, sha256 ${atClient.sha}`,
    );
    const secs = (performance.now() - began) / 1000;
    log(
      `ok: ${size / MIB} MiB each way through -l, sha256 ${
        digest(up).slice(0, 12)
      }/${digest(down).slice(0, 12)} (${secs.toFixed(2)} s)`,
    );
  }

  // probe -u against echo -u.
  {
    await using echo = start(
      command,
      ["echo", "-u", "-v", "127.0.0.1", "0"],
      "null",
    );
    const port = await echo.port();
    const r = await run(command, [
      "probe",
      "-u",
      "-c",
      "5",
      "-i",
      "0.05",
      "--json",
      "127.0.0.1",
      String(port),
    ]);
    check(r.code === 0, `probe -u exited ${r.code}: ${r.stderr}`);
    const report = JSON.parse(r.stdout);
    check(
      report.sent === 5 && report.received === 5 && report.loss === 0,
      `probe -u: ${r.stdout}`,
    );
    log(`ok: probe -u against echo -u: 5 sent, 5 received`);
  }

  // send/recv of a file.
  {
    const dir = await Deno.makeTempDir({ prefix: "denocat_smoke_" });
    try {
      const file = `${dir}/payload.bin`;
      const data = pattern(3 * MIB + 12345, 3);
      await Deno.writeFile(file, concat(data));
      const into = `${dir}/received`;
      await Deno.mkdir(into);
      await using recv = start(
        command,
        ["recv", "-v", "-o", into, "127.0.0.1", "0"],
        "null",
      );
      const port = await recv.port();
      const s = await run(command, ["send", "127.0.0.1", String(port), file]);
      check(s.code === 0, `send exited ${s.code}: ${s.stderr}`);
      const rs = await recv.child.status;
      check(rs.code === 0, `recv exited ${rs.code}: ${recv.stderr()}`);
      const got = await Deno.readFile(`${into}/payload.bin`);
      check(
        digest([got]) === digest(data),
        `received payload.bin differs (${got.length} bytes)`,
      );
      log(`ok: send/recv of a ${got.length}-byte file, sha256 verified`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}

function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      "version-is": { type: "string" },
      "target-is": { type: "string" },
    },
    allowPositionals: true,
  });
  if (positionals.length === 0) {
    console.error(
      "usage: smoke.ts [--version-is V] [--target-is T] -- COMMAND [ARGS...]",
    );
    Deno.exit(2);
  }
  try {
    await smoke(positionals, {
      ...(values["version-is"] ? { version: values["version-is"] } : {}),
      ...(values["target-is"] ? { target: values["target-is"] } : {}),
    });
    console.log("smoke: all checks passed");
  } catch (err) {
    console.error(`smoke: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
