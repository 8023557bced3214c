/**
 * The identity rule of the native fast paths, through the CLI: hostile
 * clients sharing a source port, a process with 4,200 descriptors, a
 * same-port service on another loopback address inside the echo server's
 * own process, and descriptors a child would inherit. Each case checks by
 * sha256 that the bytes reached the right peer.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { writeAll } from "../../lib/copy.ts";
import {
  needs,
  randomBytes,
  readAll,
  type Running,
  sha256,
  spawn,
  startCli,
  startServer,
} from "../_helpers.ts";
import {
  inheritable,
  payloadDir,
  samePortClients,
  socketsOf,
} from "./_same_port.ts";

const MIB = 1 << 20;
const linux = Deno.build.os === "linux";
const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const DENO_CLI = [Deno.execPath(), "run", "-A", CLI];

/** Sends `data` 1 MiB every 10 ms (time for the pump thread to boot), then FIN. */
async function sendPaced(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length; off += MIB) {
    await writeAll(conn, data.subarray(off, off + MIB));
    await new Promise((r) => setTimeout(r, 10));
  }
  await conn.closeWrite();
}

Deno.test(
  "cli: -l with two clients on one source port, the first reset at the hand-off: exit 1, only its own bytes",
  { ignore: !linux || needs("python3") },
  async () => {
    const A = randomBytes(5 * MIB), B = randomBytes(2 * MIB);
    await using dir = await payloadDir(A, B);
    await using server = await startServer(["-l", "127.0.0.1", "0"], {
      timeout: 30_000,
    });
    await using py = await samePortClients(
      "127.0.0.1",
      server.port,
      `${dir.path}/a`,
      `${dir.path}/b`,
    );
    assertEquals(await py.run("connect a"), "");
    await server.waitForStderr(/connection from 127\.0\.0\.2:/);
    // b, same source port from 127.0.0.3, is never served (-l takes one
    // client): refused, or reset once the listener closes.
    await py.run("connect b");
    await py.run(`send a ${3.5 * MIB}`);
    await new Promise((r) => setTimeout(r, 500)); // the listener takes it all
    // The rest of a's 5 MiB, and the reset right behind it: the listener
    // reaches 4 MiB (the hand-off) with the peer gone or going.
    await py.run(`send a ${1.5 * MIB}`);
    await py.run("reset a");
    const out = await server.output;
    assertEquals(out.code, 1, out.stderr);
    assertOk(
      out.stderr.endsWith(
        "denocat: cannot relay data: connection reset by peer\n",
      ),
      out.stderr,
    );
    assertOk(
      out.stdout.length >= 3.5 * MIB && out.stdout.length <= A.length,
      `${out.stdout.length} bytes out`,
    );
    assertEquals(sha256(out.stdout), sha256(A.subarray(0, out.stdout.length)));
    // A declined hand-off is said once (when the reset came first).
    assertOk(
      (out.stderr.match(/pump threads not used/g) ?? []).length <= 1,
      out.stderr,
    );
  },
);

/**
 * python3 raises the descriptor limit, opens `count` inheritable
 * descriptors of /dev/null, then becomes `argv` (exec keeps them open).
 */
const WITH_FDS = `
import os, resource, sys
count = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < count + 400:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 400), hard))
for _ in range(count):
    os.set_inheritable(os.open("/dev/null", os.O_RDONLY), True)
os.execv(sys.argv[2], sys.argv[2:])
`;

Deno.test(
  "cli: -l in a process with 4,200 descriptors finds its connection above them and pumps it intact",
  { ignore: !linux || needs("python3") },
  async () => {
    await using server = spawn("python3", [
      "-c",
      WITH_FDS,
      "4200",
      ...DENO_CLI,
      "-v",
      "-l",
      "127.0.0.1",
      "0",
    ], { timeout: 60_000 });
    const port = Number(
      (await server.waitForStderr(/listening on .*:(\d+)\s*$/m))[1],
    );
    const data = randomBytes(24 * MIB);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await server.waitForStderr(/connection from/);
    const fds = socketsOf(server.child.pid).map((s) => Number(s.split(" ")[0]));
    assertOk(fds.some((fd) => fd > 4200), `sockets at ${fds}`);
    const [, reply] = await Promise.all([sendPaced(conn, data), readAll(conn)]);
    conn.close();
    const out = await server.output;
    assertEquals(out.code, 0, out.stderr);
    assertEquals(reply.length, 0);
    assertEquals(sha256(out.stdout), sha256(data));
    assertOk(/; \d+ bytes via pump threads/.test(out.stderr), out.stderr);
  },
);

/**
 * python3 opens a same-port service on 127.0.0.2 (TCP listener or UDP
 * socket), starts `argv` + its port with that socket inherited, and serves
 * it itself: each client (datagram) gets "other <sha256 of its bytes>".
 * Closing its stdin stops the child and then python; the child also gets
 * SIGTERM if python dies first.
 */
const WITH_OTHER_SERVICE = `
import ctypes, hashlib, signal, socket, subprocess, sys, threading
kind = sys.argv[1]
o = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
o.bind(("127.0.0.2", 0))
if kind == "tcp":
    o.listen(16)
o.set_inheritable(True)
port = o.getsockname()[1]
def die_with_parent():  # PR_SET_PDEATHSIG: no orphan if python is killed
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)
child = subprocess.Popen(sys.argv[2:] + [str(port)], pass_fds=[o.fileno()], preexec_fn=die_with_parent)
def reply(data):
    return b"other " + hashlib.sha256(data).hexdigest().encode()
def serve():
    while True:
        if kind == "udp":
            m, a = o.recvfrom(65536)
            o.sendto(reply(m), a)
            continue
        c, _ = o.accept()
        got = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
        c.sendall(reply(got))
        c.close()
threading.Thread(target=serve, daemon=True).start()
sys.stdin.read()
child.terminate()
sys.exit(child.wait())
`;

async function withOtherService(
  kind: "tcp" | "udp",
  args: string[],
): Promise<Running & { port: number }> {
  const p = spawn("python3", ["-c", WITH_OTHER_SERVICE, kind, ...args], {
    keepStdin: true,
    timeout: 30_000,
  });
  const m = await p.waitForStderr(/listening on 127\.0\.0\.1:(\d+)/);
  return Object.assign(p, { port: Number(m[1]) });
}

async function exchange(hostname: string, port: number, data: Uint8Array) {
  const conn = await Deno.connect({ hostname, port });
  const [, back] = await Promise.all([
    writeAll(conn, data).then(() => conn.closeWrite()),
    readAll(conn),
  ]);
  conn.close();
  return back;
}

Deno.test(
  "cli: echo beside a same-port listener on 127.0.0.2 in its own process serves only its own clients",
  { ignore: !linux || needs("python3") },
  async () => {
    await using p = await withOtherService("tcp", [
      ...DENO_CLI,
      "echo",
      "-v",
      "--threads",
      "2",
      "127.0.0.1",
    ]);
    await p.waitForStderr(/serving on 2 epoll threads/);
    for (let i = 0; i < 3; i++) {
      const mine = randomBytes(80_000 + i), theirs = randomBytes(40_000 + i);
      const [echoed, answered] = await Promise.all([
        exchange("127.0.0.1", p.port, mine),
        exchange("127.0.0.2", p.port, theirs),
      ]);
      assertEquals(sha256(echoed), sha256(mine));
      assertEquals(
        new TextDecoder().decode(answered),
        `other ${sha256(theirs)}`,
      );
    }
    await p.stdin!.close();
    const out = await p.output;
    assertOk(/shutting down: 0 open, 3 served/.test(out.stderr), out.stderr);
  },
);

Deno.test(
  "cli: echo -u beside a same-port UDP socket on 127.0.0.2 in its own process echoes only its own datagrams",
  { ignore: !linux || needs("python3") },
  async () => {
    await using p = await withOtherService("udp", [
      ...DENO_CLI,
      "echo",
      "-u",
      "-v",
      "127.0.0.1",
    ]);
    await p.waitForStderr(/serving on its own thread/);
    const client = Deno.listenDatagram({
      transport: "udp",
      hostname: "127.0.0.1",
      port: 0,
    });
    try {
      const buf = new Uint8Array(2048);
      for (let i = 0; i < 4; i++) {
        const mine = randomBytes(500 + i), theirs = randomBytes(200 + i);
        await client.send(mine, {
          transport: "udp",
          hostname: "127.0.0.1",
          port: p.port,
        });
        assertEquals(sha256((await client.receive(buf))[0]), sha256(mine));
        await client.send(theirs, {
          transport: "udp",
          hostname: "127.0.0.2",
          port: p.port,
        });
        assertEquals(
          new TextDecoder().decode((await client.receive(buf))[0]),
          `other ${sha256(theirs)}`,
        );
      }
    } finally {
      client.close();
    }
    await p.stdin!.close();
    const out = await p.output;
    assertOk(/shutting down: 4 datagrams echoed/.test(out.stderr), out.stderr);
  },
);

Deno.test(
  "cli: no socket or epoll descriptor of a pumping relay or of the echo engines is inheritable",
  { ignore: !linux },
  async () => {
    // A relay: sampled all through a 24 MiB transfer, pump included.
    await using server = await startServer(["-l", "127.0.0.1", "0"], {
      timeout: 30_000,
    });
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    let sampling = true;
    const leaks = new Set<string>();
    let samples = 0;
    const sampler = (async () => {
      while (sampling) {
        for (const l of inheritable(server.child.pid)) leaks.add(l);
        samples++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const data = randomBytes(24 * MIB);
    await Promise.all([sendPaced(conn, data), readAll(conn)]);
    conn.close();
    const out = await server.output;
    sampling = false;
    await sampler;
    assertEquals(sha256(out.stdout), sha256(data));
    assertOk(/; \d+ bytes via pump threads/.test(out.stderr), out.stderr);
    assertOk(samples > 10, `${samples} samples`);
    assertEquals([...leaks], []);

    // The epoll engine with a connection open, and the UDP echo thread.
    await using tcp = startCli(["echo", "-v", "127.0.0.1", "0"]);
    await using udp = startCli(["echo", "-u", "-v", "127.0.0.1", "0"]);
    const tcpPort = Number(
      (await tcp.waitForStderr(/listening on 127\.0\.0\.1:(\d+)/))[1],
    );
    await tcp.waitForStderr(/epoll thread/);
    await udp.waitForStderr(/serving on its own thread/);
    const c = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
    await writeAll(c, new Uint8Array([7]));
    await c.read(new Uint8Array(1));
    assertEquals(inheritable(tcp.child.pid), []);
    assertEquals(inheritable(udp.child.pid), []);
    assertOk(socketsOf(tcp.child.pid).length >= 2);
    c.close();
  },
);
