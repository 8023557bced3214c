/**
 * The shell server against the attacks of issue 15 (items 5 to 10), each
 * run as the attacker ran it on loopback, each printing its figure:
 * a flood of silent connections from one source, token guessing (time and
 * memory), a command whose `setsid` child keeps the pipes, client
 * environment against a restricted shell, the token in /proc and binary
 * tokens, and terminal escapes from either peer.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { AuthGate, connectShell } from "../../lib/shell/mod.ts";
import {
  encodeClientHello,
  encodeError,
  encodeMessage,
  encodeServerHello,
  MsgType,
  PROTOCOL_VERSION,
} from "../../lib/shell/protocol.ts";
import {
  hasCommand,
  runCli,
  spawn,
  startServer,
  testOnlyOn,
} from "../_helpers.ts";
import { budget, scaled } from "./_scale.ts";
import { assertNoCrash, pidsWith, sleep, summary } from "./_util.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const FIXTURE = new URL("./_shell_fixture.ts", import.meta.url).pathname;
const CLI = new URL("../../cli.ts", import.meta.url).pathname;

// /proc, setsid and prctl are Linux's; the shell server needs process groups.
const test = testOnlyOn(["linux"], "/proc, setsid and prctl");

const randomToken = () =>
  `tok-${crypto.getRandomValues(new Uint8Array(16)).toHex()}`;

/** VmRSS of `pid` in MiB. */
function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/^VmRSS:\s+(\d+) kB/m)![1]) / 1024;
}

/** The library server in a process of its own (see _shell_fixture.ts). */
async function fixture(options: Record<string, unknown>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FIXTURE, JSON.stringify(options)],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!/listening \d+/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error("fixture exited");
    text += td.decode(value);
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return {
    pid: child.pid,
    port: Number(text.match(/listening (\d+)/)![1]),
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 6000);
      await child.status;
      clearTimeout(t);
    },
  };
}

/** Bytes of a connection until EOF (or reset). */
async function drain(c: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  try {
    let n: number | null;
    while ((n = await c.read(buf)) !== null) chunks.push(buf.slice(0, n));
  } catch { /* reset */ }
  const out = new Uint8Array(chunks.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const b of chunks) (out.set(b, at), at += b.length);
  return out;
}

test("shell attack: a flood of silent connections from one source; another source logs in within 1 s", async () => {
  const token = randomToken();
  await using srv = await startServer(
    ["shell", "-l", "--token", token, "::", "0"],
    { timeout: budget(120_000) },
  );
  const seconds = scaled(3);
  const rate = 400;
  let opened = 0;
  let dropped = 0;
  let maxOpen = 0;
  const open = new Set<Deno.Conn>();
  const readers: Promise<void>[] = [];
  let flooding = true;
  const flood = (async () => {
    const t0 = performance.now();
    while (flooding && performance.now() - t0 < seconds * 1000) {
      // Paced in batches: ~rate connections a second from ::1.
      const due = Math.floor((performance.now() - t0) / 1000 * rate);
      while (opened < due) {
        let c: Deno.Conn;
        try {
          c = await Deno.connect({ hostname: "::1", port: srv.port });
        } catch {
          continue;
        }
        opened++;
        open.add(c);
        maxOpen = Math.max(maxOpen, open.size);
        readers.push((async () => {
          await drain(c);
          if (open.delete(c)) dropped++;
          try {
            c.close();
          } catch { /* closed */ }
        })());
      }
      await sleep(5);
    }
  })();
  // Real logins from 127.0.0.1 while the flood runs.
  await sleep(500);
  const logins: number[] = [];
  let failed = 0;
  for (let i = 0; i < scaled(5); i++) {
    const t0 = performance.now();
    try {
      await using s = await connectShell(
        { hostname: "127.0.0.1", port: srv.port },
        { token, timeout: 5000 },
      );
      logins.push(performance.now() - t0);
      assertEquals((await s.exec("exit 3")).code, 3);
    } catch (err) {
      failed++;
      console.error(`login ${i} failed: ${err}`);
    }
    await sleep(Math.max(0, (seconds * 1000 - 1000) / scaled(5)));
  }
  flooding = false;
  await flood;
  const rest = [...open];
  open.clear();
  for (const c of rest) {
    try {
      c.close();
    } catch { /* closed */ }
  }
  await Promise.all(readers);
  srv.kill("SIGTERM");
  const out = await srv.output;
  assertNoCrash("shell", out.stderr);
  const slowest = Math.max(...logins);
  summary(
    `shell flood: ${opened} silent connections from ::1 over ${seconds} s (${
      (opened / seconds).toFixed(0)
    }/s), ${dropped} dropped by the server, at most ${maxOpen} open at once; ${logins.length}/${
      scaled(5)
    } logins from 127.0.0.1, slowest ${slowest.toFixed(0)} ms`,
  );
  assertEquals(failed, 0);
  assertOk(slowest < 1000, `slowest login ${slowest} ms`);
  assertOk(dropped > opened / 2, "the flood's own connections made way");
  assertOk(
    out.stderr.includes("dropped: 8 connections from 0:0:0:0::/64"),
    "evicted within the flooding source",
  );
});

test("shell attack: wrong guesses pay the whole penalty schedule; memory stays flat", async () => {
  const throttle = { freeFailures: 2, baseDelayMs: 2, maxDelayMs: 4 };
  const guesses = scaled(2000);
  await using srv = await fixture({
    token: crypto.getRandomValues(new Uint8Array(16)).toHex(),
    throttle,
  });
  const gate = new AuthGate(throttle);
  let schedule = 0;
  for (let k = 0; k < guesses; k++) schedule += gate.penalty(k);
  gate.close();

  const hello = (mac: Uint8Array) =>
    encodeMessage(
      MsgType.ClientHello,
      encodeClientHello({
        version: PROTOCOL_VERSION,
        nonce: crypto.getRandomValues(new Uint8Array(32)),
        mac,
      }),
    );
  // A guess is an answered proof; a connection the server turned away
  // (more than 8 waiting from one source) got no guess in, so the attacker
  // runs 8 at once, the most that get anywhere (the flood test covers more).
  let refused = 0;
  let dropped = 0;
  let target = 0;
  const guess = async () => {
    while (refused < target) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
      try {
        // The most eager attacker: the guess goes out with the connection.
        await c.write(hello(crypto.getRandomValues(new Uint8Array(32))));
        const reply = await drain(c);
        if (td.decode(reply).includes("authentication failed")) refused++;
        else dropped++;
      } finally {
        c.close();
      }
    }
  };
  // Idle: after its first 10 wrong guesses (code loaded, keys imported);
  // they count as failures, so the 2,000 below pay at least the schedule.
  target = 10;
  await guess();
  refused = 0;
  target = guesses;
  await sleep(300);
  const idle = rssMiB(srv.pid);
  let peak = idle;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMiB(srv.pid));
  }, 50);
  const t0 = performance.now();
  try {
    await Promise.all(Array.from({ length: 8 }, guess));
  } finally {
    clearInterval(sampler);
  }
  const took = performance.now() - t0;
  peak = Math.max(peak, rssMiB(srv.pid));

  // Memory per connection still waiting for its hello: the first n from an
  // idle server (this includes V8 growing its heap, a one-time cost), then
  // n more once those are closed (the steady cost of a connection).
  const n = Math.min(scaled(4000), 8000);
  let cold = 0;
  let warm = 0;
  {
    await using wide = await fixture({
      token: crypto.getRandomValues(new Uint8Array(16)).toHex(),
      maxPending: n + 10,
      maxPendingPerSource: n + 10,
    });
    const open = async () => {
      const conns: Deno.Conn[] = [];
      for (let i = 0; i < n; i++) {
        conns.push(
          await Deno.connect({ hostname: "127.0.0.1", port: wide.port }),
        );
      }
      await sleep(1000);
      return conns;
    };
    await sleep(500);
    const idle = rssMiB(wide.pid);
    let conns = await open();
    cold = (rssMiB(wide.pid) - idle) * 1024 / n;
    for (const c of conns) c.close();
    await sleep(1000);
    const settled = rssMiB(wide.pid);
    conns = await open();
    warm = (rssMiB(wide.pid) - settled) * 1024 / n;
    for (const c of conns) c.close();
  }
  summary(
    `shell guessing: ${refused} wrong guesses refused (${dropped} more connections dropped unread, 8 at once) in ${
      (took / 1000).toFixed(2)
    } s (schedule sum ${(schedule / 1000).toFixed(2)} s, ${
      (guesses / took * 1000).toFixed(0)
    } guesses/s); server RSS idle (after 10 guesses) ${
      idle.toFixed(1)
    } MiB, peak ${peak.toFixed(1)} MiB (+${
      (peak - idle).toFixed(1)
    }); ${n} pending connections cost ${cold.toFixed(1)} KiB each from idle, ${
      warm.toFixed(1)
    } KiB each once the heap has grown`,
  );
  assertOk(refused >= guesses);
  assertOk(took >= schedule, `${took} ms < schedule ${schedule} ms`);
  // The figure: within 20 MiB of idle over 2,000 guesses. Beyond
  // that (the soak's 20,000) V8 keeps growing its heap reservation by about
  // 1 MiB per 4,000 guesses while the live heap stays near 6 MiB after a
  // full GC, so the soak allows half a MiB per further 1,000 guesses.
  const allowed = 20 + Math.max(0, guesses - 2000) / 1000 * 0.5;
  assertOk(peak - idle <= allowed, `RSS grew ${peak - idle} MiB`);
  assertOk(warm < 16, `${warm} KiB per pending connection`);
  assertOk(cold < 20, `${cold} KiB per pending connection from idle`);
});

test("shell attack: a setsid child holding the pipes no longer holds EXIT, the audit, the next client or shutdown", async () => {
  const mark = `${4000 + Math.floor(Math.random() * 1000)}.${
    Math.floor(Math.random() * 1e6)
  }`;
  const times: number[] = [];
  let shutdownMs = 0;
  try {
    await using srv = await startServer([
      "shell",
      "-l",
      "--insecure-no-auth",
      "--max-sessions",
      "1",
      "127.0.0.1",
      "0",
    ], { timeout: budget(60_000) });
    const port = String(srv.port);
    for (let i = 0; i < scaled(2); i++) {
      const t0 = performance.now();
      const r = await runCli([
        "shell",
        "127.0.0.1",
        port,
        "--",
        `setsid sleep ${mark} & echo started`,
      ]);
      times.push(performance.now() - t0);
      assertEquals([r.code, r.text], [0, "started\n"]);
      // The next client is served at once (the slot was given back).
      const next = await runCli(["shell", "127.0.0.1", port, "--", "exit 5"]);
      assertEquals(next.code, 5, next.stderr);
    }
    const err = srv.stderrSoFar();
    const starts = err.match(/exec-start peer=\S+ pid=\d+ cmd="setsid sleep/g);
    const ends = err.match(/exec peer=\S+ exit=0 escaped .*cmd="setsid sleep/g);
    assertEquals([starts?.length, ends?.length], [scaled(2), scaled(2)]);
    // Shutdown while a command ignores SIGTERM and a setsid child holds on.
    await using held = spawn(Deno.execPath(), [
      "run",
      "-A",
      CLI,
      "shell",
      "127.0.0.1",
      port,
      "--",
      `setsid sh -c "trap '' TERM; sleep ${mark}" & trap '' TERM; sleep ${mark}`,
    ]);
    await srv.waitForStderr(/exec-start peer=\S+ pid=\d+ cmd="setsid sh/);
    await sleep(300); // the shell's trap is set
    const t0 = performance.now();
    srv.kill("SIGTERM");
    const out = await srv.output;
    shutdownMs = performance.now() - t0;
    assertEquals(out.code, 0);
    assertNoCrash("shell", out.stderr);
    const client = await held.output;
    assertEquals(client.code, 137, client.stderr);
  } finally {
    for (const pid of pidsWith(`sleep ${mark}`)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
  summary(
    `shell setsid: ${times.length} commands with an escaped child ended in ${
      times.map((t) => t.toFixed(0)).join("/")
    } ms (client process, start to exit); next client served each time; shutdown with a TERM-ignoring command and a setsid child took ${
      shutdownMs.toFixed(0)
    } ms`,
  );
  assertOk(times.every((t) => t < 4000), `${times}`);
  assertOk(shutdownMs < 5000, `shutdown ${shutdownMs} ms`);
});

test("shell attack: client variables cannot get past a restricted --shell (AcceptEnv)", async () => {
  const dir = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "denocat-env-" }),
  );
  try {
    const marker = `${dir}/pwned`;
    const wrapper = `${dir}/only-uptime`;
    await Deno.writeTextFile(
      wrapper,
      `#!/bin/bash\ncase "$2" in uptime) exec uptime ;; *) echo "only uptime" >&2; exit 1 ;; esac\n`,
    );
    await Deno.chmod(wrapper, 0o755);
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(
      `${dir}/bin/uptime`,
      `#!/bin/sh\ntouch ${marker}\n`,
    );
    await Deno.chmod(`${dir}/bin/uptime`, 0o755);
    const attacks: Array<[string, string]> = [
      ["BASH_ENV=/dev/stdin", `touch ${marker}`],
      [`PATH=${dir}/bin`, ""],
      ["ENV=/dev/stdin", `touch ${marker}`],
      ["SHELLOPTS=xtrace", ""],
      [`LD_PRELOAD=${dir}/nothing.so`, ""],
      ["BASH_FUNC_uptime%%=() { touch " + marker + "; }", ""],
    ];
    let refused = 0;
    let tried = 0;
    for (
      const accept of [[], ["--accept-env", "LC_*,LANG"]] as string[][]
    ) {
      await using srv = await startServer([
        "shell",
        "-l",
        "--insecure-no-auth",
        "--shell",
        wrapper,
        ...accept,
        "127.0.0.1",
        "0",
      ], { timeout: budget(30_000) });
      const port = String(srv.port);
      for (let round = 0; round < scaled(1); round++) {
        for (const [kv, stdin] of attacks) {
          tried++;
          const r = await runCli(
            ["shell", "-e", kv, "127.0.0.1", port, "--", "uptime"],
            { stdin },
          );
          const name = kv.slice(0, kv.indexOf("="));
          if (
            r.code === 255 &&
            r.stderr.includes(`environment variable ${JSON.stringify(name)}`) &&
            r.stderr.includes("not accepted by this server")
          ) refused++;
          else console.error(`not refused: ${kv}: ${r.code} ${r.stderr}`);
        }
      }
      // What the server accepts still works.
      const ok = await runCli([
        "shell",
        "-e",
        "LC_ALL=C",
        "127.0.0.1",
        port,
        "--",
        "uptime",
      ]);
      assertEquals(ok.code, accept.length ? 0 : 255, ok.stderr);
      srv.kill("SIGTERM");
      assertNoCrash("shell", (await srv.output).stderr);
    }
    assertOk(!(await exists(marker)), "an attack ran code");
    // The wrapper really is bypassable when the server accepts BASH_ENV
    // (and the server warns about it): the refusals above are what holds.
    await using open = await startServer([
      "shell",
      "-l",
      "--insecure-no-auth",
      "--shell",
      wrapper,
      "--accept-env",
      "BASH_ENV",
      "127.0.0.1",
      "0",
    ], { timeout: budget(30_000) });
    const bypass = await runCli(
      [
        "shell",
        "-e",
        "BASH_ENV=/dev/stdin",
        "127.0.0.1",
        String(open.port),
        "--",
        "uptime",
      ],
      { stdin: `touch ${marker}` },
    );
    const bypassed = await exists(marker);
    assertOk(
      open.stderrSoFar().includes("--accept-env lets clients set BASH_ENV"),
    );
    summary(
      `shell env: ${refused}/${tried} hostile variables refused (BASH_ENV, ENV, PATH, SHELLOPTS, LD_PRELOAD, BASH_FUNC_*), nothing ran; LC_ALL accepted under --accept-env LC_*; with --accept-env BASH_ENV the wrapper ${
        bypassed ? "is" : "is NOT"
      } bypassed (exit ${bypass.code}), as expected`,
    );
    assertEquals(refused, tried);
    assertOk(bypassed, "the control run should show the attack is real");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const canDropPrivileges = Deno.uid() === 0 && hasCommand("setpriv");

test(
  "shell attack: commands cannot read the token from /proc; binary tokens compare as bytes",
  {
    ignore: !canDropPrivileges,
  },
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "denocat-tok-" });
    await Deno.chmod(dir, 0o755);
    const denoDir = await Deno.makeTempDir({ prefix: "denocat-denodir-" });
    await Deno.chmod(denoDir, 0o777);
    const token = randomToken();
    const results: string[] = [];
    try {
      // The unprivileged user must be able to read the checkout.
      const probe = await new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "test",
          "-r",
          CLI,
        ],
      }).output();
      if (!probe.success) {
        console.log(
          `skipped the /proc part: uid 65534 cannot read ${CLI} (checkout under a private directory)`,
        );
      } else {
        for (const ffi of [true, false]) {
          await using srv = spawn("setpriv", [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            Deno.execPath(),
            "run",
            "-A",
            ...(ffi ? [] : ["--deny-ffi"]),
            CLI,
            "shell",
            "-l",
            "-v",
            "127.0.0.1",
            "0",
          ], {
            env: { DENOCAT_TOKEN: token, DENO_DIR: denoDir, HOME: "/tmp" },
            timeout: budget(60_000),
          });
          const m = await srv.waitForStderr(
            /listening on .*:(\d+)\s*$/m,
            30000,
          );
          const r = await runCli([
            "shell",
            "127.0.0.1",
            m[1]!,
            "--",
            "cat /proc/$PPID/environ | tr '\\0' '\\n'",
          ], { env: { DENOCAT_TOKEN: token } });
          const leaked = r.text.includes(token);
          // Deno opens an inspector on SIGUSR1; a command can send it. (In
          // its first 500 ms a Deno process has no SIGUSR1 handler at all
          // and the signal would kill it: wait for a settled server.)
          await sleep(1000);
          const usr1 = await runCli([
            "shell",
            "127.0.0.1",
            m[1]!,
            "--",
            "kill -USR1 $PPID; sleep 0.5; echo sent",
          ], { env: { DENOCAT_TOKEN: token } });
          assertEquals(
            usr1.text,
            "sent\n",
            `${ffi}: ${usr1.stderr}\n${srv.stderrSoFar()}`,
          );
          const inspector = /Debugger listening/.test(srv.stderrSoFar());
          results.push(
            `${ffi ? "with FFI" : "without FFI"}: SIGUSR1 from a command ${
              inspector ? "opened the inspector" : "ignored"
            }`,
          );
          assertEquals(inspector, !ffi);
          results.push(
            `${ffi ? "with FFI" : "without FFI"}: environ ${
              leaked ? "readable, token exposed" : "unreadable"
            }`,
          );
          if (ffi) {
            assertOk(!leaked, "non-dumpable server leaked its environment");
            assertOk(/Permission denied/.test(r.stderr), r.stderr);
          } else {
            // What remains without FFI, as the README says.
            assertOk(leaked, "expected the documented exposure without FFI");
            assertOk(
              srv.stderrSoFar().includes("cannot make the server non-dumpable"),
            );
          }
          srv.kill("SIGTERM");
          await srv.output;
        }
      }
      // Two different binary tokens (each invalid UTF-8) must not match.
      const a = Uint8Array.from({ length: 64 }, (_, i) => 0x80 + i);
      const b = new Uint8Array(64).fill(0xff);
      await Deno.writeFile(`${dir}/a`, a);
      await Deno.writeFile(`${dir}/b`, b);
      let mismatches = 0;
      let matches = 0;
      {
        await using srv = await startServer([
          "shell",
          "-l",
          "--token-file",
          `${dir}/a`,
          "127.0.0.1",
          "0",
        ], { timeout: budget(30_000) });
        for (let i = 0; i < scaled(3); i++) {
          const wrong = await runCli([
            "shell",
            "--token-file",
            `${dir}/b`,
            "127.0.0.1",
            String(srv.port),
            "--",
            "true",
          ]);
          if (
            wrong.code === 255 && wrong.stderr.includes("authentication failed")
          ) {
            mismatches++;
          }
          const right = await runCli([
            "shell",
            "--token-file",
            `${dir}/a`,
            "127.0.0.1",
            String(srv.port),
            "--",
            "exit 4",
          ]);
          if (right.code === 4) matches++;
        }
        srv.kill("SIGTERM");
        assertNoCrash("shell", (await srv.output).stderr);
      }
      results.push(
        `binary token files (0x80-0xbf vs all 0xff): ${mismatches}/${
          scaled(3)
        } wrong refused, ${matches}/${scaled(3)} right accepted`,
      );
      summary(`shell token: ${results.join("; ")}`);
      assertEquals([mismatches, matches], [scaled(3), scaled(3)]);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(denoDir, { recursive: true });
    }
  },
);

// Control characters, C1 and reordering marks never reach a terminal raw.
const RAW =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

test("shell attack: terminal escapes from a fake server or a client reach no terminal and forge no log line", async () => {
  const evil =
    '\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b]0;owned\x07\u009b31mred\u202egnp.exe\nexec peer=6.6.6.6:1 exit=0 duration=0.001s in=0 out=0 err=0 cmd="forged"';
  let clientChecks = 0;
  // A fake, unauthenticated server: an ERROR instead of a hello, and a
  // server without auth that refuses the command with the same text.
  for (const mode of ["error-first", "refuse-exec"]) {
    for (let i = 0; i < scaled(1); i++) {
      using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const serving = (async () => {
        const c = await l.accept();
        try {
          if (mode === "error-first") {
            await c.write(
              encodeMessage(MsgType.Error, encodeError(2, evil)),
            );
          } else {
            await c.write(
              encodeMessage(
                MsgType.ServerHello,
                encodeServerHello({ version: PROTOCOL_VERSION }),
              ),
            );
            const buf = new Uint8Array(4096);
            await c.read(buf); // client hello
            await c.write(encodeMessage(MsgType.Ready));
            await c.read(buf); // exec
            await c.write(encodeMessage(MsgType.Error, encodeError(4, evil)));
          }
          await drain(c);
        } finally {
          c.close();
        }
      })();
      const r = await runCli([
        "shell",
        "127.0.0.1",
        String((l.addr as Deno.NetAddr).port),
        "--",
        "true",
      ]);
      await serving;
      assertEquals(r.code, 255, r.stderr);
      assertOk(
        !RAW.test(r.stderr),
        `raw control text: ${JSON.stringify(r.stderr)}`,
      );
      assertEquals(r.stderr.split("\n").length, 2, r.stderr); // one line
      assertOk(r.stderr.includes("\\u001b]52;c;"), r.stderr);
      clientChecks++;
    }
  }
  // A client sending the same text in names, directories and commands.
  await using srv = await startServer([
    "shell",
    "-l",
    "--insecure-no-auth",
    "127.0.0.1",
    "0",
  ], { timeout: budget(30_000) });
  let sent = 0;
  for (let i = 0; i < scaled(1); i++) {
    await using s = await connectShell({
      hostname: "127.0.0.1",
      port: srv.port,
    });
    const tries: Array<() => Promise<unknown>> = [
      () => s.exec("true", { env: { [evil]: "v" } }),
      () => s.exec("true", { env: { A: "1" } }),
      () => s.exec("true", { cwd: `/nonexistent/${evil}` }),
      () => s.exec(`: '${evil}'`),
      () => s.exec(te.encode(`: '${evil}\xff'`)),
    ];
    for (const t of tries) {
      await t().catch(() => {});
      sent++;
    }
  }
  await sleep(200);
  srv.kill("SIGTERM");
  const out = await srv.output;
  const lines = out.stderr.split("\n").filter((l) => l !== "");
  const bad = lines.filter((l) =>
    RAW.test(l) || !/^denocat: \[\d\d:\d\d:\d\d\.\d{3}\] /.test(l)
  );
  const forged = lines.filter((l) =>
    /^denocat: \[[^\]]+\] exec peer=6\.6\.6\.6/.test(l)
  );
  summary(
    `shell escapes: ${clientChecks} fake-server errors shown escaped on one line; ${sent} hostile client strings gave ${lines.length} server log lines, ${bad.length} with raw control characters or a foreign start, ${forged.length} forged audit lines`,
  );
  assertEquals(bad, []);
  assertEquals(forged, []);
  assertOk(lines.some((l) => l.includes("\\u001b]52;c;")));
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
