/**
 * The shell server: authenticates each session by challenge-response, runs
 * each requested command in its own process group, streams its stdout and
 * stderr as they come (never faster than the client reads), and reports
 * how it ended. A timeout, a vanished client or a shutdown kills the whole
 * group. Every command leaves one audit record.
 *
 * @module
 */
import { acceptLoop } from "../accept.ts";
import { formatAddr } from "../address.ts";
import { describeError, netError } from "../errors.ts";
import { IdleWatch } from "../idle.ts";
import { type Logger, silent, Throttle } from "../log.ts";
import {
  closeQuietly,
  closeWriteQuietly,
  type ListenOptions,
} from "../tcp/connect.ts";
import { listen } from "../tcp/connect.ts";
import { safeLogger, show } from "../transfer/show.ts";
import { envPolicy, refusedNames } from "./accept_env.ts";
import {
  auditCommand,
  type AuditRecord,
  type AuditSink,
  type ExecRecord,
} from "./audit.ts";
import { AuthKey, createNonce, type Token, tokenBytes } from "./auth.ts";
import {
  type AuthAttempt,
  AuthGate,
  type AuthThrottleOptions,
  sourceKey,
} from "./auth_gate.ts";
import { checkBindPolicy } from "./policy.ts";
import {
  type GroupProcess,
  PTY_HELPER,
  requireProcessGroups,
  signalName,
  signalNumber,
  spawnGroup,
} from "./process_group.ts";
import {
  DATA_CHUNK_SIZE,
  decodeClientHello,
  decodeExec,
  decodeSignal,
  decodeWindow,
  encodeError,
  encodeExit,
  encodeMessage,
  encodeServerHello,
  ErrorCode,
  type ExecRequest,
  FRAME_HEADER_SIZE,
  MAX_FRAME_LENGTH,
  MsgType,
  PRE_AUTH_MAX_FRAME,
  PROTOCOL_VERSION,
  ShellProtocolError,
  writeHeader,
} from "./protocol.ts";
import { acceptTls, serverTlsContext } from "./tls_server.ts";
import { MessageReader, MessageWriter } from "./wire.ts";

/** Options for {@linkcode shellServer}. */
export interface ShellServerOptions extends ListenOptions {
  /** Shared secret clients must prove they know: bytes, or text as UTF-8. */
  token?: Token;
  /** Serve without a token (loopback only). @default {false} */
  insecureNoAuth?: boolean;
  /** The shell that runs commands (`SHELL -c COMMAND`). @default {"/bin/sh"} */
  shell?: string;
  /** Working directory of commands. @default {the server's} */
  cwd?: string;
  /** Kill a command (its whole process group) after this many ms; 0: never. @default {300000} */
  timeout?: number;
  /** Stop a command once its stdout + stderr reach this many bytes. @default {Infinity} */
  maxOutput?: number;
  /** Sessions served at once; more are told the server is busy. @default {8} */
  maxSessions?: number;
  /**
   * Connections that have not sent their hello yet, at once; they hold no
   * session slot. Beyond this many, the oldest of the source holding the
   * most is dropped. A connection that has sent its hello is never dropped
   * this way.
   * @default {64}
   */
  maxPending?: number;
  /**
   * Such connections from one source (an IPv4 address or an IPv6 /64);
   * beyond this many, that source's oldest is dropped.
   * @default {8}
   */
  maxPendingPerSource?: number;
  /**
   * Whether a peer may connect at all (`--allow`/`--deny`): one refused is
   * closed as soon as it is accepted, before TLS and before a byte is
   * read, and logged (at most once a second, with a count).
   * @default {everyone}
   */
  accept?: (peer: Deno.NetAddr) => boolean;
  /** Serve over TLS with this PEM certificate chain and key. */
  tls?: { cert: string; key: string };
  /**
   * Environment variables clients may set: names, or patterns with `*` and
   * `?` (ssh's `AcceptEnv`). A command setting any other is refused.
   * @default {[] (none)}
   */
  acceptEnv?: string[];
  /** Let clients choose the working directory. @default {true} */
  allowCwd?: boolean;
  /** Time allowed for the hello and authentication, in ms. @default {10000} */
  handshakeTimeout?: number;
  /**
   * End an authenticated session that sends nothing for this many ms while
   * no command runs (a running command is bounded by `timeout`).
   * @default {no limit}
   */
  idleTimeout?: number;
  /** Grace between SIGTERM and SIGKILL when killing a group, in ms. @default {2000} */
  killGraceMs?: number;
  /**
   * After the shell exits, how long to keep streaming from processes it
   * left behind before killing its group, in ms.
   * @default {1000}
   */
  lingerMs?: number;
  /**
   * Once the group is killed, how long its output pipes may stay open
   * (held by processes that left the group with `setsid`) before the
   * server stops reading them and ends the command anyway, in ms.
   * @default {250}
   */
  pipeGraceMs?: number;
  /** How repeated authentication failures are slowed down. */
  throttle?: AuthThrottleOptions;
  /** Receives the `-v` diagnostics (peer text in them is escaped). @default {silent} */
  logger?: Logger;
  /** Receives a record per command start and end, and per refused session. */
  audit?: AuditSink;
}

/** A running shell server. */
export interface ShellServer extends AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Sessions open now. */
  readonly active: number;
  /** Connections that have not sent their hello yet. */
  readonly pending: number;
  /** Commands run so far. */
  readonly commands: number;
  /**
   * Stops accepting, kills running commands, ends every session; done
   * within {@linkcode SHUTDOWN_MS} whatever the commands do. Idempotent.
   */
  close(): Promise<void>;
}

/** What a session runs over: a TCP connection, or TLS on top of one. */
interface SessionConn {
  readonly remoteAddr: Deno.Addr;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  /** TLS only: resolves once the TLS handshake is done. */
  handshake?(): Promise<void>;
}

interface Session {
  conn: SessionConn;
  writer: MessageWriter;
  command: CommandRun | undefined;
  /** `host:port` of the peer. */
  peer: string;
  /** What the peer counts against ({@linkcode sourceKey}). */
  source: string;
  /** Set when the connection is dropped while pending (see GateTicket). */
  dropped: boolean;
  /** Past the authentication gate (it may be written to). */
  admitted: boolean;
  /** When the handshake must be over (performance.now()), while it runs. */
  deadline: number;
}

interface CommandRun {
  proc: GroupProcess;
  stdin?: WritableStreamDefaultWriter<Uint8Array>;
  stdinOpen: boolean;
  /** Resolves when the server stops feeding stdin. */
  stdinStopped: Promise<void>;
  stopStdin(): void;
  bytesIn: number;
  disconnected: boolean;
  /** EXIT is queued: the output pumps send nothing more. */
  outputClosed: boolean;
  finished: Promise<void>;
}

/** How long {@linkcode ShellServer.close} may take at most, in ms. */
export const SHUTDOWN_MS = 5000;

/**
 * How long an ERROR written just before the server drops a connection may
 * take: a peer that does not read (or never finished the TLS handshake)
 * must not keep the connection open.
 */
const ERROR_GRACE_MS = 250;

const PROBE_FRAME = encodeMessage(MsgType.Probe);

/**
 * After the client half-closes while a command runs, the server writes an
 * empty PROBE this often when nothing else was written, so that a client
 * that is really gone (a full close looks like a half-close until a write
 * fails) is noticed even when the command prints nothing.
 */
const PROBE_INTERVAL_MS = 500;

/** Signals a client may send to its command's process group (ssh's list). */
const FORWARDED_SIGNALS: ReadonlySet<string> = new Set([
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGKILL",
  "SIGTERM",
  "SIGUSR1",
  "SIGUSR2",
  "SIGALRM",
]);

/** Whether `promise` settles within `ms`; never rejects. */
async function settlesWithin(
  promise: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([
    promise.then(() => true, () => true),
    new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
  ]);
  clearTimeout(timer);
  return settled;
}

/** Whether an executable `name` is on PATH. */
function onPath(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir || "."}/${name}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

/**
 * Reads the CLIENT_HELLO's body, exactly its bytes and no more (the
 * session's own reader takes over after it), in a buffer of
 * {@linkcode PRE_AUTH_MAX_FRAME} + 4 bytes: a longer frame, or any other
 * message, is a protocol error before its body is read.
 */
async function readHello(conn: SessionConn): Promise<Uint8Array> {
  const buf = new Uint8Array(FRAME_HEADER_SIZE - 1 + PRE_AUTH_MAX_FRAME);
  let got = 0;
  let want = FRAME_HEADER_SIZE;
  for (;;) {
    while (got < want) {
      const n = await conn.read(buf.subarray(got, want));
      if (n === null) {
        throw new ShellProtocolError(
          "connection closed by the client while waiting for the client hello",
        );
      }
      got += n;
    }
    if (want > FRAME_HEADER_SIZE) break;
    const length = (buf[0]! << 24 >>> 0) + (buf[1]! << 16) + (buf[2]! << 8) +
      buf[3]!;
    if (length < 1 || length > PRE_AUTH_MAX_FRAME) {
      throw new ShellProtocolError(
        length >= 1 && length <= MAX_FRAME_LENGTH
          ? `protocol error: message of ${length} bytes before authentication (limit ${PRE_AUTH_MAX_FRAME})`
          : `protocol error: frame length ${length} out of range (not a denocat shell peer?)`,
      );
    }
    if (buf[4] !== MsgType.ClientHello) {
      throw new ShellProtocolError(
        `protocol error: expected the client hello, got message type 0x${
          buf[4]!.toString(16)
        }`,
      );
    }
    want = FRAME_HEADER_SIZE - 1 + length;
    if (want === FRAME_HEADER_SIZE) break;
  }
  return buf.subarray(FRAME_HEADER_SIZE, want);
}

/**
 * Starts a shell server on `endpoint` (127.0.0.1 when no hostname is given).
 * Throws a `UsageError` when the address/authentication policy forbids it
 * (see `checkBindPolicy`).
 *
 * @example One command, end to end
 * ```ts
 * import { shellServer } from "./server.ts";
 * import { connectShell } from "./client.ts";
 * import { assertEquals } from "../_assert.ts";
 * // Windows has no process groups: the server refuses to start there.
 * if (Deno.build.os !== "windows") {
 *   await using server = shellServer({ port: 0 }, { token: "s3cret" });
 *   await using session = await connectShell(
 *     { hostname: "127.0.0.1", port: server.addr.port }, { token: "s3cret" });
 *   const out: Uint8Array[] = [];
 *   const exit = await session.exec("echo hi; exit 7", {
 *     stdout: { write: (p) => (out.push(p.slice()), Promise.resolve(p.length)) },
 *   });
 *   assertEquals(exit.code, 7);
 *   assertEquals(new TextDecoder().decode(out[0]), "hi\n");
 * }
 * ```
 */
export function shellServer(
  endpoint: { hostname?: string; port: number },
  options: ShellServerOptions = {},
): ShellServer {
  requireProcessGroups();
  const hostname = endpoint.hostname ?? "127.0.0.1";
  const token = options.token !== undefined
    ? tokenBytes(options.token)
    : undefined;
  if (token !== undefined && token.length === 0) {
    throw new ShellProtocolError("cannot use an empty token");
  }
  checkBindPolicy({
    hostname,
    hasToken: token !== undefined,
    insecureNoAuth: options.insecureNoAuth ?? false,
  });
  const shell = options.shell ?? "/bin/sh";
  const timeout = options.timeout ?? 300_000;
  const maxOutput = options.maxOutput ?? Infinity;
  const maxSessions = options.maxSessions ?? 8;
  const acceptEnv = envPolicy(options.acceptEnv ?? []);
  const allowCwd = options.allowCwd ?? true;
  const handshakeTimeout = options.handshakeTimeout ?? 10_000;
  const killGrace = options.killGraceMs ?? 2000;
  const linger = options.lingerMs ?? 1000;
  const pipeGrace = options.pipeGraceMs ?? 250;
  const logger = safeLogger(options.logger ?? silent);
  const audit = (r: AuditRecord) => options.audit?.(r);
  const gate = new AuthGate(options.throttle);
  const authKey = token !== undefined ? AuthKey.import(token) : undefined;
  const maxPending = options.maxPending ?? 64;
  const maxPendingPerSource = options.maxPendingPerSource ?? 8;
  let ptyAvailable: boolean | undefined;

  let tlsContext: ReturnType<typeof serverTlsContext> | undefined;
  if (options.tls) {
    try {
      tlsContext = serverTlsContext(options.tls);
    } catch (err) {
      throw netError(`listen on ${hostname}:${endpoint.port} with TLS`, err);
    }
  }
  const listener = listen(
    { hostname, port: endpoint.port },
    {
      ...(options.family ? { family: options.family } : {}),
      ...(options.keepalive ? { keepalive: true } : {}),
    },
  );
  const sessions = new Set<Session>();
  /** Connections that have not sent their hello, per source, oldest first. */
  const pending = new Map<string, Session[]>();
  let pendingCount = 0;
  const idleMs = options.idleTimeout;
  const idle = idleMs
    ? new IdleWatch<Session>(idleMs, (s) => {
      logger.log(`${s.peer}: idle, session closed`);
      dropWithError(s, ErrorCode.Timeout, `idle for ${idleMs / 1000} s`);
    })
    : undefined;
  let commands = 0;
  let closing = false;
  let closed: Promise<void> | undefined;
  let evicted = 0;
  const evictLog = new Throttle(1000);

  const sendError = (s: Session, code: number, message: string) =>
    s.writer.send(encodeMessage(MsgType.Error, encodeError(code, message)))
      .catch(() => {});

  /**
   * Sends an ERROR and closes the connection, waiting for the write at
   * most {@linkcode ERROR_GRACE_MS} (and a sweep): never longer, whatever
   * the peer does.
   */
  function dropWithError(
    s: Session,
    code: number,
    message: string,
  ): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const end = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearDeadline(s);
        closeQuietly(s.conn);
        resolve();
      };
      // While shutting down the sweep is gone: a timer of its own then.
      if (closed) timer = setTimeout(end, ERROR_GRACE_MS);
      else setDeadline(s, ERROR_GRACE_MS, end);
      sendError(s, code, message).then(end);
    });
  }

  /** Half-closes, lets the peer read what was sent, then closes (within 1 s). */
  async function finish(conn: SessionConn): Promise<void> {
    const timer = setTimeout(() => closeQuietly(conn), 1000);
    try {
      await closeWriteQuietly(conn as unknown as Deno.TcpConn);
    } catch { /* a TLS peer that vanished mid-handshake */ }
    try {
      const buf = new Uint8Array(512);
      while ((await conn.read(buf)) !== null) { /* drain */ }
    } catch { /* closed or reset */ }
    clearTimeout(timer);
    closeQuietly(conn);
  }

  function addPending(s: Session): void {
    const own = pending.get(s.source);
    if (own && own.length >= maxPendingPerSource) {
      evict(
        own[0]!,
        `${own.length} connections from ${s.source} authenticating, limit ${maxPendingPerSource}`,
      );
    } else if (pendingCount >= maxPending) {
      let most: Session[] | undefined;
      for (const list of pending.values()) {
        if (!most || list.length > most.length) most = list;
      }
      if (most?.length) {
        evict(
          most[0]!,
          `${maxPending} connections authenticating, limit reached (${most.length} from ${
            most[0]!.source
          })`,
        );
      }
    }
    const list = pending.get(s.source);
    if (list) list.push(s);
    else pending.set(s.source, [s]);
    pendingCount++;
  }

  function removePending(s: Session): void {
    const list = pending.get(s.source);
    const i = list?.indexOf(s) ?? -1;
    if (i < 0) return;
    list!.splice(i, 1);
    if (list!.length === 0) pending.delete(s.source);
    pendingCount--;
  }

  /**
   * Drops a connection that has not sent its hello, to make room. Audited
   * at most once a second, with the count since the last record, so that a
   * flood cannot fill the log.
   */
  function evict(victim: Session, reason: string): void {
    removePending(victim);
    evicted++;
    if (evictLog.due()) {
      audit({
        event: "busy",
        peer: victim.peer,
        reason: `dropped: ${reason}${
          evicted > 1 ? ` (${evicted} dropped since the last record)` : ""
        }`,
      });
      evicted = 0;
    }
    victim.dropped = true;
    gate.cancel(victim.source, victim);
    if (victim.admitted) {
      dropWithError(victim, ErrorCode.Busy, `server busy: ${reason}`);
    } else {
      closeQuietly(victim.conn);
    }
  }

  /**
   * Sends the hello, reads the client's (at most PRE_AUTH_MAX_FRAME bytes)
   * and checks its proof. Returns the server's proof for READY, or
   * `undefined` when the connection is to be closed at once.
   */
  async function handshake(
    s: Session,
    attempt: AuthAttempt | undefined,
  ): Promise<Uint8Array | undefined> {
    const { peer } = s;
    idle?.add(s);
    const nonce = token !== undefined ? createNonce() : undefined;
    await s.writer.send(
      encodeMessage(
        MsgType.ServerHello,
        encodeServerHello(
          nonce ? { version: PROTOCOL_VERSION, nonce } : {
            version: PROTOCOL_VERSION,
          },
        ),
      ),
    );
    const body = await readHello(s.conn);
    // It has spoken: from now on it is never dropped to make room.
    removePending(s);
    idle?.delete(s); // the rest is our turn
    const hello = decodeClientHello(body);
    if (hello.version !== PROTOCOL_VERSION) {
      audit({
        event: "protocol-error",
        peer,
        reason: `version ${hello.version}`,
      });
      await dropWithError(
        s,
        ErrorCode.Version,
        `unsupported protocol version ${hello.version} (server speaks ${PROTOCOL_VERSION})`,
      );
      return undefined;
    }
    if (token !== undefined && nonce) {
      const key = await authKey!;
      if (
        !hello.nonce || !hello.mac ||
        !(await key.verify("client", nonce, hello.nonce, hello.mac))
      ) {
        const { failures, delayMs } = attempt!.fail();
        audit({
          event: "auth-failed",
          peer,
          reason: hello.mac ? "wrong token" : "no token given",
          failures,
          delayMs,
        });
        // Answered and closed at once: the penalty waits for the next attempt.
        await dropWithError(s, ErrorCode.Auth, "authentication failed");
        return undefined;
      }
      attempt!.succeed();
      // The server's own proof, sent with READY.
      return await key.proof("server", nonce, hello.nonce);
    }
    return new Uint8Array(0); // the caller sends READY once a slot is free
  }

  function startCommand(
    s: Session,
    req: ExecRequest,
  ): CommandRun | undefined {
    const { peer } = s;
    const t0 = performance.now();
    const cmdText = auditCommand(req.command);
    const refuse = (reason: string) => {
      audit({ event: "exec-refused", peer, reason: `${reason}: ${cmdText}` });
      logger.log(`${peer}: command refused: ${reason}`);
      sendError(s, ErrorCode.Refused, reason);
      return undefined;
    };
    const refused = req.env ? refusedNames(acceptEnv, req.env) : [];
    if (refused.length > 0) {
      const names = refused.slice(0, 5).map((n) => show(n, 64)).join(", ");
      return refuse(
        `environment variable${refused.length > 1 ? "s" : ""} ${names}${
          refused.length > 5 ? ` and ${refused.length - 5} more` : ""
        } not accepted by this server (it accepts ${
          acceptEnv.patterns.length ? acceptEnv.patterns.join(",") : "none"
        }; see --accept-env)`,
      );
    }
    if (req.cwd !== undefined && !allowCwd) {
      return refuse("this server does not let clients choose the directory");
    }
    if (req.pty) {
      // util-linux's script; the BSD one (macOS) takes other arguments.
      ptyAvailable ??= Deno.build.os === "linux" && onPath(PTY_HELPER);
      if (!ptyAvailable) {
        return refuse(
          Deno.build.os === "linux"
            ? `this server cannot give commands a terminal: util-linux ${PTY_HELPER} is not installed`
            : `this server cannot give commands a terminal: it needs util-linux ${PTY_HELPER} (Linux only)`,
        );
      }
    }
    let proc: GroupProcess;
    try {
      const cwd = req.cwd ?? options.cwd;
      proc = spawnGroup(shell, req.command, {
        stdin: req.stdin,
        ...(cwd !== undefined ? { cwd } : {}),
        ...(req.env ? { env: req.env } : {}),
        ...(req.pty ? { pty: req.pty } : {}),
      });
    } catch (err) {
      const where = req.cwd ?? options.cwd;
      return refuse(
        `cannot start ${req.pty ? PTY_HELPER : shell}${
          where !== undefined ? ` in ${show(where)}` : ""
        }: ${describeError(err)}`,
      );
    }
    commands++;
    audit({
      event: "exec-start",
      peer,
      command: cmdText,
      pid: proc.child.pid,
      pty: req.pty !== undefined,
    });
    let timedOut = false;
    let truncated = false;
    let outputTotal = 0;
    const counts = { [MsgType.Stdout]: 0, [MsgType.Stderr]: 0 };
    let stopStdin = () => {};
    const run: CommandRun = {
      proc,
      stdinOpen: req.stdin || req.pty !== undefined,
      stdinStopped: new Promise<void>((r) => stopStdin = r),
      stopStdin: () => {},
      bytesIn: 0,
      disconnected: false,
      outputClosed: false,
      finished: Promise.resolve(),
    };
    run.stopStdin = () => {
      run.stdinOpen = false;
      stopStdin();
    };
    if (run.stdinOpen) run.stdin = proc.child.stdin.getWriter();

    const timer = timeout > 0
      ? setTimeout(() => {
        timedOut = true;
        logger.log(`${peer}: command timed out after ${timeout} ms, killing`);
        proc.terminate(killGrace);
      }, timeout)
      : undefined;

    const readers: ReadableStreamBYOBReader[] = [];
    const pump = async (
      stream: ReadableStream<Uint8Array>,
      type: typeof MsgType.Stdout | typeof MsgType.Stderr,
    ) => {
      const reader = stream.getReader({ mode: "byob" });
      readers.push(reader);
      let buf = new Uint8Array(FRAME_HEADER_SIZE + DATA_CHUNK_SIZE);
      try {
        for (;;) {
          const { value, done } = await reader.read(
            buf.subarray(FRAME_HEADER_SIZE),
          );
          if (done || !value || run.outputClosed) break;
          buf = new Uint8Array(value.buffer);
          let n = value.length;
          if (outputTotal + n > maxOutput) {
            n = maxOutput - outputTotal;
            if (!truncated) {
              truncated = true;
              logger.log(`${peer}: output limit of ${maxOutput} bytes reached`);
              proc.terminate(killGrace);
            }
          }
          if (n > 0) {
            outputTotal += n;
            counts[type] += n;
            writeHeader(buf, type, n);
            // Awaiting the socket before the next read is the backpressure.
            await s.writer.send(buf.subarray(0, FRAME_HEADER_SIZE + n));
          }
        }
      } catch (err) {
        if (!run.disconnected && !run.outputClosed) {
          run.disconnected = true;
          logger.log(`${peer}: client gone (${describeError(err)}), killing`);
          proc.terminate(killGrace);
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
    };

    run.finished = (async () => {
      const pumps = Promise.all([
        pump(proc.child.stdout, MsgType.Stdout),
        pump(proc.child.stderr, MsgType.Stderr),
      ]);
      const status = await proc.status;
      // Processes the shell left behind get `linger` ms to finish writing.
      const drained = await settlesWithin(pumps, linger);
      if (!drained) proc.kill("SIGTERM");
      proc.kill("SIGKILL");
      // The group is gone now; whatever still holds the pipes left it.
      let escaped = false;
      if (!drained && !(await settlesWithin(pumps, pipeGrace))) {
        escaped = true;
        logger.log(
          `${peer}: processes outside the command's group (setsid?) hold its output open; no longer reading it`,
        );
      }
      clearTimeout(timer);
      run.outputClosed = true;
      for (const r of readers) r.cancel().catch(() => {});
      if (run.stdin) {
        run.stopStdin();
        run.stdin.abort().catch(() => {});
      }
      const durationMs = performance.now() - t0;
      const signal = status.signal ? signalNumber(status.signal) : 0;
      s.command = undefined;
      if (sessions.has(s) && !run.disconnected) idle?.add(s);
      // Queued behind any output frame already on its way; not awaited, so
      // that a client that does not read cannot hold back the audit.
      s.writer.send(
        encodeMessage(
          MsgType.Exit,
          encodeExit({
            code: status.code,
            signal,
            timedOut,
            truncated,
            durationMs,
          }),
        ),
      ).catch(() => {});
      const record: ExecRecord = {
        event: "exec",
        peer,
        command: cmdText,
        exit: status.code,
        signal: status.signal ?? null,
        timedOut,
        truncated,
        disconnected: run.disconnected,
        ...(escaped ? { escaped } : {}),
        durationMs: Math.round(durationMs),
        bytesIn: run.bytesIn,
        bytesOut: counts[MsgType.Stdout],
        bytesErr: counts[MsgType.Stderr],
      };
      audit(record);
    })();
    return run;
  }

  /**
   * The client half-closed while `run` runs: close the command's stdin, let
   * it finish and deliver its output, and probe the connection meanwhile so
   * a client that is really gone still gets its command killed.
   */
  async function halfClosed(s: Session, run: CommandRun): Promise<void> {
    const { peer } = s;
    logger.log(`${peer}: client finished sending; the command runs on`);
    if (run.stdin && run.stdinOpen) {
      run.stopStdin();
      run.stdin.close().catch(() => {});
    }
    let seen = s.writer.written;
    let probing = false;
    const probe = setInterval(() => {
      if (probing || run.disconnected || run.outputClosed) return;
      if (s.writer.written !== seen) {
        seen = s.writer.written;
        return;
      }
      probing = true;
      s.writer.send(PROBE_FRAME).then(() => {
        probing = false;
        seen = s.writer.written;
      }, (err) => {
        if (run.disconnected) return;
        run.disconnected = true;
        logger.log(`${peer}: client gone (${describeError(err)}), killing`);
        run.proc.terminate(killGrace);
      });
    }, PROBE_INTERVAL_MS);
    try {
      await run.finished;
    } finally {
      clearInterval(probe);
    }
  }

  /** Serves one authenticated session's messages until it ends. */
  async function session(s: Session, reader: MessageReader): Promise<void> {
    const { peer } = s;
    for (;;) {
      const head = await reader.next();
      if (head === null) {
        // End of input from the client: no more messages, not "gone".
        // A running command gets STDIN_EOF and runs to its end.
        if (s.command) await halfClosed(s, s.command);
        return;
      }
      idle?.touch(s);
      const run = s.command;
      switch (head.type) {
        case MsgType.Exec: {
          const body = await reader.body(head.length);
          if (run) {
            throw new ShellProtocolError(
              "protocol error: exec while a command is running",
            );
          }
          const req = decodeExec(body);
          s.command = startCommand(s, req);
          if (s.command) idle?.delete(s);
          break;
        }
        case MsgType.Stdin:
          if (run?.stdin && run.stdinOpen) {
            const w = run.stdin;
            run.bytesIn += head.length;
            await reader.copyBody({
              write: async (p) => {
                // A command that closed its stdin discards the rest; one
                // that ended stops waiting for a reader that never comes.
                if (run.stdinOpen) {
                  await Promise.race([
                    w.write(p).catch(() => run.stopStdin()),
                    run.stdinStopped,
                  ]);
                }
                return p.length;
              },
            }, head.length);
          } else {
            await reader.skip(head.length);
          }
          break;
        case MsgType.StdinEof:
          await reader.skip(head.length);
          if (run?.stdin && run.stdinOpen) {
            run.stopStdin();
            run.stdin.close().catch(() => {});
          }
          break;
        case MsgType.Signal: {
          const number = decodeSignal(await reader.body(head.length));
          const name = signalName(number);
          if (!run) break; // it ended meanwhile
          if (!FORWARDED_SIGNALS.has(name)) {
            logger.log(`${peer}: ${name} not forwarded (not allowed)`);
            break;
          }
          logger.log(`${peer}: ${name} to the command's process group`);
          run.proc.kill(name as Deno.Signal);
          break;
        }
        case MsgType.Window: {
          const size = decodeWindow(await reader.body(head.length));
          run?.proc.resize?.(size.rows, size.cols);
          break;
        }
        default:
          throw new ShellProtocolError(
            `protocol error: unexpected message type 0x${
              head.type.toString(16)
            }`,
          );
      }
    }
  }

  /**
   * Deadlines of connections in their handshake or being dropped, kept by
   * one sweep for all: a timer per connection costs more than the rest of
   * a pending connection, and creating one per connection made the
   * server's memory grow with every guess.
   */
  const deadlines = new Map<Session, { at: number; expire: () => void }>();
  let sweep: ReturnType<typeof setInterval> | undefined;
  const sweepMs = Math.min(250, Math.max(10, handshakeTimeout / 4));

  function setDeadline(s: Session, ms: number, expire: () => void): void {
    deadlines.set(s, { at: performance.now() + ms, expire });
    if (sweep !== undefined || closed) return;
    sweep = setInterval(() => {
      const now = performance.now();
      for (const [h, d] of deadlines) {
        if (d.at > now) continue;
        deadlines.delete(h);
        d.expire();
      }
    }, sweepMs);
    Deno.unrefTimer(sweep);
  }

  function clearDeadline(s: Session): void {
    deadlines.delete(s);
  }

  /** Refusals of a penalized source's surplus, counted, not logged one by one. */
  let surplus = 0;
  const surplusLog = new Throttle(1000, 0);

  /** Peers refused by the access list, counted, logged at most once a second. */
  let denied = 0;
  const deniedLog = new Throttle(1000);

  async function serve(raw: Deno.TcpConn): Promise<void> {
    const peerAddr = raw.remoteAddr as Deno.NetAddr;
    if (options.accept && !options.accept(peerAddr)) {
      closeQuietly(raw);
      denied++;
      if (deniedLog.due()) {
        audit({
          event: "busy",
          peer: formatAddr(peerAddr),
          reason: `refused by the access list (${denied} refused so far)`,
        });
      }
      return;
    }
    const source = sourceKey(peerAddr.hostname);
    // A source that has failed to authenticate and already has its fill
    // waiting is turned away before anything is allocated for it: its
    // queue is served in order anyway, and a guesser reconnecting in a loop
    // must cost no more than an accept.
    if (
      token !== undefined &&
      (pending.get(source)?.length ?? 0) >= maxPendingPerSource &&
      gate.failures(source) > 0
    ) {
      closeQuietly(raw);
      surplus++;
      if (surplusLog.due()) {
        audit({
          event: "busy",
          peer: formatAddr(peerAddr),
          reason:
            `refused: ${maxPendingPerSource} connections from ${source} already wait for their turn after failed logins (${surplus} refused so far)`,
        });
      }
      return;
    }
    raw.setNoDelay(true);
    const s: Session = {
      conn: raw,
      writer: new MessageWriter(raw),
      command: undefined,
      peer: formatAddr(peerAddr),
      source,
      dropped: false,
      admitted: false,
      deadline: 0,
    };
    const { peer } = s;
    addPending(s);
    let attempt: AuthAttempt | undefined;
    let authenticated = false;
    let expired = false;
    try {
      if (token !== undefined) {
        // The source's penalty is served here, before a byte is read.
        attempt = gate.admitNow(s.source) ?? await gate.admit(s.source, s);
        if (!attempt) return;
      }
      if (s.dropped || closing) return;
      // One deadline covers the TLS handshake, a busy refusal and the
      // login: when it passes, the connection is closed at once, whatever
      // is pending on it (a write to a TLS peer that never handshakes waits
      // forever).
      setDeadline(s, handshakeTimeout, () => {
        expired = true;
        audit({ event: "protocol-error", peer, reason: "handshake timed out" });
        if (s.admitted) {
          dropWithError(s, ErrorCode.Timeout, "handshake timed out");
        } else closeQuietly(s.conn);
      });
      if (tlsContext) {
        // The TLS state (tens of KiB) waits for the peer's first bytes: a
        // silent connection costs no more than a plain one.
        const first = new Uint8Array(256);
        const n = await raw.read(first).catch(() => null);
        if (n === null || s.dropped || closing) return;
        s.conn = acceptTls(raw, tlsContext, first.subarray(0, n));
        s.writer = new MessageWriter(s.conn);
      }
      s.admitted = true;
      await s.conn.handshake?.();
      if (sessions.size >= maxSessions || closing) {
        removePending(s);
        const reason = closing
          ? "server shutting down"
          : `server busy: ${sessions.size} sessions active, limit ${maxSessions}`;
        audit({ event: "busy", peer, reason });
        await sendError(
          s,
          closing ? ErrorCode.Shutdown : ErrorCode.Busy,
          reason,
        );
        if (!expired) await finish(s.conn);
        return;
      }
      const proof = await handshake(s, attempt);
      clearDeadline(s);
      if (!proof) return;
      if (sessions.size >= maxSessions || closing) {
        const reason = closing
          ? "server shutting down"
          : `server busy: ${sessions.size} sessions active, limit ${maxSessions}`;
        audit({ event: "busy", peer, reason });
        await dropWithError(
          s,
          closing ? ErrorCode.Shutdown : ErrorCode.Busy,
          reason,
        );
        return;
      }
      authenticated = true;
      sessions.add(s);
      logger.log(`${peer}: session opened (${sessions.size} active)`);
      await s.writer.send(encodeMessage(MsgType.Ready, proof));
      idle?.add(s);
      // Authenticated: a full-size buffer (the hello was read exactly).
      await session(s, new MessageReader(s.conn));
    } catch (err) {
      if (!expired && !closing) {
        if (err instanceof ShellProtocolError) {
          audit({ event: "protocol-error", peer, reason: err.message });
          if (authenticated) {
            await sendError(s, ErrorCode.Protocol, err.message);
          } else {
            await dropWithError(s, ErrorCode.Protocol, err.message);
          }
        } else {
          logger.log(`${peer}: ${describeError(err)}`);
        }
      }
    } finally {
      clearDeadline(s);
      attempt?.abandon();
      removePending(s);
      const run = s.command;
      if (run) {
        // The client went away (or broke the protocol) mid-command.
        run.disconnected = true;
        logger.log(`${peer}: client gone while a command runs, killing it`);
        await run.proc.terminate(killGrace);
        await run.finished;
      }
      idle?.delete(s);
      if (authenticated && !closing) await finish(s.conn);
      else closeQuietly(s.conn);
      if (sessions.delete(s)) {
        logger.log(`${peer}: session closed (${sessions.size} active)`);
      }
    }
  }

  const loop = acceptLoop(listener as Deno.TcpListener, serve, { logger });

  const close = () =>
    closed ??= (async () => {
      const t0 = performance.now();
      const left = () => SHUTDOWN_MS - (performance.now() - t0);
      closing = true;
      closeQuietly(listener);
      gate.close();
      await loop.stopped;
      for (const list of pending.values()) {
        for (const s of list) {
          s.dropped = true;
          closeQuietly(s.conn);
        }
      }
      const graceful = Promise.all([...sessions].map(async (s) => {
        const run = s.command;
        if (run) {
          await run.proc.terminate(killGrace);
          await run.finished;
        }
        await dropWithError(s, ErrorCode.Shutdown, "server shutting down");
      }));
      // Whatever the commands and clients do, the end is bounded.
      await settlesWithin(graceful, Math.max(0, left() - 1000));
      for (const s of sessions) closeQuietly(s.conn);
      await settlesWithin(loop.drain(), Math.max(0, left() - 200));
      clearInterval(sweep);
      for (const d of deadlines.values()) d.expire();
      deadlines.clear();
      idle?.[Symbol.dispose]();
    })();

  return {
    addr: listener.addr as Deno.NetAddr,
    get active() {
      return sessions.size;
    },
    get pending() {
      return pendingCount;
    },
    get commands() {
      return commands;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
