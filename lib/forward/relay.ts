/**
 * The forwarder's byte mover: two connections joined both ways, each
 * direction an explicit read/write loop, FIN passed on when one side
 * half-closes, everything closed once both directions are done or either
 * fails.
 *
 * @module
 */
import { copy, copyUntil } from "../copy.ts";
import { type Pump, socketCopy } from "../native/pump.ts";

/** A connection as the relay uses it: plain TCP, Unix, or a TLS layer. */
export interface Stream {
  /** Reads into `p`; resolves with the byte count, or `null` at end of input. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; resolves with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
  /** Sends FIN (TLS: close_notify then FIN); the other direction stays open. */
  closeWrite(): Promise<void>;
  /** Closes at once; calling it again does nothing harmful. */
  close(): void;
}

/** Options for {@linkcode relay}. */
export interface RelayOptions {
  /** Called after each chunk moved either way (for idle checks). */
  onActivity?: () => void;
  /** Called when a direction moves onto a pump thread (with `tcp`). */
  onPump?: () => void;
  /** Aborting closes both sides; `relay` then resolves. */
  signal?: AbortSignal;
  /**
   * Both streams are plain TCP connections (no TLS layer): bulk directions
   * may then move to pump threads (lib/native/pump.ts, Linux with FFI).
   * Never set it for a TLS stream: the pump would find the TCP socket
   * underneath and move ciphertext. @default {false}
   */
  tcp?: boolean;
  /**
   * Buffer per direction once it has moved 1 MiB (small connections use
   * 16 KiB, so thousands of them stay cheap). @default {256 KiB}
   */
  bufferSize?: number;
}

/** What {@linkcode relay} moved, and how it ended. */
export interface RelayResult {
  /** Bytes from `a` to `b`. */
  aToB: number;
  /** Bytes from `b` to `a`. */
  bToA: number;
  /** Of `aToB` + `bToA`, the bytes moved by pump threads. */
  pumped: number;
  /** The first error in either direction, if any (the relay was cut short). */
  error?: unknown;
}

const SMALL_BUFFER = 16 * 1024;
const GROW_AFTER = 1 << 20;

/**
 * Joins `a` and `b` until both directions are done. When one side sends
 * FIN, the other side gets FIN and may keep talking the other way. An
 * error on either side (reset, broken pipe) closes both. Never rejects:
 * the result carries the error. Both streams are closed on return.
 *
 * @example Usage
 * ```ts
 * import { relay } from "./relay.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const [c1, s1] = [await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }), await l.accept()];
 * const [c2, s2] = [await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }), await l.accept()];
 * const joined = relay(s1, s2); // c1 <-> s1 <=> s2 <-> c2
 * await c1.write(new TextEncoder().encode("hi"));
 * await c1.closeWrite();
 * const buf = new Uint8Array(8);
 * assertEquals(await c2.read(buf), 2);
 * assertEquals(await c2.read(buf), null); // the FIN came through
 * c2.close();
 * c1.close();
 * assertEquals((await joined).aToB, 2);
 * ```
 */
export async function relay(
  a: Stream,
  b: Stream,
  options: RelayOptions = {},
): Promise<RelayResult> {
  let error: unknown;
  let closed = false;
  // Pumps are stopped before the connections they work on are closed.
  const stopPumps = new AbortController();
  const pumps: Pump[] = [];
  let watch: ReturnType<typeof setInterval> | undefined;
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    stopPumps.abort();
    quietly(() => a.close());
    quietly(() => b.close());
  };
  const onAbort = () => closeBoth();
  if (options.signal?.aborted) closeBoth();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const big = options.bufferSize ?? 256 * 1024;
  const onActivity = options.onActivity;
  let lastMoved = 0;
  const checkPumps = () => {
    const moved = pumps.reduce((sum, p) => sum + p.moved(), 0);
    if (moved !== lastMoved) {
      lastMoved = moved;
      onActivity?.();
    }
  };
  const direction = async (src: Stream, dst: Stream): Promise<number> => {
    let bytes = 0;
    const onChunk = (n: number) => {
      bytes += n;
      onActivity?.();
    };
    try {
      const first = await copyUntil(src, dst, (t) => t >= GROW_AFTER, {
        bufferSize: SMALL_BUFFER,
        onChunk,
      });
      if (!first.eof) {
        if (options.tcp) {
          await socketCopy(src as Deno.Conn, dst as Deno.Conn, {
            bufferSize: big,
            onChunk,
            signal: stopPumps.signal,
            onPump: (p) => {
              pumps.push(p);
              options.onPump?.();
              // A pumped direction reports no chunks: tell the idle
              // watch about its progress once a second instead.
              if (onActivity) watch ??= setInterval(checkPumps, 1000);
            },
          });
        } else await copy(src, dst, { bufferSize: big, onChunk });
      }
      // Pass the FIN on; the other direction carries on.
      if (!closed) await dst.closeWrite();
    } catch (err) {
      if (!closed) error ??= err;
      closeBoth();
    }
    return bytes;
  };
  try {
    const [aToB, bToA] = await Promise.all([direction(a, b), direction(b, a)]);
    const pumped = pumps.reduce((sum, p) => sum + p.moved(), 0);
    return error === undefined
      ? { aToB, bToA, pumped }
      : { aToB, bToA, pumped, error };
  } finally {
    clearInterval(watch);
    options.signal?.removeEventListener("abort", onAbort);
    closeBoth();
  }
}

function quietly(fn: () => void): void {
  try {
    fn();
  } catch { /* already closed */ }
}
