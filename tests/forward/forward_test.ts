/**
 * The forwarding library driven directly: relay() edge cases, forwardTcp
 * shutdown, and forwardUdp's access list, session limit and refusal of
 * datagrams that do not come from the target.
 */
import { relay } from "../../lib/forward/relay.ts";
import { forwardTcp } from "../../lib/forward/tcp.ts";
import { forwardUdp } from "../../lib/forward/udp.ts";
import { buildAccessList } from "../../lib/access/list.ts";
import { udpEcho } from "../../lib/udp/echo.ts";
import type { Logger } from "../../lib/log.ts";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { readAll, within } from "../_helpers.ts";

import { socketCopy } from "../../lib/native/pump.ts";
import { libc } from "../../lib/native/libc.ts";
import { randomBytes, sha256 } from "../_helpers.ts";

// The library keeps one libc handle for the process's life; open it before
// the tests so the resource sanitizer does not count it.
libc();
const linux = Deno.build.os === "linux";

const enc = new TextEncoder();
const dec = new TextDecoder();
const LOOP = "127.0.0.1";

function recorder(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { enabled: true, lines, log: (m) => void lines.push(m) };
}

async function pair(l: Deno.TcpListener) {
  const c = await Deno.connect({ hostname: LOOP, port: l.addr.port });
  return [c, await l.accept()] as const;
}

Deno.test("relay() closes both sides when one resets, and reports the error", async () => {
  using l = Deno.listen({ hostname: LOOP, port: 0 });
  const [c1, s1] = await pair(l);
  const [c2, s2] = await pair(l);
  const joined = relay(s1, s2);
  await c1.write(enc.encode("abc"));
  const buf = new Uint8Array(8);
  assertEquals(await c2.read(buf), 3);
  // Reset from the c2 side: SO_LINGER 0 is not reachable from Deno, so
  // write into a socket whose peer has closed; the kernel answers RST.
  c2.close();
  for (let i = 0; i < 50; i++) {
    const ok = await c1.write(new Uint8Array(65536)).then(
      () => true,
      () => false,
    );
    if (!ok) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const r = await joined;
  assertOk(r.aToB >= 3);
  assertOk(r.error !== undefined, "the error is reported");
  // c1's side was closed too.
  let end: number | null = 0;
  try {
    while ((end = await c1.read(buf)) !== null);
  } catch {
    end = null;
  }
  assertEquals(end, null);
  c1.close();
});

Deno.test("relay() passes FIN each way separately and counts both directions", async () => {
  using l = Deno.listen({ hostname: LOOP, port: 0 });
  const [c1, s1] = await pair(l);
  const [c2, s2] = await pair(l);
  const joined = relay(s1, s2);
  await c2.write(enc.encode("first"));
  await c2.closeWrite();
  assertEquals(dec.decode(await readAll(c1)), "first"); // FIN from c2 reached c1
  await c1.write(enc.encode("reply after FIN"));
  await c1.closeWrite();
  assertEquals(dec.decode(await readAll(c2)), "reply after FIN");
  const r = await joined;
  assertEquals([r.aToB, r.bToA, r.pumped, r.error], [15, 5, 0, undefined]);
  c1.close();
  c2.close();
});

Deno.test("forwardTcp().close() ends open forwarded connections and stops listening", async () => {
  using target = Deno.listen({ hostname: LOOP, port: 0 });
  const fwd = forwardTcp({
    listen: { hostname: LOOP, port: 0 },
    target: { hostname: LOOP, port: target.addr.port },
  });
  const c = await Deno.connect({
    hostname: LOOP,
    port: (fwd.addr as Deno.NetAddr).port,
  });
  const t = await target.accept();
  await c.write(enc.encode("x"));
  assertEquals(await t.read(new Uint8Array(4)), 1);
  assertEquals(fwd.active, 1);
  await fwd.close();
  assertEquals(fwd.active, 0);
  assertEquals(await c.read(new Uint8Array(4)).catch(() => null), null);
  assertEquals(await t.read(new Uint8Array(4)).catch(() => null), null);
  c.close();
  t.close();
  let refused = false;
  await Deno.connect({ hostname: LOOP, port: (fwd.addr as Deno.NetAddr).port })
    .then((x) => x.close(), () => refused = true);
  assertOk(refused);
});

Deno.test("forwardUdp(): access list and session limit drop datagrams; strangers cannot answer through a session", async () => {
  await using echo = udpEcho({ hostname: LOOP, port: 0 });
  const logger = recorder();
  await using fwd = await forwardUdp({
    listen: { hostname: LOOP, port: 0 },
    target: { hostname: LOOP, port: echo.addr.port },
    maxSessions: 1,
    logger,
  });
  const a = Deno.listenDatagram({ transport: "udp", hostname: LOOP, port: 0 });
  const b = Deno.listenDatagram({ transport: "udp", hostname: LOOP, port: 0 });
  const stranger = Deno.listenDatagram({
    transport: "udp",
    hostname: LOOP,
    port: 0,
  });
  try {
    await a.send(enc.encode("one"), fwd.addr);
    assertEquals(
      dec.decode((await within(a.receive(), "the first reply", 10_000))[0]),
      "one",
    );
    assertEquals(fwd.sessions, 1);
    // A second client is over the limit: dropped, logged.
    await b.send(enc.encode("two"), fwd.addr);
    while (!logger.lines.some((l) => l.includes("1 sessions already"))) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // Someone who learns the session's local port cannot inject replies.
    const m = logger.lines.join("\n").match(/via local port (\d+)/);
    assertOk(m);
    await stranger.send(enc.encode("forged"), {
      transport: "udp",
      hostname: LOOP,
      port: Number(m[1]),
    });
    while (fwd.dropped < 2) await new Promise((r) => setTimeout(r, 10));
    await a.send(enc.encode("three"), fwd.addr);
    assertEquals(
      dec.decode((await within(a.receive(), "the third reply", 10_000))[0]),
      "three", // not "forged"
    );
    assertOk(logger.lines.some((l) => l.includes("(not the target)")));
  } finally {
    a.close();
    b.close();
    stranger.close();
  }

  const denied = await forwardUdp({
    listen: { hostname: LOOP, port: 0 },
    target: { hostname: LOOP, port: echo.addr.port },
    access: await buildAccessList({ deny: ["127.0.0.0/8"] }),
    logger,
  });
  const c = Deno.listenDatagram({ transport: "udp", hostname: LOOP, port: 0 });
  try {
    await c.send(enc.encode("hello?"), denied.addr);
    while (denied.dropped < 1) await new Promise((r) => setTimeout(r, 10));
    assertEquals(denied.sessions, 0);
  } finally {
    c.close();
    await denied.close();
  }
});

Deno.test("forwardTcp() refuses an access list on a Unix listener and a proxy to a Unix target", async () => {
  const { UsageError } = await import("../../lib/errors.ts");
  const acl = await buildAccessList({ allow: ["127.0.0.1"] });
  let err: unknown;
  try {
    forwardTcp({
      listen: { path: "/tmp/never.sock" },
      target: { hostname: LOOP, port: 1 },
      access: acl,
    });
  } catch (e) {
    err = e;
  }
  assertOk(
    err instanceof UsageError &&
      err.message.includes("not to a Unix socket listener"),
  );
  err = undefined;
  try {
    forwardTcp({
      listen: { hostname: LOOP, port: 0 },
      target: { path: "/tmp/x.sock" },
      proxy: { hostname: LOOP, port: 1, type: "socks5" },
    });
  } catch (e) {
    err = e;
  }
  assertOk(
    err instanceof UsageError &&
      err.message.includes("--proxy needs a TCP target"),
  );
});

Deno.test("forwardTcp() refuses verified TLS toward a Unix target at start", async () => {
  const { UsageError } = await import("../../lib/errors.ts");
  let err: unknown;
  try {
    forwardTcp({
      listen: { hostname: LOOP, port: 0 },
      target: { path: "/tmp/x.sock" },
      targetTls: {},
    });
  } catch (e) {
    err = e;
  }
  assertOk(
    err instanceof UsageError &&
      err.message.includes("--ssl toward a Unix socket"),
  );
});

Deno.test("socketCopy() hands a bulk TCP-to-TCP copy to a pump thread, byte for byte", async () => {
  using l = Deno.listen({ hostname: LOOP, port: 0 });
  const [a, a2] = await pair(l);
  const [b, b2] = await pair(l);
  const data = randomBytes(8 << 20);
  let pumped = false;
  // Past the hand-off point the writer trickles until the pump thread has
  // taken over (a loaded machine can take a second to start a worker, and
  // the plain loop would otherwise finish first), then sends the rest.
  const writing = (async () => {
    let off = 0;
    const deadline = Date.now() + 20_000;
    while (off < data.length) {
      const trickle = linux && !pumped && off >= 512 * 1024 &&
        Date.now() < deadline;
      off += await a.write(
        data.subarray(off, trickle ? off + 16384 : undefined),
      );
      if (trickle) await new Promise((r) => setTimeout(r, 10));
    }
    a.close();
  })();
  const reading = readAll(b2);
  const n = await socketCopy(a2, b, {
    handoffAfter: 256 * 1024,
    onPump: () => pumped = true,
  });
  await b.closeWrite();
  await writing;
  const got = await reading;
  assertEquals(n, data.length);
  assertEquals(sha256(got), sha256(data));
  assertEquals(pumped, linux);
  a2.close();
  b.close();
  b2.close();
});

Deno.test("relay({ tcp: true }) stops its pump threads and closes both sides when aborted mid-stream", async () => {
  using l = Deno.listen({ hostname: LOOP, port: 0 });
  const [c1, s1] = await pair(l);
  const [c2, s2] = await pair(l);
  const ac = new AbortController();
  const moved: number[] = [];
  let pumping = false;
  const joined = relay(s1, s2, {
    tcp: true,
    signal: ac.signal,
    onActivity: () => moved.push(1),
    onPump: () => pumping = true,
  });
  // c1 streams without end; c2 reads what arrives.
  const chunk = new Uint8Array(1 << 20);
  let stop = false;
  const writing = (async () => {
    try {
      while (!stop) await c1.write(chunk);
    } catch { /* closed under us */ }
  })();
  let got = 0;
  const buf = new Uint8Array(1 << 20);
  const reading = (async () => {
    try {
      let n;
      while ((n = await c2.read(buf)) !== null) got += n;
    } catch { /* reset */ }
  })();
  // 24 MiB, and on Linux until a pump thread runs (a loaded machine can
  // take a second to start one), 20 s at most.
  const deadline = Date.now() + 20_000;
  while (
    got < 24 << 20 || (linux && !pumping && Date.now() < deadline)
  ) await new Promise((r) => setTimeout(r, 20));
  ac.abort();
  const r = await joined;
  stop = true;
  await reading;
  c1.close();
  await writing;
  c2.close();
  assertOk(r.aToB >= 24 << 20, String(r.aToB));
  if (linux) assertOk(r.pumped > 0, "the bulk direction ran on a pump thread");
  assertEquals(r.error, undefined); // an abort is not an error
  assertOk(moved.length > 0);
});
