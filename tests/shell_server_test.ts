/**
 * The shell library over real loopback sockets: exit codes, separate
 * streams, stdin, process-group kills on timeout and disconnect,
 * authentication, session limits, output limits.
 */
import { assertEquals, assertOk, assertRejects } from "../lib/_assert.ts";
import {
  connectShell,
  type ExecOptions,
  ShellRemoteError,
  shellServer,
  type ShellServerOptions,
} from "../lib/shell/mod.ts";
import { ErrorCode } from "../lib/shell/protocol.ts";
import type { AuditRecord } from "../lib/shell/audit.ts";
import { PROTOCOL_VERSION } from "../lib/shell/protocol.ts";
import { needs, spawn, startCli, testOnlyOn } from "./_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "process groups and POSIX signals (the shell server)",
);

const dec = new TextDecoder();

/** A Writer collecting bytes. */
function sink() {
  const chunks: Uint8Array[] = [];
  return {
    write(p: Uint8Array) {
      chunks.push(p.slice());
      return Promise.resolve(p.length);
    },
    text: () => dec.decode(concat(chunks)),
    bytes: () => concat(chunks),
  };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** A Reader over fixed bytes. */
function source(data: Uint8Array | string) {
  let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return {
    read(p: Uint8Array) {
      if (bytes.length === 0) return Promise.resolve(null);
      const n = Math.min(p.length, bytes.length);
      p.set(bytes.subarray(0, n));
      bytes = bytes.subarray(n);
      return Promise.resolve(n);
    },
  };
}

function server(options: ShellServerOptions = {}) {
  const records: AuditRecord[] = [];
  const s = shellServer({ port: 0 }, {
    insecureNoAuth: true,
    audit: (r) => records.push(r),
    ...options,
  });
  return Object.assign(s, {
    records,
    ep: { hostname: "127.0.0.1", port: s.addr.port },
  });
}

async function run(command: string, io: ExecOptions = {}, opts = {}) {
  await using srv = server(opts);
  await using session = await connectShell(srv.ep);
  return await session.exec(command, io);
}

/** PIDs whose whole command line is `cmdline` (shells that mention it do not count). */
async function pgrep(cmdline: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", {
    args: ["-f", `^${cmdline.replaceAll(".", "\\.")}$`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return dec.decode(out.stdout).split("\n").filter(Boolean).map(Number);
}

async function waitFor(
  cond: () => Promise<boolean>,
  what: string,
  ms = 5000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A unique `sleep` duration, so pgrep finds exactly our processes. */
function marker(): string {
  return `100.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
}

test("exec() reports exit codes 0 and 7", async () => {
  await using srv = server();
  await using session = await connectShell(srv.ep);
  const ok = await session.exec("true");
  assertEquals([ok.code, ok.signal, ok.exitCode], [0, 0, 0]);
  const seven = await session.exec("exit 7");
  assertEquals([seven.code, seven.signal, seven.exitCode], [7, 0, 7]);
  assertEquals(srv.commands, 2);
});

test("exec() reports death by signal as 128+N", async () => {
  const term = await run("kill -TERM $$");
  assertEquals([term.signal, term.signalName, term.exitCode], [
    15,
    "SIGTERM",
    143,
  ]);
  const kill = await run("kill -KILL $$");
  assertEquals([kill.signal, kill.exitCode], [9, 137]);
});

test("exec() keeps stdout and stderr apart, bytes untouched", async () => {
  const out = sink();
  const err = sink();
  // Invalid UTF-8 and a GBK byte pair pass through undecoded.
  const exit = await run(
    "printf 'out\\377\\n'; printf 'err\\304\\343\\n' >&2; printf more",
    { stdout: out, stderr: err },
  );
  assertEquals(exit.code, 0);
  assertEquals(
    out.bytes(),
    new Uint8Array([0x6f, 0x75, 0x74, 0xff, 0x0a, 0x6d, 0x6f, 0x72, 0x65]),
  );
  assertEquals(
    err.bytes(),
    new Uint8Array([0x65, 0x72, 0x72, 0xc4, 0xe3, 0x0a]),
  );
});

test("exec() runs a command that is not valid UTF-8, bytes intact", async () => {
  const out = sink();
  const command = new Uint8Array([
    ...new TextEncoder().encode("printf '"),
    0xc4,
    0xe3, // GBK, not UTF-8
    ...new TextEncoder().encode("'"),
  ]);
  await using srv = server();
  await using session = await connectShell(srv.ep);
  const exit = await session.exec(command, { stdout: out });
  assertEquals(exit.code, 0);
  assertEquals(out.bytes(), new Uint8Array([0xc4, 0xe3]));
});

test("exec() forwards stdin with EOF", async () => {
  const out = sink();
  const exit = await run("wc -c", { stdin: source("abc"), stdout: out });
  assertEquals(exit.code, 0);
  assertEquals(out.text().trim(), "3");
  // 3 MiB of stdin, hashed on the far side.
  const data = crypto.getRandomValues(new Uint8Array(65536)).slice();
  const big = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i += data.length) big.set(data, i);
  const sum = sink();
  await run("sha256sum | cut -c1-64", { stdin: source(big), stdout: sum });
  const { createHash } = await import("node:crypto");
  assertEquals(
    sum.text().trim(),
    createHash("sha256").update(big).digest("hex"),
  );
});

test("exec() without stdin gives the command /dev/null", async () => {
  const out = sink();
  const exit = await run("cat; echo done", { stdout: out });
  assertEquals([exit.code, out.text()], [0, "done\n"]);
});

test("exec() passes accepted env and cwd, and refuses other variables (AcceptEnv)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = sink();
    await run("echo $GREETING $LC_X; pwd", {
      stdout: out,
      env: { GREETING: "hello", LC_X: "x" },
      cwd: dir,
    }, { acceptEnv: ["GREETING", "LC_*"] });
    assertEquals(out.text(), `hello x\n${await Deno.realPath(dir)}\n`);
    await using srv = server();
    await using session = await connectShell(srv.ep);
    const err = await assertRejects(
      () => session.exec("env", { env: { A: "1" } }),
      ShellRemoteError,
      'environment variable "A" not accepted by this server (it accepts none; see --accept-env)',
    );
    assertEquals((err as ShellRemoteError).code, ErrorCode.Refused);
    // The session survives a refused command.
    assertEquals((await session.exec("exit 3")).code, 3);
    await assertRejects(
      () => session.exec("true", { cwd: `${dir}/missing` }),
      ShellRemoteError,
      `cannot start /bin/sh in "${dir}/missing": no such file or directory`,
    );
    assertEquals((await session.exec("exit 4")).code, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("timeout kills the whole process group, grandchildren included", async () => {
  const mark = marker();
  await using srv = server({ timeout: 700, killGraceMs: 500 });
  await using session = await connectShell(srv.ep);
  const t0 = performance.now();
  const running = session.exec(`sh -c 'sleep ${mark} & sleep ${mark}'`);
  await waitFor(
    async () => (await pgrep(`sleep ${mark}`)).length === 2,
    "both sleeps started",
  );
  const exit = await running;
  const took = performance.now() - t0;
  // Killing only the shell would leave the sleeps holding the output pipes
  // for 100 s; the whole group dies at the timeout instead.
  assertOk(took < 3000, `exit after ${took} ms`);
  assertEquals(exit.timedOut, true);
  assertEquals(exit.signalName, "SIGTERM");
  await waitFor(
    async () => (await pgrep(`sleep ${mark}`)).length === 0,
    "no sleep left",
    3000,
  );
  const rec = srv.records.find((r) => r.event === "exec");
  assertOk(rec?.event === "exec" && rec.timedOut);
});

test("client disconnect kills the running command's group", async () => {
  const mark = marker();
  await using srv = server({ killGraceMs: 500 });
  const session = await connectShell(srv.ep);
  const running = session.exec(`sh -c 'sleep ${mark} & sleep ${mark}'`)
    .catch((e) => e);
  await waitFor(
    async () => (await pgrep(`sleep ${mark}`)).length === 2,
    "both sleeps started",
  );
  session.close();
  assertOk((await running) instanceof Error);
  await waitFor(
    async () => (await pgrep(`sleep ${mark}`)).length === 0,
    "no sleep left after the client went away",
    4000,
  );
  await waitFor(
    () => Promise.resolve(srv.records.some((r) => r.event === "exec")),
    "audit record",
  );
  const rec = srv.records.find((r) => r.event === "exec");
  assertOk(rec?.event === "exec" && rec.disconnected);
});

test("a wrong token runs nothing and is audited with the peer", async () => {
  const dir = await Deno.makeTempDir();
  const markerFile = `${dir}/ran`;
  try {
    await using srv = server({ token: "right", insecureNoAuth: false });
    await assertRejects(
      async () => {
        await using s = await connectShell(srv.ep, { token: "wrong" });
        await s.exec(`touch ${markerFile}`);
      },
      Error,
      "authentication failed",
    );
    await assertRejects(
      () => connectShell(srv.ep),
      Error,
      "needs a token",
    );
    assertEquals(await Deno.stat(markerFile).catch(() => null), null);
    assertEquals(srv.commands, 0);
    const rec = srv.records.find((r) => r.event === "auth-failed");
    assertOk(rec && rec.peer.startsWith("127.0.0.1:"));
    // The right token works.
    await using ok = await connectShell(srv.ep, { token: "right" });
    assertEquals((await ok.exec(`touch ${markerFile}`)).code, 0);
    assertOk(await Deno.stat(markerFile));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("repeated authentication failures are slowed down", async () => {
  await using srv = server({
    token: "right",
    insecureNoAuth: false,
    throttle: { freeFailures: 1, baseDelayMs: 400 },
  });
  const attempt = async () => {
    const t0 = performance.now();
    await assertRejects(
      () => connectShell(srv.ep, { token: "wrong" }),
      Error,
      "authentication failed",
    );
    return performance.now() - t0;
  };
  const first = await attempt();
  const second = await attempt();
  const third = await attempt();
  assertOk(first < 300, `first failure answered in ${first} ms`);
  assertOk(second >= 380, `second failure answered in ${second} ms`);
  assertOk(third >= 780, `third failure answered in ${third} ms`);
});

test("sessions beyond the limit get a clear error", async () => {
  await using srv = server({ maxSessions: 1 });
  await using first = await connectShell(srv.ep);
  await assertRejects(
    () => connectShell(srv.ep),
    Error,
    "server busy: 1 sessions active, limit 1",
  );
  assertEquals((await first.exec("true")).code, 0);
  first.close();
  await waitFor(() => Promise.resolve(srv.active === 0), "slot freed");
  await using second = await connectShell(srv.ep);
  assertEquals((await second.exec("exit 4")).code, 4);
});

test("max output stops the command and flags the exit", async () => {
  const out = sink();
  const exit = await run("yes", { stdout: out }, { maxOutput: 100_000 });
  assertEquals(out.bytes().length, 100_000);
  assertEquals(exit.truncated, true);
  assertOk(exit.signal !== 0);
});

test("shellServer() refuses a non-loopback bind without a token", () => {
  let err: unknown;
  try {
    shellServer({ hostname: "0.0.0.0", port: 0 }, {});
  } catch (e) {
    err = e;
  }
  assertOk(err instanceof Error && /without a token/.test(err.message));
  try {
    shellServer({ hostname: "0.0.0.0", port: 0 }, { insecureNoAuth: true });
    err = undefined;
  } catch (e) {
    err = e;
  }
  assertOk(err instanceof Error && /loopback only/.test(err.message));
});

test("close() kills running commands and ends sessions", async () => {
  const mark = marker();
  const srv = server({ killGraceMs: 500 });
  const session = await connectShell(srv.ep);
  const running = session.exec(`sleep ${mark}`).catch((e) => e);
  await waitFor(
    async () => (await pgrep(`sleep ${mark}`)).length === 1,
    "sleep started",
  );
  await srv.close();
  const result = await running;
  // Either the exit (killed) or the shutdown error arrives first.
  assertOk(
    result instanceof Error || result.signal === 15,
    `got ${result}`,
  );
  assertEquals((await pgrep(`sleep ${mark}`)).length, 0);
  session.close();
});

/**
 * A Python peer that logs in to a no-auth server, sends one EXEC (and
 * optionally stdin without STDIN_EOF), then shutdown(SHUT_WR), and prints
 * what comes back: `out=<hex> err=<hex> exit=<code>`.
 */
const HALF_CLOSE_PEER = `
import socket, struct, sys
port, version, command, stdin = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
s = socket.create_connection(('127.0.0.1', port))
def frame(t, body=b''):
    return struct.pack('>IB', len(body) + 1, t) + body
def recv_exact(n):
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise SystemExit('eof after %d of %d bytes' % (len(b), n))
        b += c
    return b
def message():
    n, t = struct.unpack('>IB', recv_exact(5))
    return t, recv_exact(n - 1)
t, hello = message()
assert t == 0x01 and hello[:4] == b'DCSH' and hello[5] == 0, hello
s.sendall(frame(0x02, b'DCSH' + bytes([version])))
t, _ = message()
assert t == 0x03, t
flags = 1 if stdin else 0
s.sendall(frame(0x10, bytes([flags]) + struct.pack('>I', len(command)) + command + b'\\0\\0\\0\\0'))
if stdin: s.sendall(frame(0x11, stdin.encode()))
s.shutdown(socket.SHUT_WR)
out, err = b'', b''
while True:
    t, body = message()
    if t == 0x13: out += body
    elif t == 0x14: err += body
    elif t == 0x16: pass
    elif t == 0x15:
        print('out=%s err=%s exit=%d' % (out.hex(), err.hex(), struct.unpack('>i', body[:4])[0]))
        break
    else: raise SystemExit('unexpected message %d %r' % (t, body))
assert s.recv(1) == b'', 'server did not close after exit'
`;

test({
  name: "a client that half-closes after EXEC still gets the output and exit",
  ignore: needs("python3"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const script = `${dir}/peer.py`;
      await Deno.writeTextFile(script, HALF_CLOSE_PEER);
      await using srv = server();
      const peer = async (command: string, stdin: string) => {
        await using p = spawn("python3", [
          script,
          String(srv.ep.port),
          String(PROTOCOL_VERSION),
          command,
          stdin,
        ], { timeout: 10000 });
        const out = await p.output;
        assertEquals(out.code, 0, out.stderr);
        return out.text.trim();
      };
      const hex = (t: string) => new TextEncoder().encode(t).toHex();
      // No output for longer than the probe interval, then some.
      assertEquals(
        await peer("sleep 1.2; echo done; echo warn >&2; exit 3", ""),
        `out=${hex("done\n")} err=${hex("warn\n")} exit=3`,
      );
      // The half-close ends the command's stdin, as STDIN_EOF would.
      assertEquals(
        await peer("cat; echo end", "abc"),
        `out=${hex("abcend\n")} err= exit=0`,
      );
      const execs = srv.records.filter((r) => r.event === "exec");
      assertEquals(execs.length, 2);
      assertOk(execs.every((r) => r.event === "exec" && !r.disconnected));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

test("a SIGKILLed client process gets its silent command killed", async () => {
  const mark = marker();
  await using srv = server({ killGraceMs: 500 });
  await using client = startCli([
    "shell",
    "127.0.0.1",
    String(srv.ep.port),
    "-n",
    "--",
    `sh -c 'sleep ${mark} & sleep ${mark}'`,
  ]);
  await waitFor(
    async () => (await pgrep(`sleep ${mark}`)).length === 2,
    "both sleeps started",
  );
  client.kill("SIGKILL");
  await client.output;
  const t0 = performance.now();
  await waitFor(
    async () => (await pgrep(`sleep ${mark}`)).length === 0,
    "no sleep left after the client was killed",
    4000,
  );
  const took = performance.now() - t0;
  assertOk(took < 3000, `killed after ${took} ms`);
  await waitFor(
    () => Promise.resolve(srv.records.some((r) => r.event === "exec")),
    "audit record",
  );
  const rec = srv.records.find((r) => r.event === "exec");
  assertOk(rec?.event === "exec" && rec.disconnected);
});
