/**
 * UDP datagram boundaries and port scans as nc: one read one datagram,
 * typed lines at a terminal, -u -s/-p, -z and -zu beside nc, and probe's
 * port lists (issue 16).
 */
import { assertEquals } from "../../lib/_assert.ts";
import { bindUdp } from "../../lib/udp/socket.ts";
import { freePort, needs, runCli, spawn, startPy } from "../_helpers.ts";
import {
  assertMatch,
  freeHighPort,
  listenOnServicePort,
  scanLines,
} from "../tcp/_nc.ts";

const decoder = new TextDecoder();

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
