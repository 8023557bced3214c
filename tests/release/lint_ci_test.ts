import { fileURLToPath } from "node:url";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { actionlint, SHELL_SCRIPTS, workflows } from "../../tools/lint_ci.ts";
import { needs } from "../_helpers.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

Deno.test("actionlint() finds the CI and release workflows clean", async () => {
  assertEquals(workflows(), [
    ".github/workflows/ci.yml",
    ".github/workflows/release.yml",
  ]);
  assertEquals(await actionlint(), null);
});

Deno.test("actionlint() reports a broken workflow, and a known gap only where it is one", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/.github/workflows`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/.github/workflows/bad.yml`,
      "on: push\njobs:\n  a:\n    runs-on: macos-15-intel\n    steps:\n      - run: echo ${{ github.nope }}\n",
    );
    const problems = await actionlint(root);
    assertOk(problems?.includes('property "nope" is not defined'), problems!);
    await Deno.writeTextFile(
      `${root}/.github/workflows/bad.yml`,
      "on: push\njobs:\n  a:\n    runs-on: macos-15-intel\n    steps:\n      - run: echo hi\n",
    );
    assertEquals(await actionlint(root), null);
    await Deno.writeTextFile(
      `${root}/.github/workflows/bad.yml`,
      "on: push\njobs:\n  a:\n    runs-on: macos-99\n    steps:\n      - run: echo hi\n",
    );
    assertOk((await actionlint(root))?.includes('label "macos-99" is unknown'));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "install.sh and .ci/run pass shellcheck",
  ignore: needs("shellcheck"),
  async fn() {
    const r = await new Deno.Command("shellcheck", {
      args: SHELL_SCRIPTS,
      cwd: ROOT,
      stdout: "piped",
    }).output();
    assertEquals(new TextDecoder().decode(r.stdout), "");
    assertEquals(r.code, 0);
  },
});
