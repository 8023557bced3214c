/**
 * Every mode with a non-blocking stdin and stdout, as rsync hands them to
 * its `-e` program (issue 14, item 2): all bytes arrive (sha256), the
 * O_NONBLOCK flags the parent set are still set afterwards, and an idle
 * non-blocking stdin costs no CPU. The parent is tests/fixtures/
 * nonblocking_run.py (python3), which also reads slowly so the child meets
 * a full stdout.
 */
import { fileURLToPath } from "node:url";
import { assertEquals, assertOk } from "../lib/_assert.ts";
import {
  freePort,
  needs,
  randomBytes,
  sha256,
  spawn,
  startServer,
  waitForListen,
} from "./_helpers.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const FIXTURE = fileURLToPath(
  new URL("./fixtures/nonblocking_run.py", import.meta.url),
);
const SIZE = 20_000_000;

interface NbResult {
  code: number;
  bytes: number;
  sha256: string;
  stderr: string;
  stdin_nonblock: boolean;
  stdout_nonblock: boolean;
  cpu: number;
}

/** Runs `denocat ...args` under the fixture; resolves with its report. */
async function nonBlocking(
  args: string[],
  options: {
    input?: string;
    slow?: boolean;
    stdinOpen?: boolean;
    /** Permissions instead of -A. */
    allow?: string[];
  } = {},
): Promise<NbResult> {
  const out = await spawn("python3", [
    FIXTURE,
    ...(options.input ? ["--in", options.input] : []),
    ...(options.slow ? ["--slow"] : []),
    ...(options.stdinOpen ? ["--stdin-open"] : []),
    "--",
    Deno.execPath(),
    "run",
    ...(options.allow ?? ["-A"]),
    CLI,
    ...args,
  ], { timeout: 60000 }).output;
  assertEquals(out.code, 0, out.stderr);
  const r = JSON.parse(out.text) as NbResult;
  // Nobody may clear the flags: they belong to the parent as well.
  assertEquals([r.stdin_nonblock, r.stdout_nonblock], [true, true]);
  return r;
}

/** 20 MB of random bytes in a temporary file (removed on dispose), with its digest. */
async function bigFile(): Promise<
  { path: string; digest: string } & AsyncDisposable
> {
  const data = randomBytes(SIZE);
  const path = await Deno.makeTempFile({ prefix: "denocat-nb-" });
  await Deno.writeFile(path, data);
  return {
    path,
    digest: sha256(data),
    [Symbol.asyncDispose]: () => Deno.remove(path),
  };
}

/** The run exited 0 having passed on all SIZE bytes with `digest`. */
function assertWhole(r: NbResult, digest: string): void {
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.bytes, SIZE);
  assertEquals(r.sha256, digest);
}

const PEERS = needs("python3", "ss");

Deno.test(
  "non-blocking stdio: TCP client relays 20 MB both ways through echo",
  {
    ignore: PEERS,
  },
  async () => {
    await using file = await bigFile();
    await using echo = await startServer(["echo", "127.0.0.1", "0"]);
    const r = await nonBlocking(["127.0.0.1", String(echo.port)], {
      input: file.path,
      slow: true,
    });
    assertWhole(r, file.digest);
  },
);

Deno.test(
  "non-blocking stdio: -l sends 20 MB from stdin and writes 20 MB to stdout",
  {
    ignore: PEERS,
  },
  async () => {
    await using file = await bigFile();
    const upload = randomBytes(SIZE);
    const port = freePort();
    const run = nonBlocking(["-l", "127.0.0.1", String(port)], {
      input: file.path,
      slow: true,
    });
    await waitForListen(port);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const sending = (async () => {
      for (let off = 0; off < upload.length;) {
        off += await conn.write(upload.subarray(off, off + (1 << 20)));
      }
    })();
    // Read everything the listener sends (it half-closes at its stdin EOF),
    // and only then end our side, which ends the listener's session.
    const got = new Uint8Array(SIZE + 1);
    let n = 0, k: number | null;
    while ((k = await conn.read(got.subarray(n))) !== null) n += k;
    await sending;
    await conn.closeWrite();
    conn.close();
    const r = await run;
    assertEquals(r.code, 0, r.stderr);
    assertEquals(n, SIZE);
    assertEquals(sha256(got.subarray(0, n)), file.digest);
    assertEquals(r.sha256, sha256(upload));
  },
);

Deno.test(
  "non-blocking stdio: --frame client from stdin into -l --frame --output raw to stdout",
  {
    ignore: PEERS,
  },
  async () => {
    await using file = await bigFile();
    const port = freePort();
    const listener = nonBlocking([
      "-l",
      "--frame",
      "u32be",
      "--output",
      "raw",
      "127.0.0.1",
      String(port),
    ], { slow: true });
    await waitForListen(port);
    const sender = await nonBlocking([
      "--frame",
      "u32be",
      "--split",
      "chunk",
      "127.0.0.1",
      String(port),
    ], { input: file.path });
    assertEquals(sender.code, 0, sender.stderr);
    const r = await listener;
    assertWhole(r, file.digest);
  },
);

Deno.test(
  "non-blocking stdio: send from stdin, recv to stdout, 20 MB verified",
  {
    ignore: PEERS,
  },
  async () => {
    await using file = await bigFile();
    const port = freePort();
    const recv = nonBlocking(["recv", "127.0.0.1", String(port)], {
      slow: true,
    });
    await waitForListen(port);
    const send = await nonBlocking(["send", "127.0.0.1", String(port)], {
      input: file.path,
    });
    assertEquals(send.code, 0, send.stderr);
    const r = await recv;
    assertWhole(r, file.digest);
  },
);

Deno.test(
  "non-blocking stdio: shell client streams 20 MB through a remote cat",
  {
    ignore: PEERS,
  },
  async () => {
    await using file = await bigFile();
    await using srv = await startServer([
      "shell",
      "-l",
      "--insecure-no-auth",
      "127.0.0.1",
      "0",
    ]);
    const r = await nonBlocking(
      ["shell", "127.0.0.1", String(srv.port), "--", "cat"],
      { input: file.path, slow: true },
    );
    assertWhole(r, file.digest);
  },
);

Deno.test(
  "non-blocking stdio: -u client sends stdin lines and prints the echoes",
  {
    ignore: PEERS,
  },
  async () => {
    // UDP has no flow control: 100 lines of 500 bytes, which loopback and
    // the echo server carry without loss (bigger bursts lose datagrams with
    // any stdin). Each line is one datagram; each reply prints as a line.
    const lines = Array.from(
      { length: 100 },
      () => randomBytes(250).toHex(),
    );
    const data = new TextEncoder().encode(lines.join("\n") + "\n");
    const path = await Deno.makeTempFile({ prefix: "denocat-nb-" });
    try {
      await Deno.writeFile(path, data);
      await using echo = await startServer(["echo", "-u", "127.0.0.1", "0"]);
      const r = await nonBlocking(["-u", "127.0.0.1", String(echo.port)], {
        input: path,
      });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.bytes, data.length);
      assertEquals(r.sha256, sha256(data));
    } finally {
      await Deno.remove(path);
    }
  },
);

Deno.test(
  "non-blocking stdio: without FFI a non-blocking stdout fails with one clear line, never wrong bytes",
  { ignore: PEERS },
  async () => {
    const data = randomBytes(SIZE);
    const path = await Deno.makeTempFile({ prefix: "denocat-nb-" });
    try {
      await Deno.writeFile(path, data);
      await using echo = await startServer(["echo", "127.0.0.1", "0"]);
      const r = await nonBlocking(["127.0.0.1", String(echo.port)], {
        input: path,
        slow: true,
        allow: ["--allow-net", "--allow-read", "--allow-env"],
      });
      // Deno's own write cannot tell which bytes it kept on EAGAIN, so
      // without poll there is no exact retry: stop, say why, and leave only
      // a correct prefix behind.
      assertEquals(r.code, 1);
      assertEquals(
        r.stderr,
        "denocat: cannot write to stdout: it is non-blocking, and waiting for it needs FFI (Linux, --allow-ffi)\n",
      );
      assertOk(r.bytes < SIZE);
      assertEquals(r.sha256, sha256(data.subarray(0, r.bytes)));
    } finally {
      await Deno.remove(path);
    }
  },
);

Deno.test("non-blocking stdio: probe prints its report", {
  ignore: PEERS,
}, async () => {
  await using echo = await startServer(["echo", "-u", "127.0.0.1", "0"]);
  const r = await nonBlocking([
    "probe",
    "-u",
    "-c",
    "3",
    "-i",
    "0.05",
    "127.0.0.1",
    String(echo.port),
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertOk(r.bytes > 0);
});

Deno.test(
  "non-blocking stdio: an idle non-blocking stdin costs no CPU (no busy loop)",
  {
    ignore: PEERS,
  },
  async () => {
    const port = freePort();
    const run = nonBlocking(["-l", "127.0.0.1", String(port)], {
      stdinOpen: true,
    });
    await waitForListen(port);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await new Promise((r) => setTimeout(r, 2000));
    await conn.write(new TextEncoder().encode("bye\n"));
    await conn.closeWrite();
    conn.close();
    const r = await run;
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.bytes, 4);
    // Deno's own stdin read spins on EAGAIN: about 2 CPU-seconds here. Start-up
    // and the wait through poll cost a fraction of one.
    assertOk(r.cpu < 1.2, `denocat used ${r.cpu} CPU-seconds while idle`);
  },
);

Deno.test(
  "rsync -a -e '<denocat shell wrapper>': pull and push a tree with 20 MB (rsync's non-blocking stdout)",
  {
    ignore: needs("rsync", "python3"),
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "denocat-rsync-" });
    try {
      await Deno.mkdir(`${dir}/src/sub`, { recursive: true });
      const big = randomBytes(SIZE);
      await Deno.writeFile(`${dir}/src/big.bin`, big);
      await Deno.writeTextFile(`${dir}/src/sub/a.txt`, "hello\n");
      await using srv = await startServer([
        "shell",
        "-l",
        "--insecure-no-auth",
        "127.0.0.1",
        "0",
      ]);
      // rsync runs `WRAPPER HOST rsync --server ...`; the wrapper notes how
      // rsync handed over its stdout, then becomes the denocat shell client
      // (the words after -- are joined and run by the server's shell).
      const wrapper = `${dir}/via-denocat`;
      await Deno.writeTextFile(
        wrapper,
        `#!/bin/sh
python3 -c 'import fcntl, os, sys; open(sys.argv[1], "a").write(str(bool(fcntl.fcntl(1, fcntl.F_GETFL) & os.O_NONBLOCK)) + "\\n")' "${dir}/flags" </dev/null
shift
exec '${Deno.execPath()}' run -A '${CLI}' shell 127.0.0.1 ${srv.port} -- "$@"
`,
      );
      await Deno.chmod(wrapper, 0o755);
      for (
        const [from, to] of [[`x:${dir}/src/`, `${dir}/pulled/`], [
          `${dir}/src/`,
          `x:${dir}/pushed/`,
        ]]
      ) {
        const r = await spawn("rsync", ["-a", "-e", wrapper, from!, to!], {
          timeout: 60000,
        }).output;
        assertEquals(r.code, 0, r.stderr);
      }
      for (const copy of ["pulled", "pushed"]) {
        assertEquals(
          sha256(await Deno.readFile(`${dir}/${copy}/big.bin`)),
          sha256(big),
        );
        assertEquals(
          await Deno.readTextFile(`${dir}/${copy}/sub/a.txt`),
          "hello\n",
        );
      }
      // The case this test is for: rsync made the client's stdout non-blocking.
      assertEquals(
        (await Deno.readTextFile(`${dir}/flags`)).trim().split("\n"),
        ["True", "True"],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
