/**
 * Hostile input: thousands of connections of random bytes, truncated
 * frames, oversize lengths, lying headers and huge or invalid-UTF-8
 * commands against `recv -k`, `shell -l`, `-l --frame -k` and `echo`. The
 * servers stay up with bounded memory and no unhandled rejection, and a
 * valid client is served right after.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { authProof, createNonce } from "../../lib/shell/auth.ts";
import {
  decodeServerHello,
  encodeClientHello,
  encodeExec,
  encodeMessage,
  MsgType,
  PROTOCOL_VERSION,
} from "../../lib/shell/protocol.ts";
import { encodeHello } from "../../lib/transfer/protocol.ts";
import {
  randomBytes,
  runCli,
  sha256,
  startServer,
  testOnlyOn,
} from "../_helpers.ts";
import { scaled } from "./_scale.ts";
import { assertNoCrash, concat, peakMiB, pool, summary } from "./_util.ts";

const test = testOnlyOn(
  ["linux"],
  "/proc (the reliability checks read memory and processes there)",
);

const TOKEN = "hostile-suite-token";
const te = new TextEncoder();

const u32be = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const u32le = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};
const record = (type: number, body: Uint8Array) =>
  concat([new Uint8Array([type]), u32be(body.length), body]);
const header = (h: unknown) => record(0x48, te.encode(JSON.stringify(h)));

/** Payloads for the native transfer receiver. */
const recvPayloads: Array<() => Uint8Array> = [
  () => randomBytes(1 + Math.floor(Math.random() * 65536)),
  () => encodeHello().subarray(0, 5), // truncated hello
  () => concat([encodeHello(), new Uint8Array([0x48]), u32be(0xffffffff)]), // oversize header
  () => concat([encodeHello(), header({ name: "a", size: 10 }).subarray(0, 9)]), // truncated header
  () =>
    concat([encodeHello(), record(0x48, new Uint8Array([0xff, 0xfe, 0x7b]))]), // not JSON/UTF-8
  () =>
    concat([
      encodeHello(),
      header({ name: "lie.bin", size: 1_000_000_000 }),
      randomBytes(1000),
    ]), // lying size, then gone
  () =>
    concat([
      encodeHello(),
      header({ name: "lie2.bin", size: 4 }),
      te.encode("abcd"),
      new Uint8Array([0x54]),
      new Uint8Array(40), // wrong size and hash in the trailer
      new Uint8Array([0x45]),
    ]),
  () =>
    concat([
      encodeHello(),
      header({ name: "s.bin", size: "stream" }),
      new Uint8Array([0x43]),
      u32be(0xfffffff0), // oversize chunk
    ]),
  () => concat([encodeHello(), header({ name: "../../etc/x", size: 0 })]),
];

/** Payloads for `-l --frame seed-json -k`. */
const framePayloads: Array<() => Uint8Array> = [
  () => randomBytes(1 + Math.floor(Math.random() * 65536)),
  () => u32le(0x7fffffff), // oversize length
  () => concat([u32le(0xffffffff), randomBytes(100)]), // negative in struct 'i'
  () => concat([u32le(100), te.encode('{"filename":')]), // truncated header
  () => {
    const h = te.encode(
      JSON.stringify({ filename: "a", md5: "0", total_size: 1e12 }),
    );
    return concat([u32le(h.length), h, randomBytes(500)]); // lying total_size
  },
  () => {
    const h = new Uint8Array([0xc3, 0x28, 0xff, 0xfe]);
    return concat([u32le(h.length), h]); // invalid UTF-8 header
  },
];

/** Payloads for echo (everything is valid; it must just survive). */
const echoPayloads: Array<() => Uint8Array> = [
  () => randomBytes(1 + Math.floor(Math.random() * 65536)),
  () => new Uint8Array(0),
];

/** Connects, writes `bytes` (maybe half), then resets or closes. */
async function attack(port: number, bytes: Uint8Array, rst: boolean) {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return false;
  }
  try {
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    if (!rst) {
      await conn.closeWrite();
      // Read what the server says, up to a bound, then go.
      const buf = new Uint8Array(65536);
      const deadline = Date.now() + 2000;
      while (Date.now() < deadline && (await conn.read(buf)) !== null) {
        /* drain */
      }
    }
  } catch { /* the server may drop us: that is its right */ }
  conn.close();
  return true;
}

/** Shell payloads: pre-auth garbage, or authenticated hostile commands. */
async function attackShell(port: number, kind: number): Promise<boolean> {
  let conn: Deno.TcpConn;
  let authenticated = false;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return false;
  }
  const buf = new Uint8Array(65536);
  try {
    if (kind === 0) {
      await conn.write(randomBytes(1 + Math.floor(Math.random() * 4096)));
    } else if (kind === 1) {
      await conn.write(concat([u32be(0xffffffff), new Uint8Array([2])]));
    } else if (kind === 2) {
      await conn.write(concat([u32be(100), new Uint8Array([2, 0x44])])); // truncated
    } else {
      // Authenticate properly, then send a hostile EXEC.
      const n = await conn.read(buf);
      if (n === null || n < 5 + 6) throw new Error("no server hello");
      const hello = decodeServerHello(buf.slice(5, n));
      if (!hello.nonce) throw new Error("the server asked for no token");
      const nonce = createNonce();
      await conn.write(
        encodeMessage(
          MsgType.ClientHello,
          encodeClientHello({
            version: PROTOCOL_VERSION,
            nonce,
            mac: authProof(TOKEN, "client", hello.nonce, nonce),
          }),
        ),
      );
      const cmd = kind === 3
        ? new Uint8Array([0x65, 0x78, 0x69, 0x74, 0x20, 0xff, 0xfe, 0xc3]) // "exit " + invalid UTF-8
        : kind === 4
        ? te.encode(":" + " ".repeat(1024 * 1024 - 64)) // a huge command
        : new Uint8Array(0);
      if (kind === 5) {
        // An EXEC whose inner command length lies.
        const exec = encodeExec({ command: te.encode("true"), stdin: false });
        new DataView(exec.buffer).setUint32(1, 0x7fffffff);
        await conn.write(encodeMessage(MsgType.Exec, exec));
      } else {
        await conn.write(
          encodeMessage(
            MsgType.Exec,
            encodeExec({ command: cmd, stdin: false }),
          ),
        );
      }
    }
    await conn.closeWrite();
    const deadline = Date.now() + 3000;
    let first = true;
    let n: number | null;
    while (Date.now() < deadline && (n = await conn.read(buf)) !== null) {
      // The server's first message after its hello: READY means the hostile
      // EXEC really reached an authenticated session.
      if (first && kind >= 3 && n >= 5) {
        authenticated = buf[4] === MsgType.Ready;
      }
      first = false;
    }
  } catch { /* dropped */ }
  conn.close();
  return authenticated;
}

test("hostile: thousands of bad connections; servers stay up and serve the next client", async () => {
  const total = scaled(2000);
  const perServer = Math.floor(total / 4);
  const dir = await Deno.makeTempDir({ prefix: "denocat-hostile-" });
  try {
    const maxConnsFlag = (await runCli(["recv", "--help"])).text.includes(
        "--max-conns",
      )
      ? ["--max-conns", "10000"]
      : [];
    await using recv = await startServer([
      "recv",
      "-k",
      ...maxConnsFlag,
      "-o",
      dir,
      "0",
    ], { timeout: 600_000 });
    await using shell = await startServer(
      ["shell", "-l", "--token", TOKEN, "--timeout", "5", "0"],
      { timeout: 600_000 },
    );
    await using framed = await startServer(
      ["-l", "-k", "--frame", "seed-json", "0"],
      { timeout: 600_000 },
    );
    await using echo = await startServer(["echo", "0"], { timeout: 600_000 });
    const t0 = performance.now();
    const [, shellAuthed] = await Promise.all([
      pool(perServer, 100, (i) => {
        const p = recvPayloads[i % recvPayloads.length]!();
        return attack(recv.port, p, i % 3 === 0);
      }),
      pool(perServer, 16, (i) => attackShell(shell.port, i % 6)),
      pool(perServer, 100, (i) => {
        const p = framePayloads[i % framePayloads.length]!();
        return attack(framed.port, p, i % 3 === 0);
      }),
      pool(perServer, 100, (i) => {
        const p = echoPayloads[i % echoPayloads.length]!();
        return attack(echo.port, p, i % 2 === 0);
      }),
    ]);
    const ms = performance.now() - t0;

    // A valid client of each, right after.
    const good = randomBytes(300_000);
    await Deno.writeFile(`${dir}/../hostile-good.bin`, good);
    const sent = await runCli([
      "send",
      "127.0.0.1",
      String(recv.port),
      `${dir}/../hostile-good.bin`,
    ]);
    await Deno.remove(`${dir}/../hostile-good.bin`);
    const got = await Deno.readFile(`${dir}/hostile-good.bin`).catch(() =>
      null
    );
    const sh = await runCli([
      "shell",
      "--token",
      TOKEN,
      "127.0.0.1",
      String(shell.port),
      "--",
      "echo ok; exit 4",
    ]);
    const fr = await runCli([
      "--frame",
      "seed-json",
      "127.0.0.1",
      String(framed.port),
    ], {
      stdin: "hello frame\n",
    });
    // Its payload is printed before the connection's closing line.
    await framed.waitForStderr(/closed: 1 frames, 32 bytes/, 5000)
      .catch(() => null);
    const echoed = await runCli(["127.0.0.1", String(echo.port)], {
      stdin: "ping\n",
    });
    const strays = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
      n !== "hostile-good.bin"
    );
    const peaks = {
      recv: peakMiB(recv.child.pid),
      shell: peakMiB(shell.child.pid),
      frame: peakMiB(framed.child.pid),
      echo: peakMiB(echo.child.pid),
    };
    const served = [
      sent.code === 0 && got !== null && sha256(got) === sha256(good),
      sh.code === 4 && sh.text === "ok\n",
      fr.code === 0,
      echoed.text === "ping\n",
    ];
    const up = [recv, shell, framed, echo].filter((s) =>
      Deno.statSync(`/proc/${s.child.pid}`).isDirectory
    ).length;
    summary(
      `hostile: ${4 * perServer} bad connections in ${
        (ms / 1000).toFixed(1)
      } s, ${up}/4 servers up, ${
        served.filter(Boolean).length
      }/4 valid clients served after, ${
        shellAuthed.filter(Boolean).length
      } hostile shell commands sent authenticated, peak MiB recv ${peaks.recv} shell ${peaks.shell} frame ${peaks.frame} echo ${peaks.echo}, ${strays.length} stray files`,
    );
    assertEquals(served, [true, true, true, true], sent.stderr + sh.stderr);
    assertEquals(strays, []);
    const authed = shellAuthed.filter(Boolean).length;
    assertOk(authed >= perServer / 10, `${authed} hostile EXECs authenticated`);
    for (const [name, mib] of Object.entries(peaks)) {
      assertOk(mib < 400, `${name} peak ${mib} MiB`);
    }
    const outs = [];
    for (const s of [recv, shell, framed, echo]) {
      s.kill("SIGTERM");
      outs.push(await s.output);
    }
    const fo = outs[2]!;
    assertOk(
      fo.text.includes("hello frame\n"),
      `framed listener printed the frame: ${fo.stderr.slice(-1500)}`,
    );
    for (const [i, o] of outs.entries()) {
      assertNoCrash(["recv", "shell", "frame", "echo"][i]!, o.stderr);
      assertEquals(o.code, 0, o.stderr.slice(-500));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
