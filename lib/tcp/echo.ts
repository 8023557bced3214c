/**
 * A concurrent TCP (or Unix socket) echo server.
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import { acceptLoop } from "../accept.ts";
import { writeAll } from "../copy.ts";
import { DenocatError, describeError } from "../errors.ts";
import { IdleWatch } from "../idle.ts";
import { upperAsciiInPlace } from "../upper.ts";
import { type Logger, silent } from "../log.ts";
import { bindAddress } from "../bind.ts";
import { type EchoJob, OPEN, SERVED } from "../native/echo_job.ts";
import { ffiAllowed, libc } from "../native/libc.ts";
import { claimSocket } from "../native/identity.ts";
import { listenNative, type NativeListener } from "../native/listener.ts";
import { type NotStarted, ThreadGroup } from "../native/threads.ts";
import {
  closeQuietly,
  type Conn,
  type Endpoint,
  listen,
  type Listener,
  type ListenOptions,
} from "./connect.ts";

/** Options for {@linkcode echoServer}. */
export interface EchoOptions extends ListenOptions {
  /** Upper-case ASCII letters before echoing, like the seeds' server. @default {false} */
  upper?: boolean;
  /** Refuse (accept and close at once) connections beyond this many. @default {Infinity} */
  maxConns?: number;
  /** Per-connection buffer size; small, since one exists per client. @default {16384} */
  bufferSize?: number;
  /** Where connection events go. */
  logger?: Logger;
  /** Close a connection that moves no byte either way for this many ms. @default {no limit} */
  idleTimeout?: number;
  /**
   * How to serve TCP: `auto` runs `threads` echo threads, each an epoll
   * loop through libc, where it can (Linux, `--allow-ffi`; see
   * {@linkcode EchoServer.ready}) and otherwise falls back to `deno`, which
   * serves on the main thread with Deno's async I/O. Unix sockets, and
   * servers with `keepalive`, always use `deno`. The threads accept on a
   * listening socket the engine made itself; for a host name (not an IP
   * literal) Deno binds it and the threads get a duplicate proved to be
   * that listener, or the server runs on `deno` (the logger says why).
   * @default {"auto"}
   */
  engine?: "auto" | "deno";
  /** Echo threads of the `epoll` engine. @default {1} */
  threads?: number;
  /**
   * Whether a peer may connect (`--allow`/`--deny`); refused peers are
   * closed at once, logged. The threads accept on their own, so a server
   * with a list runs on `deno`. @default {every peer}
   */
  accept?: (addr: Deno.Addr) => boolean;
  /**
   * Layers each accepted connection before it is echoed (TLS, see
   * stream_conn.ts), or throws to refuse it (logged). The bytes echoed are
   * then the layer's (decrypted) bytes, so such a server always runs on
   * `deno`: the epoll threads would echo the socket's raw bytes.
   */
  wrap?: (conn: Conn) => Promise<Conn>;
}

/** A running echo server. */
export interface EchoServer extends AsyncDisposable {
  /** The bound address (read the port from here when you passed 0). */
  readonly addr: Deno.Addr;
  /** Connections currently open. */
  readonly active: number;
  /** Connections served since start. */
  readonly served: number;
  /** Resolves with the engine serving, once it runs (see {@linkcode EchoOptions.engine}). */
  readonly ready: Promise<"epoll" | "deno">;
  /** Stops accepting, closes every connection and waits for their handlers. */
  close(): Promise<void>;
}

/**
 * Starts an echo server on `endpoint` (use port 0 for a free port).
 *
 * @example Usage
 * ```ts
 * import { echoServer } from "./echo.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using server = echoServer({ hostname: "127.0.0.1", port: 0 }, { upper: true });
 * const port = (server.addr as Deno.NetAddr).port;
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port });
 * await conn.write(new TextEncoder().encode("hah"));
 * const buf = new Uint8Array(3);
 * const n = await conn.read(buf);
 * assertEquals(new TextDecoder().decode(buf.subarray(0, n!)), "HAH");
 * ```
 */
export function echoServer(
  endpoint: Endpoint,
  options: EchoOptions = {},
): EchoServer {
  // Keepalive is switched on as Deno accepts (connect.ts); the epoll threads
  // accept on their own, so a keepalive server runs on the event loop.
  const engine = options.keepalive || options.accept || options.wrap
    ? "deno"
    : options.engine ?? "auto";
  const c = engine !== "deno" && endpoint.path === undefined && ffiAllowed()
    ? libc()
    : null;
  // The epoll engine binds its own socket through libc (native/listener.ts),
  // so there is no listener to find among the process's descriptors; only a
  // host name is left to Deno to resolve and bind.
  let own: NativeListener | undefined;
  let listener: Listener | undefined;
  if (c === null) listener = listen(endpoint, options);
  else {
    const port = endpoint.port!;
    const bound = bindAddress(
      endpoint.hostname,
      port,
      options.family,
      "",
      (hostname) =>
        listenNative(c, hostname, port) ??
          Deno.listen({ hostname, port, transport: "tcp" }),
    );
    if ("fd" in bound) own = bound;
    else listener = bound;
  }
  const addr: Deno.Addr = own ? own.addr : listener!.addr;
  const logger = options.logger ?? silent;
  const maxConns = options.maxConns ?? Infinity;
  const bufferSize = options.bufferSize ?? 16384;
  const upper = options.upper ?? false;
  const conns = new Set<Conn>();
  let served = 0;
  let closing = false;
  let threads: ThreadGroup | undefined;
  let deno: { close(): Promise<void> } | undefined;
  const serveWithDeno = (): "deno" => {
    deno = denoEngine(listener!);
    return "deno";
  };
  const denoEngine = (listener: Listener) => {
    // Closed for idling: their handler's failing read is not news.
    const idled = new WeakSet<Conn>();
    const idle = options.idleTimeout
      ? new IdleWatch<Conn>(options.idleTimeout, (c) => {
        logger.log(`${formatAddr(c.remoteAddr)}: idle, closed`);
        idled.add(c);
        closeQuietly(c);
      })
      : undefined;

    const handle = async (conn: Conn) => {
      const peer = formatAddr(conn.remoteAddr);
      const start = performance.now();
      let bytes = 0;
      const buf = new Uint8Array(bufferSize);
      try {
        if (conn.remoteAddr.transport === "tcp") {
          (conn as Deno.TcpConn).setNoDelay(true);
        }
        let n: number | null;
        while ((n = await conn.read(buf)) !== null) {
          const chunk = buf.subarray(0, n);
          idle?.touch(conn);
          if (upper) upperAsciiInPlace(chunk);
          // One write nearly always takes it all; loop only on a partial write.
          const written = await conn.write(chunk);
          if (written < n) await writeAll(conn, chunk.subarray(written));
          bytes += n;
          idle?.touch(conn);
        }
        logger.log(
          `${peer} closed after ${bytes} bytes echoed in ${
            ((performance.now() - start) / 1000).toFixed(3)
          } s`,
        );
      } catch (err) {
        if (!closing && !idled.has(conn)) {
          logger.log(`${peer}: ${describeError(err)} after ${bytes} bytes`);
        }
      } finally {
        idle?.delete(conn);
        conns.delete(conn);
        closeQuietly(conn);
      }
    };

    const loop = acceptLoop<Conn>(listener, async (conn) => {
      if (options.accept && !options.accept(conn.remoteAddr)) {
        logger.log(`${formatAddr(conn.remoteAddr)} refused by the access list`);
        closeQuietly(conn);
        return;
      }
      if (conns.size >= maxConns) {
        logger.log(
          `${
            formatAddr(conn.remoteAddr)
          } refused: ${conns.size} connections open (--max-conns)`,
        );
        closeQuietly(conn);
        return;
      }
      if (options.wrap) {
        // Counted while it handshakes, and closed with the server.
        const raw = conn;
        conns.add(raw);
        try {
          conn = await options.wrap(raw);
        } catch (err) {
          if (!closing) {
            logger.log(`${formatAddr(raw.remoteAddr)}: ${describeError(err)}`);
          }
          closeQuietly(raw);
          return;
        } finally {
          conns.delete(raw);
        }
        if (closing) {
          closeQuietly(conn);
          return;
        }
      }
      served++;
      conns.add(conn);
      idle?.add(conn);
      logger.log(`connection from ${formatAddr(conn.remoteAddr)}`);
      await handle(conn);
    }, { logger });

    return {
      async close() {
        await loop.stopped;
        for (const c of conns) closeQuietly(c);
        await loop.drain();
        idle?.[Symbol.dispose]();
      },
    };
  };
  // The threads' listening descriptor: our own socket, or a close-on-exec
  // duplicate of Deno's listener proved to be it by its exact identity
  // (native/identity.ts). Closed here once the threads have stopped.
  let fd = own?.fd ?? -1;
  if (c !== null && listener !== undefined) {
    const claim = claimSocket(c, {
      kind: "listener",
      local: addr as Deno.NetAddr,
    });
    if ("fd" in claim) fd = claim.fd;
    else {
      logger.log(
        `epoll engine not used: ${claim.declined}; serving on the event loop`,
      );
    }
  }
  const ready: Promise<"epoll" | "deno"> = fd < 0
    ? Promise.resolve(serveWithDeno())
    : startThreads(fd, options).then((t) => {
      if (t instanceof ThreadGroup) {
        threads = t;
        return "epoll";
      }
      if (!t.stopped) {
        // A thread may still be accepting on the descriptor: it stays
        // open, and nothing else can listen on the address.
        throw new DenocatError(
          `cannot serve on ${formatAddr(addr)}: an epoll thread did not stop`,
        );
      }
      if (own === undefined) c!.close(fd);
      else {
        // No thread could start: give the address to Deno instead.
        own.close();
        own = undefined;
        const { hostname, port } = addr as Deno.NetAddr;
        listener = listen({ hostname, port });
      }
      logger.log("epoll engine not used: no thread started");
      return serveWithDeno();
    });
  // Whoever awaits `ready` gets a failure too; marked handled here so that
  // a caller who never looks does not lose the process to it.
  ready.catch((err) => logger.log(describeError(err)));

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      closing = true;
      await ready.catch(() => {});
      if (threads) {
        // Closed only once every thread confirmed it stopped; a thread
        // ended without confirming may still be in a call on it.
        if (await threads.stop()) {
          if (own) own.close();
          else c!.close(fd);
        } else {
          logger.log("an epoll thread did not stop; its socket is left open");
        }
      }
      if (listener) closeQuietly(listener);
      await deno?.close();
    })();

  return {
    addr,
    ready,
    get active() {
      return threads ? threads.counter(OPEN) : conns.size;
    },
    get served() {
      return threads ? threads.counter(SERVED) : served;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The epoll engine (lib/native/_echo_worker.ts) on `options.threads`
 * threads, accepting on listening descriptor `fd`.
 */
function startThreads(
  fd: number,
  options: EchoOptions,
): Promise<ThreadGroup | NotStarted> {
  const job: EchoJob = {
    fd,
    upper: options.upper ?? false,
    maxConns: options.maxConns ?? -1,
    idleMs: options.idleTimeout ?? 0,
    verbose: options.logger?.enabled ?? false,
    bufferSize: options.bufferSize ?? 16384,
    shared: new SharedArrayBuffer(3 * 4),
  };
  return ThreadGroup.start(
    new URL("../native/_echo_worker.ts", import.meta.url),
    Math.max(1, options.threads ?? 1),
    job,
    options.logger ?? silent,
  );
}
