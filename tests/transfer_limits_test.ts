/**
 * The receiver's limits and item kinds through the library: both the
 * directory-descriptor path and the portable one, keep-alives against the
 * idle timeout, `maxSize` on streams, per-source pending eviction, and no
 * descriptor left behind.
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { dirCalls } from "../lib/native/dirfd.ts";
import {
  collectItems,
  type ConnectionResult,
  receiveServer,
  seedSendOver,
  type SendItem,
  sendItems,
  UnsafeNameError,
} from "../lib/transfer/mod.ts";
import { checkName } from "../lib/transfer/names.ts";
import { encodeHeader, encodeHello } from "../lib/transfer/protocol.ts";
import { runCli, startServer, testOnlyOn } from "./_helpers.ts";

const te = new TextEncoder();

function chunks(
  parts: string[],
  pauseMs = 0,
): { read(p: Uint8Array): Promise<number | null> } {
  let i = 0;
  return {
    async read(p: Uint8Array) {
      if (i >= parts.length) return null;
      if (i > 0 && pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
      const b = te.encode(parts[i++]!);
      p.set(b);
      return b.length;
    },
  };
}

function listing(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${dir}/${prefix}`)) {
    const rel = prefix + e.name;
    const info = Deno.lstatSync(`${dir}/${rel}`);
    const mode = (info.mode! & 0o777).toString(8);
    if (info.isSymlink) {
      out.push(`${rel} -> ${Deno.readLinkSync(`${dir}/${rel}`)}`);
    } else if (info.isDirectory) {
      out.push(`${rel}/ ${mode}`);
      out.push(...listing(dir, rel + "/"));
    } else out.push(`${rel} ${mode} ${Deno.readTextFileSync(`${dir}/${rel}`)}`);
  }
  return out.sort();
}

Deno.test("checkName() accepts names exactly at the limits and refuses one past them", () => {
  assertEquals(checkName("a/".repeat(63) + "f").length, 64);
  assertEquals(checkName("é".repeat(2048)).length, 1); // 4096 bytes
  let err = null;
  try {
    checkName("é".repeat(2048) + "x");
  } catch (e) {
    err = e;
  }
  assertOk(err instanceof UnsafeNameError && /4096/.test(err.message));
  assertEquals(checkName("a/b/c", { maxDepth: 3 }), ["a", "b", "c"]);
  err = null;
  try {
    checkName("a/b/c/d", { maxDepth: 3 });
  } catch (e) {
    err = e;
  }
  assertOk(err instanceof UnsafeNameError && /4 components/.test(err.message));
});

/** Trees with symlinks and permission bits: POSIX systems only. */
const posixTest = testOnlyOn(
  ["linux", "darwin"],
  "POSIX symlinks and permission bits",
);

for (const native of [true, false]) {
  const mode = native ? "descriptors" : "portable";
  posixTest(
    `receiveServer() (${mode}): a tree with empty dirs and symlinks, dir modes kept or set as documented`,
    { ignore: native && dirCalls() === null },
    async () => {
      const base = await Deno.realPath(await Deno.makeTempDir());
      try {
        const t = `${base}/src/t`;
        await Deno.mkdir(`${t}/e`, { recursive: true });
        await Deno.mkdir(`${t}/ro`);
        await Deno.writeTextFile(`${t}/ro/f`, "f");
        await Deno.symlink("ro/f", `${t}/l`);
        await Deno.chmod(`${t}/e`, 0o700);
        await Deno.chmod(`${t}/ro`, 0o555);
        const out = `${base}/out`;
        await Deno.mkdir(`${out}/t/e`, { recursive: true });
        await Deno.chmod(`${out}/t/e`, 0o711); // there before: kept
        await Deno.chmod(`${out}/t`, 0o755);
        const items = await collectItems([t], { recursive: true });
        assertEquals(items.map((i) => `${i.kind} ${i.name}`), [
          "dir t/e",
          "symlink t/l",
          "file t/ro/f",
          "dir t/ro",
          "dir t",
        ]);
        {
          await using s = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
            dir: out,
            native,
          });
          const r = await sendItems(
            { hostname: "127.0.0.1", port: s.port },
            items,
          );
          assertEquals(r.exitCode, 0, JSON.stringify(r.items));
          assertEquals(await s.finished, 0);
        }
        assertEquals(listing(out), [
          "t/ 755",
          "t/e/ 711",
          "t/l -> ro/f",
          "t/ro/ 555",
          "t/ro/f 644 f",
        ]);
        // Again, with --overwrite: the modes are set, the symlink replaced.
        await Deno.chmod(`${out}/t/ro`, 0o755);
        await Deno.remove(`${out}/t/ro/f`);
        await Deno.chmod(t, 0o750);
        const again = await collectItems([t], { recursive: true });
        {
          await using s = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
            dir: out,
            native,
            overwrite: true,
          });
          const r = await sendItems(
            { hostname: "127.0.0.1", port: s.port },
            again,
          );
          assertEquals(r.exitCode, 0, JSON.stringify(r.items));
        }
        assertEquals(listing(out), [
          "t/ 750",
          "t/e/ 700",
          "t/l -> ro/f",
          "t/ro/ 555",
          "t/ro/f 644 f",
        ]);
        // Without --overwrite an existing symlink is a clash; a file where a
        // directory goes is refused.
        await Deno.chmod(`${out}/t/ro`, 0o755);
        await Deno.writeTextFile(`${out}/t/x`, "file");
        {
          await using s = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
            dir: out,
            native,
            keep: true,
          });
          const r = await sendItems({ hostname: "127.0.0.1", port: s.port }, [
            { kind: "symlink", name: "t/l", target: "e" },
            { kind: "dir", name: "t/x", mode: 0o755 },
          ]);
          assertEquals(r.items.map((i) => i.code), ["exists", "unsafe-name"]);
        }
        assertEquals(Deno.readLinkSync(`${out}/t/l`), "ro/f");
      } finally {
        await new Deno.Command("chmod", { args: ["-R", "u+rwx", base] })
          .output();
        await Deno.remove(base, { recursive: true });
      }
    },
  );
}

Deno.test("receiveServer() maxSize: a stream passing it is refused mid-body, the session ends, nothing is left", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await using s = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir,
      maxSize: 10,
    });
    const items: SendItem[] = [
      { kind: "stream", name: "small", reader: chunks(["0123456789"]) },
      { kind: "stream", name: "big", reader: chunks(["01234", "56789", "x"]) },
      { kind: "stream", name: "after", reader: chunks(["a"]) },
    ];
    const r = await sendItems({ hostname: "127.0.0.1", port: s.port }, items);
    assertEquals(r.items.map((i) => i.code ?? "ok"), [
      "ok",
      "too-large",
      "network",
    ]);
    assertOk(/--max-size 10/.test(r.items[1]!.error!), r.items[1]!.error);
    assertEquals(await s.finished, 1);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["small"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sendItems() keeps a slow stream alive through the receiver's idle timeout with empty chunks", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    for (const keepAlive of [100, 0]) {
      await using s = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
        dir,
        idleTimeout: 400,
        overwrite: true,
      });
      const r = await sendItems({ hostname: "127.0.0.1", port: s.port }, [{
        kind: "stream",
        name: "slow",
        reader: chunks(["a", "b", "c"], 700),
      }], { keepAlive });
      if (keepAlive) {
        assertEquals(r.exitCode, 0, JSON.stringify(r.items));
        assertEquals(Deno.readTextFileSync(`${dir}/slow`), "abc");
      } else {
        assertEquals(
          r.exitCode,
          1,
          "without keep-alives the idle timeout ends it",
        );
        // ... and the sender is told why.
        assertOk(
          /receiver closed the connection: no data from this sender for 0\.4 s \(--idle-timeout\)/
            .test(r.items[0]!.error!),
          r.items[0]!.error,
        );
      }
      await s.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("receiveServer() maxPending evicts from the source holding the most: another source's connection stays", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const conns: Deno.TcpConn[] = [];
  try {
    await using s = receiveServer({ hostname: "::", port: 0 }, {
      dir,
      keep: true,
      maxPending: 4,
    });
    const other = await Deno.connect({ hostname: "::1", port: s.port });
    conns.push(other);
    for (let i = 0; i < 10; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port: s.port }));
    }
    await new Promise((r) => setTimeout(r, 200));
    assertEquals(s.dropped, 7);
    // The ::1 connection is still served: a whole session on it.
    await other.write(encodeHello(1));
    await other.write(encodeHeader({ name: "kept", size: 2, mode: 0o644 }));
    await other.write(te.encode("ok"));
    const digest = Uint8Array.fromHex(
      "2689367b205c16ce32ed4200942b8b8b1e262dfc70d9bc9fbc77c49699a4f1df",
    );
    const trailer = new Uint8Array(41);
    trailer[0] = 0x54;
    trailer[8] = 2;
    trailer.set(digest, 9);
    await other.write(trailer);
    await other.write(new Uint8Array([0x45]));
    await other.closeWrite();
    const buf = new Uint8Array(4096);
    let text = "";
    for (let n; (n = await other.read(buf)) !== null;) {
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    assertOk(text.includes('"ok":true'), text);
    assertEquals(Deno.readTextFileSync(`${dir}/kept`), "ok");
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "receiveServer() (descriptors): no descriptor is left open after items are written, refused or cut off",
  ignore: dirCalls() === null,
}, async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  // Descriptors of this process that name something under `dir` (other
  // test files may run in this process: only ours are counted).
  const ours = () => {
    const out: string[] = [];
    for (const e of Deno.readDirSync("/proc/self/fd")) {
      try {
        const to = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
        if (to === dir || to.startsWith(`${dir}/`)) out.push(to);
      } catch { /* closed meanwhile */ }
    }
    return out.sort();
  };
  try {
    await using s = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir,
      keep: true,
    });
    await Deno.mkdir(`${dir}/taken`);
    await Deno.writeTextFile(`${dir}/file`, "x");
    await Deno.symlink("/tmp", `${dir}/sym`);
    const batch = () => {
      const items: SendItem[] = [];
      for (let i = 0; i < 20; i++) {
        items.push(
          { kind: "stream", name: `a/b/c${i}`, reader: chunks(["x"]) },
          { kind: "stream", name: `file/c${i}`, reader: chunks(["x"]) },
          { kind: "stream", name: `sym/c${i}`, reader: chunks(["x"]) },
          { kind: "stream", name: "taken", reader: chunks(["x"]) },
          { kind: "dir", name: `d/e${i}`, mode: 0o755 },
          { kind: "symlink", name: `d/l${i}`, target: "e0" },
        );
      }
      return items;
    };
    await sendItems({ hostname: "127.0.0.1", port: s.port }, batch());
    const before = ours();
    for (let round = 0; round < 3; round++) {
      await Deno.remove(`${dir}/a`, { recursive: true });
      await Deno.remove(`${dir}/d`, { recursive: true });
      const r = await sendItems(
        { hostname: "127.0.0.1", port: s.port },
        batch(),
      );
      assertEquals(r.items.filter((i) => i.ok).length, 60);
    }
    assertEquals(ours(), before);
    assertEquals(before, [dir], "only the server's hold on DIR itself");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("receiveServer() --compat seed applies maxSize too: the connection closes, nothing is written", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    let result: ConnectionResult | undefined;
    await Deno.mkdir(`${dir}/out`);
    await using s = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: `${dir}/out`,
      compat: "seed",
      maxSize: 3,
      onConnection: (r) => result = r,
    });
    await Deno.writeTextFile(`${dir}/big`, "0123456789");
    using c = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
    await seedSendOver(c, [{
      kind: "file",
      path: `${dir}/big`,
      name: "big",
      size: 10,
      mode: 0o644,
    }]);
    assertEquals(await s.finished, 1);
    assertEquals(result?.items.map((i) => i.code), ["too-large"]);
    assertEquals([...Deno.readDirSync(`${dir}/out`)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sendItems() skips a file gone since the walk with the reason, sends the rest, and sends a file that grew whole", async () => {
  const base = await Deno.realPath(await Deno.makeTempDir());
  try {
    const t = `${base}/src/t`;
    await Deno.mkdir(t, { recursive: true });
    for (const n of ["a", "b", "c"]) await Deno.writeTextFile(`${t}/${n}`, n);
    const items = await collectItems([t], { recursive: true });
    await Deno.remove(`${t}/b`);
    await Deno.writeTextFile(`${t}/c`, "c grew");
    await Deno.mkdir(`${base}/out`);
    await using s = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir: `${base}/out`,
    });
    const r = await sendItems({ hostname: "127.0.0.1", port: s.port }, items);
    assertEquals(
      r.items.map((i) => `${i.name} ${i.code ?? "ok"}`),
      ["t/a ok", "t/b local", "t/c ok", "t ok"],
    );
    assertOk(/cannot read .*\/t\/b: no such file/.test(r.items[1]!.error!));
    assertEquals(r.exitCode, 1);
    assertEquals(await s.finished, 0);
    assertEquals(Deno.readTextFileSync(`${base}/out/t/c`), "c grew");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("send to recv --max-size: the refused item and the ones after it are named, with the reason, exit 1", async () => {
  const base = await Deno.realPath(await Deno.makeTempDir());
  try {
    await Deno.mkdir(`${base}/out`);
    await Deno.writeTextFile(`${base}/a`, "a");
    await Deno.writeFile(`${base}/big`, new Uint8Array(4096));
    await Deno.writeTextFile(`${base}/z`, "z");
    await using recv = await startServer([
      "recv",
      "--max-size",
      "1K",
      "-o",
      `${base}/out`,
      "0",
    ]);
    const r = await runCli([
      "send",
      "127.0.0.1",
      String(recv.port),
      `${base}/a`,
      `${base}/big`,
      `${base}/z`,
    ]);
    assertEquals(r.code, 1);
    const lines = r.stderr.trim().split("\n");
    assertEquals(lines.length, 2, r.stderr);
    assertEquals(
      lines[0],
      "denocat: big: 4096 bytes is more than the receiver accepts (--max-size 1024)",
    );
    // Sent before the refusal came back, or not sent at all: either way named.
    assertOk(
      /^denocat: z: (not sent|no acknowledgement): receiver: big: 4096 bytes/
        .test(lines[1]!),
      lines[1],
    );
    assertEquals((await recv.output).code, 1);
    assertEquals([...Deno.readDirSync(`${base}/out`)].map((e) => e.name), [
      "a",
    ]);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
