/** Demo section: TCP echo round trip and a 64 MiB stream through `denocat -l`. */
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
  check(
    (await echo.output).code === 0,
    "echo server stopped cleanly on SIGTERM (exit 0)",
  );

  section("TCP: 64 MiB through denocat -l, verified");
  const data = randomBytes(64 << 20);
  await using listener = await startServer(["-l", "127.0.0.1", "0"]);
  shows(`denocat -l 127.0.0.1 ${listener.port} > received.bin &`);
  shows(`head -c 64M /dev/urandom | denocat 127.0.0.1 ${listener.port}`);
  const t0 = performance.now();
  const sent = await runCli(["127.0.0.1", String(listener.port)], {
    stdin: data,
    timeout: 60000,
  });
  const got = await listener.output;
  const secs = (performance.now() - t0) / 1000;
  says(
    `${got.stdout.length} bytes in ${secs.toFixed(2)} s (${
      (data.length / 1e6 / secs).toFixed(0)
    } MB/s, both processes' startup included)`,
  );
  check(sent.code === 0 && got.code === 0, "sender and listener both exited 0");
  check(
    got.stdout.length === data.length,
    `listener wrote exactly ${data.length} bytes`,
  );
  check(
    sha256(got.stdout) === sha256(data),
    `sha256 matches on both ends (${sha256(data).slice(0, 16)}…)`,
  );
}
