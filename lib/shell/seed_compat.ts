/**
 * The seeds' "simulated ssh" servers, spoken exactly so their Python
 * clients work unchanged: one read of up to 1024 bytes is one command; the
 * reply is the length as `struct.pack('i', n)` (u32le) and then stdout
 * followed by stderr (`seed-simple`), or a u32le header length, a JSON
 * header `{"filename": ..., "md5": ..., "total_size": n}` and then the same
 * body (`seed-json`). No authentication exists in these protocols, so they
 * are served on loopback only.
 *
 * @module
 */
import { acceptLoop } from "../accept.ts";
import { createHash } from "node:crypto";
import { formatAddr } from "../address.ts";
import { describeError } from "../errors.ts";
import { encodePrefix } from "../frame/prefix.ts";
import { writeAll } from "../frame/reader.ts";
import { type Logger, silent } from "../log.ts";
import { closeQuietly, listen } from "../tcp/connect.ts";
import type { AuditSink } from "./audit.ts";
import { checkBindPolicy } from "./policy.ts";
import { requireProcessGroups, spawnGroup } from "./process_group.ts";

/** The seed protocols. */
export type SeedMode = "seed-simple" | "seed-json";

/** Every {@linkcode SeedMode}. */
export const SEED_MODES: readonly SeedMode[] = ["seed-simple", "seed-json"];

/** Bytes the seeds read per command: `conn.recv(1024)`. */
export const SEED_COMMAND_SIZE = 1024;

/** Largest reply by default (the whole reply is buffered to know its length): 64 MiB. */
export const SEED_DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;

/** The `filename` the seed-json header carries (the seeds send a placeholder too). */
export const SEED_FILENAME = "output";

/** Options for {@linkcode seedCompatServer}. */
export interface SeedCompatOptions {
  /** Which seed protocol. */
  mode: SeedMode;
  /** The shell that runs commands. @default {"/bin/sh"} */
  shell?: string;
  /** Working directory of commands. */
  cwd?: string;
  /** Kill a command's process group after this many ms; 0: never. @default {300000} */
  timeout?: number;
  /** Cut stdout + stderr at this many bytes (at most 2^31 - 1). @default {SEED_DEFAULT_MAX_OUTPUT} */
  maxOutput?: number;
  /** Connections served at once; more are closed at once. @default {8} */
  maxSessions?: number;
  /** Receives the `-v` diagnostics. */
  logger?: Logger;
  /** Receives one record per command. */
  audit?: AuditSink;
}

/** A running seed-compatible server. */
export interface SeedCompatServer extends AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Stops accepting, kills running commands, closes connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * The seed-json header for a body, formatted as Python's `json.dumps`
 * would.
 *
 * @example Usage
 * ```ts
 * import { seedJsonHeader } from "./seed_compat.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(
 *   new TextDecoder().decode(seedJsonHeader(new TextEncoder().encode("hi"))),
 *   '{"filename": "output", "md5": "49f68a5c8493ec2c0bf489821c21fc3b", "total_size": 2}',
 * );
 * ```
 */
export function seedJsonHeader(...parts: Uint8Array[]): Uint8Array {
  const md5 = createHash("md5");
  let total = 0;
  for (const p of parts) {
    md5.update(p);
    total += p.length;
  }
  return new TextEncoder().encode(
    `{"filename": ${JSON.stringify(SEED_FILENAME)}, "md5": "${
      md5.digest("hex")
    }", "total_size": ${total}}`,
  );
}

/** Collects a stream up to a shared budget; returns its chunks. */
async function collect(
  stream: ReadableStream<Uint8Array>,
  budget: { left: number; over: boolean },
  onOver: () => void,
): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) {
    if (budget.over) continue;
    if (chunk.length > budget.left) {
      if (budget.left > 0) chunks.push(chunk.subarray(0, budget.left));
      budget.left = 0;
      budget.over = true;
      onOver();
      continue;
    }
    budget.left -= chunk.length;
    chunks.push(chunk);
  }
  return chunks;
}

/**
 * Starts a seed-compatible server on `endpoint` (127.0.0.1 when no
 * hostname is given; loopback only).
 *
 * @example A seed-simple exchange
 * ```ts
 * import { seedCompatServer } from "./seed_compat.ts";
 * import { assertEquals } from "../_assert.ts";
 * // Windows has no process groups: the server refuses to start there.
 * if (Deno.build.os !== "windows") {
 *   await using server = seedCompatServer({ port: 0 }, { mode: "seed-simple" });
 *   using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
 *   await conn.write(new TextEncoder().encode("printf hello"));
 *   const buf = new Uint8Array(64);
 *   let got = 0;
 *   while (got < 9) got += (await conn.read(buf.subarray(got)))!;
 *   assertEquals(buf.subarray(0, 9).toHex(), "05000000" + new TextEncoder().encode("hello").toHex());
 * }
 * ```
 */
export function seedCompatServer(
  endpoint: { hostname?: string; port: number },
  options: SeedCompatOptions,
): SeedCompatServer {
  requireProcessGroups();
  const hostname = endpoint.hostname ?? "127.0.0.1";
  checkBindPolicy({ hostname, hasToken: false, compat: options.mode });
  const shell = options.shell ?? "/bin/sh";
  const timeout = options.timeout ?? 300_000;
  const maxOutput = Math.min(
    options.maxOutput ?? SEED_DEFAULT_MAX_OUTPUT,
    0x7fffffff,
  );
  const maxSessions = options.maxSessions ?? 8;
  const logger = options.logger ?? silent;
  const listener = listen({ hostname, port: endpoint.port });
  const conns = new Set<Deno.Conn>();
  const running = new Set<ReturnType<typeof spawnGroup>>();
  let closing = false;

  /**
   * Runs one command and writes its reply. `next` is the connection's next
   * read, already in flight: EOF or an error there while the command runs
   * means the client left (the seeds' clients never half-close; they close
   * when done), so the command's group is killed and no reply is written.
   * Data there is the next command, as the seeds' servers would read it.
   * Returns whether the client left.
   */
  async function runOne(
    conn: Deno.Conn,
    peer: string,
    cmd: Uint8Array,
    next: Promise<Uint8Array | null>,
  ): Promise<boolean> {
    const t0 = performance.now();
    const proc = spawnGroup(shell, cmd, {
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    running.add(proc);
    let timedOut = false;
    const timer = timeout > 0
      ? setTimeout(() => {
        timedOut = true;
        proc.terminate();
      }, timeout)
      : undefined;
    const budget = { left: maxOutput, over: false };
    const kill = () => proc.terminate();
    let gone = false;
    const leave = () => {
      if (gone) return;
      gone = true;
      logger.log(`${peer}: client gone while a command runs, killing it`);
      proc.terminate();
    };
    next.then((data) => data === null && leave(), leave);
    try {
      const [out, err, status] = await Promise.all([
        collect(proc.child.stdout, budget, kill),
        collect(proc.child.stderr, budget, kill),
        proc.status,
      ]);
      proc.kill("SIGKILL");
      const body = [...out, ...err];
      const total = body.reduce((a, c) => a + c.length, 0);
      if (gone) {
        // Nobody to reply to.
      } else if (options.mode === "seed-simple") {
        await writeAll(conn, encodePrefix(total, "u32le"));
      } else {
        const header = seedJsonHeader(...body);
        await writeAll(conn, encodePrefix(header.length, "u32le"));
        await writeAll(conn, header);
      }
      if (!gone) { for (const chunk of body) await writeAll(conn, chunk); }
      options.audit?.({
        event: "exec",
        peer,
        command: new TextDecoder().decode(cmd),
        exit: status.code,
        signal: status.signal ?? null,
        timedOut,
        truncated: budget.over,
        disconnected: gone,
        durationMs: Math.round(performance.now() - t0),
        bytesIn: 0,
        bytesOut: out.reduce((a, c) => a + c.length, 0),
        bytesErr: err.reduce((a, c) => a + c.length, 0),
      });
      return gone;
    } finally {
      clearTimeout(timer);
      running.delete(proc);
    }
  }

  async function serve(conn: Deno.Conn) {
    const peer = formatAddr(conn.remoteAddr);
    if (conns.size >= maxSessions) {
      options.audit?.({
        event: "busy",
        peer,
        reason: `${conns.size} connections, limit ${maxSessions}`,
      });
      closeQuietly(conn);
      return;
    }
    conns.add(conn);
    logger.log(`${peer}: connected (${options.mode})`);
    const buf = new Uint8Array(SEED_COMMAND_SIZE);
    // One read in flight at a time: it is the next command, and while a
    // command runs it is also how a vanished client is noticed.
    let inflight: Promise<Uint8Array | null> | undefined;
    const readNext = () =>
      inflight ??= conn.read(buf).then((n) => n ? buf.slice(0, n) : null);
    try {
      for (;;) {
        const cmd = await readNext();
        inflight = undefined;
        if (cmd === null) break;
        if (await runOne(conn, peer, cmd, readNext())) break;
      }
    } catch (err) {
      if (!closing) logger.log(`${peer}: ${describeError(err)}`);
    } finally {
      conns.delete(conn);
      closeQuietly(conn);
      logger.log(`${peer}: closed`);
    }
  }

  const loop = acceptLoop<Deno.Conn>(listener, async (conn) => {
    (conn as Deno.TcpConn).setNoDelay(true);
    await serve(conn);
  }, { logger });

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      closing = true;
      closeQuietly(listener);
      await loop.stopped;
      await Promise.all([...running].map((p) => p.terminate()));
      for (const c of conns) closeQuietly(c);
      await loop.drain();
    })();

  return {
    addr: listener.addr as Deno.NetAddr,
    close,
    [Symbol.asyncDispose]: close,
  };
}
