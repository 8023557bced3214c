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
import { type Logger, silent } from "../log.ts";
import {
  closeQuietly,
  closeWriteQuietly,
  type ListenOptions,
} from "../tcp/connect.ts";
import { listen } from "../tcp/connect.ts";
import {
  auditCommand,
  type AuditRecord,
  type AuditSink,
  type ExecRecord,
} from "./audit.ts";
import {
  authProof,
  AuthThrottle,
  type AuthThrottleOptions,
  createNonce,
  verifyProof,
} from "./auth.ts";
import { checkBindPolicy } from "./policy.ts";
import {
  type GroupProcess,
  requireProcessGroups,
  signalNumber,
  spawnGroup,
} from "./process_group.ts";
import {
  DATA_CHUNK_SIZE,
  decodeClientHello,
  decodeExec,
  encodeError,
  encodeExit,
  encodeMessage,
  encodeServerHello,
  ErrorCode,
  type ExecRequest,
  FRAME_HEADER_SIZE,
  MsgType,
  PROTOCOL_VERSION,
  ShellProtocolError,
  writeHeader,
} from "./protocol.ts";
import { acceptTls, serverTlsContext } from "./tls_server.ts";
import { MessageReader, MessageWriter } from "./wire.ts";

/** Options for {@linkcode shellServer}. */
export interface ShellServerOptions extends ListenOptions {
  /** Shared secret clients must prove they know. */
  token?: string;
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
   * Connections still authenticating at once; they do not hold a session
   * slot. Beyond this many, the one waiting longest is dropped, so idle
   * connections cannot lock out a client that authenticates at once.
   * @default {64}
   */
  maxPending?: number;
  /** Serve over TLS with this PEM certificate chain and key. */
  tls?: { cert: string; key: string };
  /** Let clients set environment variables. @default {true} */
  allowEnv?: boolean;
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
  /** How repeated authentication failures are slowed down. */
  throttle?: AuthThrottleOptions;
  /** Receives the `-v` diagnostics. @default {silent} */
  logger?: Logger;
  /** Receives one record per command and per refused session. */
  audit?: AuditSink;
}

/** A running shell server. */
export interface ShellServer extends AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Sessions open now. */
  readonly active: number;
  /** Commands run so far. */
  readonly commands: number;
  /** Stops accepting, kills running commands, ends every session. Idempotent. */
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
}

interface CommandRun {
  proc: GroupProcess;
  stdin?: WritableStreamDefaultWriter<Uint8Array>;
  stdinOpen: boolean;
  bytesIn: number;
  disconnected: boolean;
  finished: Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  const token = options.token;
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
  const allowEnv = options.allowEnv ?? true;
  const allowCwd = options.allowCwd ?? true;
  const handshakeTimeout = options.handshakeTimeout ?? 10_000;
  const killGrace = options.killGraceMs ?? 2000;
  const linger = options.lingerMs ?? 1000;
  const logger = options.logger ?? silent;
  const audit = (r: AuditRecord) => options.audit?.(r);
  const throttle = new AuthThrottle(options.throttle);

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
    options.family ? { family: options.family } : {},
  );
  const sessions = new Set<Session>();
  const pending = new Set<Session>();
  const maxPending = options.maxPending ?? 64;
  const idleMs = options.idleTimeout;
  const idle = idleMs
    ? new IdleWatch<Session>(idleMs, (s) => {
      logger.log(`${formatAddr(s.conn.remoteAddr)}: idle, session closed`);
      dropWithError(s, ErrorCode.Timeout, `idle for ${idleMs / 1000} s`);
    })
    : undefined;
  let commands = 0;
  let closing = false;

  const sendError = (s: Session, code: number, message: string) =>
    s.writer.send(encodeMessage(MsgType.Error, encodeError(code, message)))
      .catch(() => {});

  /**
   * Sends an ERROR and closes the connection, waiting for the write at
   * most {@linkcode ERROR_GRACE_MS}: never longer, whatever the peer does.
   */
  async function dropWithError(
    s: Session,
    code: number,
    message: string,
  ): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      sendError(s, code, message),
      new Promise((r) => timer = setTimeout(r, ERROR_GRACE_MS)),
    ]);
    clearTimeout(timer);
    closeQuietly(s.conn);
  }

  /** Half-closes, lets the peer read what was sent, then closes (within 1 s). */
  async function finish(conn: SessionConn): Promise<void> {
    const timer = setTimeout(() => closeQuietly(conn), 1000);
    try {
      await closeWriteQuietly(conn as unknown as Deno.TcpConn);
    } catch { /* a TLS peer that vanished mid-handshake */ }
    try {
      const buf = new Uint8Array(4096);
      while ((await conn.read(buf)) !== null) { /* drain */ }
    } catch { /* closed or reset */ }
    clearTimeout(timer);
    closeQuietly(conn);
  }

  async function handshake(
    s: Session,
    reader: MessageReader,
    peer: string,
    ip: string,
  ): Promise<Uint8Array | undefined> {
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
    const hello = decodeClientHello(
      await reader.expect(MsgType.ClientHello, "the client hello"),
    );
    idle?.delete(s); // the client has spoken; the rest is our turn
    if (hello.version !== PROTOCOL_VERSION) {
      await sendError(
        s,
        ErrorCode.Version,
        `unsupported protocol version ${hello.version} (server speaks ${PROTOCOL_VERSION})`,
      );
      audit({
        event: "protocol-error",
        peer,
        reason: `version ${hello.version}`,
      });
      return undefined;
    }
    if (token !== undefined && nonce) {
      if (
        !hello.nonce || !hello.mac ||
        !verifyProof(token, "client", nonce, hello.nonce, hello.mac)
      ) {
        const failures = throttle.fail(ip);
        const delayMs = throttle.delayFor(ip);
        audit({
          event: "auth-failed",
          peer,
          reason: hello.mac ? "wrong token" : "no token given",
          failures,
          delayMs,
        });
        if (delayMs > 0) await sleep(delayMs);
        await sendError(s, ErrorCode.Auth, "authentication failed");
        return undefined;
      }
      throttle.succeed(ip);
      // The server's own proof, sent with READY.
      return authProof(token, "server", nonce, hello.nonce);
    }
    return new Uint8Array(0); // the caller sends READY once a slot is free
  }

  function startCommand(
    s: Session,
    req: ExecRequest,
    peer: string,
  ): CommandRun | undefined {
    const t0 = performance.now();
    const cmdText = auditCommand(req.command);
    const refuse = (reason: string) => {
      audit({ event: "exec-refused", peer, reason: `${reason}: ${cmdText}` });
      sendError(s, ErrorCode.Refused, reason);
      return undefined;
    };
    if (req.env && !allowEnv) {
      return refuse("this server does not let clients set the environment");
    }
    if (req.cwd !== undefined && !allowCwd) {
      return refuse("this server does not let clients choose the directory");
    }
    let proc: GroupProcess;
    try {
      const cwd = req.cwd ?? options.cwd;
      proc = spawnGroup(shell, req.command, {
        stdin: req.stdin,
        ...(cwd !== undefined ? { cwd } : {}),
        ...(req.env ? { env: req.env } : {}),
      });
    } catch (err) {
      const where = req.cwd ?? options.cwd;
      return refuse(
        `cannot start ${shell}${where !== undefined ? ` in ${where}` : ""}: ${
          describeError(err)
        }`,
      );
    }
    commands++;
    let timedOut = false;
    let truncated = false;
    let outputTotal = 0;
    const counts = { [MsgType.Stdout]: 0, [MsgType.Stderr]: 0 };
    const run: CommandRun = {
      proc,
      stdinOpen: req.stdin,
      bytesIn: 0,
      disconnected: false,
      finished: Promise.resolve(),
    };
    if (req.stdin) run.stdin = proc.child.stdin.getWriter();

    const timer = timeout > 0
      ? setTimeout(() => {
        timedOut = true;
        logger.log(`${peer}: command timed out after ${timeout} ms, killing`);
        proc.terminate(killGrace);
      }, timeout)
      : undefined;

    const pump = async (
      stream: ReadableStream<Uint8Array>,
      type: typeof MsgType.Stdout | typeof MsgType.Stderr,
    ) => {
      const reader = stream.getReader({ mode: "byob" });
      let buf = new Uint8Array(FRAME_HEADER_SIZE + DATA_CHUNK_SIZE);
      try {
        for (;;) {
          const { value, done } = await reader.read(
            buf.subarray(FRAME_HEADER_SIZE),
          );
          if (done || !value) break;
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
        if (!run.disconnected) {
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
      let lingerTimer: ReturnType<typeof setTimeout> | undefined;
      const lingered = await Promise.race([
        pumps.then(() => false),
        new Promise<boolean>((r) => {
          lingerTimer = setTimeout(() => r(true), linger);
        }),
      ]);
      clearTimeout(lingerTimer);
      if (lingered) proc.kill("SIGTERM");
      proc.kill("SIGKILL");
      await pumps;
      clearTimeout(timer);
      if (run.stdin) {
        run.stdinOpen = false;
        await run.stdin.close().catch(() => {});
      }
      const durationMs = performance.now() - t0;
      const signal = status.signal ? signalNumber(status.signal) : 0;
      s.command = undefined;
      if (sessions.has(s) && !run.disconnected) idle?.add(s);
      await s.writer.send(
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
  async function halfClosed(
    s: Session,
    run: CommandRun,
    peer: string,
  ): Promise<void> {
    logger.log(`${peer}: client finished sending; the command runs on`);
    if (run.stdin && run.stdinOpen) {
      run.stdinOpen = false;
      run.stdin.close().catch(() => {});
    }
    let seen = s.writer.written;
    let probing = false;
    const probe = setInterval(() => {
      if (probing || run.disconnected) return;
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

  async function serve(conn: SessionConn): Promise<void> {
    const peerAddr = conn.remoteAddr as Deno.NetAddr;
    const peer = formatAddr(peerAddr);
    const ip = peerAddr.hostname;
    const session: Session = {
      conn,
      writer: new MessageWriter(conn),
      command: undefined,
    };
    // One deadline covers the TLS handshake, a busy refusal and the login:
    // when it passes, the connection is closed at once, whatever is pending
    // on it (a write to a TLS peer that never handshakes waits forever).
    let handshakeExpired = false;
    let refused = false;
    const hsTimer = setTimeout(() => {
      handshakeExpired = true;
      if (refused) {
        closeQuietly(conn);
        return;
      }
      audit({ event: "protocol-error", peer, reason: "handshake timed out" });
      dropWithError(session, ErrorCode.Timeout, "handshake timed out");
    }, handshakeTimeout);
    if (sessions.size >= maxSessions || closing) {
      refused = true;
      const reason = closing
        ? "server shutting down"
        : `server busy: ${sessions.size} sessions active, limit ${maxSessions}`;
      audit({ event: "busy", peer, reason });
      try {
        await conn.handshake?.();
        await sendError(
          session,
          closing ? ErrorCode.Shutdown : ErrorCode.Busy,
          reason,
        );
        if (!handshakeExpired) await finish(conn);
      } catch {
        // closed by the deadline, or a failed TLS handshake
      } finally {
        clearTimeout(hsTimer);
        closeQuietly(conn);
      }
      return;
    }
    if (pending.size >= maxPending) {
      // Unauthenticated connections hold no session slot, and the oldest
      // makes way: idle connections cannot lock out a real client.
      const oldest: Session = pending.values().next().value!;
      pending.delete(oldest);
      const reason =
        `dropped: ${maxPending} connections authenticating, limit reached`;
      audit({
        event: "busy",
        peer: formatAddr(oldest.conn.remoteAddr),
        reason,
      });
      dropWithError(oldest, ErrorCode.Busy, `server busy: ${reason}`);
    }
    pending.add(session);
    const reader = new MessageReader(conn);
    try {
      await conn.handshake?.();
      const proof = await handshake(session, reader, peer, ip);
      clearTimeout(hsTimer);
      pending.delete(session);
      if (!proof) return;
      if (sessions.size >= maxSessions || closing) {
        const reason = closing
          ? "server shutting down"
          : `server busy: ${sessions.size} sessions active, limit ${maxSessions}`;
        audit({ event: "busy", peer, reason });
        await sendError(
          session,
          closing ? ErrorCode.Shutdown : ErrorCode.Busy,
          reason,
        );
        return;
      }
      sessions.add(session);
      logger.log(`${peer}: session opened (${sessions.size} active)`);
      await session.writer.send(encodeMessage(MsgType.Ready, proof));
      idle?.add(session);
      for (;;) {
        const head = await reader.next();
        if (head === null) {
          // End of input from the client: no more messages, not "gone".
          // A running command gets STDIN_EOF and runs to its end.
          if (session.command) await halfClosed(session, session.command, peer);
          break;
        }
        idle?.touch(session);
        const run = session.command;
        switch (head.type) {
          case MsgType.Exec: {
            const body = await reader.body(head.length);
            if (run) {
              throw new ShellProtocolError(
                "protocol error: exec while a command is running",
              );
            }
            const req = decodeExec(body);
            session.command = startCommand(session, req, peer);
            if (session.command) idle?.delete(session);
            break;
          }
          case MsgType.Stdin:
            if (run?.stdin && run.stdinOpen) {
              const w = run.stdin;
              run.bytesIn += head.length;
              await reader.copyBody({
                write: async (p) => {
                  // A command that closed its stdin discards the rest.
                  if (run.stdinOpen) {
                    await w.write(p).catch(() => (run.stdinOpen = false));
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
              run.stdinOpen = false;
              run.stdin.close().catch(() => {});
            }
            break;
          default:
            throw new ShellProtocolError(
              `protocol error: unexpected message type 0x${
                head.type.toString(16)
              }`,
            );
        }
      }
    } catch (err) {
      clearTimeout(hsTimer);
      if (!handshakeExpired && !closing) {
        if (err instanceof ShellProtocolError) {
          audit({ event: "protocol-error", peer, reason: err.message });
          await sendError(session, ErrorCode.Protocol, err.message);
        } else {
          logger.log(`${peer}: ${describeError(err)}`);
        }
      }
    } finally {
      const run = session.command;
      if (run) {
        // The client went away (or broke the protocol) mid-command.
        run.disconnected = true;
        logger.log(`${peer}: client gone while a command runs, killing it`);
        await run.proc.terminate(killGrace);
        await run.finished;
      }
      idle?.delete(session);
      pending.delete(session);
      await finish(conn);
      if (sessions.delete(session)) {
        logger.log(`${peer}: session closed (${sessions.size} active)`);
      }
    }
  }

  const loop = acceptLoop(listener as Deno.TcpListener, async (conn) => {
    conn.setNoDelay(true);
    await serve(tlsContext ? acceptTls(conn, tlsContext) : conn);
  }, { logger });

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      closing = true;
      closeQuietly(listener);
      await loop.stopped;
      for (const s of pending) closeQuietly(s.conn);
      await Promise.all([...sessions].map(async (s) => {
        const run = s.command;
        if (run) {
          await run.proc.terminate(killGrace);
          await run.finished;
        }
        await sendError(s, ErrorCode.Shutdown, "server shutting down");
        closeQuietly(s.conn);
      }));
      await loop.drain();
      idle?.[Symbol.dispose]();
    })();

  return {
    addr: listener.addr as Deno.NetAddr,
    get active() {
      return sessions.size;
    },
    get commands() {
      return commands;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
