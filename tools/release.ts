/**
 * Builds the release assets: `deno compile` for every target with exactly
 * the flags of `deno task compile` (read from deno.json, so the binaries get
 * the same least permissions and unstable flags as a local build), then one
 * archive per target and `SHA256SUMS`.
 *
 * ```sh
 * deno run -A tools/release.ts compile dist      # dist/TARGET/denocat[.exe]
 * deno run -A tools/release.ts package dist out  # out/denocat-TARGET.{tar.gz,zip}, out/SHA256SUMS
 * ```
 *
 * Archives hold the binary alone at their root: `denocat` in a `.tar.gz`
 * for Linux and macOS, `denocat.exe` in a `.zip` for Windows. install.sh
 * and the README's manual steps rely on these names.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";

/** Every target a release ships, as `deno compile --target` spells it. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** A release target. */
export type Target = typeof TARGETS[number];

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The binary's file name on `target`. */
export function binaryName(target: string): string {
  return target.includes("windows") ? "denocat.exe" : "denocat";
}

/** The archive a release attaches for `target`. */
export function assetName(target: string): string {
  return target.includes("windows")
    ? `denocat-${target}.zip`
    : `denocat-${target}.tar.gz`;
}

/**
 * The `deno compile` flags of deno.json's `compile` task: everything but the
 * output (`-o PATH`) and the entry point, which the release sets per target.
 *
 * @example Usage
 * ```ts
 * import { compileFlags } from "./release.ts";
 * import { assertEquals } from "../lib/_assert.ts";
 * const config = JSON.stringify({
 *   tasks: { compile: "deno compile --allow-net --unstable-net -o dist/denocat cli.ts" },
 * });
 * assertEquals(compileFlags(config), ["--allow-net", "--unstable-net"]);
 * ```
 */
export function compileFlags(denoJson: string): string[] {
  const task: unknown = JSON.parse(denoJson)?.tasks?.compile;
  const command = typeof task === "string"
    ? task
    : (task as { command?: unknown } | undefined)?.command;
  if (typeof command !== "string") {
    throw new Error("Cannot read the compile task: deno.json has none");
  }
  const words = command.trim().split(/\s+/);
  if (
    words[0] !== "deno" || words[1] !== "compile" || words.at(-1) !== "cli.ts"
  ) {
    throw new Error(
      `Cannot read the compile task: expected "deno compile ... cli.ts", got "${command}"`,
    );
  }
  const flags: string[] = [];
  for (let i = 2; i < words.length - 1; i++) {
    const w = words[i]!;
    if (w === "-o" || w === "--output") {
      i++;
      continue;
    }
    if (w.startsWith("--output=") || w.startsWith("--target")) continue;
    if (/[;&|<>$`]/.test(w)) {
      throw new Error(`Cannot read the compile task: shell syntax in "${w}"`);
    }
    flags.push(w);
  }
  return flags;
}

/** The `deno` arguments that compile `target` into `outDir/TARGET/`. */
export function compileArgs(
  flags: readonly string[],
  target: string,
  outDir: string,
): string[] {
  return [
    "compile",
    ...flags,
    "--target",
    target,
    "-o",
    `${outDir}/${target}/${binaryName(target)}`,
    "cli.ts",
  ];
}

async function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  const r = await new Deno.Command(cmd, {
    args,
    stdout: "inherit",
    stderr: "inherit",
    ...(cwd ? { cwd } : {}),
  }).output();
  if (!r.success) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}`);
}

/** Compiles every target into `outDir/TARGET/`. */
export async function compileAll(outDir: string): Promise<void> {
  const flags = compileFlags(await Deno.readTextFile(`${ROOT}/deno.json`));
  for (const target of TARGETS) {
    await run(Deno.execPath(), compileArgs(flags, target, outDir), ROOT);
  }
}

/**
 * Packs `distDir/TARGET/denocat[.exe]` for every target into `outDir` and
 * writes `outDir/SHA256SUMS` (`HASH  NAME` lines, as `sha256sum -c` reads
 * them). Needs `tar`, and `zip` for the Windows archive. Returns the names
 * of the archives, in target order.
 */
export async function packageAll(
  distDir: string,
  outDir: string,
  targets: readonly string[] = TARGETS,
): Promise<string[]> {
  await Deno.mkdir(outDir, { recursive: true });
  const out = await Deno.realPath(outDir);
  const names: string[] = [];
  const sums: string[] = [];
  for (const target of targets) {
    const dir = `${distDir}/${target}`;
    const bin = binaryName(target);
    const info = await Deno.stat(`${dir}/${bin}`);
    if (!info.isFile) {
      throw new Error(`Cannot package ${dir}/${bin}: not a file`);
    }
    const asset = assetName(target);
    await Deno.remove(`${out}/${asset}`).catch(() => {});
    if (asset.endsWith(".zip")) {
      await run("zip", ["-q", "-X", `${out}/${asset}`, bin], dir);
    } else {
      await run("tar", ["-czf", `${out}/${asset}`, "-C", dir, bin]);
    }
    const hash = createHash("sha256")
      .update(await Deno.readFile(`${out}/${asset}`))
      .digest("hex");
    sums.push(`${hash}  ${asset}\n`);
    names.push(asset);
  }
  await Deno.writeTextFile(`${out}/SHA256SUMS`, sums.join(""));
  return names;
}

if (import.meta.main) {
  const [command, a, b] = Deno.args;
  try {
    if (command === "compile" && a) {
      await compileAll(a);
    } else if (command === "package" && a && b) {
      const names = await packageAll(a, b);
      console.log([...names, "SHA256SUMS"].join("\n"));
    } else if (command === "flags") {
      const config = await Deno.readTextFile(`${ROOT}/deno.json`);
      console.log(compileFlags(config).join(" "));
    } else {
      console.error(
        "usage: release.ts compile DIST | package DIST OUT | flags",
      );
      Deno.exit(2);
    }
  } catch (err) {
    console.error(`release: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
