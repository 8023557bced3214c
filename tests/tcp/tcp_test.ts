import { connect, listen } from "../../lib/tcp/connect.ts";
import { pipeDuplex } from "../../lib/tcp/pipe.ts";
import { echoServer } from "../../lib/tcp/echo.ts";
import { tcpListen } from "../../lib/tcp/listener.ts";
import { copy } from "../../lib/copy.ts";
import { DenocatError } from "../../lib/errors.ts";
import { assertEquals, assertOk, assertRejects } from "../../lib/_assert.ts";
import { randomBytes, readAll, sha256 } from "../_helpers.ts";

function source(chunks: Uint8Array[]) {
  return {
    read(p: Uint8Array) {
      const c = chunks.shift();
      if (!c) return Promise.resolve(null);
      p.set(c);
      return Promise.resolve(c.length);
    },
  };
}
function sink() {
  const parts: Uint8Array[] = [];
  return {
    parts,
    write(p: Uint8Array) {
      parts.push(p.slice());
      return Promise.resolve(p.length);
    },
    bytes() {
      const out = new Uint8Array(parts.reduce((a, c) => a + c.length, 0));
      let o = 0;
      for (const c of parts) out.set(c, o), o += c.length;
      return out;
    },
  };
}

Deno.test("connect() reports a refused connection as a one-line DenocatError", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const err = await assertRejects(
    () => connect({ hostname: "127.0.0.1", port }),
    DenocatError,
    `cannot connect to 127.0.0.1:${port}: connection refused`,
  );
  assertEquals((err as DenocatError).exitCode, 1);
});

Deno.test("connect() reports an unknown host", async () => {
  await assertRejects(
    () => connect({ hostname: "no-such-host.invalid", port: 80 }),
    DenocatError,
    "unknown host",
  );
});

Deno.test("connect() honours family 6 and 4 for localhost", async () => {
  using l6 = Deno.listen({ hostname: "::1", port: 0 });
  const c = await connect({ hostname: "localhost", port: l6.addr.port }, {
    family: 6,
  });
  const s = await l6.accept();
  assertEquals((c.remoteAddr as Deno.NetAddr).hostname, "::1");
  c.close();
  s.close();
  await assertRejects(
    () => connect({ hostname: "::1", port: 1 }, { family: 4 }),
    DenocatError,
    "not an IPv4 address",
  );
});

Deno.test("listen() reports a port in use", () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    listen({ hostname: "127.0.0.1", port: l.addr.port });
    throw new Error("second listen succeeded");
  } catch (err) {
    assertOk(err instanceof DenocatError);
    assertEquals(
      err.message,
      `cannot listen on 127.0.0.1:${l.addr.port}: address already in use`,
    );
  }
});

Deno.test("listen() rebinds at once after a server with a TIME_WAIT connection closed", async () => {
  const l = listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const s = await l.accept();
  s.close(); // server closes first: its side goes to TIME_WAIT
  await readAll(c);
  c.close();
  l.close();
  using again = listen({ hostname: "127.0.0.1", port });
  assertEquals((again.addr as Deno.NetAddr).port, port);
});

Deno.test("listen() without a host binds all interfaces, reachable over IPv4 and IPv6", async () => {
  using l = listen({ port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  for (const hostname of ["127.0.0.1", "::1"]) {
    const c = await Deno.connect({ hostname, port });
    const s = await l.accept();
    c.close();
    s.close();
  }
});

Deno.test("copy() moves 8 MiB intact across a socket", async () => {
  const data = randomBytes(8 << 20);
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const recv = (async () => {
    const s = await l.accept();
    const got = await readAll(s);
    s.close();
    return got;
  })();
  const c = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += 100_000) {
    chunks.push(data.subarray(i, i + 100_000));
  }
  assertEquals(await copy(source(chunks), c), data.length);
  c.close();
  assertEquals(sha256(await recv), sha256(data));
});

Deno.test("pipeDuplex() keeps reading after input EOF until the peer closes", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const s = await l.accept();
    const got = await readAll(s); // only returns once the client sent FIN
    await new Promise((r) => setTimeout(r, 100));
    await s.write(new TextEncoder().encode(`len=${got.length}`));
    s.close();
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const out = sink();
  const r = await pipeDuplex(conn, {
    input: source([new Uint8Array(1000)]),
    output: out,
  });
  await server;
  assertEquals(new TextDecoder().decode(out.bytes()), "len=1000");
  assertEquals(r.reason, "peer-closed");
  assertEquals(r.inputEnded, true);
});

Deno.test("pipeDuplex() with halfClose false and quitAfterEof quits without FIN", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const s = await l.accept();
    const got = await readAll(s);
    s.close();
    return got.length;
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const t0 = performance.now();
  const r = await pipeDuplex(conn, {
    input: source([new Uint8Array(10)]),
    output: sink(),
    halfClose: false,
    quitAfterEof: 200,
  });
  const ms = performance.now() - t0;
  assertEquals(r.reason, "quit");
  assertOk(ms >= 150, `quit after ${ms} ms`);
  assertEquals(await server, 10);
});

Deno.test("pipeDuplex() ends with reason idle, not an error, when idle (nc -w)", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = l.accept();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const s = await accepted;
  const never = { read: () => new Promise<number | null>(() => {}) };
  const t0 = performance.now();
  const r = await pipeDuplex(conn, {
    input: never,
    output: sink(),
    idleTimeout: 200,
  });
  const ms = performance.now() - t0;
  assertEquals(r.reason, "idle");
  assertOk(ms >= 190, `ended after ${ms} ms`);
  s.close();
});

Deno.test("echoServer() serves many clients at once, each its own bytes", async () => {
  await using server = echoServer({ hostname: "127.0.0.1", port: 0 });
  const port = (server.addr as Deno.NetAddr).port;
  await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    const data = randomBytes(10_000 + i);
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    const [, back] = await Promise.all([
      (async () => {
        await c.write(data);
        await c.closeWrite();
      })(),
      readAll(c),
    ]);
    c.close();
    assertEquals(sha256(back), sha256(data));
  }));
  assertEquals(server.served, 50);
});

Deno.test("echoServer() with maxConns closes connections beyond the limit", async () => {
  await using server = echoServer({ hostname: "127.0.0.1", port: 0 }, {
    maxConns: 1,
  });
  const port = (server.addr as Deno.NetAddr).port;
  const a = await Deno.connect({ hostname: "127.0.0.1", port });
  await a.write(new Uint8Array([1]));
  await a.read(new Uint8Array(1)); // a is being served
  const b = await Deno.connect({ hostname: "127.0.0.1", port });
  assertEquals(await b.read(new Uint8Array(1)), null); // b is closed at once
  b.close();
  a.close();
});

Deno.test("echoServer() close() ends open connections and resolves", async () => {
  const server = echoServer({ hostname: "127.0.0.1", port: 0 });
  const c = await Deno.connect({
    hostname: "127.0.0.1",
    port: (server.addr as Deno.NetAddr).port,
  });
  await c.write(new Uint8Array([1]));
  await c.read(new Uint8Array(1));
  await server.close();
  assertEquals(await c.read(new Uint8Array(1)), null);
  c.close();
});

Deno.test("tcpListen() with keep serves clients concurrently and fans input out", async () => {
  const ac = new AbortController();
  const { promise: bound, resolve } = Promise.withResolvers<number>();
  const { promise: go, resolve: release } = Promise.withResolvers<void>();
  let sent = false;
  const input = {
    async read(p: Uint8Array) {
      if (sent) return null;
      await go;
      sent = true;
      p.set(new TextEncoder().encode("broadcast"));
      return 9;
    },
  };
  const out = sink();
  const done = tcpListen({ hostname: "127.0.0.1", port: 0 }, {
    input,
    output: out,
    keep: true,
    signal: ac.signal,
    onListening: (a) => resolve((a as Deno.NetAddr).port),
  });
  const port = await bound;
  const a = await Deno.connect({ hostname: "127.0.0.1", port });
  const b = await Deno.connect({ hostname: "127.0.0.1", port });
  await a.write(new TextEncoder().encode("A"));
  await b.write(new TextEncoder().encode("B"));
  await new Promise((r) => setTimeout(r, 100));
  release();
  const [ra, rb] = await Promise.all([readAll(a), readAll(b)]); // EOF: input ended, FIN sent
  assertEquals(new TextDecoder().decode(ra), "broadcast");
  assertEquals(new TextDecoder().decode(rb), "broadcast");
  a.close();
  b.close();
  await new Promise((r) => setTimeout(r, 50));
  ac.abort();
  const r = await done;
  assertEquals(r.connections, 2);
  assertEquals(
    [...new TextDecoder().decode(out.bytes())].sort().join(""),
    "AB",
  );
});

Deno.test("pipeDuplex() keeps sending after the peer's early FIN until input EOF", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const s = await l.accept();
    await s.closeWrite(); // a listener with nothing to say half-closes at once
    const got = await readAll(s);
    s.close();
    return got;
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const data = randomBytes(3 << 20);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += 65536) {
    chunks.push(data.subarray(i, i + 65536));
  }
  const slow = {
    async read(p: Uint8Array) {
      await new Promise((r) => setTimeout(r, 1));
      return source(chunks).read(p);
    },
  };
  const r = await pipeDuplex(conn, { input: slow, output: sink() });
  assertEquals(r.sent, data.length);
  assertEquals(sha256(await server), sha256(data));
});

Deno.test("tcpListen() with keep: a client that stops reading is dropped, the others get everything", async () => {
  const ac = new AbortController();
  const { promise: bound, resolve } = Promise.withResolvers<number>();
  const { promise: go, resolve: release } = Promise.withResolvers<void>();
  const total = 32 << 20;
  let produced = 0;
  const input = {
    async read(p: Uint8Array) {
      await go;
      if (produced >= total) return null;
      const n = Math.min(p.length, total - produced);
      p.fill(0x61, 0, n);
      produced += n;
      return n;
    },
  };
  const logs: string[] = [];
  const done = tcpListen({ hostname: "127.0.0.1", port: 0 }, {
    input,
    output: sink(),
    keep: true,
    signal: ac.signal,
    logger: { enabled: true, log: (m) => logs.push(m) },
    onListening: (a) => resolve((a as Deno.NetAddr).port),
  });
  const port = await bound;
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = await Deno.connect({ hostname: "127.0.0.1", port });
  await new Promise((r) => setTimeout(r, 100)); // both accepted
  release();
  const got = await readAll(reader); // EOF once the input ended
  assertEquals(got.length, total);
  assertOk(
    logs.some((l) => l.includes("not reading") && l.includes("dropped")),
    logs.join("\n"),
  );
  stalled.close();
  reader.close();
  ac.abort();
  await done;
});

Deno.test("pipeDuplex() idle timeout counts from the last byte, not from the start", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const s = await l.accept();
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await s.write(new Uint8Array([0x30 + i]));
    }
    s.close();
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const never = { read: () => new Promise<number | null>(() => {}) };
  const out = sink();
  // 600 ms of trickling data under a 250 ms idle limit: never idle that long.
  const r = await pipeDuplex(conn, {
    input: never,
    output: out,
    idleTimeout: 250,
    endOnPeerEof: true,
  });
  await server;
  assertEquals(new TextDecoder().decode(out.bytes()), "012345");
  assertEquals(r.reason, "peer-closed");
});

Deno.test("pipeDuplex() idle timeout still fires after the peer closed while input stays open", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = l.accept().then((s) => s.close());
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  await server;
  const never = { read: () => new Promise<number | null>(() => {}) };
  const r = await pipeDuplex(conn, {
    input: never,
    output: sink(),
    idleTimeout: 200,
  });
  assertEquals(r.reason, "idle");
});
