/**
 * Attacks on `denocat recv` (issue 15, items 1-4), each with its figure: a
 * local user swapping a directory for a symlink mid-transfer, deep names,
 * slot exhaustion and huge size claims, and names that look like the
 * receiver's temporary files or reorder what a terminal shows.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import {
  encodeHeader,
  encodeHello,
  encodeTrailer,
  parseAck,
  RECORD,
} from "../../lib/transfer/protocol.ts";
import { type SendItem, sendItems } from "../../lib/transfer/mod.ts";
import { dirCalls } from "../../lib/native/dirfd.ts";
import { runCli, sha256, spawn, startServer, testOnlyOn } from "../_helpers.ts";
import { budget, scaled } from "./_scale.ts";
import { assertNoCrash, concat, sleep, summary, waitUntil } from "./_util.ts";

const te = new TextEncoder();
const CLI = new URL("../../cli.ts", import.meta.url).pathname;

function once(text: string): { read(p: Uint8Array): Promise<number | null> } {
  let done = false;
  return {
    read(p: Uint8Array) {
      if (done) return Promise.resolve(null);
      done = true;
      const b = te.encode(text);
      p.set(b);
      return Promise.resolve(b.length);
    },
  };
}

/** Every path under `dir` (relative), symlinks not followed. */
function listAll(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const rel = prefix + e.name;
    out.push(rel);
    if (e.isDirectory) out.push(...listAll(`${dir}/${e.name}`, rel + "/"));
  }
  return out;
}

/** An ack with every field optional, for assertions. */
type AckView = { ok: boolean; name: string; code?: string; error: string };

/** A raw session: hello, then `records`, then reads the acks to EOF. */
async function rawSession(
  port: number,
  records: Uint8Array,
  hostname = "127.0.0.1",
): Promise<AckView[]> {
  using c = await Deno.connect({ hostname, port });
  await c.write(concat([encodeHello(), records]));
  await c.closeWrite();
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  try {
    for (let n; (n = await c.read(buf)) !== null;) chunks.push(buf.slice(0, n));
  } catch { /* reset after the acks */ }
  const all = concat(chunks);
  const acks: AckView[] = [];
  let at = 8;
  while (at + 5 <= all.length && all[at] === RECORD.ACK) {
    const n = new DataView(all.buffer, at + 1).getUint32(0);
    const ack = parseAck(all.subarray(at + 5, at + 5 + n));
    acks.push(ack.ok ? { ...ack, error: "" } : ack);
    at += 5 + n;
  }
  return acks;
}

/** An item's records: header, body, trailer. */
function item(name: string, body: Uint8Array): Uint8Array {
  const digest = Uint8Array.fromHex(sha256(body));
  return concat([
    encodeHeader({ name, size: body.length, mode: 0o644 }),
    body,
    encodeTrailer(new Uint8Array(41), body.length, digest).slice(),
  ]);
}

const END = new Uint8Array([RECORD.END]);

/** Permission bits and deep paths: POSIX systems only. */
const posixTest = testOnlyOn(
  ["linux", "darwin"],
  "POSIX permission bits and deep paths",
);

Deno.test({
  name:
    "recv attack 15.1: a local user swapping a directory for a symlink mid-transfer lands nothing outside DIR",
  ignore: dirCalls() === null,
}, async () => {
  // The race is the attacker's to win or lose: an attempt in which no item
  // met a flipped directory proves nothing, so up to three are made (each
  // checks that nothing landed outside DIR).
  const hits: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    hits.push(await symlinkRace());
    if (hits.at(-1)! > 0) break;
  }
  assertOk(
    hits.at(-1)! > 0,
    `the race never hit in ${hits.length} attempts: the test proves nothing`,
  );
});

/**
 * One attempt of the symlink race; how many items met the flipped
 * directory (refused as unsafe, or failed as it vanished).
 */
async function symlinkRace(): Promise<number> {
  const base = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "denocat-race-" }),
  );
  const out = `${base}/out`;
  const outside = `${base}/outside`;
  await Deno.mkdir(`${out}/sub`, { recursive: true });
  await Deno.mkdir(outside);
  const items = scaled(500);
  let hits = 0;
  // The attacker: flips out/sub between a real directory and a symlink to
  // outside/, as fast as it can, in a process of its own.
  const attacker = spawn(Deno.execPath(), [
    "eval",
    `const out = ${JSON.stringify(out)}, outside = ${JSON.stringify(outside)};
     let flips = 0;
     const stopAt = Date.now() + ${budget(60_000)};
     while (Date.now() < stopAt) {
       try {
         Deno.renameSync(out + "/sub", out + "/sub.real");
         Deno.symlinkSync(outside, out + "/sub");
         Deno.renameSync(out + "/sub", out + "/sub.link");
         Deno.renameSync(out + "/sub.real", out + "/sub");
         Deno.removeSync(out + "/sub.link");
         if (++flips === 100) Deno.writeTextFileSync(${
      JSON.stringify(`${base}/flipping`)
    }, "");
       } catch { /* the receiver made or removed something meanwhile */ }
     }`,
  ], { timeout: budget(90_000) });
  try {
    await using recv = await startServer(["recv", "-k", "-o", out, "0"], {
      timeout: budget(90_000),
    });
    // Only once the attacker is flipping (its start-up takes a while).
    assertOk(
      await waitUntil(() => {
        try {
          Deno.statSync(`${base}/flipping`);
          return true;
        } catch {
          return false;
        }
      }, budget(20_000)),
      "the attacker never started",
    );
    const list: SendItem[] = [];
    for (let i = 0; i < items; i++) {
      list.push({
        kind: "stream",
        name: i % 2 ? `sub/f${i}` : `sub/deep/er/f${i}`,
        reader: once(`payload ${i}\n`),
      });
    }
    const start = performance.now();
    const r = await sendItems(
      { hostname: "127.0.0.1", port: recv.port },
      list,
    );
    const ms = performance.now() - start;
    attacker.kill("SIGKILL");
    await attacker.output;
    const landed = listAll(outside);
    const temps = landed.filter((n) => n.includes(".denocat-"));
    const verified = r.items.filter((i) => i.ok).length;
    const refused = r.items.filter((i) => i.code === "unsafe-name").length;
    // Everything verified is really inside DIR with the right content
    // (wherever the attacker moved its directory to).
    const inside = listAll(out);
    let intact = 0;
    for (const [i, it] of r.items.entries()) {
      if (!it.ok) continue;
      const base = it.name.split("/").at(-1)!;
      if (
        inside.some((p) =>
          (p === base || p.endsWith(`/${base}`)) &&
          Deno.readTextFileSync(`${out}/${p}`) === `payload ${i}\n`
        )
      ) intact++;
    }
    // The attacker may also delete what the receiver made: such items fail
    // with an io error, and stay failed.
    const lost = items - verified - refused;
    summary(
      `recv attack 15.1 (symlink race): ${items} items while another process flipped DIR/sub to a symlink: ${
        landed.length - temps.length
      } final files and ${temps.length} temporary files outside DIR; ${verified} verified (${intact} found intact inside), ${refused} refused as unsafe, ${lost} failed as the attacker removed their directory (${
        Math.round(ms)
      } ms)`,
    );
    assertEquals(landed, [], "nothing may land outside DIR");
    assertOk(
      r.items.every((i) => i.ok || i.code === "unsafe-name" || i.code === "io"),
      JSON.stringify(r.items.find((i) => !i.ok && i.code !== "unsafe-name")),
    );
    assertEquals(intact, verified);
    assertEquals(
      inside.filter((n) => n.includes(".denocat-")),
      [],
      "no temporary file left",
    );
    hits = refused + lost;
    recv.kill("SIGTERM");
    assertNoCrash("recv", (await recv.output).stderr);
  } finally {
    attacker.kill("SIGKILL");
    await attacker.output;
    await Deno.remove(base, { recursive: true });
  }
  return hits;
}

posixTest(
  "recv attack 15.1 fallback: without FFI a DIR other users can write to is refused in one line",
  async () => {
    const base = await Deno.makeTempDir({ prefix: "denocat-noffi-" });
    try {
      await Deno.chmod(base, 0o777);
      await using p = spawn(Deno.execPath(), [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        CLI,
        "recv",
        "-o",
        base,
        "127.0.0.1",
        "0",
      ]);
      const r = await p.output;
      summary(
        `recv attack 15.1 fallback: no FFI, DIR mode 0777: exit ${r.code}, ${
          JSON.stringify(r.stderr.trim())
        }`,
      );
      assertEquals(r.code, 1);
      assertOk(
        /^denocat: cannot receive into .*other users can write to it.*\n$/.test(
          r.stderr,
        ),
        r.stderr,
      );
      // A private directory is served the same way without FFI.
      await Deno.chmod(base, 0o700);
      await using ok = spawn(Deno.execPath(), [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        CLI,
        "recv",
        "-v",
        "-o",
        base,
        "127.0.0.1",
        "0",
      ]);
      const m = await ok.waitForStderr(/listening on .*:(\d+)\s*$/m);
      const sent = await sendItems(
        { hostname: "127.0.0.1", port: Number(m[1]) },
        [{ kind: "stream", name: "d/x", reader: once("fine") }],
      );
      assertEquals(sent.exitCode, 0);
      assertEquals((await ok.output).code, 0);
      assertEquals(Deno.readTextFileSync(`${base}/d/x`), "fine");
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
);

posixTest(
  "recv attack 15.2: deep names are refused before any file-system call, and the walk is linear",
  async () => {
    const base = await Deno.realPath(
      await Deno.makeTempDir({ prefix: "denocat-deep-" }),
    );
    try {
      // Default limits: the issue's 3 KB header naming d/ 1,500 times.
      {
        await using recv = await startServer([
          "recv",
          "-k",
          "-o",
          `${base}/a`,
          "0",
        ]);
        const rounds = scaled(20);
        const start = performance.now();
        for (let i = 0; i < rounds; i++) {
          const acks = await rawSession(
            recv.port,
            concat([item("d/".repeat(1500) + "f", te.encode("x")), END]),
          );
          assertEquals(acks.length, 1);
          assertOk(!acks[0]!.ok && acks[0]!.code === "unsafe-name");
          assertOk(/1501 components.*--max-depth/.test(acks[0]!.error));
        }
        const per = (performance.now() - start) / rounds;
        const long = await rawSession(
          recv.port,
          concat([item("é".repeat(2049), te.encode("x")), END]),
        );
        assertOk(!long[0]!.ok && /4096/.test(long[0]!.error), long[0]?.error);
        summary(
          `recv attack 15.2 (deep names): a 1,500-component name refused in ${
            per.toFixed(1)
          } ms per session (${rounds} sessions; the limit is 64, --max-depth); a 4,098-byte name refused`,
        );
        assertOk(per < 500, `refusal took ${per} ms`);
        assertEquals(listAll(`${base}/a`), []);
        recv.kill("SIGTERM");
        assertNoCrash("recv", (await recv.output).stderr);
      }
      // Raised limit: names as deep as 1,500 are created, in linear time.
      {
        await using recv = await startServer([
          "recv",
          "-k",
          "--max-depth",
          "2000",
          "-o",
          `${base}/b`,
          "0",
        ]);
        const times: Array<[number, number]> = [];
        for (const depth of [200, 400, 800, 1500]) {
          const name = `t${depth}/` + "d/".repeat(depth - 2) + "f";
          const start = performance.now();
          const acks = await rawSession(
            recv.port,
            concat([item(name, te.encode("deep")), END]),
          );
          times.push([depth, performance.now() - start]);
          assertEquals(acks.map((a) => a.ok), [true], JSON.stringify(acks));
        }
        const [, t200] = times[0]!;
        const [, t1500] = times.at(-1)!;
        summary(
          `recv attack 15.2 (deep names, --max-depth 2000): created at depth ${
            times.map(([d, t]) => `${d}: ${t.toFixed(0)} ms`).join(", ")
          } (1500/200 ratio ${(t1500 / t200).toFixed(1)}; cubic would be ~420)`,
        );
        assertOk(t1500 < budget(5000), `depth 1500 took ${t1500} ms`);
        assertOk(t1500 / Math.max(t200, 5) < 40, "the walk is not linear");
        recv.kill("SIGTERM");
        assertNoCrash("recv", (await recv.output).stderr);
      }
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
);

/** A stalled sender: hello, a header for 10 bytes, 1 byte, then silence. */
async function stall(port: number, hostname: string, i: number) {
  const c = await Deno.connect({ hostname, port });
  await c.write(concat([
    encodeHello(),
    encodeHeader({ name: `stall${i}`, size: 10, mode: 0o644 }),
    new Uint8Array([0x41]),
  ]));
  return c;
}

Deno.test("recv attack 15.3: stalled senders from one address cannot lock out another; huge claims are refused", async () => {
  const base = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "denocat-slots-" }),
  );
  const out = `${base}/out`;
  const conns: Deno.TcpConn[] = [];
  try {
    await using recv = await startServer([
      "recv",
      "-k",
      "--idle-timeout",
      "2",
      "--max-size",
      "1G",
      "-o",
      out,
      "::",
      "0",
    ], { timeout: budget(60_000) });
    const stalled = scaled(64);
    for (let i = 0; i < stalled; i++) {
      conns.push(await stall(recv.port, "127.0.0.1", i));
    }
    // Each stalled sender either holds a slot (silent) or is told busy.
    // Held: kept until --idle-timeout (or our timer). Busy: told so.
    // Dropped: closed unanswered (beyond --max-pending, at soak scale).
    const answers = await Promise.all(conns.map(async (c) => {
      const buf = new Uint8Array(4096);
      let held = false;
      const t = setTimeout(() => {
        held = true;
        c.close();
      }, 3000);
      let got = "";
      try {
        for (let n; (n = await c.read(buf)) !== null;) {
          got += new TextDecoder().decode(buf.subarray(0, n));
        }
      } catch { /* closed by the timer or reset */ }
      clearTimeout(t);
      try {
        c.close();
      } catch { /* closed by the timer */ }
      // A slot holder is closed by --idle-timeout 2 (and told so) before
      // the timer fires.
      return held || got.includes("--idle-timeout")
        ? "held"
        : got.includes('"busy"')
        ? "busy"
        : "dropped";
    }));
    const held = answers.filter((a) => a === "held").length;
    const busy = answers.filter((a) => a === "busy").length;
    const dropped = answers.filter((a) => a === "dropped").length;
    conns.length = 0;
    // A real sender from another address (::1) gets through at once, while
    // the attacker's slots are still held (the timer closed our ends just
    // now; open new ones to be sure they are held).
    for (let i = 0; i < 8; i++) {
      conns.push(await stall(recv.port, "127.0.0.1", 100 + i));
    }
    await sleep(100);
    const realStart = performance.now();
    const real = await runCli([
      "send",
      "::1",
      String(recv.port),
      "-",
      "--name",
      "real.txt",
    ], { stdin: "real data\n" });
    const realMs = performance.now() - realStart;
    assertEquals(real.code, 0, real.stderr);
    assertEquals(Deno.readTextFileSync(`${out}/real.txt`), "real data\n");
    // The 9th from the attacker's address is told why, and send exits 1.
    const ninth = await runCli([
      "send",
      "127.0.0.1",
      String(recv.port),
      "-",
      "--name",
      "ninth.txt",
    ], { stdin: "x" });
    assertEquals(ninth.code, 1);
    assertOk(/--max-conns-per-ip/.test(ninth.stderr), ninth.stderr);
    // --idle-timeout 2: the stalled senders are closed, the address is free.
    const freed = await waitUntil(async () => {
      const r = await runCli([
        "send",
        "127.0.0.1",
        String(recv.port),
        "-",
        "--name",
        "later.txt",
      ], { stdin: "later" });
      return r.code === 0;
    }, budget(8000));
    assertOk(freed, "stalled senders were never closed");
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    conns.length = 0;
    // A claim of 10^12 bytes is above --max-size 1G: refused from its header.
    const huge = await rawSession(
      recv.port,
      concat([
        encodeHeader({ name: "huge", size: 1e12, mode: 0o644 }),
        new Uint8Array(16),
      ]),
      "::1",
    );
    assertEquals(huge.map((a) => a.code), ["too-large"]);
    assertOk(/--max-size/.test(huge[0]!.error), huge[0]?.error);
    recv.kill("SIGTERM");
    const res = await recv.output;
    assertNoCrash("recv", res.stderr);
    summary(
      `recv attack 15.3 (slots): ${stalled} stalled senders from 127.0.0.1: ${held} held slots (--max-conns-per-ip 8), ${busy} told busy, ${dropped} dropped unanswered (--max-pending 256); a real send from ::1 verified in ${
        Math.round(realMs)
      } ms; the 9th from 127.0.0.1 exits 1 with the reason; stalled ones closed by --idle-timeout; a 10^12-byte claim refused (too-large)`,
    );
    assertEquals(held, 8);
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test(
  "recv attack 15.3: an item larger than the free space is refused from its header (statvfs)",
  {
    ignore: dirCalls() === null,
  },
  async () => {
    const base = await Deno.realPath(
      await Deno.makeTempDir({ prefix: "denocat-space-" }),
    );
    try {
      await using recv = await startServer(["recv", "-o", base, "0"]);
      const free = dirCalls()!;
      const fd = free.openRoot(base);
      const avail = free.freeBytes(fd);
      free.close(fd);
      const claim = avail + 1024 ** 3;
      const f = `${base}/../denocat-claim-${crypto.randomUUID()}`;
      // A sparse file claiming more than the disk holds, sent for real.
      {
        using file = await Deno.open(f, { write: true, create: true });
        await file.truncate(claim);
      }
      try {
        const r = await runCli(["send", "127.0.0.1", String(recv.port), f]);
        summary(
          `recv attack 15.3 (free space): a ${claim}-byte item (${avail} bytes free) refused: exit ${r.code}, ${
            JSON.stringify(r.stderr.trim())
          }`,
        );
        assertEquals(r.code, 1);
        assertOk(/do not fit/.test(r.stderr), r.stderr);
        const res = await recv.output;
        assertEquals(res.code, 1);
        assertEquals(listAll(base), []);
      } finally {
        await Deno.remove(f);
      }
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
);

Deno.test("recv attack 15.4: names like temporary files and reordering characters are refused; a restart deletes nothing sent", async () => {
  const base = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "denocat-tmpname-" }),
  );
  const out = `${base}/out`;
  try {
    const hostile = [
      ".report.pdf.denocat-0123456789ab.part",
      "sub/.a.denocat-ffffffffffff.part",
      ".x.denocat-0123456789ab.part/inner",
      "evil\u202etxt.exe",
      "a\u2066b",
      "a\u200fb",
      "line\u2028sep",
      "para\u2029sep",
      "arabic\u061cmark",
    ];
    let refused = 0;
    {
      await using recv = await startServer(["recv", "-k", "-o", out, "0"]);
      for (const name of hostile) {
        const acks = await rawSession(
          recv.port,
          concat([item(name, te.encode("mine")), END]),
        );
        if (acks[0]?.code === "unsafe-name") refused++;
        else console.error(`not refused: ${JSON.stringify(name)}`, acks);
      }
      // Look-alikes that are not temporary names are ordinary files.
      const ok = await rawSession(
        recv.port,
        concat([
          item(".report.pdf.denocat-XYZ.part", te.encode("fine")),
          item("report.pdf.denocat-0123456789ab.part", te.encode("fine")),
          END,
        ]),
      );
      assertEquals(ok.map((a) => a.ok), [true, true]);
      recv.kill("SIGTERM");
      assertNoCrash("recv", (await recv.output).stderr);
    }
    const before = listAll(out).sort();
    // A restart cleans stale temporaries: none of the above may go.
    {
      await using recv = await startServer(["recv", "-k", "-o", out, "0"]);
      recv.kill("SIGTERM");
      await recv.output;
    }
    const after = listAll(out).sort();
    summary(
      `recv attack 15.4 (temp names): ${refused}/${hostile.length} temporary-like and reordering names refused; ${after.length}/${before.length} files kept across a restart`,
    );
    assertEquals(refused, hostile.length);
    assertEquals(after, before);
    assertEquals(before, [
      ".report.pdf.denocat-XYZ.part",
      "report.pdf.denocat-0123456789ab.part",
    ]);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
