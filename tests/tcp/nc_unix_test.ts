/**
 * Unix sockets as nc users write them: -U as a flag, @NAME abstract
 * sockets, datagram sockets (-u -U, -s LOCALPATH) and stale socket files,
 * beside nc, socat and python3 (issue 16).
 */
import { assertEquals, assertOk as assert } from "../../lib/_assert.ts";
import { needs, runCli, spawn, startCli } from "../_helpers.ts";
import { assertMatch, listening, pyLines } from "./_nc.ts";

Deno.test("denocat -U is a flag: -U PATH, -Ul PATH, -lU PATH and -U -l PATH all work", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [i, listenArgs] of [
        ["-Ul"],
        ["-lU"],
        ["-U", "-l"],
        ["-l", "--unix"],
      ].entries()
    ) {
      const path = `${dir}/s${i}`;
      await using server = startCli(["-v", ...listenArgs, path]);
      await listening(server);
      const c = await runCli(["-U", path], { stdin: "unix" });
      assertEquals(c.code, 0, c.stderr);
      const s = await server.output;
      assertEquals(s.text, "unix", listenArgs.join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("denocat -U @NAME: abstract sockets, against nc -U and socat", {
  ignore: needs("nc", "socat"),
}, async () => {
  const name = `denocat-test-${crypto.randomUUID()}`;
  // denocat listens, nc connects.
  {
    await using server = startCli(["-v", "-lU", `@${name}`]);
    await server.waitForStderr(new RegExp(`listening on @${name}`));
    const n = await spawn("nc", ["-N", "-U", `@${name}`], { stdin: "via nc" })
      .output;
    assertEquals(n.code, 0, n.stderr);
    assertEquals((await server.output).text, "via nc");
  }
  // socat listens, denocat connects and gets the reply.
  {
    await using socat = spawn("socat", [
      `ABSTRACT-LISTEN:${name}`,
      "EXEC:tr a-z A-Z",
    ]);
    let r;
    for (let i = 0; i < 50; i++) {
      r = await runCli(["-U", `@${name}`], { stdin: "via denocat" });
      if (r.code === 0) break;
      await new Promise((ok) => setTimeout(ok, 50));
    }
    assertEquals(r!.code, 0, r!.stderr);
    assertEquals(r!.text, "VIA DENOCAT");
    socat.kill();
  }
  const bad = await runCli(["-U", "@"]);
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /missing name after @/);
});

Deno.test(
  "denocat -u -U: Unix datagram sockets against nc -uU and socat, replies through -s LOCALPATH",
  {
    ignore: needs("nc", "socat", "python3"),
  },
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/dgram.sock`;
      await using server = startCli(["-v", "-u", "-l", "-U", path]);
      await server.waitForStderr(/listening on unix datagram/);
      const d = await runCli(["-uU", "-w", "0.2", path], { stdin: "one\n" });
      assertEquals(d.code, 0, d.stderr);
      await server.waitForStderr(/4 bytes from .*client\.sock/);
      const n = await spawn("nc", ["-uU", "-w", "1", path], { stdin: "two\n" })
        .output;
      assertEquals(n.code, 0, n.stderr);
      await server.waitForStderr(/4 bytes from /);
      const s = await spawn("socat", ["-", `UNIX-SENDTO:${path}`], {
        stdin: "three\n",
      }).output;
      assertEquals(s.code, 0, s.stderr);
      await server.waitForStderr(/6 bytes from an unbound socket/);
      server.kill("SIGTERM");
      const out = await server.output;
      assertEquals(out.text, "one\ntwo\nthree\n");
      // The listener removed its socket file.
      await Deno.lstat(path).then(
        () => assert(false, "socket file left behind"),
        (e) => assert(e instanceof Deno.errors.NotFound),
      );

      // A python3 datagram server answers to the client's -s path.
      const echoPath = `${dir}/echo.sock`;
      const local = `${dir}/me.sock`;
      await using py = pyLines(`
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(${JSON.stringify(echoPath)})
print("ready", flush=True)
d, a = s.recvfrom(65536)
s.sendto(d.upper(), a)
print(a, flush=True)
`);
      for (let i = 0; i < 100; i++) {
        try {
          await Deno.lstat(echoPath);
          break;
        } catch {
          await new Promise((ok) => setTimeout(ok, 30));
        }
      }
      const r = await runCli(["-uU", "-s", local, "-w", "0.5", echoPath], {
        stdin: "ping",
      });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.text, "PING");
      const pyOut = await py.output;
      assertEquals(pyOut.text, `ready\n${local}\n`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "denocat -l -U removes a stale socket file, never a live socket or a plain file",
  {
    ignore: needs("python3"),
  },
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      // A socket file whose owner is gone (python3 binds and exits).
      const stale = `${dir}/stale.sock`;
      const py = await spawn("python3", [
        "-c",
        `import socket; socket.socket(socket.AF_UNIX).bind(${
          JSON.stringify(stale)
        })`,
      ]).output;
      assertEquals(py.code, 0, py.stderr);
      assert((await Deno.lstat(stale)).isSocket);
      {
        await using server = startCli(["-v", "-lU", stale]);
        await server.waitForStderr(/removed stale socket .*\n.*listening on/);
        const c = await runCli(["-U", stale], { stdin: "fresh" });
        assertEquals(c.code, 0, c.stderr);
        assertEquals((await server.output).text, "fresh");
      }
      // A live listener keeps its socket: the second one is refused.
      const live = `${dir}/live.sock`;
      {
        await using first = startCli(["-v", "-lU", live]);
        await listening(first);
        const second = await runCli(["-lU", live]);
        assertEquals(second.code, 1);
        assertEquals(
          second.stderr,
          `denocat: cannot listen on ${live}: address already in use\n`,
        );
        // ...and the first one still serves (the check did not connect to it).
        const c = await runCli(["-U", live], { stdin: "still here" });
        assertEquals(c.code, 0, c.stderr);
        assertEquals((await first.output).text, "still here");
      }
      // A plain file is never touched.
      const file = `${dir}/file`;
      await Deno.writeTextFile(file, "keep me");
      const r = await runCli(["-lU", file]);
      assertEquals(r.code, 1);
      assertEquals(
        r.stderr,
        `denocat: cannot listen on ${file}: it exists and is not a socket (left alone)\n`,
      );
      assertEquals(await Deno.readTextFile(file), "keep me");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
