/**
 * `denocat recv` without -k: a failed transfer ends with exit 1 and one
 * line saying why (it used to exit 1 silently unless -v was given).
 */
import { assertEquals } from "../lib/_assert.ts";
import { freePort, startCli, waitForPort } from "./_helpers.ts";

Deno.test("denocat recv: a sender that vanishes gives exit 1 and one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const port = freePort();
    await using recv = startCli(["recv", "-o", dir, "127.0.0.1", String(port)]);
    await waitForPort(port); // this probe is the one connection: it sends nothing
    const r = await recv.output;
    assertEquals(r.code, 1);
    assertEquals(
      r.stderr,
      "denocat: cannot decode frame at byte 0: expected 8 bytes, got 0 bytes then end of input\n",
    );
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("denocat recv: a sender killed mid-item gives exit 1 and one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const port = freePort();
    await using recv = startCli(["recv", "-o", dir, "127.0.0.1", String(port)]);
    await new Promise((r) => setTimeout(r, 100));
    let conn: Deno.TcpConn | undefined;
    for (let i = 0; i < 100 && !conn; i++) {
      conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(
        () => undefined,
      );
      if (!conn) await new Promise((r) => setTimeout(r, 50));
    }
    const te = new TextEncoder();
    const header = te.encode(JSON.stringify({ name: "a.bin", size: 10 }));
    const rec = new Uint8Array(5 + header.length);
    rec[0] = 0x48; // 'H'
    new DataView(rec.buffer).setUint32(1, header.length);
    rec.set(header, 5);
    await conn!.write(te.encode("DCXFER\0\x01"));
    await conn!.write(rec);
    await conn!.write(new Uint8Array(4));
    conn!.close();
    const r = await recv.output;
    assertEquals(r.code, 1);
    assertEquals(
      r.stderr,
      "denocat: cannot decode frame at byte 39: expected a body of 10 bytes, got 4 bytes then end of input\n",
    );
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
