/**
 * Programs on connections (`-e` / `-c`): the connection as the child's stdin
 * and stdout with half-close both ways, ncat's environment variables, and
 * one child per UDP peer.
 */
import { assertEquals, assertOk, assertRejects } from "../../lib/_assert.ts";
import { execPerPeer } from "../../lib/exec/datagram.ts";
import { execOver } from "../../lib/exec/stream.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import {
  randomBytes,
  readAll,
  sha256,
  testOnlyOn,
  within,
} from "../_helpers.ts";

/** The tests run sh, cat and process groups: Unix only. */
const test = testOnlyOn(["linux", "darwin"], "sh, cat and process groups");

const enc = new TextEncoder(), dec = new TextDecoder();

/** A listener that runs `execOver` for its first client. */
function serveOnce(spec: Parameters<typeof execOver>[1], signal?: AbortSignal) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    try {
      const conn = await l.accept();
      return await execOver(conn, spec, signal ? { signal } : {});
    } finally {
      l.close();
    }
  })();
  return { port: l.addr.port, served };
}

test("execOver() cat: 8 MiB from the peer come back intact, then both sides close", async () => {
  const { port, served } = serveOnce({ argv: ["cat"] });
  const data = randomBytes(8 << 20);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reply = readAll(conn);
  for (let at = 0; at < data.length;) {
    at += await conn.write(data.subarray(at, at + (1 << 20)));
  }
  await conn.closeWrite();
  const got = await reply;
  conn.close();
  assertEquals(sha256(got), sha256(data));
  const r = await served;
  assertEquals([r.sent, r.received, r.code], [data.length, data.length, 0]);
});

test("execOver() -c: the child sees NCAT_* variables describing the connection", async () => {
  const { port, served } = serveOnce({
    shell:
      'echo "$NCAT_PROTO $NCAT_REMOTE_ADDR $NCAT_REMOTE_PORT $NCAT_LOCAL_ADDR $NCAT_LOCAL_PORT"',
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const text = dec.decode(await readAll(conn));
  conn.close();
  assertEquals(
    text,
    `TCP 127.0.0.1 ${
      (conn.localAddr as Deno.NetAddr).port
    } 127.0.0.1 ${port}\n`,
  );
  assertEquals((await served).code, 0);
});

test("execOver(): the child's exit closes the connection though the peer never half-closes", async () => {
  const { port, served } = serveOnce({ shell: "echo bye; exit 7" });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // No closeWrite: the peer keeps its side open; EOF must still come.
  const text = dec.decode(await readAll(conn));
  conn.close();
  assertEquals(text, "bye\n");
  assertEquals((await served).code, 7);
});

test("execOver(): a child that ignores its input still has all its output delivered", async () => {
  const { port, served } = serveOnce({ shell: "head -c 3000000 /dev/zero" });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(enc.encode("ignored"));
  const got = await readAll(conn);
  conn.close();
  assertEquals(got.length, 3000000);
  assertEquals((await served).sent, 3000000);
});

test("execOver(): a program that does not exist is an error, and the connection is not left open", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
  const server = await l.accept();
  await assertRejects(
    () => execOver(server, { argv: ["/nonexistent/denocat-test-program"] }),
    Deno.errors.NotFound,
  );
  server.close();
  assertEquals(await conn.read(new Uint8Array(1)), null);
  conn.close();
});

test("execOver(): an abort ends the child and the connection", async () => {
  const ac = new AbortController();
  const { port, served } = serveOnce({ shell: "sleep 30" }, ac.signal);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await new Promise((r) => setTimeout(r, 100));
  ac.abort();
  const r = await served;
  assertEquals(r.signal, "SIGTERM");
  assertEquals(await conn.read(new Uint8Array(1)), null);
  conn.close();
});

/** Reads /proc: Linux only. */
const linux = testOnlyOn(["linux"], "/proc");

linux(
  "execOver(): the program leads a session and group of its own; an abort ends what it started too",
  async () => {
    const ac = new AbortController();
    // The shell prints its pid, its background child's, and its own process
    // group and session (fields 5 and 6 of /proc/PID/stat), then waits.
    const { port, served } = serveOnce({
      shell: 'sleep 30 & echo "$$ $! $(cut -d" " -f5,6 /proc/$$/stat)"; wait',
    }, ac.signal);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const buf = new Uint8Array(256);
    let line = "";
    while (!line.includes("\n")) {
      const n = await within(conn.read(buf), "the child's first line", 10_000);
      assertOk(n !== null, `connection closed after ${JSON.stringify(line)}`);
      line += dec.decode(buf.subarray(0, n));
    }
    const [sh, bg, pgid, sid] = line.trim().split(" ").map(Number);
    assertEquals([pgid, sid], [sh, sh], line);
    ac.abort();
    const r = await within(served, "the aborted child", 10_000);
    assertEquals(r.signal, "SIGTERM");
    conn.close();
    // The background sleep got the signal too: gone, or a zombie waiting for
    // a reaper that is not ours.
    const deadline = Date.now() + 5000;
    for (;;) {
      let state = "gone";
      try {
        const stat = Deno.readTextFileSync(`/proc/${bg}/stat`);
        state = stat.slice(
          stat.lastIndexOf(")") + 2,
          stat.lastIndexOf(")") + 3,
        );
      } catch { /* gone */ }
      if (state === "gone" || state === "Z") break;
      assertOk(Date.now() < deadline, `sleep ${bg} still running (${state})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  },
);

test("execPerPeer(): each UDP peer gets its own child; replies go to that peer only; idle peers end", async () => {
  const server = bindUdp({ hostname: "127.0.0.1" });
  const lines: string[] = [];
  const ac = new AbortController();
  const run = execPerPeer(server, {
    shell: 'while read l; do echo "$NCAT_REMOTE_PORT:$l"; done',
  }, {
    idleTimeout: 300,
    signal: ac.signal,
    logger: { enabled: true, log: (l) => lines.push(l) },
  });
  const a = bindUdp({ hostname: "127.0.0.1" });
  const b = bindUdp({ hostname: "127.0.0.1" });
  try {
    await a.send(enc.encode("one\n"), server.addr);
    await b.send(enc.encode("two\n"), server.addr);
    await a.send(enc.encode("three\n"), server.addr);
    const ra = [dec.decode((await a.receive())!.data)];
    while (ra.join("").split("\n").length < 3) {
      ra.push(dec.decode((await a.receive())!.data));
    }
    const rb = dec.decode((await b.receive())!.data);
    assertEquals(ra.join(""), `${a.addr.port}:one\n${a.addr.port}:three\n`);
    assertEquals(rb, `${b.addr.port}:two\n`);
    // Both sessions end once idle: their children see EOF and exit.
    const deadline = Date.now() + 5000;
    while (lines.filter((l) => l.includes("child exited")).length < 2) {
      assertOk(Date.now() < deadline, lines.join("\n"));
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    ac.abort();
    a.close();
    b.close();
  }
  const r = await run;
  assertEquals(r.sessions, 2);
});

test("execPerPeer(): refused peers and peers over the session cap start no child", async () => {
  const server = bindUdp({ hostname: "127.0.0.1" });
  const a = bindUdp({ hostname: "127.0.0.1" });
  const refused = bindUdp({ hostname: "127.0.0.1" });
  const over = bindUdp({ hostname: "127.0.0.1" });
  const ac = new AbortController();
  const run = execPerPeer(server, { argv: ["cat"] }, {
    maxSessions: 1,
    accept: (from) => from.port !== refused.addr.port,
    signal: ac.signal,
  });
  const silentFor = (s: typeof a) =>
    Promise.race([
      s.receive().then(() => "reply"),
      new Promise((r) => setTimeout(() => r("none"), 300)),
    ]);
  try {
    await refused.send(enc.encode("r"), server.addr);
    assertEquals(await silentFor(refused), "none");
    await a.send(enc.encode("x"), server.addr);
    assertEquals(dec.decode((await a.receive())!.data), "x");
    await over.send(enc.encode("y"), server.addr);
    assertEquals(await silentFor(over), "none");
  } finally {
    ac.abort();
    a.close();
    refused.close();
    over.close();
  }
  const r = await run;
  assertEquals([r.sessions, r.dropped], [1, 2]);
});
