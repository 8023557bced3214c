/**
 * The UDP client mode: input lines (or reads) go out as datagrams to one
 * target, replies from that target are written out, and after input EOF the
 * client keeps waiting until no reply has come for `wait` milliseconds.
 *
 * @module
 */
import { datagramsFrom, type SplitMode } from "./_datagram_input.ts";
import type { Family } from "../address.ts";
import { formatAddr, ipFamily } from "../address.ts";
import { type Reader, writeAll, type Writer } from "../copy.ts";
import { type Logger, silent } from "../log.ts";
import {
  bindUdp,
  bindUdpFor,
  maxPayload,
  resolveIp,
  resolveUdp,
  sameUdpAddr,
} from "./socket.ts";

/** Options for {@linkcode udpClient}. */
export interface UdpClientOptions {
  /** Bytes to send. */
  input: Reader;
  /** Where received payloads go. */
  output: Writer;
  /** One datagram per line (newline included) or per read. @default {"line"} */
  split?: SplitMode;
  /** After input EOF, exit once this many ms pass with no reply. @default {1000} */
  wait?: number;
  /** After input EOF, exit after this many ms even if replies keep coming. */
  quitAfterEof?: number;
  /** Restrict a host name to IPv4 or IPv6. */
  family?: Family;
  /** The local address to send from (`-s`); it also picks the family. */
  sourceHost?: string;
  /** The local port to send from (`-p`). @default {0: any} */
  sourcePort?: number;
  /** Stop early. */
  signal?: AbortSignal;
  /** Diagnostic lines (`-v`). */
  logger?: Logger;
}

/** What a {@linkcode udpClient} run did. */
export interface UdpClientResult {
  /** Datagrams sent. */
  sent: number;
  /** Datagrams received from the target. */
  received: number;
  /** Payload bytes sent. */
  bytesSent: number;
  /** Payload bytes received from the target. */
  bytesReceived: number;
}

/**
 * Sends `input` to `hostname:port` as datagrams and writes the replies.
 * Datagrams from any other address are dropped (and logged).
 *
 * @example Usage
 * ```ts
 * import { udpClient } from "./client.ts";
 * import { udpEcho } from "./echo.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using server = udpEcho({ hostname: "127.0.0.1", upper: true });
 * const lines = [new TextEncoder().encode("one\ntwo\n")];
 * const input = { read(p: Uint8Array) {
 *   const c = lines.shift(); if (!c) return Promise.resolve(null);
 *   p.set(c); return Promise.resolve(c.length);
 * } };
 * let text = "";
 * const output = { write(p: Uint8Array) { text += new TextDecoder().decode(p); return Promise.resolve(p.length); } };
 * const r = await udpClient("127.0.0.1", server.addr.port, { input, output, wait: 200 });
 * assertEquals(text, "ONE\nTWO\n");
 * assertEquals([r.sent, r.received], [2, 2]);
 * ```
 */
export async function udpClient(
  hostname: string,
  port: number,
  options: UdpClientOptions,
): Promise<UdpClientResult> {
  const logger = options.logger ?? silent;
  const wait = options.wait ?? 1000;
  let family = options.family;
  let local: string | undefined;
  if (options.sourceHost !== undefined) {
    local = await resolveIp(options.sourceHost, family);
    family = ipFamily(local);
  }
  const target = await resolveUdp(hostname, port, family);
  using socket = local === undefined && options.sourcePort === undefined
    ? bindUdpFor(target)
    : bindUdp({
      hostname: local ??
        (ipFamily(target.hostname) === 6 ? "::" : "0.0.0.0"),
      port: options.sourcePort ?? 0,
    });
  logger.log(
    `sending to udp ${formatAddr(target)} from ${formatAddr(socket.addr)}`,
  );
  const result: UdpClientResult = {
    sent: 0,
    received: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };
  let lastReply = performance.now();
  let kick = () => {};

  const receiving = (async () => {
    let d;
    // A view of the socket's buffer: written out before the next receive.
    while ((d = await socket.receiveView()) !== null) {
      if (!sameUdpAddr(d.from, target)) {
        logger.log(`ignored ${d.data.length} bytes from ${formatAddr(d.from)}`);
        continue;
      }
      lastReply = performance.now();
      result.received++;
      result.bytesReceived += d.data.length;
      await writeAll(options.output, d.data);
      kick();
    }
  })();
  // A failed receive (say, a closed stdout) also ends the wait below.
  receiving.catch(() => kick());

  try {
    const sending = (async () => {
      const max = maxPayload(target.hostname);
      for await (
        const payload of datagramsFrom(
          options.input,
          options.split ?? "line",
          max,
        )
      ) {
        if (options.signal?.aborted) return;
        await socket.send(payload, target);
        result.sent++;
        result.bytesSent += payload.length;
      }
    })();
    // A receive failure (a broken stdout) or an abort ends the run as well;
    // a pending read of the input cannot be cancelled, so it is left behind.
    const aborted = Promise.withResolvers<void>();
    const onAbort = () => aborted.resolve();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    try {
      await Promise.race([
        sending,
        receiving.then(() => sending),
        aborted.promise,
      ]);
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
    const eof = performance.now();
    logger.log(
      `input done: ${result.sent} datagrams sent; waiting for replies (${
        wait / 1000
      } s idle)`,
    );
    lastReply = Math.max(lastReply, eof);
    let receiveFailed = false;
    receiving.catch(() => receiveFailed = true);
    while (!options.signal?.aborted && !receiveFailed) {
      const now = performance.now();
      const idleLeft = lastReply + wait - now;
      const quitLeft = options.quitAfterEof !== undefined
        ? eof + options.quitAfterEof - now
        : Infinity;
      const left = Math.min(idleLeft, quitLeft);
      if (left <= 0) break;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", done);
          kick = () => {};
          resolve();
        };
        const timer = setTimeout(done, left);
        kick = done;
        options.signal?.addEventListener("abort", done, { once: true });
      });
    }
  } finally {
    socket.close();
    await receiving;
  }
  logger.log(
    `${result.sent} datagrams (${result.bytesSent} bytes) sent, ${result.received} (${result.bytesReceived} bytes) received`,
  );
  return result;
}
