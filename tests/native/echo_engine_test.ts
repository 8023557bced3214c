/**
 * The echo server's two engines side by side: the epoll threads
 * (lib/native/_echo_worker.ts, Linux with FFI) and Deno's event loop. Every case
 * runs on each, so both keep the same behaviour and log lines.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { writeAll } from "../../lib/copy.ts";
import { type EchoOptions, echoServer } from "../../lib/tcp/echo.ts";
import type { Logger } from "../../lib/log.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import { udpEcho } from "../../lib/udp/echo.ts";
import {
  hasCommand,
  onlyOn,
  randomBytes,
  readAll,
  runCli,
  sha256,
  startPy,
  startServer,
  testOnlyOn,
} from "../_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "POSIX signals (SIGTERM), sh, Unix sockets and process groups",
);

const LOCAL = { hostname: "127.0.0.1", port: 0 };
const linux = !onlyOn(["linux"], "the epoll engine (FFI to libc)");

interface Variant {
  name: string;
  options: EchoOptions;
  expect: "epoll" | "deno";
}
const VARIANTS: Variant[] = [
  { name: "deno", options: { engine: "deno" }, expect: "deno" },
  ...(linux
    ? [
      { name: "epoll x1", options: { threads: 1 }, expect: "epoll" as const },
      { name: "epoll x3", options: { threads: 3 }, expect: "epoll" as const },
    ]
    : []),
];

function recorder(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { enabled: true, lines, log: (l) => void lines.push(l) };
}

async function waitFor(what: string, ok: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const v of VARIANTS) {
  Deno.test(`echo ${v.name}: 40 clients at once, each gets its own bytes; counters`, async () => {
    await using server = echoServer(LOCAL, v.options);
    assertEquals(await server.ready, v.expect);
    const port = (server.addr as Deno.NetAddr).port;
    const conns = await Promise.all(
      Array.from(
        { length: 40 },
        () => Deno.connect({ hostname: "127.0.0.1", port }),
      ),
    );
    await waitFor("40 open", () => server.active === 40);
    await Promise.all(conns.map(async (c, i) => {
      const data = randomBytes(20_000 + i);
      const [, back] = await Promise.all([
        writeAll(c, data).then(() => c.closeWrite()),
        readAll(c),
      ]);
      c.close();
      assertEquals(sha256(back), sha256(data));
    }));
    await waitFor("all closed", () => server.active === 0);
    assertEquals(server.served, 40);
  });

  Deno.test(`echo ${v.name}: a client that sends 8 MiB before reading any gets it all back`, async () => {
    await using server = echoServer(LOCAL, v.options);
    await server.ready;
    const c = await Deno.connect({
      hostname: "127.0.0.1",
      port: (server.addr as Deno.NetAddr).port,
    });
    const data = randomBytes(8 << 20);
    // Socket buffers fill both ways long before 8 MiB: the server must
    // hold what it cannot write and stop reading until the client reads.
    const sending = writeAll(c, data).then(() => c.closeWrite());
    await new Promise((r) => setTimeout(r, 300));
    const back = await readAll(c);
    await sending;
    c.close();
    assertEquals(back.length, data.length);
    assertEquals(sha256(back), sha256(data));
  });

  Deno.test(`echo ${v.name}: --upper, and the log lines of a connection`, async () => {
    const logger = recorder();
    await using server = echoServer(LOCAL, {
      ...v.options,
      upper: true,
      logger,
    });
    await server.ready;
    const c = await Deno.connect({
      hostname: "127.0.0.1",
      port: (server.addr as Deno.NetAddr).port,
    });
    const local = `127.0.0.1:${(c.localAddr as Deno.NetAddr).port}`;
    await writeAll(c, new TextEncoder().encode("hah é z"));
    await c.closeWrite();
    assertEquals(new TextDecoder().decode(await readAll(c)), "HAH é Z");
    c.close();
    await waitFor("closed line", () => logger.lines.length >= 2);
    assertEquals(logger.lines[0], `connection from ${local}`);
    assertOk(
      new RegExp(`^${local} closed after 8 bytes echoed in \\d+\\.\\d{3} s$`)
        .test(logger.lines[1]!),
      logger.lines[1],
    );
  });

  Deno.test(`echo ${v.name}: maxConns counts every connection, whichever thread took it`, async () => {
    const logger = recorder();
    await using server = echoServer(LOCAL, {
      ...v.options,
      maxConns: 3,
      logger,
    });
    await server.ready;
    const port = (server.addr as Deno.NetAddr).port;
    const served: Deno.Conn[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(new Uint8Array([i]));
      assertEquals(await c.read(new Uint8Array(1)), 1);
      served.push(c);
    }
    for (let i = 0; i < 4; i++) {
      const extra = await Deno.connect({ hostname: "127.0.0.1", port });
      // Refused: closed at once (a reset counts), not served.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const got = await Promise.race([
        extra.read(new Uint8Array(1)).catch(() => null),
        new Promise((r) =>
          timer = setTimeout(() => r("still open after 3 s"), 3000)
        ),
      ]);
      clearTimeout(timer);
      extra.close();
      assertEquals(got, null);
    }
    assertEquals(server.active, 3);
    // (An epoll thread's log lines travel by message: wait for them.)
    await waitFor(
      "4 refusals logged",
      () =>
        logger.lines.filter((l) =>
          l.endsWith("refused: 3 connections open (--max-conns)")
        ).length === 4,
    );
    for (const c of served) c.close();
  });

  Deno.test(`echo ${v.name}: idleTimeout closes the silent client only`, async () => {
    const logger = recorder();
    await using server = echoServer(LOCAL, {
      ...v.options,
      idleTimeout: 300,
      logger,
    });
    await server.ready;
    const port = (server.addr as Deno.NetAddr).port;
    // Before connecting: the server's idle clock starts later, at accept.
    const t0 = performance.now();
    const silent = await Deno.connect({ hostname: "127.0.0.1", port });
    const talker = await Deno.connect({ hostname: "127.0.0.1", port });
    const closed = readAll(silent).then(() => performance.now() - t0);
    for (let i = 0; i < 10; i++) {
      await talker.write(new Uint8Array([i]));
      assertEquals(await talker.read(new Uint8Array(1)), 1);
      await new Promise((r) => setTimeout(r, 60));
    }
    const ms = await closed;
    assertOk(ms >= 295 && ms < 900, `silent client closed after ${ms} ms`);
    assertEquals(server.active, 1);
    // Exactly these two lines about it, the same on both engines.
    const silentName = `127.0.0.1:${(silent.localAddr as Deno.NetAddr).port}`;
    await waitFor(
      "idle line",
      () => logger.lines.includes(`${silentName}: idle, closed`),
    );
    await new Promise((r) => setTimeout(r, 100));
    assertEquals(logger.lines.filter((l) => l.includes(silentName)), [
      `connection from ${silentName}`,
      `${silentName}: idle, closed`,
    ]);
    silent.close();
    talker.close();
  });

  Deno.test(`echo ${v.name}: close() ends open connections and resolves`, async () => {
    const server = echoServer(LOCAL, v.options);
    await server.ready;
    const port = (server.addr as Deno.NetAddr).port;
    const conns = await Promise.all(
      Array.from(
        { length: 5 },
        () => Deno.connect({ hostname: "127.0.0.1", port }),
      ),
    );
    for (const c of conns) {
      await c.write(new Uint8Array([1]));
      assertEquals(await c.read(new Uint8Array(1)), 1);
    }
    await server.close();
    assertEquals(server.active, 0);
    for (const c of conns) {
      let got: number | null = 0;
      try {
        got = await c.read(new Uint8Array(1));
      } catch {
        /* reset: closed too */
        got = null;
      }
      assertEquals(got, null);
      c.close();
    }
    // The port is free again.
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  });

  Deno.test({
    name: `echo ${v.name}: a reset is logged with the bytes echoed before it`,
    ignore: !hasCommand("python3"),
    async fn() {
      const logger = recorder();
      await using server = echoServer(LOCAL, { ...v.options, logger });
      await server.ready;
      const port = (server.addr as Deno.NetAddr).port;
      // Sends 5 bytes, reads them back, sends 3 more it never reads, and
      // closes with SO_LINGER 0: a reset, with no FIN first.
      await using _client = await startPy(`
import socket, struct, time
print(0, flush=True)
c = socket.create_connection(("127.0.0.1", ${port}))
c.sendall(b"hello"); got = b""
while len(got) < 5: got += c.recv(5)
c.sendall(b"abc"); time.sleep(0.2)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
`);
      await waitFor(
        "reset line",
        () => logger.lines.some((l) => l.includes("connection reset by peer")),
      );
      const line = logger.lines.find((l) => l.includes("reset"))!;
      assertOk(
        /^127\.0\.0\.1:\d+: connection reset by peer after 8 bytes$/.test(line),
        line,
      );
      await waitFor("closed", () => server.active === 0);
    },
  });
}

test("echo: a Unix socket server runs on the event loop", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/echo.sock`;
  await using server = echoServer({ path }, { threads: 2 });
  assertEquals(await server.ready, "deno");
  const c = await Deno.connect({ path, transport: "unix" });
  await c.write(new Uint8Array([7]));
  assertEquals(await c.read(new Uint8Array(1)), 1);
  c.close();
  await server.close();
  await Deno.remove(dir, { recursive: true });
});

test("cli: denocat echo --threads 2 says how it serves, echoes, and counts on SIGTERM", async () => {
  await using server = await startServer([
    "echo",
    "--threads",
    "2",
    "127.0.0.1",
    "0",
  ]);
  const conns = await Promise.all(
    Array.from(
      { length: 6 },
      () => Deno.connect({ hostname: "127.0.0.1", port: server.port }),
    ),
  );
  for (const [i, c] of conns.entries()) {
    await writeAll(c, new TextEncoder().encode(`msg ${i}`));
    const buf = new Uint8Array(16);
    const n = await c.read(buf);
    assertEquals(new TextDecoder().decode(buf.subarray(0, n!)), `msg ${i}`);
  }
  server.kill("SIGTERM");
  for (const c of conns) {
    assertEquals(await c.read(new Uint8Array(1)).catch(() => null), null);
    c.close();
  }
  const out = await server.output;
  assertEquals(out.code, 0);
  assertOk(
    out.stderr.includes(
      linux ? "serving on 2 epoll threads" : "serving on the event loop",
    ),
    out.stderr,
  );
  assertOk(out.stderr.includes("shutting down: 6 open, 6 served"), out.stderr);
});

Deno.test("cli: denocat echo --threads: bad values and -u are usage errors (exit 2)", async () => {
  for (
    const [args, message] of [
      [["--threads", "0", "7"], "--threads"],
      [["--threads", "x", "7"], "--threads"],
      [["--threads", "65", "7"], "invalid --threads value: 65 (at most 64)"],
      [["-u", "--threads", "2", "7"], "--threads does not apply to -u"],
    ] as const
  ) {
    const r = await runCli(["echo", ...args]);
    assertEquals(r.code, 2, r.stderr);
    assertOk(r.stderr.includes(message), r.stderr);
  }
});

// UDP echo: the thread engine (Linux, FFI) and the event loop.

const UDP_VARIANTS = [
  { name: "deno", options: { engine: "deno" as const }, expect: "deno" },
  ...(linux ? [{ name: "thread", options: {}, expect: "thread" }] : []),
];

for (const v of UDP_VARIANTS) {
  Deno.test(`udp echo ${v.name}: many senders, --upper, the datagram log, the count`, async () => {
    const logger = recorder();
    const server = udpEcho({
      hostname: "127.0.0.1",
      upper: true,
      logDatagrams: true,
      logger,
      ...v.options,
    });
    assertEquals(await server.ready, v.expect);
    const senders = Array.from(
      { length: 5 },
      () => bindUdp({ hostname: "127.0.0.1" }),
    );
    for (const [i, s] of senders.entries()) {
      for (let k = 0; k < 20; k++) {
        await s.send(new TextEncoder().encode(`hi ${i}.${k} é`), server.addr);
        const reply = await s.receive();
        assertEquals(new TextDecoder().decode(reply!.data), `HI ${i}.${k} é`);
        assertEquals(reply!.from.port, server.addr.port);
      }
    }
    // A 60 000-byte datagram comes back whole.
    const big = randomBytes(60_000);
    await senders[0]!.send(big, server.addr);
    const back = await senders[0]!.receive();
    assertEquals(back!.data.length, big.length);
    // (The thread counts a datagram just after sending it back.)
    await waitFor("101 echoed", () => server.echoed === 101);
    const port = senders[1]!.addr.port;
    assertOk(
      logger.lines.includes(
        `${"hi 1.0 é".length + 1} bytes from 127.0.0.1:${port}`,
      ),
      logger.lines.slice(0, 3).join("\n"),
    );
    await server.close();
    for (const s of senders) s.close();
    // The port is free again once closed.
    Deno.listenDatagram({
      transport: "udp",
      hostname: "127.0.0.1",
      port: server.addr.port,
    }).close();
  });
}

Deno.test(
  "udp echo thread: a logger that cannot keep up holds the thread back (bounded log backlog)",
  {
    ignore: !linux || !hasCommand("python3"),
  },
  async () => {
    const lines: string[] = [];
    const server = udpEcho({
      hostname: "127.0.0.1",
      logDatagrams: true,
      logger: { enabled: true, log: (l) => void lines.push(l) },
    });
    assertEquals(await server.ready, "thread");
    // A sender in another process floods while this thread (which writes the
    // log lines) is busy and cannot take any.
    await using _sender = await startPy(`
import socket, time
print(0, flush=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
end = time.time() + 1.5
while time.time() < end:
    for _ in range(50): s.sendto(b"x" * 16, ("127.0.0.1", ${server.addr.port}))
    time.sleep(0.002)
`);
    const busyUntil = performance.now() + 1000;
    while (performance.now() < busyUntil) {
      /* a main thread that cannot log */
    }
    const echoedWhileBusy = server.echoed;
    await server.close();
    assertOk(
      echoedWhileBusy > 0,
      "the thread echoed while the main thread was busy",
    );
    assertOk(
      echoedWhileBusy <= 300,
      `${echoedWhileBusy} echoed with no log line written`,
    );
  },
);
