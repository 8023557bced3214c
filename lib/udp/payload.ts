/**
 * The UDP probe payload: a sequence number and a send time written only in
 * characters that upper-casing leaves unchanged (digits, capitals,
 * punctuation), so an upper-casing echo server returns it intact. The layout
 * is described byte by byte in docs/PROTOCOL.md ("UDP probe payload").
 *
 * @module
 */

/** Size of the fixed header; the smallest valid probe payload. */
export const PROBE_HEADER_SIZE = 32;
/** Largest sequence number the 7-digit field holds. */
export const MAX_PROBE_SEQ = 9_999_999;

const MAGIC = "DCP1";
const TIME_MODULUS = 10_000_000_000; // 10 digits of microseconds
const PAD = new TextEncoder().encode("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The fields carried by one probe payload. */
export interface ProbeFields {
  /** Identifies one probe run: 8 upper-case hex digits. */
  session: string;
  /** Sequence number, 0 to 9 999 999. */
  seq: number;
  /** Send time in microseconds since the run started, modulo 10^10. */
  sentUs: number;
}

/** A fresh random session id (8 upper-case hex digits). */
export function newSession(): string {
  return crypto.getRandomValues(new Uint8Array(4)).toHex().toUpperCase();
}

/**
 * Builds a probe payload of `size` bytes (at least 32).
 *
 * @example Usage
 * ```ts
 * import { encodeProbe } from "./payload.ts";
 * import { assertEquals } from "../_assert.ts";
 * const p = encodeProbe({ session: "0A1B2C3D", seq: 3, sentUs: 412 }, 36);
 * assertEquals(new TextDecoder().decode(p), "DCP1:0A1B2C3D:0000003:00000004120123");
 * ```
 */
export function encodeProbe(
  fields: ProbeFields,
  size: number = PROBE_HEADER_SIZE,
): Uint8Array {
  if (size < PROBE_HEADER_SIZE) {
    throw new RangeError(
      `Cannot build a probe of ${size} bytes: at least ${PROBE_HEADER_SIZE} needed`,
    );
  }
  if (!/^[0-9A-F]{8}$/.test(fields.session)) {
    throw new RangeError(`Cannot use session ${fields.session}: 8 hex digits`);
  }
  if (
    !Number.isInteger(fields.seq) || fields.seq < 0 ||
    fields.seq > MAX_PROBE_SEQ
  ) {
    throw new RangeError(`Cannot use sequence number ${fields.seq}`);
  }
  const out = new Uint8Array(size);
  const sent = Math.floor(fields.sentUs) % TIME_MODULUS;
  encoder.encodeInto(
    `${MAGIC}:${fields.session}:${String(fields.seq).padStart(7, "0")}:${
      String(sent).padStart(10, "0")
    }`,
    out,
  );
  for (let i = PROBE_HEADER_SIZE; i < size; i++) {
    out[i] = PAD[(i - PROBE_HEADER_SIZE) % PAD.length]!;
  }
  return out;
}

/**
 * Reads a probe payload; `null` when the bytes are not an intact probe
 * (wrong magic, malformed field, or altered padding).
 *
 * @example Usage
 * ```ts
 * import { decodeProbe, encodeProbe } from "./payload.ts";
 * import { assertEquals } from "../_assert.ts";
 * const fields = { session: "CAFE0001", seq: 42, sentUs: 1_000_000 };
 * assertEquals(decodeProbe(encodeProbe(fields, 64)), fields);
 * assertEquals(decodeProbe(new TextEncoder().encode("hah")), null);
 * ```
 */
export function decodeProbe(data: Uint8Array): ProbeFields | null {
  if (data.length < PROBE_HEADER_SIZE) return null;
  const head = decoder.decode(data.subarray(0, PROBE_HEADER_SIZE));
  const m = /^DCP1:([0-9A-F]{8}):(\d{7}):(\d{10})$/.exec(head);
  if (!m) return null;
  for (let i = PROBE_HEADER_SIZE; i < data.length; i++) {
    if (data[i] !== PAD[(i - PROBE_HEADER_SIZE) % PAD.length]) return null;
  }
  return { session: m[1]!, seq: Number(m[2]), sentUs: Number(m[3]) };
}

/**
 * Microseconds from `sentUs` to `nowUs`, both taken modulo 10^10, so the
 * wrap of the 10-digit field does not matter.
 */
export function elapsedUs(sentUs: number, nowUs: number): number {
  const d = (Math.floor(nowUs) - sentUs) % TIME_MODULUS;
  return d < 0 ? d + TIME_MODULUS : d;
}
