/**
 * `denocat shell` end to end: the server and the clients as users run them
 * (`deno run -A cli.ts shell ...`), over loopback.
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { runCli, startCli, startServer, testOnlyOn } from "./_helpers.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "process groups and POSIX signals (the shell server)",
);

const SRV = ["shell", "-l", "--insecure-no-auth", "127.0.0.1", "0"];

function client(port: number, ...rest: string[]): string[] {
  return ["shell", "127.0.0.1", String(port), ...rest];
}

test("denocat shell: exit codes 0, 7 and a signal (128+N)", async () => {
  await using srv = await startServer(SRV);
  const zero = await runCli(client(srv.port, "--", "true"));
  assertEquals(zero.code, 0);
  const seven = await runCli(client(srv.port, "--", "exit", "7"));
  assertEquals(seven.code, 7);
  const sig = await runCli(client(srv.port, "--", "kill -TERM $$"));
  assertEquals(sig.code, 143);
  // Audit lines reach us through the server's stderr pipe, maybe after the client exits.
  await srv.waitForStderr(/exec peer=127\.0\.0\.1:\d+ exit=7 .*cmd="exit 7"/);
  await srv.waitForStderr(/exit=143 signal=SIGTERM/);
});

test("denocat shell: stdout and stderr kept apart", async () => {
  await using srv = await startServer(SRV);
  const r = await runCli(
    client(srv.port, "--", "echo to-out; echo to-err >&2; echo more-out"),
  );
  assertEquals(r.code, 0);
  assertEquals(r.text, "to-out\nmore-out\n");
  assertEquals(r.stderr, "to-err\n");
});

test("denocat shell: stdin forwarded (printf abc | ... -- wc -c prints 3)", async () => {
  await using srv = await startServer(SRV);
  const r = await runCli(client(srv.port, "--", "wc", "-c"), { stdin: "abc" });
  assertEquals(r.code, 0);
  assertEquals(r.text.trim(), "3");
  const none = await runCli(client(srv.port, "-n", "--", "wc", "-c"), {
    stdin: "abc",
  });
  assertEquals(none.text.trim(), "0");
});

test("denocat shell: interactive prompt, statuses, exit", async () => {
  await using srv = await startServer(SRV);
  const r = await runCli(client(srv.port), {
    stdin: "echo one\n\nexit 3\nkill -KILL $$\nexit\necho never\n",
  });
  assertEquals(r.code, 0);
  assertEquals(r.text, "one\n");
  const prompt = `denocat 127.0.0.1:${srv.port}> `;
  assertEquals(
    r.stderr,
    `${prompt}${prompt}${prompt}[exit 3]\n${prompt}[killed by SIGKILL]\n${prompt}`,
  );
  const eof = await runCli(client(srv.port), { stdin: "echo last" });
  assertEquals([eof.code, eof.text], [0, "last\n"]);
});

test("denocat shell: a wrong token runs nothing, exit 255, audited", async () => {
  const dir = await Deno.makeTempDir();
  const marker = `${dir}/ran`;
  try {
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, "s3cret-s3cret-s3cret\n");
    await using srv = await startServer([
      "shell",
      "-l",
      "--token-file",
      tokenFile,
      "127.0.0.1",
      "0",
    ]);
    const bad = await runCli(
      client(srv.port, "--token", "wrong-wrong-wrong", "--", "touch", marker),
    );
    assertEquals(bad.code, 255);
    assertEquals(bad.stderr, "denocat: authentication failed\n");
    const none = await runCli(client(srv.port, "--", "touch", marker));
    assertEquals(none.code, 255);
    assertOk(/needs a token/.test(none.stderr), none.stderr);
    assertEquals(await Deno.stat(marker).catch(() => null), null);
    await srv.waitForStderr(
      /auth-failed peer=127\.0\.0\.1:\d+ .*reason="wrong token"/,
    );
    // The token from the environment works.
    const good = await runCli(client(srv.port, "--", "touch", marker), {
      env: { DENOCAT_TOKEN: "s3cret-s3cret-s3cret" },
    });
    assertEquals(good.code, 0);
    assertEquals(good.stderr, "");
    assertOk(await Deno.stat(marker));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("denocat shell: commands do not inherit DENOCAT_TOKEN; short tokens warn once", async () => {
  const token = "env-token-0123456789";
  await using srv = await startServer([
    "shell",
    "-l",
    "--accept-env",
    "DENOCAT_TOKEN",
    "127.0.0.1",
    "0",
  ], { env: { DENOCAT_TOKEN: token } });
  const r = await runCli(
    client(srv.port, "--", "echo ${DENOCAT_TOKEN-unset}; env"),
    { env: { DENOCAT_TOKEN: token } },
  );
  assertEquals(r.code, 0);
  assertEquals(r.text.split("\n")[0], "unset");
  assertOk(!r.text.includes(token), "the token leaked into the environment");
  // A client may still pass it on deliberately.
  const own = await runCli(
    client(srv.port, "-e", "DENOCAT_TOKEN=mine", "--", "echo $DENOCAT_TOKEN"),
    { env: { DENOCAT_TOKEN: token } },
  );
  assertEquals(own.text, "mine\n");
  const short = await runCli(
    client(srv.port, "--token", "short", "--", "true"),
  );
  assertEquals(short.code, 255);
  assertEquals(
    short.stderr,
    "denocat: warning: the token is 5 bytes; use at least 16 random bytes (e.g. openssl rand -hex 16)\n" +
      "denocat: authentication failed\n",
  );
});

test("denocat shell -l: refuses 0.0.0.0 without a token (exit 2)", async () => {
  const r = await runCli(["shell", "-l", "0.0.0.0", "0"]);
  assertEquals(r.code, 2);
  assertOk(/refusing to listen on 0\.0\.0\.0 without a token/.test(r.stderr));
  const insecure = await runCli([
    "shell",
    "-l",
    "--insecure-no-auth",
    "0.0.0.0",
    "0",
  ]);
  assertEquals(insecure.code, 2);
  assertOk(/--insecure-no-auth on 0\.0\.0\.0: allowed on loopback only/.test(
    insecure.stderr,
  ));
  const compat = await runCli([
    "shell",
    "-l",
    "--compat",
    "seed-simple",
    "0.0.0.0",
    "0",
  ]);
  assertEquals(compat.code, 2);
  const loopNoAuth = await runCli(["shell", "-l", "127.0.0.1", "0"]);
  assertEquals(loopNoAuth.code, 2);
  assertOk(/--insecure-no-auth/.test(loopNoAuth.stderr));
});

test("denocat shell: sessions beyond the limit get a clear error", async () => {
  await using srv = await startServer([
    "shell",
    "-l",
    "--insecure-no-auth",
    "--max-sessions",
    "1",
    "127.0.0.1",
    "0",
  ]);
  // One interactive client holds the only session.
  await using holder = startCli(client(srv.port), { keepStdin: true });
  await holder.waitForStderr(/denocat 127\.0\.0\.1:\d+> /);
  const r = await runCli(client(srv.port, "--", "true"));
  assertEquals(r.code, 255);
  assertEquals(
    r.stderr,
    "denocat: server busy: 1 sessions active, limit 1\n",
  );
  await holder.stdin!.close();
  assertEquals((await holder.output).code, 0);
});

test("denocat shell: timeout reported, client exits 128+15", async () => {
  await using srv = await startServer([
    "shell",
    "-l",
    "--insecure-no-auth",
    "--timeout",
    "0.5",
    "127.0.0.1",
    "0",
  ]);
  const r = await runCli(client(srv.port, "--", "sleep 30"));
  assertEquals(r.code, 143);
  assertOk(/timed out/.test(r.stderr), r.stderr);
});

test("denocat shell -l --log-json: JSON audit lines at the start and end of a command", async () => {
  await using srv = await startServer([
    "shell",
    "-l",
    "--insecure-no-auth",
    "--log-json",
    "127.0.0.1",
    "0",
  ]);
  await runCli(client(srv.port, "--", "printf 12345; exit 2"), {
    stdin: "xy",
  });
  // The audit line is written once the session's command ends; the client may
  // exit before the server's stderr reaches us.
  const line =
    (await srv.waitForStderr(/^\{"time[^\n]*"event":"exec".*\}$/m))[0];
  const rec = JSON.parse(line);
  assertEquals(
    [rec.event, rec.exit, rec.command, rec.bytesIn, rec.bytesOut],
    ["exec", 2, "printf 12345; exit 2", 2, 5],
  );
  assertOk(/^127\.0\.0\.1:\d+$/.test(rec.peer));
  const start = JSON.parse(
    (await srv.waitForStderr(/^\{[^\n]*"event":"exec-start".*\}$/m))[0],
  );
  assertEquals([start.command, start.pty], ["printf 12345; exit 2", false]);
  assertOk(Number.isInteger(start.pid) && start.pid > 1);
});

test("denocat shell: usage errors exit 2, connection failures 255", async () => {
  const r = await runCli([
    "shell",
    "127.0.0.1",
    "1",
    "--timeout",
    "3",
    "--",
    "x",
  ]);
  assertEquals(r.code, 2);
  const refused = await runCli(["shell", "127.0.0.1", "1", "--", "true"]);
  assertEquals(refused.code, 255);
  assertOk(/cannot connect to 127\.0\.0\.1:1: connection refused/.test(
    refused.stderr,
  ));
  // New flags, each a one-line usage error.
  const cases: Array<[string[], RegExp]> = [
    [
      ["shell", "-t", "127.0.0.1", "1"],
      /^denocat: -t needs a terminal on stdin\n$/,
    ],
    [["shell", "-t", "-n", "127.0.0.1", "1"], /^denocat: -t and --no-stdin/],
    [
      ["shell", "-l", "--accept-env", "A=B", "--insecure-no-auth", "0"],
      /^denocat: invalid --accept-env pattern "A=B": names, \* and \? only\n$/,
    ],
    [
      ["shell", "-l", "--accept-env", "LC_*", "--no-client-env", "0"],
      /^denocat: --accept-env and --no-client-env contradict\n$/,
    ],
    [["shell", "--accept-env", "X", "127.0.0.1", "1"], /is a server option/],
  ];
  for (const [args, re] of cases) {
    const u = await runCli(args);
    assertEquals(u.code, 2, `${args.join(" ")}: ${u.stderr}`);
    assertOk(re.test(u.stderr), `${args.join(" ")}: ${u.stderr}`);
  }
  const help = await runCli(["shell", "--help"]);
  assertOk(
    help.text.includes("the words after -- are joined with single spaces"),
  );
});

test("denocat shell -l --allow/--deny: a refused client is closed unread and logged; an allowed one is served", async () => {
  {
    await using srv = await startServer([
      "shell",
      "-l",
      "--insecure-no-auth",
      "--deny",
      "127.0.0.1",
      "127.0.0.1",
      "0",
    ]);
    await srv.waitForStderr(/access list: /);
    const r = await runCli(client(srv.port, "--", "echo ran"));
    assertEquals(r.code, 255, r.stderr);
    assertEquals(r.text, "");
    assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
    await srv.waitForStderr(
      /peer=127\.0\.0\.1:\d+ .*refused by the access list \(1 refused so far\)/,
    );
    assertOk(!srv.stderrSoFar().includes("exec-start"), srv.stderrSoFar());
  }
  {
    await using srv = await startServer([
      "shell",
      "-l",
      "--insecure-no-auth",
      "--allow",
      "127.0.0.0/8",
      "127.0.0.1",
      "0",
    ]);
    const r = await runCli(client(srv.port, "--", "echo ran"));
    assertEquals([r.code, r.text], [0, "ran\n"], r.stderr);
  }
  const compat = await runCli([
    "shell",
    "-l",
    "--compat",
    "seed-simple",
    "--allow",
    "127.0.0.1",
    "127.0.0.1",
    "0",
  ]);
  assertEquals(compat.code, 2);
  assertOk(compat.stderr.includes("--allow does not apply to --compat"));
});
