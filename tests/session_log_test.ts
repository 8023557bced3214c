/** Session recording (`--hex-dump`, `--session-log`, `--append`). */
import { assertEquals, assertThrows } from "../lib/_assert.ts";
import { SessionRecorder } from "../lib/session_log.ts";
import { DenocatError } from "../lib/errors.ts";
import { runCli, startServer } from "./_helpers.ts";

const enc = new TextEncoder();

Deno.test("SessionRecorder: hex dump of both directions with per-direction offsets; raw log of what was received", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rec = SessionRecorder.open({
      hexDump: `${dir}/dump`,
      sessionLog: `${dir}/raw`,
    })!;
    const chunks = [enc.encode("hello "), enc.encode("world")];
    const input = rec.tapInput({
      read: (p) => {
        const c = chunks.shift();
        if (!c) return Promise.resolve(null);
        p.set(c);
        return Promise.resolve(c.length);
      },
    });
    const out: number[] = [];
    const output = rec.tapOutput({
      write: (p) => {
        out.push(...p.subarray(0, 2));
        return Promise.resolve(Math.min(2, p.length)); // partial writes
      },
    });
    const buf = new Uint8Array(64);
    while ((await input.read(buf)) !== null) { /* drain */ }
    const reply = new Uint8Array([0x00, 0xff, 0x41]);
    for (let at = 0; at < reply.length;) {
      at += await output.write(reply.subarray(at));
    }
    rec.close();
    rec.close();
    assertEquals(
      await Deno.readTextFile(`${dir}/dump`),
      "# sent 6 bytes at offset 0\n" +
        "00000000  68 65 6c 6c 6f 20                                 |hello |\n" +
        "# sent 5 bytes at offset 6\n" +
        "00000006  77 6f 72 6c 64                                    |world|\n" +
        "# received 2 bytes at offset 0\n" +
        "00000000  00 ff                                             |..|\n" +
        "# received 1 bytes at offset 2\n" +
        "00000002  41                                                |A|\n",
    );
    assertEquals(await Deno.readFile(`${dir}/raw`), reply);
    assertEquals(out, [0x00, 0xff, 0x41]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SessionRecorder: --append keeps what the file held; without it the file is replaced", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/raw`, "old|");
    let rec = SessionRecorder.open({ sessionLog: `${dir}/raw`, append: true })!;
    rec.received(enc.encode("new"));
    rec.close();
    assertEquals(await Deno.readTextFile(`${dir}/raw`), "old|new");
    rec = SessionRecorder.open({ sessionLog: `${dir}/raw` })!;
    rec.received(enc.encode("x"));
    rec.close();
    assertEquals(await Deno.readTextFile(`${dir}/raw`), "x");
    assertEquals(SessionRecorder.open({}), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SessionRecorder.open(): a file that cannot be opened is a one-line error", () => {
  assertThrows(
    () => SessionRecorder.open({ hexDump: "/nonexistent-dir/dump" }),
    DenocatError,
    "cannot open /nonexistent-dir/dump: no such file or directory",
  );
});

Deno.test("denocat -u --hex-dump/--session-log: the datagrams sent and received, each way with its offset", async () => {
  await using echo = await startServer([
    "echo",
    "-u",
    "--upper",
    "127.0.0.1",
    "0",
  ]);
  const dir = await Deno.makeTempDir();
  try {
    const r = await runCli([
      "-u",
      "-w",
      "1",
      "--hex-dump",
      `${dir}/dump`,
      "--session-log",
      `${dir}/raw`,
      "127.0.0.1",
      String(echo.port),
    ], { stdin: "ping\n" });
    assertEquals([r.code, r.text], [0, "PING\n"], r.stderr);
    const dump = await Deno.readTextFile(`${dir}/dump`);
    assertEquals(
      dump,
      "# sent 5 bytes at offset 0\n" +
        "00000000  70 69 6e 67 0a                                    |ping.|\n" +
        "# received 5 bytes at offset 0\n" +
        "00000000  50 49 4e 47 0a                                    |PING.|\n",
    );
    assertEquals(await Deno.readTextFile(`${dir}/raw`), "PING\n");
    // With a program in the middle there is no stream of ours to record.
    const bad = await runCli([
      "-u",
      "-e",
      "cat",
      "--hex-dump",
      `${dir}/x`,
      "127.0.0.1",
      "9",
    ]);
    assertEquals(bad.code, 2);
    assertEquals(
      bad.stderr,
      "denocat: --hex-dump/--session-log does not apply to -e/-c\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
