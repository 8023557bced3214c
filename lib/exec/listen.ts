/**
 * Listening with a program per connection (`-l -e PROG`, `-l -k -c CMD`):
 * like inetd, each accepted connection gets its own child with the
 * connection as its stdin and stdout (see {@linkcode execOver}).
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import { acceptLoop, acceptNext } from "../accept.ts";
import { firstAdmitted, Handshakes } from "../first_admitted.ts";
import { describeError } from "../errors.ts";
import { type Logger, silent } from "../log.ts";
import {
  closeQuietly,
  type Conn,
  type Endpoint,
  listen,
  type ListenOptions,
} from "../tcp/connect.ts";
import {
  execOver,
  type ExecOverOptions,
  type ExecSpec,
  type ExecStream,
} from "./stream.ts";

/** Options for {@linkcode execListen}. */
export interface ExecListenOptions extends ListenOptions {
  /** Serve clients concurrently, one child each (`-k`). @default {false} */
  keep?: boolean;
  /** With `keep`: at most this many children at once; more clients are closed on arrival. */
  maxConns?: number;
  /** Whether a peer may connect; refused peers are closed at once (logged). */
  accept?: (addr: Deno.Addr) => boolean;
  /**
   * Wraps an accepted connection before the child gets it (TLS), or throws
   * to refuse it (logged).
   */
  wrap?: (conn: Conn) => Promise<ExecStream>;
  /** `NCAT_PROTO` for the children. @default {"TCP"} */
  proto?: ExecOverOptions["proto"];
  /** Stops listening and ends the running children. */
  signal?: AbortSignal;
  /** Called once bound, with the local address. */
  onListening?: (addr: Deno.Addr) => void;
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
}

/** What {@linkcode execListen} served. */
export interface ExecListenResult {
  /** Connections given a child. */
  connections: number;
  /** Connections refused (access list, `maxConns`, a failed wrap). */
  refused: number;
  /** The last child's exit code (single mode), for the caller's logs. */
  lastCode?: number;
}

/**
 * Listens on `endpoint` and runs `spec` for each connection: one, or with
 * `keep` every one until `signal` aborts. A program that cannot be started
 * fails the single mode; with `keep` it is logged and the client closed.
 */
export async function execListen(
  endpoint: Endpoint | { port: number },
  spec: ExecSpec,
  options: ExecListenOptions = {},
): Promise<ExecListenResult> {
  const logger = options.logger ?? silent;
  const listener = listen(endpoint as Endpoint, options);
  logger.log(`listening on ${formatAddr(listener.addr)}`);
  options.onListening?.(listener.addr);
  const ac = new AbortController();
  const onAbort = () => {
    ac.abort();
    closeQuietly(listener);
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  let connections = 0, refused = 0, active = 0;
  let lastCode: number | undefined;

  // Connections in their TLS handshake: counted against --max-conns (a
  // flood that never handshakes holds at most that many descriptors) and
  // closed when the listener stops.
  const handshaking = new Handshakes<Conn>();
  ac.signal.addEventListener("abort", () => handshaking.closeAll());
  /**
   * The connection ready for a child, or `undefined` when refused.
   * `dropped`: aborted when a single-connection listener closed it itself
   * (first_admitted.ts), which needs no report.
   */
  const admit = async (
    raw: Conn,
    dropped?: AbortSignal,
  ): Promise<{ raw: Conn; stream: ExecStream } | undefined> => {
    const peer = formatAddr(raw.remoteAddr);
    if (options.accept && !options.accept(raw.remoteAddr)) {
      refused++;
      logger.log(`${peer}: refused by the access list`);
      closeQuietly(raw);
      return undefined;
    }
    if (
      options.keep &&
      active + handshaking.size >= (options.maxConns ?? Infinity) &&
      !handshaking.evictOldest(logger)
    ) {
      // Every slot runs a program: the newcomer goes.
      refused++;
      logger.log(`${peer}: closed, ${active} clients already (--max-conns)`);
      closeQuietly(raw);
      return undefined;
    }
    if (!options.wrap) return { raw, stream: raw };
    handshaking.add(raw);
    try {
      const stream = await options.wrap(raw);
      if (handshaking.evicted(raw)) throw new Error("evicted");
      return { raw, stream };
    } catch (err) {
      refused++;
      if (
        !ac.signal.aborted && !dropped?.aborted && !handshaking.evicted(raw)
      ) {
        logger.log(`${peer}: ${describeError(err)}`);
      }
      closeQuietly(raw);
      return undefined;
    } finally {
      handshaking.delete(raw);
    }
  };
  const serve = async ({ raw, stream }: { raw: Conn; stream: ExecStream }) => {
    const peer = formatAddr(raw.remoteAddr);
    connections++;
    active++;
    logger.log(`connection from ${peer}: running the program`);
    try {
      const r = await execOver(stream, spec, {
        signal: ac.signal,
        addrs: raw,
        ...(options.proto ? { proto: options.proto } : {}),
      });
      lastCode = r.code;
      logger.log(
        `${peer}: program exited with ${r.code}${
          r.signal ? ` (${r.signal})` : ""
        }; sent ${r.sent} bytes, received ${r.received} bytes`,
      );
    } finally {
      active--;
    }
  };

  try {
    if (!options.keep && options.wrap) {
      // Handshakes side by side, the first client through wins: one that
      // connects and never handshakes holds no slot (first_admitted.ts).
      const streams = new Map<Conn, ExecStream>();
      const won = await firstAdmitted(
        listener as Deno.Listener<Conn>,
        async (raw, dropped) => {
          const a = await admit(raw, dropped);
          if (!a) return null;
          streams.set(raw, a.stream);
          return raw;
        },
        { signal: ac.signal, logger },
      );
      for (const [raw, stream] of streams) if (raw !== won) stream.close();
      const stream = won ? streams.get(won) : undefined;
      if (!won || !stream) return { connections, refused };
      await serve({ raw: won, stream });
      return {
        connections,
        refused,
        ...(lastCode !== undefined ? { lastCode } : {}),
      };
    }
    if (!options.keep) {
      for (;;) {
        let raw: Conn;
        try {
          raw = await acceptNext(listener as Deno.Listener<Conn>);
        } catch (err) {
          if (ac.signal.aborted) return { connections, refused };
          throw err;
        }
        const admitted = await admit(raw);
        if (!admitted) continue;
        closeQuietly(listener);
        await serve(admitted);
        return {
          connections,
          refused,
          ...(lastCode !== undefined ? { lastCode } : {}),
        };
      }
    }
    const loop = acceptLoop<Conn>(
      listener as Deno.Listener<Conn>,
      async (raw) => {
        const admitted = await admit(raw);
        if (!admitted) return;
        try {
          await serve(admitted);
        } catch (err) {
          logger.log(`${formatAddr(raw.remoteAddr)}: ${describeError(err)}`);
          admitted.stream.close();
        }
      },
      { logger },
    );
    await loop.stopped;
    await loop.drain();
    return { connections, refused };
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    closeQuietly(listener);
  }
}
