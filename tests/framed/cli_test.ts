/**
 * End-to-end tests of `denocat --frame`: the CLI as users run it, against
 * python3 peers speaking the seed protocols and against itself.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { encodeFrame, encodeJsonHeaderFrame } from "../../lib/frame/mod.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import {
  freePort,
  needs,
  runCli,
  spawn,
  startCli,
  startServer,
  testOnlyOn,
  waitForPort,
} from "../_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "POSIX signals (SIGTERM), sh, Unix sockets and process groups",
);

const te = new TextEncoder();

/** Runs a python3 script with PORT as argv[1]; returns its output. */
async function python(script: string, port: number, stdin?: string) {
  await using p = spawn("python3", ["-c", script, String(port)], {
    timeout: 15000,
    ...(stdin !== undefined ? { stdin } : {}),
  });
  const out = await p.output;
  assertEquals(out.code, 0, out.stderr);
  return out;
}

const PY_SEED_SENDER = `
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
# Many messages fired back to back: TCP glues them together (sticky packets).
for i in range(3000):
    msg = ("reply %d: " % i + "x" * (i % 97)).encode("utf-8")
    s.send(struct.pack('i', len(msg)))
    s.send(msg)
s.send(struct.pack('i', 0))
s.sendall(struct.pack('i', len("\\u4f60\\u597d".encode("utf-8"))) + "\\u4f60\\u597d".encode("utf-8"))
s.close()
`;

function seedMessages(): string[] {
  const lines = Array.from(
    { length: 3000 },
    (_, i) => `reply ${i}: ` + "x".repeat(i % 97),
  );
  return [...lines, "", "你好"];
}

for (const frame of ["seed", "u32le"]) {
  Deno.test({
    name:
      `denocat -l --frame ${frame} separates every message of a python3 struct.pack('i') sender`,
    ignore: needs("python3"),
    async fn() {
      await using server = await startServer([
        "-l",
        "--frame",
        frame,
        "127.0.0.1",
        "0",
      ]);
      await python(PY_SEED_SENDER, server.port);
      const out = await server.output;
      assertEquals(out.code, 0, out.stderr);
      assertEquals(out.text, seedMessages().join("\n") + "\n");
      assertOk(/closed: 3002 frames/.test(out.stderr), out.stderr);
    },
  });
}

const PY_SEED_JSON_SENDER = `
import hashlib, json, socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for name, body in [("a.txt", b"hello world\\n"), ("empty", b""), ("bin", bytes(range(256)) * 40)]:
    header = {"filename": name, "md5": hashlib.md5(body).hexdigest(), "total_size": len(body)}
    header_bytes = json.dumps(header).encode("utf-8")
    s.send(struct.pack('i', len(header_bytes)))
    s.send(header_bytes)
    s.sendall(body)
s.close()
`;

Deno.test({
  name:
    "denocat -l --frame seed-json --output json prints each body with the seeds' header",
  ignore: needs("python3"),
  async fn() {
    await using server = await startServer([
      "-l",
      "--frame",
      "seed-json",
      "--output",
      "json",
      "127.0.0.1",
      "0",
    ]);
    await python(PY_SEED_JSON_SENDER, server.port);
    const out = await server.output;
    assertEquals(out.code, 0, out.stderr);
    const records = out.text.trimEnd().split("\n").map((l) => JSON.parse(l));
    assertEquals(records.length, 3);
    const bin = new Uint8Array(256 * 40).map((_, i) => i % 256);
    const { createHash } = await import("node:crypto");
    const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
    const expected = [
      ["a.txt", te.encode("hello world\n")],
      ["empty", new Uint8Array(0)],
      ["bin", bin],
    ] as const;
    for (const [i, [name, body]] of expected.entries()) {
      assertEquals(records[i], {
        len: body.length,
        data: body.toBase64(),
        header: { filename: name, md5: md5(body), total_size: body.length },
      });
    }
  },
});

const PY_U32BE_READER = `
import socket, struct, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
def exact(n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
while True:
    head = exact(4)
    if head is None:
        break
    (n,) = struct.unpack('>I', head)
    body = exact(n)
    sys.stdout.write("%d %s\\n" % (n, body.decode("utf-8")))
conn.sendall(b"bye\\n")
conn.close()
`;

Deno.test({
  name:
    "denocat --frame u32be is decoded by a python3 struct.unpack('>I') reader",
  ignore: needs("python3"),
  async fn() {
    await using py = await startPython(PY_U32BE_READER);
    const port = py.port;
    const lines = ["first", "", "third line", "ünïcödé", "last, no newline"];
    const r = await runCli(["--frame", "u32be", "127.0.0.1", String(port)], {
      stdin: lines.join("\n"),
    });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.text, "bye\n", "the peer's reply is printed as-is");
    const out = await py.output;
    assertEquals(out.code, 0, out.stderr);
    assertEquals(
      out.text.split("\n").slice(1).join("\n"),
      lines.map((l) => `${te.encode(l).length} ${l}`).join("\n") + "\n",
    );
  },
});

/** Starts a python3 server that prints its port first; collects the rest of stdout. */
async function startPython(script: string) {
  const child = new Deno.Command("python3", {
    args: ["-c", script],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(15000),
  }).spawn();
  const reader = child.stdout.getReader();
  const td = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += td.decode(value, { stream: true });
  }
  const output = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += td.decode(value, { stream: true });
    }
    const stderr = await new Response(child.stderr).text();
    const status = await child.status;
    return { code: status.code, text, stderr };
  })();
  return {
    port: Number(text.split("\n")[0]),
    output,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await output;
    },
  };
}

Deno.test("denocat --frame to denocat -l --frame: 20000 lines arrive glued and come out one per frame", async () => {
  for (const frame of ["u32be", "varint", "json", "u64be"]) {
    await using server = await startServer([
      "-l",
      "--frame",
      frame,
      "127.0.0.1",
      "0",
    ]);
    const lines = Array.from(
      { length: 20000 },
      (_, i) => `line ${i} ${"-".repeat(i % 13)}`,
    );
    const r = await runCli(
      ["--frame", frame, "127.0.0.1", String(server.port)],
      {
        stdin: lines.join("\n") + "\n",
      },
    );
    assertEquals(r.code, 0, r.stderr);
    const out = await server.output;
    assertEquals(out.code, 0, out.stderr);
    assertEquals(out.text, lines.join("\n") + "\n", frame);
  }
});

Deno.test("denocat -l --frame exits 1 with the one-line error on a truncated last frame", async () => {
  await using server = await startServer([
    "-l",
    "--frame",
    "u32be",
    "127.0.0.1",
    "0",
  ]);
  {
    using conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    const good = encodeFrame(te.encode("whole"));
    const cut = encodeFrame(te.encode("half a frame")).subarray(0, 9);
    await conn.write(new Uint8Array([...good, ...cut]));
  }
  const out = await server.output;
  assertEquals(out.code, 1);
  assertEquals(out.text, "whole\n", "only the whole frame is printed");
  const last = out.stderr.trimEnd().split("\n").at(-1)!;
  assertEquals(
    last,
    "denocat: cannot decode frame at byte 9: expected a payload of 12 bytes, got 5 bytes then end of input",
  );
});

Deno.test("denocat -l --frame exits 1 on an oversize length, and seed refuses 2^31", async () => {
  const cases: Array<[string, Uint8Array, string]> = [
    [
      "u32be",
      Uint8Array.fromHex("01000001" + "6869"),
      "expected a frame length of at most 16777216, got 16777217",
    ],
    [
      "seed",
      Uint8Array.fromHex("00000080"),
      "expected a signed 32-bit length below 2^31",
    ],
    [
      "seed-json",
      Uint8Array.fromHex("01000100"),
      "expected a header length of at most 65536, got 65537",
    ],
  ];
  for (const [frame, bytes, message] of cases) {
    await using server = await startServer([
      "-l",
      "--frame",
      frame,
      "127.0.0.1",
      "0",
    ]);
    {
      using conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      await conn.write(bytes);
    }
    const out = await server.output;
    assertEquals(out.code, 1, frame);
    assertEquals(out.text, "", frame);
    const last = out.stderr.trimEnd().split("\n").at(-1)!;
    assertOk(last.startsWith("denocat: cannot decode frame at byte 0: "), last);
    assertOk(last.includes(message), last);
  }
});

test("denocat -l --frame -k drops a garbage client and keeps serving a good one", async () => {
  await using server = await startServer([
    "-l",
    "-k",
    "--frame",
    "u16be",
    "127.0.0.1",
    "0",
  ]);
  const port = server.port;
  {
    using bad = await Deno.connect({ hostname: "127.0.0.1", port });
    await bad.write(te.encode("GET / HTTP/1.0\r\n\r\n"));
    await bad.closeWrite();
    await bad.read(new Uint8Array(1)).catch(() => null); // closed by the server
  }
  await server.waitForStderr(/dropped: cannot decode frame/);
  const lines = Array.from({ length: 500 }, (_, i) => `good ${i}`);
  const r = await runCli(["--frame", "u16be", "127.0.0.1", String(port)], {
    stdin: lines.join("\n") + "\n",
  });
  assertEquals(r.code, 0, r.stderr);
  await server.waitForStderr(/closed: 500 frames/);
  server.kill("SIGTERM");
  const out = await server.output;
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.text, lines.join("\n") + "\n");
  assertOk(
    /127\.0\.0\.1:\d+ dropped: cannot decode frame at byte 0/.test(out.stderr),
    out.stderr,
  );
});

test("denocat -l --frame -k without -v still reports a dropped client, without naming it", async () => {
  const port = freePort();
  await using server = startCli([
    "-l",
    "-k",
    "--frame",
    "u32be",
    "127.0.0.1",
    String(port),
  ]);
  await waitForPort(port);
  {
    using bad = await Deno.connect({ hostname: "127.0.0.1", port });
    await bad.write(Uint8Array.fromHex("00000003" + "6869"));
  }
  const m = await server.waitForStderr(/^denocat: client dropped: .*$/m);
  assertEquals(
    m[0],
    "denocat: client dropped: cannot decode frame at byte 0: expected a payload of 3 bytes, got 2 bytes then end of input",
  );
  server.kill("SIGTERM");
  const out = await server.output;
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.text, "");
});

Deno.test("denocat -l --frame prints hex, raw and json output", async () => {
  const wire = new Uint8Array([
    ...encodeFrame(new Uint8Array([0xde, 0xad, 0xbe, 0xef])),
    ...encodeFrame(new Uint8Array(0)),
    ...encodeFrame(te.encode("ok")),
  ]);
  const expected: Record<string, string> = {
    hex: "deadbeef\n\n6f6b\n",
    json:
      '{"len":4,"data":"3q2+7w=="}\n{"len":0,"data":""}\n{"len":2,"data":"b2s="}\n',
  };
  for (const mode of ["hex", "raw", "json"]) {
    await using server = await startServer([
      "-l",
      "--frame",
      "u32be",
      "--output",
      mode,
      "127.0.0.1",
      "0",
    ]);
    {
      using conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      await conn.write(wire);
    }
    const out = await server.output;
    assertEquals(out.code, 0, out.stderr);
    if (mode === "raw") {
      assertEquals(
        out.stdout,
        new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x6f, 0x6b]),
      );
    } else {
      assertEquals(out.text, expected[mode]);
    }
  }
});

test("denocat -u --frame sends framed datagrams; -u -l --frame skips malformed ones and goes on", async () => {
  await using server = await startServer([
    "-u",
    "-l",
    "--frame",
    "json",
    "127.0.0.1",
    "0",
  ]);
  const addr = {
    transport: "udp" as const,
    hostname: "127.0.0.1",
    port: server.port,
  };
  using peer = bindUdp({ hostname: "127.0.0.1" });
  await peer.send(encodeFrame(te.encode("not json")), addr);
  await server.waitForStderr(
    /malformed datagram from 127\.0\.0\.1:\d+ skipped: cannot decode frame at byte 0/,
  );
  await peer.send(
    encodeJsonHeaderFrame({ total_size: 5 }, te.encode("hello")).subarray(
      0,
      22,
    ),
    addr,
  );
  await server.waitForStderr(/skipped: .*expected a body of 5 bytes/);
  const r = await runCli([
    "-u",
    "-w",
    "0.2",
    "--frame",
    "json",
    "127.0.0.1",
    String(server.port),
  ], {
    stdin: "first\nsecond\n",
  });
  assertEquals(r.code, 0, r.stderr);
  // Two malformed datagrams and two good ones were received.
  const deadline = Date.now() + 5000;
  while ((server.stderrSoFar().match(/ bytes from /g) ?? []).length < 4) {
    if (Date.now() > deadline) throw new Error(server.stderrSoFar());
    await new Promise((res) => setTimeout(res, 20));
  }
  server.kill("SIGTERM");
  const out = await server.output;
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.text, "first\nsecond\n");
});

test("denocat --frame rejects bad command lines with one line and exit 2", async () => {
  const cases: Array<[string[], string]> = [
    [["--frame", "u128", "127.0.0.1", "9"], "invalid --frame value: u128"],
    [
      ["--frame", "u32be", "--output", "hex", "127.0.0.1", "9"],
      "--output applies to received frames: it needs -l",
    ],
    [
      ["-l", "--frame", "u32be", "--split", "chunk", "0"],
      "--split applies to sending, not to -l",
    ],
    [
      ["-l", "--frame", "u32be", "--output", "base64", "0"],
      "invalid --output value: base64",
    ],
    [["--output", "hex", "127.0.0.1", "9"], "--output needs --frame and -l"],
    [["--frame", "seed", "-k", "127.0.0.1", "9"], "-k needs -l"],
    [
      ["--frame", "seed", "--split", "word", "127.0.0.1", "9"],
      "invalid --split value",
    ],
    [
      ["-l", "--frame", "seed", "-q", "1", "0"],
      "-q does not apply to -l --frame",
    ],
    [
      ["-u", "--frame", "seed", "-U", "/tmp/x"],
      "-u cannot be combined with -U",
    ],
    [["--frame", "seed"], "missing HOST and PORT"],
  ];
  for (const [args, message] of cases) {
    const out = await runCli(args);
    const lines = out.stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, `${args.join(" ")}: ${out.stderr}`);
    assertOk(lines[0]!.startsWith("denocat: "), out.stderr);
    assertOk(lines[0]!.includes(message), `${args.join(" ")}: ${out.stderr}`);
    assertEquals(out.code, 2, args.join(" "));
  }
});

Deno.test("denocat --help documents --frame with the seed names", async () => {
  const out = await runCli(["--help"]);
  assertEquals(out.code, 0);
  for (
    const word of [
      "--frame FORMAT",
      "seed-json",
      "struct.pack('i', n)",
      "--output MODE",
      "--split MODE",
    ]
  ) {
    assertOk(out.text.includes(word), word);
  }
});

Deno.test("--max-frame raises the 16 MiB cap on both sides and lowers it too", async () => {
  // A 17,000,000-byte line: one frame above the default cap.
  const line = "x".repeat(17_000_000);
  for (const frame of ["u32be", "json"]) {
    await using server = await startServer([
      "-l",
      "--frame",
      frame,
      "--max-frame",
      "17000000",
      "--output",
      "raw",
      "127.0.0.1",
      "0",
    ]);
    const sent = await runCli([
      "--frame",
      frame,
      "--max-frame",
      "17000000",
      "127.0.0.1",
      String(server.port),
    ], { stdin: line + "\n", timeout: 30000 });
    assertEquals(sent.code, 0, sent.stderr);
    const out = await server.output;
    assertEquals(out.code, 0, out.stderr);
    assertEquals(out.stdout.length, line.length, frame);
  }
  // Without the flag the sender refuses that line, naming the cap.
  await using plain = await startServer([
    "-l",
    "--frame",
    "u32be",
    "127.0.0.1",
    "0",
  ]);
  const refused = await runCli([
    "--frame",
    "u32be",
    "127.0.0.1",
    String(plain.port),
  ], {
    stdin: line + "\n",
    timeout: 30000,
  });
  assertEquals(refused.code, 1);
  assertOk(refused.stderr.includes("16777216"), refused.stderr);
  // A lower cap: the listener refuses a 101-byte frame.
  await using small = await startServer([
    "-l",
    "--frame",
    "u32be",
    "--max-frame",
    "100",
    "127.0.0.1",
    "0",
  ]);
  {
    using conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: small.port,
    });
    await conn.write(
      encodeFrame(new Uint8Array(101), { format: "u32be", maxFrameSize: 101 }),
    );
  }
  const out = await small.output;
  assertEquals(out.code, 1);
  assertOk(
    out.stderr.includes("a frame length of at most 100, got 101"),
    out.stderr,
  );
});

Deno.test("--max-frame: usage errors exit 2", async () => {
  for (
    const [args, message] of [
      [["--max-frame", "10", "127.0.0.1", "9"], "--max-frame needs --frame"],
      [
        ["--frame", "u32be", "--max-frame", "0", "127.0.0.1", "9"],
        "invalid --max-frame value: 0",
      ],
      [
        ["--frame", "u32be", "--max-frame", "4294967296", "127.0.0.1", "9"],
        "(at most 4294967295)",
      ],
      [
        ["--frame", "u32be", "--max-frame", "1M", "127.0.0.1", "9"],
        "invalid --max-frame value: 1M",
      ],
    ] as const
  ) {
    const r = await runCli([...args]);
    assertEquals(r.code, 2, args.join(" "));
    assertOk(r.stderr.includes(message), r.stderr);
  }
});

Deno.test("-l --frame --idle-timeout: a quiet client ends the session with exit 0, unless mid-frame (exit 1)", async () => {
  for (const partial of [false, true]) {
    await using server = await startServer([
      "-l",
      "--frame",
      "u16be",
      "--idle-timeout",
      "0.3",
      "127.0.0.1",
      "0",
    ]);
    using conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await conn.write(encodeFrame(te.encode("whole"), { format: "u16be" }));
    if (partial) await conn.write(Uint8Array.fromHex("000568")); // 1 of 5 bytes
    const out = await server.output;
    assertEquals(out.text, "whole\n");
    if (partial) {
      assertEquals(out.code, 1);
      assertOk(
        out.stderr.includes(
          "timed out: no data for 0.3 s, in the middle of a frame",
        ),
        out.stderr,
      );
    } else {
      assertEquals(out.code, 0, out.stderr);
      assertOk(out.stderr.includes("no data for 0.3 s, closed"), out.stderr);
    }
  }
});

Deno.test("denocat -l -u --frame --allow: datagrams from other senders are dropped before decoding and logged; allowed ones are written", async () => {
  await using server = await startServer([
    "-l",
    "-u",
    "--frame",
    "u16be",
    "--allow",
    "127.0.0.2",
    "127.0.0.1",
    "0",
  ]);
  const to: Deno.NetAddr = {
    transport: "udp",
    hostname: "127.0.0.1",
    port: server.port,
  };
  using stranger = bindUdp({ hostname: "127.0.0.1" });
  using friend = bindUdp({ hostname: "127.0.0.2" });
  const frame = (text: string) =>
    encodeFrame(new TextEncoder().encode(text), { format: "u16be" });
  await stranger.send(frame("from a stranger"), to);
  await server.waitForStderr(
    /ignored a datagram from 127\.0\.0\.1:\d+: not allowed by the access list \(1 so far\)/,
  );
  await friend.send(frame("from a friend"), to);
  await server.waitForStderr(/bytes from 127\.0\.0\.2:/);
  server.kill("SIGTERM");
  const out = await server.output;
  assertEquals(out.text, "from a friend\n");
});

Deno.test("denocat --frame --hex-dump: the framed bytes on the wire, on the listener (under each client's address) and on the client", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using server = await startServer([
      "-l",
      "--frame",
      "u32be",
      "--hex-dump",
      `${dir}/server.txt`,
      "127.0.0.1",
      "0",
    ]);
    const c = await runCli([
      "--frame",
      "u32be",
      "--hex-dump",
      `${dir}/client.txt`,
      "127.0.0.1",
      String(server.port),
    ], { stdin: "hello" });
    assertEquals(c.code, 0, c.stderr);
    const out = await server.output;
    assertEquals(out.text, "hello\n");
    const client = await Deno.readTextFile(`${dir}/client.txt`);
    assertOk(
      client.startsWith("# sent 9 bytes at offset 0\n") &&
        client.includes("00 00 00 05 68 65 6c 6c  6f"),
      client,
    );
    const served = await Deno.readTextFile(`${dir}/server.txt`);
    assertOk(
      /^# 127\.0\.0\.1:\d+ received 9 bytes at offset 0\n/.test(served) &&
        served.includes("00 00 00 05 68 65 6c 6c  6f"),
      served,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("denocat -u --frame --hex-dump: the datagrams on the wire, on the client and under the sender's address on the listener", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using server = await startServer([
      "-l",
      "-u",
      "--frame",
      "u16be",
      "--hex-dump",
      `${dir}/server.txt`,
      "127.0.0.1",
      "0",
    ]);
    const c = await runCli([
      "-u",
      "--frame",
      "u16be",
      "-w",
      "0.2",
      "--hex-dump",
      `${dir}/client.txt`,
      "127.0.0.1",
      String(server.port),
    ], { stdin: "hi\n" });
    assertEquals(c.code, 0, c.stderr);
    await server.waitForStderr(/bytes from 127\.0\.0\.1:/);
    server.kill("SIGTERM");
    assertEquals((await server.output).text, "hi\n");
    const client = await Deno.readTextFile(`${dir}/client.txt`);
    assertOk(
      client.startsWith("# sent 4 bytes at offset 0\n") &&
        client.includes("00 02 68 69"),
      client,
    );
    const served = await Deno.readTextFile(`${dir}/server.txt`);
    assertOk(
      /^# 127\.0\.0\.1:\d+ received 4 bytes at offset 0\n/.test(served) &&
        served.includes("00 02 68 69"),
      served,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
