/**
 * Decoding throughput of {@linkcode FrameDecoder}: 64 B, 1 KiB, 64 KiB and
 * 1 MiB frames (u32be), the encoded stream fed in 64 KiB chunks. Each
 * iteration decodes a 16 MiB stream, so
 * MB/s = stream bytes / iteration time and frames/s = frames / iteration time.
 *
 * Run: `deno bench bench/frame_decode_bench.ts`
 *
 * @module
 */
import { encodeFrame, FrameDecoder } from "../lib/frame/mod.ts";

const CHUNK = 64 * 1024;
const STREAM = 16 * 1024 * 1024;

const SIZES: [string, number][] = [
  ["64 B", 64],
  ["1 KiB", 1024],
  ["64 KiB", 64 * 1024],
  ["1 MiB", 1024 * 1024],
];

function buildChunks(
  size: number,
): { chunks: Uint8Array[]; frames: number; bytes: number } {
  const frame = encodeFrame(new Uint8Array(size).fill(0x5a));
  const frames = Math.max(1, Math.floor(STREAM / frame.length));
  const wire = new Uint8Array(frames * frame.length);
  for (let i = 0; i < frames; i++) wire.set(frame, i * frame.length);
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < wire.length; at += CHUNK) {
    chunks.push(wire.slice(at, at + CHUNK));
  }
  return { chunks, frames, bytes: wire.length };
}

for (const [name, size] of SIZES) {
  const { chunks, frames, bytes } = buildChunks(size);
  Deno.bench({
    name: `FrameDecoder ${name} frames (${frames} frames, ${
      (bytes / 2 ** 20).toFixed(0)
    } MiB per iteration)`,
    group: "frame decode",
    fn() {
      const dec = new FrameDecoder();
      let n = 0;
      let sum = 0;
      for (const c of chunks) {
        dec.push(c);
        for (let p = dec.next(); p !== null; p = dec.next()) {
          n++;
          sum += p.length;
        }
      }
      dec.end();
      if (n !== frames || sum !== frames * size) throw new Error("bad decode");
    },
  });
}
