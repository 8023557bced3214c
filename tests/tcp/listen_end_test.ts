/**
 * When a listener's session ends (issue 14, item 1): with `-l`, as with
 * OpenBSD nc, once the client's side has ended and everything received is
 * written out, whether or not stdin has ended; with `-k`, the same per
 * client. Driven by real programs: nc -N as the client, and curl through the
 * classic fifo relay in front of python3's http.server.
 */
import { fileURLToPath } from "node:url";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import {
  freePort,
  needs,
  randomBytes,
  readAll,
  sha256,
  spawn,
  startServer,
  waitForListen,
  waitForPort,
} from "../_helpers.ts";

Deno.test(
  "-l ends when an nc -N client finishes, though its stdin stays open",
  {
    ignore: needs("nc"),
  },
  async () => {
    // keepStdin: the listener's stdin is a pipe nobody writes to or closes,
    // as in `sleep 30 | denocat -l PORT`.
    await using server = await startServer(["-l", "127.0.0.1", "0"], {
      keepStdin: true,
    });
    const t0 = performance.now();
    const nc = await spawn("nc", ["-N", "127.0.0.1", String(server.port)], {
      stdin: "hello\n",
      timeout: 10000,
    }).output;
    const ncMs = performance.now() - t0;
    const s = await server.output;
    const ms = performance.now() - t0;
    assertEquals(nc.code, 0, nc.stderr);
    assertEquals(s.code, 0, s.stderr);
    assertEquals(s.text, "hello\n");
    // nc -N waits for the listener to close; both were done long before the
    // 10 s kill (before the fix they waited for the listener's stdin).
    assertOk(ncMs < 3000 && ms < 3000, `nc ${ncMs} ms, listener ${ms} ms`);
    assertOk(/closed \(peer-closed\)/.test(s.stderr), s.stderr);
  },
);

Deno.test("-l sends its client what stdin had until the client ends", {
  ignore: needs("nc"),
}, async () => {
  // The client does not half-close (nc without -N): the listener's stdin
  // reaches the client whole, then stdin EOF sends FIN and nc exits.
  const data = randomBytes(1 << 20);
  await using server = await startServer(["-l", "127.0.0.1", "0"], {
    stdin: data,
  });
  const nc = await spawn("nc", ["-d", "127.0.0.1", String(server.port)], {
    timeout: 10000,
  }).output;
  assertEquals(nc.code, 0, nc.stderr);
  assertEquals(sha256(nc.stdout), sha256(data));
  assertEquals((await server.output).code, 0);
});

Deno.test(
  "-l -k: each client's session ends when the client finishes, stdin open",
  {
    ignore: needs("nc"),
  },
  async () => {
    await using server = await startServer(["-l", "-k", "127.0.0.1", "0"], {
      keepStdin: true,
    });
    for (const word of ["one\n", "two\n"]) {
      const t0 = performance.now();
      const nc = await spawn("nc", ["-N", "127.0.0.1", String(server.port)], {
        stdin: word,
        timeout: 10000,
      }).output;
      const ms = performance.now() - t0;
      assertEquals(nc.code, 0, nc.stderr);
      assertOk(ms < 3000, `client ${word.trim()} took ${ms} ms`);
    }
    await server.waitForStderr(
      /closed after sending 4 bytes[\s\S]*closed after sending 4 bytes/,
    );
    server.kill("SIGTERM");
    const s = await server.output;
    assertEquals(s.text, "one\ntwo\n");
  },
);

Deno.test(
  "fifo relay: curl through `denocat -l <bp | denocat ORIGIN >bp` ends by itself",
  {
    ignore: needs("curl", "python3", "mkfifo", "ss"),
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "denocat-fifo-" });
    const started: Deno.ChildProcess[] = [];
    try {
      const body = randomBytes(3 << 20);
      await Deno.writeFile(`${dir}/file.bin`, body);
      const origin = freePort();
      await using _http = spawn("python3", [
        "-m",
        "http.server",
        String(origin),
        "--bind",
        "127.0.0.1",
        "--directory",
        dir,
      ], { timeout: 30000 });
      await waitForPort(origin);
      const front = freePort();
      const fifo = `${dir}/bp`;
      assertOk(
        (await new Deno.Command("mkfifo", { args: [fifo] }).output()).success,
      );
      // The README's relay `denocat -l FRONT <bp | denocat ORIGIN >bp`, with
      // this test as the `|` so that each half is a child it can reap.
      const cli = fileURLToPath(new URL("../../cli.ts", import.meta.url));
      const half = (script: string, io: "left" | "right") =>
        new Deno.Command("sh", {
          args: ["-c", script, Deno.execPath(), cli, fifo],
          stdin: io === "right" ? "piped" : "null",
          stdout: io === "left" ? "piped" : "null",
          stderr: "piped",
        }).spawn();
      const left = half(
        `exec "$0" run -A "$1" -v -l 127.0.0.1 ${front} <"$2"`,
        "left",
      );
      started.push(left);
      const right = half(
        `exec "$0" run -A "$1" 127.0.0.1 ${origin} >"$2"`,
        "right",
      );
      started.push(right);
      const piping = left.stdout.pipeTo(right.stdin).catch(() => {});
      const leftErr = new Response(left.stderr).text();
      const rightErr = new Response(right.stderr).text();
      await waitForListen(front);
      const curl = await spawn("curl", [
        "-sS",
        "-o",
        `${dir}/out.bin`,
        `http://127.0.0.1:${front}/file.bin`,
      ], { timeout: 20000 }).output;
      assertEquals(curl.code, 0, curl.stderr);
      assertEquals(sha256(await Deno.readFile(`${dir}/out.bin`)), sha256(body));
      const t0 = performance.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ended = await Promise.race([
        Promise.all([left.status, right.status]),
        new Promise<null>((r) => timer = setTimeout(() => r(null), 8000)),
      ]);
      clearTimeout(timer);
      const ms = performance.now() - t0;
      assertOk(ended !== null, "the relay was still running 8 s after curl");
      assertEquals(ended.map((s) => s.code), [0, 0]);
      assertOk(ms < 5000, `the relay took ${ms} ms to end after curl`);
      await piping;
      assertOk(/closed \(peer-closed\)/.test(await leftErr));
      assertEquals(await rightErr, "");
    } finally {
      for (const child of started) {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
        await child.status;
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("-l: a reply written from stdin before the client ends reaches it; the client's FIN then ends the session", async () => {
  // The listener answers from stdin while the client is still sending; the
  // client's half-close then ends the session (the reply was already out).
  await using server = await startServer(["-l", "127.0.0.1", "0"], {
    keepStdin: true,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await server.stdin!.write(new TextEncoder().encode("reply\n"));
  const buf = new Uint8Array(16);
  const n = await conn.read(buf);
  assertEquals(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "reply\n");
  await conn.write(new TextEncoder().encode("request\n"));
  await conn.closeWrite();
  assertEquals(await conn.read(buf), null);
  conn.close();
  const s = await server.output;
  assertEquals(s.code, 0, s.stderr);
  assertEquals(s.text, "request\n");
});

Deno.test("-l: stdin data already waiting when the client's FIN comes still goes out", async () => {
  // nc flushes what its last poll round read from stdin; denocat sends what
  // it read and one more chunk that stdin has ready, then ends even though
  // stdin stays open.
  for (let i = 0; i < 5; i++) {
    await using server = await startServer(["-l", "127.0.0.1", "0"], {
      keepStdin: true,
    });
    await server.stdin!.write(new TextEncoder().encode("early\n"));
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await conn.write(new TextEncoder().encode("req\n"));
    await conn.closeWrite();
    const got = await readAll(conn);
    conn.close();
    assertEquals(new TextDecoder().decode(got), "early\n", `round ${i}`);
    const s = await server.output;
    assertEquals(s.code, 0, s.stderr);
    assertEquals(s.text, "req\n");
  }
});

Deno.test("-l: when the client ends first with stdin left unsent, one line says so (exit 0)", async () => {
  const data = randomBytes(8 << 20);
  await using server = await startServer(["-l", "127.0.0.1", "0"], {
    stdin: data,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await conn.closeWrite(); // like `denocat HOST PORT </dev/null`
  const got = await readAll(conn);
  conn.close();
  const s = await server.output;
  assertEquals(s.code, 0, s.stderr);
  assertOk(got.length < data.length, `${got.length} bytes arrived`);
  assertEquals(sha256(got), sha256(data.subarray(0, got.length)));
  assertOk(
    s.stderr.includes(
      "denocat: the client ended first: stdin was not sent in full (a client keeps its side open with --no-shutdown)",
    ),
    s.stderr,
  );
});
