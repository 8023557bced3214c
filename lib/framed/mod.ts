/**
 * Framed streams (`--frame`): input cut into length-prefixed or
 * JSON-header frames and sent over TCP or UDP, and frames received,
 * checked and written out as lines, raw bytes, hex or JSON. The codecs
 * themselves are in the `frame` entry point.
 *
 * @example One client, u32le frames decoded as lines
 * ```ts
 * import { framedListen } from "./mod.ts";
 * import { encodeFrame } from "../frame/mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * let text = "";
 * const output = { write(p: Uint8Array) { text += new TextDecoder().decode(p); return Promise.resolve(p.length); } };
 * const { promise: bound, resolve } = Promise.withResolvers<Deno.Addr>();
 * const run = framedListen({ hostname: "127.0.0.1", port: 0 }, { output, format: "u32le", onListening: resolve });
 * const port = ((await bound) as Deno.NetAddr).port;
 * {
 *   using conn = await Deno.connect({ hostname: "127.0.0.1", port });
 *   await conn.write(encodeFrame(new TextEncoder().encode("hi"), { format: "u32le" }));
 * }
 * assertEquals((await run).frames, 1);
 * assertEquals(text, "hi\n");
 * ```
 *
 * @module
 */
export {
  FRAME_NAMES,
  type FramedFormat,
  type FrameName,
  framingByName,
  type FramingOptions,
} from "./options.ts";
export {
  FRAME_OUTPUT_MODES,
  type FrameOutputMode,
  type FrameWriterOptions,
  type SharedOutput,
} from "./output.ts";
export {
  framedClient,
  type FramedClientOptions,
  type FramedClientResult,
  type FramedInputOptions,
  sendFrames,
  type SendFramesResult,
} from "./send.ts";
export {
  receiveFrames,
  type ReceiveFramesOptions,
  type ReceiveFramesResult,
} from "./receive.ts";
export {
  framedListen,
  type FramedListenOptions,
  type FramedListenResult,
} from "./listen.ts";
export {
  framedUdpClient,
  type FramedUdpClientOptions,
  framedUdpListen,
  type FramedUdpListenOptions,
  type FramedUdpListenResult,
} from "./udp.ts";
