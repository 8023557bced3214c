/**
 * `denocat … | head` (issue 14, item 5): when the reader of stdout goes
 * away, every mode that prints stops quietly with exit 0, as nc does.
 * Each case runs under bash with coreutils' head and reads denocat's own
 * exit code from PIPESTATUS.
 */
import { fileURLToPath } from "node:url";
import { assertEquals } from "../lib/_assert.ts";
import {
  freePort,
  needs,
  randomBytes,
  spawn,
  startServer,
  waitForListen,
} from "./_helpers.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

/**
 * Runs `denocat ARGS [<STDIN] | head HEAD_ARGS >/dev/null` and returns
 * denocat's exit code and stderr.
 */
async function throughHead(
  args: string[],
  headArgs: string,
  stdinFile?: string,
): Promise<{ code: number; stderr: string }> {
  const errFile = await Deno.makeTempFile({ prefix: "denocat-head-" });
  const r = await spawn("bash", [
    "-c",
    `"$0" run -A "$1" "\${@:2}" 2>"$ERRFILE" ${
      stdinFile ? `<"$INFILE"` : "</dev/null"
    } | head ${headArgs} >/dev/null; echo "\${PIPESTATUS[0]}"; cat "$ERRFILE"`,
    Deno.execPath(),
    CLI,
    ...args,
  ], {
    env: {
      ERRFILE: errFile,
      ...(stdinFile ? { INFILE: stdinFile } : {}),
    },
    timeout: 30000,
  }).output.finally(() => Deno.remove(errFile));
  assertEquals(r.code, 0, r.stderr);
  const [code, ...rest] = r.text.split("\n");
  return { code: Number(code), stderr: rest.join("\n") };
}

async function bigFile(): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "denocat-head-" });
  await Deno.writeFile(path, randomBytes(8 << 20));
  return path;
}

const PEERS = needs("bash", "head", "ss");

Deno.test("| head: the TCP client ends quietly with exit 0", {
  ignore: PEERS,
}, async () => {
  const file = await bigFile();
  try {
    await using echo = await startServer(["echo", "127.0.0.1", "0"]);
    const r = await throughHead(
      ["127.0.0.1", String(echo.port)],
      "-c 100",
      file,
    );
    assertEquals(r, { code: 0, stderr: "" });
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("| head: -l and -l -k end quietly with exit 0", {
  ignore: PEERS,
}, async () => {
  const file = await bigFile();
  try {
    for (const keep of [[], ["-k"]]) {
      const port = freePort();
      const listener = throughHead(
        ["-l", ...keep, "127.0.0.1", String(port)],
        "-c 100",
      );
      await waitForListen(port);
      const data = await Deno.readFile(file);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      // The listener stops reading once head is gone: writes then fail or
      // stall, and its close ends them.
      await conn.write(data).catch(() => {});
      conn.close();
      assertEquals(await listener, { code: 0, stderr: "" }, keep.join(""));
    }
  } finally {
    await Deno.remove(file);
  }
});

Deno.test(
  "| head: -u client, -l --frame, recv, shell and probe end quietly with exit 0",
  {
    ignore: PEERS,
  },
  async () => {
    const file = await bigFile();
    try {
      await using udpEcho = await startServer(["echo", "-u", "127.0.0.1", "0"]);
      const lines = await Deno.makeTempFile({ prefix: "denocat-head-" });
      await Deno.writeTextFile(lines, "line\n".repeat(2000));
      try {
        assertEquals(
          await throughHead(
            ["-u", "127.0.0.1", String(udpEcho.port)],
            "-1",
            lines,
          ),
          { code: 0, stderr: "" },
          "-u",
        );
      } finally {
        await Deno.remove(lines);
      }
      assertEquals(
        await throughHead([
          "probe",
          "-u",
          "-c",
          "200",
          "-i",
          "0.005",
          "127.0.0.1",
          String(udpEcho.port),
        ], "-1"),
        { code: 0, stderr: "" },
        "probe",
      );

      await using shell = await startServer([
        "shell",
        "-l",
        "--insecure-no-auth",
        "127.0.0.1",
        "0",
      ]);
      assertEquals(
        await throughHead([
          "shell",
          "127.0.0.1",
          String(shell.port),
          "--",
          "head -c 20000000 /dev/zero",
        ], "-c 100"),
        { code: 0, stderr: "" },
        "shell",
      );

      for (
        const [server, sender] of [
          [["-l", "--frame", "u32be", "--output", "hex"], [
            "--frame",
            "u32be",
            "--split",
            "chunk",
          ]],
          [["recv"], ["send"]],
        ] as const
      ) {
        const port = freePort();
        const out = throughHead([...server, "127.0.0.1", String(port)], "-1");
        await waitForListen(port);
        // The sender may fail (the receiver stopped); what matters here is
        // the side whose stdout closed.
        await spawn(Deno.execPath(), [
          "run",
          "-A",
          CLI,
          ...sender,
          "127.0.0.1",
          String(port),
          ...(sender[0] === "send" ? [file] : []),
        ], { stdin: await Deno.readFile(file), timeout: 30000 }).output;
        assertEquals(await out, { code: 0, stderr: "" }, server[0]);
      }
    } finally {
      await Deno.remove(file);
    }
  },
);
