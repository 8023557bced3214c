/**
 * TLS, proxies and access lists on the modes beyond the plain relay: echo
 * and recv with --ssl-cert, send and probe with --ssl and --proxy, --frame
 * over TLS both ways and behind --allow/--deny, and --ssl-verify-client,
 * against openssl s_client/s_server, curl, dante and tinyproxy.
 */
import { X509Certificate } from "node:crypto";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import {
  acceptServerTls,
  clientChainProblem,
  serverTls,
} from "../../lib/forward/tls.ts";
import { probeTcp } from "../../lib/tcp/probe.ts";
import { echoServer } from "../../lib/tcp/echo.ts";
import { framedListen } from "../../lib/framed/listen.ts";
import {
  needs,
  randomBytes,
  runCli,
  type Running,
  sha256,
  spawn,
  startServer,
  testOnlyOn,
  waitForPort,
  within,
} from "../_helpers.ts";
import { makeCerts } from "../forward/_certs.ts";
import { startDante, startTinyproxy } from "../proxy/_peers.ts";

const test = testOnlyOn(["linux", "darwin"], "openssl and sh");

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** A free port nothing listens on. */
function closedPort(): number {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return l.addr.port;
}

/** Exactly one line on stderr. */
function oneLine(stderr: string): boolean {
  return stderr.trim() !== "" && !stderr.trim().includes("\n");
}

/** `n` connections to 127.0.0.1:`port` that never send a byte. */
async function silentPeers(port: number, n: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < n; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
  } catch (e) {
    for (const c of conns) c.close();
    throw e;
  }
  return conns;
}

/** Asserts the server closed `conn`: its read ends within 5 s. */
async function assertClosedByServer(
  conn: Deno.TcpConn,
  what: string,
  msg?: string,
): Promise<void> {
  assertEquals(
    await within(conn.read(new Uint8Array(1)).catch(() => null), what, 5000),
    null,
    msg,
  );
}

/**
 * Three silent peers against a --max-conns 2 TLS listener: the third closes
 * the oldest, still handshaking. Returns the peers; the caller closes them.
 */
async function crowdOutOldest(server: { port: number } & Running) {
  const idle = await silentPeers(server.port, 3);
  try {
    await server.waitForStderr(
      /closed, still handshaking when --max-conns was reached/,
    );
    await assertClosedByServer(idle[0]!, "the oldest connection's close");
  } catch (e) {
    for (const c of idle) c.close();
    throw e;
  }
  return idle;
}

test({
  name:
    "echo --ssl-cert: openssl s_client and curl --cacert are echoed, and 4 MiB from a pipe come back decrypted, byte for byte, on the event loop",
  ignore: needs("openssl", "curl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "echo",
      "--idle-timeout",
      "1",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "127.0.0.1",
      "0",
    ]);
    await server.waitForStderr(/serving on the event loop/);
    const port = String(server.port);
    const s = await spawn("openssl", [
      "s_client",
      "-quiet",
      "-verify_return_error",
      "-CAfile",
      pki.ca,
      "-connect",
      `127.0.0.1:${port}`,
    ], { stdin: "hello through TLS\n" }).output;
    assertOk(s.text.includes("hello through TLS\n"), s.stderr);
    // curl speaks HTTP: the echo is its own request, read as HTTP/0.9 once
    // the idle server closes.
    const c = await spawn("curl", [
      "-sS",
      "--http0.9",
      "--cacert",
      pki.ca,
      "--max-time",
      "10",
      `https://localhost:${port}/echo-me`,
    ]).output;
    assertEquals(c.code, 0, c.stderr);
    assertOk(c.text.startsWith("GET /echo-me HTTP/1.1\r\n"), c.text);
    // From a pipe, so a relay would be eligible for the pump threads; the
    // echo must be the decrypted bytes (the epoll engine would echo the
    // TLS records themselves and the handshake would never finish).
    await using dir = await tempDir();
    const data = randomBytes(4 << 20);
    await Deno.writeFile(`${dir.path}/in`, data);
    const r = await spawn("sh", [
      "-c",
      `cat ${dir.path}/in | ${Deno.execPath()} run -A ${CLI} --ssl --ca ${pki.ca} 127.0.0.1 ${port} > ${dir.path}/out`,
    ], { timeout: 60000 }).output;
    assertEquals(r.code, 0, r.stderr);
    assertEquals(
      sha256(await Deno.readFile(`${dir.path}/out`)),
      sha256(data),
      r.stderr,
    );
  },
});

test({
  name:
    "echo --ssl-cert against a client that sends and never reads: the server stops reading (a few MB get in, not GB) and its memory stays bounded; it goes on serving others",
  ignore: needs("openssl", "python3") || Deno.build.os !== "linux",
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "echo",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "127.0.0.1",
      "0",
    ]);
    const rss = async () =>
      Number(
        /VmRSS:\s+(\d+) kB/.exec(
          await Deno.readTextFile(`/proc/${server.child.pid}/status`),
        )?.[1],
      ) * 1024;
    const before = await rss();
    // 3 s of 64 KiB sends; returns how many bytes the server took.
    const flood = await new Deno.Command("python3", {
      args: [
        "-c",
        `import socket, ssl, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ${server.port})))
s.settimeout(0.2)
sent, stop = 0, time.time() + 3
while time.time() < stop:
    try:
        sent += s.send(b"x" * 65536)
    except (socket.timeout, ssl.SSLWantWriteError):
        pass
print(sent)`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(flood.stderr);
    assertOk(flood.success, err);
    const sent = Number(new TextDecoder().decode(flood.stdout).trim());
    const grown = (await rss()) - before;
    // Before: the TLS layer went on reading while the echo waited to
    // write, 4.6 GB in 8 s, all of it held in memory.
    assertOk(sent < 64 << 20, `the server took ${sent} bytes`);
    assertOk(grown < 128 << 20, `the server grew by ${grown} bytes`);
    const c = await runCli(
      ["--ssl", "--ca", pki.ca, "localhost", String(server.port)],
      { stdin: "still here\n" },
    );
    assertEquals([c.code, c.text], [0, "still here\n"], c.stderr);
  },
});

test({
  name:
    "send --ssl to recv --ssl-cert: files arrive verified (sha256); with --ssl-verify-client a sender without a certificate or with one from another CA is refused in one logged line, one with the CA's certificate is served",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using dir = await tempDir();
    const data = randomBytes(3 << 20);
    await Deno.writeFile(`${dir.path}/payload.bin`, data);
    {
      await Deno.mkdir(`${dir.path}/got1`);
      await using server = await startServer([
        "recv",
        "-o",
        `${dir.path}/got1`,
        "--ssl-cert",
        pki.cert,
        "--ssl-key",
        pki.key,
        "127.0.0.1",
        "0",
      ]);
      const s = await runCli([
        "send",
        "--ssl",
        "--ca",
        pki.ca,
        "127.0.0.1",
        String(server.port),
        `${dir.path}/payload.bin`,
      ]);
      assertEquals(s.code, 0, s.stderr);
      const r = await server.output;
      assertEquals(r.code, 0, r.stderr);
      assertEquals(
        sha256(await Deno.readFile(`${dir.path}/got1/payload.bin`)),
        sha256(data),
      );
    }
    await Deno.mkdir(`${dir.path}/got2`);
    await using server = await startServer([
      "recv",
      "-k",
      "-o",
      `${dir.path}/got2`,
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "--ssl-verify-client",
      "--ssl-trustfile",
      pki.ca,
      "127.0.0.1",
      "0",
    ]);
    const send = (extra: string[]) =>
      runCli([
        "send",
        "--ssl",
        "--ca",
        pki.ca,
        ...extra,
        "127.0.0.1",
        String(server.port),
        `${dir.path}/payload.bin`,
      ]);
    const bare = await send([]);
    assertEquals(bare.code, 1, bare.stderr);
    assertOk(oneLine(bare.stderr), bare.stderr);
    assertOk(
      bare.stderr.includes("the receiver closed the connection without a word"),
      bare.stderr,
    );
    await server.waitForStderr(
      /TLS handshake with the client failed: no client certificate/,
    );
    const stranger = await send([
      "--ssl-cert",
      pki.strangerCert,
      "--ssl-key",
      pki.strangerKey,
    ]);
    assertEquals(stranger.code, 1, stranger.stderr);
    await server.waitForStderr(
      /TLS handshake with the client failed: client certificate not issued by a trusted CA \(CN=stranger\)/,
    );
    const good = await send([
      "--ssl-cert",
      pki.clientCert,
      "--ssl-key",
      pki.clientKey,
    ]);
    assertEquals(good.code, 0, good.stderr);
    assertEquals(
      sha256(await Deno.readFile(`${dir.path}/got2/payload.bin`)),
      sha256(data),
    );
  },
});

test({
  name:
    "recv -k --ssl-cert: connections that never handshake count against --max-pending; once they go, a sender is served",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using dir = await tempDir();
    await using server = await startServer([
      "recv",
      "-k",
      "--max-pending",
      "3",
      "-o",
      dir.path,
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "127.0.0.1",
      "0",
    ]);
    const idle = await silentPeers(server.port, 4);
    await server.waitForStderr(
      /closed, 3 connections in their handshake \(--max-pending\)/,
    );
    for (const c of idle) c.close();
    await server.waitForStderr(
      /(TLS handshake with the client failed[\s\S]*){3}/,
    );
    const s = await runCli([
      "send",
      "--ssl",
      "--ca",
      pki.ca,
      "--name",
      "late.txt",
      "127.0.0.1",
      String(server.port),
    ], { stdin: "served at last\n" });
    assertEquals(s.code, 0, s.stderr);
    assertEquals(
      await Deno.readTextFile(`${dir.path}/late.txt`),
      "served at last\n",
    );
  },
});

test({
  name:
    "one-shot TLS listeners (recv, -l, -l --frame, -l -e): 40 peers that connect and never handshake do not keep the real client waiting; beyond 16 handshakes the oldest is dropped in one logged line, the others close quietly once the client is through",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using dir = await tempDir();
    const tls = ["--ssl-cert", pki.cert, "--ssl-key", pki.key];
    const modes: Array<[string, string[], string[]]> = [
      ["recv", ["recv", "-o", dir.path, ...tls], [
        "send",
        "--ssl",
        "--ca",
        pki.ca,
        "--name",
        "late.txt",
      ]],
      ["-l", ["-l", ...tls], ["--ssl", "--ca", pki.ca]],
      ["-l --frame", ["-l", "--frame", "u16be", ...tls], [
        "--frame",
        "u16be",
        "--ssl",
        "--ca",
        pki.ca,
      ]],
      // The program's output comes back to the client.
      ["-l -e", ["-l", "-e", "/bin/cat", ...tls], ["--ssl", "--ca", pki.ca]],
    ];
    for (const [mode, serverArgs, clientArgs] of modes) {
      await using server = await startServer([...serverArgs, "127.0.0.1", "0"]);
      const silent = await silentPeers(server.port, 40);
      try {
        // All 40 taken in: 24 of them dropped as the oldest beyond 16.
        await server.waitForStderr(
          /(dropped, the oldest of 16 connections still being admitted[\s\S]*){24}/,
        );
        const t0 = performance.now();
        // Taken one at a time, the first silent peer alone held the only
        // slot for the 10 s handshake timeout.
        const c = await runCli(
          [...clientArgs, "127.0.0.1", String(server.port)],
          { stdin: "through\n", timeout: 8000 },
        );
        const ms = performance.now() - t0;
        assertEquals(c.code, 0, `${mode}: ${c.stderr}`);
        assertOk(ms < 6000, `${mode}: the client took ${ms} ms`);
        const s = await server.output;
        assertEquals(s.code, 0, `${mode}: ${s.stderr}`);
        if (mode === "-l -e") assertEquals(c.text, "through\n", mode);
        else if (mode !== "recv") assertEquals(s.text, "through\n", mode);
        assertOk(
          !s.stderr.includes("TLS handshake with the client failed"),
          `${mode}: ${s.stderr}`,
        );
        // Every silent peer was closed by the server.
        for (const conn of silent) {
          await assertClosedByServer(
            conn,
            `${mode}: a silent peer's close`,
            mode,
          );
        }
      } finally {
        for (const conn of silent) conn.close();
      }
    }
    assertEquals(await Deno.readTextFile(`${dir.path}/late.txt`), "through\n");
  },
});

test({
  name:
    "send through dante (SOCKS5) and tinyproxy (HTTP CONNECT) to recv: the file arrives verified",
  ignore: needs("danted", "tinyproxy"),
  fn: async () => {
    await using dir = await tempDir();
    const data = randomBytes(1 << 20);
    await Deno.writeFile(`${dir.path}/viaproxy.bin`, data);
    for (const kind of ["socks5", "http"] as const) {
      await using proxy = kind === "socks5"
        ? await startDante("none")
        : await startTinyproxy();
      const out = `${dir.path}/got-${kind}`;
      await Deno.mkdir(out);
      // -k: a stray connection (a port scan in a parallel test) must not
      // take the one sender a single-shot receiver serves.
      await using server = await startServer([
        "recv",
        "-k",
        "-o",
        out,
        "127.0.0.1",
        "0",
      ]);
      const s = await runCli([
        "send",
        "-x",
        `127.0.0.1:${proxy.port}`,
        "-X",
        kind === "socks5" ? "5" : "connect",
        "127.0.0.1",
        String(server.port),
        `${dir.path}/viaproxy.bin`,
      ]);
      assertEquals(s.code, 0, `${kind}: ${s.stderr}`);
      assertEquals(
        sha256(await Deno.readFile(`${out}/viaproxy.bin`)),
        sha256(data),
      );
      server.kill("SIGTERM");
      await server.output;
    }
    const bad = await runCli([
      "send",
      "-U",
      "-x",
      "127.0.0.1:1",
      "/tmp/x.sock",
      "-",
    ]);
    assertEquals(bad.code, 2);
    assertOk(oneLine(bad.stderr), bad.stderr);
  },
});

test({
  name:
    "probe --ssl: an open TLS port shows its handshake time; a wrong CA and a plain port are errors with the reason, exit 1",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "echo",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "127.0.0.1",
      "0",
    ]);
    const port = String(server.port);
    const ok = await runCli([
      "probe",
      "--ssl",
      "--ca",
      pki.ca,
      "127.0.0.1",
      port,
    ]);
    assertEquals(ok.code, 0, ok.stderr);
    assertOk(
      new RegExp(
        `^127\\.0\\.0\\.1:${port} open [\\d.]+ ms \\(TLS handshake [\\d.]+ ms\\)\\n$`,
      )
        .test(ok.text),
      ok.text,
    );
    const json = await runCli([
      "probe",
      "--json",
      "--ssl",
      "--ca",
      pki.ca,
      "127.0.0.1",
      port,
    ]);
    const report = JSON.parse(json.text);
    assertEquals(report.open.length, 1);
    assertOk(report.open[0].tlsTime > 0, json.text);
    const wrong = await runCli([
      "probe",
      "--ssl",
      "--ca",
      pki.otherCa,
      "127.0.0.1",
      port,
    ]);
    assertEquals(wrong.code, 1);
    assertOk(
      wrong.text.includes("error (TLS with 127.0.0.1: certificate not trusted"),
      wrong.text,
    );
    await using plain = await startServer(["echo", "127.0.0.1", "0"]);
    const notTls = await runCli([
      "probe",
      "--ssl",
      "-w",
      "2",
      "127.0.0.1",
      String(plain.port),
    ]);
    assertEquals(notTls.code, 1);
    assertOk(/ error \(TLS with 127\.0\.0\.1: /.test(notTls.text), notTls.text);
  },
});

test({
  name:
    "probe --proxy through dante: an open port is open, a closed one is reported with the proxy's reason",
  ignore: needs("danted"),
  fn: async () => {
    await using proxy = await startDante("none");
    await using server = await startServer(["echo", "127.0.0.1", "0"]);
    const closed = closedPort();
    const r = await runCli([
      "probe",
      "--proxy",
      `127.0.0.1:${proxy.port}`,
      "127.0.0.1",
      `${server.port},${closed}`,
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertOk(r.text.includes(`127.0.0.1:${server.port} open`), r.text);
    assertOk(r.text.includes("1 of 2 ports open"), r.text);
    const only = await runCli([
      "probe",
      "--proxy",
      `127.0.0.1:${proxy.port}`,
      "127.0.0.1",
      String(closed),
    ]);
    assertEquals(only.code, 1);
    assertOk(only.text.includes(`through socks5 proxy`), only.text);
  },
});

test({
  name:
    "--frame over TLS both ways: denocat to denocat -l --ssl-cert, to openssl s_server, and openssl s_client to denocat -l --frame",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    {
      await using server = await startServer([
        "-l",
        "--frame",
        "u16be",
        "--ssl-cert",
        pki.cert,
        "--ssl-key",
        pki.key,
        "127.0.0.1",
        "0",
      ]);
      const c = await runCli([
        "--frame",
        "u16be",
        "--ssl",
        "--ca",
        pki.ca,
        "localhost",
        String(server.port),
      ], { stdin: "one\ntwo\n" });
      assertEquals(c.code, 0, c.stderr);
      const s = await server.output;
      assertEquals([s.code, s.text], [0, "one\ntwo\n"], s.stderr);
    }
    {
      const port = closedPort();
      const srv = spawn("openssl", [
        "s_server",
        "-quiet",
        "-accept",
        `127.0.0.1:${port}`,
        "-cert",
        pki.cert,
        "-key",
        pki.key,
      ], { keepStdin: true });
      await waitForPort(port);
      const c = await runCli([
        "--frame",
        "u16be",
        "--ssl",
        "--ca",
        pki.ca,
        "-q",
        "0",
        "127.0.0.1",
        String(port),
      ], { stdin: "hi\nyo\n" });
      assertEquals(c.code, 0, c.stderr);
      // s_server prints what it decrypted; give it a moment, then stop it.
      await new Promise((r) => setTimeout(r, 300));
      await srv[Symbol.asyncDispose]();
      const got = (await srv.output).stdout;
      // The waitForPort probe made a connection too: look at the bytes.
      assertOk(got.toHex().includes("00026869" + "0002796f"), got.toHex());
    }
    {
      await using server = await startServer([
        "-l",
        "--frame",
        "u16be",
        "--ssl-cert",
        pki.cert,
        "--ssl-key",
        pki.key,
        "127.0.0.1",
        "0",
      ]);
      const frames = Uint8Array.fromHex(
        "0005" + "68656c6c6f" + "0002" + "6f6b",
      );
      const c = await spawn("openssl", [
        "s_client",
        "-quiet",
        "-no_ign_eof",
        "-CAfile",
        pki.ca,
        "-verify_return_error",
        "-connect",
        `127.0.0.1:${server.port}`,
      ], { stdin: frames }).output;
      const s = await server.output;
      assertEquals([s.code, s.text], [0, "hello\nok\n"], s.stderr + c.stderr);
    }
  },
});

testOnlyOn(["linux"], "-s needs Linux")(
  "-l --frame --allow/--deny: a refused client is closed unread and logged, others are served",
  async () => {
    await using server = await startServer([
      "-l",
      "--frame",
      "u16be",
      "-k",
      "--deny",
      "127.0.0.1",
      "0.0.0.0",
      "0",
    ]);
    const refused = await runCli([
      "--frame",
      "u16be",
      "127.0.0.1",
      String(server.port),
    ], {
      stdin: "nope\n",
    });
    assertEquals(refused.code, 0, refused.stderr);
    await server.waitForStderr(/127\.0\.0\.1:\d+: refused by the access list/);
    // A peer the list does not name: from 127.0.0.2 on loopback (-s needs
    // a socket of our own, Linux with FFI).
    const other = await runCli([
      "--frame",
      "u16be",
      "-s",
      "127.0.0.2",
      "127.0.0.1",
      String(server.port),
    ], { stdin: "yes\n" });
    assertEquals(other.code, 0, other.stderr);
    await server.waitForStderr(/127\.0\.0\.2:\d+ closed: 1 frames/);
    server.kill("SIGTERM");
    const s = await server.output;
    assertEquals(s.text, "yes\n");
    const usage = await runCli([
      "--frame",
      "u16be",
      "--deny",
      "127.0.0.1",
      "127.0.0.1",
      "9",
    ]);
    assertEquals(usage.code, 2);
    assertOk(
      usage.stderr.includes("--allow/--deny apply to listeners (-l)"),
      usage.stderr,
    );
  },
);

test({
  name:
    "-l --ssl-verify-client --ssl-trustfile CA: openssl s_client without a certificate or with another CA's is refused in one logged line; the CA's client certificate (s_client, denocat --ssl-cert) is served",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "-l",
      "-k",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "--ssl-verify-client",
      "--ssl-trustfile",
      pki.ca,
      "127.0.0.1",
      "0",
    ]);
    const sClient = (extra: string[], text: string) =>
      spawn("openssl", [
        "s_client",
        "-quiet",
        "-no_ign_eof",
        "-CAfile",
        pki.ca,
        ...extra,
        "-connect",
        `127.0.0.1:${server.port}`,
      ], { stdin: text }).output;
    await sClient([], "no certificate\n");
    await server.waitForStderr(
      /: TLS handshake with the client failed: no client certificate \(this listener demands one: --ssl-verify-client\)\n/,
    );
    await sClient(
      ["-cert", pki.strangerCert, "-key", pki.strangerKey],
      "a stranger\n",
    );
    await server.waitForStderr(
      /: TLS handshake with the client failed: client certificate not issued by a trusted CA \(CN=stranger\)\n/,
    );
    await sClient(
      ["-cert", pki.clientV1Cert, "-key", pki.clientKey],
      "a v1 certificate\n",
    );
    await server.waitForStderr(
      /: TLS handshake with the client failed: client certificate is not X\.509 v3/,
    );
    await sClient(
      ["-cert", pki.clientCert, "-key", pki.clientKey],
      "openssl ok\n",
    );
    await server.waitForStderr(/closed after sending 11 bytes/);
    const d = await runCli([
      "--ssl",
      "--ca",
      pki.ca,
      "--ssl-cert",
      pki.clientCert,
      "--ssl-key",
      pki.clientKey,
      "127.0.0.1",
      String(server.port),
    ], { stdin: "denocat ok\n" });
    assertEquals(d.code, 0, d.stderr);
    await server.waitForStderr(
      /closed after sending 11 bytes[\s\S]*closed after sending 11 bytes/,
    );
    server.kill("SIGTERM");
    const s = await server.output;
    assertEquals(s.text, "openssl ok\ndenocat ok\n");
    assertOk(
      !s.text.includes("no certificate") && !s.text.includes("stranger") &&
        !s.text.includes("v1"),
    );
  },
});

test({
  name:
    "forward --ssl-cert --ssl-verify-client: s_client without a client certificate is refused in one logged line; denocat with the CA's certificate reaches the target and back",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using target = await startServer(["echo", "127.0.0.1", "0"]);
    const port = closedPort();
    await using fwd = spawn(Deno.execPath(), [
      "run",
      "-A",
      CLI,
      "forward",
      "-v",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "--ssl-verify-client",
      "--ssl-trustfile",
      pki.ca,
      "127.0.0.1",
      String(port),
      "127.0.0.1",
      String(target.port),
    ], { timeout: 60000 });
    await fwd.waitForStderr(/forwarding to/);
    const sClient = (extra: string[], text: string) =>
      spawn("openssl", [
        "s_client",
        "-quiet",
        "-no_ign_eof",
        "-CAfile",
        pki.ca,
        ...extra,
        "-connect",
        `127.0.0.1:${port}`,
      ], { stdin: text }).output;
    const bare = await sClient([], "nobody\n");
    assertOk(!bare.text.includes("nobody"), bare.text);
    await fwd.waitForStderr(
      /no client certificate \(this listener demands one/,
    );
    // denocat as the client: it waits for the echo after its FIN.
    const good = await runCli([
      "--ssl",
      "--ca",
      pki.ca,
      "--ssl-cert",
      pki.clientCert,
      "--ssl-key",
      pki.clientKey,
      "127.0.0.1",
      String(port),
    ], { stdin: "echo me\n" });
    assertEquals([good.code, good.text], [0, "echo me\n"], good.stderr);
    const usage = await runCli([
      "forward",
      "--ssl-verify-client",
      "--ssl-trustfile",
      pki.ca,
      "8000",
      "127.0.0.1",
      "9",
    ]);
    assertEquals(usage.code, 2);
    assertOk(usage.stderr.includes("needs --ssl-cert"), usage.stderr);
  },
});

test({
  name:
    "-l --ssl-verify-client with ncat --ssl as the client: served with the CA's certificate, refused (one logged line) without one or with another CA's",
  ignore: needs("openssl", "ncat"),
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "-l",
      "-k",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "--ssl-verify-client",
      "--ssl-trustfile",
      pki.ca,
      "127.0.0.1",
      "0",
    ]);
    // ncat checks DNS names only: ask for localhost.
    const ncat = (extra: string[], text: string) =>
      spawn("ncat", [
        "--ssl",
        "--ssl-verify",
        "--ssl-trustfile",
        pki.ca,
        ...extra,
        "localhost",
        String(server.port),
      ], { stdin: text }).output;
    await ncat(
      ["--ssl-cert", pki.clientCert, "--ssl-key", pki.clientKey],
      "ncat ok\n",
    );
    await server.waitForStderr(/closed after sending 8 bytes/);
    await ncat([], "bare\n");
    await server.waitForStderr(
      /no client certificate \(this listener demands one/,
    );
    await ncat(
      ["--ssl-cert", pki.strangerCert, "--ssl-key", pki.strangerKey],
      "stranger\n",
    );
    await server.waitForStderr(
      /client certificate not issued by a trusted CA \(CN=stranger\)/,
    );
    server.kill("SIGTERM");
    const s = await server.output;
    assertEquals(s.text, "ncat ok\n", s.stderr);
  },
});

test({
  name:
    "-l -k -e --ssl-cert --max-conns: connections that never handshake count against the cap, and a new one closes the oldest still handshaking: silent peers cannot keep a client out",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "-l",
      "-k",
      "-e",
      "/bin/cat",
      "--max-conns",
      "2",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "127.0.0.1",
      "0",
    ]);
    // The first, the oldest handshake, makes room for the third.
    const idle = await crowdOutOldest(server);
    try {
      // With two silent peers holding both slots, a real client still
      // gets in at once, not after their 10 s handshake timeout.
      const c = await runCli([
        "--ssl",
        "--ca",
        pki.ca,
        "127.0.0.1",
        String(server.port),
      ], { stdin: "in past them\n" });
      assertEquals([c.code, c.text], [0, "in past them\n"], c.stderr);
      assertOk(
        !server.stderrSoFar().includes("no handshake within"),
        server.stderrSoFar(),
      );
    } finally {
      for (const c of idle) c.close();
    }
    const c = await runCli([
      "--ssl",
      "--ca",
      pki.ca,
      "127.0.0.1",
      String(server.port),
    ], { stdin: "cat me\n" });
    assertEquals([c.code, c.text], [0, "cat me\n"], c.stderr);
  },
});

test({
  name:
    "-l -e with --ssl-verify-client: the program runs for a client with the CA's certificate only",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "-l",
      "-k",
      "-e",
      "/bin/cat",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "--ssl-verify-client",
      "--ssl-trustfile",
      pki.ca,
      "127.0.0.1",
      "0",
    ]);
    const client = (extra: string[]) =>
      runCli([
        "--ssl",
        "--ca",
        pki.ca,
        ...extra,
        "127.0.0.1",
        String(server.port),
      ], { stdin: "cat me\n" });
    const bare = await client([]);
    assertEquals(bare.text, "");
    await server.waitForStderr(
      /no client certificate \(this listener demands one/,
    );
    const good = await client([
      "--ssl-cert",
      pki.clientCert,
      "--ssl-key",
      pki.clientKey,
    ]);
    assertEquals([good.code, good.text], [0, "cat me\n"], good.stderr);
    // With a client certificate the server is still verified (node:tls
    // path): a wrong name and an unknown CA are one line each, exit 1.
    const wrongName = await client([
      "--ssl-cert",
      pki.clientCert,
      "--ssl-key",
      pki.clientKey,
      "--ssl-servername",
      "wrong.example",
    ]);
    assertEquals(wrongName.code, 1);
    assertOk(oneLine(wrongName.stderr), wrongName.stderr);
    assertOk(
      wrongName.stderr.includes("certificate does not match the name"),
      wrongName.stderr,
    );
    const wrongCa = await runCli([
      "--ssl",
      "--ca",
      pki.otherCa,
      "--ssl-cert",
      pki.clientCert,
      "--ssl-key",
      pki.clientKey,
      "127.0.0.1",
      String(server.port),
    ], { stdin: "x" });
    assertEquals(wrongCa.code, 1);
    assertOk(
      oneLine(wrongCa.stderr) &&
        wrongCa.stderr.includes("certificate not trusted"),
      wrongCa.stderr,
    );
  },
});

testOnlyOn(["linux"], "-s needs Linux")({
  name:
    "--ssl from a source address (-s: a socket of our own) runs TLS over it: the listener sees 127.0.0.2",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "-l",
      "--frame",
      "u16be",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "127.0.0.1",
      "0",
    ]);
    const c = await runCli([
      "--frame",
      "u16be",
      "--ssl",
      "--ca",
      pki.ca,
      "-s",
      "127.0.0.2",
      "127.0.0.1",
      String(server.port),
    ], { stdin: "from .2\n" });
    assertEquals(c.code, 0, c.stderr);
    const s = await server.output;
    assertEquals(s.text, "from .2\n", s.stderr);
    assertOk(/connection from 127\.0\.0\.2:/.test(s.stderr), s.stderr);
  },
});

Deno.test("probeTcp() with an opener: its connect and handshake decide open, closed and error, with the handshake's time", async () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const c of l) c.close();
  })();
  const port = l.addr.port;
  const ok = await probeTcp({
    hostname: "127.0.0.1",
    ports: [port],
    open: { handshake: () => Promise.resolve({ close() {} }) },
  });
  assertEquals(ok.open, [port]);
  assertOk(ok.results[0]!.tlsTime! >= 0);
  const failed = await probeTcp({
    hostname: "127.0.0.1",
    ports: [port],
    open: { handshake: () => Promise.reject(new Error("no TLS here")) },
  });
  assertEquals(failed.results[0], {
    port,
    state: "error",
    reason: "no TLS here",
  });
  const refused = await probeTcp({
    hostname: "not resolved.test",
    ports: [port],
    open: {
      remoteDns: true,
      connect: (host) =>
        Promise.reject(new Error(`proxy says ${host}: connection refused`)),
    },
  });
  assertEquals(refused.host, "not resolved.test");
  assertEquals(refused.results[0]!.state, "closed");
  l.close();
  await accepting.catch(() => {});
});

Deno.test("echoServer() and framedListen() with wrap and accept: a refused or failed layer closes the client, others are served through the layer", async () => {
  const logs: string[] = [];
  const logger = { enabled: true, log: (m: string) => logs.push(m) };
  let n = 0;
  // A "layer" that refuses every other client and otherwise passes through.
  const wrap = (c: Deno.TcpConn | Deno.UnixConn) =>
    n++ % 2 === 0
      ? Promise.reject(new Error("layer says no"))
      : Promise.resolve(c);
  await using server = echoServer({ hostname: "127.0.0.1", port: 0 }, {
    wrap,
    logger,
  });
  assertEquals(await server.ready, "deno");
  const port = (server.addr as Deno.NetAddr).port;
  const talk = async () => {
    using c = await Deno.connect({ hostname: "127.0.0.1", port });
    await c.write(new TextEncoder().encode("ping"));
    await c.closeWrite();
    const buf = new Uint8Array(16);
    let got = "";
    let r: number | null;
    while ((r = await c.read(buf)) !== null) {
      got += new TextDecoder().decode(buf.subarray(0, r));
    }
    return got;
  };
  assertEquals(await talk(), "");
  assertEquals(await talk(), "ping");
  assertOk(logs.some((m) => m.endsWith(": layer says no")), logs.join("\n"));

  let text = "";
  const output = {
    write(p: Uint8Array) {
      text += new TextDecoder().decode(p);
      return Promise.resolve(p.length);
    },
  };
  const { promise: bound, resolve } = Promise.withResolvers<Deno.Addr>();
  const done = framedListen({ hostname: "127.0.0.1", port: 0 }, {
    format: "u16be",
    output,
    accept: () => (n++ % 2) === 1,
    onListening: resolve,
  });
  const fport = ((await bound) as Deno.NetAddr).port;
  for (const payload of ["refused", "served"]) {
    using c = await Deno.connect({ hostname: "127.0.0.1", port: fport });
    const body = new TextEncoder().encode(payload);
    await c.write(new Uint8Array([0, body.length, ...body]));
    await c.closeWrite();
    await c.read(new Uint8Array(1)).catch(() => null);
  }
  const r = await done;
  assertEquals([text, r.refused, r.connections], ["served\n", 1, 1]);
});

test({
  name:
    "clientChainProblem() accepts a chain to a trusted CA and names the problem otherwise",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    const der = async (f: string) =>
      new Uint8Array(new X509Certificate(await Deno.readTextFile(f)).raw);
    const ca = new X509Certificate(await Deno.readTextFile(pki.ca));
    assertEquals(
      clientChainProblem([await der(pki.clientCert)], [ca]),
      undefined,
    );
    assertEquals(
      clientChainProblem([await der(pki.strangerCert)], [ca]),
      "client certificate not issued by a trusted CA (CN=stranger)",
    );
    assertEquals(
      clientChainProblem([await der(pki.expiredCert)], [ca]),
      "client certificate expired or not yet valid",
    );
    assertEquals(clientChainProblem([], [ca]), "no client certificate");
    // A v1 certificate's handshake signature goes unchecked by the TLS
    // stack, so it is refused even from the right CA.
    assertEquals(
      clientChainProblem([await der(pki.clientV1Cert)], [ca]),
      "client certificate is not X.509 v3 (issue it with extensions)",
    );
    // Presenting the CA itself as the next link does not make a stranger trusted.
    assertOk(
      clientChainProblem(
        [await der(pki.strangerCert), await der(pki.otherCa)],
        [ca],
      ) !==
        undefined,
    );
  },
});

test({
  name:
    "acceptServerTls() names a handshake that did not finish in time (it said 'connection closed during the TLS handshake'); a peer that sent half a hello is closed at the bound",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    const server = serverTls({
      cert: await Deno.readTextFile(pki.cert),
      key: await Deno.readTextFile(pki.key),
    });
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    using peer = await Deno.connect({
      hostname: "127.0.0.1",
      port: listener.addr.port,
    });
    // The first bytes of a TLS record carrying a ClientHello, then nothing.
    await peer.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    const raw = await listener.accept();
    const t0 = performance.now();
    const err = await within(
      acceptServerTls(raw, server, 300).then(
        (s) => {
          s.close();
          return undefined;
        },
        (e: Error) => e,
      ),
      "the handshake's bound",
      5000,
    );
    const ms = performance.now() - t0;
    assertEquals(
      err?.message,
      "TLS handshake with the client failed: no handshake within 0.3 s",
    );
    assertOk(ms >= 250 && ms < 3000, `${ms} ms`);
    assertEquals(
      await within(
        peer.read(new Uint8Array(1)).catch(() => null),
        "the close",
        5000,
      ),
      null,
    );
  },
});

Deno.test("clientChainProblem() with crafted chains: a non-CA link, a forged CA of the same name, a key the crypto library refuses and a loop of self-issued links are refused with a reason, never thrown; a real intermediate is followed", async () => {
  // Made by python3's cryptography package, valid 2026-2046 (EC keys; the
  // huge-e intermediate is RSA-2048 with a 2048-bit public exponent).
  const pems: Record<string, string> = JSON.parse(
    await Deno.readTextFile(
      new URL("../fixtures/crafted_chains.json", import.meta.url),
    ),
  );
  const der = (k: string) => new Uint8Array(new X509Certificate(pems[k]!).raw);
  const ca = new X509Certificate(pems.ca!);
  const now = new Date("2030-01-01T00:00:00Z");
  const problem = (...chain: string[]) =>
    clientChainProblem(chain.map(der), [ca], now);
  assertEquals(problem("leafViaInter", "inter"), undefined);
  assertEquals(
    problem("leafViaNotCa", "notCa"),
    "client certificate not issued by a trusted CA (CN=via-not-ca)",
  );
  assertEquals(
    problem("leafViaForged", "forgedCa"),
    "client certificate not issued by a trusted CA (CN=via-forged)",
  );
  // Threw "public exponent too large" out of the check.
  assertEquals(
    problem("leafViaHugeE", "hugeE"),
    "client certificate not issued by a trusted CA (CN=via-huge-e)",
  );
  // The forged CA issued itself: the walk stops at its bound.
  const t0 = performance.now();
  assertEquals(
    problem("leafViaForged", ...Array(9).fill("forgedCa")),
    "client certificate not issued by a trusted CA (CN=via-forged)",
  );
  assertOk(performance.now() - t0 < 1000);
});

test({
  name: "TLS flags in the wrong place are usage errors: one line, exit 2",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    const c = pki.cert, k = pki.key;
    const cases: Array<[string[], string]> = [
      [["echo", "--ssl-cert", c, "0"], "--ssl-cert and --ssl-key go together"],
      [
        ["echo", "-u", "--ssl-cert", c, "--ssl-key", k, "0"],
        "--ssl-cert does not apply to -u",
      ],
      [
        ["echo", "--ssl-cert", c, "--ssl-key", k, "--threads", "2", "0"],
        "--threads",
      ],
      [
        ["recv", "--ssl-verify-client", "--ssl-cert", c, "--ssl-key", k, "0"],
        "needs --ssl-trustfile",
      ],
      [[
        "recv",
        "--ssl-trustfile",
        pki.ca,
        "--ssl-cert",
        c,
        "--ssl-key",
        k,
        "0",
      ], "goes with --ssl-verify-client"],
      [
        ["send", "--ssl-cert", c, "--ssl-key", k, "127.0.0.1", "9", "-"],
        "add --ssl",
      ],
      [
        ["send", "--ssl-verify-client", "127.0.0.1", "9", "-"],
        "applies to listeners",
      ],
      [["-l", "--frame", "u16be", "--ssl", "0"], "--ssl is for connecting"],
      [[
        "-l",
        "--frame",
        "u16be",
        "--insecure",
        "--ssl-cert",
        c,
        "--ssl-key",
        k,
        "0",
      ], "--insecure applies when connecting"],
      [
        ["--frame", "u16be", "-u", "--ssl", "127.0.0.1", "9"],
        "--ssl does not apply to --frame -u",
      ],
      [
        ["-l", "--frame", "u16be", "-e", "cat", "0"],
        "-e/-c does not apply to --frame",
      ],
      [
        ["probe", "-u", "--ssl", "127.0.0.1", "9"],
        "--ssl applies to TCP probes",
      ],
      [
        ["-l", "--ssl-verify-client", "0"],
        "--ssl-verify-client needs --ssl-cert",
      ],
      [
        ["shell", "-l", "--ssl-verify-client", "0"],
        "shell does not take --ssl-verify-client",
      ],
    ];
    for (const [args, text] of cases) {
      const r = await runCli(args);
      assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assertOk(oneLine(r.stderr), `${args.join(" ")}: ${r.stderr}`);
      assertOk(r.stderr.includes(text), `${args.join(" ")}: ${r.stderr}`);
    }
    // A key that is not the certificate's: one line at start, exit 1, on
    // both sides (the TLS stack would say "unsupported protocol" later).
    for (
      const args of [
        [
          "--ssl",
          "--ca",
          pki.ca,
          "--ssl-cert",
          pki.clientCert,
          "--ssl-key",
          pki.strangerKey,
          "127.0.0.1",
          "9",
        ],
        ["echo", "--ssl-cert", pki.cert, "--ssl-key", pki.clientKey, "0"],
      ]
    ) {
      const r = await runCli(args);
      assertEquals(r.code, 1, r.stderr);
      assertOk(
        oneLine(r.stderr) && r.stderr.includes("is not its key"),
        r.stderr,
      );
    }
  },
});

/** A temporary directory removed on dispose. */
async function tempDir() {
  const path = await Deno.makeTempDir({ prefix: "denocat-tlsmodes-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

test({
  name:
    "-l -k --ssl-cert --max-conns: a new connection closes the oldest still handshaking, so silent peers cannot keep a client out",
  ignore: needs("openssl"),
  fn: async () => {
    await using pki = await makeCerts();
    await using server = await startServer([
      "-l",
      "-k",
      "--max-conns",
      "2",
      "--ssl-cert",
      pki.cert,
      "--ssl-key",
      pki.key,
      "127.0.0.1",
      "0",
    ]);
    const idle = await crowdOutOldest(server);
    try {
      const c = await runCli([
        "--ssl",
        "--ca",
        pki.ca,
        "127.0.0.1",
        String(server.port),
      ], { stdin: "past the silent ones\n" });
      assertEquals(c.code, 0, c.stderr);
      await server.waitForStderr(/closed after sending|disconnected|closed/);
      assertOk(
        !server.stderrSoFar().includes("no handshake within"),
        server.stderrSoFar(),
      );
    } finally {
      for (const c of idle) c.close();
    }
    server.kill("SIGTERM");
    const out = await server.output;
    assertEquals(out.text, "past the silent ones\n");
  },
});
