/**
 * The sending side of the native transfer protocol: items go out one
 * after another while a second task reads the receiver's acknowledgements,
 * and the result says, per item, whether the receiver wrote and verified
 * exactly what was sent.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { BufferedReader } from "../frame/reader.ts";
import { describeError, EXIT_FAILURE, EXIT_INTEGRITY } from "../errors.ts";
import { type Logger, silent } from "../log.ts";
import {
  closeQuietly,
  closeWriteQuietly,
  type Conn,
  connect,
  type ConnectOptions,
  type Endpoint,
} from "../tcp/connect.ts";
import { type Buffers, buffers, sendExact, writeAll } from "./_pump.ts";
import type { SendItem } from "./items.ts";
import type { Progress } from "./progress.ts";
import { safeLogger } from "./show.ts";
import {
  type AckCode,
  encodeHeader,
  encodeHello,
  encodeTrailer,
  MAX_JSON_FRAME,
  parseAck,
  parseHello,
  ProtocolError,
  RECORD,
  TRAILER_SIZE,
  TRANSFER_HELLO_SIZE,
  TRANSFER_VERSION,
} from "./protocol.ts";

/** Outcome of one item, as the sender sees it. */
export interface ItemResult {
  /** The name sent. */
  name: string;
  /** Body bytes sent. */
  bytes: number;
  /** Hex sha256 of what was sent (empty if sending did not finish). */
  sha256: string;
  /** Milliseconds from the item's header to its acknowledgement. */
  ms: number;
  /** Acknowledged as written and verified, with matching size and sha256. */
  ok: boolean;
  /** Why not: an ack code, or `network` when no ack arrived. */
  code?: AckCode | "network" | "local";
  /** The error message, when not ok. */
  error?: string;
}

/** What {@linkcode sendItems} reports. */
export interface SendResult {
  /** One entry per item, in order. */
  items: ItemResult[];
  /** 0 all verified, 3 any integrity failure, 1 otherwise. */
  exitCode: number;
}

/** Options for {@linkcode sendItems} and {@linkcode sendOver}. */
export interface SendOptions extends ConnectOptions {
  /** Per-item lines (`-v`). */
  logger?: Logger;
  /** A live progress line. */
  progress?: Progress;
  /** Size of each of the two body buffers. @default {1 MiB} */
  bufferSize?: number;
  /** Called as each item is settled. */
  onItem?: (result: ItemResult) => void;
  /**
   * While a stream's source gives nothing for this many ms, send an empty
   * chunk so the receiver's idle timeout does not end a slow but live
   * stream. @default {15000}
   */
  keepAlive?: number;
  /**
   * Send FIN after the END record. Off for paths that end both directions
   * at a FIN (an HTTP CONNECT proxy such as tinyproxy), where the
   * acknowledgements would be lost; the receiver ends the session at END
   * either way. @default {true}
   */
  halfClose?: boolean;
}

/** Default interval of a waiting stream's empty chunks. */
export const KEEPALIVE_MS = 15_000;

/**
 * Maps item results to the exit code: 0 when every item is verified, 3
 * when any failed verification, 1 otherwise.
 *
 * @example Usage
 * ```ts
 * import { exitCodeOf } from "./send.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(exitCodeOf([{ ok: true }, { ok: false, code: "integrity" }]), 3);
 * assertEquals(exitCodeOf([{ ok: false, code: "exists" }]), 1);
 * assertEquals(exitCodeOf([]), 0);
 * ```
 */
export function exitCodeOf(
  items: Array<{ ok: boolean; code?: string }>,
): number {
  if (items.some((i) => !i.ok && i.code === "integrity")) return EXIT_INTEGRITY;
  return items.every((i) => i.ok) ? 0 : EXIT_FAILURE;
}

/**
 * Connects to a receiver and sends `items`; see {@linkcode sendOver}.
 * Connection failures throw (exit code 1).
 *
 * @example Usage
 * ```ts
 * import { receiveServer, sendItems } from "../../mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = await Deno.makeTempDir();
 * await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, { dir });
 * const data = new TextEncoder().encode("hello");
 * let done = false;
 * const reader = { read(p: Uint8Array) { if (done) return Promise.resolve(null); done = true; p.set(data); return Promise.resolve(5); } };
 * const r = await sendItems({ hostname: "127.0.0.1", port: server.port }, [{ kind: "stream", name: "hi.txt", reader }]);
 * assertEquals(r.exitCode, 0);
 * assertEquals(await Deno.readTextFile(`${dir}/hi.txt`), "hello");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function sendItems(
  endpoint: Endpoint,
  items: SendItem[],
  options: SendOptions = {},
): Promise<SendResult> {
  const conn = await connect(endpoint, options);
  try {
    return await sendOver(conn, items, options);
  } finally {
    closeQuietly(conn);
  }
}

interface Pending {
  result: ItemResult;
  start: number;
  settled: boolean;
  /** For directories and symlinks: what to log instead of bytes. */
  what?: string;
}

/**
 * Sends `items` over an open connection: hello, then per item a header, the
 * body (or chunk frames) and a trailer, then END; meanwhile reads one ack
 * per item. Never throws for item failures; they are in the result.
 */
export async function sendOver(
  conn: Conn,
  items: SendItem[],
  options: SendOptions = {},
): Promise<SendResult> {
  const logger = safeLogger(options.logger ?? silent);
  const progress = options.progress;
  const bufs = buffers(options.bufferSize);
  const trailer = new Uint8Array(TRAILER_SIZE);
  // Every item taken up, in order; `pending` only those sent (acks match it).
  const all: Pending[] = [];
  const pending: Pending[] = [];
  const knownTotal = items.every((i) => i.kind !== "stream")
    ? items.reduce((a, i) => a + (i.kind === "file" ? i.size : 0), 0)
    : undefined;
  // Version 1 when it is enough, so older receivers serve plain files.
  const version = items.some((i) => i.kind === "dir" || i.kind === "symlink")
    ? TRANSFER_VERSION
    : 1;
  progress?.setTotals(items.length, knownTotal);

  const settle = (p: Pending, patch: Partial<ItemResult>) => {
    if (p.settled) return;
    p.settled = true;
    Object.assign(p.result, patch, { ms: performance.now() - p.start });
    progress?.itemDone();
    const r = p.result;
    if (r.ok && p.what) {
      logger.log(`${r.name}: ${p.what}, acknowledged`);
    } else if (r.ok) {
      logger.log(
        `${r.name}: ${r.bytes} bytes in ${(r.ms / 1000).toFixed(3)} s (${
          (r.ms > 0 ? r.bytes / 1e6 / (r.ms / 1000) : 0).toFixed(2)
        } MB/s) sha256 ${r.sha256} verified`,
      );
    }
    options.onItem?.(r);
  };

  let acked = 0;
  let readError: unknown;
  // Whether any byte came back: a receiver that refused us (an access
  // list, a TLS listener demanding a client certificate) closes first.
  let heardFrom = false;
  const reader = (async () => {
    const br = new BufferedReader(conn, { bufferSize: 16 * 1024 });
    // The first byte tells a refusal (a close before any) from a receiver;
    // the rest of the hello is then read into the same array.
    const first = await br.readSome(TRANSFER_HELLO_SIZE);
    if (first === null) throw silentClose();
    heardFrom = true;
    const hello = new Uint8Array(TRANSFER_HELLO_SIZE);
    hello.set(first);
    await br.readInto(hello.subarray(first.length));
    const theirs = parseHello(hello);
    if (theirs < version) {
      throw new ProtocolError(
        `the receiver speaks transfer protocol version ${theirs}, which has no directory or symlink items (this sender needs ${version}): update the receiver, or send files only`,
      );
    }
    for (;;) {
      const t = await br.readSome(1);
      if (t === null) return;
      if (t[0] !== RECORD.ACK) {
        throw new ProtocolError(
          `unexpected record 0x${t[0]!.toString(16)} from receiver`,
        );
      }
      const ack = parseAck((await br.readFrame("u32be", MAX_JSON_FRAME))!);
      const p = pending[acked];
      if (p === undefined) {
        // An ack for nothing sent: the receiver refused the session.
        if (!ack.ok) throw new ProtocolError(`receiver: ${ack.error}`);
        throw new ProtocolError("receiver acknowledged an item never sent");
      }
      acked++;
      if (!ack.ok) {
        settle(p, { ok: false, code: ack.code, error: ack.error });
        if (
          ack.code === "busy" || ack.code === "protocol" ||
          ack.code === "too-large" || ack.code === "no-space"
        ) {
          // The receiver ends the session: stop sending.
          throw new ProtocolError(`receiver: ${ack.error}`);
        }
      } else if (!p.result.sha256) {
        // Acked before we finished? Only possible from a broken receiver.
        settle(p, {
          ok: false,
          code: "protocol",
          error: "acknowledged before the body was sent",
        });
      } else if (
        ack.bytes !== p.result.bytes || ack.sha256 !== p.result.sha256
      ) {
        settle(p, {
          ok: false,
          code: "integrity",
          error:
            `receiver has ${ack.bytes} bytes, sha256 ${ack.sha256}; sent ${p.result.bytes} bytes, sha256 ${p.result.sha256}`,
        });
      } else {
        settle(p, { ok: true });
      }
    }
  })().catch((err) => {
    readError = err;
  });

  let writeError: unknown;
  try {
    await writeAll(conn, encodeHello(version));
    for (let i = 0; i < items.length; i++) {
      if (readError !== undefined) break;
      const item = items[i]!;
      const p: Pending = {
        result: { name: item.name, bytes: 0, sha256: "", ms: 0, ok: false },
        start: performance.now(),
        settled: false,
        ...(item.kind === "dir"
          ? {
            what: `directory, mode ${item.mode.toString(8).padStart(4, "0")}`,
          }
          : item.kind === "symlink"
          ? { what: `symlink to ${JSON.stringify(item.target)}` }
          : {}),
      };
      all.push(p);
      // A file that cannot be opened now (gone, unreadable) is skipped with
      // the reason; the session goes on. Its size is taken now, not when
      // the tree was walked, so a file that grew is sent whole.
      let file: Deno.FsFile | undefined;
      let size = 0;
      if (item.kind === "file") {
        try {
          file = await Deno.open(item.path);
          size = (await file.stat()).size;
        } catch (err) {
          file?.close();
          settle(p, {
            ok: false,
            code: "local",
            error: `cannot read ${item.path}: ${describeError(err)}`,
          });
          continue;
        }
      }
      pending.push(p);
      const hash = createHash("sha256");
      const onBytes = (n: number) => {
        p.result.bytes += n;
        progress?.add(n);
      };
      if (item.kind === "file" && file) {
        using f = file;
        await writeAll(
          conn,
          encodeHeader({
            name: item.name,
            size,
            mode: item.mode,
            item: i + 1,
            items: items.length,
            ...(knownTotal !== undefined ? { totalBytes: knownTotal } : {}),
          }),
        );
        await sendExact(f, conn, size, hash, bufs, onBytes);
      } else if (item.kind === "dir" || item.kind === "symlink") {
        await writeAll(
          conn,
          encodeHeader({
            name: item.name,
            type: item.kind,
            size: 0,
            ...(item.kind === "dir"
              ? { mode: item.mode }
              : { target: item.target }),
            item: i + 1,
            items: items.length,
            ...(knownTotal !== undefined ? { totalBytes: knownTotal } : {}),
          }),
        );
      } else if (item.kind === "stream") {
        await writeAll(
          conn,
          encodeHeader({
            name: item.name,
            size: "stream",
            mode: item.mode ?? 0o644,
            item: i + 1,
            items: items.length,
          }),
        );
        await sendStream(
          item.reader,
          conn,
          hash,
          bufs,
          onBytes,
          options.keepAlive ?? KEEPALIVE_MS,
        );
      }
      const digest = hash.digest();
      p.result.sha256 = digest.toString("hex");
      await writeAll(conn, encodeTrailer(trailer, p.result.bytes, digest));
    }
    if (readError === undefined) {
      await writeAll(conn, new Uint8Array([RECORD.END]));
      if (options.halfClose ?? true) await closeWriteQuietly(conn);
    }
  } catch (err) {
    writeError = err;
    // The reader may still be waiting for acks that will never come.
    closeQuietly(conn);
  }
  await reader;
  let why = readError ?? writeError;
  if (why !== undefined && !heardFrom && !(why instanceof ProtocolError)) {
    // Reset, broken pipe or a cancelled read: the same refusal, in words.
    why = silentClose();
  }
  for (const p of pending) {
    settle(p, {
      ok: false,
      code: "network",
      error: `no acknowledgement: ${
        why ? describeError(why) : "connection closed"
      }`,
    });
  }
  const results = all.map((p) => p.result);
  // Items never started count as failed too.
  for (let i = all.length; i < items.length; i++) {
    results.push({
      name: items[i]!.name,
      bytes: 0,
      sha256: "",
      ms: 0,
      ok: false,
      code: "network",
      error: `not sent: ${why ? describeError(why) : "connection closed"}`,
    });
  }
  return { items: results, exitCode: exitCodeOf(results) };
}

const EMPTY_CHUNK = new Uint8Array([RECORD.CHUNK, 0, 0, 0, 0]);

/**
 * Waits for `read`, sending an empty chunk every `keepAlive` ms meanwhile:
 * the receiver counts it as activity, and the body is unchanged.
 */
async function withKeepAlive(
  read: Promise<number | null>,
  dst: Conn,
  keepAlive: number,
): Promise<number | null> {
  if (!(keepAlive > 0)) return await read;
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = new Promise<"tick">((r) => {
      timer = setTimeout(() => r("tick"), keepAlive);
    });
    try {
      const got = await Promise.race([read, tick]);
      if (got !== "tick") return got;
    } finally {
      clearTimeout(timer);
    }
    await writeAll(dst, EMPTY_CHUNK);
  }
}

/** Sends a stream as chunk frames, one per read, double-buffered. */
async function sendStream(
  src: { read(p: Uint8Array): Promise<number | null> },
  dst: Conn,
  hash: { update(d: Uint8Array): unknown },
  bufs: Buffers,
  onBytes: (n: number) => void,
  keepAlive: number,
): Promise<void> {
  let [cur, spare] = bufs;
  let n = await withKeepAlive(src.read(cur.subarray(5)), dst, keepAlive);
  while (n !== null) {
    const frame = cur.subarray(0, 5 + n);
    frame[0] = RECORD.CHUNK;
    new DataView(frame.buffer, frame.byteOffset).setUint32(1, n);
    [cur, spare] = [spare, cur];
    const next = src.read(cur.subarray(5));
    next.catch(() => {});
    if (n > 0) {
      const written = writeAll(dst, frame);
      written.catch(() => {});
      hash.update(frame.subarray(5));
      await written;
      onBytes(n);
    }
    n = await withKeepAlive(next, dst, keepAlive);
  }
}

/** The receiver closed before its hello. */
function silentClose(): ProtocolError {
  return new ProtocolError(
    "the receiver closed the connection without a word (refused by its access list or its TLS client-certificate check, or not a denocat receiver)",
  );
}
