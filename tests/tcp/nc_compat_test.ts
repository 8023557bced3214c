/**
 * The flags nc and ncat users type without thinking, each driven exactly as
 * typed, and compared with OpenBSD nc (and socat, python3) on the same
 * input where both exist (issue 16).
 */
import { assertEquals, assertOk as assert } from "../../lib/_assert.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import {
  freePort,
  needs,
  runCli,
  spawn,
  startCli,
  startPy,
} from "../_helpers.ts";

function assertMatch(text: string, re: RegExp): void {
  assert(re.test(text), `${JSON.stringify(text)} does not match ${re}`);
}

const decoder = new TextDecoder();

/** A python3 TCP server: prints its port, then per connection the peer address and what it received as hex. */
const PY_PEER_SERVER = `
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    c, a = s.accept()
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.sendall(("%s %d %s\\n" % (a[0], a[1], data.hex())).encode())
    c.close()
`;

/** Runs python3 with `code` and returns stdout lines as they come. */
function pyLines(code: string) {
  const p = spawn("python3", ["-c", code], { keepStdin: true });
  return p;
}

function freeHighPort(): number {
  // A port outside the ephemeral range other tests draw from.
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch { /* taken */ }
  }
  return freePort();
}

async function listening(p: ReturnType<typeof startCli>): Promise<void> {
  await p.waitForStderr(/listening on/);
}

Deno.test("denocat -l -p PORT, -lvnp PORT and -l PORT all listen on PORT", async () => {
  for (
    const form of [
      (p: number) => ["-l", "-p", String(p)],
      (p: number) => ["-lvnp", String(p)],
      (p: number) => ["-l", String(p)],
      (p: number) => ["-l", "-s", "127.0.0.1", "-p", String(p)],
      (p: number) => ["-l", "-p", String(p), String(p)],
    ]
  ) {
    const port = freeHighPort();
    const args = form(port);
    await using server = startCli(
      args.includes("-lvnp") ? args : ["-v", ...args],
    );
    await server.waitForStderr(new RegExp(`listening on .*:${port}\\b`));
    const c = await runCli(["127.0.0.1", String(port)], { stdin: "hi" });
    assertEquals(c.code, 0, c.stderr);
    const s = await server.output;
    assertEquals(s.code, 0, `${args.join(" ")}: ${s.stderr}`);
    assertEquals(s.text, "hi", args.join(" "));
  }
});

Deno.test("denocat -l: a port or address given both ways must agree", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["-l", "-p", "4444", "4445"], /-p 4444 and PORT 4445 disagree/],
    [["-l", "-s", "127.0.0.1", "::1", "4444"], /-s 127.0.0.1 and HOST ::1/],
    [["-l", "-p"], /argument missing|missing/i],
    [["-l", "-s", "127.0.0.1"], /missing PORT/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    assertEquals(r.code, 2, args.join(" "));
    assertMatch(r.stderr, re);
    assertEquals(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  }
});

Deno.test(
  "denocat -s ADDR -p PORT connects from that address and port, as nc -s -p does (python3 sees both)",
  {
    ignore: needs("nc", "python3"),
  },
  async () => {
    await using py = await startPy(PY_PEER_SERVER);
    const ours = freeHighPort();
    const r = await runCli(
      ["-s", "127.0.0.1", "-p", String(ours), "127.0.0.1", String(py.port)],
      { stdin: "from denocat" },
    );
    assertEquals(r.code, 0, r.stderr);
    const theirs = freeHighPort();
    const n = await spawn("nc", [
      "-N",
      "-s",
      "127.0.0.1",
      "-p",
      String(theirs),
      "127.0.0.1",
      String(py.port),
    ], { stdin: "from nc" }).output;
    assertEquals(n.code, 0, n.stderr);
    const hex = (s: string) => new TextEncoder().encode(s).toHex();
    assertEquals(r.text, `127.0.0.1 ${ours} ${hex("from denocat")}\n`);
    assertEquals(n.text, `127.0.0.1 ${theirs} ${hex("from nc")}\n`);
    // -p alone: the system picks the address, the port is ours.
    const only = freeHighPort();
    const p = await runCli(["-p", String(only), "127.0.0.1", String(py.port)]);
    assertEquals(p.code, 0, p.stderr);
    assertEquals(p.text, `127.0.0.1 ${only} \n`);
  },
);

Deno.test("denocat -p PORT: a source port in use is a one-line error naming it", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const r = await runCli([
    "-p",
    String(taken.addr.port),
    "127.0.0.1",
    String(target.addr.port),
  ]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr,
    `denocat: cannot connect to 127.0.0.1:${target.addr.port} from 0.0.0.0:${taken.addr.port}: address already in use\n`,
  );
});

Deno.test("denocat -s/-p without FFI fails with one line saying why", async () => {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const out = await spawn(Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-env",
    cli,
    "-s",
    "127.0.0.1",
    "127.0.0.1",
    "9",
  ]).output;
  assertEquals(out.code, 1);
  assertEquals(
    out.stderr,
    "denocat: cannot use -s (source address): needs --allow-ffi\n",
  );
});

Deno.test("denocat -n refuses names; -N and -q -1 are accepted", async () => {
  for (
    const [args, re] of [
      [["-n", "localhost", "80"], /-n: localhost is not a numeric address/],
      [["-n", "127.0.0.1", "http"], /-n: http is not a port number/],
      [["-N", "--no-shutdown", "127.0.0.1", "9"], /contradict/],
      [["-q", "-2", "127.0.0.1", "9"], /invalid -q value: -2/],
    ] as Array<[string[], RegExp]>
  ) {
    const r = await runCli(args);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assertMatch(r.stderr, re);
  }
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(l.addr.port);
  // Each connection on its own: a stray connection cannot hold up ours.
  const got: string[] = [];
  const served = (async () => {
    const handlers = [];
    for await (const c of l) {
      handlers.push((async () => {
        const buf = new Uint8Array(64);
        let text = "";
        let n;
        while ((n = await c.read(buf)) !== null) {
          text += decoder.decode(buf.subarray(0, n));
        }
        await c.write(new TextEncoder().encode("ok")).catch(() => 0);
        c.close();
        if (text) got.push(text);
      })());
    }
    await Promise.all(handlers);
  })();
  for (
    const args of [
      ["-N", "-n", "127.0.0.1", port],
      ["-q", "-1", "127.0.0.1", port],
      ["-vq", "-1", "127.0.0.1", port],
    ]
  ) {
    const r = await runCli(args, { stdin: "x" });
    assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assertEquals(r.text, "ok", args.join(" "));
  }
  l.close();
  await served;
  assertEquals(got, ["x", "x", "x"]);
});

Deno.test("denocat -U is a flag: -U PATH, -Ul PATH, -lU PATH and -U -l PATH all work", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [i, listenArgs] of [
        ["-Ul"],
        ["-lU"],
        ["-U", "-l"],
        ["-l", "--unix"],
      ].entries()
    ) {
      const path = `${dir}/s${i}`;
      await using server = startCli(["-v", ...listenArgs, path]);
      await listening(server);
      const c = await runCli(["-U", path], { stdin: "unix" });
      assertEquals(c.code, 0, c.stderr);
      const s = await server.output;
      assertEquals(s.text, "unix", listenArgs.join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("denocat -U @NAME: abstract sockets, against nc -U and socat", {
  ignore: needs("nc", "socat"),
}, async () => {
  const name = `denocat-test-${crypto.randomUUID()}`;
  // denocat listens, nc connects.
  {
    await using server = startCli(["-v", "-lU", `@${name}`]);
    await server.waitForStderr(new RegExp(`listening on @${name}`));
    const n = await spawn("nc", ["-N", "-U", `@${name}`], { stdin: "via nc" })
      .output;
    assertEquals(n.code, 0, n.stderr);
    assertEquals((await server.output).text, "via nc");
  }
  // socat listens, denocat connects and gets the reply.
  {
    await using socat = spawn("socat", [
      `ABSTRACT-LISTEN:${name}`,
      "EXEC:tr a-z A-Z",
    ]);
    let r;
    for (let i = 0; i < 50; i++) {
      r = await runCli(["-U", `@${name}`], { stdin: "via denocat" });
      if (r.code === 0) break;
      await new Promise((ok) => setTimeout(ok, 50));
    }
    assertEquals(r!.code, 0, r!.stderr);
    assertEquals(r!.text, "VIA DENOCAT");
    socat.kill();
  }
  const bad = await runCli(["-U", "@"]);
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /missing name after @/);
});

Deno.test(
  "denocat -u -U: Unix datagram sockets against nc -uU and socat, replies through -s LOCALPATH",
  {
    ignore: needs("nc", "socat", "python3"),
  },
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/dgram.sock`;
      await using server = startCli(["-v", "-u", "-l", "-U", path]);
      await server.waitForStderr(/listening on unix datagram/);
      const d = await runCli(["-uU", "-w", "0.2", path], { stdin: "one\n" });
      assertEquals(d.code, 0, d.stderr);
      await server.waitForStderr(/4 bytes from .*client\.sock/);
      const n = await spawn("nc", ["-uU", "-w", "1", path], { stdin: "two\n" })
        .output;
      assertEquals(n.code, 0, n.stderr);
      await server.waitForStderr(/4 bytes from /);
      const s = await spawn("socat", ["-", `UNIX-SENDTO:${path}`], {
        stdin: "three\n",
      }).output;
      assertEquals(s.code, 0, s.stderr);
      await server.waitForStderr(/6 bytes from an unbound socket/);
      server.kill("SIGTERM");
      const out = await server.output;
      assertEquals(out.text, "one\ntwo\nthree\n");
      // The listener removed its socket file.
      await Deno.lstat(path).then(
        () => assert(false, "socket file left behind"),
        (e) => assert(e instanceof Deno.errors.NotFound),
      );

      // A python3 datagram server answers to the client's -s path.
      const echoPath = `${dir}/echo.sock`;
      const local = `${dir}/me.sock`;
      await using py = pyLines(`
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(${JSON.stringify(echoPath)})
print("ready", flush=True)
d, a = s.recvfrom(65536)
s.sendto(d.upper(), a)
print(a, flush=True)
`);
      for (let i = 0; i < 100; i++) {
        try {
          await Deno.lstat(echoPath);
          break;
        } catch {
          await new Promise((ok) => setTimeout(ok, 30));
        }
      }
      const r = await runCli(["-uU", "-s", local, "-w", "0.5", echoPath], {
        stdin: "ping",
      });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.text, "PING");
      const pyOut = await py.output;
      assertEquals(pyOut.text, `ready\n${local}\n`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "denocat -l -U removes a stale socket file, never a live socket or a plain file",
  {
    ignore: needs("python3"),
  },
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      // A socket file whose owner is gone (python3 binds and exits).
      const stale = `${dir}/stale.sock`;
      const py = await spawn("python3", [
        "-c",
        `import socket; socket.socket(socket.AF_UNIX).bind(${
          JSON.stringify(stale)
        })`,
      ]).output;
      assertEquals(py.code, 0, py.stderr);
      assert((await Deno.lstat(stale)).isSocket);
      {
        await using server = startCli(["-v", "-lU", stale]);
        await server.waitForStderr(/removed stale socket .*\n.*listening on/);
        const c = await runCli(["-U", stale], { stdin: "fresh" });
        assertEquals(c.code, 0, c.stderr);
        assertEquals((await server.output).text, "fresh");
      }
      // A live listener keeps its socket: the second one is refused.
      const live = `${dir}/live.sock`;
      {
        await using first = startCli(["-v", "-lU", live]);
        await listening(first);
        const second = await runCli(["-lU", live]);
        assertEquals(second.code, 1);
        assertEquals(
          second.stderr,
          `denocat: cannot listen on ${live}: address already in use\n`,
        );
        // ...and the first one still serves (the check did not connect to it).
        const c = await runCli(["-U", live], { stdin: "still here" });
        assertEquals(c.code, 0, c.stderr);
        assertEquals((await first.output).text, "still here");
      }
      // A plain file is never touched.
      const file = `${dir}/file`;
      await Deno.writeTextFile(file, "keep me");
      const r = await runCli(["-lU", file]);
      assertEquals(r.code, 1);
      assertEquals(
        r.stderr,
        `denocat: cannot listen on ${file}: it exists and is not a socket (left alone)\n`,
      );
      assertEquals(await Deno.readTextFile(file), "keep me");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "denocat -u sends a piped binary request as one datagram, as nc -u does",
  {
    ignore: needs("nc"),
  },
  async () => {
    // A DNS-like query whose second byte is a newline.
    const query = new Uint8Array([0x0a, 0x0b, 0x01, 0x00, 0x00, 0x01]);
    for (const tool of ["denocat", "nc"]) {
      using sink = bindUdp({ hostname: "127.0.0.1" });
      const port = String(sink.addr.port);
      const run = tool === "denocat"
        ? runCli(["-u", "-w", "0.3", "127.0.0.1", port], { stdin: query })
        : spawn("nc", ["-u", "-w", "1", "127.0.0.1", port], { stdin: query })
          .output;
      const d = await sink.receive();
      assertEquals(d?.data, query, tool);
      const extra = await Promise.race([
        sink.receive().then(() => "another datagram"),
        new Promise((ok) => setTimeout(() => ok("none"), 300)),
      ]);
      assertEquals(extra, "none", tool);
      assertEquals((await run).code, 0, tool);
      sink.close();
    }
  },
);

Deno.test("ports accept service names from /etc/services (tcp and, with -u, udp)", async () => {
  const services = await Deno.readTextFile("/etc/services").catch(() => "");
  // A tcp service on a port we can bind, and the name nc -v prints for it.
  let name: string | undefined, port = 0;
  for (const line of services.split("\n")) {
    const m = /^([a-z][\w-]*)\s+(\d+)\/tcp/.exec(line);
    if (!m || Number(m[2]) < 10000) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port: Number(m[2]) }).close();
      [name, port] = [m[1]!, Number(m[2])];
      break;
    } catch { /* in use */ }
  }
  if (name === undefined) return; // no such service here: nothing to check
  await using server = startCli(["-v", "-l", "-s", "127.0.0.1", "-p", name]);
  await server.waitForStderr(new RegExp(`listening on 127.0.0.1:${port}`));
  const c = await runCli(["127.0.0.1", name], { stdin: "named" });
  assertEquals(c.code, 0, c.stderr);
  assertEquals((await server.output).text, "named");
  const bad = await runCli(["127.0.0.1", "no-such-service"]);
  assertEquals(bad.code, 2);
  assertEquals(
    bad.stderr,
    "denocat: invalid port: no-such-service (not a tcp service in /etc/services)\n",
  );
  if (/^domain\s+53\/udp/m.test(services)) {
    const u = await runCli(["-u", "-n", "127.0.0.1", "domain"]);
    assertEquals(u.code, 2);
    assertMatch(u.stderr, /-n: domain is not a port number/);
  }
});

/** A listener on a free port that /etc/services names (the first name given for it). */
async function listenOnServicePort() {
  const services = await Deno.readTextFile("/etc/services").catch(() => "");
  const seen = new Set<number>();
  for (const line of services.split("\n")) {
    const m = /^([a-z][\w-]*)\s+(\d+)\/tcp/.exec(line);
    if (!m) continue;
    const port = Number(m[2]);
    if (seen.has(port)) continue; // only a port's first name is its name
    seen.add(port);
    if (port < 10000) continue;
    try {
      const listener = Deno.listen({ hostname: "127.0.0.1", port });
      return { listener, port, name: m[1]! };
    } catch { /* in use */ }
  }
  return undefined;
}

/** nc's lines without the program prefix, lower-cased, for comparison. */
function scanLines(stderr: string): string[] {
  return stderr.trimEnd().split("\n").filter((l) => l !== "").map((l) =>
    l.replace(/^(nc|denocat): /, "").toLowerCase()
  );
}

Deno.test("denocat -z HOST PORTS... prints and exits as nc -z does", {
  ignore: needs("nc"),
}, async () => {
  using open = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const o = String(open.addr.port);
  const closed = [freePort(), freePort()].map(String);
  const cases = [
    [o],
    [o, closed[0]!],
    [closed[0]!, closed[1]!],
    [closed[0]!, o],
  ];
  for (const ports of cases) {
    for (const verbose of [true, false]) {
      const flags = verbose ? ["-zv"] : ["-z"];
      const n = await spawn("nc", [...flags, "127.0.0.1", ...ports]).output;
      const d = await runCli([...flags, "127.0.0.1", ...ports]);
      const what = `${flags} ${ports.join(" ")}`;
      assertEquals(d.code, n.code, what);
      assertEquals(d.text, n.text, what);
      assertEquals(scanLines(d.stderr), scanLines(n.stderr), what);
    }
  }
  // A range and a comma list (nc takes ranges; the list is denocat's).
  const range = await runCli(["-zv", "127.0.0.1", `${closed[0]}-${closed[0]}`]);
  assertEquals(range.code, 1);
  const list = await runCli(["-zv", "127.0.0.1", `${closed[0]},${o}`]);
  assertEquals(list.code, 0);
  assertEquals(
    scanLines(list.stderr),
    [
      `connect to 127.0.0.1 port ${closed[0]} (tcp) failed: connection refused`,
      `connection to 127.0.0.1 ${o} port [tcp/*] succeeded!`,
    ],
  );
  const usage = await runCli(["-z", "127.0.0.1"]);
  assertEquals(usage.code, 2);
  // A port with a name in /etc/services: both print the name.
  const named = await listenOnServicePort();
  if (named) {
    using _l = named.listener;
    for (const port of [String(named.port), named.name]) {
      const n = await spawn("nc", ["-zv", "127.0.0.1", port]).output;
      const d = await runCli(["-zv", "127.0.0.1", port]);
      assertEquals(d.code, n.code, port);
      assertEquals(scanLines(d.stderr), scanLines(n.stderr), port);
      assertMatch(d.stderr, new RegExp(`\\[tcp/${named.name}\\] succeeded`));
    }
  }
});

Deno.test(
  "denocat -zu: a UDP port with a listener succeeds, a closed one fails, as nc -zu",
  {
    ignore: needs("nc"),
  },
  async () => {
    using udp = bindUdp({ hostname: "127.0.0.1" });
    const u = String(udp.addr.port);
    const closed = String(freePort());
    for (const ports of [[u], [closed]]) {
      const n = await spawn("nc", ["-zuv", "127.0.0.1", ...ports]).output;
      const d = await runCli(["-zuv", "127.0.0.1", ...ports]);
      assertEquals(d.code, n.code, ports.join(" "));
      assertEquals(scanLines(d.stderr), scanLines(n.stderr), ports.join(" "));
    }
  },
);

Deno.test("denocat probe HOST takes port lists with commas and several arguments", async () => {
  using a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using b = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closed = freePort();
  const r = await runCli([
    "probe",
    "--json",
    "127.0.0.1",
    `${a.addr.port},${closed}`,
    String(b.addr.port),
  ]);
  assertEquals(r.code, 0, r.stderr);
  const report = JSON.parse(r.text);
  assertEquals(report.scanned, 3);
  assertEquals(
    report.open.map((x: { port: number }) => x.port),
    [a.addr.port, b.addr.port].sort((x, y) => x - y),
  );
  assertEquals(report.closed, 1);
});

Deno.test(
  "denocat -C sends CR LF for each bare LF: the same bytes on the wire as nc -C",
  {
    ignore: needs("nc", "python3"),
  },
  async () => {
    await using py = await startPy(PY_PEER_SERVER);
    const input = "GET / HTTP/1.0\nHost: x\r\n\nend";
    const d = await runCli(["-C", "127.0.0.1", String(py.port)], {
      stdin: input,
    });
    const n = await spawn("nc", ["-N", "-C", "127.0.0.1", String(py.port)], {
      stdin: input,
    }).output;
    assertEquals(d.code, 0, d.stderr);
    assertEquals(n.code, 0, n.stderr);
    const wire = (text: string) => text.trim().split(" ")[2];
    assertEquals(wire(d.text), wire(n.text));
    assertEquals(
      wire(d.text),
      new TextEncoder().encode("GET / HTTP/1.0\r\nHost: x\r\n\r\nend").toHex(),
    );
  },
);

Deno.test(
  "denocat -d and --recv-only never read stdin and keep the write side open, as nc -d",
  {
    ignore: needs("nc"),
  },
  async () => {
    for (
      const cmd of [["denocat", "-d"], ["denocat", "--recv-only"], ["nc", "-d"]]
    ) {
      using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const args = [cmd[1]!, "127.0.0.1", String(l.addr.port)];
      const run = cmd[0] === "denocat"
        ? runCli(args, { stdin: "never sent" })
        : spawn("nc", args, { stdin: "never sent" }).output;
      const c = await l.accept();
      // Nothing arrives, not even a FIN, within 300 ms.
      const buf = new Uint8Array(64);
      const first = await Promise.race([
        c.read(buf).then((n) => n === null ? "EOF" : `${n} bytes`),
        new Promise((ok) => setTimeout(() => ok("nothing"), 300)),
      ]);
      assertEquals(first, "nothing", cmd.join(" "));
      await c.write(new TextEncoder().encode("data"));
      c.close();
      const out = await run;
      assertEquals(out.code, 0, `${cmd.join(" ")}: ${out.stderr}`);
      assertEquals(out.text, "data", cmd.join(" "));
    }
  },
);

Deno.test("denocat --send-only sends stdin, discards replies and ends after stdin EOF", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const run = runCli(["--send-only", "127.0.0.1", String(l.addr.port)], {
    stdin: "payload",
  });
  const c = await l.accept();
  await c.write(new TextEncoder().encode("ignored reply"));
  const buf = new Uint8Array(64);
  let text = "";
  let n;
  while ((n = await c.read(buf)) !== null) {
    text += decoder.decode(buf.subarray(0, n));
  }
  const out = await run; // ends although this side never closes
  c.close();
  assertEquals(text, "payload");
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.text, "");
});

Deno.test("denocat -l -k -m N serves at most N clients at once", async () => {
  await using server = startCli([
    "-v",
    "-l",
    "-k",
    "-m",
    "1",
    "127.0.0.1",
    "0",
  ]);
  const m = await server.waitForStderr(/listening on .*:(\d+)/);
  const port = Number(m[1]);
  const first = await Deno.connect({ hostname: "127.0.0.1", port });
  await server.waitForStderr(/connection from/);
  const second = await Deno.connect({ hostname: "127.0.0.1", port });
  // The second is closed on arrival: it reads EOF (or a reset).
  const buf = new Uint8Array(8);
  const got = await second.read(buf).catch(() => null);
  assertEquals(got, null);
  await server.waitForStderr(/closed, 1 clients already \(--max-conns\)/);
  second.close();
  await first.write(new TextEncoder().encode("first"));
  first.close();
  await server.waitForStderr(/closed after sending 5 bytes/);
  const usage = await runCli(["-m", "2", "-l", "0"]);
  assertEquals(usage.code, 2);
  assertMatch(usage.stderr, /-m\/--max-conns needs -l -k/);
});

Deno.test(
  "denocat --keepalive=IDLE,INTVL,CNT sets the timers ss shows; --keepalive alone the system's",
  {
    ignore: needs("ss"),
  },
  async () => {
    for (
      const [flag, short] of [["--keepalive=7,3,4", true], [
        "--keepalive",
        false,
      ]] as const
    ) {
      using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      await using client = startCli(
        ["-v", flag, "127.0.0.1", String(l.addr.port)],
        { keepStdin: true },
      );
      const c = await l.accept();
      // Plain keepalive is switched on once connected: wait for that.
      await client.waitForStderr(/connected to/);
      const peer = (c.remoteAddr as Deno.NetAddr).port;
      const ss = await spawn("ss", [
        "-tno",
        "state",
        "established",
        `( sport = :${peer} )`,
      ]).output;
      const timer = /timer:\(keepalive,([^,]+),/.exec(ss.text)?.[1];
      assert(timer !== undefined, `no keepalive timer: ${ss.text}`);
      // The system's idle time is 2 hours (shown in minutes); ours is 7 s.
      assertEquals(/min/.test(timer!), !short, `${flag}: ${timer}`);
      c.close();
      await client.stdin!.close();
      assertEquals((await client.output).code, 0);
    }
    const bad = await runCli(["--keepalive=0", "127.0.0.1", "9"]);
    assertEquals(bad.code, 2);
    const listen = await runCli(["-l", "--keepalive=5", "0"]);
    assertEquals(listen.code, 2);
    assertMatch(listen.stderr, /-l takes plain --keepalive/);
  },
);

Deno.test("an unknown flag names the nearest known one; IPv6 in errors is bracketed once", async () => {
  const r = await runCli(["--keep-opne", "-l", "0"]);
  assertEquals(r.code, 2);
  assertEquals(
    r.stderr,
    "denocat: unknown option --keep-opne; did you mean --keep-open? (see --help)\n",
  );
  const p = await runCli(["probe", "--jsno", "127.0.0.1", "1"]);
  assertMatch(p.stderr, /did you mean --json\?/);
  const port = freePort();
  const v6 = await runCli(["[::1]", String(port)]);
  assertEquals(v6.code, 1);
  assertEquals(
    v6.stderr,
    `denocat: cannot connect to [::1]:${port}: connection refused\n`,
  );
});

Deno.test(
  "servers take plain --keepalive: -l, -l --frame, echo, recv, shell -l (ss shows the timer on accepted sockets)",
  {
    ignore: needs("ss"),
  },
  async () => {
    const servers = [
      ["-l", "-k", "(control: no --keepalive)"],
      ["-l", "-k"],
      ["-l", "--frame", "u32be", "-k"],
      ["echo"],
      ["recv", "-k", "-o", await Deno.makeTempDir()],
      ["shell", "-l", "--insecure-no-auth"],
    ];
    for (const args of servers) {
      const dir = args.includes("-o") ? args.at(-1)! : undefined;
      const control = args.at(-1)!.startsWith("(");
      await using server = startCli([
        ...args.filter((a) => !a.startsWith("(")),
        "-v",
        ...(control ? [] : ["--keepalive"]),
        "127.0.0.1",
        "0",
      ]);
      const m = await server.waitForStderr(/listening on .*:(\d+)/);
      const port = Number(m[1]);
      using c = await Deno.connect({ hostname: "127.0.0.1", port });
      let timer: string | undefined;
      for (let i = 0; i < (control ? 5 : 50) && timer === undefined; i++) {
        // Any state: a server whose stdin is empty has already sent its FIN.
        const ss = await spawn("ss", [
          "-tno",
          `( sport = :${port} and dport = :${
            (c.localAddr as Deno.NetAddr).port
          } )`,
        ]).output;
        timer = /timer:\(keepalive,/.exec(ss.text)?.[0];
        if (timer === undefined) await new Promise((ok) => setTimeout(ok, 20));
      }
      assertEquals(timer !== undefined, !control, args.join(" "));
      server.kill("SIGTERM");
      await server.output;
      if (dir) await Deno.remove(dir, { recursive: true });
    }
    const timers = await runCli(["echo", "--keepalive=5", "0"]);
    assertEquals(timers.code, 2);
    assertMatch(timers.stderr, /a server takes plain --keepalive/);
  },
);

/** Runs `denocat ARGS` with a terminal (a pty from python3) as stdin, types `typed`, then EOF. */
const PY_TTY = `
import os, pty, subprocess, sys, time
master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
os.close(slave)
time.sleep(1.0)
os.write(master, sys.stdin.buffer.read())
time.sleep(0.3)
os.write(master, b"\\x04")
out, err = p.communicate(timeout=10)
sys.stderr.write(err.decode())
sys.exit(p.returncode)
`;

Deno.test("denocat -u at a terminal sends each typed line as one datagram", {
  ignore: needs("python3"),
}, async () => {
  using sink = bindUdp({ hostname: "127.0.0.1" });
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const run = spawn("python3", [
    "-c",
    PY_TTY,
    Deno.execPath(),
    "run",
    "-A",
    cli,
    "-u",
    "-w",
    "0.2",
    "127.0.0.1",
    String(sink.addr.port),
  ], { stdin: "one\ntwo\n" }).output;
  const got: string[] = [];
  for (let i = 0; i < 2; i++) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const d = await Promise.race([
      sink.receive(),
      new Promise<null>((ok) => timer = setTimeout(() => ok(null), 10000)),
    ]);
    clearTimeout(timer);
    if (d === null) break;
    got.push(decoder.decode(d!.data));
  }
  assertEquals(got, ["one\n", "two\n"]);
  const out = await run;
  assertEquals(out.code, 0, out.stderr);
});

Deno.test(
  "denocat -u -s ADDR -p PORT sends from that address and port, as nc -u -s -p (python3 sees both)",
  {
    ignore: needs("nc", "python3"),
  },
  async () => {
    await using py = await startPy(`
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    d, a = s.recvfrom(65536)
    s.sendto(("%s %d %s\\n" % (a[0], a[1], d.hex())).encode(), a)
`);
    const ours = freeHighPort();
    const d = await runCli(
      [
        "-u",
        "-w",
        "0.3",
        "-s",
        "127.0.0.1",
        "-p",
        String(ours),
        "127.0.0.1",
        String(py.port),
      ],
      { stdin: "x" },
    );
    assertEquals(d.code, 0, d.stderr);
    assertEquals(d.text, `127.0.0.1 ${ours} 78\n`);
    const theirs = freeHighPort();
    const n = await spawn("nc", [
      "-u",
      "-w",
      "1",
      "-s",
      "127.0.0.1",
      "-p",
      String(theirs),
      "127.0.0.1",
      String(py.port),
    ], { stdin: "x" }).output;
    assertEquals(n.text, `127.0.0.1 ${theirs} 78\n`);
    for (
      const [args, re] of [
        [["-U", "-p", "5", "/tmp/x"], /-p does not apply to -U/],
        [["-lU", "-s", "/tmp/y", "/tmp/x"], /-s with -U is the local path/],
      ] as Array<[string[], RegExp]>
    ) {
      const r = await runCli(args);
      assertEquals(r.code, 2, args.join(" "));
      assertMatch(r.stderr, re);
    }
  },
);

Deno.test("denocat -q 0 ends right after stdin EOF though the peer stays open", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const t0 = performance.now();
  const run = runCli(["-q", "0", "127.0.0.1", String(l.addr.port)], {
    stdin: "x",
  });
  const c = await l.accept();
  const out = await run; // the peer never closes
  assertEquals(out.code, 0, out.stderr);
  assertEquals(dec(await readAllBounded(c)), "x");
  c.close();
  assert(performance.now() - t0 < 5000);
});

function dec(b: Uint8Array): string {
  return decoder.decode(b);
}

/** Reads until EOF or a reset (the client closed its socket). */
async function readAllBounded(c: Deno.Conn): Promise<Uint8Array> {
  const buf = new Uint8Array(64);
  let n: number | null;
  let total = 0;
  try {
    while ((n = await c.read(buf.subarray(total))) !== null) total += n;
  } catch (err) {
    if (!(err instanceof Deno.errors.ConnectionReset)) throw err;
  }
  return buf.slice(0, total);
}
