/**
 * `--compat seed`: the seeds' "advanced header", exactly. Per file:
 * `struct.pack('i', len(header))` (u32le, below 2^31), the UTF-8 JSON
 * header `{"filename": …, "md5": <hex>, "total_size": n}` as Python's
 * `json.dumps` writes it, then the body. Files follow each other until the
 * sender closes; there are no acknowledgements, so the receiver verifies
 * the md5 as it writes and the sender only learns of failures as a closed
 * connection.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { BufferedReader } from "../frame/reader.ts";
import { describeError } from "../errors.ts";
import { type Logger, silent } from "../log.ts";
import { closeWriteQuietly, type Conn } from "../tcp/connect.ts";
import {
  type Buffers,
  buffers,
  type Hasher,
  receiveExact,
  RECORD_BUFFER_SIZE,
  sendExact,
  writeAll,
} from "./_pump.ts";
import type { SendItem } from "./items.ts";
import type { Progress } from "./progress.ts";
import {
  connectionExitCode,
  type ConnectionResult,
  logItem,
  type ReceivedItem,
  type ReceiveOptions,
  watchedReader,
} from "./recv.ts";
import { exitCodeOf, type ItemResult, type SendResult } from "./send.ts";
import { openItem, RefusedError } from "./store.ts";
import { ProtocolError } from "./protocol.ts";
import { safeLogger } from "./show.ts";

/** Largest seed header accepted: 64 KiB. */
export const SEED_MAX_HEADER = 64 * 1024;

/**
 * Serialises like Python's `json.dumps` with default arguments: `", "` and
 * `": "` separators, non-ASCII escaped as `\uXXXX`.
 *
 * @example Usage
 * ```ts
 * import { pythonJson } from "./seed.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(
 *   pythonJson({ filename: "é.txt", md5: "ab", total_size: 3 }),
 *   '{"filename": "\\u00e9.txt", "md5": "ab", "total_size": 3}',
 * );
 * ```
 */
export function pythonJson(value: Record<string, string | number>): string {
  const parts = Object.entries(value).map(([k, v]) =>
    `${JSON.stringify(k)}: ${JSON.stringify(v)}`
  );
  return `{${parts.join(", ")}}`.replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Encodes a seed header: u32le length, then the JSON.
 *
 * @example Usage
 * ```ts
 * import { encodeSeedHeader } from "./seed.ts";
 * import { assertEquals } from "../_assert.ts";
 * const h = encodeSeedHeader("a.txt", "0".repeat(32), 5);
 * assertEquals(h.subarray(0, 4).toHex(), "51000000"); // 81 bytes of JSON
 * ```
 */
export function encodeSeedHeader(
  filename: string,
  md5: string,
  totalSize: number,
): Uint8Array {
  const json = new TextEncoder().encode(
    pythonJson({ filename, md5, total_size: totalSize }),
  );
  const out = new Uint8Array(4 + json.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  return out;
}

class Both implements Hasher {
  md5 = createHash("md5");
  sha = createHash("sha256");
  update(d: Uint8Array) {
    this.md5.update(d);
    this.sha.update(d);
  }
}

const none: Hasher = { update() {} };

/** Options for {@linkcode seedSendOver}. */
export interface SeedSendOptions {
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
  /** Progress display, updated as bytes go out. */
  progress?: Progress;
  /** Size of the reused read buffer, in bytes. */
  bufferSize?: number;
}

/** Hashes a file (md5 for the header, sha256 for the log). */
async function hashFile(
  path: string,
  buf: Uint8Array,
): Promise<{ md5: string; sha256: string; size: number }> {
  using f = await Deno.open(path);
  const h = new Both();
  let size = 0;
  let n: number | null;
  while ((n = await f.read(buf)) !== null) {
    h.update(buf.subarray(0, n));
    size += n;
  }
  return { md5: h.md5.digest("hex"), sha256: h.sha.digest("hex"), size };
}

/**
 * Sends items with the seeds' header. Files are read twice (the md5 must
 * precede the body); a stream is first spooled to a temporary file. After
 * the last item the write side is closed and the peer's close awaited.
 * `ok` means "sent": seed receivers send no acknowledgement.
 *
 * @example Usage
 * ```ts
 * import { seedSendOver, encodeSeedHeader } from "./seed.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const c = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * const s = await l.accept();
 * let got = new Uint8Array();
 * const reading = new Response(s.readable).bytes().then((b) => { got = b; });
 * const file = await Deno.makeTempFile();
 * await Deno.writeTextFile(file, "hello");
 * const r = await seedSendOver(c, [{ kind: "file", path: file, name: "a.txt", size: 5, mode: 0o644 }]);
 * c.close();
 * await reading;
 * assertEquals(r.exitCode, 0);
 * const header = encodeSeedHeader("a.txt", "5d41402abc4b2a76b9719d911017c592", 5);
 * assertEquals(got.subarray(0, header.length), header);
 * await Deno.remove(file);
 * ```
 */
export async function seedSendOver(
  conn: Conn,
  items: SendItem[],
  options: SeedSendOptions = {},
): Promise<SendResult> {
  const logger = options.logger ?? silent;
  const progress = options.progress;
  const bufs = buffers(options.bufferSize);
  const results: ItemResult[] = [];
  progress?.setTotals(items.length);
  const spooled: string[] = [];
  try {
    for (const item of items) {
      const start = performance.now();
      let path: string;
      if (item.kind === "stream") {
        path = await Deno.makeTempFile({ prefix: "denocat-seed-" });
        spooled.push(path);
        using out = await Deno.open(path, { write: true });
        let n: number | null;
        while ((n = await item.reader.read(bufs[0])) !== null) {
          await writeAll(out, bufs[0].subarray(0, n));
        }
      } else if (item.kind === "file") {
        path = item.path;
      } else {
        throw new ProtocolError(
          `${item.name}: the seed protocol carries only files (a ${item.kind} cannot be sent)`,
        );
      }
      const { md5, sha256, size } = await hashFile(path, bufs[0]);
      const result: ItemResult = {
        name: item.name,
        bytes: 0,
        sha256,
        ms: 0,
        ok: false,
      };
      results.push(result);
      using file = await Deno.open(path);
      await writeAll(conn, encodeSeedHeader(item.name, md5, size));
      await sendExact(file, conn, size, none, bufs, (n) => {
        result.bytes += n;
        progress?.add(n);
      });
      result.ms = performance.now() - start;
      result.ok = true;
      progress?.itemDone();
      logger.log(
        `${item.name}: ${size} bytes in ${(result.ms / 1000).toFixed(3)} s (${
          (result.ms > 0 ? size / 1e6 / (result.ms / 1000) : 0).toFixed(2)
        } MB/s) sha256 ${sha256} md5 ${md5} sent (seed mode: no acknowledgement)`,
      );
    }
    await closeWriteQuietly(conn);
    // Wait for the peer to finish and close; data it sends is ignored.
    const sink = bufs[1];
    while ((await conn.read(sink)) !== null) { /* drain */ }
  } catch (err) {
    const last = results.at(-1);
    const why = describeError(err);
    if (last) {
      last.ok = false;
      last.code = "network";
      last.error = `seed receiver closed the connection: ${why}`;
    }
    for (let i = results.length; i < items.length; i++) {
      results.push({
        name: items[i]!.name,
        bytes: 0,
        sha256: "",
        ms: 0,
        ok: false,
        code: "network",
        error: `not sent: ${why}`,
      });
    }
    if (results.length === 0) throw err;
  } finally {
    for (const p of spooled) await Deno.remove(p).catch(() => {});
  }
  return { items: results, exitCode: exitCodeOf(results) };
}

/**
 * Receives seed-format files until the sender closes, verifying each md5
 * while writing. With no ack channel, any refusal (unsafe name, clash) or
 * mismatch ends the connection.
 *
 * @example Usage
 * ```ts
 * import { seedReceiveOver, encodeSeedHeader } from "./seed.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const c = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * using s = await l.accept();
 * await c.write(encodeSeedHeader("a.txt", "5d41402abc4b2a76b9719d911017c592", 5));
 * await c.write(new TextEncoder().encode("hello"));
 * c.close();
 * const r = await seedReceiveOver(s, { destination: { dir, overwrite: false } });
 * assertEquals(r.exitCode, 0);
 * assertEquals(await Deno.readTextFile(`${dir}/a.txt`), "hello");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function seedReceiveOver(
  conn: Conn,
  options: ReceiveOptions,
): Promise<ConnectionResult> {
  // Names and messages below come from the peer: escaped before printing.
  const logger = safeLogger(options.logger ?? silent);
  const peer = options.peer ?? "peer";
  const progress = options.progress;
  // The body buffers only once a valid header has arrived.
  let bufs: Buffers | undefined;
  const br = new BufferedReader(watchedReader(conn, options.onRead), {
    bufferSize: RECORD_BUFFER_SIZE,
  });
  const items: ReceivedItem[] = [];
  const stdoutMode = "output" in options.destination;
  let error: string | undefined;
  let busy = false;
  try {
    for (;;) {
      const header = await br.readJsonHeader({
        format: "u32le",
        seedCompat: true,
        maxHeaderSize: SEED_MAX_HEADER,
      });
      if (header === null) break;
      const start = performance.now();
      const name = header.filename;
      const md5 = header.md5;
      if (typeof name !== "string") {
        throw new ProtocolError("seed header without a filename string");
      }
      if (typeof md5 !== "string" || !/^[0-9a-fA-F]{32}$/.test(md5)) {
        throw new ProtocolError(
          `seed header for ${name}: md5 is not 32 hex digits`,
        );
      }
      if (stdoutMode && items.length > 0) {
        throw new RefusedError(
          "refused",
          `${name}: this receiver writes a single item to stdout`,
        );
      }
      if (items.length === 0) {
        // No ack channel: a sender turned away sees the connection close.
        const refusal = options.admit?.();
        if (refusal !== undefined) {
          busy = true;
          error = refusal;
          break;
        }
      }
      // The same limits as the native receiver; with no ack channel a
      // refusal can only close the connection.
      if (
        options.maxSize !== undefined && header.total_size > options.maxSize
      ) {
        throw new RefusedError(
          "too-large",
          `${name}: ${header.total_size} bytes is more than the receiver accepts (--max-size ${options.maxSize})`,
        );
      }
      const stored = await openItem(options.destination, name, {
        size: header.total_size,
      });
      try {
        const h = new Both();
        let bytes = 0;
        bufs ??= buffers(options.bufferSize);
        await receiveExact(br, header.total_size, stored.sink, h, bufs, (n) => {
          bytes += n;
          progress?.add(n);
        });
        const gotMd5 = h.md5.digest("hex");
        const sha256 = h.sha.digest("hex");
        if (stored.sink.error !== undefined) {
          throw new RefusedError(
            "io",
            `cannot write ${name}: ${describeError(stored.sink.error)}`,
          );
        }
        if (gotMd5 !== md5.toLowerCase()) {
          throw new RefusedError(
            "integrity",
            `${name}: md5 mismatch: received ${gotMd5}, header says ${md5.toLowerCase()}`,
          );
        }
        await stored.commit(0o644);
        const item = { name, bytes, sha256, ok: true };
        items.push(item);
        logItem(logger, peer, item, performance.now() - start);
        progress?.itemDone();
      } catch (err) {
        if (err instanceof RefusedError) {
          items.push({
            name,
            bytes: 0,
            sha256: "",
            ok: false,
            code: err.code,
            error: err.message,
          });
        }
        throw err;
      } finally {
        await stored.abort();
      }
    }
  } catch (err) {
    error = describeError(err);
    logger.log(`${peer}: ${error}`);
    if (err instanceof RefusedError && !items.some((i) => !i.ok)) {
      items.push({
        name: "",
        bytes: 0,
        sha256: "",
        ok: false,
        code: err.code,
        error: err.message,
      });
    }
  }
  return {
    items,
    ...(error !== undefined ? { error } : {}),
    ...(busy ? { busy } : {}),
    exitCode: connectionExitCode(items, error),
  };
}
