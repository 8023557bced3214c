/**
 * A peer that resets while a chunk is being written: the copy loop's next
 * read is pending then, and its rejection must reach the caller as an
 * error (never an unhandled rejection, which ends the whole process), on
 * every path that copies: copy(), fastCopy() short of the hand-off, and
 * pipeDuplex().
 */
import { assertEquals, assertOk, assertRejects } from "../../lib/_assert.ts";
import { copy } from "../../lib/copy.ts";
import { fastCopy } from "../../lib/native/pump.ts";
import { pipeDuplex } from "../../lib/tcp/pipe.ts";
import { needs } from "../_helpers.ts";

/** python3 connects, sends `bytes`, waits 200 ms and resets (SO_LINGER 0). */
function resettingClient(port: number, bytes: number) {
  return new Deno.Command("python3", {
    args: [
      "-c",
      `
import socket, struct, time
s = socket.create_connection(("127.0.0.1", ${port}))
s.sendall(b"x" * ${bytes})
time.sleep(0.2)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
`,
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

/**
 * A sink that takes 600 ms per write: the copy loop's next read is pending
 * on the socket all that time, and the reset lands in it.
 */
function slowSink() {
  let got = 0;
  return {
    got: () => got,
    async write(p: Uint8Array) {
      await new Promise((r) => setTimeout(r, 600));
      got += p.length;
      return p.length;
    },
  };
}

async function acceptReset(
  bytes: number,
): Promise<{ conn: Deno.TcpConn; done: () => Promise<unknown> }> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = resettingClient(l.addr.port, bytes);
  const conn = await l.accept();
  l.close();
  return { conn, done: () => client.status };
}

Deno.test(
  "copy(): a reset while a chunk is written rejects with ConnectionReset",
  {
    ignore: needs("python3"),
  },
  async () => {
    const { conn, done } = await acceptReset(1000);
    const sink = slowSink();
    await assertRejects(() => copy(conn, sink), Deno.errors.ConnectionReset);
    assertEquals(sink.got(), 1000);
    conn.close();
    await done();
  },
);

Deno.test(
  "fastCopy(): a reset before the hand-off rejects with ConnectionReset",
  {
    ignore: needs("python3"),
  },
  async () => {
    const { conn, done } = await acceptReset(100_000);
    // With a descriptor, fastCopy runs its hand-off loop (copyUntil); 100 kB
    // never reaches the hand-off, so the descriptor is never written to.
    const sink = Object.assign(slowSink(), { fd: 1 });
    await assertRejects(
      () => fastCopy(conn, sink, { conn }),
      Deno.errors.ConnectionReset,
    );
    assertOk(sink.got() > 0);
    conn.close();
    await done();
  },
);

Deno.test(
  "pipeDuplex(): a reset while output is slow fails the relay with its one line",
  {
    ignore: needs("python3"),
  },
  async () => {
    const { conn, done } = await acceptReset(1000);
    const sink = slowSink();
    let err: unknown;
    try {
      await pipeDuplex(conn, {
        input: { read: () => Promise.resolve(null) },
        output: sink,
      });
    } catch (e) {
      err = e;
    }
    assertEquals(
      (err as Error).message,
      "cannot relay data: connection reset by peer",
    );
    await done();
  },
);
