/**
 * Verified file transfer: `denocat send` / `denocat recv` as a library.
 * The native protocol (hello, per-item header, body or chunk frames,
 * trailer, per-item ack) is in `protocol.ts` and `docs/PROTOCOL.md`; the
 * seeds' header in `seed.ts`.
 *
 * @example Send a stream, receive it into a directory
 * ```ts
 * import { receiveServer, sendItems } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * const dir = await Deno.makeTempDir();
 * await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, { dir });
 * const chunks = [new TextEncoder().encode("hi")];
 * const reader = { read(p: Uint8Array) { const c = chunks.shift(); if (!c) return Promise.resolve(null); p.set(c); return Promise.resolve(c.length); } };
 * const r = await sendItems({ hostname: "127.0.0.1", port: server.port }, [{ kind: "stream", name: "x", reader }]);
 * assertEquals([r.exitCode, await server.finished], [0, 0]);
 * assertEquals(await Deno.readTextFile(`${dir}/x`), "hi");
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
export { collectItems, type CollectOptions, type SendItem } from "./items.ts";
export {
  type ItemResult,
  sendItems,
  type SendOptions,
  type SendResult,
} from "./send.ts";
export {
  type ReceiveServer,
  receiveServer,
  type ReceiveServerOptions,
} from "./server.ts";
export type { ConnectionResult, ReceivedItem, ReceiveOptions } from "./recv.ts";
export type { Progress, ProgressOptions } from "./progress.ts";
export { seedReceiveOver, type SeedSendOptions, seedSendOver } from "./seed.ts";
export { type AckCode, ProtocolError, TRANSFER_VERSION } from "./protocol.ts";
export { UnsafeNameError } from "./names.ts";
export { type Destination, RefusedError } from "./store.ts";
export {
  type Held,
  TargetDir,
  type TargetOptions,
  type TempFile,
  Walk,
} from "./place.ts";
