/**
 * The shell protocol's edges: peers that are not denocat shells, malformed
 * messages, and the authentication primitives.
 */
import { assertEquals, assertOk, assertRejects } from "../lib/_assert.ts";
import {
  connectShell,
  ShellProtocolError,
  shellServer,
} from "../lib/shell/mod.ts";
import { authProof, createNonce, verifyProof } from "../lib/shell/auth.ts";
import {
  decodeClientHello,
  decodeExec,
  encodeClientHello,
  encodeExec,
  encodeMessage,
  encodeServerHello,
  MsgType,
  PROTOCOL_VERSION,
} from "../lib/shell/protocol.ts";
import { MessageReader } from "../lib/shell/wire.ts";
import type { AuditRecord } from "../lib/shell/audit.ts";
import { testOnlyOn } from "./_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "process groups and POSIX signals (the shell server)",
);

test("connectShell() to a peer that is not a denocat shell fails with 255", async () => {
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

test("shellServer() answers garbage with a protocol error and audits it", async () => {
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
    encodeMessage(
      MsgType.ClientHello,
      encodeClientHello({ version: PROTOCOL_VERSION }),
    ),
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

test("shellServer() refuses an unknown protocol version", async () => {
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

test("shellServer() ends a session whose handshake stalls", async () => {
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

test("decodeExec() rejects stray bytes after the request", () => {
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

test("authProof() depends on token, role and both nonces; verifyProof() checks all", () => {
  const n1 = new Uint8Array(32).fill(1);
  const n2 = new Uint8Array(32).fill(2);
  const p = authProof("a", "client", n1, n2);
  assertOk(p.toHex() !== authProof("b", "client", n1, n2).toHex());
  assertOk(p.toHex() !== authProof("a", "client", n2, n2).toHex());
  assertOk(p.toHex() !== authProof("a", "client", n1, n1).toHex());
  assertEquals(verifyProof("a", "client", n1, n2, p), true);
  // Replayed against a fresh server nonce, or reflected as the server's proof.
  assertEquals(verifyProof("a", "client", n2, n2, p), false);
  assertEquals(verifyProof("a", "server", n1, n2, p), false);
});

/**
 * A fake server: sends `hello`, then for an authenticating client a READY
 * carrying `ready`, and records every frame type it receives.
 */
async function fakeServer(
  hello: Uint8Array,
  ready: (clientHello: Uint8Array) => Uint8Array,
  run: (port: number) => Promise<unknown>,
): Promise<number[]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const types: number[] = [];
  const serving = (async () => {
    using conn = await listener.accept();
    const reader = new MessageReader(conn);
    await conn.write(encodeMessage(MsgType.ServerHello, hello));
    for (;;) {
      const head = await reader.next().catch(() => null);
      if (head === null) break;
      types.push(head.type);
      const body = await reader.body(head.length);
      if (head.type === MsgType.ClientHello) {
        await conn.write(encodeMessage(MsgType.Ready, ready(body)));
      }
    }
  })();
  await run(listener.addr.port);
  await serving;
  return types;
}

test("a client with a token refuses a server that offers no authentication", async () => {
  const types = await fakeServer(
    encodeServerHello({ version: PROTOCOL_VERSION }),
    () => new Uint8Array(0),
    (port) =>
      assertRejects(
        () => connectShell({ hostname: "127.0.0.1", port }, { token: "t" }),
        Error,
        "offers no authentication, but a token is set",
      ),
  );
  assertEquals(types, []); // not even a hello, let alone EXEC or stdin
});

test("a client refuses a server that cannot prove it knows the token", async () => {
  const nonce = createNonce();
  const types = await fakeServer(
    encodeServerHello({ version: PROTOCOL_VERSION, nonce }),
    (body) => {
      // The fake knows the nonces but not the token.
      const hello = decodeClientHello(body);
      return authProof("guessed", "server", nonce, hello.nonce!);
    },
    async (port) => {
      const err = await assertRejects(
        () => connectShell({ hostname: "127.0.0.1", port }, { token: "real" }),
        Error,
        "did not prove it knows the token",
      );
      assertEquals((err as { exitCode?: number }).exitCode, 255);
    },
  );
  assertEquals(types, [MsgType.ClientHello]); // no EXEC, no STDIN
});

test("the real server proves the token over both nonces", async () => {
  await using srv = shellServer({ port: 0 }, { token: "right-token" });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: srv.addr.port,
  });
  const reader = new MessageReader(conn);
  const hello = await reader.expect(MsgType.ServerHello, "hello");
  const serverNonce = hello.slice(6);
  const clientNonce = createNonce();
  await conn.write(encodeMessage(
    MsgType.ClientHello,
    encodeClientHello({
      version: PROTOCOL_VERSION,
      nonce: clientNonce,
      mac: authProof("right-token", "client", serverNonce, clientNonce),
    }),
  ));
  const proof = await reader.expect(MsgType.Ready, "ready");
  assertEquals(
    verifyProof("right-token", "server", serverNonce, clientNonce, proof),
    true,
  );
});
