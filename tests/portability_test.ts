/**
 * What each platform gets: the Windows-only refusals run on Windows (and
 * are ignored elsewhere with the reason printed); the rules that guard
 * Windows file names are pure and run everywhere.
 */
import { assertEquals, assertOk, assertThrows } from "../lib/_assert.ts";
import { checkName, UnsafeNameError } from "../lib/transfer/names.ts";
import { runCli, startServer, testOnlyOn } from "./_helpers.ts";

const onWindows = testOnlyOn(
  ["windows"],
  "Windows (these check its one-line refusals)",
);

Deno.test("checkName() on windows refuses names Windows would read as something else", () => {
  for (
    const bad of [
      "C:evil",
      "report.txt:hidden",
      "dir/NUL",
      "con.txt",
      "sub/Com1.log",
      "lpt9",
      "trailing.",
      "trailing ",
      "a/b?.txt",
      "pipe|name",
    ]
  ) {
    assertThrows(
      () => checkName(bad, "windows"),
      UnsafeNameError,
      "not a plain file name on windows",
    );
  }
  assertEquals(checkName("dir/console.txt", "windows"), ["dir", "console.txt"]);
  assertEquals(checkName("com10.txt", "windows"), ["com10.txt"]);
  // The same names are ordinary on Linux and macOS.
  assertEquals(checkName("12:00 backup/con.txt", "linux"), [
    "12:00 backup",
    "con.txt",
  ]);
  assertEquals(checkName("trailing.", "darwin"), ["trailing."]);
});

onWindows(
  "denocat -U on windows: one line saying Unix sockets are missing",
  async () => {
    for (const args of [["-U", "x.sock"], ["-l", "-U", "x.sock"]]) {
      const r = await runCli(args);
      assertEquals(r.code, 1);
      assertOk(
        /^denocat: cannot (connect to|listen on) x\.sock: Unix sockets are not available on windows\r?\n$/
          .test(r.stderr),
        r.stderr,
      );
    }
  },
);

onWindows(
  "denocat shell -l on windows: one line saying process groups are missing",
  async () => {
    const r = await runCli(["shell", "-l", "127.0.0.1", "0"]);
    assertEquals(r.code, 1);
    assertEquals(
      r.stderr.trimEnd(),
      "denocat: cannot run commands: process groups are not available on windows (the shell server runs on Linux and macOS)",
    );
  },
);

onWindows(
  "denocat echo starts on windows (Ctrl-C handlers only, no SIGTERM)",
  async () => {
    // Registering SIGTERM would throw on Windows; the server must start.
    const r = await runCli(["echo", "-v", "127.0.0.1", "0"], { timeout: 2000 });
    assertOk(r.stderr.includes("listening on 127.0.0.1:"), r.stderr);
  },
);

onWindows(
  "denocat send on windows names a file by its base name after a backslash",
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.mkdir(`${dir}\\in`);
      await Deno.mkdir(`${dir}\\out`);
      await Deno.writeTextFile(`${dir}\\in\\payload.txt`, "windows");
      await using recv = await startServer([
        "recv",
        "-o",
        `${dir}\\out`,
        "127.0.0.1",
        "0",
      ]);
      const r = await runCli([
        "send",
        "127.0.0.1",
        String(recv.port),
        `${dir}\\in\\payload.txt`,
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await recv.output.then((o) => o.code), 0);
      assertEquals(
        await Deno.readTextFile(`${dir}\\out\\payload.txt`),
        "windows",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
