/**
 * Stamps a release version into the source before `deno compile`: the
 * release workflow runs `deno run -A tools/set_version.ts v1.2.3` with the
 * pushed tag, which rewrites `lib/version.ts` (what `denocat --version`
 * prints) and the `version` field of `deno.json`. A tag that is not
 * `vMAJOR.MINOR.PATCH` (optionally `-PRERELEASE`) is refused, so a stray tag
 * cannot produce a binary with a meaningless version.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** `v1.2.3` or `1.2.3-rc.1`, captured without the leading `v`. */
const TAG = /^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$/;

/**
 * The version a release tag names (`"v1.2.3"` → `"1.2.3"`).
 *
 * @example Usage
 * ```ts
 * import { versionFromTag } from "./set_version.ts";
 * import { assertEquals, assertThrows } from "../lib/_assert.ts";
 * assertEquals(versionFromTag("v1.2.3"), "1.2.3");
 * assertEquals(versionFromTag("v0.2.0-rc.1"), "0.2.0-rc.1");
 * assertThrows(() => versionFromTag("latest"), Error);
 * ```
 */
export function versionFromTag(tag: string): string {
  const m = TAG.exec(tag.trim());
  if (!m) {
    throw new Error(
      `Cannot take a version from tag "${tag}": expected vMAJOR.MINOR.PATCH`,
    );
  }
  return m[1]!;
}

/** The whole text of `lib/version.ts` for `version`. */
export function versionModule(version: string): string {
  return `/** The denocat version, kept equal to deno.json's \`version\`. */\n` +
    `export const VERSION = ${JSON.stringify(version)};\n`;
}

/**
 * Writes `version` into `ROOT/lib/version.ts` and `ROOT/deno.json`. Only the
 * first `"version"` field of deno.json is replaced, so the rest of the file
 * keeps its formatting.
 */
export async function setVersion(root: string, version: string): Promise<void> {
  const configPath = `${root}/deno.json`;
  const config = await Deno.readTextFile(configPath);
  const updated = config.replace(
    /("version"\s*:\s*)"[^"]*"/,
    `$1${JSON.stringify(version)}`,
  );
  if (updated === config && !config.includes(JSON.stringify(version))) {
    throw new Error(
      `Cannot set the version: no "version" field in ${configPath}`,
    );
  }
  await Deno.writeTextFile(configPath, updated);
  await Deno.writeTextFile(`${root}/lib/version.ts`, versionModule(version));
}

if (import.meta.main) {
  const [tag, root = fileURLToPath(new URL("..", import.meta.url))] = Deno.args;
  if (!tag) {
    console.error("usage: set_version.ts TAG [ROOT]");
    Deno.exit(2);
  }
  try {
    const version = versionFromTag(tag);
    await setVersion(root, version);
    console.log(`version ${version}`);
  } catch (err) {
    console.error(`set_version: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
