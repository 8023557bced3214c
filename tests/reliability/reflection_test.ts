/**
 * UDP reflection against `echo -u`, on both engines (the libc thread and
 * the event loop): datagrams spoofed from the server's own address and
 * port, from port 0 and from the ports of services that answer anything
 * get no answer; two echo servers set ping-ponging stop on their own; one
 * flooding address is held to `--rate` while another is answered; a spray
 * of made-up source addresses leaves the server's memory bounded.
 *
 * Measured before the guard: one datagram spoofed from the server itself
 * was echoed about 300,000 times a second (thread) or 77,000 (event loop)
 * until the server was killed; one spoofed from server A to server B set
 * them ping-ponging just as fast.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { DEFAULT_MAX_SOURCES } from "../../lib/source_guard.ts";
import { udpEcho, type UdpEchoServer } from "../../lib/udp/echo.ts";
import { bindUdp, type UdpSocket } from "../../lib/udp/socket.ts";
import { startServer } from "../_helpers.ts";
import { budget, scaled } from "./_scale.ts";
import { canSpoof, spoof } from "./_spoof.ts";
import { assertNoCrash, sleep, summary, waitUntil } from "./_util.ts";

const linux = Deno.build.os === "linux";
/** The per-source rate of the ping-pong tests (see there). */
const LOOP_TEST_RATE = 500;

const ENGINES = [
  ...(linux ? [{ name: "thread", options: {}, expect: "thread" }] : []),
  { name: "deno", options: { engine: "deno" as const }, expect: "deno" },
];
const te = new TextEncoder();

/** The next datagram on `s`, or `null` after `ms`. */
async function receiveWithin(s: UdpSocket, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((r) => timer = setTimeout(r, ms, null));
  const pending = s.receive();
  const d = await Promise.race([pending, timeout]);
  clearTimeout(timer);
  if (d === null) {
    // The receive stays pending: close the socket so it settles.
    s.close();
    await pending;
  }
  return d;
}

/**
 * Whether a fresh socket on `hostname` gets its datagram echoed within 30
 * tries of 100 ms: the number of tries it took (each may have been echoed,
 * the reply lost), or 0.
 */
async function answered(port: number, hostname = "127.0.0.1") {
  for (let attempt = 1; attempt <= 30; attempt++) {
    using c = bindUdp({ hostname });
    await c.send(te.encode("real client"), {
      transport: "udp",
      hostname: "127.0.0.1",
      port,
    });
    const d = await receiveWithin(c, 100);
    if (d && new TextDecoder().decode(d.data) === "real client") {
      return attempt;
    }
  }
  return 0;
}

/** Waits until no echo has happened for `quietMs`; returns when the last one was. */
async function untilQuiet(
  servers: UdpEchoServer[],
  quietMs: number,
  ms: number,
): Promise<number | undefined> {
  const deadline = performance.now() + ms;
  let last = -1;
  let changedAt = performance.now();
  while (performance.now() < deadline) {
    const n = servers.reduce((sum, s) => sum + s.echoed, 0);
    if (n !== last) {
      last = n;
      changedAt = performance.now();
    } else if (performance.now() - changedAt >= quietMs) return changedAt;
    await sleep(20);
  }
  return undefined;
}

for (const e of ENGINES) {
  Deno.test({
    name:
      `reflection ${e.name}: datagrams spoofed from echo -u's own address and port, port 0, 7, 13, 17, 19 and 37 get no answer`,
    ignore: !canSpoof,
    async fn() {
      await using server = udpEcho({ hostname: "127.0.0.1", ...e.options });
      assertEquals(await server.ready, e.expect);
      const port = server.addr.port;
      const n = scaled(20);
      const to = { dst: "127.0.0.1", dport: port, count: n };
      // Paced (2 ms per 100), so the kernel keeps every one of them.
      const sent = await spoof(
        [
          { src: "127.0.0.1", sport: port, ...to }, // itself
          { src: "127.0.0.2", sport: port, ...to }, // its port, another local address
          ...[0, 7, 13, 17, 19, 37].map((sport) => ({
            src: "127.0.0.1",
            sport,
            ...to,
          })),
        ],
        undefined,
        2,
      );
      const arrived = await waitUntil(
        () => server.dropped.loop >= sent,
        budget(5000),
      );
      await sleep(300); // a loop, had one started, would show here
      const byAttack = server.echoed;
      const real = await answered(port);
      summary(
        `reflection ${e.name}: ${sent} spoofed loop-source datagrams, ${byAttack} answered, ${server.dropped.loop} dropped; a real client ${
          real ? "answered" : "NOT answered"
        }`,
      );
      assertOk(arrived, `${server.dropped.loop} of ${sent} seen`);
      assertEquals(byAttack, 0);
      assertEquals(server.dropped.loop, sent);
      assertOk(real);
    },
  });

  Deno.test({
    name:
      `reflection ${e.name}: a spray of made-up source addresses tracks at most ${DEFAULT_MAX_SOURCES} of them`,
    ignore: !canSpoof,
    async fn() {
      await using server = udpEcho({ hostname: "127.0.0.1", ...e.options });
      assertEquals(await server.ready, e.expect);
      const n = scaled(20_000);
      let most = 0;
      const watch = setInterval(
        () => most = Math.max(most, server.sources),
        10,
      );
      const t0 = performance.now();
      const sent = await spoof(
        [],
        { n, dst: "127.0.0.1", dport: server.addr.port },
        2,
      );
      await sleep(200);
      clearInterval(watch);
      most = Math.max(most, server.sources);
      const ms = performance.now() - t0;
      const seen = server.echoed + server.dropped.rate;
      // A new address is answered at once (from the shared budget, then
      // its own once the table has aged).
      const real = await answered(server.addr.port, "127.0.0.3");
      summary(
        `reflection ${e.name}: ${sent} datagrams from as many made-up addresses in ${
          ms.toFixed(0)
        } ms: ${seen} arrived, ${server.echoed} answered, ${server.dropped.rate} dropped over the rate; at most ${most} addresses tracked; a new address ${
          real ? `answered (try ${real})` : "NOT answered"
        }`,
      );
      assertOk(most <= DEFAULT_MAX_SOURCES, `${most} tracked`);
      if (seen > DEFAULT_MAX_SOURCES) assertEquals(most, DEFAULT_MAX_SOURCES);
      assertOk(seen >= Math.min(n, DEFAULT_MAX_SOURCES), `${seen} of ${n}`);
      assertOk(real);
    },
  });

  Deno.test({
    name:
      `reflection ${e.name}: two echo servers set ping-ponging by a spoofed datagram stop on their own`,
    ignore: !canSpoof,
    async fn() {
      // A rate well below any loop's speed: with the default (10,000 a
      // second) a loop slowed by a loaded machine can stay under the rate
      // for seconds (seen: 4.6 s with a dozen other test processes).
      const rate = LOOP_TEST_RATE;
      await using a = udpEcho({ hostname: "127.0.0.1", rate, ...e.options });
      await using b = udpEcho({ hostname: "127.0.0.1", rate, ...e.options });
      assertEquals([await a.ready, await b.ready], [e.expect, e.expect]);
      const injected = scaled(2);
      const t0 = performance.now();
      await spoof([{
        src: "127.0.0.1",
        sport: a.addr.port,
        dst: "127.0.0.1",
        dport: b.addr.port,
        count: injected,
      }]);
      const lastEcho = await untilQuiet([a, b], 500, budget(10_000));
      const ms = lastEcho === undefined ? Infinity : lastEcho - t0;
      summary(
        `reflection ${e.name}: ${injected} spoofed datagrams from server A to B: ${
          a.echoed + b.echoed
        } echoes in ${ms.toFixed(0)} ms, then the loop died (${
          a.dropped.rate + b.dropped.rate
        } dropped over --rate ${rate})`,
      );
      assertOk(lastEcho !== undefined, "the loop never stopped");
      // About 0.3 s on an idle machine (the spoofer's start included); the
      // loop runs longer only while it is slower, and stops all the same.
      assertOk(ms < budget(3000), `the loop ran ${ms} ms`);
      for (const s of [a, b]) {
        assertOk(
          s.echoed <= rate * (1 + ms / 1000) + 10,
          `${s.echoed}`,
        );
      }
      // Each loop ends with a datagram dropped over the rate.
      assertEquals(a.dropped.rate + b.dropped.rate, injected);
      // Both still answer real clients.
      assertOk(await answered(a.addr.port));
      assertOk(await answered(b.addr.port));
    },
  });

  Deno.test(`reflection ${e.name}: one flooding address is held to --rate, another is answered meanwhile`, async () => {
    const rate = 1000;
    await using server = udpEcho({
      hostname: "127.0.0.1",
      rate,
      ...e.options,
    });
    assertEquals(await server.ready, e.expect);
    const target: Deno.NetAddr = {
      transport: "udp",
      hostname: "127.0.0.1",
      port: server.addr.port,
    };
    using flood = bindUdp({ hostname: "127.0.0.1" });
    let floodReplies = 0;
    const draining = (async () => {
      while (await flood.receive() !== null) floodReplies++;
    })();
    const total = scaled(20_000);
    const payload = te.encode("flood");
    const t0 = performance.now();
    let other = 0;
    let otherEchoes = 0;
    const otherSide = (async () => {
      // 127.0.0.2: another source address, with its own budget.
      for (let i = 0; i < 20; i++) {
        const tries = await answered(server.addr.port, "127.0.0.2");
        if (tries) other++;
        otherEchoes += tries;
        await sleep(20);
      }
    })();
    for (let i = 0; i < total; i++) await flood.send(payload, target);
    await otherSide;
    const ms = performance.now() - t0;
    await sleep(300);
    flood.close();
    await draining;
    // A full bucket, then refills until the last queued datagram was read.
    const allowed = rate * (1 + (performance.now() - t0) / 1000);
    // Echoes to the flooding address: all but the other address's.
    const toFlood = server.echoed - otherEchoes;
    summary(
      `reflection ${e.name}: ${total} datagrams from one address in ${
        ms.toFixed(0)
      } ms at --rate ${rate}: ${toFlood} answered (allowed ${
        allowed.toFixed(0)
      }; ${floodReplies} replies read), ${server.dropped.rate} dropped over the rate; another address ${other}/20 answered`,
    );
    assertOk(toFlood <= allowed + 10, `${toFlood} > ${allowed}`);
    assertOk(toFlood >= Math.min(rate, total) / 2, `${toFlood}`);
    assertOk(server.dropped.rate > 0);
    assertEquals(other, 20);
  });
}

/** `echo -u -v` on 127.0.0.1 with its RSS and, once stopped, its counts. */
async function cliEcho() {
  const server = await startServer(["echo", "-u", "127.0.0.1", "0"], {
    timeout: budget(120_000),
  });
  await server.waitForStderr(/answering at most/);
  return Object.assign(server, {
    rss: () =>
      Number(
        Deno.readTextFileSync(`/proc/${server.child.pid}/status`).match(
          /^VmRSS:\s+(\d+) kB/m,
        )![1],
      ) / 1024,
    async stop() {
      server.kill("SIGTERM");
      const out = await server.output;
      assertEquals(out.code, 0, out.stderr.slice(-500));
      assertNoCrash("echo -u", out.stderr);
      const m = out.stderr.match(
        /shutting down: (\d+) datagrams echoed, (\d+) dropped \((\d+) from loop sources, (\d+) over --rate\)/,
      );
      assertOk(m, out.stderr.slice(-500));
      return { echoed: Number(m[1]), dropped: Number(m[2]) };
    },
  });
}

Deno.test({
  name:
    "reflection: datagrams from made-up source addresses leave echo -u's memory bounded",
  ignore: !canSpoof,
  async fn() {
    // The same number of datagrams from one address and from as many
    // addresses: the difference is what the per-source table costs.
    await using one = await cliEcho();
    await using many = await cliEcho();
    await sleep(500);
    const before = [one.rss(), many.rss()];
    const n = scaled(20_000);
    const t0 = performance.now();
    const [sentOne, sentMany] = await Promise.all([
      spoof(
        [{
          src: "127.0.0.5",
          sport: 4000,
          dst: "127.0.0.1",
          dport: one.port,
          count: n,
        }],
        undefined,
        1,
      ),
      spoof([], { n, dst: "127.0.0.1", dport: many.port }, 1),
    ]);
    const ms = performance.now() - t0;
    await sleep(500);
    const grew = [one.rss() - before[0]!, many.rss() - before[1]!];
    // While the table is full new sources share one budget; it empties
    // within two seconds of the spray.
    const t1 = performance.now();
    const real = await answered(many.port, "127.0.0.3");
    const realMs = performance.now() - t1;
    const [a, b] = [await one.stop(), await many.stop()];
    summary(
      `reflection: ${sentMany} datagrams from as many made-up addresses in ${
        ms.toFixed(0)
      } ms: ${b.echoed} answered, ${b.dropped} dropped, RSS +${
        grew[1]!.toFixed(1)
      } MiB (the same from one address: ${a.echoed} answered, ${a.dropped} dropped, +${
        grew[0]!.toFixed(1)
      } MiB); a new address answered ${realMs.toFixed(0)} ms later`,
    );
    assertEquals(sentOne, n);
    assertOk(real, "a new address was never answered");
    assertOk(grew[1]! < 30, `RSS grew ${grew[1]} MiB`);
    assertOk(
      grew[1]! - grew[0]! < 10,
      `the table cost ${grew[1]! - grew[0]!} MiB`,
    );
    // Enough arrived to fill the table (the kernel may drop some of a burst).
    assertOk(b.echoed + b.dropped > 4096, `${b.echoed} + ${b.dropped}`);
  },
});
