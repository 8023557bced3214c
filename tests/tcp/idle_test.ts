/**
 * `idleTimeout` on every server that serves many clients (echo, `-l -k`,
 * `-l --frame -k`, `recv -k`, `shell -l`), the shell's pending-handshake
 * limit, and the `--idle-timeout` flags.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { echoServer } from "../../lib/tcp/echo.ts";
import { framedListen } from "../../lib/framed/listen.ts";
import { IdleWatch } from "../../lib/idle.ts";
import { tcpListen } from "../../lib/tcp/listener.ts";
import { connectShell, shellServer } from "../../lib/shell/mod.ts";
import { receiveServer, sendItems } from "../../lib/transfer/mod.ts";
import { runCli, testOnlyOn } from "../_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "POSIX signals (SIGTERM), sh, Unix sockets and process groups",
);

const LOCAL = { hostname: "127.0.0.1" };
const enc = new TextEncoder();
const nothing = { read: () => new Promise<null>(() => {}) };
const discard = { write: (p: Uint8Array) => Promise.resolve(p.length) };

/** Reads until the peer closes; returns [bytes read, ms waited]. */
async function untilClosed(conn: Deno.Conn): Promise<[number, number]> {
  const t0 = performance.now();
  const buf = new Uint8Array(4096);
  let total = 0;
  try {
    let n: number | null;
    while ((n = await conn.read(buf)) !== null) total += n;
  } catch { /* reset counts as closed */ }
  return [total, performance.now() - t0];
}

Deno.test("IdleWatch reports each idle key once and stops its timer", async () => {
  const seen: number[] = [];
  using w = new IdleWatch<number>(80, (k) => seen.push(k));
  w.add(1);
  w.add(2);
  await new Promise((r) => setTimeout(r, 40));
  w.touch(2);
  await new Promise((r) => setTimeout(r, 160));
  assertEquals(seen, [1, 2]);
  assertEquals(w.size, 0);
});

Deno.test("echoServer() idleTimeout closes a silent client, not a talking one", async () => {
  await using server = echoServer({ ...LOCAL, port: 0 }, { idleTimeout: 200 });
  const port = (server.addr as Deno.NetAddr).port;
  using silent = await Deno.connect({ ...LOCAL, port });
  using talker = await Deno.connect({ ...LOCAL, port });
  const closed = untilClosed(silent);
  const buf = new Uint8Array(1);
  for (let i = 0; i < 8; i++) {
    await talker.write(enc.encode("x"));
    assertEquals(await talker.read(buf), 1);
    await new Promise((r) => setTimeout(r, 60));
  }
  const [, ms] = await closed;
  assertOk(ms >= 190 && ms < 450, `silent client closed after ${ms} ms`);
  assertEquals(server.active, 1);
});

Deno.test("tcpListen() keep: idleTimeout closes each silent client", async () => {
  const ac = new AbortController();
  const { promise: bound, resolve } = Promise.withResolvers<Deno.Addr>();
  const done = tcpListen({ ...LOCAL, port: 0 }, {
    keep: true,
    input: nothing,
    output: discard,
    idleTimeout: 150,
    signal: ac.signal,
    onListening: resolve,
  });
  const port = ((await bound) as Deno.NetAddr).port;
  using a = await Deno.connect({ ...LOCAL, port });
  using b = await Deno.connect({ ...LOCAL, port });
  const [[, ma], [, mb]] = await Promise.all([untilClosed(a), untilClosed(b)]);
  assertOk(ma < 400 && mb < 400, `closed after ${ma} / ${mb} ms`);
  ac.abort();
  assertEquals((await done).connections, 2);
});

Deno.test("framedListen() keep: an idle client is dropped with a timeout error", async () => {
  const ac = new AbortController();
  const errors: string[] = [];
  const { promise: bound, resolve } = Promise.withResolvers<Deno.Addr>();
  const done = framedListen({ ...LOCAL, port: 0 }, {
    format: "u32be",
    output: discard,
    keep: true,
    idleTimeout: 150,
    signal: ac.signal,
    onListening: resolve,
    onClientError: (err) => errors.push(String(err)),
  });
  const port = ((await bound) as Deno.NetAddr).port;
  using c = await Deno.connect({ ...LOCAL, port });
  await c.write(new Uint8Array([0, 0, 0, 9, 1])); // a frame started, then silence
  const [, ms] = await untilClosed(c);
  assertOk(ms < 400, `closed after ${ms} ms`);
  ac.abort();
  const r = await done;
  assertEquals(r.dropped, 1);
  assertEquals(errors.length, 1);
  assertOk(errors[0]!.includes("timed out: no data for 0.15 s"), errors[0]);
});

Deno.test("receiveServer() idleTimeout drops a stalled sender and its temp file, then serves the next", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await using server = receiveServer({ ...LOCAL, port: 0 }, {
      dir,
      keep: true,
      idleTimeout: 200,
    });
    // A stream item that sends 3 bytes and then stalls forever.
    let sent = false;
    const stall = {
      read(p: Uint8Array) {
        if (sent) return new Promise<null>(() => {});
        sent = true;
        p.set([1, 2, 3]);
        return Promise.resolve(3);
      },
    };
    const { promise: stop, resolve: stopped } = Promise.withResolvers<null>();
    const stalled = sendItems({ ...LOCAL, port: server.port }, [{
      kind: "stream",
      name: "stalled.bin",
      reader: {
        read: (p) => Promise.race([stall.read(p), stop]),
      },
    }]);
    await new Promise((r) => setTimeout(r, 500));
    assertEquals([...Deno.readDirSync(dir)], []); // temp file gone
    stopped(null);
    const r = await stalled;
    assertEquals(r.exitCode, 1);
    const ok = await sendItems({ ...LOCAL, port: server.port }, [{
      kind: "stream",
      name: "next.txt",
      reader: {
        read(p) {
          if (sent) {
            sent = false;
            p.set(enc.encode("hi"));
            return Promise.resolve(2);
          }
          return Promise.resolve(null);
        },
      },
    }]);
    assertEquals(ok.exitCode, 0);
    assertEquals(await Deno.readTextFile(`${dir}/next.txt`), "hi");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("shellServer() idleTimeout ends silent sessions, before and after authentication", async () => {
  await using server = shellServer({ port: 0 }, {
    token: "t",
    idleTimeout: 200,
  });
  const ep = { ...LOCAL, port: server.addr.port };
  using raw = await Deno.connect(ep); // never says hello
  const [, preMs] = await untilClosed(raw);
  assertOk(preMs < 600, `unauthenticated connection closed after ${preMs} ms`);
  await using session = await connectShell(ep, { token: "t" });
  // A running command is not idle: it outlives the idle timeout.
  assertEquals((await session.exec("sleep 0.4; exit 5")).code, 5);
  await new Promise((r) => setTimeout(r, 450));
  let err: unknown;
  try {
    await session.exec("true");
  } catch (e) {
    err = e;
  }
  assertOk(err instanceof Error, "the idle session was ended");
  assertEquals(server.active, 0);
});

test("shellServer(): idle unauthenticated connections cannot lock out a real client", async () => {
  await using server = shellServer({ port: 0 }, {
    token: "t",
    maxSessions: 2,
    maxPending: 4,
  });
  const ep = { ...LOCAL, port: server.addr.port };
  const idle = await Promise.all(
    Array.from({ length: 12 }, () => Deno.connect(ep)),
  );
  try {
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await using session = await connectShell(ep, { token: "t" });
    assertEquals((await session.exec("exit 3")).code, 3);
    assertOk(performance.now() - t0 < 1000, "served within a second");
  } finally {
    for (const c of idle) c.close();
  }
});

Deno.test("--idle-timeout: usage errors exit 2", async () => {
  const cases = [
    ["--idle-timeout", "1", "127.0.0.1", "9"],
    ["-u", "-l", "--idle-timeout", "1", "0"],
    ["echo", "-u", "--idle-timeout", "1", "0"],
    ["echo", "--idle-timeout", "soon", "0"],
    ["recv", "-o", "/tmp", "--idle-timeout", "-1", "0"],
  ];
  for (const args of cases) {
    const r = await runCli(args);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assertEquals(r.stderr.split("\n").length, 2, r.stderr); // one line
  }
});
