/**
 * The native fast paths attach only to a socket proved to be theirs
 * (lib/native/identity.ts, lib/native/listener.ts), as a hostile peer or a
 * busy process would test them: every case checks by sha256 that each byte
 * reached the right peer, or that the fast path was declined.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { libc } from "../../lib/native/libc.ts";
import {
  claimSocket,
  findSocket,
  identityOf,
} from "../../lib/native/identity.ts";
import { fastCopy, type Pump, socketFd } from "../../lib/native/pump.ts";
import { pipeDuplex } from "../../lib/tcp/pipe.ts";
import { echoServer } from "../../lib/tcp/echo.ts";
import { udpEcho } from "../../lib/udp/echo.ts";
import { writeAll } from "../../lib/copy.ts";
import type { Logger } from "../../lib/log.ts";
import { needs, randomBytes, readAll, sha256, within } from "../_helpers.ts";
import {
  fileWriter,
  paced,
  payloadDir,
  raiseFdLimit,
  samePortClients,
  socketsOf,
} from "./_same_port.ts";

const MIB = 1 << 20;
// The library keeps one libc handle per thread for the process's life; open
// it before the tests so the resource sanitizer does not count it.
const c = libc();
const linux = Deno.build.os === "linux";
const empty = { read: () => Promise.resolve(null) };

function recorder(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { enabled: true, lines, log: (l) => void lines.push(l) };
}

/** A UDP socket that `using` closes (Deno.DatagramConn is not Disposable). */
function datagram(hostname: string, port = 0, reuseAddress = false) {
  const conn = Deno.listenDatagram({
    transport: "udp",
    hostname,
    port,
    reuseAddress,
  });
  return Object.assign(conn, { [Symbol.dispose]: () => conn.close() });
}

async function sameFile(path: string, data: Uint8Array): Promise<boolean> {
  return sha256(await Deno.readFile(path)) === sha256(data);
}

Deno.test(
  "identity: findSocket tells a connection from one that shares its ports",
  {
    ignore: !linux || needs("python3"),
  },
  async () => {
    await using dir = await payloadDir(new Uint8Array(1), new Uint8Array(1));
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await using py = await samePortClients(
      "127.0.0.1",
      l.addr.port,
      `${dir.path}/a`,
      `${dir.path}/b`,
    );
    await py.run("connect a");
    using a = await l.accept();
    await py.run("connect b");
    using b = await l.accept();
    assertEquals(a.remoteAddr.port, b.remoteAddr.port);
    const fa = findSocket(c!, identityOf(a)!);
    const fb = findSocket(c!, identityOf(b)!);
    assertOk("fd" in fa && "fd" in fb && fa.fd !== fb.fd, `${fa} ${fb}`);
    // A reset takes a's peer away: nothing is a's any more, b is not taken.
    await py.run("reset a");
    const after = findSocket(c!, identityOf(a)!);
    assertOk("declined" in after, JSON.stringify(after));
    assertOk(/no socket matches/.test(after.declined), after.declined);
    const dup = claimSocket(c!, identityOf(b)!);
    assertOk("fd" in dup, JSON.stringify(dup));
    // The duplicate is close-on-exec (and numbered 3 or above).
    const flags = Deno.readTextFileSync(`/proc/self/fdinfo/${dup.fd}`);
    assertOk(
      (parseInt(/^flags:\s*([0-7]+)/m.exec(flags)![1]!, 8) & 0o2000000) !== 0,
    );
    assertOk(dup.fd >= 3);
    c!.close(dup.fd);
  },
);

Deno.test(
  "identity: IPv6 and IPv4-mapped connections of a dual-stack listener are found",
  {
    ignore: !linux,
  },
  async () => {
    using l = Deno.listen({ hostname: "::", port: 0 });
    for (const hostname of ["127.0.0.1", "::1"]) {
      using client = await Deno.connect({ hostname, port: l.addr.port });
      using server = await l.accept();
      if (hostname === "127.0.0.1") {
        assertEquals(
          (server.localAddr as Deno.NetAddr).hostname,
          "::ffff:127.0.0.1",
        );
      }
      const s = findSocket(c!, identityOf(server)!);
      const k = findSocket(c!, identityOf(client)!);
      assertOk("fd" in s && "fd" in k && s.fd !== k.fd, `${hostname}`);
    }
    const found = findSocket(c!, identityOf(l)!);
    assertOk("fd" in found);
  },
);

Deno.test(
  "identity: two UDP sockets bound to one address and port are declined",
  {
    ignore: !linux,
  },
  () => {
    using a = datagram("127.0.0.1", 0, true);
    const port = (a.addr as Deno.NetAddr).port;
    const id = identityOf(a)!;
    const one = claimSocket(c!, id);
    assertOk("fd" in one, JSON.stringify(one));
    c!.close(one.fd);
    using b = datagram("127.0.0.1", port, true);
    assertEquals(identityOf(b), id);
    const two = claimSocket(c!, id);
    assertOk("declined" in two && /several sockets/.test(two.declined));
  },
);

Deno.test(
  "pipeDuplex: a client reset at the hand-off does not get the bytes of another with its ports",
  { ignore: !linux || needs("python3") },
  async () => {
    // a from 127.0.0.2:S and b from 127.0.0.3:S: the server's two sockets
    // share local port and remote port. a resets just as its download is
    // handed to the pump; b is mid-transfer.
    const A = randomBytes(5 * MIB), B = randomBytes(8 * MIB);
    await using dir = await payloadDir(A, B);
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await using py = await samePortClients(
      "127.0.0.1",
      l.addr.port,
      `${dir.path}/a`,
      `${dir.path}/b`,
    );
    await py.run("connect a");
    const a = await l.accept();
    await py.run("connect b");
    const b = await l.accept();
    assertEquals(a.remoteAddr.port, b.remoteAddr.port);
    assertEquals(a.localAddr.port, b.localAddr.port);

    // a's output holds the write of the chunk that reaches 4 MiB (the
    // copy loop has decided on the hand-off by then) until a is reset.
    const atHandoff = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    let slept = false;
    using outA = fileWriter(`${dir.path}/outA`, async (total, n) => {
      if (!slept && total >= MIB) {
        // The pump thread is created at 1 MiB: time for it to boot, even
        // on a loaded machine.
        slept = true;
        await new Promise((r) => setTimeout(r, 3000));
      }
      if (total + n >= 4 * MIB) {
        atHandoff.resolve();
        await gate.promise;
        // Should the thread still be booting, the loop reads on (the reset
        // leaves what was queued readable): slow enough to reach it.
        await new Promise((r) => setTimeout(r, 300));
      }
    });
    using outB = fileWriter(`${dir.path}/outB`, paced);
    const logA = recorder();
    const relayA = pipeDuplex(a, { input: empty, output: outA, logger: logA })
      .then(() => undefined, (e) => e as Error);
    const relayB = pipeDuplex(b, { input: empty, output: outB });

    await py.run(`send b ${2 * MIB}`);
    await py.run(`send a ${A.length}`);
    await atHandoff.promise;
    await py.run("reset a");
    gate.resolve();
    const failure = await within(relayA, "a's relay to end");
    await py.run("finish b");
    const rb = await within(relayB, "b's relay to end");

    // a: an error, a prefix of a's own bytes, and the pump declined once.
    assertOk(failure !== undefined, "a's relay failed");
    assertOk(/connection reset/.test(failure.message), failure.message);
    const gotA = await Deno.readFile(`${dir.path}/outA`);
    assertOk(gotA.length >= 4 * MIB - 256 * 1024 && gotA.length <= A.length);
    assertEquals(sha256(gotA), sha256(A.subarray(0, gotA.length)));
    assertEquals(
      logA.lines.filter((s) => s.startsWith("pump threads not used")),
      [
        "pump threads not used: no socket matches the connection (the peer may have reset it); Deno's loop goes on",
      ],
    );
    // b: every byte, in its own sink, the bulk of it pumped.
    assertEquals(rb.received, B.length);
    assertOk(rb.pumped > 0, "b's download was pumped");
    assertOk(await sameFile(`${dir.path}/outB`, B), "b's bytes intact");
  },
);

Deno.test(
  "pipeDuplex: with 4,200 descriptors open, a connection above them is pumped, not its twin below",
  { ignore: !linux || needs("python3") },
  async () => {
    raiseFdLimit(4600);
    const A = randomBytes(8 * MIB), B = randomBytes(16 * MIB);
    await using dir = await payloadDir(A, B);
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    await using py = await samePortClients(
      "127.0.0.1",
      l.addr.port,
      `${dir.path}/a`,
      `${dir.path}/b`,
    );
    await py.run("connect a");
    const a = await l.accept();
    const filler: Deno.FsFile[] = [];
    try {
      for (let i = 0; i < 4200; i++) filler.push(Deno.openSync("/dev/null"));
      await py.run("connect b");
      const b = await l.accept();
      const fdA = socketFd(a), fdB = socketFd(b);
      assertOk(fdA !== undefined && fdA < 4096, `a at ${fdA}`);
      assertOk(fdB !== undefined && fdB > 4200, `b at ${fdB}`);
      using outA = fileWriter(`${dir.path}/outA`, paced);
      using outB = fileWriter(`${dir.path}/outB`, paced);
      const relayA = pipeDuplex(a, { input: empty, output: outA });
      const relayB = pipeDuplex(b, { input: empty, output: outB });
      await py.run(`send a ${2 * MIB}`); // a stays open, mid-transfer
      await py.run("finish b");
      const rb = await within(relayB, "b's relay to end");
      await py.run("finish a");
      const ra = await within(relayA, "a's relay to end");
      assertEquals([ra.received, rb.received], [A.length, B.length]);
      assertOk(rb.pumped > 0, "b (above 4096) was found and pumped");
      assertOk(await sameFile(`${dir.path}/outA`, A), "a's bytes intact");
      assertOk(await sameFile(`${dir.path}/outB`, B), "b's bytes intact");
    } finally {
      for (const f of filler) f.close();
    }
  },
);

/** A service on `hostname:port` that answers each client "other <sha256 of what it sent>". */
function otherService(listener: Deno.Listener) {
  let served = 0;
  const loop = (async () => {
    const handlers: Promise<void>[] = [];
    for await (const conn of listener) {
      served++;
      handlers.push((async () => {
        const got = await readAll(conn);
        await writeAll(conn, new TextEncoder().encode(`other ${sha256(got)}`));
        conn.close();
      })());
    }
    await Promise.all(handlers);
  })();
  return { served: () => served, loop };
}

async function exchange(hostname: string, port: number, data: Uint8Array) {
  const conn = await Deno.connect({ hostname, port });
  const [, back] = await Promise.all([
    writeAll(conn, data).then(() => conn.closeWrite()),
    readAll(conn),
  ]);
  conn.close();
  return back;
}

for (const order of ["before", "after"] as const) {
  Deno.test(
    `echoServer: a same-port listener on 127.0.0.2 opened ${order} it keeps its own clients`,
    { ignore: !linux },
    async () => {
      let other: Deno.Listener | undefined;
      let port = 0;
      if (order === "before") {
        const first = Deno.listen({ hostname: "127.0.0.2", port: 0 });
        port = first.addr.port;
        other = first;
      }
      const server = echoServer(
        { hostname: "127.0.0.1", port },
        { threads: 2 },
      );
      port = (server.addr as Deno.NetAddr).port;
      other ??= Deno.listen({ hostname: "127.0.0.2", port });
      const service = otherService(other);
      try {
        assertEquals(await server.ready, "epoll");
        for (let i = 0; i < 4; i++) {
          const mine = randomBytes(100_000 + i);
          const theirs = randomBytes(50_000 + i);
          const [echoed, answered] = await Promise.all([
            exchange("127.0.0.1", port, mine),
            exchange("127.0.0.2", port, theirs),
          ]);
          assertEquals(sha256(echoed), sha256(mine));
          assertEquals(
            new TextDecoder().decode(answered),
            `other ${sha256(theirs)}`,
          );
        }
        assertEquals(server.served, 4);
        assertEquals(service.served(), 4);
      } finally {
        await server.close();
        other.close();
        await service.loop;
      }
    },
  );
}

Deno.test(
  "echoServer: a host name is bound by Deno and its listener claimed by identity",
  { ignore: !linux },
  async () => {
    const logger = recorder();
    await using server = echoServer(
      { hostname: "localhost", port: 0 },
      { logger },
    );
    const { hostname, port } = server.addr as Deno.NetAddr;
    using other = Deno.listen({
      hostname: hostname === "127.0.0.1" ? "127.0.0.2" : "127.0.0.1",
      port,
    });
    assertEquals(await server.ready, "epoll", logger.lines.join("\n"));
    const data = randomBytes(70_000);
    assertEquals(sha256(await exchange(hostname, port, data)), sha256(data));
    assertEquals(server.served, 1);
    other.close();
  },
);

Deno.test(
  "echoServer: the engine's own socket reports bind errors as Deno.listen does",
  {
    ignore: !linux,
  },
  () => {
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let err: unknown;
    try {
      echoServer({ hostname: "127.0.0.1", port: taken.addr.port });
    } catch (e) {
      err = e;
    }
    assertEquals(
      (err as Error).message,
      `cannot listen on 127.0.0.1:${taken.addr.port}: address already in use`,
    );
    assertOk((err as Error).cause instanceof Deno.errors.AddrInUse);
  },
);

Deno.test(
  "udpEcho: a same-port UDP socket on 127.0.0.2 keeps its own datagrams",
  { ignore: !linux },
  async () => {
    using other = datagram("127.0.0.2");
    const port = (other.addr as Deno.NetAddr).port;
    await using server = udpEcho({ hostname: "127.0.0.1", port });
    assertEquals(await server.ready, "thread");
    using client = datagram("127.0.0.1");
    const buf = new Uint8Array(2048);
    for (let i = 0; i < 5; i++) {
      const mine = randomBytes(600 + i), theirs = randomBytes(300 + i);
      await client.send(mine, {
        transport: "udp",
        hostname: "127.0.0.1",
        port,
      });
      const [back] = await client.receive(buf);
      assertEquals(sha256(back), sha256(mine));
      await client.send(theirs, {
        transport: "udp",
        hostname: "127.0.0.2",
        port,
      });
      const [got] = await other.receive(buf);
      assertEquals(sha256(got), sha256(theirs));
    }
    // (The thread counts a datagram just after sending it back.)
    for (let i = 0; i < 100 && server.echoed < 5; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(server.echoed, 5);
  },
);

Deno.test(
  "fdpump: a child spawned during a pump holds no socket descriptor",
  { ignore: !linux },
  async () => {
    const dir = await Deno.makeTempDir();
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const [client, server] = await Promise.all([
      Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }),
      l.accept(),
    ]);
    const pumping = Promise.withResolvers<Pump>();
    const block = new Uint8Array(MIB);
    let stop = false;
    const sending = (async () => {
      while (!stop) await writeAll(client, block);
      client.close();
    })();
    using out = fileWriter(`${dir}/out`, paced);
    const copying = fastCopy(server, out, {
      conn: server,
      onPump: (p) => pumping.resolve(p),
    });
    await pumping.promise;
    // The pump's duplicate is open now; a child started now must not get it.
    const child = new Deno.Command("sleep", {
      args: ["5"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      assertOk(socketsOf("self").length > 0);
      assertEquals(socketsOf(child.pid), []);
    } finally {
      child.kill("SIGKILL");
      await child.status;
      stop = true;
      await sending;
      await copying;
      server.close();
    }
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "echo engines: a child spawned while they serve holds no socket descriptor",
  { ignore: !linux },
  async () => {
    await using tcp = echoServer({ hostname: "127.0.0.1", port: 0 });
    await using udp = udpEcho({ hostname: "127.0.0.1" });
    assertEquals(await tcp.ready, "epoll");
    assertEquals(await udp.ready, "thread");
    using conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: (tcp.addr as Deno.NetAddr).port,
    });
    await writeAll(conn, new Uint8Array([1, 2, 3]));
    await conn.read(new Uint8Array(3)); // an accepted connection exists now
    const child = new Deno.Command("sleep", {
      args: ["5"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      assertEquals(socketsOf(child.pid), []);
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
  },
);

/** Opens listeners until one gets descriptor `fd` (the lowest free number). */
function takeNumber(fd: number): { held: Deno.Listener; all: Deno.Listener[] } {
  const all: Deno.Listener[] = [];
  for (let i = 0; i < 64; i++) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    all.push(l);
    const found = findSocket(c!, identityOf(l)!);
    if ("fd" in found && found.fd === fd) return { held: l, all };
  }
  for (const l of all) l.close();
  throw new Error(`descriptor ${fd} was not reused`);
}

async function stillServes(l: Deno.Listener): Promise<void> {
  const data = randomBytes(10_000);
  const serving = (async () => {
    const conn = await l.accept();
    await writeAll(conn, await readAll(conn));
    conn.close();
  })();
  const back = await exchange("127.0.0.1", (l.addr as Deno.NetAddr).port, data);
  await serving;
  assertEquals(sha256(back), sha256(data));
}

Deno.test(
  "pipeDuplex: the early close of Deno's descriptor never touches the socket that reuses its number",
  { ignore: !linux },
  async () => {
    const dir = await Deno.makeTempDir();
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const data = randomBytes(16 * MIB);
    const released = Promise.withResolvers<void>();
    const peer = (async () => {
      const conn = await l.accept();
      let off = 0;
      for (; off < 8 * MIB; off += MIB) {
        await writeAll(conn, data.subarray(off, off + MIB));
        await new Promise((r) => setTimeout(r, 5));
      }
      await released.promise; // the rest once the number is someone else's
      await writeAll(conn, data.subarray(off));
      conn.close();
    })();
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: l.addr.port,
    });
    const denoFd = socketFd(conn)!;
    const denoLink = Deno.readLinkSync(`/proc/self/fd/${denoFd}`);
    using out = fileWriter(`${dir}/out`, paced);
    const relay = pipeDuplex(conn, { input: empty, output: out });
    // Once our FIN is out and the download is pumped, pipeDuplex closes
    // Deno's descriptor: its number is free for the next socket.
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      const link = (() => {
        try {
          return Deno.readLinkSync(`/proc/self/fd/${denoFd}`);
        } catch {
          return "";
        }
      })();
      if (link !== denoLink) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const { held, all } = takeNumber(denoFd);
    released.resolve();
    try {
      const r = await relay; // closes `conn` again and stops its pumps
      await peer;
      assertOk(r.pumped > 0);
      assertOk(await sameFile(`${dir}/out`, data), "the relay's bytes intact");
      await stillServes(held);
    } finally {
      for (const x of all) x.close();
    }
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "udpEcho: the early close of Deno's descriptor never touches the socket that reuses its number",
  { ignore: !linux },
  async () => {
    const server = udpEcho({ hostname: "127.0.0.1" });
    const id = { kind: "datagram" as const, local: server.addr };
    const found = findSocket(c!, id);
    assertOk("fd" in found);
    assertEquals(await server.ready, "thread");
    // Deno's descriptor is closed now; the thread echoes on its duplicate.
    const { held, all } = takeNumber(found.fd);
    try {
      using client = datagram("127.0.0.1");
      const msg = randomBytes(500);
      await client.send(msg, server.addr);
      assertEquals(sha256((await client.receive())[0]), sha256(msg));
      await server.close(); // closes Deno's socket again, and the duplicate
      await stillServes(held);
    } finally {
      for (const x of all) x.close();
    }
  },
);
