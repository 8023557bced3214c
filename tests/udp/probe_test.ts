/**
 * `denocat probe`: the UDP echo probe against faulty, upper-casing and
 * third-party echo servers; one-shot requests; TCP port scans.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import type { ProbeReport } from "../../lib/udp/probe.ts";
import { probeUdp } from "../../lib/udp/probe.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import { decodeProbe } from "../../lib/udp/payload.ts";
import { udpQuery } from "../../lib/udp/query.ts";
import { needs, runCli, SCAN_PORTS, spawn, startServer } from "../_helpers.ts";

/**
 * An echo server with scripted faults, counted by arrival (1-based): drops
 * every 4th datagram, sends the 2nd back twice, and holds the 5th until the
 * 6th has been echoed. It records the probe sequence numbers that arrived
 * and those it sent back, in order.
 */
function faultyEcho() {
  const socket = bindUdp({ hostname: "127.0.0.1" });
  const arrived: number[] = [];
  const sent: number[] = [];
  const done = (async () => {
    let n = 0;
    let held: { data: Uint8Array; from: Deno.NetAddr } | undefined;
    let d;
    const echo = async (x: { data: Uint8Array; from: Deno.NetAddr }) => {
      await socket.send(x.data, x.from);
      sent.push(decodeProbe(x.data)?.seq ?? -1);
    };
    while ((d = await socket.receive()) !== null) {
      n++;
      arrived.push(decodeProbe(d.data)?.seq ?? -1);
      if (n % 4 === 0) continue;
      if (n === 5) {
        held = d;
        continue;
      }
      await echo(d);
      if (n === 2) await echo(d);
      if (n === 6 && held) await echo(held);
    }
  })();
  return {
    port: socket.addr.port,
    arrived,
    sent,
    async [Symbol.asyncDispose]() {
      socket.close();
      await done;
    },
  };
}

/**
 * Runs `denocat probe -u -c COUNT ...args` against a fresh
 * {@linkcode faultyEcho} until a run where loopback itself lost nothing:
 * every probe arrived in order and as many replies were reported as the
 * server sent. A machine under load drops datagrams on loopback (its
 * backlog queue is full), which would change the counts under test; three
 * lossy runs in a row fail the test. `replies` counts the reported replies.
 */
async function probeFaulty(
  count: number,
  args: string[],
  replies: (out: { text: string }) => number,
) {
  const lossy: string[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    await using server = faultyEcho();
    const out = await runCli([
      "probe",
      "-u",
      "-c",
      String(count),
      ...args,
      "127.0.0.1",
      String(server.port),
    ]);
    const inOrder = Array.from({ length: count }, (_, i) => i + 1);
    let reported = -1;
    try {
      reported = replies(out);
    } catch { /* not a report: counted as lossy, shown below */ }
    if (
      out.code === 0 && server.arrived.join() === inOrder.join() &&
      reported === server.sent.length
    ) return out;
    lossy.push(
      `exit ${out.code}, arrived ${server.arrived}, sent back ${server.sent}, ${reported} reported: ${out.stderr}`,
    );
  }
  throw new Error(`three lossy runs:\n${lossy.join("\n")}`);
}

Deno.test("denocat probe -u reports exactly the loss, duplicate and reordering a faulty echo server causes", async () => {
  const out = await probeFaulty(
    12,
    ["-i", "0.03", "-w", "0.5", "--json"],
    (o) => (JSON.parse(o.text) as ProbeReport).replies.length,
  );
  assertEquals(out.stderr, "");
  assertEquals(out.code, 0);
  const report: ProbeReport = JSON.parse(out.text);
  assertEquals(report.sent, 12);
  assertEquals(report.received, 9); // 4, 8 and 12 dropped
  assertEquals(report.loss, 25);
  assertEquals(report.duplicates, 1);
  assertEquals(report.reordered, 1);
  assertEquals(report.invalid, 0);
  assertEquals(
    report.replies.filter((r) => !r.duplicate).map((r) => r.seq),
    [1, 2, 3, 6, 5, 7, 9, 10, 11],
  );
  assertEquals(report.replies.find((r) => r.duplicate)?.seq, 2);
  assertEquals(report.replies.find((r) => r.reordered)?.seq, 5);
  const rtt = report.rtt!;
  assertOk(rtt.min <= rtt.p50 && rtt.p50 <= rtt.p95 && rtt.p95 <= rtt.max);
  // The held probe waited for the next one, sent 30 ms later.
  assertOk(rtt.max >= 25, `max rtt ${rtt.max}`);
});

Deno.test("denocat probe -u prints a line per reply and ping's summary", async () => {
  const out = await probeFaulty(
    6,
    ["-i", "0.03", "-w", "0.3"],
    (o) => o.text.split("\n").filter((l) => l.startsWith("seq=")).length,
  );
  assertEquals(out.code, 0);
  const lines = out.text.trimEnd().split("\n");
  const replies = lines.filter((l) => l.startsWith("seq="));
  assertEquals(replies.length, 6); // 1, 2, 2 (DUP), 3, 6, 5
  for (const l of replies) {
    assertOk(/^seq=\d+ bytes=32 rtt=\d+\.\d{3} ms/.test(l), l);
  }
  assertOk(replies.some((l) => l.startsWith("seq=2 ") && l.endsWith("(DUP!)")));
  assertOk(
    replies.some((l) => l.startsWith("seq=5 ") && l.endsWith("(reordered)")),
  );
  assertOk(
    lines.includes(
      "6 sent, 5 received, 16.7% loss, 1 duplicates, 1 reordered",
    ),
    out.text,
  );
  assertOk(
    /^rtt min\/avg\/p50\/p95\/max\/mdev = (\d+\.\d{3}\/){5}\d+\.\d{3} ms$/.test(
      lines.at(-1)!,
    ),
    out.text,
  );
});

Deno.test("denocat probe -u works through denocat echo -u --upper (payload survives upper-casing)", async () => {
  await using echo = await startServer([
    "echo",
    "-u",
    "--upper",
    "127.0.0.1",
    "0",
  ]);
  const out = await runCli([
    "probe",
    "-u",
    "-c",
    "4",
    "-i",
    "0.02",
    "-s",
    "100",
    "--json",
    "127.0.0.1",
    String(echo.port),
  ]);
  assertEquals(out.code, 0);
  const r: ProbeReport = JSON.parse(out.text);
  assertEquals([r.sent, r.received, r.invalid, r.loss], [4, 4, 0, 0]);
  assertEquals(r.replies.map((x) => x.bytes), [100, 100, 100, 100]);
});

Deno.test({
  name: "denocat probe -u works against the seeds' python3 .upper() UDP server",
  ignore: needs("python3"),
  async fn() {
    using probe = bindUdp({ hostname: "127.0.0.1" });
    const port = probe.addr.port;
    probe.close();
    const script = [
      "import socket",
      "s = socket.socket(type=socket.SOCK_DGRAM)",
      `s.bind(('127.0.0.1', ${port}))`,
      "while True:",
      "    msg, addr = s.recvfrom(65536)",
      "    s.sendto(msg.upper(), addr)",
    ].join("\n");
    await using py = spawn("python3", ["-u", "-c", script], { timeout: 15000 });
    await waitForUdpEcho(port, py);
    const r = await probeUdp({
      hostname: "127.0.0.1",
      port,
      count: 3,
      interval: 20,
    });
    assertEquals([r.sent, r.received, r.invalid], [3, 3, 0]);
  },
});

/** Peers that cannot report readiness: retry a request until one answers. */
async function waitForUdpEcho(port: number, peer: { stderrSoFar(): string }) {
  const deadline = Date.now() + 5000;
  while (true) {
    const reply = await udpQuery({
      hostname: "127.0.0.1",
      port,
      data: new TextEncoder().encode("READY"),
      timeout: 200,
    });
    if (reply) return;
    assertOk(
      Date.now() < deadline,
      `peer never answered: ${peer.stderrSoFar()}`,
    );
  }
}

Deno.test({
  name: "denocat probe -u works against socat as the echo peer",
  ignore: needs("socat"),
  async fn() {
    using probe = bindUdp({ hostname: "127.0.0.1" });
    const port = probe.addr.port;
    probe.close();
    await using socat = spawn("socat", [
      "-T",
      "2",
      `UDP4-RECVFROM:${port},bind=127.0.0.1,fork`,
      "EXEC:cat",
    ], { timeout: 15000 });
    await waitForUdpEcho(port, socat);
    const out = await runCli([
      "probe",
      "-u",
      "-c",
      "5",
      "-i",
      "0.05",
      "--json",
      "127.0.0.1",
      String(port),
    ]);
    assertEquals(out.code, 0);
    const r: ProbeReport = JSON.parse(out.text);
    assertEquals([r.sent, r.received, r.duplicates, r.invalid], [5, 5, 0, 0]);
  },
});

Deno.test("denocat probe -u exits 1 with 100% loss when nothing answers", async () => {
  using silent = bindUdp({ hostname: "127.0.0.1" });
  const out = await runCli([
    "probe",
    "-u",
    "-c",
    "2",
    "-i",
    "0.02",
    "-w",
    "0.2",
    "127.0.0.1",
    String(silent.addr.port),
  ]);
  assertEquals(out.code, 1);
  assertOk(out.text.includes("2 sent, 0 received, 100% loss"), out.text);
  assertEquals((await silent.receive())!.data.length, 32);
});

Deno.test("denocat probe -u --data / --data-hex: one request, reply as text or hex dump, exit 1 on timeout", async () => {
  await using echo = await startServer([
    "echo",
    "-u",
    "--upper",
    "127.0.0.1",
    "0",
  ]);
  const text = await runCli([
    "probe",
    "-u",
    "--data",
    "hah",
    "127.0.0.1",
    String(echo.port),
  ]);
  assertEquals(text.code, 0);
  const [head, body] = text.text.split("\n");
  assertOk(
    new RegExp(
      `^reply from 127\\.0\\.0\\.1:${echo.port}: 3 bytes, rtt=\\d+\\.\\d{3} ms$`,
    )
      .test(head!),
    head,
  );
  assertEquals(body, "HAH");

  const bin = await runCli([
    "probe",
    "-u",
    "--data-hex",
    "00ff61",
    "127.0.0.1",
    String(echo.port),
  ]);
  assertEquals(bin.code, 0);
  assertOk(bin.text.includes("00000000  00 ff 41 "), bin.text);
  assertOk(bin.text.includes("|..A|"), bin.text);

  using silent = bindUdp({ hostname: "127.0.0.1" });
  const none = await runCli([
    "probe",
    "-u",
    "--data",
    "x",
    "-w",
    "0.2",
    "127.0.0.1",
    String(silent.addr.port),
  ]);
  assertEquals(none.code, 1);
  assertEquals(
    none.stderr,
    `denocat: no reply from udp 127.0.0.1:${silent.addr.port} within 0.2 s\n`,
  );
});

/**
 * Ten consecutive ports starting at a random base, all free when checked;
 * the ones at `openOffsets` are then held by listeners.
 */
function portBlock(openOffsets: number[]) {
  for (let attempt = 0; attempt < 50; attempt++) {
    // In the scans' own range: the ports let go here must not become
    // other tests' listeners, which the scans would then reach.
    const base = SCAN_PORTS.start +
      Math.floor(Math.random() * (SCAN_PORTS.end - SCAN_PORTS.start - 10));
    const held: Deno.TcpListener[] = [];
    try {
      for (let i = 0; i < 10; i++) {
        held.push(Deno.listen({ hostname: "127.0.0.1", port: base + i }));
      }
    } catch {
      for (const l of held) l.close();
      continue;
    }
    const listeners = held.filter((l, i) => {
      if (openOffsets.includes(i)) return true;
      l.close();
      return false;
    });
    return {
      base,
      open: openOffsets.map((o) => base + o),
      [Symbol.dispose]() {
        for (const l of listeners) l.close();
      },
    };
  }
  throw new Error("no free block of 10 ports");
}

Deno.test("denocat probe HOST A-B lists exactly the open ports of a range", async () => {
  using block = portBlock([1, 4, 9]);
  const range = `${block.base}-${block.base + 9}`;
  const out = await runCli(["probe", "127.0.0.1", range, "--concurrency", "4"]);
  assertEquals(out.code, 0);
  const open = out.text.split("\n")
    .map((l) => /^127\.0\.0\.1:(\d+) open \d+\.\d{3} ms$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => Number(m[1]));
  assertEquals(open, block.open);
  assertOk(
    out.text.includes("3 of 10 ports open on 127.0.0.1 (7 closed"),
    out.text,
  );

  const json = await runCli(["probe", "--json", "127.0.0.1", range]);
  assertEquals(json.code, 0);
  const r = JSON.parse(json.text);
  assertEquals(r.open.map((x: { port: number }) => x.port), block.open);
  assertEquals([r.scanned, r.closed, r.timeout, r.error], [10, 7, 0, 0]);
});

Deno.test("denocat probe HOST PORT: exit 0 with the connect time when open, 1 when refused", async () => {
  using block = portBlock([0]);
  const open = await runCli(["probe", "127.0.0.1", String(block.base)]);
  assertEquals(open.code, 0);
  assertOk(
    new RegExp(`^127\\.0\\.0\\.1:${block.base} open \\d+\\.\\d{3} ms\\n$`).test(
      open.text,
    ),
    open.text,
  );
  const closed = await runCli(["probe", "127.0.0.1", String(block.base + 1)]);
  assertEquals(closed.code, 1);
  assertEquals(
    closed.text,
    `127.0.0.1:${block.base + 1} closed (connection refused)\n`,
  );
  const none = await runCli([
    "probe",
    "127.0.0.1",
    `${block.base + 1}-${block.base + 9}`,
  ]);
  assertEquals(none.code, 1);
});

Deno.test("denocat probe rejects bad command lines with one line and exit 2", async () => {
  const cases: Array<[string[], string]> = [
    [["probe"], "missing HOST and PORT"],
    [["probe", "127.0.0.1", "9-1"], "invalid port range"],
    [["probe", "127.0.0.1", "0-5"], "invalid port range"],
    [["probe", "-u", "127.0.0.1", "1-5"], "invalid port"],
    [["probe", "--data", "x", "127.0.0.1", "9"], "--data needs -u"],
    [["probe", "-c", "3", "127.0.0.1", "9"], "--count needs -u"],
    [["probe", "-u", "-s", "31", "127.0.0.1", "9"], "invalid probe size"],
    [["probe", "-u", "-s", "65508", "127.0.0.1", "9"], "65507 bytes"],
    [["probe", "-u", "-c", "0", "127.0.0.1", "9"], "invalid -c value"],
    [["probe", "-u", "-i", "soon", "127.0.0.1", "9"], "invalid -i value"],
    [
      ["probe", "-u", "--data-hex", "abc", "127.0.0.1", "9"],
      "invalid --data-hex",
    ],
    [
      ["probe", "-u", "--data", "a", "--data-hex", "61", "127.0.0.1", "9"],
      "cannot be combined",
    ],
    [
      ["probe", "-u", "--concurrency", "3", "127.0.0.1", "9"],
      "--concurrency is for TCP",
    ],
    [
      ["probe", "--concurrency", "0", "127.0.0.1", "9"],
      "invalid --concurrency",
    ],
    [["probe", "--bogus", "127.0.0.1", "9"], "bogus"],
  ];
  for (const [args, message] of cases) {
    const out = await runCli(args);
    const lines = out.stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, `${args.join(" ")}: ${out.stderr}`);
    assertOk(lines[0]!.startsWith("denocat: "), out.stderr);
    assertOk(lines[0]!.includes(message), `${args.join(" ")}: ${out.stderr}`);
    assertEquals(out.code, 2, `${args.join(" ")}: ${out.stderr}`);
  }
});
