/**
 * The native transfer protocol (version 1), as pure encoders and
 * validators over bytes. `docs/PROTOCOL.md` ("Transfer protocol")
 * describes it byte by byte:
 *
 * ```text
 * sender   -> HELLO  ( 'H' header  body|chunks  'T' trailer )*  'E'
 * receiver -> HELLO  ( 'A' ack )*
 * ```
 *
 * Frames carrying JSON use the framing codecs' `u32be` length prefix.
 *
 * @module
 */
import { encodeFrame } from "../frame/prefix.ts";
import { DenocatError } from "../errors.ts";

/** Protocol magic: ASCII `DCXFER` (6 bytes). */
export const TRANSFER_MAGIC: Uint8Array = new TextEncoder().encode("DCXFER");
/**
 * The newest protocol version this implementation speaks. Version 2 adds
 * directory and symlink items (the header's `type`); a sender speaks 1
 * when it sends only files and streams, so older receivers still serve it.
 */
export const TRANSFER_VERSION = 2;
/** Versions this implementation accepts from a peer. */
export const TRANSFER_VERSIONS: readonly number[] = [1, 2];
/** Length of a hello: magic plus a u16be version. */
export const TRANSFER_HELLO_SIZE = 8;
/** Largest JSON payload of a header or ack frame: 64 KiB. */
export const MAX_JSON_FRAME = 64 * 1024;
/** Largest payload of one stream chunk frame: 16 MiB. */
export const MAX_CHUNK = 16 * 1024 * 1024;
/** Length of a trailer record: type, u64be size, 32 raw sha256 bytes. */
export const TRAILER_SIZE = 1 + 8 + 32;

/** Record types, one byte each. */
export const RECORD = {
  /** Item header: u32be length + JSON. */
  HEADER: 0x48, // 'H'
  /** Stream chunk: u32be length + bytes. */
  CHUNK: 0x43, // 'C'
  /** Item trailer: u64be size + 32-byte sha256. */
  TRAILER: 0x54, // 'T'
  /** End of session (sender). */
  END: 0x45, // 'E'
  /** Acknowledgement (receiver): u32be length + JSON. */
  ACK: 0x41, // 'A'
} as const;

/** A malformed or hostile peer: the connection ends (exit code 1). */
export class ProtocolError extends DenocatError {
  /** Creates a protocol error with a one-line `message`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, 1, options);
    this.name = "ProtocolError";
  }
}

/**
 * Encodes a hello: `DCXFER` then the version as u16be.
 *
 * @example Usage
 * ```ts
 * import { encodeHello } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(encodeHello(1).toHex(), "4443584645520001");
 * assertEquals(encodeHello().toHex(), "4443584645520002");
 * ```
 */
export function encodeHello(version: number = TRANSFER_VERSION): Uint8Array {
  const out = new Uint8Array(TRANSFER_HELLO_SIZE);
  out.set(TRANSFER_MAGIC);
  new DataView(out.buffer).setUint16(6, version);
  return out;
}

/**
 * Checks a received hello and returns the peer's version. Throws
 * {@linkcode ProtocolError} for a wrong magic (naming what the bytes look
 * like) or an unsupported version.
 *
 * @example Usage
 * ```ts
 * import { encodeHello, parseHello, ProtocolError } from "./protocol.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * assertEquals(parseHello(encodeHello()), 2);
 * assertEquals(parseHello(encodeHello(1)), 1);
 * assertThrows(() => parseHello(encodeHello(3)), ProtocolError, "version 3");
 * assertThrows(() => parseHello(new Uint8Array(8)), ProtocolError, "not a denocat transfer");
 * ```
 */
export function parseHello(
  bytes: Uint8Array,
  accepted: readonly number[] = TRANSFER_VERSIONS,
): number {
  for (let i = 0; i < TRANSFER_MAGIC.length; i++) {
    if (bytes[i] !== TRANSFER_MAGIC[i]) {
      throw new ProtocolError(
        `not a denocat transfer peer (got ${
          bytes.subarray(0, TRANSFER_HELLO_SIZE).toHex()
        } instead of the DCXFER hello; seed peers need --compat seed)`,
      );
    }
  }
  const version = new DataView(bytes.buffer, bytes.byteOffset).getUint16(6);
  if (!accepted.includes(version)) {
    throw new ProtocolError(
      `unsupported transfer protocol version ${version} (this side speaks ${
        accepted.join(" and ")
      })`,
    );
  }
  return version;
}

/** What an item is (version 2): a file (or stream), a directory, a symlink. */
export type ItemType = "file" | "dir" | "symlink";

/** An item header, as sent before each item's body. */
export interface ItemHeader {
  /** Relative path with `/` separators; checked by the receiver. */
  name: string;
  /** Version 2: what the item is. @default {"file"} */
  type?: ItemType;
  /** Version 2, symlinks: the link's target, as `readlink` gives it. */
  target?: string;
  /** Body length in bytes, or `"stream"` for chunk frames. */
  size: number | "stream";
  /** Permission bits (the receiver applies `mode & 0o777 & ~umask`). @default {0o644} */
  mode?: number;
  /** Lower-case hex sha256 of the body, when known before sending. */
  sha256?: string;
  /** 1-based position of this item in the session (progress hint). */
  item?: number;
  /** Number of items the sender will send (progress hint). */
  items?: number;
  /** Total body bytes the sender will send, when known (progress hint). */
  totalBytes?: number;
}

/** A receiver's verdict on one item. */
export type Ack =
  | { ok: true; name: string; bytes: number; sha256: string }
  | { ok: false; name: string; code: AckCode; error: string };

/**
 * Why an item failed: `exists` (name clash without --overwrite),
 * `unsafe-name`, `integrity` (size or sha256 mismatch), `io` (the receiver
 * could not write), `refused` (e.g. a second item to a stdout receiver),
 * `protocol` (malformed stream; the connection ends), `busy` (the receiver
 * serves as many senders as it allows, in all or from this address; the
 * connection ends), `too-large` (above the receiver's `--max-size`) and
 * `no-space` (the item does not fit on the receiver's disk); after these
 * two the receiver ends the session.
 */
export type AckCode =
  | "exists"
  | "unsafe-name"
  | "integrity"
  | "io"
  | "refused"
  | "protocol"
  | "busy"
  | "too-large"
  | "no-space";

const ACK_CODES = new Set<string>([
  "exists",
  "unsafe-name",
  "integrity",
  "io",
  "refused",
  "protocol",
  "busy",
  "too-large",
  "no-space",
]);

function jsonRecord(type: number, value: unknown): Uint8Array {
  const frame = encodeFrame(new TextEncoder().encode(JSON.stringify(value)), {
    maxFrameSize: MAX_JSON_FRAME,
  });
  const out = new Uint8Array(1 + frame.length);
  out[0] = type;
  out.set(frame, 1);
  return out;
}

/**
 * Encodes an item header record: `'H'`, u32be length, JSON.
 *
 * @example Usage
 * ```ts
 * import { encodeHeader } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const rec = encodeHeader({ name: "a", size: 1, mode: 420 });
 * assertEquals(new TextDecoder().decode(rec.subarray(5)), '{"name":"a","size":1,"mode":420}');
 * assertEquals(rec.subarray(0, 5).toHex(), "4800000020");
 * ```
 */
export function encodeHeader(header: ItemHeader): Uint8Array {
  return jsonRecord(RECORD.HEADER, header);
}

/**
 * Encodes an ack record: `'A'`, u32be length, JSON.
 *
 * @example Usage
 * ```ts
 * import { encodeAck } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const rec = encodeAck({ ok: false, name: "a", code: "exists", error: "a: exists" });
 * assertEquals(rec[0], 0x41);
 * ```
 */
export function encodeAck(ack: Ack): Uint8Array {
  return jsonRecord(RECORD.ACK, ack);
}

/**
 * Writes a trailer record (`'T'`, u64be size, sha256) into `out` (at least
 * {@linkcode TRAILER_SIZE} bytes) and returns the filled view.
 *
 * @example Usage
 * ```ts
 * import { encodeTrailer, parseTrailer } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const sha = new Uint8Array(32).fill(0xab);
 * const t = encodeTrailer(new Uint8Array(41), 300, sha);
 * assertEquals(t.subarray(0, 9).toHex(), "54000000000000012c");
 * assertEquals(parseTrailer(t.subarray(1)), { size: 300, sha256: "ab".repeat(32) });
 * ```
 */
export function encodeTrailer(
  out: Uint8Array,
  size: number,
  sha256: Uint8Array,
): Uint8Array {
  out[0] = RECORD.TRAILER;
  new DataView(out.buffer, out.byteOffset).setBigUint64(1, BigInt(size));
  out.set(sha256.subarray(0, 32), 9);
  return out.subarray(0, TRAILER_SIZE);
}

/** Parses the 40 bytes after a trailer's type byte. */
export function parseTrailer(
  bytes: Uint8Array,
): { size: number; sha256: string } {
  const big = new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ProtocolError(`trailer size ${big} is out of range`);
  }
  return { size: Number(big), sha256: bytes.subarray(8, 40).toHex() };
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new ProtocolError(`malformed ${what}: not UTF-8 JSON`, {
      cause: err,
    });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(`malformed ${what}: not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function isSize(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validates the JSON payload of a header record. Throws
 * {@linkcode ProtocolError} for anything malformed (the name's safety is
 * checked separately, by `names.ts`).
 *
 * @example Usage
 * ```ts
 * import { parseHeader, ProtocolError } from "./protocol.ts";
 * import { assertEquals, assertThrows } from "../_assert.ts";
 * const te = new TextEncoder();
 * assertEquals(parseHeader(te.encode('{"name":"x","size":"stream"}')), { name: "x", size: "stream", mode: 0o644 });
 * assertThrows(() => parseHeader(te.encode('{"name":"x","size":-1}')), ProtocolError, "size");
 * ```
 */
export function parseHeader(
  bytes: Uint8Array,
  version: number = TRANSFER_VERSION,
): ItemHeader {
  const v = parseJson(bytes, "item header");
  if (typeof v.name !== "string") {
    throw new ProtocolError("malformed item header: name must be a string");
  }
  if (!(v.size === "stream" || isSize(v.size))) {
    throw new ProtocolError(
      `malformed item header: size must be a non-negative integer or "stream", got ${
        JSON.stringify(v.size)?.slice(0, 40)
      }`,
    );
  }
  const mode = v.mode ?? 0o644;
  if (!isSize(mode) || mode > 0o7777) {
    throw new ProtocolError("malformed item header: bad mode");
  }
  const h: ItemHeader = { name: v.name, size: v.size, mode };
  if (v.type !== undefined && v.type !== "file") {
    if (version < 2) {
      throw new ProtocolError(
        "malformed item header: item types need protocol version 2",
      );
    }
    if (v.type !== "dir" && v.type !== "symlink") {
      throw new ProtocolError(
        `malformed item header: unknown type ${
          JSON.stringify(v.type)?.slice(0, 40)
        }`,
      );
    }
    if (v.size !== 0) {
      throw new ProtocolError(
        `malformed item header: a ${v.type} item has size 0`,
      );
    }
    h.type = v.type;
    if (v.type === "symlink") {
      if (typeof v.target !== "string") {
        throw new ProtocolError(
          "malformed item header: a symlink needs a target string",
        );
      }
      h.target = v.target;
    }
  }
  if (v.sha256 !== undefined) {
    if (typeof v.sha256 !== "string" || !HEX64.test(v.sha256)) {
      throw new ProtocolError(
        "malformed item header: sha256 must be 64 lower-case hex digits",
      );
    }
    h.sha256 = v.sha256;
  }
  if (isSize(v.item)) h.item = v.item;
  if (isSize(v.items)) h.items = v.items;
  if (isSize(v.totalBytes)) h.totalBytes = v.totalBytes;
  return h;
}

/**
 * Validates the JSON payload of an ack record.
 *
 * @example Usage
 * ```ts
 * import { parseAck } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const ack = parseAck(new TextEncoder().encode('{"ok":true,"name":"a","bytes":0,"sha256":"' + "0".repeat(64) + '"}'));
 * assertEquals(ack.ok, true);
 * ```
 */
export function parseAck(bytes: Uint8Array): Ack {
  const v = parseJson(bytes, "ack");
  const name = typeof v.name === "string" ? v.name : "";
  if (v.ok === true) {
    if (
      !isSize(v.bytes) || typeof v.sha256 !== "string" || !HEX64.test(v.sha256)
    ) {
      throw new ProtocolError("malformed ack: bytes or sha256 missing");
    }
    return { ok: true, name, bytes: v.bytes, sha256: v.sha256 };
  }
  if (v.ok === false) {
    const code = typeof v.code === "string" && ACK_CODES.has(v.code)
      ? v.code as AckCode
      : "refused";
    const error = typeof v.error === "string" ? v.error : "refused";
    return { ok: false, name, code, error };
  }
  throw new ProtocolError("malformed ack: ok must be true or false");
}
