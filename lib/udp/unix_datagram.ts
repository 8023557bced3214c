/**
 * Unix datagram sockets (`-u -U`), as `nc -uU`: a client that sends each
 * input payload as one datagram to a socket path and prints what comes back
 * to its own bound path, and a listener bound to a path.
 *
 * The sockets are our own, through libc (native/socket_fd.ts): Deno's
 * `"unixpacket"` socket refuses to send while a receive is pending (measured:
 * `Busy: Socket already in use`), and a relay must do both at once. Linux
 * with FFI only. Every path bound here is removed when the socket closes;
 * abstract names (`"\0name"`) have no file.
 *
 * @module
 */
import { datagramsFrom, type SplitMode } from "./_datagram_input.ts";
import { unixName } from "../address.ts";
import { type Reader, writeAll, type Writer } from "../copy.ts";
import { describeError, netError } from "../errors.ts";
import { type Logger, silent } from "../log.ts";
import { UnixDatagramSocket } from "../native/unix_dgram_fd.ts";

/** The largest datagram received whole (larger ones are cut by the kernel). */
const RECEIVE_BUFFER = 256 * 1024;
/** The largest payload read from input for one datagram. */
const MAX_SEND = 212_992; // Linux's default net.core.wmem_default

/** Binds `path`, phrasing failures for users. */
function bind(path: string): UnixDatagramSocket {
  try {
    return new UnixDatagramSocket(path);
  } catch (err) {
    throw netError(`bind unix datagram socket ${unixName(path)}`, err);
  }
}

/** Options for {@linkcode unixDatagramClient}. */
export interface UnixDatagramClientOptions {
  /** Bytes to send. */
  input: Reader;
  /** Where replies go. */
  output: Writer;
  /** One datagram per line or per read. @default {"chunk"} */
  split?: SplitMode;
  /**
   * The path this end binds so replies can reach it (`-s LOCALPATH`). By
   * default a fresh path in a new temporary directory, removed at the end.
   */
  localPath?: string;
  /** After input EOF, exit once this many ms pass with no reply. @default {1000} */
  wait?: number;
  /** After input EOF, exit after this many ms whatever comes. */
  quitAfterEof?: number;
  /** Stop early. */
  signal?: AbortSignal;
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
}

/** What a Unix datagram run moved. */
export interface UnixDatagramResult {
  /** Datagrams sent. */
  sent: number;
  /** Datagrams received. */
  received: number;
}

/**
 * Sends `input` to the Unix datagram socket at `path` and writes replies.
 *
 * @example Usage (tests/udp/unix_datagram_test.ts runs the same)
 * ```ts ignore
 * import { unixDatagramClient } from "./unix_datagram.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = Deno.makeTempDirSync();
 * const server = Deno.listenDatagram({ transport: "unixpacket", path: `${dir}/s` });
 * const echo = (async () => {
 *   const [d, from] = await server.receive();
 *   await server.send(d, from); // the server only answers: Deno's socket is enough
 * })();
 * const data = [new TextEncoder().encode("ping")];
 * const input = { read(p: Uint8Array) {
 *   const c = data.shift(); if (!c) return Promise.resolve(null);
 *   p.set(c); return Promise.resolve(c.length);
 * } };
 * let text = "";
 * const output = { write(p: Uint8Array) { text += new TextDecoder().decode(p); return Promise.resolve(p.length); } };
 * const r = await unixDatagramClient(`${dir}/s`, { input, output, wait: 200 });
 * await echo;
 * server.close();
 * Deno.removeSync(dir, { recursive: true });
 * assertEquals(text, "ping");
 * assertEquals(r, { sent: 1, received: 1 });
 * ```
 */
export async function unixDatagramClient(
  path: string,
  options: UnixDatagramClientOptions,
): Promise<UnixDatagramResult> {
  const logger = options.logger ?? silent;
  const wait = options.wait ?? 1000;
  const tempDir = options.localPath === undefined
    ? Deno.makeTempDirSync({ prefix: "denocat-" })
    : undefined;
  const result: UnixDatagramResult = { sent: 0, received: 0 };
  try {
    using socket = bind(
      options.localPath ?? `${tempDir}/client.sock`,
    );
    logger.log(
      `sending to unix datagram ${unixName(path)} from ${
        unixName(socket.path)
      }`,
    );
    let lastReply = performance.now();
    let kick = () => {};
    const receiving = (async () => {
      const buf = new Uint8Array(RECEIVE_BUFFER);
      let d;
      while ((d = await socket.receive(buf)) !== null) {
        lastReply = performance.now();
        result.received++;
        await writeAll(options.output, d.data);
        kick();
      }
    })();
    receiving.catch(() => kick());
    const aborted = Promise.withResolvers<void>();
    const onAbort = () => aborted.resolve();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const sending = (async () => {
        for await (
          const payload of datagramsFrom(
            options.input,
            options.split ?? "chunk",
            MAX_SEND,
          )
        ) {
          if (options.signal?.aborted) return;
          try {
            await socket.send(payload, path);
          } catch (err) {
            throw netError(`send to ${unixName(path)}`, err);
          }
          result.sent++;
        }
      })();
      await Promise.race([sending, aborted.promise]);
      const eof = performance.now();
      lastReply = Math.max(lastReply, eof);
      let failed = false;
      receiving.catch(() => failed = true);
      while (!options.signal?.aborted && !failed) {
        const now = performance.now();
        const left = Math.min(
          lastReply + wait - now,
          options.quitAfterEof !== undefined
            ? eof + options.quitAfterEof - now
            : Infinity,
        );
        if (left <= 0) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, left);
          function done() {
            clearTimeout(timer);
            options.signal?.removeEventListener("abort", done);
            kick = () => {};
            resolve();
          }
          kick = done;
          options.signal?.addEventListener("abort", done, { once: true });
        });
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      socket.close();
      await receiving;
    }
  } finally {
    if (tempDir) Deno.removeSync(tempDir, { recursive: true });
  }
  logger.log(`${result.sent} datagrams sent, ${result.received} received`);
  return result;
}

/** Options for {@linkcode unixDatagramListen}. */
export interface UnixDatagramListenOptions {
  /** Sent to the latest peer that has a path; omit to only receive. */
  input?: Reader;
  /** Where received datagrams go. */
  output: Writer;
  /** One datagram per line or per read. @default {"chunk"} */
  split?: SplitMode;
  /** Stops the listener. */
  signal?: AbortSignal;
  /** Called once bound. */
  onListening?: (path: string) => void;
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
}

/**
 * Binds `path` as a Unix datagram socket and prints what arrives, until
 * `signal` aborts; input goes to the latest sender with a bound path. The
 * path is removed at the end.
 */
export async function unixDatagramListen(
  path: string,
  options: UnixDatagramListenOptions,
): Promise<UnixDatagramResult> {
  const logger = options.logger ?? silent;
  using socket = bind(path);
  logger.log(`listening on unix datagram ${unixName(path)}`);
  options.onListening?.(path);
  const result: UnixDatagramResult = { sent: 0, received: 0 };
  let latest = "";
  const onAbort = () => socket.close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) socket.close();
  const sending = options.input &&
    (async () => {
      for await (
        const payload of datagramsFrom(
          options.input!,
          options.split ?? "chunk",
          MAX_SEND,
        )
      ) {
        if (socket.closed) return;
        if (!latest) {
          logger.log(
            `no peer with a path yet: ${payload.length} bytes of input dropped`,
          );
          continue;
        }
        try {
          await socket.send(payload, latest);
          result.sent++;
        } catch (err) {
          if (socket.closed) return;
          logger.log(`${unixName(latest)}: ${describeError(err)}`);
        }
      }
    })().catch((err) => logger.log(`input: ${describeError(err)}`));
  try {
    const buf = new Uint8Array(RECEIVE_BUFFER);
    let d;
    while ((d = await socket.receive(buf)) !== null) {
      if (logger.enabled) {
        logger.log(
          `${d.data.length} bytes from ${
            d.from ? unixName(d.from) : "an unbound socket"
          }`,
        );
      }
      if (d.from) latest = d.from;
      result.received++;
      await writeAll(options.output, d.data);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    socket.close();
  }
  void sending; // a pending stdin read cannot be cancelled
  return result;
}
