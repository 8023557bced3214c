/**
 * The receiving side of the native transfer protocol: one connection's
 * items written and verified ({@linkcode receiveOver}).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { BufferedReader, type Reader } from "../frame/reader.ts";
import { describeError, EXIT_FAILURE, EXIT_INTEGRITY } from "../errors.ts";
import { formatTransfer, type Logger, silent } from "../log.ts";
import { closeWriteQuietly, type Conn } from "../tcp/connect.ts";
import {
  type Buffers,
  buffers,
  receiveExact,
  RECORD_BUFFER_SIZE,
  Sink,
  writeAll,
} from "./_pump.ts";
import type { Progress } from "./progress.ts";
import { escapeText, safeLogger, show } from "./show.ts";
import {
  type Ack,
  type AckCode,
  encodeAck,
  encodeHello,
  type ItemHeader,
  MAX_CHUNK,
  MAX_JSON_FRAME,
  parseHeader,
  parseHello,
  parseTrailer,
  ProtocolError,
  RECORD,
  TRAILER_SIZE,
  TRANSFER_HELLO_SIZE,
} from "./protocol.ts";
import {
  checkItemName,
  type Destination,
  openItem,
  RefusedError,
  type Session,
  type Stored,
} from "./store.ts";
import { makeDir, makeSymlink } from "./entries.ts";

/** Options shared by the native and seed receivers. */
export interface ReceiveOptions {
  /** Where items go. */
  destination: Destination;
  /** Per-item and per-connection lines (`-v`). */
  logger?: Logger;
  /** A live progress line. */
  progress?: Progress;
  /** Size of each of the two body buffers. @default {1 MiB} */
  bufferSize?: number;
  /** Label for log lines. @default {"peer"} */
  peer?: string;
  /** Called after each read from the connection with its size (idle timers). */
  onRead?: (bytes: number) => void;
  /**
   * Called once, when the first valid item header has arrived (after a
   * valid hello): returns `undefined` to go on, or why the sender is turned
   * away as busy (the native receiver sends a `busy` ack and stops reading;
   * the result has `busy: true`). @default {always go on}
   */
  admit?: () => string | undefined;
  /**
   * Largest item accepted, in bytes: a sized item above it is refused from
   * its header, a stream when it passes it; the session then ends.
   * @default {no limit}
   */
  maxSize?: number;
  /**
   * Called once the hello is answered, with a function that sends the
   * sender a last `protocol` ack saying why the receiver is about to close
   * the connection (used for the idle timeout).
   */
  onSession?: (last: (reason: string) => Promise<void>) => void;
}

/** The sender sent an item the receiver will not take, ending the session. */
class SessionEnd extends Error {
  readonly item: ReceivedItem;
  constructor(item: ReceivedItem) {
    super(item.error);
    this.item = item;
  }
}

/**
 * `conn` itself, or a reader calling `onRead` after each successful read.
 *
 * @example Usage
 * ```ts
 * import { watchedReader } from "./recv.ts";
 * import { assertEquals } from "../_assert.ts";
 * let seen = 0;
 * const src = { read: (p: Uint8Array) => Promise.resolve(p.length) };
 * await watchedReader(src, (n) => seen += n).read(new Uint8Array(3));
 * assertEquals(seen, 3);
 * assertEquals(watchedReader(src, undefined), src);
 * ```
 */
export function watchedReader(
  conn: Reader,
  onRead: ((bytes: number) => void) | undefined,
): Reader {
  if (!onRead) return conn;
  return {
    async read(p: Uint8Array): Promise<number | null> {
      const n = await conn.read(p);
      if (n !== null) onRead(n);
      return n;
    },
  };
}

/** Outcome of one received item. */
export interface ReceivedItem {
  /** The item's relative name, as sent. */
  name: string;
  /** Bytes received for the item. */
  bytes: number;
  /** SHA-256 of the bytes received, in hex. */
  sha256: string;
  /** Whether the item was verified and stored under its name. */
  ok: boolean;
  /** Why it was not stored (the ack code sent back), when `ok` is false. */
  code?: AckCode;
  /** The one-line reason, when `ok` is false. */
  error?: string;
  /** For a directory or symlink item: what was made (for logs). */
  made?: string;
  /**
   * Why this item's acknowledgement could not be sent (the sender went
   * away or stopped reading): the outcome above stands, but the sender may
   * not know it.
   */
  ackError?: string;
}

/** Outcome of one connection. */
export interface ConnectionResult {
  /** Every item the connection carried, in order. */
  items: ReceivedItem[];
  /** Why the connection ended early (malformed stream, reset, ...). */
  error?: string;
  /** Turned away by `admit` (the error says why); nothing was read further. */
  busy?: boolean;
  /**
   * The receiver stopped reading after a refusal the session cannot go on
   * from (`too-large`, `no-space`, `busy`): unread input may follow.
   */
  unread?: boolean;
  /** 0 all verified; 3 any integrity failure; 1 otherwise. */
  exitCode: number;
}

/** Exit code for a connection's outcome. */
export function connectionExitCode(
  items: ReceivedItem[],
  error: string | undefined,
): number {
  if (items.some((i) => i.code === "integrity")) return EXIT_INTEGRITY;
  if (error !== undefined || items.some((i) => !i.ok)) return EXIT_FAILURE;
  return 0;
}

/** Logs an item's outcome the same way for every receiver. */
export function logItem(
  logger: Logger,
  peer: string,
  item: ReceivedItem,
  ms: number,
  what = "sha256",
): void {
  if (item.ok && item.made) {
    logger.log(`${peer}: made ${show(item.name)}: ${item.made}`);
  } else if (item.ok) {
    logger.log(
      `${peer}: received ${show(item.name)}: ${
        formatTransfer(item.bytes, ms)
      } ${what} ${item.sha256} verified`,
    );
  } else {
    logger.log(
      `${peer}: ${show(item.name)}: refused: ${escapeText(item.error ?? "")}`,
    );
  }
  if (item.ackError !== undefined) {
    logger.log(
      `${peer}: ${
        show(item.name)
      }: the sender may not know: its acknowledgement could not be sent (${
        escapeText(item.ackError)
      })`,
    );
  }
}

/**
 * Writes acks on one connection. The first failed write means the sender
 * is gone or not reading: later acks are not attempted, and each caller
 * learns why, while the receiver goes on reading what was already sent.
 */
class AckWriter {
  #conn: Conn;
  #lost: string | undefined;
  #writing = false;
  constructor(conn: Conn) {
    this.#conn = conn;
  }
  /** Sends `ack`; resolves with why it could not be sent, if so. */
  async send(ack: Ack): Promise<string | undefined> {
    if (this.#lost !== undefined) return this.#lost;
    this.#writing = true;
    try {
      await writeAll(this.#conn, encodeAck(ack));
      return undefined;
    } catch (err) {
      return this.#lost = describeError(err);
    } finally {
      this.#writing = false;
    }
  }
  /**
   * The last word, from outside the read loop (an idle timeout): a
   * `protocol` ack with `reason`, unless an ack is being written (bytes
   * must not interleave). No ack goes out after it.
   */
  async last(reason: string): Promise<void> {
    if (this.#writing || this.#lost !== undefined) return;
    await this.send({ ok: false, name: "", code: "protocol", error: reason });
    this.#lost ??= "the session was ended";
  }
}

async function recordType(br: BufferedReader): Promise<number | null> {
  const t = await br.readSome(1);
  return t === null ? null : t[0]!;
}

/**
 * Serves one sender on `conn`: replies with a hello, then reads items until
 * END, writing each to the destination and acknowledging it. A malformed
 * stream ends the connection with a `protocol` ack (best effort) and an
 * `error` in the result; the connection is not closed here.
 *
 * @example Usage
 * ```ts
 * import { receiveOver } from "./recv.ts";
 * import { sendOver } from "./send.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * using server = await l.accept();
 * using c = await client;
 * const src = `${dir}/src.bin`;
 * await Deno.writeFile(src, new Uint8Array([1, 2, 3]));
 * await Deno.mkdir(`${dir}/out`);
 * const [sent, got] = await Promise.all([
 *   sendOver(c, [{ kind: "file", path: src, name: "x.bin", size: 3, mode: 0o644 }]),
 *   receiveOver(server, { destination: { dir: `${dir}/out`, overwrite: false } }),
 * ]);
 * assertEquals([sent.exitCode, got.exitCode], [0, 0]);
 * assertEquals(await Deno.readFile(`${dir}/out/x.bin`), new Uint8Array([1, 2, 3]));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function receiveOver(
  conn: Conn,
  options: ReceiveOptions,
): Promise<ConnectionResult> {
  // Names and messages below come from the peer: escaped before printing.
  const logger = safeLogger(options.logger ?? silent);
  const peer = options.peer ?? "peer";
  const progress = options.progress;
  // The body buffers (2 x 1 MiB) only once an item header has arrived: an
  // idle or garbage connection costs none.
  let bufs: Buffers | undefined;
  const lazyBuffers = () => bufs ??= buffers(options.bufferSize);
  const br = new BufferedReader(watchedReader(conn, options.onRead), {
    bufferSize: RECORD_BUFFER_SIZE,
  });
  const items: ReceivedItem[] = [];
  const scratch = new Uint8Array(TRAILER_SIZE);
  let error: string | undefined;
  const stdoutMode = "output" in options.destination;
  const acks = new AckWriter(conn);
  const session: Session = new Set();
  let busy = false;
  let unread = false;
  try {
    // The sender's hello first: the reply speaks its version (a version-1
    // sender cannot read a version-2 hello).
    let version: number;
    try {
      version = parseHello(await br.readExact(TRANSFER_HELLO_SIZE));
    } catch (err) {
      await writeAll(conn, encodeHello()).catch(() => {});
      throw err;
    }
    await writeAll(conn, encodeHello(version));
    options.onSession?.((reason) => acks.last(reason));
    for (;;) {
      const t = await recordType(br);
      if (t === null) {
        throw new ProtocolError(
          items.length
            ? "sender closed without END (killed?)"
            : "sender closed before sending anything",
        );
      }
      if (t === RECORD.END) break;
      if (t !== RECORD.HEADER) {
        throw new ProtocolError(
          `unexpected record type 0x${
            t.toString(16)
          } where an item header was expected`,
        );
      }
      const payload = await br.readFrame("u32be", MAX_JSON_FRAME);
      if (payload === null) throw new ProtocolError("closed inside a header");
      const header = parseHeader(payload, version);
      if (items.length === 0) {
        const refusal = options.admit?.();
        if (refusal !== undefined) {
          busy = true;
          unread = true;
          error = refusal;
          await acks.send({ ok: false, name: "", code: "busy", error });
          break;
        }
      }
      const item = await receiveItem(br, header, {
        destination: options.destination,
        refuseAs: stdoutMode && items.length > 0
          ? "this receiver writes a single item to stdout"
          : undefined,
        bufs: lazyBuffers,
        scratch,
        progress,
        logger,
        peer,
        acks,
        session,
        maxSize: options.maxSize,
      });
      items.push(item);
    }
  } catch (err) {
    if (err instanceof SessionEnd) {
      // Its ack is out; nothing after it is read.
      items.push(err.item);
      error = `${err.item.name}: ${err.item.error}; session ended`;
      unread = true;
    } else {
      error = describeError(err);
      logger.log(`${peer}: ${error}`);
      await acks.send({ ok: false, name: "", code: "protocol", error });
    }
  }
  // Every ack is out: FIN tells the sender nothing more will come.
  await closeWriteQuietly(conn).catch(() => {});
  return {
    items,
    ...(error !== undefined ? { error } : {}),
    ...(busy ? { busy } : {}),
    ...(unread ? { unread } : {}),
    exitCode: connectionExitCode(items, error),
  };
}

interface ItemContext {
  destination: Destination;
  refuseAs: string | undefined;
  bufs: () => Buffers;
  scratch: Uint8Array;
  progress: Progress | undefined;
  logger: Logger;
  peer: string;
  acks: AckWriter;
  session: Session;
  maxSize: number | undefined;
}

/** Refusals after which the session cannot usefully go on. */
const ENDS_SESSION = new Set<string>(["too-large", "no-space"]);

/** Receives one item whose header was read; acks it; throws on a broken stream. */
async function receiveItem(
  br: BufferedReader,
  header: ItemHeader,
  ctx: ItemContext,
): Promise<ReceivedItem> {
  const start = performance.now();
  const name = header.name;
  const { progress } = ctx;
  if (
    header.item === 1 || header.items !== undefined && header.item === undefined
  ) {
    progress?.setTotals(header.items, header.totalBytes);
  }
  let refusal: RefusedError | undefined;
  let stored: Stored | undefined;
  const kind = header.type ?? "file";
  if (ctx.refuseAs !== undefined) {
    refusal = new RefusedError("refused", ctx.refuseAs);
  } else {
    try {
      // Name caps and size limits come before any file-system call.
      const dirDest = "dir" in ctx.destination ? ctx.destination : undefined;
      checkItemName(name, dirDest?.maxDepth);
      if (
        ctx.maxSize !== undefined && typeof header.size === "number" &&
        header.size > ctx.maxSize
      ) {
        throw new RefusedError(
          "too-large",
          `${name}: ${header.size} bytes is more than the receiver accepts (--max-size ${ctx.maxSize})`,
        );
      }
      if (kind === "file") {
        stored = await openItem(ctx.destination, name, {
          session: ctx.session,
          ...(typeof header.size === "number" ? { size: header.size } : {}),
        });
      } else if (!dirDest) {
        throw new RefusedError(
          "refused",
          "this receiver writes a single item to stdout",
        );
      }
    } catch (err) {
      if (!(err instanceof RefusedError)) throw err;
      refusal = err;
    }
  }
  let ackError: string | undefined;
  if (refusal) {
    // Say so at once; the body that follows is read and dropped.
    ackError = await ctx.acks.send({
      ok: false,
      name,
      code: refusal.code,
      error: refusal.message,
    });
    if (ENDS_SESSION.has(refusal.code)) {
      progress?.itemDone();
      throw new SessionEnd({
        name,
        bytes: 0,
        sha256: "",
        ok: false,
        code: refusal.code,
        error: refusal.message,
        ...(ackError !== undefined ? { ackError } : {}),
      });
    }
  }
  const sink = stored?.sink ?? new Sink(null);
  const hash = refusal ? null : createHash("sha256");
  let bytes = 0;
  const onBytes = (n: number) => {
    bytes += n;
    progress?.add(n);
  };
  try {
    if (header.size === "stream") {
      for (;;) {
        const t = await recordType(br);
        if (t === RECORD.TRAILER) break;
        if (t !== RECORD.CHUNK) {
          throw new ProtocolError(
            t === null
              ? `sender closed inside ${name} after ${bytes} bytes`
              : `unexpected record type 0x${
                t.toString(16)
              } inside stream ${name}`,
          );
        }
        const len = ctx.scratch.subarray(0, 4);
        await br.readInto(len);
        const n = new DataView(len.buffer, len.byteOffset).getUint32(0);
        if (n > MAX_CHUNK) {
          throw new ProtocolError(
            `chunk of ${n} bytes exceeds the ${MAX_CHUNK}-byte limit`,
          );
        }
        if (
          !refusal && ctx.maxSize !== undefined && bytes + n > ctx.maxSize
        ) {
          const error =
            `${name}: the stream passed ${ctx.maxSize} bytes, more than the receiver accepts (--max-size ${ctx.maxSize})`;
          await stored?.abort();
          const lost = await ctx.acks.send({
            ok: false,
            name,
            code: "too-large",
            error,
          });
          progress?.itemDone();
          throw new SessionEnd({
            name,
            bytes,
            sha256: "",
            ok: false,
            code: "too-large",
            error,
            ...(lost !== undefined ? { ackError: lost } : {}),
          });
        }
        await receiveExact(br, n, sink, hash, ctx.bufs(), onBytes);
      }
    } else {
      await receiveExact(br, header.size, sink, hash, ctx.bufs(), onBytes);
      const t = await recordType(br);
      if (t !== RECORD.TRAILER) {
        throw new ProtocolError(
          t === null
            ? `sender closed after the body of ${name}, before its trailer`
            : `expected the trailer of ${name} after ${header.size} bytes, got record type 0x${
              t.toString(16)
            } (does size lie?)`,
        );
      }
    }
    const tb = ctx.scratch.subarray(1, TRAILER_SIZE);
    await br.readInto(tb);
    const trailer = parseTrailer(tb);
    if (refusal) {
      await stored?.abort();
      const item: ReceivedItem = {
        name,
        bytes,
        sha256: "",
        ok: false,
        code: refusal.code,
        error: refusal.message,
        ...(ackError !== undefined ? { ackError } : {}),
      };
      logItem(ctx.logger, ctx.peer, item, 0);
      progress?.itemDone();
      return item;
    }
    const sha256 = hash!.digest("hex");
    let ack: Ack;
    if (sink.error !== undefined) {
      const why = describeError(sink.error);
      ack = {
        ok: false,
        name,
        code: /os error 28\b/.test(why) ? "no-space" : "io",
        error: `cannot write ${name}: ${why}`,
      };
    } else if (trailer.size !== bytes || trailer.sha256 !== sha256) {
      ack = {
        ok: false,
        name,
        code: "integrity",
        error: trailer.size !== bytes
          ? `${name}: size mismatch: received ${bytes} bytes, sender says ${trailer.size}`
          : `${name}: sha256 mismatch: received ${sha256}, sender says ${trailer.sha256}`,
      };
    } else if (header.sha256 !== undefined && header.sha256 !== sha256) {
      ack = {
        ok: false,
        name,
        code: "integrity",
        error:
          `${name}: sha256 mismatch: received ${sha256}, header says ${header.sha256}`,
      };
    } else {
      try {
        if (kind === "dir") {
          await makeDir(
            ctx.destination,
            name,
            header.mode ?? 0o755,
            ctx.session,
          );
        } else if (kind === "symlink") {
          await makeSymlink(
            ctx.destination,
            name,
            header.target ?? "",
            ctx.session,
          );
        } else {
          await stored!.commit(header.mode ?? 0o644);
        }
        ack = { ok: true, name, bytes, sha256 };
      } catch (err) {
        if (!(err instanceof RefusedError)) throw err;
        ack = { ok: false, name, code: err.code, error: err.message };
      }
    }
    if (!ack.ok) await stored?.abort();
    // The outcome is final (the file is in place, or gone) before the ack
    // goes out: a sender that vanished cannot change it, only miss it.
    const made = kind === "dir"
      ? `directory (the sender's mode: ${
        (header.mode ?? 0o755).toString(8).padStart(4, "0")
      })`
      : kind === "symlink"
      ? `symlink to ${show(header.target ?? "")}`
      : undefined;
    const item: ReceivedItem = ack.ok
      ? { name, bytes, sha256, ok: true, ...(made ? { made } : {}) }
      : { name, bytes, sha256, ok: false, code: ack.code, error: ack.error };
    ackError = await ctx.acks.send(ack);
    if (ackError !== undefined) item.ackError = ackError;
    logItem(ctx.logger, ctx.peer, item, performance.now() - start);
    progress?.itemDone();
    return item;
  } finally {
    // Any throw above (truncation, reset, garbage) lands here too.
    await stored?.abort();
  }
}
