/**
 * unixDatagramClient() and unixDatagramListen() against each other, in
 * process (the CLI beside nc and socat is in tests/tcp/nc_compat_test.ts).
 */
import { assertEquals } from "../../lib/_assert.ts";
import { sourceSocketsAvailable } from "../../lib/native/socket_fd.ts";
import {
  unixDatagramClient,
  unixDatagramListen,
} from "../../lib/udp/unix_datagram.ts";

// libc stays open for the process: open it before the tests.
const available = sourceSocketsAvailable();
const enc = new TextEncoder();

function input(...parts: string[]) {
  const queue = parts.map((p) => enc.encode(p));
  let release: (() => void) | undefined;
  const gate = new Promise<void>((ok) => release = ok);
  return {
    reader: {
      async read(p: Uint8Array) {
        const c = queue.shift();
        if (!c) {
          await gate; // hold the input open until told
          return null;
        }
        p.set(c);
        return c.length;
      },
    },
    end: () => release!(),
  };
}

function collector() {
  const got: string[] = [];
  return {
    got,
    writer: {
      write(p: Uint8Array) {
        got.push(new TextDecoder().decode(p));
        return Promise.resolve(p.length);
      },
    },
  };
}

Deno.test(
  "unixDatagramClient() and unixDatagramListen(): one read one datagram, replies to the client's path",
  {
    ignore: !available,
  },
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/server.sock`;
      const ac = new AbortController();
      const serverIn = input();
      const serverOut = collector();
      const { promise: bound, resolve } = Promise.withResolvers<void>();
      let answered = false;
      const server = unixDatagramListen(path, {
        input: {
          // Answers once the first datagram is in.
          async read(p: Uint8Array) {
            while (serverOut.got.length === 0) {
              await new Promise((ok) => setTimeout(ok, 10));
            }
            if (answered) return await serverIn.reader.read(p);
            answered = true;
            const reply = enc.encode("REPLY");
            p.set(reply);
            return reply.length;
          },
        },
        output: serverOut.writer,
        signal: ac.signal,
        onListening: () => resolve(),
      });
      await bound;
      const clientOut = collector();
      const local = `${dir}/client.sock`;
      const r = await unixDatagramClient(path, {
        input: (() => {
          const i = input("one\ntwo\n", "three");
          i.end();
          return i.reader;
        })(),
        output: clientOut.writer,
        localPath: local,
        wait: 300,
      });
      assertEquals(r.sent, 2);
      assertEquals(serverOut.got, ["one\ntwo\n", "three"]);
      assertEquals(clientOut.got, ["REPLY"]);
      ac.abort();
      serverIn.end();
      const s = await server;
      assertEquals([s.received, s.sent], [2, 1]);
      // Both ends removed their socket files.
      assertEquals([...Deno.readDirSync(dir)].length, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
