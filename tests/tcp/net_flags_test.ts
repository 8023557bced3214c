/**
 * The main mode's ncat flags: programs on connections (-e/-c), access lists,
 * TLS both ways against openssl and curl, proxies (tinyproxy, dante), and
 * session recording, driven through the CLI as typed.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import {
  needs,
  randomBytes,
  readAll,
  runCli,
  sha256,
  spawn,
  startServer,
  testOnlyOn,
  waitForPort,
  within,
} from "../_helpers.ts";
import { startDante, startTinyproxy } from "../proxy/_peers.ts";

const test = testOnlyOn(["linux", "darwin"], "sh, process groups and openssl");
const dec = new TextDecoder();

/** A UDP socket on 127.0.0.1 that has sent `text` to 127.0.0.1:`port`; closed on dispose. */
async function udpPeer(port: number, text: string) {
  const conn = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    await conn.send(new TextEncoder().encode(text), {
      transport: "udp",
      hostname: "127.0.0.1",
      port,
    });
  } catch (e) {
    conn.close();
    throw e;
  }
  return { conn, [Symbol.dispose]: () => conn.close() };
}

/** A CA and a leaf for 127.0.0.1 / localhost, made by openssl in `dir`. */
async function pki(dir: string, days = 2) {
  const run = async (args: string[]) => {
    const r = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!r.success) throw new Error(dec.decode(r.stderr));
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
  await run([
    "req",
    "-x509",
    ...ec,
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=denocat test CA",
  ]);
  await run([
    "req",
    ...ec,
    "-nodes",
    "-keyout",
    "leaf.key",
    "-out",
    "leaf.csr",
    "-subj",
    "/CN=localhost",
  ]);
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
  );
  await run([
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "leaf.pem",
    "-days",
    String(days),
    "-extfile",
    "ext.cnf",
  ]);
  return {
    ca: `${dir}/ca.pem`,
    cert: `${dir}/leaf.pem`,
    key: `${dir}/leaf.key`,
  };
}

async function tempDir() {
  const path = await Deno.makeTempDir();
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

test("denocat -l -k -e: one child per client, concurrently, with NCAT_* set", async () => {
  await using server = await startServer([
    "-l",
    "-k",
    "-c",
    'read line; echo "$NCAT_PROTO $NCAT_REMOTE_ADDR $line"; sleep 0.3',
    "127.0.0.1",
    "0",
  ]);
  const t0 = performance.now();
  const replies = await Promise.all(
    ["a", "b", "c"].map((w) =>
      runCli(["127.0.0.1", String(server.port)], { stdin: `${w}\n` })
    ),
  );
  const ms = performance.now() - t0;
  assertEquals(
    replies.map((r) => r.text).sort(),
    ["TCP 127.0.0.1 a\n", "TCP 127.0.0.1 b\n", "TCP 127.0.0.1 c\n"],
  );
  // Three children of 0.3 s each, side by side: well under 0.9 s in all.
  assertOk(ms < 3000, `${ms} ms`);
});

test("denocat -e PROG HOST PORT: the program talks to the server, 4 MiB each way intact", async () => {
  const data = randomBytes(4 << 20);
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const c = await l.accept();
    const got = readAll(c);
    for (let at = 0; at < data.length;) at += await c.write(data.subarray(at));
    await c.closeWrite();
    const back = await got;
    c.close();
    return back;
  })();
  const out = await runCli(["-e", "cat", "127.0.0.1", String(l.addr.port)]);
  assertEquals(out.code, 0, out.stderr);
  assertEquals(sha256(await served), sha256(data));
});

test("denocat -l -e off loopback needs --allow; with it, a refused peer is closed unrun", async () => {
  for (
    const args of [["-l", "-e", "cat", "0"], [
      "-l",
      "-e",
      "cat",
      "0.0.0.0",
      "0",
    ], ["-lu", "-e", "cat", "0"]]
  ) {
    const r = await runCli(args);
    assertEquals(r.code, 2, r.stderr);
    assertOk(r.stderr.includes("give --allow LIST"), r.stderr);
  }
  await using server = await startServer([
    "-l",
    "-k",
    "-e",
    "echo ran",
    "--allow",
    "10.0.0.0/8",
    "0.0.0.0",
    "0",
  ]);
  const r = await runCli(["127.0.0.1", String(server.port)]);
  assertEquals(r.text, "");
  await server.waitForStderr(/127\.0\.0\.1:\d+: refused by the access list/);
});

test("denocat -u -l -e: a child per UDP peer, replies to that peer", async () => {
  await using server = await startServer([
    "-u",
    "-l",
    "-c",
    'while read l; do echo "$NCAT_REMOTE_PORT $l"; done',
    "127.0.0.1",
    "0",
  ]);
  using peer = await udpPeer(server.port, "hi\n");
  const [data] = await within(peer.conn.receive(), "the child's reply");
  assertEquals(
    dec.decode(data),
    `${(peer.conn.addr as Deno.NetAddr).port} hi\n`,
  );
});

test("denocat -l --allow / --deny: refused peers are closed and logged, allowed ones served", async () => {
  {
    await using server = await startServer([
      "-l",
      "--deny",
      "127.0.0.1",
      "127.0.0.1",
      "0",
    ], { keepStdin: true });
    const r = await runCli(["127.0.0.1", String(server.port)], { stdin: "x" });
    assertEquals(r.text, "");
    await server.waitForStderr(/refused by the access list/);
  }
  {
    await using server = await startServer([
      "-l",
      "--allow",
      "127.0.0.0/8",
      "127.0.0.1",
      "0",
    ], { stdin: "welcome\n" });
    const r = await runCli(["127.0.0.1", String(server.port)]);
    assertEquals(r.text, "welcome\n");
  }
  const bad = await runCli(["--allow", "10.0.0.0/8", "127.0.0.1", "9"]);
  assertEquals(bad.code, 2);
  assertOk(
    bad.stderr.includes("--allow/--deny apply to listeners (-l)"),
    bad.stderr,
  );
});

test({
  name:
    "TLS: denocat -l --ssl-cert with denocat --ssl, openssl s_client and curl; wrong CA, wrong name and expired certificates end in one line, exit 1",
  ignore: needs("openssl", "curl"),
  fn: async () => {
    await using dir = await tempDir();
    const p = await pki(dir.path);
    // denocat to denocat, both ways.
    {
      await using server = await startServer([
        "-l",
        "--ssl-cert",
        p.cert,
        "--ssl-key",
        p.key,
        "127.0.0.1",
        "0",
      ], { stdin: "from server\n" });
      const r = await runCli([
        "--ssl",
        "--ca",
        p.ca,
        "--ssl-servername",
        "localhost",
        "127.0.0.1",
        String(server.port),
      ], { stdin: "from client\n" });
      assertEquals([r.code, r.text], [0, "from server\n"], r.stderr);
      const s = await server.output;
      assertEquals(dec.decode(s.stdout), "from client\n");
    }
    // openssl s_client against denocat -l.
    {
      await using server = await startServer([
        "-l",
        "--ssl-cert",
        p.cert,
        "--ssl-key",
        p.key,
        "127.0.0.1",
        "0",
      ], { stdin: "hello s_client\n" });
      const c = spawn("openssl", [
        "s_client",
        "-quiet",
        "-CAfile",
        p.ca,
        "-verify_return_error",
        "-connect",
        `127.0.0.1:${server.port}`,
      ], { stdin: "hi\n" });
      const out = await c.output;
      assertOk(out.text.includes("hello s_client"), out.stderr);
    }
    // curl --cacert against denocat -l speaking HTTP by hand.
    {
      await using server = await startServer([
        "-l",
        "--ssl-cert",
        p.cert,
        "--ssl-key",
        p.key,
        "127.0.0.1",
        "0",
      ], {
        stdin:
          "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
      });
      const c = spawn("curl", [
        "-sS",
        "--cacert",
        p.ca,
        `https://localhost:${server.port}/`,
        "--resolve",
        `localhost:${server.port}:127.0.0.1`,
      ]);
      const out = await c.output;
      assertEquals(out.text, "ok\n", out.stderr);
    }
    // denocat --ssl against openssl s_server.
    {
      const port = (() => {
        using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        return l.addr.port;
      })();
      await using srv = spawn("openssl", [
        "s_server",
        "-quiet",
        "-accept",
        `127.0.0.1:${port}`,
        "-cert",
        p.cert,
        "-key",
        p.key,
      ], { keepStdin: true });
      await waitForPort(port);
      const r = await runCli([
        "--ssl",
        "--ca",
        p.ca,
        "-q",
        "0",
        "127.0.0.1",
        String(port),
      ], { stdin: "to s_server\n" });
      assertEquals(r.code, 0, r.stderr);
      await srv.waitForStderr(/./, 100).catch(() => {});
      srv.kill();
      const got = await srv.output;
      assertOk(got.text.includes("to s_server"), got.text + got.stderr);
    }
    // Failures: wrong CA (none given), wrong name, expired.
    await using server = await startServer([
      "-l",
      "-k",
      "--ssl-cert",
      p.cert,
      "--ssl-key",
      p.key,
      "127.0.0.1",
      "0",
    ]);
    const noCa = await runCli(["--ssl", "127.0.0.1", String(server.port)]);
    assertEquals(noCa.code, 1);
    assertOk(
      /^denocat: TLS with 127\.0\.0\.1: certificate not trusted/.test(
        noCa.stderr,
      ) && noCa.stderr.trim().split("\n").length === 1,
      noCa.stderr,
    );
    const wrongName = await runCli([
      "--ssl",
      "--ca",
      p.ca,
      "--ssl-servername",
      "example.org",
      "127.0.0.1",
      String(server.port),
    ]);
    assertEquals(wrongName.code, 1);
    assertOk(
      wrongName.stderr.includes("example.org") &&
        wrongName.stderr.trim().split("\n").length === 1,
      wrongName.stderr,
    );
    await using old = await tempDir();
    const expired = await pki(old.path, -1).catch(() => undefined);
    if (expired) {
      await using stale = await startServer([
        "-l",
        "--ssl-cert",
        expired.cert,
        "--ssl-key",
        expired.key,
        "127.0.0.1",
        "0",
      ]);
      const r = await runCli([
        "--ssl",
        "--ca",
        expired.ca,
        "127.0.0.1",
        String(stale.port),
      ]);
      assertEquals(r.code, 1);
      assertOk(r.stderr.includes("certificate expired"), r.stderr);
    }
  },
});

test({
  name:
    "denocat -x/-X and --proxy: through tinyproxy (HTTP CONNECT) and dante (SOCKS5), bytes intact",
  ignore: needs("tinyproxy", "danted"),
  fn: async () => {
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    // tinyproxy does not pass a half-close on: the target answers once it
    // has the bytes it expects, not at EOF.
    const serve = async (expect: number) => {
      const c = await l.accept();
      const buf = new Uint8Array(64);
      let got = 0;
      while (got < expect) {
        const n = await c.read(buf);
        if (n === null) break;
        got += n;
      }
      await c.write(new TextEncoder().encode(`got ${got}`));
      c.close();
    };
    {
      await using proxy = await startTinyproxy();
      const s = serve(5);
      // tinyproxy also closes both sides at our FIN: keep ours open.
      const r = await runCli([
        "--no-shutdown",
        "-x",
        `127.0.0.1:${proxy.port}`,
        "-X",
        "connect",
        "127.0.0.1",
        String(l.addr.port),
      ], { stdin: "12345" });
      await s;
      assertEquals([r.code, r.text], [0, "got 5"], r.stderr);
    }
    {
      await using proxy = await startDante("none");
      const s = serve(3);
      const r = await runCli([
        "--proxy",
        `127.0.0.1:${proxy.port}`,
        "--proxy-type",
        "socks5",
        "127.0.0.1",
        String(l.addr.port),
      ], { stdin: "123" });
      await s;
      assertEquals([r.code, r.text], [0, "got 3"], r.stderr);
    }
    const bad = await runCli(["-l", "-x", "127.0.0.1:1", "0"]);
    assertEquals(bad.code, 2);
  },
});

test("denocat --hex-dump and --session-log record the session; a recorded relay still delivers everything", async () => {
  await using dir = await tempDir();
  await using server = await startServer(["-l", "127.0.0.1", "0"], {
    stdin: "pong\n",
  });
  const r = await runCli([
    "--hex-dump",
    `${dir.path}/dump`,
    "--session-log",
    `${dir.path}/raw`,
    "127.0.0.1",
    String(server.port),
  ], { stdin: "ping\n" });
  assertEquals([r.code, r.text], [0, "pong\n"], r.stderr);
  assertEquals(await Deno.readTextFile(`${dir.path}/raw`), "pong\n");
  const dump = await Deno.readTextFile(`${dir.path}/dump`);
  assertOk(
    dump.includes("# sent 5 bytes at offset 0\n00000000  70 69 6e 67 0a"),
    dump,
  );
  assertOk(
    dump.includes("# received 5 bytes at offset 0\n00000000  70 6f 6e 67 0a"),
    dump,
  );
  const usage = await runCli(["--append", "127.0.0.1", "9"]);
  assertEquals(usage.code, 2);
});

test({
  name:
    "TLS relays never reach the pump threads: 24 MiB each way through --ssl and -l --ssl-cert from pipes arrive intact",
  ignore: needs("openssl") || Deno.build.os !== "linux",
  fn: async () => {
    await using dir = await tempDir();
    const p = await pki(dir.path);
    const up = randomBytes(24 << 20), down = randomBytes(24 << 20);
    await Deno.writeFile(`${dir.path}/up`, up);
    await Deno.writeFile(`${dir.path}/down`, down);
    // stdin through a pipe (cat), so the relays would be eligible for pumps.
    const port = (() => {
      using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      return l.addr.port;
    })();
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    const deno = Deno.execPath();
    await using server = spawn("sh", [
      "-c",
      `cat ${dir.path}/down | ${deno} run -A ${cli} -v -l --ssl-cert ${p.cert} --ssl-key ${p.key} 127.0.0.1 ${port} > ${dir.path}/got-up`,
    ], { timeout: 60000 });
    await waitForPort(port).catch(() => {});
    const client = spawn("sh", [
      "-c",
      `cat ${dir.path}/up | ${deno} run -A ${cli} -v --no-shutdown --ssl --ca ${p.ca} 127.0.0.1 ${port} > ${dir.path}/got-down`,
    ], { timeout: 60000 });
    const c = await client.output;
    const s = await server.output;
    assertEquals(
      sha256(await Deno.readFile(`${dir.path}/got-up`)),
      sha256(up),
      s.stderr,
    );
    assertEquals(
      sha256(await Deno.readFile(`${dir.path}/got-down`)),
      sha256(down),
      c.stderr,
    );
    for (const log of [c.stderr, s.stderr]) {
      assertOk(!/pump/.test(log), log);
    }
  },
});

test("echo and recv take --allow/--deny: a refused peer gets nothing back, an allowed one is served", async () => {
  {
    await using server = await startServer([
      "echo",
      "--deny",
      "127.0.0.1",
      "127.0.0.1",
      "0",
    ]);
    const r = await runCli(["127.0.0.1", String(server.port)], { stdin: "x" });
    assertEquals(r.text, "");
    await server.waitForStderr(/refused by the access list/);
  }
  {
    await using server = await startServer([
      "echo",
      "--allow",
      "127.0.0.0/8",
      "127.0.0.1",
      "0",
    ]);
    const r = await runCli(["127.0.0.1", String(server.port)], { stdin: "hi" });
    assertEquals(r.text, "hi");
  }
  {
    await using server = await startServer([
      "echo",
      "-u",
      "--deny",
      "127.0.0.1",
      "127.0.0.1",
      "0",
    ]);
    using peer = await udpPeer(server.port, "x");
    const got = await Promise.race([
      peer.conn.receive().then(() => "reply"),
      new Promise((r) => setTimeout(() => r("none"), 400)),
    ]);
    assertEquals(got, "none");
  }
  await using dir = await tempDir();
  {
    await using server = await startServer([
      "recv",
      "-k",
      "-o",
      dir.path,
      "--deny",
      "127.0.0.1",
      "127.0.0.1",
      "0",
    ]);
    const r = await runCli(["send", "127.0.0.1", String(server.port), "-"], {
      stdin: "data",
    });
    assertEquals(r.code, 1, r.stderr);
    await server.waitForStderr(/refused by the access list/);
    assertEquals([...Deno.readDirSync(dir.path)].length, 0);
  }
});
