/**
 * The UDP listener mode: datagrams from any number of peers are written out;
 * input lines (or reads) go to the peer heard from most recently.
 *
 * @module
 */
import { datagramsFrom, type SplitMode } from "./_datagram_input.ts";
import { formatAddr } from "../address.ts";
import { type Reader, writeAll, type Writer } from "../copy.ts";
import { describeError } from "../errors.ts";
import { type Logger, silent } from "../log.ts";
import { bindUdp, type BindUdpOptions, MAX_UDP_PAYLOAD_V6 } from "./socket.ts";

/** Options for {@linkcode udpListen}. */
export interface UdpListenOptions extends BindUdpOptions {
  /** Bytes to send to the most recent peer; omit to only receive. */
  input?: Reader;
  /** Where received payloads go. */
  output: Writer;
  /** One datagram per input line (newline included) or per read. @default {"line"} */
  split?: SplitMode;
  /** Stops the listener. Without one it runs until the socket fails. */
  signal?: AbortSignal;
  /** Called once bound, with the bound address. */
  onListening?: (addr: Deno.NetAddr) => void;
  /**
   * Whether a datagram from this peer is taken (`--allow`/`--deny`);
   * others are dropped (logged with `-v`) and never become the peer stdin
   * goes to. @default {every peer}
   */
  accept?: (addr: Deno.NetAddr) => boolean;
  /** Diagnostic lines (`-v`): `listening on`, and each datagram's peer. */
  logger?: Logger;
}

/** What a {@linkcode udpListen} run did. */
export interface UdpListenResult {
  /** Datagrams received. */
  received: number;
  /** Datagrams sent (input to the latest peer). */
  sent: number;
  /** Distinct peers heard from. */
  peers: number;
}

/**
 * Receives datagrams from anyone until `signal` aborts.
 *
 * @example Usage
 * ```ts
 * import { udpListen } from "./listener.ts";
 * import { bindUdp } from "./socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * const ac = new AbortController();
 * let text = "";
 * const output = { write(p: Uint8Array) { text += new TextDecoder().decode(p); ac.abort(); return Promise.resolve(p.length); } };
 * const { promise: bound, resolve } = Promise.withResolvers<Deno.NetAddr>();
 * const run = udpListen({ hostname: "127.0.0.1", output, signal: ac.signal, onListening: resolve });
 * using peer = bindUdp({ hostname: "127.0.0.1" });
 * await peer.send(new TextEncoder().encode("hi\n"), await bound);
 * const r = await run;
 * assertEquals(text, "hi\n");
 * assertEquals(r.received, 1);
 * ```
 */
export async function udpListen(
  options: UdpListenOptions,
): Promise<UdpListenResult> {
  const logger = options.logger ?? silent;
  using socket = bindUdp(options);
  logger.log(`listening on udp ${formatAddr(socket.addr)}`);
  options.onListening?.(socket.addr);
  const result: UdpListenResult = { received: 0, sent: 0, peers: 0 };
  const seen = new Set<string>();
  let latest: Deno.NetAddr | undefined;
  const onAbort = () => socket.close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) socket.close();

  const sending = options.input &&
    (async () => {
      for await (
        const payload of datagramsFrom(
          options.input!,
          options.split ?? "line",
          MAX_UDP_PAYLOAD_V6, // socket.send checks each peer's own limit
        )
      ) {
        if (socket.closed) return;
        if (!latest) {
          logger.log(`no peer yet: ${payload.length} bytes of input dropped`);
          continue;
        }
        try {
          await socket.send(payload, latest);
          result.sent++;
        } catch (err) {
          if (socket.closed) return;
          logger.log(describeError(err));
        }
      }
      logger.log("input done; still receiving");
    })().catch((err) => logger.log(`input: ${describeError(err)}`));

  try {
    let d;
    // A view of the socket's buffer: written out before the next receive.
    while ((d = await socket.receiveView()) !== null) {
      const peer = formatAddr(d.from);
      if (options.accept && !options.accept(d.from)) {
        if (logger.enabled) {
          logger.log(`${peer}: refused by the access list; datagram dropped`);
        }
        continue;
      }
      if (!seen.has(peer)) {
        seen.add(peer);
        result.peers++;
      }
      if (logger.enabled) logger.log(`${d.data.length} bytes from ${peer}`);
      latest = d.from;
      result.received++;
      await writeAll(options.output, d.data);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    socket.close();
  }
  // A pending stdin read cannot be cancelled; do not wait for the input side.
  void sending;
  return result;
}
