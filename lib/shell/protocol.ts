/**
 * The native shell protocol (`docs/PROTOCOL.md`, "Shell protocol"): every
 * message is one length-prefixed frame, `[u32be length][u8 type][body]`,
 * where `length` counts the type byte and the body. This file holds the
 * message types and the encoders/decoders of their bodies; it knows
 * nothing of sockets or processes.
 *
 * @module
 */
import { DenocatError } from "../errors.ts";
import { writePrefix } from "../frame/prefix.ts";

/** Protocol version spoken by this implementation. */
export const PROTOCOL_VERSION = 3;
/** The four bytes opening both hellos: ASCII `DCSH`. */
export const MAGIC: Uint8Array = new Uint8Array([0x44, 0x43, 0x53, 0x48]);
/** Bytes before a body: the u32be length and the type byte. */
export const FRAME_HEADER_SIZE = 5;
/** Largest frame length (type byte + body) either side accepts: 1 MiB + 1. */
export const MAX_FRAME_LENGTH = 1024 * 1024 + 1;
/**
 * Largest frame (type byte + body) a server reads before the client has
 * authenticated: a CLIENT_HELLO is at most 70. Anything longer is a
 * protocol error, so an unauthenticated peer never makes the server buffer
 * more than this.
 */
export const PRE_AUTH_MAX_FRAME = 256;
/** Largest data chunk put in one stdin/stdout/stderr frame: 256 KiB. */
export const DATA_CHUNK_SIZE = 256 * 1024;

/** Message type bytes. */
export const MsgType = {
  /** server → client: magic, version, auth method, nonce. */
  ServerHello: 0x01,
  /** client → server: magic, version, client nonce and proof. */
  ClientHello: 0x02,
  /** server → client: authenticated (with the server's proof), send EXEC. */
  Ready: 0x03,
  /** client → server: run a command. */
  Exec: 0x10,
  /** client → server: bytes for the command's stdin. */
  Stdin: 0x11,
  /** client → server: end of the command's stdin. */
  StdinEof: 0x12,
  /** server → client: bytes the command wrote to stdout. */
  Stdout: 0x13,
  /** server → client: bytes the command wrote to stderr. */
  Stderr: 0x14,
  /** server → client: the command ended. */
  Exit: 0x15,
  /** server → client: empty; checks that a half-closed client is still there. Ignored. */
  Probe: 0x16,
  /** client → server: u8 signal number for the running command's process group. */
  Signal: 0x17,
  /** client → server: u16be rows, u16be columns: the terminal's new size (pty commands). */
  Window: 0x18,
  /** server → client: a refusal or failure, with a code and a message. */
  Error: 0x7f,
} as const;

/** Codes carried by an ERROR message. */
export const ErrorCode = {
  /** Authentication failed; the session ends. */
  Auth: 1,
  /** Too many sessions; the session ends. */
  Busy: 2,
  /** Malformed or unexpected message; the session ends. */
  Protocol: 3,
  /** This command was refused or could not start; the session goes on. */
  Refused: 4,
  /** Unsupported protocol version; the session ends. */
  Version: 5,
  /** The server is shutting down; the session ends. */
  Shutdown: 6,
  /** The handshake took too long; the session ends. */
  Timeout: 7,
} as const;

/** Authentication methods named in the server hello. */
export const AuthMethod = { None: 0, HmacSha256: 1 } as const;

/** Exit-message flag: the command was killed by the server's timeout. */
export const EXIT_TIMED_OUT = 1;
/** Exit-message flag: output stopped at the server's output limit. */
export const EXIT_TRUNCATED = 2;

/** A malformed or unexpected message; maps to exit code 255 in the client. */
export class ShellProtocolError extends DenocatError {
  /** Creates the error with a one-line `message`. */
  constructor(message: string) {
    super(message, 255);
    this.name = "ShellProtocolError";
  }
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes one whole message: prefix, type and body, in one allocation.
 *
 * @example A READY message
 * ```ts
 * import { encodeMessage, MsgType } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(encodeMessage(MsgType.Ready).toHex(), "0000000103");
 * assertEquals(encodeMessage(MsgType.Stdout, new Uint8Array([0x68, 0x69])).toHex(), "00000003136869");
 * ```
 */
export function encodeMessage(type: number, body?: Uint8Array): Uint8Array {
  const n = body?.length ?? 0;
  const out = new Uint8Array(FRAME_HEADER_SIZE + n);
  writeHeader(out, type, n);
  if (body) out.set(body, FRAME_HEADER_SIZE);
  return out;
}

/**
 * Writes the 5-byte frame header for a body of `bodyLength` bytes at the
 * start of `buf`, so a data chunk read into `buf` at offset 5 is sent with
 * one write and no copy.
 *
 * @example Usage
 * ```ts
 * import { writeHeader, MsgType } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const buf = new Uint8Array(8);
 * writeHeader(buf, MsgType.Stderr, 3);
 * assertEquals(buf.subarray(0, 5).toHex(), "0000000414");
 * ```
 */
export function writeHeader(
  buf: Uint8Array,
  type: number,
  bodyLength: number,
): void {
  writePrefix(buf, 0, bodyLength + 1, "u32be");
  buf[4] = type;
}

/** What the server says first. */
export interface ServerHello {
  /** The server's protocol version. */
  version: number;
  /** The nonce to answer, or `undefined` when the server needs no token. */
  nonce?: Uint8Array;
}

/**
 * Body of a SERVER_HELLO: `DCSH`, u8 version, u8 auth method, and the
 * 32-byte nonce when the method is HMAC-SHA256.
 *
 * @example Round trip
 * ```ts
 * import { decodeServerHello, encodeServerHello } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const nonce = new Uint8Array(32).fill(9);
 * assertEquals(decodeServerHello(encodeServerHello({ version: 2, nonce })), { version: 2, nonce });
 * assertEquals(encodeServerHello({ version: 2 }).toHex(), "444353480200");
 * ```
 */
export function encodeServerHello(hello: ServerHello): Uint8Array {
  const nonce = hello.nonce;
  const out = new Uint8Array(6 + (nonce?.length ?? 0));
  out.set(MAGIC);
  out[4] = hello.version;
  out[5] = nonce ? AuthMethod.HmacSha256 : AuthMethod.None;
  if (nonce) out.set(nonce, 6);
  return out;
}

function checkMagic(body: Uint8Array, what: string): void {
  if (body.length < 5 || MAGIC.some((b, i) => body[i] !== b)) {
    throw new ShellProtocolError(
      `protocol error: ${what} does not start with DCSH (not a denocat shell peer?)`,
    );
  }
}

/** Decodes a SERVER_HELLO body; see {@linkcode encodeServerHello}. */
export function decodeServerHello(body: Uint8Array): ServerHello {
  checkMagic(body, "server hello");
  const version = body[4]!;
  const method = body[5];
  if (method === AuthMethod.None && body.length === 6) return { version };
  if (method === AuthMethod.HmacSha256 && body.length === 6 + 32) {
    return { version, nonce: body.slice(6) };
  }
  throw new ShellProtocolError(
    `protocol error: server hello with unknown auth method ${method} or length ${body.length}`,
  );
}

/** What the client answers. */
export interface ClientHello {
  /** The client's protocol version. */
  version: number;
  /** The client's 32-byte nonce, when the server asked for authentication. */
  nonce?: Uint8Array;
  /** The client's 32-byte proof over both nonces, with `nonce`. */
  mac?: Uint8Array;
}

/**
 * Body of a CLIENT_HELLO: `DCSH`, u8 version, then, when the server asked
 * for authentication, the client's 32-byte nonce and 32-byte proof. A
 * hello of another version decodes to its version alone, so that the
 * server can answer with a version error.
 *
 * @example Round trip
 * ```ts
 * import { decodeClientHello, encodeClientHello } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const nonce = new Uint8Array(32).fill(2);
 * const mac = new Uint8Array(32).fill(1);
 * assertEquals(decodeClientHello(encodeClientHello({ version: 3, nonce, mac })), { version: 3, nonce, mac });
 * assertEquals(decodeClientHello(encodeClientHello({ version: 3 })), { version: 3 });
 * assertEquals(decodeClientHello(new Uint8Array([0x44, 0x43, 0x53, 0x48, 1, 7])), { version: 1 });
 * ```
 */
export function encodeClientHello(hello: ClientHello): Uint8Array {
  const auth = hello.nonce && hello.mac;
  const out = new Uint8Array(5 + (auth ? 64 : 0));
  out.set(MAGIC);
  out[4] = hello.version;
  if (auth) {
    out.set(hello.nonce!, 5);
    out.set(hello.mac!, 37);
  }
  return out;
}

/** Decodes a CLIENT_HELLO body; see {@linkcode encodeClientHello}. */
export function decodeClientHello(body: Uint8Array): ClientHello {
  checkMagic(body, "client hello");
  const version = body[4]!;
  if (version !== PROTOCOL_VERSION || body.length === 5) return { version };
  if (body.length === 5 + 64) {
    return { version, nonce: body.slice(5, 37), mac: body.slice(37) };
  }
  throw new ShellProtocolError(
    `protocol error: client hello of ${body.length} bytes`,
  );
}

/** A terminal for the command (`shell -t`). */
export interface PtyRequest {
  /** Rows of the client's terminal. */
  rows: number;
  /** Columns of the client's terminal. */
  cols: number;
  /** The client's `TERM` (at most 64 bytes of printable ASCII). */
  term: string;
}

/** A request to run one command. */
export interface ExecRequest {
  /** The command line, as bytes, run by the server's shell (`-c`). */
  command: Uint8Array;
  /** Whether STDIN messages follow (else the command's stdin is /dev/null). */
  stdin: boolean;
  /** Working directory, if the client asks for one. */
  cwd?: string;
  /** Extra environment variables, if the client sets any. */
  env?: Record<string, string>;
  /** Run on a pseudo-terminal of this size (an empty command: the shell itself). */
  pty?: PtyRequest;
}

/** Longest `TERM` a PTY request carries. */
export const MAX_TERM = 64;

/**
 * Body of an EXEC: u8 flags (bit 0: stdin follows, bit 1: pty), u32be
 * command length, command bytes, u16be cwd length (0: the server's
 * default), cwd bytes, u16be variable count, then per variable u16be name
 * length, name, u32be value length, value. Names and values are UTF-8.
 * With bit 1, the body ends with u16be rows, u16be columns, u8 TERM
 * length and TERM (ASCII).
 *
 * @example Round trip
 * ```ts
 * import { decodeExec, encodeExec } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const req = { command: new TextEncoder().encode("ls"), stdin: true, cwd: "/tmp", env: { A: "1" } };
 * assertEquals(decodeExec(encodeExec(req)), req);
 * assertEquals(encodeExec({ command: new Uint8Array([0x6c]), stdin: false }).toHex(), "00000000016c00000000");
 * const pty = { command: new Uint8Array(0), stdin: true, pty: { rows: 24, cols: 80, term: "xterm" } };
 * assertEquals(decodeExec(encodeExec(pty)), pty);
 * assertEquals(encodeExec(pty).toHex(), "030000000000000000" + "00180050" + "05" + "787465726d");
 * ```
 */
export function encodeExec(req: ExecRequest): Uint8Array {
  const cwd = req.cwd !== undefined ? encoder.encode(req.cwd) : undefined;
  const env = Object.entries(req.env ?? {}).map(([k, v]) =>
    [encoder.encode(k), encoder.encode(v)] as const
  );
  if ((cwd?.length ?? 0) > 0xffff || env.length > 0xffff) {
    throw new DenocatError("cannot send command: cwd or env too large");
  }
  const term = req.pty ? encoder.encode(req.pty.term) : undefined;
  if (term && term.length > MAX_TERM) {
    throw new DenocatError("cannot send command: TERM too long");
  }
  let size = 1 + 4 + req.command.length + 2 + (cwd?.length ?? 0) + 2 +
    (term ? 5 + term.length : 0);
  for (const [k, v] of env) {
    if (k.length > 0xffff) {
      throw new DenocatError("cannot send command: env name too long");
    }
    size += 2 + k.length + 4 + v.length;
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let at = 0;
  out[at++] = (req.stdin ? 1 : 0) | (req.pty ? 2 : 0);
  dv.setUint32(at, req.command.length);
  out.set(req.command, at + 4);
  at += 4 + req.command.length;
  dv.setUint16(at, cwd?.length ?? 0);
  if (cwd) out.set(cwd, at + 2);
  at += 2 + (cwd?.length ?? 0);
  dv.setUint16(at, env.length);
  at += 2;
  for (const [k, v] of env) {
    dv.setUint16(at, k.length);
    out.set(k, at + 2);
    at += 2 + k.length;
    dv.setUint32(at, v.length);
    out.set(v, at + 4);
    at += 4 + v.length;
  }
  if (req.pty && term) {
    dv.setUint16(at, clamp16(req.pty.rows));
    dv.setUint16(at + 2, clamp16(req.pty.cols));
    out[at + 4] = term.length;
    out.set(term, at + 5);
  }
  return out;
}

const clamp16 = (n: number) => Math.max(0, Math.min(0xffff, Math.trunc(n)));

/** Decodes an EXEC body; see {@linkcode encodeExec}. */
export function decodeExec(body: Uint8Array): ExecRequest {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  const need = (n: number) => {
    if (at + n > body.length) {
      throw new ShellProtocolError(
        `protocol error: exec request truncated at byte ${at}`,
      );
    }
  };
  const text = (bytes: Uint8Array, what: string) => {
    try {
      return strictDecoder.decode(bytes);
    } catch {
      throw new ShellProtocolError(`protocol error: ${what} is not UTF-8`);
    }
  };
  need(5);
  const flags = body[0]!;
  const cmdLen = dv.getUint32(1);
  at = 5;
  need(cmdLen);
  const command = body.slice(at, at + cmdLen);
  at += cmdLen;
  need(2);
  const cwdLen = dv.getUint16(at);
  at += 2;
  need(cwdLen);
  const req: ExecRequest = { command, stdin: (flags & 1) === 1 };
  if (cwdLen > 0) req.cwd = text(body.subarray(at, at + cwdLen), "cwd");
  at += cwdLen;
  need(2);
  const count = dv.getUint16(at);
  at += 2;
  if (count > 0) {
    const env: Record<string, string> = {};
    for (let i = 0; i < count; i++) {
      need(2);
      const kLen = dv.getUint16(at);
      at += 2;
      need(kLen);
      const k = text(body.subarray(at, at + kLen), "env name");
      at += kLen;
      need(4);
      const vLen = dv.getUint32(at);
      at += 4;
      need(vLen);
      env[k] = text(body.subarray(at, at + vLen), "env value");
      at += vLen;
    }
    req.env = env;
  }
  if (flags & 2) {
    need(5);
    const rows = dv.getUint16(at);
    const cols = dv.getUint16(at + 2);
    const termLen = body[at + 4]!;
    at += 5;
    need(termLen);
    const term = text(body.subarray(at, at + termLen), "TERM");
    if (termLen > MAX_TERM || !/^[\x21-\x7e]*$/.test(term)) {
      throw new ShellProtocolError(
        "protocol error: TERM is not printable ASCII",
      );
    }
    at += termLen;
    req.pty = { rows, cols, term };
  }
  if (flags & ~3) {
    throw new ShellProtocolError(
      `protocol error: unknown exec flags 0x${flags.toString(16)}`,
    );
  }
  if (at !== body.length) {
    throw new ShellProtocolError(
      `protocol error: ${body.length - at} stray bytes after exec request`,
    );
  }
  return req;
}

/**
 * Body of a SIGNAL: the signal number, one byte.
 *
 * @example Round trip
 * ```ts
 * import { decodeSignal, encodeSignal } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(encodeSignal(2).toHex(), "02");
 * assertEquals(decodeSignal(encodeSignal(2)), 2);
 * ```
 */
export function encodeSignal(signal: number): Uint8Array {
  return new Uint8Array([signal]);
}

/** Decodes a SIGNAL body; see {@linkcode encodeSignal}. */
export function decodeSignal(body: Uint8Array): number {
  if (body.length !== 1) {
    throw new ShellProtocolError(
      `protocol error: signal message of ${body.length} bytes, expected 1`,
    );
  }
  return body[0]!;
}

/**
 * Body of a WINDOW: u16be rows, u16be columns.
 *
 * @example Round trip
 * ```ts
 * import { decodeWindow, encodeWindow } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(encodeWindow({ rows: 40, cols: 120 }).toHex(), "00280078");
 * assertEquals(decodeWindow(encodeWindow({ rows: 40, cols: 120 })), { rows: 40, cols: 120 });
 * ```
 */
export function encodeWindow(size: { rows: number; cols: number }): Uint8Array {
  const out = new Uint8Array(4);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, clamp16(size.rows));
  dv.setUint16(2, clamp16(size.cols));
  return out;
}

/** Decodes a WINDOW body; see {@linkcode encodeWindow}. */
export function decodeWindow(body: Uint8Array): { rows: number; cols: number } {
  if (body.length !== 4) {
    throw new ShellProtocolError(
      `protocol error: window message of ${body.length} bytes, expected 4`,
    );
  }
  const dv = new DataView(body.buffer, body.byteOffset, 4);
  return { rows: dv.getUint16(0), cols: dv.getUint16(2) };
}

/** How a command ended. */
export interface ExitInfo {
  /** Exit status (128 + signal when killed by a signal). */
  code: number;
  /** Signal number that killed it, or 0. */
  signal: number;
  /** The server's timeout killed it. */
  timedOut: boolean;
  /** Its output was cut at the server's limit. */
  truncated: boolean;
  /** Wall time from spawn to exit, in milliseconds. */
  durationMs: number;
}

/**
 * Body of an EXIT: i32be code, u8 signal, u8 flags (bit 0 timed out,
 * bit 1 output truncated), u32be duration in milliseconds: 10 bytes.
 *
 * @example Round trip
 * ```ts
 * import { decodeExit, encodeExit } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const info = { code: 143, signal: 15, timedOut: true, truncated: false, durationMs: 1000 };
 * assertEquals(decodeExit(encodeExit(info)), info);
 * assertEquals(encodeExit(info).toHex(), "0000008f0f01000003e8");
 * ```
 */
export function encodeExit(info: ExitInfo): Uint8Array {
  const out = new Uint8Array(10);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, info.code);
  out[4] = info.signal;
  out[5] = (info.timedOut ? EXIT_TIMED_OUT : 0) |
    (info.truncated ? EXIT_TRUNCATED : 0);
  dv.setUint32(
    6,
    Math.min(0xffffffff, Math.max(0, Math.round(info.durationMs))),
  );
  return out;
}

/** Decodes an EXIT body; see {@linkcode encodeExit}. */
export function decodeExit(body: Uint8Array): ExitInfo {
  if (body.length !== 10) {
    throw new ShellProtocolError(
      `protocol error: exit message of ${body.length} bytes, expected 10`,
    );
  }
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return {
    code: dv.getInt32(0),
    signal: body[4]!,
    timedOut: (body[5]! & EXIT_TIMED_OUT) !== 0,
    truncated: (body[5]! & EXIT_TRUNCATED) !== 0,
    durationMs: dv.getUint32(6),
  };
}

/**
 * Body of an ERROR: u8 code ({@linkcode ErrorCode}), then a UTF-8 message.
 *
 * @example Round trip
 * ```ts
 * import { decodeError, encodeError, ErrorCode } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(decodeError(encodeError(ErrorCode.Busy, "full")), { code: 2, message: "full" });
 * ```
 */
export function encodeError(code: number, message: string): Uint8Array {
  const text = encoder.encode(message);
  const out = new Uint8Array(1 + text.length);
  out[0] = code;
  out.set(text, 1);
  return out;
}

/** Decodes an ERROR body; see {@linkcode encodeError}. */
export function decodeError(body: Uint8Array): {
  code: number;
  message: string;
} {
  if (body.length < 1) {
    throw new ShellProtocolError("protocol error: empty error message");
  }
  return {
    code: body[0]!,
    message: new TextDecoder().decode(body.subarray(1)),
  };
}
