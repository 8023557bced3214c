/**
 * The TCP flags nc and ncat users type without thinking, each driven exactly
 * as typed, and compared with OpenBSD nc (and python3) on the same input
 * where both exist (issue 16).
 */
import { assertEquals, assertOk as assert } from "../../lib/_assert.ts";
import {
  freePort,
  needs,
  runCli,
  spawn,
  startCli,
  startPy,
} from "../_helpers.ts";
import { assertMatch, freeHighPort, PY_PEER_SERVER } from "./_nc.ts";

const decoder = new TextDecoder();

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
    for (
      const args of [["-U", "--keepalive", "/tmp/x"], [
        "echo",
        "-U",
        "--keepalive",
        "/tmp/x",
      ]]
    ) {
      const unix = await runCli(args);
      assertEquals(unix.code, 2, args.join(" "));
      assertMatch(
        unix.stderr,
        /--keepalive applies to TCP, not to Unix sockets/,
      );
    }
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
