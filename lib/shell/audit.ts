/**
 * The shell server's audit trail: a record when a command starts, one when
 * it ends, and one per refused session (failed authentication, busy), as a
 * text line or as JSON. Everything a peer chose (the command, names,
 * directories) is escaped as the transfer code escapes names, so a client
 * cannot forge a line or send terminal escapes to whoever reads the log.
 *
 * @module
 */
import { escapeText, show } from "../transfer/show.ts";

/** Longest command recorded in full, in bytes; longer ones are cut. */
export const MAX_AUDIT_COMMAND = 4096;

/**
 * The command as the audit shows it: UTF-8 (invalid sequences replaced),
 * cut after {@linkcode MAX_AUDIT_COMMAND} bytes with the full size noted,
 * so that a client cannot write megabytes into the log per command.
 *
 * @example Usage
 * ```ts
 * import { auditCommand } from "./audit.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(auditCommand(new TextEncoder().encode("ls -l")), "ls -l");
 * const long = auditCommand(new Uint8Array(100_000).fill(0x61));
 * assertEquals(long.length < 4200, true);
 * assertEquals(long.endsWith("… (100000 bytes)"), true);
 * ```
 */
export function auditCommand(command: Uint8Array): string {
  const decoder = new TextDecoder();
  if (command.length <= MAX_AUDIT_COMMAND) return decoder.decode(command);
  return `${
    decoder.decode(command.subarray(0, MAX_AUDIT_COMMAND))
  }… (${command.length} bytes)`;
}

/** A command about to run. */
export interface StartRecord {
  /** What happened: a command is starting. */
  event: "exec-start";
  /** Peer address, `host:port`. */
  peer: string;
  /** The command line (see {@linkcode auditCommand}). */
  command: string;
  /** Process id of the command's shell, which is also its process group id. */
  pid: number;
  /** Run on a pseudo-terminal. */
  pty: boolean;
}

/** One command run by the server. */
export interface ExecRecord {
  /** The kind of record: a command that ran. */
  event: "exec";
  /** Peer address, `host:port`. */
  peer: string;
  /** The command line (see {@linkcode auditCommand}). */
  command: string;
  /** Exit status (128 + signal when killed by one). */
  exit: number;
  /** Signal name that killed it, or `null`. */
  signal: string | null;
  /** Killed by the timeout. */
  timedOut: boolean;
  /** Output cut at the limit. */
  truncated: boolean;
  /** Killed because the client went away. */
  disconnected: boolean;
  /**
   * Processes that left the group (`setsid`) still held its output open
   * when the group was gone; the server stopped reading and ended the
   * command without them.
   */
  escaped?: boolean;
  /** Wall time in milliseconds. */
  durationMs: number;
  /** Stdin bytes received from the client. */
  bytesIn: number;
  /** Stdout bytes sent to the client. */
  bytesOut: number;
  /** Stderr bytes sent to the client. */
  bytesErr: number;
}

/** A session refused before any command ran. */
export interface RefusalRecord {
  /** Why the connection or command was refused. */
  event: "auth-failed" | "busy" | "protocol-error" | "exec-refused";
  /** Peer address, `host:port`. */
  peer: string;
  /** Why. */
  reason: string;
  /** Failed attempts from this address so far (for `auth-failed`). */
  failures?: number;
  /** How long the answer was held back, in milliseconds (for `auth-failed`). */
  delayMs?: number;
}

/** Anything the audit trail records. */
export type AuditRecord = StartRecord | ExecRecord | RefusalRecord;

/** A peer-chosen string as the audit shows it: quoted, every control character escaped. */
const quoted = (text: string) => show(text, Number.MAX_SAFE_INTEGER);

/** Receives audit records. */
export type AuditSink = (record: AuditRecord) => void;

/**
 * One line of text for a record.
 *
 * @example Usage
 * ```ts
 * import { formatAudit } from "./audit.ts";
 * import { assertEquals } from "../_assert.ts";
 * const line = formatAudit({
 *   event: "exec", peer: "127.0.0.1:5000", command: "wc -c", exit: 0, signal: null,
 *   timedOut: false, truncated: false, disconnected: false,
 *   durationMs: 12, bytesIn: 3, bytesOut: 2, bytesErr: 0,
 * });
 * assertEquals(line, `exec peer=127.0.0.1:5000 exit=0 duration=0.012s in=3 out=2 err=0 cmd="wc -c"`);
 * // A peer cannot end the line or slip terminal escapes into it.
 * const forged = formatAudit({ event: "exec-refused", peer: "127.0.0.1:1",
 *   reason: 'x\nexec peer=1.2.3.4:1 exit=0 cmd="rm"\u009b2J' });
 * assertEquals(forged, 'exec-refused peer=127.0.0.1:1 reason="x\\nexec peer=1.2.3.4:1 exit=0 cmd=\\"rm\\"\\u009b2J"');
 * ```
 */
export function formatAudit(record: AuditRecord): string {
  if (record.event === "exec-start") {
    return `exec-start peer=${record.peer} pid=${record.pid}${
      record.pty ? " pty" : ""
    } cmd=${quoted(record.command)}`;
  }
  if (record.event === "exec") {
    const r = record;
    const how = r.signal ? ` signal=${r.signal}` : "";
    const flags = [
      r.timedOut ? " timed-out" : "",
      r.truncated ? " truncated" : "",
      r.disconnected ? " client-gone" : "",
      r.escaped ? " escaped" : "",
    ].join("");
    return `exec peer=${r.peer} exit=${r.exit}${how}${flags} duration=${
      (r.durationMs / 1000).toFixed(3)
    }s in=${r.bytesIn} out=${r.bytesOut} err=${r.bytesErr} cmd=${
      quoted(r.command)
    }`;
  }
  const extra = record.failures !== undefined
    ? ` failures=${record.failures} delay=${record.delayMs ?? 0}ms`
    : "";
  return `${record.event} peer=${record.peer}${extra} reason=${
    quoted(record.reason)
  }`;
}

/**
 * One JSON line for a record, with a timestamp.
 *
 * @example Usage
 * ```ts
 * import { formatAuditJson } from "./audit.ts";
 * import { assertEquals } from "../_assert.ts";
 * const o = JSON.parse(formatAuditJson({ event: "busy", peer: "127.0.0.1:1", reason: "full" }));
 * assertEquals([o.event, o.peer, o.reason], ["busy", "127.0.0.1:1", "full"]);
 * ```
 */
export function formatAuditJson(record: AuditRecord): string {
  // JSON escapes C0; C1 and reordering marks get \uXXXX too (still JSON).
  return escapeText(
    JSON.stringify({ time: new Date().toISOString(), ...record }),
    Number.MAX_SAFE_INTEGER,
  );
}
