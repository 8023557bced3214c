/**
 * Temporary files of a receiver killed with SIGKILL: left locked while it
 * lives, removed by the next receiver once it is gone.
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { receiveServer } from "../lib/transfer/mod.ts";
import { removeStaleTemps, TEMP_NAME } from "../lib/transfer/stale.ts";

const STORE = new URL("../lib/transfer/store.ts", import.meta.url).href;

/** Temp files (our naming scheme) anywhere under `dir`. */
function temps(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) out.push(...temps(`${dir}/${e.name}`));
    else if (TEMP_NAME.test(e.name)) out.push(`${dir}/${e.name}`);
  }
  return out;
}

Deno.test("removeStaleTemps() spares a live writer's file and removes it once the writer is SIGKILLed", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  // The temporary file goes into the deepest existing directory: sub/.
  await Deno.mkdir(`${dir}/sub`);
  const writer = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { openItem } from "${STORE}";
       const item = await openItem({ dir: ${
        JSON.stringify(dir)
      }, overwrite: false }, "sub/big.bin");
       await item.sink.write(new Uint8Array(1000));
       console.log("open");
       setInterval(() => {}, 1000);`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = writer.stdout.getReader();
    const first = await reader.read();
    assertEquals(new TextDecoder().decode(first.value).trim(), "open");
    reader.releaseLock();
    assertEquals(temps(dir).length, 1);
    assertEquals(await removeStaleTemps(dir), 0); // its writer is alive
    writer.kill("SIGKILL");
    await writer.status;
    const removed: string[] = [];
    assertEquals(
      await removeStaleTemps(dir, { onRemoved: (p) => removed.push(p) }),
      1,
    );
    assertOk(
      removed[0]!.startsWith(`${dir}/sub/.big.bin.denocat-`),
      removed[0],
    );
    assertEquals(temps(dir), []);
  } finally {
    try {
      writer.kill("SIGKILL");
    } catch { /* exited */ }
    await writer.stdout.cancel().catch(() => {});
    await writer.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("receiveServer() cleans stale temporary files on start, and nothing else", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await Deno.mkdir(`${dir}/a`);
    await Deno.writeTextFile(`${dir}/a/.x.denocat-00112233aabb.part`, "old");
    await Deno.writeTextFile(`${dir}/.notes.part`, "mine"); // not our scheme
    await Deno.writeTextFile(`${dir}/keep.txt`, "mine");
    const server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir,
      keep: true,
    });
    await server.close();
    assertEquals(temps(dir), []);
    assertEquals(await Deno.readTextFile(`${dir}/.notes.part`), "mine");
    assertEquals(await Deno.readTextFile(`${dir}/keep.txt`), "mine");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
