import { fileURLToPath } from "node:url";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { VERSION } from "../../lib/version.ts";
import { smoke } from "../../tools/smoke.ts";

const CLI = [
  Deno.execPath(),
  "run",
  "-A",
  fileURLToPath(new URL("../../cli.ts", import.meta.url)),
];

Deno.test("smoke() passes every release check against deno run cli.ts", async () => {
  const lines: string[] = [];
  await smoke(CLI, {
    version: VERSION,
    target: Deno.build.target,
    log: (l) => lines.push(l),
  });
  assertEquals(lines.length, 5);
  assertOk(lines.every((l) => l.startsWith("ok: ")), lines.join("\n"));
  assertOk(lines[2]!.startsWith("ok: 64 MiB each way through -l"), lines[2]);
});

Deno.test("smoke() fails when --version names another target", async () => {
  let message = "";
  try {
    await smoke(CLI, { target: "riscv64-unknown-linux-gnu", log: () => {} });
  } catch (err) {
    message = err instanceof Error ? err.message : String(err);
  }
  assertEquals(
    message,
    `target ${Deno.build.target}, expected riscv64-unknown-linux-gnu`,
  );
});
