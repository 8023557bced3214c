/** Demo section: verified transfer with `denocat send` / `denocat recv`. */
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
  section("Transfer: a directory tree, verified, into a receiver's directory");
  const work = await Deno.makeTempDir({ prefix: "denocat-demo-" });
  try {
    await Deno.mkdir(`${work}/photos/2024`, { recursive: true });
    const big = randomBytes(16 << 20);
    await Deno.writeFile(`${work}/photos/2024/été.raw`, big);
    await Deno.writeTextFile(`${work}/photos/notes.txt`, "keep these\n");
    await using recv = await startServer([
      "recv",
      "-k",
      "-o",
      `${work}/inbox`,
      "127.0.0.1",
      "0",
    ]);
    shows(`denocat recv -k -o inbox 127.0.0.1 ${recv.port} &`);
    shows(`denocat send -v -r 127.0.0.1 ${recv.port} photos`);
    const sent = await runCli(
      ["send", "-v", "-r", "127.0.0.1", String(recv.port), `${work}/photos`],
      { timeout: 60000 },
    );
    says(sent.stderr.replace(/denocat: \[[^\]]+\] /g, ""));
    check(
      sent.code === 0,
      "send exited 0: every item acknowledged as written and verified",
    );
    check(
      sha256(await Deno.readFile(`${work}/inbox/photos/2024/été.raw`)) ===
        sha256(big),
      "inbox/photos/2024/été.raw has the sender's sha256 (16 MiB, unicode name)",
    );

    section("Transfer: a name clash is refused and reported to the sender");
    shows(
      `echo 'a different note' | denocat send --name photos/notes.txt 127.0.0.1 ${recv.port} -`,
    );
    const clash = await runCli([
      "send",
      "--name",
      "photos/notes.txt",
      "127.0.0.1",
      String(recv.port),
      "-",
    ], { stdin: "a different note\n" });
    says(clash.stderr);
    check(clash.code === 1, "send exited 1 with the receiver's reason");
    check(
      (await Deno.readTextFile(`${work}/inbox/photos/notes.txt`)) ===
        "keep these\n",
      "the existing file is untouched",
    );

    section("Transfer: a hostile name never leaves the target directory");
    shows(
      `echo '* * * * * root sh' | denocat send --name ../../etc/cron.d/evil 127.0.0.1 ${recv.port} -`,
    );
    const evil = await runCli([
      "send",
      "--name",
      "../../etc/cron.d/evil",
      "127.0.0.1",
      String(recv.port),
      "-",
    ], { stdin: "* * * * * root sh\n" });
    says(evil.stderr);
    check(evil.code === 1, "refused: the sender is told why, exit 1");
    const leftovers = [...Deno.readDirSync(`${work}/inbox`)].map((e) => e.name);
    check(
      leftovers.length === 1 && leftovers[0] === "photos",
      "inbox holds only photos/ (no temporary files, nothing outside)",
    );
    recv.kill("SIGTERM");
    check(
      (await recv.output).code === 0,
      "the -k receiver stopped cleanly on SIGTERM",
    );

    section("Transfer: a stream from stdin to stdout, checked");
    const data = randomBytes(4 << 20);
    await using pipe = await startServer(["recv", "127.0.0.1", "0"]);
    shows(`denocat recv 127.0.0.1 ${pipe.port} > copy.bin &`);
    shows(`head -c 4M /dev/urandom | denocat send 127.0.0.1 ${pipe.port}`);
    const s = await runCli(["send", "127.0.0.1", String(pipe.port)], {
      stdin: data,
    });
    const got = await pipe.output;
    check(
      s.code === 0 && got.code === 0,
      "both exited 0 (recv would exit 3 if the stream failed verification)",
    );
    check(
      sha256(got.stdout) === sha256(data),
      "stdout is the same 4 MiB, byte for byte",
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
