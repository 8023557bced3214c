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
export * from "./protocol.ts";
export * from "./names.ts";
export * from "./items.ts";
export * from "./store.ts";
export * from "./send.ts";
export * from "./recv.ts";
export * from "./seed.ts";
export * from "./server.ts";
export * from "./progress.ts";
export * from "./stale.ts";
export * from "./show.ts";
export * from "./busy.ts";
