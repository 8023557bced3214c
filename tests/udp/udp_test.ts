/**
 * UDP endpoint, echo server, `denocat -u` client and `denocat -u -l`
 * listener, in-process and through the CLI.
 */
import {
  assertEquals,
  assertOk,
  assertRejects,
  assertThrows,
} from "../../lib/_assert.ts";
import { DenocatError } from "../../lib/errors.ts";
import {
  bindUdp,
  MAX_UDP_PAYLOAD_V4,
  MAX_UDP_PAYLOAD_V6,
  type UdpSocket,
} from "../../lib/udp/socket.ts";
import { udpEcho } from "../../lib/udp/echo.ts";
import {
  needs,
  runCli,
  spawn,
  startCli,
  startServer,
  testOnlyOn,
} from "../_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "POSIX signals (SIGTERM), sh, Unix sockets and process groups",
);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Receives one datagram or fails after `ms`. */
async function receiveWithin(socket: UdpSocket, ms = 3000) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("no datagram")), ms);
  });
  try {
    const d = await Promise.race([socket.receive(), timeout]);
    assertOk(d, "socket closed");
    return d;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("UdpSocket.receive() delivers a 65507-byte datagram whole", async () => {
  using a = bindUdp({ hostname: "127.0.0.1" });
  using b = bindUdp({ hostname: "127.0.0.1" });
  const big = new Uint8Array(MAX_UDP_PAYLOAD_V4).map((_, i) => i % 251);
  await a.send(big, b.addr);
  const got = await receiveWithin(b);
  assertEquals(got.data.length, MAX_UDP_PAYLOAD_V4);
  assertEquals(got.data, big);
});

Deno.test("UdpSocket.receive() returns copies that later datagrams do not overwrite", async () => {
  using a = bindUdp({ hostname: "127.0.0.1" });
  using b = bindUdp({ hostname: "127.0.0.1" });
  await a.send(encoder.encode("first"), b.addr);
  await a.send(encoder.encode("SECOND"), b.addr);
  const one = await receiveWithin(b);
  const two = await receiveWithin(b);
  assertEquals(decoder.decode(one.data), "first");
  assertEquals(decoder.decode(two.data), "SECOND");
});

Deno.test("UdpSocket.send() refuses payloads above the IPv4 and IPv6 maxima", async () => {
  using s4 = bindUdp({ hostname: "127.0.0.1" });
  await assertRejects(
    () =>
      s4.send(new Uint8Array(MAX_UDP_PAYLOAD_V4 + 1), {
        transport: "udp",
        hostname: "127.0.0.1",
        port: 9,
      }),
    DenocatError,
    "larger than the UDP maximum of 65507 bytes",
  );
  using s6 = bindUdp({ hostname: "::1" });
  using r6 = bindUdp({ hostname: "::1" });
  // 65527 is legal over IPv6 and arrives whole.
  await s6.send(new Uint8Array(MAX_UDP_PAYLOAD_V6).fill(7), r6.addr);
  assertEquals((await receiveWithin(r6)).data.length, MAX_UDP_PAYLOAD_V6);
  await assertRejects(
    () => s6.send(new Uint8Array(MAX_UDP_PAYLOAD_V6 + 1), r6.addr),
    DenocatError,
    "larger than the UDP maximum of 65527 bytes",
  );
});

Deno.test("UdpSocket.close() is idempotent and ends a pending receive with null", async () => {
  const s = bindUdp({ hostname: "127.0.0.1" });
  const pending = s.receive();
  s.close();
  s.close();
  assertEquals(await pending, null);
  assertEquals(await s.receive(), null);
});

Deno.test("bindUdp() reports a taken port and a family mismatch in one line", () => {
  using s = bindUdp({ hostname: "127.0.0.1" });
  assertThrows(
    () => bindUdp({ hostname: "127.0.0.1", port: s.addr.port }),
    DenocatError,
    "address already in use",
  );
  assertThrows(
    () => bindUdp({ hostname: "::1", family: 4 }),
    DenocatError,
    "not an IPv4 address",
  );
});

Deno.test("udpEcho() without a host is dual-stack: IPv4 and IPv6 senders get replies", async () => {
  await using server = udpEcho({ upper: true });
  for (const host of ["127.0.0.1", "::1"]) {
    using c = bindUdp({ hostname: host });
    await c.send(encoder.encode("dual"), {
      transport: "udp",
      hostname: host,
      port: server.addr.port,
    });
    const reply = await receiveWithin(c);
    assertEquals(decoder.decode(reply.data), "DUAL", host);
  }
});

Deno.test({
  name: "denocat echo -u --upper answers the seeds' python3 UDP client",
  ignore: needs("python3"),
  async fn() {
    await using server = await startServer([
      "echo",
      "-u",
      "--upper",
      "127.0.0.1",
      "0",
    ]);
    const script = [
      "import socket",
      "sk = socket.socket(type=socket.SOCK_DGRAM)",
      "sk.settimeout(5)",
      `sk.sendto(b'hah', ('127.0.0.1', ${server.port}))`,
      "msg, addr = sk.recvfrom(1024)",
      "assert msg == b'HAH', msg",
      "print(msg.decode())",
    ].join("\n");
    await using py = spawn("python3", ["-c", script], { timeout: 10000 });
    const out = await py.output;
    assertEquals(out.stderr, "");
    assertEquals(out.code, 0);
    assertEquals(out.text, "HAH\n");
  },
});

Deno.test("denocat echo -u: many concurrent senders each get only their own replies", async () => {
  await using server = await startServer(["echo", "-u", "127.0.0.1", "0"]);
  const target: Deno.NetAddr = {
    transport: "udp",
    hostname: "127.0.0.1",
    port: server.port,
  };
  const SENDERS = 24;
  const EACH = 25;
  const sockets = Array.from(
    { length: SENDERS },
    () => bindUdp({ hostname: "127.0.0.1" }),
  );
  try {
    // Up to 4 datagrams in flight per sender (96 in all): enough to
    // interleave senders, not enough to overflow a socket buffer.
    const results = await Promise.all(sockets.map(async (s, id) => {
      const expected = new Set<string>();
      const got: string[] = [];
      for (let i = 0; i < EACH; i += 4) {
        const batch = Math.min(4, EACH - i);
        for (let j = i; j < i + batch; j++) {
          const msg = `sender-${id}-msg-${j}`;
          expected.add(msg);
          await s.send(encoder.encode(msg), target);
        }
        for (let j = 0; j < batch; j++) {
          const d = await receiveWithin(s, 5000);
          assertEquals(d.from.port, server.port);
          got.push(decoder.decode(d.data));
        }
      }
      return { id, expected, got };
    }));
    for (const { id, expected, got } of results) {
      assertEquals(got.length, EACH);
      for (const g of got) assertOk(expected.has(g), `sender ${id} got ${g}`);
      assertEquals(new Set(got).size, EACH, `sender ${id} got duplicates`);
    }
  } finally {
    for (const s of sockets) s.close();
  }
});

/** A one-datagram server that replies `reply` after `delayMs`. */
function delayedReplier(reply: string, delayMs: number) {
  const socket = bindUdp({ hostname: "127.0.0.1" });
  const done = (async () => {
    const d = await socket.receive();
    if (!d) return "";
    await new Promise((r) => setTimeout(r, delayMs));
    // The client may be gone and the fixture disposed meanwhile: fine.
    if (!socket.closed) await socket.send(encoder.encode(reply), d.from);
    return decoder.decode(d.data);
  })();
  return {
    port: socket.addr.port,
    done,
    async [Symbol.asyncDispose]() {
      socket.close();
      await done;
    },
  };
}

Deno.test("denocat -u HOST PORT prints a reply that arrives 300 ms after stdin EOF", async () => {
  await using peer = delayedReplier("late reply\n", 300);
  const out = await runCli(["-u", "127.0.0.1", String(peer.port)], {
    stdin: "question\n",
  });
  assertEquals(await peer.done, "question\n");
  assertEquals(out.stderr, "");
  assertEquals(out.code, 0);
  assertEquals(out.text, "late reply\n");
});

Deno.test("denocat -u -w 0.1 gives up before a reply that takes 300 ms", async () => {
  await using peer = delayedReplier("too late\n", 300);
  const t0 = performance.now();
  const out = await runCli(
    ["-u", "-w", "0.1", "127.0.0.1", String(peer.port)],
    {
      stdin: "question\n",
    },
  );
  assertEquals(out.code, 0);
  assertEquals(out.text, "");
  assertOk(performance.now() - t0 < 5000);
});

Deno.test("denocat -u sends a piped stdin one read per datagram (as nc), or one per line with --split line", async () => {
  using sink = bindUdp({ hostname: "127.0.0.1" });
  const out = await runCli(
    ["-u", "--split", "line", "127.0.0.1", String(sink.addr.port)],
    { stdin: "a\nbb\nccc" },
  );
  assertEquals(out.code, 0);
  const got = [];
  for (let i = 0; i < 3; i++) {
    got.push(decoder.decode((await receiveWithin(sink)).data));
  }
  assertEquals(got, ["a\n", "bb\n", "ccc"]);

  for (const split of [[], ["--split", "chunk"]]) {
    const chunk = await runCli(
      ["-u", ...split, "-w", "0.1", "127.0.0.1", String(sink.addr.port)],
      { stdin: "x\ny\n" },
    );
    assertEquals(chunk.code, 0);
    assertEquals(
      decoder.decode((await receiveWithin(sink)).data),
      "x\ny\n",
      split.join(" "),
    );
  }
});

test("denocat -u -l prints datagrams from several peers, names them with -v, and answers the latest", async () => {
  await using listener = await startServer(["-u", "-l", "127.0.0.1", "0"], {
    keepStdin: true,
  });
  const to: Deno.NetAddr = {
    transport: "udp",
    hostname: "127.0.0.1",
    port: listener.port,
  };
  using a = bindUdp({ hostname: "127.0.0.1" });
  using b = bindUdp({ hostname: "127.0.0.1" });
  await a.send(encoder.encode("from a\n"), to);
  await listener.waitForStderr(
    new RegExp(`from 127\\.0\\.0\\.1:${a.addr.port}`),
  );
  await b.send(encoder.encode("from b\n"), to);
  await listener.waitForStderr(
    new RegExp(`from 127\\.0\\.0\\.1:${b.addr.port}`),
  );
  await listener.stdin!.write(encoder.encode("to the latest\n"));
  const reply = await receiveWithin(b);
  assertEquals(decoder.decode(reply.data), "to the latest\n");
  listener.kill("SIGTERM");
  const out = await listener.output;
  assertEquals(out.code, 0);
  assertEquals(out.text, "from a\nfrom b\n");
});

test("denocat -u -l binds dual-stack by default: IPv4 and IPv6 peers both heard", async () => {
  await using listener = await startServer(["-u", "-l", "0"]);
  for (const host of ["127.0.0.1", "::1"]) {
    using c = bindUdp({ hostname: host });
    await c.send(encoder.encode(`via ${host}\n`), {
      transport: "udp",
      hostname: host,
      port: listener.port,
    });
    await listener.waitForStderr(new RegExp(`bytes from .*${c.addr.port}`));
  }
  listener.kill("SIGTERM");
  const out = await listener.output;
  assertEquals(out.text, "via 127.0.0.1\nvia ::1\n");
});

test("denocat -u rejects bad command lines with one line and exit 2", async () => {
  const cases: Array<[string[], string]> = [
    [["-u"], "missing HOST and PORT"],
    [["-u", "127.0.0.1", "99999"], "invalid port"],
    [["-u", "-U"], "missing PATH for -U"],
    [["-u", "--split", "word", "127.0.0.1", "9"], "invalid --split value"],
    [["--split", "chunk", "127.0.0.1", "9"], "--split needs -u"],
    [["echo", "-u", "--max-conns", "3", "0"], "--max-conns does not apply"],
    [["-u", "-4", "::1", "9"], "not an IPv4 address"],
  ];
  for (const [args, message] of cases) {
    const out = await runCli(args);
    const lines = out.stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, `${args.join(" ")}: ${out.stderr}`);
    assertOk(lines[0]!.startsWith("denocat: "), out.stderr);
    assertOk(lines[0]!.includes(message), `${args.join(" ")}: ${out.stderr}`);
    assertEquals(
      out.code,
      message === "not an IPv4 address" ? 1 : 2,
      args.join(" "),
    );
  }
});

Deno.test("denocat -u refuses a line too long for one datagram, saying so", async () => {
  using sink = bindUdp({ hostname: "127.0.0.1" });
  const out = await runCli(
    ["-u", "--split", "line", "127.0.0.1", String(sink.addr.port)],
    { stdin: "x".repeat(70000) + "\n" },
  );
  assertEquals(out.code, 1);
  assertOk(
    /^denocat: cannot send a line of more than 65507 bytes/.test(out.stderr),
    out.stderr,
  );
});

test("denocat -u -l stops cleanly on SIGTERM with stdin still open", async () => {
  await using p = startCli(["-u", "-l", "-v", "127.0.0.1", "0"], {
    keepStdin: true,
  });
  await p.waitForStderr(/listening on/);
  p.kill("SIGTERM");
  assertEquals((await p.output).code, 0);
});
