/**
 * Framing over UDP (`denocat -u --frame FORMAT`): each input line (or read)
 * is sent as one framed datagram, and a framed listener requires each
 * datagram to hold exactly one whole frame, reporting and skipping the rest.
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import type { Writer } from "../copy.ts";
import { FrameError } from "../frame/errors.ts";
import { type PrefixFormat, prefixLength } from "../frame/prefix.ts";
import { frameCap, type FramingOptions } from "./options.ts";
import { decodeOneFrame } from "./decoder.ts";
import { FrameWriter, type FrameWriterOptions } from "./output.ts";
import { FramedInput, type SplitMode } from "./send.ts";
import { type Logger, silent, Throttle } from "../log.ts";
import type { SessionRecorder } from "../session_log.ts";
import {
  bindUdp,
  type BindUdpOptions,
  MAX_UDP_PAYLOAD_V4,
  RECEIVE_BUFFER_SIZE,
} from "../udp/socket.ts";
import {
  udpClient,
  type UdpClientOptions,
  type UdpClientResult,
} from "../udp/client.ts";

/**
 * The largest payload that still fits one IPv4 datagram once framed with
 * `options` (prefix, and header for JSON-header frames).
 *
 * @example Usage
 * ```ts
 * import { maxDatagramPayload } from "./udp.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(maxDatagramPayload({ format: "u32be" }), 65507 - 4);
 * assertEquals(maxDatagramPayload({ format: "json", headerFormat: "u32le" }), 65507 - 4 - 20);
 * ```
 */
export function maxDatagramPayload(options: FramingOptions = {}): number {
  const format = options.format ?? "u32be";
  const room = MAX_UDP_PAYLOAD_V4;
  if (format === "json") {
    // {"total_size":NNNNN} is at most 20 bytes for a datagram-sized body.
    const prefix = prefixLength(20, options.headerFormat ?? "u32be");
    return room - prefix - 20;
  }
  return room - prefixLength(room, format as PrefixFormat);
}

/** Options for {@linkcode framedUdpClient}. */
export interface FramedUdpClientOptions
  extends Omit<UdpClientOptions, "split">, FramingOptions {
  /** One frame (and datagram) per input line or per read. @default {"line"} */
  split?: SplitMode;
  /** Records the datagrams sent and received (`--hex-dump`). */
  record?: SessionRecorder;
}

/**
 * `denocat -u --frame FORMAT HOST PORT`: each input line (or read) is sent
 * as one datagram holding one frame; replies are written as they arrive,
 * as {@linkcode udpClient} does. `maxFrameSize` is lowered so every frame
 * fits one datagram; a longer line is an `OversizeFrameError`.
 *
 * @example Usage
 * ```ts
 * import { framedUdpClient } from "./udp.ts";
 * import { bindUdp } from "../udp/socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * using server = bindUdp({ hostname: "127.0.0.1" });
 * const chunks = [new TextEncoder().encode("a\nbc\n")];
 * const input = { read(p: Uint8Array) {
 *   const c = chunks.shift();
 *   if (!c) return Promise.resolve(null);
 *   p.set(c);
 *   return Promise.resolve(c.length);
 * } };
 * const output = { write: (p: Uint8Array) => Promise.resolve(p.length) };
 * const r = await framedUdpClient("127.0.0.1", server.addr.port, { input, output, format: "u16be", wait: 0 });
 * assertEquals(r.frames, 2);
 * assertEquals((await server.receive())!.data.toHex(), "000161");
 * assertEquals((await server.receive())!.data.toHex(), "00026263");
 * ```
 */
export async function framedUdpClient(
  hostname: string,
  port: number,
  options: FramedUdpClientOptions,
): Promise<UdpClientResult & { frames: number }> {
  const input = new FramedInput(options.input, {
    ...options,
    batch: false,
    maxFrameSize: Math.min(frameCap(options), maxDatagramPayload(options)),
  });
  const r = await udpClient(hostname, port, {
    ...options,
    // Each read of `input` is one whole frame: what goes on the wire.
    input: options.record ? options.record.tapInput(input) : input,
    ...(options.record
      ? { output: options.record.tapOutput(options.output) }
      : {}),
    split: "chunk",
  });
  return { ...r, frames: input.frames };
}

/** Options for {@linkcode framedUdpListen}. */
export interface FramedUdpListenOptions extends BindUdpOptions, FramingOptions {
  /** Where decoded payloads go. */
  output: Writer;
  /**
   * How each payload is written; see `FrameOutputMode`.
   *
   * @default {"lines"}
   */
  mode?: FrameWriterOptions["mode"];
  /** Stops the listener. Without one it runs until the socket fails. */
  signal?: AbortSignal;
  /** Called once bound, with the bound address. */
  onListening?: (addr: Deno.NetAddr) => void;
  /** Diagnostic lines (`-v`): `listening on`, and each datagram's peer. */
  logger?: Logger;
  /**
   * Called for each datagram that is not exactly one whole frame (it is
   * skipped), with the error and the sender.
   *
   * @default {logs through `logger`}
   */
  onMalformed?: (err: FrameError, from: Deno.NetAddr) => void;
  /**
   * Whether a sender's datagrams are taken (`--allow`/`--deny`); others are
   * dropped before decoding, counted in `refused`. @default {everyone}
   */
  accept?: (from: Deno.NetAddr) => boolean;
  /**
   * Records each datagram taken, as received, under its sender's address
   * (`--hex-dump`).
   */
  record?: SessionRecorder;
}

/** What a {@linkcode framedUdpListen} run did. */
export interface FramedUdpListenResult {
  /** Datagrams received. */
  datagrams: number;
  /** Frames decoded and written. */
  frames: number;
  /** Datagrams skipped as malformed. */
  malformed: number;
  /** Datagrams dropped because `accept` refused their sender. */
  refused: number;
}

/**
 * Receives datagrams from anyone until `signal` aborts; each must hold
 * exactly one whole frame, whose payload is written to `output`. Any other
 * datagram (truncated, oversize, trailing bytes, a bad header) is reported
 * through `onMalformed` and skipped; the listener keeps going.
 *
 * @example Usage
 * ```ts
 * import { framedUdpListen } from "./udp.ts";
 * import { bindUdp } from "../udp/socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * const ac = new AbortController();
 * let text = "";
 * const output = { write(p: Uint8Array) { text += new TextDecoder().decode(p); ac.abort(); return Promise.resolve(p.length); } };
 * const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
 * const bad: string[] = [];
 * const run = framedUdpListen({ hostname: "127.0.0.1", format: "u16be", output, signal: ac.signal, onListening: resolve, onMalformed: (e) => bad.push(e.name) });
 * using peer = bindUdp({ hostname: "127.0.0.1" });
 * await peer.send(Uint8Array.fromHex("0005"), await bound);
 * await peer.send(Uint8Array.fromHex("00026869"), await bound);
 * const r = await run;
 * assertEquals(text, "hi\n");
 * assertEquals(bad, ["TruncatedFrameError"]);
 * assertEquals([r.datagrams, r.frames, r.malformed], [2, 1, 1]);
 * ```
 */
export async function framedUdpListen(
  options: FramedUdpListenOptions,
): Promise<FramedUdpListenResult> {
  const logger = options.logger ?? silent;
  const onMalformed = options.onMalformed ??
    ((err: FrameError, from: Deno.NetAddr) =>
      logger.log(
        `malformed datagram from ${formatAddr(from)}: ${err.message}`,
      ));
  const framing: FramingOptions = { ...options };
  using socket = bindUdp(options);
  logger.log(`listening on udp ${formatAddr(socket.addr)}`);
  options.onListening?.(socket.addr);
  const out = new FrameWriter(options.output, {
    bufferSize: RECEIVE_BUFFER_SIZE * 2,
    ...(options.mode ? { mode: options.mode } : {}),
  });
  const result: FramedUdpListenResult = {
    datagrams: 0,
    frames: 0,
    malformed: 0,
    refused: 0,
  };
  const refusedLog = new Throttle(1000);
  // One recorder per sender, so each has its own offsets; bounded, since
  // senders cost nothing to make up.
  const recorders = new Map<string, SessionRecorder>();
  const recorderOf = (from: Deno.NetAddr): SessionRecorder => {
    const key = formatAddr(from);
    let r = recorders.get(key);
    if (!r) {
      if (recorders.size >= 4096) recorders.clear();
      r = options.record!.forPeer(key);
      recorders.set(key, r);
    }
    return r;
  };
  const onAbort = () => socket.close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) socket.close();
  try {
    let d;
    while ((d = await socket.receiveView()) !== null) {
      result.datagrams++;
      if (options.accept && !options.accept(d.from)) {
        result.refused++;
        if (logger.enabled && refusedLog.due()) {
          logger.log(
            `ignored a datagram from ${
              formatAddr(d.from)
            }: not allowed by the access list (${result.refused} so far)`,
          );
        }
        continue;
      }
      if (logger.enabled) {
        logger.log(`${d.data.length} bytes from ${formatAddr(d.from)}`);
      }
      if (options.record) recorderOf(d.from).received(d.data);
      let frame;
      try {
        frame = decodeOneFrame(d.data, framing);
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        result.malformed++;
        onMalformed(err, d.from);
        continue;
      }
      // The view is copied into the output buffer before the next receive.
      const wait = out.add(frame.payload, frame.header);
      if (wait) await wait;
      await out.flush();
      result.frames++;
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    socket.close();
  }
  return result;
}
