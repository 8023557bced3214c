/** Demo section: TCP echo round trip and a 64 MiB stream through `denocat -l`. */
import { spawn } from "../tests/_helpers.ts";
import {
  check,
  randomBytes,
  runCli,
  says,
  section,
  sha256,
  shows,
  startServer,
} from "./_util.ts";

export async function run(): Promise<void> {
  section("TCP: echo server and client with half-close");
  await using echo = await startServer(["echo", "--upper", "127.0.0.1", "0"]);
  shows(`denocat echo --upper 127.0.0.1 ${echo.port} &`);
  shows(`echo 'hello, denocat' | denocat 127.0.0.1 ${echo.port}`);
  const r = await runCli(["127.0.0.1", String(echo.port)], {
    stdin: "hello, denocat\n",
  });
  says(r.text);
  check(
    r.code === 0,
    "client exited 0 after stdin EOF, having waited for the reply",
  );
  check(
    r.text === "HELLO, DENOCAT\n",
    "reply is the upper-cased line, byte for byte",
  );
  echo.kill("SIGTERM");
  const echoOut = await echo.output;
  check(
    echoOut.code === 0,
    "echo server stopped cleanly on SIGTERM (exit 0)",
  );
  const engine = echoOut.stderr.match(/serving on [^\n]*/)?.[0];
  if (engine) says(`(-v: ${engine})`);
  check(
    Deno.build.os !== "linux" ||
      /serving on \d+ epoll threads?/.test(engine ?? ""),
    "on Linux the echo server ran on its epoll thread(s), not the event loop",
  );

  section("TCP: 64 MiB through denocat -l, verified");
  const dir = await Deno.makeTempDir({ prefix: "denocat-demo-" });
  try {
    const data = randomBytes(64 << 20);
    await Deno.writeFile(`${dir}/random.bin`, data);
    const cli = `${q(Deno.execPath())} run -A ${
      q(new URL("../cli.ts", import.meta.url).pathname)
    }`;
    // Real shell redirections, as a user would type them: file in, file out.
    await using listener = spawn("sh", [
      "-c",
      `exec ${cli} -l -v 127.0.0.1 0 > received.bin`,
    ], { cwd: dir });
    const port =
      (await listener.waitForStderr(/listening on .*:(\d+)\s*$/m))[1];
    shows(`denocat -l 127.0.0.1 ${port} > received.bin &`);
    shows(
      `denocat 127.0.0.1 ${port} < random.bin     # 64 MiB from /dev/urandom`,
    );
    const t0 = performance.now();
    const sent = await spawn("sh", [
      "-c",
      `exec ${cli} 127.0.0.1 ${port} < random.bin`,
    ], { cwd: dir, timeout: 60000 })
      .output;
    const got = await listener.output;
    const secs = (performance.now() - t0) / 1000;
    const received = await Deno.readFile(`${dir}/received.bin`);
    says(
      `${received.length} bytes in ${
        secs.toFixed(2)
      } s, startup of the sender included`,
    );
    check(
      sent.code === 0 && got.code === 0,
      "sender and listener both exited 0",
    );
    check(
      received.length === data.length,
      `received.bin holds exactly ${data.length} bytes`,
    );
    check(
      sha256(received) === sha256(data),
      `sha256 matches on both ends (${sha256(data).slice(0, 16)}…)`,
    );
    const pumped = Number(
      got.stderr.match(/; (\d+) bytes via pump threads/)?.[1] ?? 0,
    );
    says(`(-v: the listener's pump thread moved ${pumped} of those bytes)`);
    check(
      Deno.build.os !== "linux" || pumped > 0,
      "on Linux the stream moved to the pump thread once past 4 MiB",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function q(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}
