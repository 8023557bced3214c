/**
 * Sockets denocat makes itself through libc (lib/native/socket_fd.ts,
 * unix_dgram_fd.ts), tested directly over loopback.
 */
import { assertEquals, assertOk, assertRejects } from "../../lib/_assert.ts";
import {
  sourceSocketsAvailable,
  tcpConnectFrom,
  udpPortState,
} from "../../lib/native/socket_fd.ts";
import { UnixDatagramSocket } from "../../lib/native/unix_dgram_fd.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import { freePort, readAll } from "../_helpers.ts";

// libc stays open for the process: open it before the tests so the
// resource sanitizer does not count it.
const available = sourceSocketsAvailable();
const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test(
  "tcpConnectFrom() binds the source port; read, write and closeWrite act like Deno's",
  {
    ignore: !available,
  },
  async () => {
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const local = freePort();
    const conn = await tcpConnectFrom({
      remoteIp: "127.0.0.1",
      remotePort: l.addr.port,
      localIp: "127.0.0.1",
      localPort: local,
    });
    const server = await l.accept();
    assertEquals((server.remoteAddr as Deno.NetAddr).port, local);
    assertEquals(conn.localAddr, {
      transport: "tcp",
      hostname: "127.0.0.1",
      port: local,
    });
    assertEquals(conn.remoteAddr.port, l.addr.port);
    await conn.write(enc.encode("ping"));
    await conn.closeWrite();
    assertEquals(dec.decode(await readAll(server)), "ping"); // our FIN arrived
    await server.write(enc.encode("pong"));
    server.close();
    assertEquals(dec.decode(await readAll(conn)), "pong");
    conn.close();
    let threw = false;
    try {
      conn.close();
    } catch (err) {
      threw = err instanceof Deno.errors.BadResource;
    }
    assertOk(threw, "a second close is BadResource, as Deno's");
  },
);

Deno.test(
  "FdConn.close() wakes a read that is waiting, which then fails as Deno's does",
  {
    ignore: !available,
  },
  async () => {
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const conn = await tcpConnectFrom({
      remoteIp: "127.0.0.1",
      remotePort: l.addr.port,
    });
    using _server = await l.accept();
    const pending = conn.read(new Uint8Array(16));
    await new Promise((ok) => setTimeout(ok, 50));
    conn.close();
    await assertRejects(() => pending, Deno.errors.BadResource);
  },
);

Deno.test(
  "tcpConnectFrom() errors are Deno's classes: refused, and a source port in use",
  {
    ignore: !available,
  },
  async () => {
    const closed = freePort();
    await assertRejects(
      () => tcpConnectFrom({ remoteIp: "127.0.0.1", remotePort: closed }),
      Deno.errors.ConnectionRefused,
    );
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await assertRejects(
      () =>
        tcpConnectFrom({
          remoteIp: "127.0.0.1",
          remotePort: l.addr.port,
          localPort: taken.addr.port,
        }),
      Deno.errors.AddrInUse,
    );
    await assertRejects(
      () =>
        tcpConnectFrom({
          remoteIp: "::1",
          remotePort: l.addr.port,
          localIp: "127.0.0.1",
        }),
      Error,
      "different address families",
    );
  },
);

Deno.test("udpPortState() tells a bound UDP port from a closed one", {
  ignore: !available,
}, async () => {
  using open = bindUdp({ hostname: "127.0.0.1" });
  assertEquals(await udpPortState("127.0.0.1", open.addr.port, 300), "open");
  assertEquals(await udpPortState("127.0.0.1", freePort(), 1000), "closed");
});

Deno.test(
  "UnixDatagramSocket sends and receives with sender paths, abstract names too, and removes its file",
  {
    ignore: !available,
  },
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      using a = new UnixDatagramSocket(`${dir}/a`);
      using b = new UnixDatagramSocket(`\0denocat-test-${crypto.randomUUID()}`);
      const buf = new Uint8Array(64);
      const got = b.receive(buf);
      await a.send(enc.encode("hello"), b.path);
      const d = await got;
      assertEquals(dec.decode(d!.data), "hello");
      assertEquals(d!.from, `${dir}/a`);
      await b.send(enc.encode("back"), d!.from);
      const r = await a.receive(new Uint8Array(64));
      assertEquals([dec.decode(r!.data), r!.from], ["back", b.path]);
      // A receive that waits ends with null once the socket closes.
      const waiting = a.receive(new Uint8Array(64));
      a.close();
      assertEquals(await waiting, null);
      await Deno.lstat(`${dir}/a`).then(
        () => assertOk(false, "socket file left behind"),
        (e) => assertOk(e instanceof Deno.errors.NotFound),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
