/**
 * The threaded pump (lib/native/pump.ts): hand-off, integrity both ways, stop,
 * reset, fallback, and the CLI paths that use it.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { fastCopy, type Pump, socketFd } from "../../lib/native/pump.ts";
import { libc } from "../../lib/native/libc.ts";
import { writeAll } from "../../lib/copy.ts";
import { pipeDuplex } from "../../lib/tcp/pipe.ts";
import {
  hasCommand,
  onlyOn,
  randomBytes,
  sha256,
  spawn,
  startCli,
  startPy,
  startServer,
} from "../_helpers.ts";

const MIB = 1 << 20;
// The library keeps one libc handle per thread for the process's life; open
// it before the tests so the resource sanitizer does not count it.
libc();
const linux = !onlyOn(["linux"], "the pump threads (FFI to libc)");

const c = linux
  ? Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
    read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    close: { parameters: ["i32"], result: "i32" },
    pipe: { parameters: ["buffer"], result: "i32" },
    fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
    poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  }).symbols
  : undefined;

const O_RDONLY = 0, O_WRONLY_CREAT_TRUNC = 0o1 | 0o100 | 0o1000;
const cstr = (s: string) => new TextEncoder().encode(s + "\0");

/**
 * A file opened with libc, as a Reader/Writer that carries its fd. Until
 * `started()`, each call first waits 50 ms: under `deno test` (which
 * type-checks the pump thread as it loads) and a loaded machine, a fast
 * copy could otherwise finish before the thread is up to take it over.
 */
function openFd(path: string, write: boolean, started = () => true) {
  const fd = c!.open(
    cstr(path),
    write ? O_WRONLY_CREAT_TRUNC : O_RDONLY,
    0o600,
  );
  assertOk(fd >= 0, `open ${path}`);
  const pace = async () => {
    if (!started()) await new Promise((r) => setTimeout(r, 50));
  };
  return {
    fd,
    async read(p: Uint8Array) {
      await pace();
      const n = Number(c!.read(fd, p, BigInt(p.length)));
      return n === 0 ? null : n;
    },
    async write(p: Uint8Array) {
      await pace();
      return Number(c!.write(fd, p, BigInt(p.length)));
    },
    [Symbol.dispose]() {
      c!.close(fd);
    },
  };
}

async function pair() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }),
    l.accept(),
  ]);
  l.close();
  return { client, server };
}

async function readAllConn(conn: Deno.Conn): Promise<Uint8Array> {
  return await new Response(conn.readable).bytes();
}

Deno.test("fdpump: socketFd finds each connection's own descriptor", {
  ignore: !linux,
}, async () => {
  const a = await pair();
  const b = await pair();
  const fds = [a.client, a.server, b.client, b.server].map((c) => socketFd(c));
  assertOk(fds.every((fd) => fd !== undefined && fd > 2), String(fds));
  assertEquals(new Set(fds).size, 4);
  for (const conn of [a.client, a.server, b.client, b.server]) conn.close();
});

Deno.test(
  "fdpump: 24 MiB socket -> file goes through the pump, byte for byte",
  {
    ignore: !linux,
  },
  async () => {
    const dir = await Deno.makeTempDir();
    const data = randomBytes(24 * MIB);
    const { client, server } = await pair();
    const sending = writeAll(client, data).then(() => client.close());
    const pumps: Pump[] = [];
    let chunked = 0;
    {
      using out = openFd(`${dir}/out`, true, () => pumps.length > 0);
      const n = await fastCopy(server, out, {
        conn: server,
        onPump: (p) => pumps.push(p),
        onChunk: (k) => chunked += k,
      });
      assertEquals(n, data.length);
    }
    await sending;
    server.close();
    assertEquals(pumps.length, 1);
    assertOk(
      pumps[0]!.moved() > 0 && pumps[0]!.moved() <= data.length - 4 * MIB,
    );
    assertEquals(chunked, data.length);
    assertEquals(sha256(await Deno.readFile(`${dir}/out`)), sha256(data));
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "fdpump: 24 MiB file -> socket goes through the pump, byte for byte",
  {
    ignore: !linux,
  },
  async () => {
    const dir = await Deno.makeTempDir();
    const data = randomBytes(24 * MIB);
    await Deno.writeFile(`${dir}/in`, data);
    const { client, server } = await pair();
    const receiving = readAllConn(server);
    const pumps: Pump[] = [];
    {
      using input = openFd(`${dir}/in`, false, () => pumps.length > 0);
      const n = await fastCopy(input, client, {
        conn: client,
        onPump: (p) => pumps.push(p),
      });
      assertEquals(n, data.length);
    }
    await client.closeWrite();
    const got = await receiving;
    client.close();
    assertEquals(pumps.length, 1);
    assertEquals(sha256(got), sha256(data));
    await Deno.remove(dir, { recursive: true });
  },
);

/**
 * Sends 1 MiB blocks until `started()` (the pump thread may take a while to
 * boot under `deno test`, which type-checks it), then `extra` more bytes;
 * resolves with the total sent.
 */
async function sendUntil(
  conn: Deno.Conn,
  started: () => boolean,
  extra: number,
): Promise<number> {
  const block = new Uint8Array(MIB);
  let sent = 0;
  for (; !started(); sent += MIB) await writeAll(conn, block);
  await writeAll(conn, new Uint8Array(extra));
  return sent + extra;
}

Deno.test(
  "fdpump: abort stops a pump waiting on a silent peer, which sees EOF",
  {
    ignore: !linux,
  },
  async () => {
    const dir = await Deno.makeTempDir();
    const { client, server } = await pair();
    let pump: Pump | undefined;
    const sending = sendUntil(client, () => pump !== undefined, 2 * MIB);
    const stop = new AbortController();
    let before = 0; // bytes counted through onChunk
    using out = openFd(`${dir}/out`, true);
    const copying = fastCopy(server, out, {
      conn: server,
      signal: stop.signal,
      onPump: (p) => pump = p,
      onChunk: (n) => before += n,
    });
    const sent = await sending;
    const handedOffAt = before; // the pump reports once, when it ends
    while (handedOffAt + pump!.moved() < sent) {
      await new Promise((r) => setTimeout(r, 10));
    }
    stop.abort();
    const err = await copying.then(() => undefined, (e) => e);
    assertOk(
      err instanceof DOMException && err.name === "AbortError",
      String(err),
    );
    // Every byte the pump moved before the stop is counted.
    assertEquals(before, sent);
    server.close();
    // The shutdown reached the peer as a FIN.
    assertEquals(await client.read(new Uint8Array(1)), null);
    client.close();
    await Deno.remove(dir, { recursive: true });
  },
);

/**
 * Streams 1 MiB blocks at about 20 MiB/s for `seconds` (long enough for the
 * pump to take over even while `deno test` type-checks the worker), then
 * closes with SO_LINGER 0: a reset and no FIN. (Deno's own close sends a FIN
 * first.)
 */
const PY_STREAM_THEN_RESET = (seconds: number) => `
import socket, struct, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
c, _ = s.accept(); block = b"x" * (1 << 20); end = time.time() + ${seconds}
while time.time() < end: c.sendall(block); time.sleep(0.05)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
`;

Deno.test("fdpump: a reset during the pump is ConnectionReset", {
  ignore: !linux || !hasCommand("python3"),
}, async () => {
  const dir = await Deno.makeTempDir();
  await using py = await startPy(PY_STREAM_THEN_RESET(2));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: py.port });
  let pump: Pump | undefined;
  let counted = 0, atHandoff = 0;
  using out = openFd(`${dir}/out`, true);
  let failure: unknown;
  try {
    await fastCopy(conn, out, {
      conn,
      onPump: (p) => {
        pump = p;
        atHandoff = counted;
      },
      onChunk: (n) => counted += n,
    });
  } catch (err) {
    failure = err;
  }
  conn.close();
  assertOk(pump !== undefined, "the pump took over");
  assertOk(failure instanceof Deno.errors.ConnectionReset, String(failure));
  // What the pump moved before the reset is counted all the same.
  assertOk(pump.moved() > 0);
  assertEquals(counted, atHandoff + pump.moved());
  assertEquals((await Deno.stat(`${dir}/out`)).size, counted);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fdpump: without a descriptor the plain loop does it all", async () => {
  const { client, server } = await pair();
  const data = randomBytes(6 * MIB);
  const sending = writeAll(client, data).then(() => client.close());
  let pumped = false;
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  const n = await fastCopy(server, {
    write(p) {
      chunks.push(p.slice());
      return Promise.resolve(p.length);
    },
  }, { conn: server, onPump: () => pumped = true });
  await sending;
  server.close();
  assertEquals(n, data.length);
  assertEquals(pumped, false);
  assertEquals(
    sha256(new Uint8Array(await new Blob(chunks).arrayBuffer())),
    sha256(data),
  );
});

Deno.test(
  "cli: a 40 MiB relay runs on pump threads both ways and arrives intact",
  {
    ignore: !linux,
  },
  async () => {
    const data = randomBytes(40 * MIB);
    await using server = await startServer(["-l", "127.0.0.1", "0"]);
    await using client = startCli(["-v", "127.0.0.1", String(server.port)], {
      keepStdin: true,
      timeout: 60000,
    });
    // 1 MiB every 10 ms: each side's pump thread has about 0.4 s to boot
    // and take over, even on a loaded machine.
    for (let off = 0; off < data.length; off += MIB) {
      await client.stdin!.write(data.subarray(off, off + MIB));
      await new Promise((r) => setTimeout(r, 10));
    }
    await client.stdin!.close();
    const [s, cl] = await Promise.all([server.output, client.output]);
    assertEquals([s.code, cl.code], [0, 0]);
    assertEquals(sha256(s.stdout), sha256(data));
    const pumpedBy = (text: string) =>
      Number(text.match(/; (\d+) bytes via pump threads/)?.[1] ?? 0);
    // Each side copies at least 4 MiB the ordinary way, then hands off.
    assertOk(pumpedBy(s.stderr) > 0, s.stderr);
    assertOk(pumpedBy(cl.stderr) > 0, cl.stderr);
    assertOk(pumpedBy(cl.stderr) <= data.length - 4 * MIB, cl.stderr);
  },
);

Deno.test("cli: -w idle timeout still fires while a pump waits", {
  ignore: !linux,
}, async () => {
  await using server = await startServer(["-w", "1", "-l", "127.0.0.1", "0"]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, new Uint8Array(16 * MIB));
  // Silent from here on; the listener must give up by itself.
  const out = await server.output;
  conn.close();
  // An idle end is a normal end (nc -w's rule): exit 0, `closed (idle)`.
  assertEquals(out.code, 0, out.stderr);
  assertOk(/closed \(idle\)/.test(out.stderr), out.stderr);
  assertEquals(out.stdout.length, 16 * MIB);
});

Deno.test("cli: -w idle timeout counts bytes the pump moves as activity", {
  ignore: !linux,
}, async () => {
  await using server = await startServer(["-w", "1", "-l", "127.0.0.1", "0"]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  // 8 MiB at once (the hand-off), then 1 MiB every 100 ms for 2.5 s: longer
  // than the idle limit in all, never idle for as long as it.
  await writeAll(conn, new Uint8Array(8 * MIB));
  const block = new Uint8Array(MIB);
  for (const end = Date.now() + 2500; Date.now() < end;) {
    await writeAll(conn, block);
    await new Promise((r) => setTimeout(r, 100));
  }
  conn.close();
  const out = await server.output;
  assertEquals(out.code, 0, out.stderr);
  assertOk(/; \d+ bytes via pump threads/.test(out.stderr), out.stderr);
});

Deno.test("cli: a reset while the pump receives is exit 1 with its one line", {
  ignore: !linux || !hasCommand("python3"),
}, async () => {
  await using py = await startPy(PY_STREAM_THEN_RESET(2));
  await using client = startCli(["-v", "127.0.0.1", String(py.port)], {
    timeout: 30000,
  });
  const out = await client.output;
  assertEquals(out.code, 1);
  assertOk(out.stdout.length > 4 * MIB, `${out.stdout.length} ${out.stderr}`);
  assertOk(
    out.stderr.endsWith(
      "denocat: cannot relay data: connection reset by peer\n",
    ),
    out.stderr,
  );
});

/** An OS pipe: [read end, write end]. */
function osPipe(): [number, number] {
  const fds = new Int32Array(2);
  assertEquals(c!.pipe(new Uint8Array(fds.buffer)), 0);
  return [fds[0]!, fds[1]!];
}

Deno.test(
  "fdpump: abort settles at once while the pump blocks reading a quiet pipe",
  {
    ignore: !linux,
  },
  async () => {
    const { client, server } = await pair();
    const draining = readAllConn(server);
    const [rd, wr] = osPipe();
    let pump: Pump | undefined;
    const block = new Uint8Array(64 * 1024);
    // The read end stays blocking, as stdin from a shell pipe is; until the
    // hand-off this (single) thread reads it only once poll(2) says so.
    const pfd = new Uint8Array(8);
    new DataView(pfd.buffer).setInt32(0, rd, true);
    new DataView(pfd.buffer).setInt16(4, 1, /* POLLIN */ true);
    const input = {
      fd: rd,
      async read(p: Uint8Array) {
        while (c!.poll(pfd, 1n, 0) === 0) {
          await new Promise((r) => setTimeout(r, 1));
        }
        const n = Number(c!.read(rd, p, BigInt(p.length)));
        return n === 0 ? null : n;
      },
    };
    const stop = new AbortController();
    const copying = fastCopy(input, client, {
      conn: client,
      signal: stop.signal,
      onPump: (p) => pump = p,
    });
    // Feed the pipe until the pump has it, then go quiet with the pipe open:
    // the thread sits in a blocking read(2) that no socket event can end.
    // (The write end is non-blocking: this thread also runs the copy loop
    // that drains the pipe until the hand-off.)
    c!.fcntl(wr, 4, /* F_SETFL */ 0o4000 /* O_NONBLOCK */);
    const feeder = (async () => {
      for (let i = 0; i < 2000 && pump === undefined; i++) {
        c!.write(wr, block, BigInt(block.length));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await feeder;
    assertOk(pump !== undefined, "the pump took over");
    const t0 = performance.now();
    stop.abort();
    const err = await copying.then(() => undefined, (e) => e);
    assertOk(
      err instanceof DOMException && err.name === "AbortError",
      String(err),
    );
    assertOk(performance.now() - t0 < 1000, "settled within a second");
    // Closing the write end ends the blocked read; the thread then exits.
    c!.close(wr);
    await draining; // (the readable stream closes `server` at its end)
    c!.close(rd);
    client.close();
  },
);

Deno.test("fdpump: both directions of one connection can be pumped at once", {
  ignore: !linux,
}, async () => {
  const dir = await Deno.makeTempDir();
  const data = randomBytes(24 * MIB);
  await Deno.writeFile(`${dir}/in`, data);
  const { client, server } = await pair();
  const pumps: string[] = [];
  // The far end echoes, so `client` both sends and receives in bulk.
  const echoing = (async () => {
    const buf = new Uint8Array(256 * 1024);
    let n: number | null;
    while ((n = await server.read(buf)) !== null) {
      await writeAll(server, buf.subarray(0, n));
    }
    server.close();
  })();
  const started = () => pumps.length === 2;
  {
    using input = openFd(`${dir}/in`, false, started);
    using out = openFd(`${dir}/out`, true, started);
    await Promise.all([
      fastCopy(input, client, { conn: client, onPump: () => pumps.push("up") })
        .then(() => client.closeWrite()),
      fastCopy(client, out, { conn: client, onPump: () => pumps.push("down") }),
    ]);
  }
  await echoing;
  client.close();
  assertEquals(pumps.sort(), ["down", "up"]);
  assertEquals(sha256(await Deno.readFile(`${dir}/out`)), sha256(data));
  await Deno.remove(dir, { recursive: true });
});

Deno.test(
  "fdpump: a copy that fails after the thread booted does not leave it running",
  {
    ignore: !linux,
  },
  async () => {
    // In a process of its own: a leaked worker would keep it from exiting.
    const script = `
    import { fastCopy } from ${
      JSON.stringify(new URL("../../lib/native/pump.ts", import.meta.url).href)
    };
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const [a, b] = await Promise.all([Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }), l.accept()]);
    l.close();
    const block = new Uint8Array(1 << 20);
    const feeding = (async () => { try { for (let i = 0; i < 8; i++) await a.write(block); } catch {} })();
    let written = 0;
    const dst = { fd: 2, write(p) { written += p.length; if (written > (2 << 20)) throw new Error("disk full"); return Promise.resolve(p.length); } };
    try { await fastCopy(b, dst, { conn: b }); } catch (e) { console.log("failed:", e.message); }
    a.close(); b.close(); await feeding;
  `;
    await using p = spawn(Deno.execPath(), ["eval", script], {
      timeout: 15000,
    });
    const out = await p.output;
    assertEquals(out.text, "failed: disk full\n");
    assertEquals(out.code, 0, out.stderr);
  },
);

Deno.test(
  "pipeDuplex: once our FIN is out and the download is pumped, Deno's descriptor is let go",
  {
    ignore: !linux,
  },
  async () => {
    const dir = await Deno.makeTempDir();
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const data = randomBytes(16 * MIB);
    const { promise: checked, resolve: onChecked } = Promise.withResolvers<
      void
    >();
    const peer = (async () => {
      const c = await l.accept();
      // 1 MiB at a time until the check, then the rest, then FIN.
      let off = 0;
      for (let waited = false; off < data.length; off += MIB) {
        await writeAll(c, data.subarray(off, off + MIB));
        if (off >= 8 * MIB && !waited) {
          waited = true;
          await checked;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      c.close();
    })();
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: l.addr.port,
    });
    const released = () => {
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
        return false;
      } catch {
        return true; // BadResource: Deno's side is closed
      }
    };
    using out = openFd(`${dir}/out`, true);
    const relay = pipeDuplex(conn, {
      input: { read: () => Promise.resolve(null) },
      output: out,
    });
    const until = Date.now() + 10_000;
    while (!released() && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const wasReleased = released();
    onChecked();
    const r = await relay;
    await peer;
    assertOk(wasReleased, "Deno's descriptor was closed while the pump ran");
    assertEquals(r.received, data.length);
    assertOk(r.pumped > 0);
    assertEquals(sha256(await Deno.readFile(`${dir}/out`)), sha256(data));
    await Deno.remove(dir, { recursive: true });
  },
);
