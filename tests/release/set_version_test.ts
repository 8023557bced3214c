import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { pathToFileURL } from "node:url";
import { VERSION } from "../../lib/version.ts";
import { setVersion, versionFromTag } from "../../tools/set_version.ts";

Deno.test("lib/version.ts and deno.json name the same version", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  assertEquals(config.version, VERSION);
});

Deno.test("setVersion() stamps a tag into lib/version.ts and deno.json only", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/lib`);
    const config = await Deno.readTextFile(
      new URL("../../deno.json", import.meta.url),
    );
    await Deno.writeTextFile(`${root}/deno.json`, config);
    await setVersion(root, versionFromTag("v3.4.5-rc.1"));
    const written = await Deno.readTextFile(`${root}/deno.json`);
    assertEquals(JSON.parse(written).version, "3.4.5-rc.1");
    // Nothing else in deno.json moved.
    assertEquals(
      written.replace('"3.4.5-rc.1"', JSON.stringify(VERSION)),
      config,
    );
    const mod = await import(pathToFileURL(`${root}/lib/version.ts`).href);
    assertEquals(mod.VERSION, "3.4.5-rc.1");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("versionFromTag() refuses tags that are not vMAJOR.MINOR.PATCH", () => {
  for (const tag of ["latest", "v1.2", "1.2.3.4", "v1.2.3/x", "v1.2.3\nx"]) {
    let refused = false;
    try {
      versionFromTag(tag);
    } catch (err) {
      refused = err instanceof Error && err.message.startsWith("Cannot take");
    }
    assertOk(refused, `accepted ${JSON.stringify(tag)}`);
  }
});
