/**
 * Framing codecs: length-prefixed frames and JSON-header frames, as
 * incremental decoders, `TransformStream`s and a buffered reader for
 * request/response protocols. The wire formats are described in
 * `docs/PROTOCOL.md`.
 *
 * @example Round trip
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dec = new FrameDecoder({ format: "varint" });
 * dec.push(encodeFrame(new Uint8Array([7]), { format: "varint" }));
 * assertEquals(dec.next(), new Uint8Array([7]));
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./prefix.ts";
export * from "./frame_decoder.ts";
export * from "./json_header.ts";
export * from "./json_header_decoder.ts";
export * from "./json_frame_decoder.ts";
export * from "./reader.ts";
