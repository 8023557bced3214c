/**
 * `denocat send` / `denocat recv` end to end, spawned as users run them:
 * 64 MiB verified, stdin streams (plain and tar), name clash, a hostile
 * name, a sender killed mid-body, and corruption injected by a proxy.
 */
import { fileURLToPath } from "node:url";
import { assertEquals, assertOk } from "../lib/_assert.ts";
import {
  encodeHeader,
  encodeHello,
  encodeTrailer,
  RECORD,
} from "../lib/transfer/protocol.ts";
import {
  hasCommand,
  onlyOn,
  randomBytes,
  readAll,
  runCli,
  sha256,
  spawn,
  startCli,
  startServer,
  testOnlyOn,
} from "./_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "POSIX signals (SIGTERM), sh, Unix sockets and process groups",
);

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

async function tempDir(): Promise<string> {
  return await Deno.realPath(await Deno.makeTempDir({ prefix: "xfer-cli-" }));
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("send/recv: 64 MiB random file verified end to end, -v per item, no progress in pipes", async () => {
  const dir = await tempDir();
  try {
    const data = randomBytes(64 << 20);
    await Deno.writeFile(`${dir}/big.bin`, data);
    await Deno.mkdir(`${dir}/out`);
    await using recv = await startServer([
      "recv",
      "-o",
      `${dir}/out`,
      "127.0.0.1",
      "0",
    ], { timeout: 60000 });
    const sent = await runCli(
      ["send", "-v", "127.0.0.1", String(recv.port), `${dir}/big.bin`],
      { timeout: 60000 },
    );
    const got = await recv.output;
    assertEquals([sent.code, got.code], [0, 0], sent.stderr + got.stderr);
    assertEquals(
      sha256(await Deno.readFile(`${dir}/out/big.bin`)),
      sha256(data),
    );
    assertEquals(names(`${dir}/out`), ["big.bin"]);
    assertOk(
      new RegExp(
        `big\\.bin: ${data.length} bytes in [\\d.]+ s \\([\\d.]+ MB/s\\) sha256 ${
          sha256(data)
        } verified`,
      )
        .test(sent.stderr),
      sent.stderr,
    );
    assertOk(!sent.stderr.includes("\r") && !got.stderr.includes("\r"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("send/recv: stdin stream (no PATH) to recv's stdout, byte for byte", async () => {
  const data = randomBytes(3_000_000);
  await using recv = await startServer(["recv", "127.0.0.1", "0"]);
  const sent = await runCli(["send", "127.0.0.1", String(recv.port)], {
    stdin: data,
  });
  const got = await recv.output;
  assertEquals([sent.code, got.code], [0, 0], sent.stderr + got.stderr);
  assertEquals(sha256(got.stdout), sha256(data));
});

test({
  name: "send/recv: tar c | denocat send - ... denocat recv | tar x",
  ignore: !hasCommand("tar"),
  async fn() {
    const dir = await tempDir();
    try {
      await Deno.mkdir(`${dir}/src/a/b`, { recursive: true });
      await Deno.writeFile(`${dir}/src/a/b/x.bin`, randomBytes(200_000));
      await Deno.writeTextFile(`${dir}/src/y.txt`, "why\n");
      await Deno.mkdir(`${dir}/dst`);
      await using recv = spawn("sh", [
        "-c",
        `'${Deno.execPath()}' run -A '${CLI}' recv -v 127.0.0.1 0 | tar x -C '${dir}/dst'`,
      ]);
      const port = Number(
        (await recv.waitForStderr(/listening on .*:(\d+)/))[1],
      );
      await using send = spawn("sh", [
        "-c",
        `tar c -C '${dir}/src' . | '${Deno.execPath()}' run -A '${CLI}' send 127.0.0.1 ${port} -`,
      ]);
      const [s, r] = await Promise.all([send.output, recv.output]);
      assertEquals([s.code, r.code], [0, 0], s.stderr + r.stderr);
      assertEquals(
        sha256(await Deno.readFile(`${dir}/dst/a/b/x.bin`)),
        sha256(await Deno.readFile(`${dir}/src/a/b/x.bin`)),
      );
      assertEquals(await Deno.readTextFile(`${dir}/dst/y.txt`), "why\n");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("send/recv: a name clash is reported to the sender (exit 1), the old file stays", async () => {
  const dir = await tempDir();
  try {
    await Deno.mkdir(`${dir}/out`);
    await Deno.writeTextFile(`${dir}/out/note.txt`, "keep me");
    await Deno.writeTextFile(`${dir}/note.txt`, "replace me");
    await using recv = await startServer([
      "recv",
      "-o",
      `${dir}/out`,
      "127.0.0.1",
      "0",
    ]);
    const sent = await runCli([
      "send",
      "127.0.0.1",
      String(recv.port),
      `${dir}/note.txt`,
    ]);
    const got = await recv.output;
    assertEquals(sent.code, 1);
    assertOk(
      sent.stderr.includes("note.txt already exists on the receiver"),
      sent.stderr,
    );
    assertEquals(got.code, 1);
    assertEquals(await Deno.readTextFile(`${dir}/out/note.txt`), "keep me");
    assertEquals(names(`${dir}/out`), ["note.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recv: a traversal name from a raw client is refused, logged, and told to the client", async () => {
  const dir = await tempDir();
  try {
    await Deno.mkdir(`${dir}/out`);
    await using recv = await startServer([
      "recv",
      "-k",
      "-o",
      `${dir}/out`,
      "127.0.0.1",
      "0",
    ]);
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: recv.port });
    const body = new TextEncoder().encode("pwned");
    const digest = Uint8Array.fromHex(sha256(body));
    const wire = [
      encodeHello(),
      encodeHeader({ name: "../../escaped.txt", size: body.length }),
      body,
      encodeTrailer(new Uint8Array(41), body.length, digest),
      new Uint8Array([RECORD.END]),
    ];
    for (const w of wire) await conn.write(w);
    await conn.closeWrite();
    const reply = new TextDecoder().decode(await readAll(conn));
    assertOk(reply.includes(`"code":"unsafe-name"`), reply);
    assertOk(reply.includes("'..' component"), reply);
    await recv.waitForStderr(
      /unsafe name "\.\.\/\.\.\/escaped\.txt": '\.\.' component/,
    );
    assertEquals(names(`${dir}/out`), []);
    assertOk(!names(dir).includes("escaped.txt"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("recv -k: a sender killed mid-body leaves no file, and the next sender is served", async () => {
  const dir = await tempDir();
  try {
    await using recv = await startServer([
      "recv",
      "-k",
      "-o",
      dir,
      "127.0.0.1",
      "0",
    ]);
    await using victim = startCli(
      ["send", "--name", "partial.bin", "127.0.0.1", String(recv.port), "-"],
      { keepStdin: true },
    );
    await victim.stdin!.write(randomBytes(1 << 20));
    await recv.waitForStderr(/connection from/);
    // Wait until the receiver holds the temporary file, then kill the sender.
    const deadline = Date.now() + 10000;
    while (!names(dir).some((n) => n.includes(".denocat-"))) {
      assertOk(Date.now() < deadline, "temporary file never appeared");
      await new Promise((r) => setTimeout(r, 20));
    }
    victim.kill("SIGKILL");
    await victim.output;
    await recv.waitForStderr(/partial\.bin after \d+ bytes|connection reset/);
    assertEquals(names(dir), [], "no final file and no temporary file");
    const data = randomBytes(100_000);
    const next = await runCli(
      ["send", "--name", "next.bin", "127.0.0.1", String(recv.port)],
      { stdin: data },
    );
    assertEquals(next.code, 0, next.stderr);
    assertEquals(sha256(await Deno.readFile(`${dir}/next.bin`)), sha256(data));
    recv.kill("SIGTERM");
    assertEquals((await recv.output).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A TCP proxy that flips one byte of the client-to-server stream at `at`. */
function corruptingProxy(target: number, at: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tasks: Promise<void>[] = [];
  const pump = async (
    from: Deno.TcpConn,
    to: Deno.TcpConn,
    flipAt: number,
  ) => {
    const buf = new Uint8Array(65536);
    let seen = 0;
    try {
      let n: number | null;
      while ((n = await from.read(buf)) !== null) {
        if (flipAt >= seen && flipAt < seen + n) buf[flipAt - seen]! ^= 0x01;
        seen += n;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
      await to.closeWrite();
    } catch { /* either side went away */ }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({
        hostname: "127.0.0.1",
        port: target,
      });
      tasks.push((async () => {
        await Promise.all([pump(client, server, at), pump(server, client, -1)]);
        client.close();
        server.close();
      })());
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(tasks);
    },
  };
}

Deno.test("send/recv: a byte flipped by a proxy in the middle gives exit 3 on both sides and no file", async () => {
  const dir = await tempDir();
  try {
    await Deno.mkdir(`${dir}/out`);
    await Deno.writeFile(`${dir}/data.bin`, randomBytes(1 << 20));
    await using recv = await startServer([
      "recv",
      "-o",
      `${dir}/out`,
      "127.0.0.1",
      "0",
    ]);
    await using proxy = corruptingProxy(recv.port, 300_000);
    const sent = await runCli([
      "send",
      "127.0.0.1",
      String(proxy.port),
      `${dir}/data.bin`,
    ]);
    const got = await recv.output;
    assertEquals(sent.code, 3, sent.stderr);
    assertEquals(got.code, 3, got.stderr);
    assertOk(sent.stderr.includes("sha256 mismatch"), sent.stderr);
    assertEquals(names(`${dir}/out`), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recv to stdout exits 3 when the stream fails verification", async () => {
  await using recv = await startServer(["recv", "127.0.0.1", "0"]);
  await using proxy = corruptingProxy(recv.port, 50_000);
  const sent = await runCli(["send", "127.0.0.1", String(proxy.port)], {
    stdin: randomBytes(200_000),
  });
  const got = await recv.output;
  assertEquals([sent.code, got.code], [3, 3], sent.stderr + got.stderr);
});

Deno.test("send/recv: usage errors exit 2", async () => {
  const r = await runCli(["recv", "-k", "127.0.0.1", "0"]);
  assertEquals(r.code, 2);
  assertOk(r.stderr.includes("-k needs -o DIR"), r.stderr);
  const s = await runCli(["send", "--compat", "ftp", "127.0.0.1", "9"]);
  assertEquals(s.code, 2);
});

Deno.test("recv -o: a directory that cannot be created is a runtime failure (exit 1), not a usage error", async () => {
  const dir = await tempDir();
  try {
    await Deno.writeTextFile(`${dir}/file`, "not a directory");
    // Runs as root in CI too, where permission bits do not stop mkdir: a
    // regular file in the path fails the same code path (ENOTDIR).
    const r = await runCli(["recv", "-o", `${dir}/file/sub`, "127.0.0.1", "0"]);
    assertEquals(r.code, 1, r.stderr);
    assertOk(r.stderr.includes(`cannot use -o ${dir}/file/sub`), r.stderr);
    if (Deno.uid() !== 0) {
      await Deno.mkdir(`${dir}/locked`, { mode: 0o500 });
      const p = await runCli([
        "recv",
        "-o",
        `${dir}/locked/x`,
        "127.0.0.1",
        "0",
      ]);
      assertEquals(p.code, 1, p.stderr);
      assertOk(p.stderr.includes("permission denied"), p.stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("send --compat seed: exit 0 means sent (no acknowledgements), and --help says so", async () => {
  const help = await runCli(["send", "--help"]);
  assertOk(
    help.text.replace(/\s+/g, " ").includes(
      "With --compat seed there are no acknowledgements: 0 means every item was sent, not that it was verified",
    ),
    help.text,
  );
  // A sink that verifies nothing: the seed sender still exits 0.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sink = (async () => {
    using conn = await listener.accept();
    return (await readAll(conn)).length;
  })();
  const sent = await runCli(
    ["send", "--compat", "seed", "127.0.0.1", String(listener.addr.port)],
    { stdin: "hello" },
  );
  assertEquals(sent.code, 0, sent.stderr);
  assertOk(await sink > 5);
});

/** Control bytes a terminal would act on (C0 but newline, DEL, C1 CSI/OSC). */
// deno-lint-ignore no-control-regex
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

Deno.test("recv -v: names and messages from the network reach stderr escaped, never as raw control sequences", async () => {
  const dir = await tempDir();
  try {
    await using recv = await startServer([
      "recv",
      "-k",
      "-o",
      dir,
      "127.0.0.1",
      "0",
    ]);
    const te = new TextEncoder();
    const body = te.encode("x");
    const digest = Uint8Array.fromHex(sha256(body));
    const sessions = [
      // Refused at once: the refusal line names the item.
      [
        encodeHeader({ name: "\x1b[2J\x1b]0;pwned\x07red", size: 1 }),
        body,
        encodeTrailer(new Uint8Array(41), 1, digest),
        new Uint8Array([RECORD.END]),
      ],
      // C1 CSI in the name; then garbage inside the stream: protocol error.
      [
        encodeHeader({ name: "c1\u009b31m", size: "stream" }),
        new Uint8Array([0x99]),
      ],
    ];
    for (const records of sessions) {
      using conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: recv.port,
      });
      await conn.write(encodeHello());
      for (const r of records) await conn.write(r);
      await conn.closeWrite();
      await readAll(conn).catch(() => {});
    }
    await recv.waitForStderr(/inside stream "c1\\u009b31m"|c1\\u009b31m/);
    await recv.waitForStderr(/done: .*\n.*done: /s);
    const err = recv.stderrSoFar();
    assertOk(err.includes("\\u001b[2J\\u001b]0;pwned\\u0007red"), err);
    assertOk(!TERMINAL_CONTROL.test(err), JSON.stringify(err));
    assertEquals(names(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("send: a receiver's error text is printed escaped", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const hostile = (async () => {
    using conn = await listener.accept();
    await conn.write(encodeHello());
    const json = new TextEncoder().encode(JSON.stringify({
      ok: false,
      name: "a",
      code: "io",
      error: "\x1b[2J\x1b]0;owned\x07 disk \u009b31m full",
    }));
    const rec = new Uint8Array(5 + json.length);
    rec[0] = RECORD.ACK;
    new DataView(rec.buffer).setUint32(1, json.length);
    rec.set(json, 5);
    await conn.write(rec);
    await conn.closeWrite();
    await readAll(conn).catch(() => {});
  })();
  const sent = await runCli(
    ["send", "--name", "a", "127.0.0.1", String(listener.addr.port)],
    { stdin: "data" },
  );
  await hostile;
  assertEquals(sent.code, 1, sent.stderr);
  assertOk(sent.stderr.includes("\\u001b[2J\\u001b]0;owned\\u0007 disk"));
  assertOk(!TERMINAL_CONTROL.test(sent.stderr), JSON.stringify(sent.stderr));
});

test("recv applies its umask to the mode a sender asks for and never sets setuid, setgid or sticky", async () => {
  const dir = await tempDir();
  try {
    await using recv = spawn("sh", [
      "-c",
      `umask 027; exec '${Deno.execPath()}' run -A '${CLI}' recv -v -k -o '${dir}' 127.0.0.1 0`,
    ]);
    const port = Number((await recv.waitForStderr(/listening on .*:(\d+)/))[1]);
    const body = new TextEncoder().encode("#!/bin/sh\n");
    const digest = Uint8Array.fromHex(sha256(body));
    for (const [name, mode] of [["all", 0o777], ["suid", 0o7777]] as const) {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port });
      for (
        const w of [
          encodeHello(),
          encodeHeader({ name, size: body.length, mode }),
          body,
          encodeTrailer(new Uint8Array(41), body.length, digest),
          new Uint8Array([RECORD.END]),
        ]
      ) await conn.write(w);
      await conn.closeWrite();
      const reply = new TextDecoder().decode(await readAll(conn));
      assertOk(reply.includes(`"ok":true`), reply);
      assertEquals((await Deno.stat(`${dir}/${name}`)).mode! & 0o7777, 0o750);
    }
    recv.kill("SIGTERM");
    assertEquals((await recv.output).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+)/)![1]) / 1024;
}

Deno.test({
  name:
    "recv -k: 400 idle connections cost little memory (no big buffers before an item header)",
  ignore: onlyOn(["linux"], "/proc (memory is read there)"),
  async fn() {
    const dir = await tempDir();
    const conns: Deno.TcpConn[] = [];
    try {
      await using recv = await startServer([
        "recv",
        "-k",
        "--max-pending",
        "1000",
        "-o",
        dir,
        "127.0.0.1",
        "0",
      ]);
      const pid = recv.child.pid;
      await new Promise((r) => setTimeout(r, 300));
      const before = rssMiB(pid);
      for (let i = 0; i < 400; i++) {
        conns.push(
          await Deno.connect({ hostname: "127.0.0.1", port: recv.port }),
        );
      }
      const deadline = Date.now() + 10000;
      while (recv.stderrSoFar().split("connection from").length <= 400) {
        assertOk(Date.now() < deadline, "not every connection was accepted");
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 500));
      const grown = rssMiB(pid) - before;
      // 256 KiB read buffers per connection made this ~63 MiB; now ~14.
      assertOk(grown < 32, `RSS grew by ${grown.toFixed(1)} MiB`);
    } finally {
      for (const c of conns) c.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("recv -k --max-conns 1: a second sender is told busy (send exits 1 and says so)", async () => {
  const dir = await tempDir();
  try {
    const usage = await runCli(["recv", "--max-conns", "1", "127.0.0.1", "0"]);
    assertEquals(usage.code, 2);
    assertOk(usage.stderr.includes("--max-conns needs -k"), usage.stderr);
    await using recv = await startServer([
      "recv",
      "-k",
      "--max-conns",
      "1",
      "-o",
      dir,
      "127.0.0.1",
      "0",
    ]);
    // The first sender is mid-item: hello and a header, the body to come.
    using first = await Deno.connect({
      hostname: "127.0.0.1",
      port: recv.port,
    });
    await first.write(encodeHello());
    await first.write(
      encodeHeader({ name: "slow.txt", size: "stream", mode: 0o644 }),
    );
    for (let i = 0; names(dir).length === 0; i++) {
      assertOk(i < 500, "the receiver never opened the first item");
      await new Promise((r) => setTimeout(r, 10));
    }
    const sent = await runCli(
      ["send", "--name", "late.txt", "127.0.0.1", String(recv.port)],
      { stdin: "late" },
    );
    assertEquals(sent.code, 1, sent.stderr);
    assertOk(sent.stderr.includes("receiver busy"), sent.stderr);
    await recv.waitForStderr(/busy: already serving 1 senders/);
    assertOk(!names(dir).includes("late.txt"), names(dir).join(" "));
    first.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recv -k with default limits: 200 idle connections do not lock out a real sender", async () => {
  const dir = await tempDir();
  const idle: Deno.TcpConn[] = [];
  try {
    // No --idle-timeout, no --max-conns: the defaults as users run them.
    await using recv = await startServer([
      "recv",
      "-k",
      "-o",
      dir,
      "127.0.0.1",
      "0",
    ]);
    for (let i = 0; i < 200; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port: recv.port }));
    }
    const deadline = Date.now() + 10000;
    while (recv.stderrSoFar().split("connection from").length <= 200) {
      assertOk(Date.now() < deadline, "not every connection was accepted");
      await new Promise((r) => setTimeout(r, 20));
    }
    const srcDir = await tempDir();
    const src = `${srcDir}/real.txt`;
    await Deno.writeTextFile(src, "through");
    try {
      // Timed from the send process's own start: deno itself takes a while.
      await using send = startCli([
        "send",
        "-v",
        "127.0.0.1",
        String(recv.port),
        src,
      ], { timeout: 20000 });
      const r = await send.output;
      assertEquals(r.code, 0, r.stderr);
      const m = r.stderr.match(/real\.txt: 7 bytes in ([\d.]+) s/);
      assertOk(m !== null, r.stderr);
      assertOk(Number(m![1]) < 2, `the item took ${m![1]} s`);
    } finally {
      await Deno.remove(srcDir, { recursive: true });
    }
    assertEquals(await Deno.readTextFile(`${dir}/real.txt`), "through");
    // The idle ones are still open, and none was turned away as busy.
    assertOk(!recv.stderrSoFar().includes("busy"), recv.stderrSoFar());
  } finally {
    for (const c of idle) c.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recv without -k: the one-line failure naming a hostile item is escaped", async () => {
  const dir = await tempDir();
  try {
    await using recv = await startServer(["recv", "-o", dir, "127.0.0.1", "0"]);
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: recv.port });
    const body = new TextEncoder().encode("x");
    for (
      const w of [
        encodeHello(),
        encodeHeader({ name: "\x1b]0;owned\x07\u009b2J", size: 1 }),
        body,
        encodeTrailer(new Uint8Array(41), 1, Uint8Array.fromHex(sha256(body))),
        new Uint8Array([RECORD.END]),
      ]
    ) await conn.write(w);
    await conn.closeWrite();
    await readAll(conn).catch(() => {});
    const r = await recv.output;
    assertEquals(r.code, 1, r.stderr);
    assertOk(r.stderr.includes("\\u001b]0;owned\\u0007"), r.stderr);
    assertOk(!TERMINAL_CONTROL.test(r.stderr), JSON.stringify(r.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
