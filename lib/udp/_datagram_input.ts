/**
 * Cuts an input stream into datagram payloads: one per line (newline
 * included) or one per read.
 *
 * @module
 */
import type { Reader } from "../copy.ts";
import { DenocatError } from "../errors.ts";

/** How input becomes datagrams: each line, or each read. */
export type SplitMode = "line" | "chunk";

/**
 * Yields the payloads of `input`. A line longer than `max` bytes is an error
 * (it cannot be one datagram); in chunk mode reads are capped at `max`.
 * Each payload is a view into one reused buffer, valid until the generator is
 * resumed: consume (send, encode or copy) it before asking for the next.
 */
export async function* datagramsFrom(
  input: Reader,
  split: SplitMode,
  max: number,
): AsyncGenerator<Uint8Array> {
  const buf = new Uint8Array(Math.max(max, 1) + 1);
  if (split === "chunk") {
    let n: number | null;
    while ((n = await input.read(buf.subarray(0, max))) !== null) {
      if (n > 0) yield buf.subarray(0, n);
    }
    return;
  }
  let len = 0; // bytes held in buf, none of them a newline
  while (true) {
    const n = await input.read(buf.subarray(len));
    if (n === null) break;
    let start = 0;
    let scan = len;
    len += n;
    let nl: number;
    while ((nl = buf.subarray(scan, len).indexOf(0x0a)) !== -1) {
      const end = scan + nl + 1;
      yield buf.subarray(start, end);
      start = scan = end;
    }
    buf.copyWithin(0, start, len);
    len -= start;
    if (len > max) {
      throw new DenocatError(
        `cannot send a line of more than ${max} bytes as one UDP datagram (try --split chunk)`,
      );
    }
  }
  if (len > 0) yield buf.subarray(0, len);
}
