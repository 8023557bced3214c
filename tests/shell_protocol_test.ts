/**
 * The shell protocol's edges: peers that are not denocat shells, malformed
 * messages, and the authentication primitives.
 */
import { assertEquals, assertOk, assertRejects } from "../lib/_assert.ts";
import {
  authResponse,
  connectShell,
  decodeExec,
  encodeClientHello,
  encodeExec,
  encodeMessage,
  MessageReader,
  MsgType,
  ShellProtocolError,
  shellServer,
  verifyResponse,
} from "../lib/shell/mod.ts";
import type { AuditRecord } from "../lib/shell/audit.ts";

Deno.test("connectShell() to a peer that is not a denocat shell fails with 255", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    using conn = await listener.accept();
    await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.0\r\n"));
  })();
  const err = await assertRejects(
    () => connectShell({ hostname: "127.0.0.1", port: listener.addr.port }),
    Error,
    "protocol error",
  );
  assertEquals((err as { exitCode?: number }).exitCode, 255);
  await serving;
});

Deno.test("shellServer() answers garbage with a protocol error and audits it", async () => {
  const records: AuditRecord[] = [];
  await using srv = shellServer({ port: 0 }, {
    insecureNoAuth: true,
    audit: (r) => records.push(r),
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: srv.addr.port,
  });
  const reader = new MessageReader(conn);
  await reader.expect(MsgType.ServerHello, "hello");
  await conn.write(
    encodeMessage(MsgType.ClientHello, encodeClientHello({ version: 1 })),
  );
  await reader.expect(MsgType.Ready, "ready");
  // An EXEC whose command length runs past the end of the message.
  const bad = encodeExec({ command: new Uint8Array([0x6c]), stdin: false });
  await conn.write(encodeMessage(MsgType.Exec, bad.subarray(0, 6)));
  await assertRejects(
    () => reader.expect(MsgType.Exit, "exit"),
    Error,
    "exec request truncated",
  );
  assertEquals(await reader.next(), null);
  assertOk(records.some((r) => r.event === "protocol-error"));
  assertEquals(srv.commands, 0);
});

Deno.test("shellServer() refuses an unknown protocol version", async () => {
  await using srv = shellServer({ port: 0 }, { insecureNoAuth: true });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: srv.addr.port,
  });
  const reader = new MessageReader(conn);
  await reader.expect(MsgType.ServerHello, "hello");
  await conn.write(
    encodeMessage(MsgType.ClientHello, encodeClientHello({ version: 9 })),
  );
  await assertRejects(
    () => reader.expect(MsgType.Ready, "ready"),
    Error,
    "unsupported protocol version 9",
  );
});

Deno.test("shellServer() ends a session whose handshake stalls", async () => {
  await using srv = shellServer({ port: 0 }, {
    insecureNoAuth: true,
    handshakeTimeout: 200,
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: srv.addr.port,
  });
  const reader = new MessageReader(conn);
  await reader.expect(MsgType.ServerHello, "hello");
  await assertRejects(
    () => reader.expect(MsgType.Ready, "ready"),
    Error,
    "handshake timed out",
  );
});

Deno.test("decodeExec() rejects stray bytes after the request", () => {
  const ok = encodeExec({ command: new Uint8Array([1]), stdin: false });
  const stray = new Uint8Array([...ok, 0]);
  let err: unknown;
  try {
    decodeExec(stray);
  } catch (e) {
    err = e;
  }
  assertOk(err instanceof ShellProtocolError && /stray/.test(err.message));
});

Deno.test("authResponse() depends on token and nonce; verifyResponse() checks both", () => {
  const n1 = new Uint8Array(32).fill(1);
  const n2 = new Uint8Array(32).fill(2);
  assertOk(authResponse("a", n1).toHex() !== authResponse("b", n1).toHex());
  assertOk(authResponse("a", n1).toHex() !== authResponse("a", n2).toHex());
  assertEquals(verifyResponse("a", n1, authResponse("a", n1)), true);
  // A response replayed against a fresh nonce fails.
  assertEquals(verifyResponse("a", n2, authResponse("a", n1)), false);
});
