/**
 * A program per UDP peer (`-u -l -e PROG` / `-u -l -c CMD`): each new source
 * address gets its own child, as inetd runs a `wait`-less datagram service
 * per client. The peer's datagrams are written to the child's stdin in
 * order; every chunk the child writes to stdout goes back to that peer as
 * one datagram. A session ends when the child exits, or when the peer has
 * sent nothing for `idleTimeout` (the child's stdin is then closed, and it is
 * killed if it has not exited a second later).
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import type { Logger } from "../log.ts";
import { silent } from "../log.ts";
import { maxPayload, type UdpSocket } from "../udp/socket.ts";
import { execCommand, type ExecSpec, killGroup, spawnExec } from "./stream.ts";

/** Options for {@linkcode execPerPeer}. */
export interface ExecPerPeerOptions {
  /** End a peer's session after this many ms without a datagram. @default {60000} */
  idleTimeout?: number;
  /** At most this many children at once; new peers beyond it are ignored. @default {64} */
  maxSessions?: number;
  /** Whether a datagram from `from` may start or feed a session. @default {all} */
  accept?: (from: Deno.NetAddr) => boolean;
  /** Stops serving: every child's stdin is closed and the children are ended. */
  signal?: AbortSignal;
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
}

/** What {@linkcode execPerPeer} served. */
export interface ExecPerPeerResult {
  /** Sessions started (children spawned). */
  sessions: number;
  /** Datagrams dropped: refused peers, or new peers over `maxSessions`. */
  dropped: number;
}

/** The `NCAT_*` variables for a UDP peer of a socket bound at `local`. */
function udpEnv(
  peer: Deno.NetAddr,
  local: Deno.NetAddr,
): Record<string, string> {
  return {
    NCAT_PROTO: "UDP",
    NCAT_REMOTE_ADDR: peer.hostname,
    NCAT_REMOTE_PORT: String(peer.port),
    NCAT_LOCAL_ADDR: local.hostname,
    NCAT_LOCAL_PORT: String(local.port),
  };
}

/**
 * Sends a chunk of a child's output as datagrams: one, or several of the
 * largest size UDP carries when a pipe read returned more than that.
 */
async function sendOutput(
  socket: UdpSocket,
  data: Uint8Array,
  to: Deno.NetAddr,
): Promise<void> {
  const max = maxPayload(to.hostname);
  for (let at = 0; at < data.length; at += max) {
    await socket.send(data.subarray(at, at + max), to);
  }
}

interface Session {
  child: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  last: number;
  done: Promise<void>;
}

/**
 * Serves `socket` until `signal` aborts (or the socket closes): a child of
 * `spec` per peer address.
 */
export async function execPerPeer(
  socket: UdpSocket,
  spec: ExecSpec,
  options: ExecPerPeerOptions = {},
): Promise<ExecPerPeerResult> {
  const idle = options.idleTimeout ?? 60000;
  const max = options.maxSessions ?? 64;
  const logger = options.logger ?? silent;
  const log = (line: string) => logger.log(line);
  const [program] = execCommand(spec);
  const sessions = new Map<string, Session>();
  let started = 0, dropped = 0;

  const end = (key: string, s: Session) => {
    if (sessions.get(key) !== s) return;
    sessions.delete(key);
    s.stdin.close().catch(() => {});
    const kill = setTimeout(() => killGroup(s.child, "SIGKILL"), 1000);
    s.child.status.finally(() => clearTimeout(kill));
  };

  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [key, s] of sessions) {
      if (now - s.last >= idle) {
        log(`session ${key} idle for ${idle / 1000} s: ended`);
        end(key, s);
      }
    }
  }, Math.min(idle, 1000));
  const onAbort = () => socket.close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  const start = (from: Deno.NetAddr, key: string): Session => {
    const child = spawnExec(spec, udpEnv(from, socket.addr));
    const s: Session = {
      child,
      stdin: child.stdin.getWriter(),
      last: performance.now(),
      done: Promise.resolve(),
    };
    s.done = (async () => {
      const reader = child.stdout.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          try {
            await sendOutput(socket, value, from);
          } catch (err) {
            log(`session ${key}: ${err instanceof Error ? err.message : err}`);
          }
        }
      } catch { /* killed */ }
      const status = await child.status;
      log(`session ${key}: child exited with ${status.code}`);
      end(key, s);
    })();
    started++;
    log(`session ${key}: started ${program}`);
    return s;
  };

  try {
    let d;
    while ((d = await socket.receive()) !== null) {
      if (options.accept && !options.accept(d.from)) {
        dropped++;
        continue;
      }
      const key = formatAddr(d.from);
      let s = sessions.get(key);
      if (!s) {
        if (sessions.size >= max) {
          dropped++;
          log(`session limit (${max}) reached: datagram from ${key} dropped`);
          continue;
        }
        try {
          s = start(d.from, key);
        } catch (err) {
          log(
            `cannot start ${program}: ${
              err instanceof Error ? err.message : err
            }`,
          );
          dropped++;
          continue;
        }
        sessions.set(key, s);
      }
      s.last = performance.now();
      // In order, one at a time per peer; a child that closed its stdin
      // simply loses what else its peer sends.
      await s.stdin.write(d.data).catch(() => {});
    }
  } finally {
    clearInterval(sweep);
    options.signal?.removeEventListener("abort", onAbort);
    const all = [...sessions.entries()];
    for (const [key, s] of all) end(key, s);
    await Promise.all(all.map(([, s]) => s.done));
  }
  return { sessions: started, dropped };
}

/** Options for {@linkcode execToPeer}. */
export interface ExecToPeerOptions {
  /** Ends the child (SIGTERM to its group) and the exchange. */
  signal?: AbortSignal;
}

/**
 * A program talking to one UDP peer (`-u -e PROG HOST PORT`): every chunk it
 * writes to stdout goes to `peer` as one datagram, and datagrams from `peer`
 * (only from it) are written to its stdin. Resolves with the child's exit
 * code once it has exited.
 */
export async function execToPeer(
  socket: UdpSocket,
  peer: Deno.NetAddr,
  spec: ExecSpec,
  options: ExecToPeerOptions = {},
): Promise<number> {
  const child = spawnExec(spec, udpEnv(peer, socket.addr));
  const onAbort = () => killGroup(child, "SIGTERM");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  const stdin = child.stdin.getWriter();
  const inbound = (async () => {
    let d;
    while ((d = await socket.receive()) !== null) {
      if (d.from.port !== peer.port || d.from.hostname !== peer.hostname) {
        continue; // only the peer we talk to
      }
      await stdin.write(d.data).catch(() => {});
    }
  })().catch(() => {});
  const reader = child.stdout.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      // A send that fails (the peer's port closed) loses that datagram, as
      // UDP does; the child keeps running until it exits.
      await sendOutput(socket, value, peer).catch(() => {});
    }
  } catch { /* stdout cut by an abort */ }
  const status = await child.status;
  options.signal?.removeEventListener("abort", onAbort);
  socket.close();
  await inbound;
  await stdin.close().catch(() => {});
  return status.code;
}
