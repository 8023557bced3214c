/**
 * `send -r` trees against `tar` (issue 14, items 3 and 4): empty
 * directories and modes arrive, symlinks arrive as symlinks (or, with
 * `-L`, as what they point to), a symlink leading outside is refused with
 * the reason, and anything skipped is reported without `-v`.
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { receiveServer, sendItems } from "../lib/transfer/mod.ts";
import { encodeHello } from "../lib/transfer/protocol.ts";
import { needs, runCli, sha256, startServer, testOnlyOn } from "./_helpers.ts";

/** Trees with symlinks, modes and FIFOs: POSIX systems only. */
const posixTest = testOnlyOn(
  ["linux", "darwin"],
  "POSIX symlinks, permission bits and FIFOs",
);

/** `path type mode target-or-sha256` for everything under `dir`, sorted. */
function listing(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${dir}/${prefix}`)) {
    const rel = prefix + e.name;
    const path = `${dir}/${rel}`;
    const info = Deno.lstatSync(path);
    if (info.isSymlink) {
      out.push(`${rel} l ${Deno.readLinkSync(path)}`);
    } else if (info.isDirectory) {
      out.push(`${rel} d ${(info.mode! & 0o7777).toString(8)}`);
      out.push(...listing(dir, rel + "/"));
    } else {
      out.push(
        `${rel} f ${(info.mode! & 0o7777).toString(8)} ${
          sha256(Deno.readFileSync(path))
        }`,
      );
    }
  }
  return out.sort();
}

async function sh(cmd: string): Promise<void> {
  const r = await new Deno.Command("sh", { args: ["-c", cmd] }).output();
  if (!r.success) {
    throw new Error(`${cmd}: ${new TextDecoder().decode(r.stderr)}`);
  }
}

/** A tree with empty directories, modes, and symlinks that stay inside. */
async function makeTree(src: string): Promise<void> {
  const t = `${src}/t`;
  await Deno.mkdir(`${t}/empty`, { recursive: true });
  await Deno.mkdir(`${t}/full/deeper/empty2`, { recursive: true });
  await Deno.mkdir(`${t}/private`);
  await Deno.writeTextFile(`${t}/full/f`, "file f\n");
  await Deno.writeTextFile(`${t}/full/deeper/g`, "file g\n");
  await Deno.writeTextFile(`${t}/private/secret`, "secret\n");
  await Deno.writeTextFile(`${t}/run.sh`, "#!/bin/sh\necho hi\n");
  await Deno.symlink("full/f", `${t}/link_rel`);
  await Deno.symlink("full", `${t}/dirlink`);
  await Deno.symlink("../t/full/deeper/g", `${t}/up_and_in`);
  await Deno.symlink("not-there-yet", `${t}/dangling`);
  await Deno.chmod(`${t}/empty`, 0o750);
  await Deno.chmod(`${t}/full/deeper/empty2`, 0o700);
  await Deno.chmod(`${t}/private/secret`, 0o600);
  await Deno.chmod(`${t}/private`, 0o700);
  await Deno.chmod(`${t}/run.sh`, 0o755);
  await Deno.chmod(`${t}/full/f`, 0o640);
  await Deno.chmod(t, 0o751);
}

async function sendTree(
  src: string,
  out: string,
  extra: string[] = [],
  name = "t",
) {
  await using recv = await startServer(["recv", "-o", out, "0"]);
  const sent = await runCli([
    "send",
    "-r",
    ...extra,
    "127.0.0.1",
    String(recv.port),
    `${src}/${name}`,
  ]);
  return { sent, recv: await recv.output };
}

posixTest(
  "send -r: empty directories, modes and inside symlinks arrive as a tar round trip gives them",
  { ignore: needs("tar") },
  async () => {
    const base = await Deno.makeTempDir({ prefix: "denocat-tree-" });
    try {
      const src = `${base}/src`;
      await makeTree(src);
      await Deno.mkdir(`${base}/out`);
      await Deno.mkdir(`${base}/tar`);
      const { sent, recv } = await sendTree(src, `${base}/out`);
      assertEquals(sent.code, 0, sent.stderr);
      assertEquals(recv.code, 0, recv.stderr);
      assertEquals(sent.stderr, "", "nothing skipped, nothing to say");
      await sh(`tar -C '${src}' -cf - t | tar -C '${base}/tar' -xpf -`);
      const ours = listing(`${base}/out`);
      const tars = listing(`${base}/tar`);
      assertEquals(ours, tars);
      // The point of the issue, spelled out.
      assertOk(ours.includes("t/empty d 750"), ours.join("\n"));
      assertOk(ours.includes("t/full/deeper/empty2 d 700"));
      assertOk(ours.includes("t/dirlink l full"));
      assertOk(ours.includes("t/dangling l not-there-yet"));
      assertOk(ours.includes("t d 751"));
    } finally {
      await sh(`chmod -R u+rwx '${base}'`);
      await Deno.remove(base, { recursive: true });
    }
  },
);

posixTest("send -r -L: symlinks are followed as tar -h follows them", {
  ignore: needs("tar"),
}, async () => {
  const base = await Deno.makeTempDir({ prefix: "denocat-tree-L-" });
  try {
    const src = `${base}/src`;
    await makeTree(src);
    await Deno.remove(`${src}/t/dangling`); // tar -h stops at it too
    await Deno.mkdir(`${base}/out`);
    await Deno.mkdir(`${base}/tar`);
    const { sent, recv } = await sendTree(src, `${base}/out`, ["-L"]);
    assertEquals(sent.code, 0, sent.stderr);
    assertEquals(recv.code, 0, recv.stderr);
    await sh(`tar -C '${src}' -chf - t | tar -C '${base}/tar' -xpf -`);
    const ours = listing(`${base}/out`);
    assertEquals(ours, listing(`${base}/tar`));
    assertOk(!ours.some((l) => / l /.test(l)), "no symlink left with -L");
    assertOk(ours.some((l) => l.startsWith("t/dirlink/deeper/g f")));
  } finally {
    await sh(`chmod -R u+rwx '${base}'`);
    await Deno.remove(base, { recursive: true });
  }
});

posixTest(
  "send -r: a symlink leading outside is refused with the reason; the rest arrives",
  async () => {
    const base = await Deno.makeTempDir({ prefix: "denocat-tree-out-" });
    try {
      const t = `${base}/src/t`;
      await Deno.mkdir(`${t}/sub`, { recursive: true });
      await Deno.writeTextFile(`${t}/sub/ok`, "ok\n");
      await Deno.symlink("/etc/passwd", `${t}/abs`);
      await Deno.symlink("../../../etc", `${t}/sub/climb`);
      await Deno.symlink("sub/../..", `${t}/trick`);
      await Deno.mkdir(`${base}/out`);
      await Deno.mkdir(`${base}/elsewhere`);
      // A symlink already in DIR that leads out: a new one through it is refused.
      await Deno.symlink(`${base}/elsewhere`, `${base}/out/exit`);
      await Deno.symlink("../exit/x", `${t}/via_exit`);
      const { sent, recv } = await sendTree(`${base}/src`, `${base}/out`);
      assertEquals(sent.code, 1);
      assertEquals(recv.code, 1);
      const lines = sent.stderr.trim().split("\n");
      for (const name of ["t/abs", "t/sub/climb", "t/trick", "t/via_exit"]) {
        assertOk(
          lines.some((l) =>
            l.startsWith(`denocat: unsafe symlink "${name}"`) &&
            /absolute|outside|'\.\.' after/.test(l)
          ),
          `${name}: ${sent.stderr}`,
        );
      }
      assertEquals(lines.length, 4, sent.stderr);
      assertEquals(
        listing(`${base}/out`).filter((l) => l.startsWith("t/")),
        [
          `t/sub d 755`,
          `t/sub/ok f 644 ${sha256(new TextEncoder().encode("ok\n"))}`,
        ],
      );
      assertEquals([...Deno.readDirSync(`${base}/elsewhere`)], []);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
);

posixTest(
  "send -r: a FIFO, a broken symlink and a loop under -L are reported without -v",
  { ignore: needs("mkfifo") },
  async () => {
    const base = await Deno.makeTempDir({ prefix: "denocat-tree-skip-" });
    try {
      const t = `${base}/src/t`;
      await Deno.mkdir(`${t}/d`, { recursive: true });
      await Deno.writeTextFile(`${t}/d/f`, "f");
      await sh(`mkfifo '${t}/pipe'`);
      await Deno.symlink("nowhere", `${t}/broken`);
      await Deno.symlink("..", `${t}/d/loop`);
      await Deno.mkdir(`${base}/out`);
      const plain = await sendTree(`${base}/src`, `${base}/out`);
      assertEquals(plain.sent.code, 0, plain.sent.stderr);
      assertEquals(
        plain.sent.stderr,
        `denocat: skipping ${t}/pipe: not a regular file, directory or symlink\n`,
      );
      await Deno.remove(`${base}/out`, { recursive: true });
      await Deno.mkdir(`${base}/out`);
      const followed = await sendTree(`${base}/src`, `${base}/out`, ["-L"]);
      assertEquals(followed.sent.code, 0, followed.sent.stderr);
      const skipped = followed.sent.stderr.trim().split("\n").sort();
      assertEquals(skipped, [
        `denocat: skipping ${t}/broken: broken symlink (-L follows symlinks)`,
        `denocat: skipping ${t}/d/loop: symlink loop (a directory inside itself)`,
        `denocat: skipping ${t}/pipe: not a regular file, directory or symlink`,
      ]);
      assertEquals(Deno.readTextFileSync(`${base}/out/t/d/f`), "f");
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
);

Deno.test("transfer versions: a version-1 sender is answered in version 1; a tree to a version-1 receiver fails with the reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denocat-v1-" });
  try {
    // New receiver, old sender: the reply hello says 1.
    await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
      dir,
    });
    {
      using c = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      await c.write(encodeHello(1));
      await c.write(new Uint8Array([0x45])); // END
      const buf = new Uint8Array(8);
      let got = 0;
      while (got < 8) {
        const n = await c.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      assertEquals(buf.toHex(), encodeHello(1).toHex());
    }
    assertEquals(await server.finished, 0);
    // Old receiver (it answers 1 and refuses 2), new sender with a tree.
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const old = (async () => {
      using c = await l.accept();
      await c.write(encodeHello(1));
      const buf = new Uint8Array(4096);
      try {
        while ((await c.read(buf)) !== null) { /* drop */ }
      } catch { /* reset */ }
    })();
    const r = await sendItems({ hostname: "127.0.0.1", port: l.addr.port }, [
      { kind: "dir", name: "d", mode: 0o755 },
    ]);
    await old;
    assertEquals(r.exitCode, 1);
    assertOk(
      /receiver speaks transfer protocol version 1/.test(r.items[0]!.error!),
      r.items[0]!.error,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

posixTest(
  "send -r to a version-1 receiver: one line says why, however many items",
  async () => {
    const base = await Deno.makeTempDir({ prefix: "denocat-v1cli-" });
    try {
      await makeTree(`${base}/src`);
      using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const old = (async () => {
        using c = await l.accept();
        await c.write(encodeHello(1));
        const buf = new Uint8Array(65536);
        try {
          while ((await c.read(buf)) !== null) { /* drop */ }
        } catch { /* reset */ }
      })();
      const r = await runCli([
        "send",
        "-r",
        "127.0.0.1",
        String(l.addr.port),
        `${base}/src/t`,
      ]);
      await old;
      assertEquals(r.code, 1);
      const lines = r.stderr.trim().split("\n");
      assertEquals(lines.length, 1, r.stderr);
      assertOk(
        /^denocat: \d+ items \(.+ and the rest\) not acknowledged: the receiver speaks transfer protocol version 1/
          .test(lines[0]!),
        r.stderr,
      );
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
);
