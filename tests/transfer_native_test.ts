/**
 * Verified transfer bodies on the hashing pump threads (Linux, FFI): the
 * same bytes and digests as the portable loop, and the same failures:
 * a lying trailer is an integrity failure, a sender that dies or goes idle
 * mid-body leaves no file, and closing the server stops a body in flight.
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { receiveServer, sendItems } from "../mod.ts";
import {
  type Ack,
  encodeHeader,
  encodeHello,
  encodeTrailer,
  parseAck,
  RECORD,
  TRANSFER_HELLO_SIZE,
} from "../lib/transfer/protocol.ts";
import { NATIVE_BODY_MIN, nativeBodies } from "../lib/transfer/_native_body.ts";
import { ffiAllowed } from "../lib/native/libc.ts";
import { writeAll } from "../lib/copy.ts";
import type { ConnectionResult } from "../lib/transfer/recv.ts";
import { concat, randomBytes, readAll, sha256, within } from "./_helpers.ts";

const ignore = !ffiAllowed();

async function tempDir(): Promise<string> {
  return await Deno.realPath(await Deno.makeTempDir({ prefix: "xnat-" }));
}

function acksOf(got: Uint8Array): Ack[] {
  const acks: Ack[] = [];
  let at = TRANSFER_HELLO_SIZE;
  while (at + 5 <= got.length && got[at] === RECORD.ACK) {
    const len = new DataView(got.buffer, got.byteOffset + at + 1).getUint32(0);
    acks.push(parseAck(got.subarray(at + 5, at + 5 + len)));
    at += 5 + len;
  }
  return acks;
}

Deno.test({
  name:
    "sendItems() moves large files on the pump threads of both sides: same bytes, same sha256, verified",
  ignore,
  async fn() {
    const dir = await tempDir();
    try {
      await Deno.mkdir(`${dir}/out`);
      // Odd sizes: not a multiple of the pump buffer, nor of a page.
      const a = randomBytes(NATIVE_BODY_MIN + 12_345);
      const b = randomBytes(3 * NATIVE_BODY_MIN + 7);
      await Deno.writeFile(`${dir}/a.bin`, a);
      await Deno.writeFile(`${dir}/b.bin`, b);
      const results: ConnectionResult[] = [];
      await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
        dir: `${dir}/out`,
        onConnection: (r) => results.push(r),
      });
      const before = { ...nativeBodies };
      const sent = await within(
        sendItems({ hostname: "127.0.0.1", port: server.port }, [
          {
            kind: "file",
            path: `${dir}/a.bin`,
            name: "a.bin",
            size: a.length,
            mode: 0o600,
          },
          {
            kind: "file",
            path: `${dir}/b.bin`,
            name: "sub/b.bin",
            size: b.length,
            mode: 0o644,
          },
          {
            kind: "stream",
            name: "s.txt",
            reader: { read: () => Promise.resolve(null) },
          },
        ]),
        "the transfer",
      );
      assertEquals(await within(server.finished, "the receiver"), 0);
      assertEquals(sent.exitCode, 0);
      assertEquals(sent.items.map((i) => i.sha256), [
        sha256(a),
        sha256(b),
        sha256(new Uint8Array(0)),
      ]);
      assertEquals(sent.items.map((i) => i.bytes), [a.length, b.length, 0]);
      assertEquals(results[0]!.items.map((i) => i.sha256), [
        sha256(a),
        sha256(b),
        sha256(new Uint8Array(0)),
      ]);
      assertEquals(sha256(await Deno.readFile(`${dir}/out/a.bin`)), sha256(a));
      assertEquals(
        sha256(await Deno.readFile(`${dir}/out/sub/b.bin`)),
        sha256(b),
      );
      // Both large bodies went through the threads, on both sides.
      assertEquals(nativeBodies.sent - before.sent, 2);
      assertEquals(nativeBodies.received - before.received, 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "receiveServer() on the pump thread: a large body whose trailer lies is an integrity failure (exit 3), no file",
  ignore,
  async fn() {
    const out = await tempDir();
    try {
      await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
        dir: out,
      });
      const body = randomBytes(NATIVE_BODY_MIN + 1000);
      const before = nativeBodies.received;
      using conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      const reading = readAll(conn);
      await writeAll(
        conn,
        concat([
          encodeHello(),
          encodeHeader({ name: "bad.bin", size: body.length }),
        ]),
      );
      await writeAll(conn, body);
      await writeAll(
        conn,
        concat([
          encodeTrailer(new Uint8Array(41), body.length, new Uint8Array(32)),
          new Uint8Array([RECORD.END]),
        ]),
      );
      await conn.closeWrite();
      const acks = acksOf(await within(reading, "the acks"));
      assertEquals(acks.length, 1);
      assertOk(
        !acks[0]!.ok && acks[0]!.code === "integrity",
        JSON.stringify(acks[0]),
      );
      assertOk(acks[0]!.error.includes(`received ${sha256(body)}`));
      assertEquals(await within(server.finished, "the receiver"), 3);
      assertEquals(nativeBodies.received - before, 1);
      assertEquals([...Deno.readDirSync(out)], []);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "receiveServer() on the pump thread: a sender that dies mid-body leaves no file; the reason says how much came",
  ignore,
  async fn() {
    const out = await tempDir();
    try {
      const results: ConnectionResult[] = [];
      await using server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
        dir: out,
        onConnection: (r) => results.push(r),
      });
      const part = randomBytes(NATIVE_BODY_MIN + 5);
      {
        using conn = await Deno.connect({
          hostname: "127.0.0.1",
          port: server.port,
        });
        await writeAll(
          conn,
          concat([
            encodeHello(),
            encodeHeader({ name: "cut.bin", size: 2 * NATIVE_BODY_MIN }),
          ]),
        );
        await writeAll(conn, part);
        // Its hello read, so the close is a FIN (unread input would reset).
        const hello = new Uint8Array(TRANSFER_HELLO_SIZE);
        assertEquals(await within(conn.read(hello), "the hello"), hello.length);
      }
      assertEquals(await within(server.finished, "the receiver"), 1);
      assertOk(
        results[0]!.error!.includes(
          `expected a body of ${
            2 * NATIVE_BODY_MIN
          } bytes, got ${part.length} bytes then end of input`,
        ),
        results[0]!.error,
      );
      assertEquals([...Deno.readDirSync(out)], []);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "receiveServer() on the pump thread: an idle sender mid-body is told why and closed; close() stops a body in flight",
  ignore,
  async fn() {
    const out = await tempDir();
    try {
      const server = receiveServer({ hostname: "127.0.0.1", port: 0 }, {
        dir: out,
        keep: true,
        idleTimeout: 600,
      });
      const header = concat([
        encodeHello(),
        encodeHeader({ name: "slow.bin", size: 4 * NATIVE_BODY_MIN }),
      ]);
      // One sender goes quiet after part of its body: the idle timeout ends it.
      {
        using conn = await Deno.connect({
          hostname: "127.0.0.1",
          port: server.port,
        });
        const reading = readAll(conn);
        await writeAll(conn, header);
        await writeAll(conn, randomBytes(NATIVE_BODY_MIN + 1));
        const acks = acksOf(await within(reading, "the idle close", 10_000));
        assertEquals(acks.length, 1);
        assertOk(!acks[0]!.ok && acks[0]!.code === "protocol");
        assertOk(acks[0]!.error.includes("--idle-timeout"), acks[0]!.error);
      }
      // Another is mid-body when the server closes.
      using conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      const reading = readAll(conn).catch(() => new Uint8Array(0));
      await writeAll(conn, header);
      await writeAll(conn, randomBytes(NATIVE_BODY_MIN + 1));
      await within(server.close(), "server.close()", 10_000);
      await within(reading, "the close", 10_000);
      assertEquals(await server.finished, 0);
      assertEquals([...Deno.readDirSync(out)], []);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
