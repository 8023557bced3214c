import { fileURLToPath } from "node:url";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { VERSION } from "../../lib/version.ts";
import {
  freePort,
  hasCommand,
  runCli,
  spawn,
  startCli,
  startPy,
  startServer,
  testOnlyOn,
} from "../_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "POSIX signals (SIGTERM), sh, Unix sockets and process groups",
);

const PY_REPLY_AFTER_EOF = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
c, _ = s.accept(); data = b""
while True:
    b = c.recv(65536)
    if not b: break
    data += b
c.sendall(b"got %d bytes after your EOF\\n" % len(data)); c.close()
`;

const PY_RESET = `
import socket, struct
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.recv(10)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
`;

const PY_SILENT = `
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True)
c, _ = s.accept(); time.sleep(10)
`;

Deno.test("denocat HOST PORT: echo hi gets the reply through denocat echo", async () => {
  await using server = await startServer(["echo", "127.0.0.1", "0"]);
  const r = await runCli(["127.0.0.1", String(server.port)], { stdin: "hi\n" });
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.text, "hi\n");
});

Deno.test("denocat HOST PORT: half-close lets a server reply after our EOF", {
  ignore: !hasCommand("python3"),
}, async () => {
  await using py = await startPy(PY_REPLY_AFTER_EOF);
  const r = await runCli(["127.0.0.1", String(py.port)], {
    stdin: "twelve bytes",
  });
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.text, "got 12 bytes after your EOF\n");
});

Deno.test("denocat --no-shutdown -q: no FIN, quits after the delay", {
  ignore: !hasCommand("python3"),
}, async () => {
  await using py = await startPy(PY_REPLY_AFTER_EOF);
  const t0 = Date.now();
  const r = await runCli([
    "--no-shutdown",
    "-q",
    "0.5",
    "127.0.0.1",
    String(py.port),
  ], { stdin: "x" });
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.text, ""); // the server never saw EOF, so it never replied
  assertOk(Date.now() - t0 >= 500);
});

Deno.test("denocat -l: serves one connection, then exits with what it received", async () => {
  await using server = await startServer(["-l", "127.0.0.1", "0"], {
    stdin: "from listener\n",
  });
  const r = await runCli(["127.0.0.1", String(server.port)], {
    stdin: "from client\n",
  });
  assertEquals(r.text, "from listener\n");
  const s = await server.output;
  assertEquals(s.code, 0, s.stderr);
  assertEquals(s.text, "from client\n");
  assertOk(/connection from 127\.0\.0\.1:\d+/.test(s.stderr));
});

test("denocat -l -k: serves clients concurrently until SIGTERM", async () => {
  await using server = await startServer(["-l", "-k", "127.0.0.1", "0"], {
    keepStdin: true,
  });
  const port = String(server.port);
  const [a, b] = await Promise.all([
    runCli(["127.0.0.1", port], { stdin: "one\n" }),
    runCli(["127.0.0.1", port], { stdin: "two\n" }),
  ]);
  assertEquals([a.code, b.code], [0, 0]);
  // Both clients' bytes reach stdout while the listener keeps running.
  await server.waitForStderr(
    /closed after sending 4 bytes[\s\S]*closed after sending 4 bytes/,
  );
  server.kill("SIGTERM");
  const s = await server.output;
  assertEquals(s.code, 0, s.stderr);
  assertEquals(s.text.split("\n").filter(Boolean).sort(), ["one", "two"]);
});

test("denocat -U: round trip over a Unix socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/echo.sock`;
  await using server = startCli(["echo", "-v", "-U", path]);
  await server.waitForStderr(/listening on/);
  const r = await runCli(["-U", path], { stdin: "over unix" });
  assertEquals(r.text, "over unix");
  server.kill("SIGTERM");
  assertEquals((await server.output).code, 0);
  await Deno.remove(dir, { recursive: true });
});

test("denocat echo: SIGTERM closes open connections and exits 0", async () => {
  await using server = await startServer(["echo", "--upper", "127.0.0.1", "0"]);
  const c = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await c.write(new TextEncoder().encode("abc"));
  const buf = new Uint8Array(3);
  await c.read(buf);
  assertEquals(new TextDecoder().decode(buf), "ABC");
  server.kill("SIGTERM");
  assertEquals(await c.read(buf), null);
  c.close();
  const s = await server.output;
  assertEquals(s.code, 0);
  assertOk(s.stderr.includes("shutting down"));
});

// Errors: each a one-line message and its documented exit code.

Deno.test("errors: connection refused is exit 1 with a one-line message", async () => {
  const port = freePort();
  const r = await runCli(["127.0.0.1", String(port)]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr,
    `denocat: cannot connect to 127.0.0.1:${port}: connection refused\n`,
  );
});

Deno.test("errors: unknown host is exit 1", async () => {
  const r = await runCli(["no-such-host.invalid", "80"]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr,
    "denocat: cannot connect to no-such-host.invalid:80: unknown host\n",
  );
});

Deno.test("errors: port in use is exit 1", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const r = await runCli(["-l", "127.0.0.1", String(l.addr.port)]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr,
    `denocat: cannot listen on 127.0.0.1:${l.addr.port}: address already in use\n`,
  );
});

Deno.test("errors: bad port, bad flag, missing and extra arguments are exit 2", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["127.0.0.1", "70000"], /^denocat: invalid port: 70000\n$/],
    [
      ["127.0.0.1", "no-such-service"],
      /^denocat: invalid port: no-such-service \(not a tcp service in \/etc\/services\)\n$/,
    ],
    [["--frobnicate", "h", "1"], /^denocat: unknown option --frobnicate/],
    [["127.0.0.1"], /^denocat: missing HOST and PORT/],
    [["-w", "soon", "127.0.0.1", "1"], /^denocat: invalid -w value: soon/],
    [["-k", "127.0.0.1", "1"], /^denocat: -k needs -l\n$/],
    [["echo"], /^denocat: missing PORT/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assertOk(re.test(r.stderr), `${args.join(" ")}: ${r.stderr}`);
    assertEquals(r.stderr.trim().split("\n").length, 1);
  }
});

Deno.test("errors: connection reset by the peer is exit 1", {
  ignore: !hasCommand("python3"),
}, async () => {
  await using py = await startPy(PY_RESET);
  const r = await runCli(["--no-shutdown", "127.0.0.1", String(py.port)], {
    stdin: "hello",
  });
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr,
    "denocat: cannot relay data: connection reset by peer\n",
  );
});

Deno.test(
  "-w: an idle timeout ends the relay quietly with exit 0 (nc -w's rule)",
  {
    ignore: !hasCommand("python3"),
  },
  async () => {
    await using py = await startPy(PY_SILENT);
    const t0 = performance.now();
    const r = await runCli([
      "-w",
      "0.5",
      "--no-shutdown",
      "127.0.0.1",
      String(py.port),
    ]);
    const ms = performance.now() - t0;
    assertEquals(r.code, 0);
    assertEquals(r.stderr, "");
    assertOk(ms >= 500, `ended after ${ms} ms`);
    // -v names the reason.
    await using py2 = await startPy(PY_SILENT);
    const v = await runCli([
      "-v",
      "-w",
      "0.3",
      "--no-shutdown",
      "127.0.0.1",
      String(py2.port),
    ]);
    assertEquals(v.code, 0);
    assertOk(/closed \(idle\)/.test(v.stderr), v.stderr);
  },
);

const canDropPrivileges = Deno.uid() === 0 && hasCommand("setpriv");

/**
 * What an unprivileged user needs to run the CLI, copied where it can read
 * it (the checkout may sit in a 0700 home or `mktemp -d` folder): cli.ts,
 * deno.json and lib/. `undefined`, with the reason, when that user still
 * cannot run Deno from there.
 */
async function unprivilegedCopy(): Promise<
  { cli: string; denoDir: string; root: string } | { skip: string }
> {
  const root = await Deno.makeTempDir({ prefix: "denocat-nobody-" });
  await Deno.chmod(root, 0o755);
  const repo = fileURLToPath(new URL("../../", import.meta.url));
  const cp = await new Deno.Command("cp", {
    args: ["-R", `${repo}cli.ts`, `${repo}deno.json`, `${repo}lib`, root],
  }).output();
  const denoDir = `${root}/deno_dir`;
  await Deno.mkdir(denoDir, { mode: 0o777 });
  await Deno.chmod(denoDir, 0o777);
  const cli = `${root}/cli.ts`;
  const check = await new Deno.Command("setpriv", {
    args: [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "sh",
      "-c",
      'test -r "$1" && test -x "$2"',
      "sh",
      cli,
      Deno.execPath(),
    ],
  }).output();
  if (!cp.success || !check.success) {
    await Deno.remove(root, { recursive: true });
    return {
      skip: `uid 65534 cannot read ${cli} or run ${Deno.execPath()} ` +
        "(TMPDIR or Deno itself under a private directory?)",
    };
  }
  return { cli, denoDir, root };
}

Deno.test("errors: permission denied binding a privileged port is exit 1", {
  ignore: !canDropPrivileges,
}, async () => {
  const copy = await unprivilegedCopy();
  if ("skip" in copy) {
    console.log(`skipped: ${copy.skip}`);
    return;
  }
  try {
    const port = 1000 + Math.floor(Math.random() * 20);
    const r = await spawn("setpriv", [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      Deno.execPath(),
      "run",
      "-A",
      copy.cli,
      "-l",
      "127.0.0.1",
      String(port),
    ], { env: { DENO_DIR: copy.denoDir, HOME: "/tmp" }, cwd: copy.root })
      .output;
    assertEquals(
      r.stderr,
      `denocat: cannot listen on 127.0.0.1:${port}: permission denied\n`,
    );
    assertEquals(r.code, 1);
  } finally {
    await Deno.remove(copy.root, { recursive: true });
  }
});

Deno.test("--version and --help print and exit 0", async () => {
  const v = await runCli(["--version"]);
  assertEquals(v.code, 0);
  assertEquals(
    v.text,
    `denocat ${VERSION} (${Deno.build.target}; deno ${Deno.version.deno})\n`,
  );
  for (const args of [["--help"], ["echo", "-h"]]) {
    const h = await runCli(args);
    assertEquals(h.code, 0);
    assertOk(h.text.includes("Usage"), h.text);
  }
});

Deno.test("denocat -l with an empty stdin still receives a whole stream", async () => {
  const data = new Uint8Array(8 << 20).map((_, i) => i * 7);
  await using server = await startServer(["-l", "127.0.0.1", "0"], {
    stdin: "",
  });
  const r = await runCli(["127.0.0.1", String(server.port)], { stdin: data });
  assertEquals(r.code, 0, r.stderr);
  const s = await server.output;
  assertEquals(s.stdout.length, data.length);
  assertEquals(s.stdout, data);
});

Deno.test("denocat -l: restarting at once on the same port works (SO_REUSEADDR)", async () => {
  await using first = await startServer(["-l", "127.0.0.1", "0"], {
    stdin: "bye\n",
  });
  const port = String(first.port);
  // The listener sends and closes first, so its side of the connection sits
  // in TIME_WAIT. (--no-shutdown: a client FIN would end the listener's
  // session at once, nc's rule for -l, maybe before it read its stdin.)
  const r = await runCli(["--no-shutdown", "127.0.0.1", port], {
    stdin: "x",
  });
  assertEquals(r.text, "bye\n");
  assertEquals((await first.output).code, 0);
  await using second = startCli(["-l", "-v", "127.0.0.1", port]);
  await second.waitForStderr(
    new RegExp(`listening on 127\\.0\\.0\\.1:${port}`),
  );
  const r2 = await runCli(["127.0.0.1", port], { stdin: "again\n" });
  assertEquals(r2.code, 0);
  const s = await second.output;
  assertEquals(s.code, 0, s.stderr);
  assertEquals(s.text, "again\n");
});
