/**
 * The audit trail stays bounded: a 100 KB command is recorded cut to a few
 * KiB with its size (it was written to stderr in full; a 1 MiB command, refused
 * by the kernel, was too).
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import {
  type AuditRecord,
  connectShell,
  shellServer,
} from "../lib/shell/mod.ts";
import { MAX_AUDIT_COMMAND } from "../lib/shell/audit.ts";
import { testOnlyOn } from "./_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "process groups and POSIX signals (the shell server)",
);

test("shellServer(): a huge command is audited cut, with its size", async () => {
  const records: AuditRecord[] = [];
  await using server = shellServer({ port: 0 }, {
    token: "audit-token-0123456789",
    audit: (r) => records.push(r),
  });
  await using session = await connectShell(
    { hostname: "127.0.0.1", port: server.addr.port },
    { token: "audit-token-0123456789" },
  );
  const command = ":" + " ".repeat(100_000) + "; exit 9";
  assertEquals((await session.exec(command)).code, 9);
  const exec = records.find((r) => r.event === "exec");
  assertOk(exec && exec.event === "exec");
  assertOk(
    exec.command.length < MAX_AUDIT_COMMAND + 100,
    `${exec.command.length}`,
  );
  assertOk(exec.command.endsWith(`… (${command.length} bytes)`));
});
