/**
 * The shell client: connect, authenticate, then run commands one after
 * another, each with its stdin forwarded and its stdout and stderr
 * delivered separately, byte for byte, as they arrive.
 *
 * @module
 */
import { hostPort, unbracket } from "../address.ts";
import { DenocatError, describeError } from "../errors.ts";
import type { Reader, Writer } from "../frame/reader.ts";
import { closeQuietly, connect, type ConnectOptions } from "../tcp/connect.ts";
import { authProof, createNonce, type Token, verifyProof } from "./auth.ts";
import { signalName, signalNumber } from "./process_group.ts";
import {
  DATA_CHUNK_SIZE,
  decodeError,
  decodeExit,
  decodeServerHello,
  encodeClientHello,
  encodeExec,
  encodeMessage,
  encodeSignal,
  encodeWindow,
  ErrorCode,
  type ExitInfo,
  FRAME_HEADER_SIZE,
  MsgType,
  PROTOCOL_VERSION,
  type PtyRequest,
  ShellProtocolError,
  writeHeader,
} from "./protocol.ts";
import { connectTlsTransport, type ShellTransport } from "./tls_client.ts";
import { MessageReader, MessageWriter, ShellRemoteError } from "./wire.ts";
import type { Family } from "../address.ts";

/** Exit code of the client when the connection, authentication or protocol failed (ssh's convention). */
export const EXIT_SHELL_FAILURE = 255;

/** Options for {@linkcode connectShell}. */
export interface ConnectShellOptions {
  /** The shared secret, when the server asks for one: bytes, or text as UTF-8. */
  token?: Token;
  /** Use TLS: trust `caCerts` (PEM) or, with `insecure`, anything. */
  tls?: { caCerts?: string[]; insecure?: boolean };
  /** Give up connecting and authenticating after this many ms. */
  timeout?: number;
  /** Restrict a host name to IPv4 or IPv6. */
  family?: Family;
  /**
   * TCP keepalive, plain or with timers (see `ConnectOptions.keepalive`);
   * not with `tls`.
   */
  keepalive?: ConnectOptions["keepalive"];
}

/** Where a command's streams go and come from. */
export interface ExecOptions {
  /** Forwarded to the command's stdin, then EOF. Omit for /dev/null. */
  stdin?: Reader;
  /** Receives the command's stdout. @default {discarded} */
  stdout?: Writer;
  /** Receives the command's stderr. @default {discarded} */
  stderr?: Writer;
  /** Environment variables to set (if the server allows). */
  env?: Record<string, string>;
  /** Working directory (if the server allows). */
  cwd?: string;
  /**
   * Run on a pseudo-terminal of this size (`stdin` should then be given;
   * stdout carries the terminal's output, stderr stays empty).
   */
  pty?: PtyRequest;
}

/** How a remote command ended. */
export interface ShellExit extends ExitInfo {
  /** What the client exits with: the code, or 128 + signal. */
  exitCode: number;
  /** The signal's name, or `null`. */
  signalName: string | null;
}

const discard: Writer = { write: (p) => Promise.resolve(p.length) };
const encoder = new TextEncoder();

function failure(message: string, cause?: unknown): DenocatError {
  return new DenocatError(
    message,
    EXIT_SHELL_FAILURE,
    cause ? { cause } : undefined,
  );
}

/** An authenticated session: run commands with `exec`, then close. */
export class ShellSession implements AsyncDisposable {
  readonly #conn: ShellTransport;
  readonly #reader: MessageReader;
  readonly #writer: MessageWriter;
  #busy = false;
  #broken = false;
  #closed = false;

  /** @internal Use {@linkcode connectShell}. */
  constructor(
    conn: ShellTransport,
    reader: MessageReader,
    writer: MessageWriter,
  ) {
    this.#conn = conn;
    this.#reader = reader;
    this.#writer = writer;
  }

  /**
   * Runs `command` with the server's shell and resolves when it ends.
   * Throws a {@linkcode ShellRemoteError} with code `ErrorCode.Refused`
   * when the server refused this command (the session stays usable), and a
   * `DenocatError` with exit code 255 when the session failed.
   */
  async exec(
    command: string | Uint8Array,
    io: ExecOptions = {},
  ): Promise<ShellExit> {
    if (this.#busy) throw new Error("Cannot exec: a command is running");
    if (this.#broken || this.#closed) {
      throw failure("cannot run command: the session has ended");
    }
    this.#busy = true;
    let ended = false;
    let stdinPump: Promise<void> = Promise.resolve();
    try {
      const bytes = typeof command === "string"
        ? encoder.encode(command)
        : command;
      await this.#writer.send(
        encodeMessage(
          MsgType.Exec,
          encodeExec({
            command: bytes,
            stdin: io.stdin !== undefined,
            ...(io.cwd !== undefined ? { cwd: io.cwd } : {}),
            ...(io.env ? { env: io.env } : {}),
            ...(io.pty ? { pty: io.pty } : {}),
          }),
        ),
      );
      if (io.stdin) stdinPump = this.#pumpStdin(io.stdin, () => ended);
      const stdout = io.stdout ?? discard;
      const stderr = io.stderr ?? discard;
      for (;;) {
        const head = await this.#reader.next();
        if (head === null) {
          throw new ShellProtocolError(
            "connection closed by the server before the command ended",
          );
        }
        switch (head.type) {
          case MsgType.Stdout:
            await this.#reader.copyBody(stdout, head.length);
            break;
          case MsgType.Stderr:
            await this.#reader.copyBody(stderr, head.length);
            break;
          case MsgType.Probe:
            await this.#reader.skip(head.length);
            break;
          case MsgType.Exit: {
            const info = decodeExit(await this.#reader.body(head.length));
            ended = true;
            return {
              ...info,
              exitCode: info.signal ? 128 + info.signal : info.code,
              signalName: info.signal ? signalName(info.signal) : null,
            };
          }
          case MsgType.Error: {
            const e = decodeError(await this.#reader.body(head.length));
            ended = true;
            if (e.code !== ErrorCode.Refused) this.#broken = true;
            throw new ShellRemoteError(e.code, e.message);
          }
          default:
            throw new ShellProtocolError(
              `protocol error: unexpected message type 0x${
                head.type.toString(16)
              }`,
            );
        }
      }
    } catch (err) {
      ended = true;
      if (!(err instanceof ShellRemoteError && !this.#broken)) {
        this.#broken = true;
      }
      if (err instanceof DenocatError) {
        if (err.exitCode === EXIT_SHELL_FAILURE) throw err;
      }
      throw failure(`session failed: ${describeError(err)}`, err);
    } finally {
      this.#busy = false;
      // The stdin pump stops at its next chunk; a pending read is left to
      // settle on its own (its bytes are no longer wanted).
      stdinPump.catch(() => {});
    }
  }

  async #pumpStdin(input: Reader, ended: () => boolean): Promise<void> {
    let buf = new Uint8Array(FRAME_HEADER_SIZE + DATA_CHUNK_SIZE);
    let spare = new Uint8Array(FRAME_HEADER_SIZE + DATA_CHUNK_SIZE);
    for (;;) {
      const n = await input.read(buf.subarray(FRAME_HEADER_SIZE));
      if (ended()) return;
      if (n === null) {
        await this.#writer.send(encodeMessage(MsgType.StdinEof));
        return;
      }
      if (n === 0) continue;
      writeHeader(buf, MsgType.Stdin, n);
      const sending = this.#writer.send(buf.subarray(0, FRAME_HEADER_SIZE + n));
      [buf, spare] = [spare, buf];
      await sending;
    }
  }

  /**
   * Sends `signal` to the running command's process group (the server
   * forwards HUP, INT, QUIT, KILL, TERM, USR1, USR2 and ALRM and ignores
   * others). Returns false when no command is running.
   */
  signal(signal: Deno.Signal | number): Promise<boolean> {
    if (!this.#busy || this.#broken || this.#closed) {
      return Promise.resolve(false);
    }
    const n = typeof signal === "number" ? signal : signalNumber(signal);
    return this.#writer.send(encodeMessage(MsgType.Signal, encodeSignal(n)))
      .then(() => true, () => false);
  }

  /** Tells the server the terminal's new size (pty commands). */
  resize(rows: number, cols: number): Promise<boolean> {
    if (!this.#busy || this.#broken || this.#closed) {
      return Promise.resolve(false);
    }
    return this.#writer.send(
      encodeMessage(MsgType.Window, encodeWindow({ rows, cols })),
    ).then(() => true, () => false);
  }

  /** Whether a command is running. */
  get running(): boolean {
    return this.#busy;
  }

  /** Ends the session (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/**
 * Connects to a shell server and authenticates. Every failure is a
 * `DenocatError` with exit code 255: `cannot connect to ...`,
 * `authentication failed`, `server busy: ...`, `protocol error: ...`.
 *
 * @example A server that wants a token
 * ```ts
 * import { connectShell } from "./client.ts";
 * import { shellServer } from "./server.ts";
 * import { assertRejects } from "../_assert.ts";
 * // Windows has no process groups: the server refuses to start there.
 * if (Deno.build.os !== "windows") {
 *   await using server = shellServer({ port: 0 }, { token: "right" });
 *   const ep = { hostname: "127.0.0.1", port: server.addr.port };
 *   await assertRejects(() => connectShell(ep, { token: "wrong" }), Error, "authentication failed");
 *   await assertRejects(() => connectShell(ep), Error, "needs a token");
 * }
 * ```
 */
export async function connectShell(
  endpoint: { hostname: string; port: number },
  options: ConnectShellOptions = {},
): Promise<ShellSession> {
  const where = hostPort(endpoint.hostname, endpoint.port);
  const signal = options.timeout !== undefined
    ? AbortSignal.timeout(options.timeout)
    : undefined;
  let conn: ShellTransport;
  try {
    if (options.tls) {
      conn = await connectTlsTransport(
        unbracket(endpoint.hostname),
        endpoint.port,
        {
          ...(options.tls.caCerts ? { caCerts: options.tls.caCerts } : {}),
          ...(options.tls.insecure ? { insecure: true } : {}),
          ...(signal ? { signal } : {}),
        },
      );
    } else {
      conn = await connect(endpoint, {
        noDelay: true,
        ...(options.keepalive ? { keepalive: options.keepalive } : {}),
        ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
        ...(options.family ? { family: options.family } : {}),
      });
    }
  } catch (err) {
    // connect() already phrases its errors as "cannot connect to ...".
    const message = err instanceof DenocatError
      ? err.message
      : `cannot connect to ${where}: ${describeError(err)}`;
    throw failure(message, err);
  }
  const reader = new MessageReader(conn);
  const writer = new MessageWriter(conn);
  const onTimeout = () => closeQuietly(conn);
  signal?.addEventListener("abort", onTimeout, { once: true });
  try {
    const hello = decodeServerHello(
      await reader.expect(MsgType.ServerHello, "the server hello"),
    );
    if (hello.version !== PROTOCOL_VERSION) {
      throw new ShellProtocolError(
        `protocol error: server speaks version ${hello.version}, this client ${PROTOCOL_VERSION}`,
      );
    }
    if (hello.nonce && options.token === undefined) {
      throw failure(
        `${where} needs a token: use --token, --token-file or DENOCAT_TOKEN`,
      );
    }
    if (!hello.nonce && options.token !== undefined) {
      // A fake server would offer no authentication to collect commands.
      throw failure(
        `${where} offers no authentication, but a token is set: refusing to send anything (not the expected server?)`,
      );
    }
    const clientNonce = hello.nonce ? createNonce() : undefined;
    const mac = hello.nonce
      ? authProof(options.token!, "client", hello.nonce, clientNonce!)
      : undefined;
    await writer.send(
      encodeMessage(
        MsgType.ClientHello,
        encodeClientHello(
          mac
            ? { version: PROTOCOL_VERSION, nonce: clientNonce!, mac }
            : { version: PROTOCOL_VERSION },
        ),
      ),
    );
    const proof = await reader.expect(MsgType.Ready, "the server's answer");
    const proven = hello.nonce
      ? verifyProof(
        options.token!,
        "server",
        hello.nonce,
        clientNonce!,
        proof,
      )
      : proof.length === 0;
    if (!proven) {
      throw failure(
        `${where} did not prove it knows the token: refusing to send anything (not the expected server?)`,
      );
    }
  } catch (err) {
    closeQuietly(conn);
    const hint = options.tls ? "" : " (a TLS server? try --tls)";
    if (signal?.aborted) {
      throw failure(`cannot connect to ${where}: timed out${hint}`, err);
    }
    if (
      err instanceof ShellProtocolError && /server hello/.test(err.message)
    ) {
      throw failure(`${where}: ${err.message}${hint}`, err);
    }
    if (err instanceof ShellRemoteError) {
      throw failure(
        err.code === ErrorCode.Auth ? "authentication failed" : err.message,
        err,
      );
    }
    if (err instanceof DenocatError && err.exitCode === EXIT_SHELL_FAILURE) {
      throw err;
    }
    throw failure(`${where}: ${describeError(err)}`, err);
  } finally {
    signal?.removeEventListener("abort", onTimeout);
  }
  return new ShellSession(conn, reader, writer);
}
