import { fileURLToPath } from "node:url";
import { assertEquals, assertOk, assertThrows } from "../../lib/_assert.ts";
import {
  assetName,
  binaryName,
  compileArgs,
  compileFlags,
  packageAll,
  TARGETS,
} from "../../tools/release.ts";
import { needs, sha256 } from "../_helpers.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const config = Deno.readTextFileSync(`${ROOT}/deno.json`);

Deno.test("compileFlags() takes the compile task's least permissions, never -A", () => {
  const flags = compileFlags(config);
  const permissions = flags.filter((f) => f.startsWith("--allow-")).sort();
  assertEquals(permissions, [
    "--allow-env",
    "--allow-ffi",
    "--allow-net",
    "--allow-read",
    "--allow-run",
    "--allow-write",
  ]);
  assertOk(!flags.includes("-A") && !flags.includes("--allow-all"));
  assertOk(flags.includes("--unstable-net"), flags.join(" "));
  // Every worker the compile task bundles exists (a moved file would
  // otherwise be missing from the binary only).
  const includes = flags.flatMap((f, i) =>
    f === "--include" ? [flags[i + 1]!] : []
  );
  assertOk(includes.length > 0);
  for (const path of includes) Deno.statSync(`${ROOT}/${path}`);
  assertOk(!flags.includes("-o") && !flags.includes("cli.ts"));
});

Deno.test("compileArgs() adds the target and a per-target output", () => {
  const args = compileArgs(["--allow-net"], "x86_64-pc-windows-msvc", "dist");
  assertEquals(args, [
    "compile",
    "--allow-net",
    "--target",
    "x86_64-pc-windows-msvc",
    "-o",
    "dist/x86_64-pc-windows-msvc/denocat.exe",
    "cli.ts",
  ]);
  assertEquals(
    assetName("aarch64-apple-darwin"),
    "denocat-aarch64-apple-darwin.tar.gz",
  );
  assertEquals(
    assetName("x86_64-pc-windows-msvc"),
    "denocat-x86_64-pc-windows-msvc.zip",
  );
});

Deno.test("compileFlags() refuses a compile task it cannot read safely", () => {
  for (
    const task of [
      "deno run -A cli.ts",
      "deno compile -A cli.ts && rm -rf /",
      "deno compile --allow-net $(evil) cli.ts",
    ]
  ) {
    assertThrows(
      () => compileFlags(JSON.stringify({ tasks: { compile: task } })),
      Error,
      "Cannot read the compile task",
    );
  }
  assertThrows(() => compileFlags("{}"), Error, "deno.json has none");
});

Deno.test({
  name: "packageAll() packs each binary alone and SHA256SUMS verifies them",
  ignore: needs("tar", "zip", "unzip"),
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      for (const target of TARGETS) {
        await Deno.mkdir(`${tmp}/dist/${target}`, { recursive: true });
        await Deno.writeTextFile(
          `${tmp}/dist/${target}/${binaryName(target)}`,
          `binary for ${target}\n`,
        );
      }
      const names = await packageAll(`${tmp}/dist`, `${tmp}/out`);
      assertEquals(names, TARGETS.map(assetName));
      const sums = await Deno.readTextFile(`${tmp}/out/SHA256SUMS`);
      const lines = sums.trimEnd().split("\n");
      assertEquals(lines.length, TARGETS.length);
      for (const [i, line] of lines.entries()) {
        const [hash, name] = line.split("  ");
        assertEquals(name, names[i]);
        assertEquals(hash, sha256(await Deno.readFile(`${tmp}/out/${name}`)));
      }
      // Each archive holds exactly the binary, at its root.
      for (const target of TARGETS) {
        const asset = `${tmp}/out/${assetName(target)}`;
        const list = asset.endsWith(".zip")
          ? await new Deno.Command("unzip", { args: ["-Z1", asset] }).output()
          : await new Deno.Command("tar", { args: ["-tzf", asset] }).output();
        assertEquals(
          new TextDecoder().decode(list.stdout),
          `${binaryName(target)}\n`,
        );
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
