/**
 * denocat beside real peers: nc (OpenBSD), socat and python3 speaking the
 * seeds' upper-case echo protocol. Missing peers make these tests ignored,
 * except in CI (DENOCAT_REQUIRE_PEERS=1), where they fail.
 */
import { assertEquals } from "../../lib/_assert.ts";
import {
  freePort,
  needs,
  needsOpenbsdNc,
  randomBytes,
  runCli,
  sha256,
  spawn,
  startServer,
} from "../_helpers.ts";

const SIZE = 64 << 20;
const data = randomBytes(SIZE);
const digest = sha256(data);

Deno.test("interop: nc -N sends 64 MiB into denocat -l intact", {
  ignore: needsOpenbsdNc(),
}, async () => {
  await using server = await startServer(["-l", "127.0.0.1", "0"]);
  const nc = await spawn("nc", ["-N", "127.0.0.1", String(server.port)], {
    stdin: data,
    timeout: 60000,
  }).output;
  assertEquals(nc.code, 0, nc.stderr);
  const s = await server.output;
  assertEquals(s.code, 0, s.stderr);
  assertEquals(s.stdout.length, SIZE);
  assertEquals(sha256(s.stdout), digest);
});

Deno.test("interop: denocat sends 64 MiB into nc -l intact", {
  ignore: needsOpenbsdNc(),
}, async () => {
  const port = freePort();
  await using nc = spawn("nc", ["-l", "127.0.0.1", String(port)], {
    timeout: 60000,
  });
  await waitForListening(port);
  const r = await runCli(["127.0.0.1", String(port)], {
    stdin: data,
    timeout: 60000,
  });
  assertEquals(r.code, 0, r.stderr);
  const got = await nc.output;
  assertEquals(got.stdout.length, SIZE);
  assertEquals(sha256(got.stdout), digest);
});

Deno.test("interop: socat sends 64 MiB into denocat -l intact", {
  ignore: needs("socat"),
}, async () => {
  await using server = await startServer(["-l", "127.0.0.1", "0"]);
  const s1 = await spawn("socat", [
    "-u",
    "STDIN",
    `TCP:127.0.0.1:${server.port}`,
  ], { stdin: data, timeout: 60000 })
    .output;
  assertEquals(s1.code, 0, s1.stderr);
  const s = await server.output;
  assertEquals(sha256(s.stdout), digest);
});

Deno.test("interop: denocat sends 64 MiB into a socat listener intact", {
  ignore: needs("socat"),
}, async () => {
  const port = freePort();
  await using socat = spawn("socat", [
    "-u",
    `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`,
    "STDOUT",
  ], {
    timeout: 60000,
  });
  await waitForListening(port);
  const r = await runCli(["127.0.0.1", String(port)], {
    stdin: data,
    timeout: 60000,
  });
  assertEquals(r.code, 0, r.stderr);
  const got = await socat.output;
  assertEquals(sha256(got.stdout), digest);
});

Deno.test(
  "interop: socat talks to denocat echo and gets its bytes back after half-close",
  {
    ignore: needs("socat"),
  },
  async () => {
    await using server = await startServer(["echo", "127.0.0.1", "0"]);
    const chunk = data.subarray(0, 4 << 20);
    const r = await spawn("socat", [
      "-t",
      "5",
      "STDIO",
      `TCP:127.0.0.1:${server.port}`,
    ], { stdin: chunk, timeout: 30000 })
      .output;
    assertEquals(r.code, 0, r.stderr);
    assertEquals(sha256(r.stdout), sha256(chunk));
  },
);

const SEED_UPPER_CLIENT = `
import socket, sys
sk = socket.socket()
sk.connect(("127.0.0.1", int(sys.argv[1])))
for msg in [b"hello", b"hah", b"mixed Case 123"]:
    sk.send(msg)
    print(sk.recv(1024).decode("utf-8"))
sk.close()
`;

Deno.test("interop: the seeds' python3 client against denocat echo --upper", {
  ignore: needs("python3"),
}, async () => {
  await using server = await startServer(["echo", "--upper", "127.0.0.1", "0"]);
  const r = await spawn("python3", [
    "-c",
    SEED_UPPER_CLIENT,
    String(server.port),
  ]).output;
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.text, "HELLO\nHAH\nMIXED CASE 123\n");
});

/** nc and socat cannot report readiness; poll with ss until the port is bound. */
async function waitForListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ss = await new Deno.Command("ss", {
      args: ["-ltnH", `sport = :${port}`],
      stdout: "piped",
      stderr: "null",
    })
      .output().catch(() => undefined);
    if (ss === undefined) {
      await new Promise((r) => setTimeout(r, 500));
      return;
    }
    if (new TextDecoder().decode(ss.stdout).includes(`:${port}`)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nc never listened on ${port}`);
}
