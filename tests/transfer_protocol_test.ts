/**
 * The transfer library over real loopback sockets: round trips, name
 * safety against hand-crafted hostile headers, truncated and malformed
 * streams, and the receiver surviving all of them.
 */
import { assertEquals, assertOk, assertThrows } from "../lib/_assert.ts";
import { collectItems, receiveServer, sendItems } from "../mod.ts";
import {
  type Ack,
  encodeHeader,
  encodeHello,
  encodeTrailer,
  parseAck,
  RECORD,
  TRANSFER_HELLO_SIZE,
} from "../lib/transfer/protocol.ts";
import { checkName, UnsafeNameError } from "../lib/transfer/names.ts";
import type { ConnectionResult } from "../lib/transfer/recv.ts";
import { openItem, RefusedError } from "../lib/transfer/store.ts";
import { concat, randomBytes, readAll, sha256 } from "./_helpers.ts";

const te = new TextEncoder();

async function tempDir(): Promise<string> {
  return await Deno.realPath(await Deno.makeTempDir({ prefix: "xfer-" }));
}

const join = (...parts: Uint8Array[]) => concat(parts);

/** One whole known-size item as a sender would write it. */
function item(name: string, body: Uint8Array, size: number = body.length) {
  const digest = new Uint8Array(32);
  digest.set(Uint8Array.fromHex(sha256(body)));
  return join(
    encodeHeader({ name, size, mode: 0o644 }),
    body,
    encodeTrailer(new Uint8Array(41), body.length, digest),
  );
}

/** Sends raw bytes as a client, half-closes, returns the acks received. */
async function rawSession(
  port: number,
  bytes: Uint8Array,
): Promise<{ acks: Ack[]; helloOk: boolean }> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reading = readAll(conn).catch(() => new Uint8Array());
  try {
    await conn.write(bytes);
    await conn.closeWrite();
  } catch { /* the receiver may have hung up already */ }
  const got = await reading;
  const helloOk = sha256(got.subarray(0, TRANSFER_HELLO_SIZE)) ===
    sha256(encodeHello());
  const acks: Ack[] = [];
  let at = TRANSFER_HELLO_SIZE;
  while (at + 5 <= got.length && got[at] === RECORD.ACK) {
    const len = new DataView(got.buffer, got.byteOffset + at + 1).getUint32(0);
    acks.push(parseAck(got.subarray(at + 5, at + 5 + len)));
    at += 5 + len;
  }
  return { acks, helloOk };
}

function listAll(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, prefix: string) => {
    for (const e of Deno.readDirSync(d)) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name;
      out.push(rel);
      if (e.isDirectory) walk(`${d}/${e.name}`, rel);
    }
  };
  walk(dir, "");
  return out.sort();
}

function streamOf(data: Uint8Array, step = 70_000) {
  let at = 0;
  return {
    read(p: Uint8Array) {
      if (at >= data.length) return Promise.resolve(null);
      const n = Math.min(p.length, step, data.length - at);
      p.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("checkName() refuses every traversal form and accepts plain relative paths", () => {
  for (
    const bad of [
      "",
      "/etc/passwd",
      "..",
      "../x",
      "a/../../x",
      "a/..",
      "./x",
      "a//b",
      "a/",
      "a\u0000b",
      "a\nb",
      "\u001b[31mred",
      "a\u007fb",
      "a\u0085b",
      "a\\..\\b",
    ]
  ) {
    assertThrows(() => checkName(bad), UnsafeNameError, "unsafe name");
  }
  assertEquals(checkName("dir/sub/ファイル.txt"), [
    "dir",
    "sub",
    "ファイル.txt",
  ]);
  assertEquals(checkName("..a/b..c"), ["..a", "b..c"]);
});

Deno.test("sendItems() delivers empty, 1-byte, many files, a tree and unicode names, verified", async () => {
  const src = await tempDir();
  const out = await tempDir();
  try {
    await Deno.writeFile(`${src}/empty`, new Uint8Array());
    await Deno.writeFile(`${src}/one`, new Uint8Array([0x5a]));
    const tree = `${src}/tree`;
    await Deno.mkdir(`${tree}/a/b/c`, { recursive: true });
    await Deno.mkdir(`${tree}/d`, { recursive: true });
    const expected = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const dir = ["a", "a/b", "a/b/c", "d"][i % 4]!;
      const body = randomBytes(i * 997);
      await Deno.writeFile(`${tree}/${dir}/f${i}.bin`, body);
      expected.set(`tree/${dir}/f${i}.bin`, sha256(body));
    }
    const uni = "données-文件-📦 ü.txt";
    await Deno.writeTextFile(`${tree}/${uni}`, "unicode\n");
    expected.set(`tree/${uni}`, sha256(te.encode("unicode\n")));
    await Deno.chmod(`${tree}/d/f3.bin`, 0o750);
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
    });
    const items = await collectItems(
      [`${src}/empty`, `${src}/one`, tree],
      { recursive: true },
    );
    const r = await sendItems(
      { hostname: "127.0.0.1", port: server.port },
      items,
    );
    assertEquals(r.exitCode, 0);
    assertEquals(await server.finished, 0);
    // 42 files, and the directories tree, a, a/b, a/b/c, d as items.
    assertEquals(r.items.length, 48);
    assertOk(r.items.every((i) => i.ok));
    assertEquals((await Deno.readFile(`${out}/empty`)).length, 0);
    assertEquals(await Deno.readFile(`${out}/one`), new Uint8Array([0x5a]));
    for (const [name, hash] of expected) {
      assertEquals(sha256(await Deno.readFile(`${out}/${name}`)), hash, name);
    }
    assertEquals(
      (await Deno.stat(`${out}/tree/d/f3.bin`)).mode! & 0o777,
      0o750,
    );
    // Nothing but the items: no temporary files left behind.
    assertOk(!listAll(out).some((n) => n.includes(".denocat-")));
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("receiveServer() refuses each hostile name with an unsafe-name ack, writes nothing, and keeps serving", async () => {
  const base = await tempDir();
  const out = `${base}/out`;
  await Deno.mkdir(out);
  await Deno.mkdir(`${base}/outside`);
  await Deno.symlink(`${base}/outside`, `${out}/escape`);
  await Deno.symlink(`${base}/outside/target`, `${out}/dangling`);
  try {
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
      keep: true,
    });
    const hostile = [
      "../evil",
      "/tmp/evil-abs",
      `${base}/outside/abs`,
      "a/../../evil",
      "..",
      "ok\u0000evil",
      "line\nbreak",
      "escape/evil",
      "dangling",
      "",
    ];
    for (const name of hostile) {
      const { acks, helloOk } = await rawSession(
        server.port,
        join(
          encodeHello(),
          item(name, te.encode("evil")),
          new Uint8Array([RECORD.END]),
        ),
      );
      assertOk(helloOk);
      assertEquals(acks.length, 1, `one ack for ${JSON.stringify(name)}`);
      const ack = acks[0]!;
      assertOk(!ack.ok && ack.code === "unsafe-name", JSON.stringify(ack));
      assertOk(ack.error.startsWith("unsafe name"), ack.error);
    }
    assertEquals(listAll(`${base}/outside`), []);
    assertEquals(listAll(out), ["dangling", "escape"]);
    // Still serving: a good item goes through on the same server.
    const good = await rawSession(
      server.port,
      join(
        encodeHello(),
        item("fine.txt", te.encode("fine")),
        new Uint8Array([RECORD.END]),
      ),
    );
    assertEquals(good.acks.map((a) => a.ok), [true]);
    assertEquals(await Deno.readTextFile(`${out}/fine.txt`), "fine");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("receiveServer() ends malformed streams with a protocol error and keeps serving", async () => {
  const out = await tempDir();
  try {
    const results: Array<string | undefined> = [];
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
      keep: true,
      onConnection: (r) => results.push(r.error),
    });
    const body = randomBytes(5000);
    const header = encodeHeader({ name: "x", size: 10 });
    const oversize = new Uint8Array(5);
    oversize[0] = RECORD.HEADER;
    new DataView(oversize.buffer).setUint32(1, 1 << 30);
    const cases: Array<[string, Uint8Array, string]> = [
      ["garbage hello", te.encode("GET / HTTP/1.1\r\n\r\n"), "not a denocat"],
      ["oversize header", join(encodeHello(), oversize), "at most 65536"],
      [
        "lying size (more body than declared)",
        join(encodeHello(), header, body),
        "does size lie",
      ],
      [
        "truncated body (sender gone)",
        join(encodeHello(), encodeHeader({ name: "y", size: 100_000 }), body),
        "expected a body of 100000 bytes",
      ],
      [
        "header not JSON",
        join(
          encodeHello(),
          new Uint8Array([RECORD.HEADER, 0, 0, 0, 3]),
          te.encode("{{{"),
        ),
        "malformed item header",
      ],
      [
        "unknown record",
        join(encodeHello(), new Uint8Array([0x99])),
        "unexpected record",
      ],
    ];
    for (const [what, bytes, message] of cases) {
      const { acks } = await rawSession(server.port, bytes);
      const last = acks.at(-1);
      assertOk(last && !last.ok && last.code === "protocol", what);
      assertOk(last.error.includes(message), `${what}: ${last.error}`);
    }
    assertEquals(listAll(out), [], "no file and no temporary file");
    assertEquals(results.length, cases.length);
    const good = await rawSession(
      server.port,
      join(
        encodeHello(),
        item("after.bin", body),
        new Uint8Array([RECORD.END]),
      ),
    );
    assertEquals(good.acks.map((a) => a.ok), [true]);
    assertEquals(sha256(await Deno.readFile(`${out}/after.bin`)), sha256(body));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("sendItems() reports a name clash per item; the existing file is untouched", async () => {
  const out = await tempDir();
  try {
    await Deno.writeTextFile(`${out}/taken.txt`, "original");
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
    });
    const r = await sendItems({ hostname: "127.0.0.1", port: server.port }, [
      { kind: "stream", name: "taken.txt", reader: streamOf(te.encode("new")) },
      { kind: "stream", name: "free.txt", reader: streamOf(te.encode("free")) },
    ]);
    assertEquals(r.exitCode, 1);
    assertEquals(r.items.map((i) => [i.ok, i.code]), [[false, "exists"], [
      true,
      undefined,
    ]]);
    assertOk(r.items[0]!.error!.includes("already exists"));
    assertEquals(await Deno.readTextFile(`${out}/taken.txt`), "original");
    assertEquals(await Deno.readTextFile(`${out}/free.txt`), "free");
    assertEquals(await server.finished, 1);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("receiveServer() with overwrite replaces the file atomically", async () => {
  const out = await tempDir();
  try {
    await Deno.writeTextFile(`${out}/f`, "old");
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
      overwrite: true,
    });
    const r = await sendItems({ hostname: "127.0.0.1", port: server.port }, [
      { kind: "stream", name: "f", reader: streamOf(te.encode("new")) },
    ]);
    assertEquals(r.exitCode, 0);
    assertEquals(await Deno.readTextFile(`${out}/f`), "new");
    assertEquals(listAll(out), ["f"]);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("a trailer that disagrees with the body is an integrity failure: ack code integrity, no file", async () => {
  const out = await tempDir();
  try {
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
    });
    const body = randomBytes(3000);
    const wrong = new Uint8Array(32).fill(1);
    const { acks } = await rawSession(
      server.port,
      join(
        encodeHello(),
        encodeHeader({ name: "bad.bin", size: body.length }),
        body,
        encodeTrailer(new Uint8Array(41), body.length, wrong),
        new Uint8Array([RECORD.END]),
      ),
    );
    assertEquals(acks.length, 1);
    assertOk(!acks[0]!.ok && acks[0]!.code === "integrity");
    assertOk(acks[0]!.error.includes("sha256 mismatch"));
    assertEquals(await server.finished, 3);
    assertEquals(listAll(out), []);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("receiveServer() creates parent directories only for a verified item: failed ones leave no tree", async () => {
  const out = await tempDir();
  try {
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
      keep: true,
    });
    const body = randomBytes(4000);
    const wrong = new Uint8Array(32).fill(7);
    const cases: Array<[string, Uint8Array]> = [
      [
        "integrity failure",
        join(
          encodeHello(),
          encodeHeader({ name: "i1/i2/i3/bad.bin", size: body.length }),
          body,
          encodeTrailer(new Uint8Array(41), body.length, wrong),
          new Uint8Array([RECORD.END]),
        ),
      ],
      [
        "sender gone mid-body",
        join(
          encodeHello(),
          encodeHeader({ name: "t1/t2/cut.bin", size: 100_000 }),
          body,
        ),
      ],
      [
        "garbage inside a stream",
        join(
          encodeHello(),
          encodeHeader({ name: "s1/s2/stream", size: "stream" }),
          new Uint8Array([0x99]),
        ),
      ],
    ];
    for (let i = 0; i < 200; i++) {
      // A hostile sender announcing many trees, sending none of them.
      cases.push([
        `hostile ${i}`,
        join(encodeHello(), encodeHeader({ name: `h${i}/x/y`, size: 9 })),
      ]);
    }
    for (const [what, bytes] of cases) {
      const { acks } = await rawSession(server.port, bytes);
      assertOk(acks.length > 0 && acks.every((a) => !a.ok), what);
    }
    assertEquals(listAll(out), [], "no directories, no temporary files");
    const good = await rawSession(
      server.port,
      join(
        encodeHello(),
        item("g1/g2/good.bin", body),
        new Uint8Array([RECORD.END]),
      ),
    );
    assertEquals(good.acks.map((a) => a.ok), [true]);
    assertEquals(listAll(out), ["g1", "g1/g2", "g1/g2/good.bin"]);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("openItem() checks the path again at commit: a symlink swapped in while writing is refused", async () => {
  const base = await tempDir();
  const root = `${base}/root`;
  await Deno.mkdir(root);
  await Deno.mkdir(`${base}/outside`);
  try {
    const stored = await openItem({ dir: root, overwrite: false }, "sub/f");
    await stored.sink.write(te.encode("payload"));
    await Deno.symlink(`${base}/outside`, `${root}/sub`);
    const err = await stored.commit(0o644).then(() => null, (e) => e);
    assertOk(err instanceof RefusedError, String(err));
    assertEquals(err.code, "unsafe-name");
    assertOk(err.message.includes("outside"), err.message);
    assertEquals(listAll(`${base}/outside`), []);
    assertEquals(listAll(root), ["sub"], "only the symlink; no temp file");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("receiveServer() records items committed before their ack fails: the sender vanished after END, exit 0", async () => {
  const out = await tempDir();
  try {
    const lines: string[] = [];
    let result: ConnectionResult | undefined;
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
      logger: { enabled: true, log: (m) => lines.push(m) },
      onConnection: (r) => result = r,
    });
    const a = randomBytes(1000);
    const b = randomBytes(2000);
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    // Let the receiver's hello arrive unread: close() then resets the
    // connection, so the receiver's ack writes fail (broken pipe).
    await new Promise((r) => setTimeout(r, 50));
    await conn.write(
      join(
        encodeHello(),
        item("a.bin", a),
        item("b.bin", b),
        new Uint8Array([RECORD.END]),
      ),
    );
    conn.close();
    assertEquals(await server.finished, 0, lines.join("\n"));
    assertEquals(sha256(await Deno.readFile(`${out}/a.bin`)), sha256(a));
    assertEquals(sha256(await Deno.readFile(`${out}/b.bin`)), sha256(b));
    assertEquals(result?.items.map((i) => [i.name, i.ok]), [
      ["a.bin", true],
      ["b.bin", true],
    ]);
    assertEquals(result?.error, undefined);
    assertOk(result?.items[0]?.ackError, JSON.stringify(result));
    assertOk(
      lines.some((l) =>
        l.includes(`"a.bin": the sender may not know`) &&
        l.includes("acknowledgement could not be sent")
      ),
      lines.join("\n"),
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

/**
 * Opens a connection that takes a sender's slot: hello, then the header of a
 * stream item whose body never comes. Resolves once the receiver has opened
 * the item's temporary file in `dir` (so the slot is taken).
 */
async function holdSlot(port: number, dir: string): Promise<Deno.TcpConn> {
  const before = listAll(dir).length;
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  await c.write(join(
    encodeHello(),
    encodeHeader({ name: `hold${before}`, size: "stream", mode: 0o644 }),
  ));
  for (let i = 0; listAll(dir).length <= before; i++) {
    assertOk(i < 500, "the receiver never opened the held item");
    await new Promise((r) => setTimeout(r, 10));
  }
  return c;
}

Deno.test("receiveServer() with maxConns tells the sender beyond the limit busy, and serves again once a slot frees", async () => {
  const out = await tempDir();
  try {
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
      keep: true,
      maxConns: 2,
    });
    // Idle connections take no slot: these do not turn anyone away.
    const idle: Deno.TcpConn[] = [];
    for (let i = 0; i < 5; i++) {
      idle.push(
        await Deno.connect({ hostname: "127.0.0.1", port: server.port }),
      );
    }
    const held = [
      await holdSlot(server.port, out),
      await holdSlot(server.port, out),
    ];
    try {
      const third = await sendItems(
        { hostname: "127.0.0.1", port: server.port },
        [{ kind: "stream", name: "x", reader: streamOf(te.encode("late")) }],
      );
      assertEquals(third.exitCode, 1);
      assertEquals(third.items[0]!.code, "busy");
      assertOk(third.items[0]!.error!.includes("receiver busy"));
      assertEquals(server.turnedAway, 1);
      assertEquals(server.dropped, 0);
      assertOk(!listAll(out).includes("x"));
    } finally {
      held.shift()!.close();
    }
    // One slot is free again (the receiver notices the close first).
    let again;
    for (let i = 0; i < 100; i++) {
      again = await sendItems(
        { hostname: "127.0.0.1", port: server.port },
        [{ kind: "stream", name: "x", reader: streamOf(te.encode("now")) }],
      );
      if (again.exitCode === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assertEquals(again?.exitCode, 0);
    assertEquals(await Deno.readTextFile(`${out}/x`), "now");
    held.shift()!.close();
    for (const c of idle) c.close();
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("receiveServer() with maxPending closes the oldest connection without an item header; a sender still gets through", async () => {
  const out = await tempDir();
  try {
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
      keep: true,
      maxConns: 1,
      maxPending: 3,
    });
    const idle: Deno.TcpConn[] = [];
    for (let i = 0; i < 5; i++) {
      idle.push(
        await Deno.connect({ hostname: "127.0.0.1", port: server.port }),
      );
    }
    // The two oldest were closed: each reads EOF, after at most the
    // receiver's hello (it may be closed before the hello went out).
    for (const c of idle.slice(0, 2)) {
      const got = await readAll(c);
      assertEquals(got, encodeHello().subarray(0, got.length));
    }
    const sent = await sendItems(
      { hostname: "127.0.0.1", port: server.port },
      [{ kind: "stream", name: "y", reader: streamOf(te.encode("in")) }],
    );
    assertEquals(sent.exitCode, 0);
    assertEquals(await Deno.readTextFile(`${out}/y`), "in");
    // The sender was the newest: the oldest idle one made room for it.
    assertEquals(server.dropped, 3);
    assertEquals(server.turnedAway, 0);
    for (const c of idle) c.close();
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("receiveServer() with maxConns 3: of 4 concurrent real senders exactly one is told busy, the rest verify", async () => {
  const out = await tempDir();
  try {
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: out,
      keep: true,
      maxConns: 3,
    });
    let release!: () => void;
    const released = new Promise<void>((r) => release = r);
    // Each stream sends one chunk, then waits: its sender holds its slot.
    const heldStream = (i: number) => {
      let step = 0;
      return {
        async read(p: Uint8Array): Promise<number | null> {
          if (step++ === 0) {
            p.set(te.encode(`item ${i}`));
            return te.encode(`item ${i}`).length;
          }
          await released;
          return null;
        },
      };
    };
    const sends = [0, 1, 2, 3].map((i) =>
      sendItems(
        { hostname: "127.0.0.1", port: server.port },
        [{ kind: "stream", name: `s${i}`, reader: heldStream(i) }],
      )
    );
    // All four are in their item at once: one is turned away, then all end.
    for (let i = 0; server.turnedAway === 0; i++) {
      assertOk(i < 500, "no sender was turned away");
      await new Promise((r) => setTimeout(r, 10));
    }
    release();
    const results = await Promise.all(sends);
    const codes = results.map((r) => r.items[0]!.code ?? "ok").sort();
    assertEquals(codes, ["busy", "ok", "ok", "ok"]);
    assertEquals(server.turnedAway, 1);
    const busy = results.findIndex((r) => !r.items[0]!.ok);
    for (let i = 0; i < 4; i++) {
      if (i === busy) continue;
      assertEquals(await Deno.readTextFile(`${out}/s${i}`), `item ${i}`);
    }
    assertOk(!listAll(out).includes(`s${busy}`));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
