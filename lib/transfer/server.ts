/**
 * The receiver as a server: one sender and done, or (`keep`) any number of
 * senders at once, each connection's failure logged and contained.
 *
 * @module
 */
import { acceptLoop, acceptNext } from "../accept.ts";
import { firstAdmitted } from "../first_admitted.ts";
import { formatAddr } from "../address.ts";
import { describeError } from "../errors.ts";
import { IdleWatch } from "../idle.ts";
import { silent } from "../log.ts";
import {
  closeQuietly,
  type Conn,
  type Endpoint,
  listen,
  type Listener,
  type ListenOptions,
} from "../tcp/connect.ts";
import {
  type ConnectionResult,
  type ReceiveOptions,
  receiveOver,
} from "./recv.ts";
import {
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_CONNS,
  DEFAULT_MAX_CONNS_PER_IP,
  DEFAULT_MAX_PENDING,
  drainAndClose,
  sourceOf,
} from "./busy.ts";
import { DEFAULT_MAX_DEPTH } from "./names.ts";
import { TargetDir } from "./place.ts";
import { seedReceiveOver } from "./seed.ts";
import { safeLogger } from "./show.ts";
import { removeStaleTemps } from "./stale.ts";
import { type Destination, receiverUmask } from "./store.ts";

/** Options for {@linkcode receiveServer}. */
export interface ReceiveServerOptions
  extends ListenOptions, Omit<ReceiveOptions, "destination" | "peer"> {
  /** Directory to write items into; without it, the single item goes to `output`. */
  dir?: string;
  /** Output for the single item when `dir` is absent. @default {Deno.stdout} */
  output?: { write(p: Uint8Array): Promise<number> };
  /**
   * On start, remove temporary files under `dir` left by receivers that
   * died (see `removeStaleTemps`). @default {true}
   */
  cleanStale?: boolean;
  /** Replace existing files. @default {false} */
  overwrite?: boolean;
  /** Serve senders concurrently until closed (`-k`). @default {false} */
  keep?: boolean;
  /** Speak the seeds' header instead of the native protocol. @default {"native"} */
  compat?: "native" | "seed";
  /**
   * Close a sender that sends nothing for this many ms (its unfinished
   * item is discarded); 0 for never. A sender waiting on a slow stream
   * sends empty chunks meanwhile. @default {DEFAULT_IDLE_TIMEOUT}
   */
  idleTimeout?: number;
  /**
   * With `keep`: the most slots one source address holds at once; a
   * further sender from it is told `busy`. @default {DEFAULT_MAX_CONNS_PER_IP}
   */
  maxConnsPerIp?: number;
  /** Most components in a name. @default {DEFAULT_MAX_DEPTH} */
  maxDepth?: number;
  /**
   * Whether a peer may connect (`--allow`/`--deny`); refused peers are
   * closed at once, before a byte is read, and logged. @default {every peer}
   */
  accept?: (addr: Deno.Addr) => boolean;
  /**
   * Layers each accepted connection before the protocol starts (TLS, see
   * tcp/stream_conn.ts), or throws to refuse it (logged; a single-sender
   * receiver goes on waiting).
   */
  wrap?: (conn: Conn) => Promise<Conn>;
  /**
   * Use directory descriptors (FFI) when available; `false` forces the
   * portable path, which refuses a `dir` other users can write to.
   * @default {true}
   */
  native?: boolean;
  /**
   * With `keep`: the most senders served at once. A sender takes a slot
   * when its first item header arrives and holds it until done; each may
   * hold 2 x `bufferSize` of body buffers. A sender whose header arrives
   * while every slot is taken is told `busy` (a seed sender, which has no
   * ack channel, sees the connection close).
   * @default {DEFAULT_MAX_CONNS}
   */
  maxConns?: number;
  /**
   * With `keep`: the most connections held before their first item header
   * (hello exchange, or idle); they take no slot of `maxConns`. Beyond
   * this many, the oldest is closed, so idle connections cannot lock out a
   * sender. @default {DEFAULT_MAX_PENDING}
   */
  maxPending?: number;
  /** Called after each connection. */
  onConnection?: (result: ConnectionResult) => void;
}

/** A running receiver. */
export interface ReceiveServer extends AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.Addr;
  /** The bound TCP port (0 for Unix sockets). */
  readonly port: number;
  /**
   * Resolves with the exit code: without `keep`, that of the one connection
   * served; with `keep`, 0 once closed.
   */
  readonly finished: Promise<number>;
  /** Connections served to their end so far (not counting those turned away). */
  readonly served: number;
  /** Connections turned away as busy (`maxConns`) so far. */
  readonly turnedAway: number;
  /** Connections closed before their first item header (`maxPending`) so far. */
  readonly dropped: number;
  /**
   * Resolves once the target directory is open and cleaned; rejects with a
   * one-line error when it cannot be served (missing, or writable by other
   * users without FFI).
   */
  readonly ready: Promise<void>;
  /** Stops listening, ends open connections and waits for them. */
  close(): Promise<void>;
}

/**
 * Listens on `endpoint` and receives items from senders.
 *
 * @example Usage
 * ```ts
 * import { receiveServer } from "./server.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = await Deno.makeTempDir();
 * await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, { dir, keep: true });
 * assertEquals(server.served, 0);
 * await Deno.remove(dir);
 * ```
 */
export function receiveServer(
  endpoint: Endpoint | { port: number; hostname?: undefined; path?: undefined },
  options: ReceiveServerOptions = {},
): ReceiveServer {
  // Error lines quote what senders sent: escaped before printing.
  const logger = safeLogger(options.logger ?? silent);
  const listener: Listener = listen(endpoint as Endpoint, options);
  const conns = new Set<Conn>();
  // Connections before their first item header, oldest first.
  const pending = new Set<Conn>();
  const maxConns = options.maxConns ?? DEFAULT_MAX_CONNS;
  const maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  const maxPerIp = options.maxConnsPerIp ?? DEFAULT_MAX_CONNS_PER_IP;
  const idleTimeout = options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT;
  // Slots and pending connections per source address.
  const slotsBySource = new Map<string, number>();
  const pendingBySource = new Map<string, Set<Conn>>();
  let active = 0;
  let served = 0;
  let turnedAway = 0;
  let dropped = 0;
  let closing = false;
  let rootPromise: Promise<Destination> | undefined;
  let target: TargetDir | undefined;
  const destination = () =>
    rootPromise ??= (async (): Promise<Destination> => {
      if (options.dir === undefined) {
        return { output: options.output ?? Deno.stdout };
      }
      target = await TargetDir.open(
        options.dir,
        options.native === false ? { native: false } : {},
      );
      receiverUmask(); // read once, before any file is created
      if (options.cleanStale ?? true) {
        const n = await removeStaleTemps(target);
        if (n > 0) {
          logger.log(
            `removed ${n} stale temporary files left in ${target.path}`,
          );
        }
      }
      return {
        dir: target.path,
        root: target,
        overwrite: options.overwrite ?? false,
        maxDepth: options.maxDepth ?? DEFAULT_MAX_DEPTH,
      };
    })();
  // Clean up at once rather than at the first sender; errors show up there.
  const ready = destination().then(() => {});
  ready.catch(() => {});

  const idled = new Set<Conn>();
  // Per connection: how to tell its sender why it is closed.
  const lastWords = new Map<Conn, (reason: string) => Promise<void>>();
  const idle = idleTimeout > 0
    ? new IdleWatch<Conn>(idleTimeout, (c) => {
      idled.add(c);
      const why = `no data for ${
        idleTimeout / 1000
      } s (--idle-timeout), closed`;
      logger.log(`${formatAddr(c.remoteAddr)}: ${why}`);
      const say = lastWords.get(c);
      if (!say) return closeQuietly(c);
      // Best effort, bounded: a sender that reads nothing still goes.
      const timer = setTimeout(() => closeQuietly(c), 250);
      say(
        `the receiver closed the connection: no data from this sender for ${
          idleTimeout / 1000
        } s (--idle-timeout)`,
      ).finally(() => {
        clearTimeout(timer);
        closeQuietly(c);
      });
    })
    : undefined;

  const droppedConns = new Set<Conn>();
  const admitted = new Set<Conn>();
  /** With `keep`: the sender's first item header is in; a slot, or why not. */
  const unpend = (conn: Conn) => {
    pending.delete(conn);
    const src = sourceOf(conn.remoteAddr);
    const set = pendingBySource.get(src);
    if (set?.delete(conn) && set.size === 0) pendingBySource.delete(src);
  };
  const admit = (conn: Conn, peer: string) => (): string | undefined => {
    unpend(conn);
    const src = sourceOf(conn.remoteAddr);
    const mine = slotsBySource.get(src) ?? 0;
    if (mine >= maxPerIp) {
      turnedAway++;
      logger.log(
        `${peer}: busy: its address already holds ${maxPerIp} senders (--max-conns-per-ip), turned away`,
      );
      return `receiver busy: it serves at most ${maxPerIp} senders from one address at once (--max-conns-per-ip); try again later`;
    }
    if (active >= maxConns) {
      turnedAway++;
      logger.log(
        `${peer}: busy: already serving ${maxConns} senders (--max-conns), turned away`,
      );
      return `receiver busy: it serves at most ${maxConns} senders at once; try again later`;
    }
    active++;
    slotsBySource.set(src, mine + 1);
    admitted.add(conn);
    return undefined;
  };

  const serve = async (conn: Conn): Promise<number> => {
    const peer = formatAddr(conn.remoteAddr);
    logger.log(`connection from ${peer}`);
    idle?.add(conn);
    try {
      const opts: ReceiveOptions = {
        destination: await destination(),
        logger,
        peer,
        ...(options.progress ? { progress: options.progress } : {}),
        ...(options.bufferSize ? { bufferSize: options.bufferSize } : {}),
        ...(idle ? { onRead: () => idle.touch(conn) } : {}),
        ...(options.keep ? { admit: admit(conn, peer) } : {}),
        ...(options.maxSize !== undefined ? { maxSize: options.maxSize } : {}),
        onSession: (last) => lastWords.set(conn, last),
      };
      const result = options.compat === "seed"
        ? await seedReceiveOver(conn, opts)
        : await receiveOver(conn, opts);
      if (result.busy) {
        // The busy ack is out (native): let the sender read it.
        await drainAndClose(conn);
        return 1;
      }
      if (result.unread) await drainAndClose(conn); // the refusal goes first
      served++;
      options.onConnection?.(result);
      const ok = result.items.filter((i) => i.ok).length;
      logger.log(
        `${peer}: done: ${ok} of ${result.items.length} items verified${
          idled.has(conn)
            ? " (idle)"
            : droppedConns.has(conn)
            ? ` (dropped: ${maxPending} connections waiting for an item header, --max-pending)`
            : result.error
            ? ` (${result.error})`
            : ""
        }`,
      );
      return result.exitCode;
    } catch (err) {
      logger.log(`${peer}: ${describeError(err)}`);
      options.onConnection?.({
        items: [],
        error: describeError(err),
        exitCode: 1,
      });
      return 1;
    } finally {
      idle?.delete(conn);
      idled.delete(conn);
      lastWords.delete(conn);
      droppedConns.delete(conn);
      unpend(conn);
      if (admitted.delete(conn)) {
        active--;
        const src = sourceOf(conn.remoteAddr);
        const n = (slotsBySource.get(src) ?? 1) - 1;
        if (n > 0) slotsBySource.set(src, n);
        else slotsBySource.delete(src);
      }
      conns.delete(conn);
      closeQuietly(conn);
    }
  };

  const refused = (conn: Conn): boolean => {
    if (!options.accept || options.accept(conn.remoteAddr)) return false;
    logger.log(`${formatAddr(conn.remoteAddr)}: refused by the access list`);
    closeQuietly(conn);
    return true;
  };
  /** The layered connection, or `null` when the layer refused it (logged). */
  let handshaking = 0;
  /**
   * With `droppedBy` (a single-sender receiver, see first_admitted.ts) the
   * cap is firstAdmitted's, and a connection it drops is not reported.
   */
  const wrapped = async (
    raw: Conn,
    droppedBy?: AbortSignal,
  ): Promise<Conn | null> => {
    if (!options.wrap) return raw;
    // Connections still in their handshake count against --max-pending:
    // beyond it a new one is closed at once, so a flood that never
    // handshakes holds at most that many descriptors (each for 10 s).
    // (A single-sender receiver closes the oldest instead: firstAdmitted.)
    if (!droppedBy && handshaking + pending.size >= maxPending) {
      logger.log(
        `${
          formatAddr(raw.remoteAddr)
        }: closed, ${handshaking} connections in their handshake (--max-pending)`,
      );
      dropped++;
      closeQuietly(raw);
      return null;
    }
    handshaking++;
    conns.add(raw); // closed with the server while it handshakes
    try {
      const conn = await options.wrap(raw);
      if (closing) {
        closeQuietly(conn);
        return null;
      }
      return conn;
    } catch (err) {
      if (!closing && !droppedBy?.aborted) {
        logger.log(`${formatAddr(raw.remoteAddr)}: ${describeError(err)}`);
      }
      closeQuietly(raw);
      return null;
    } finally {
      handshaking--;
      conns.delete(raw);
    }
  };
  const accept = async (): Promise<Conn | null> => {
    for (;;) {
      let raw: Conn;
      try {
        raw = await acceptNext(listener as Deno.Listener<Conn>);
      } catch (err) {
        if (closing || err instanceof Deno.errors.BadResource) return null;
        throw err;
      }
      if (refused(raw)) continue;
      const conn = await wrapped(raw);
      if (conn !== null) return conn;
      if (closing) return null;
    }
  };

  const finished = (async (): Promise<number> => {
    if (!options.keep) {
      // Handshakes run side by side (at most 16; the oldest goes for a
      // new one), the first sender through wins: one that connects and
      // never handshakes holds no slot (first_admitted.ts).
      const conn = options.wrap
        ? await firstAdmitted(
          listener as Deno.Listener<Conn>,
          async (raw, droppedBy) =>
            refused(raw) ? null : await wrapped(raw, droppedBy),
          { logger },
        )
        : await accept();
      closeQuietly(listener);
      if (conn === null) return 0;
      conns.add(conn);
      return await serve(conn);
    }
    const loop = acceptLoop<Conn>(listener, async (raw) => {
      if (refused(raw)) return;
      const conn = await wrapped(raw);
      if (conn === null) return;
      conns.add(conn);
      pending.add(conn);
      const src = sourceOf(conn.remoteAddr);
      let set = pendingBySource.get(src);
      if (!set) pendingBySource.set(src, set = new Set());
      set.add(conn);
      if (pending.size > maxPending) {
        // Not yet a sender: the oldest of the address holding the most
        // goes, never a slot, so one flooding source evicts only itself.
        let most: Set<Conn> = set;
        for (const s of pendingBySource.values()) {
          if (s.size > most.size) most = s;
        }
        const oldest: Conn = most.values().next().value!;
        unpend(oldest);
        droppedConns.add(oldest);
        dropped++;
        closeQuietly(oldest);
      }
      await serve(conn);
    }, { logger });
    await loop.drain();
    idle?.[Symbol.dispose]();
    return 0;
  })();

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      closing = true;
      closeQuietly(listener);
      for (const c of conns) closeQuietly(c);
      await finished.catch(() => {});
      await rootPromise?.catch(() => {});
      target?.[Symbol.dispose]();
    })();

  const addr = listener.addr;
  return {
    addr,
    port: addr.transport === "tcp" ? addr.port : 0,
    finished,
    get served() {
      return served;
    },
    get turnedAway() {
      return turnedAway;
    },
    get dropped() {
      return dropped;
    },
    ready,
    close,
    [Symbol.asyncDispose]: close,
  };
}
