/**
 * Demo section: the remote shell. A token-protected server, one-shot
 * commands with separate streams, stdin and exit codes, a wrong token that
 * runs nothing, a timeout that kills a whole process tree, and the seeds'
 * own Python client against the compatibility mode.
 */
import { check, runCli, says, section, shows, startServer } from "./_util.ts";

const TOKEN = "demo-token-0123456789"; // 16+ bytes: shorter tokens are warned about

async function pgrepExact(cmdline: string): Promise<number> {
  const out = await new Deno.Command("pgrep", {
    args: ["-f", `^${cmdline.replaceAll(".", "\\.")}$`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean)
    .length;
}

/** The seed's simple-header client (commands from argv instead of input()). */
const SEED_CLIENT =
  new URL("../tests/fixtures/seed_shell_simple_client.py", import.meta.url)
    .pathname;

export async function run(): Promise<void> {
  section("shell: remote commands with separate streams and exit codes");
  await using srv = await startServer([
    "shell",
    "-l",
    "--token",
    TOKEN,
    "--timeout",
    "1",
    "127.0.0.1",
    "0",
  ]);
  const port = String(srv.port);
  const base = ["shell", "--token", TOKEN, "127.0.0.1", port];
  shows(`denocat shell -l --token $T --timeout 1 127.0.0.1 ${port} &`);

  shows(
    `denocat shell --token $T 127.0.0.1 ${port} -- 'echo to-stdout; echo to-stderr >&2; exit 7'`,
  );
  const r = await runCli([
    ...base,
    "--",
    "echo to-stdout; echo to-stderr >&2; exit 7",
  ]);
  says(`stdout: ${r.text.trim()}\nstderr: ${r.stderr.trim()}\nexit: ${r.code}`);
  check(
    r.text === "to-stdout\n" && r.stderr === "to-stderr\n",
    "stdout and stderr arrive separately",
  );
  check(r.code === 7, "the client exits with the remote exit code (7)");

  shows(`printf abc | denocat shell --token $T 127.0.0.1 ${port} -- wc -c`);
  const wc = await runCli([...base, "--", "wc", "-c"], { stdin: "abc" });
  says(wc.text);
  check(wc.text.trim() === "3", "stdin is forwarded, with EOF");

  shows(`denocat shell --token $T 127.0.0.1 ${port} -- 'kill -TERM $$'`);
  const sig = await runCli([...base, "--", "kill -TERM $$"]);
  check(sig.code === 143, "death by SIGTERM exits 128+15 = 143");

  const dir = await Deno.makeTempDir();
  try {
    const marker = `${dir}/pwned`;
    shows(`denocat shell --token wrong 127.0.0.1 ${port} -- touch pwned`);
    const bad = await runCli([
      "shell",
      "--token",
      "wrong",
      "127.0.0.1",
      port,
      "--",
      "touch",
      marker,
    ]);
    says(bad.stderr);
    const exists = await Deno.stat(marker).then(() => true, () => false);
    check(
      bad.code === 255 && !exists,
      "a wrong token exits 255 and runs nothing (no file created)",
    );
    check(
      /auth-failed peer=127\.0\.0\.1/.test(srv.stderrSoFar()),
      "the server logged the failed attempt with the peer address",
    );

    const mark = `99.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    shows(
      `denocat shell --token $T 127.0.0.1 ${port} -- "sh -c 'sleep ${mark} & sleep ${mark}'"`,
    );
    const slow = await runCli([
      ...base,
      "--",
      `sh -c 'sleep ${mark} & sleep ${mark}'`,
    ]);
    says(slow.stderr);
    await new Promise((r) => setTimeout(r, 200));
    check(
      slow.code === 143 && /timed out/.test(slow.stderr),
      "the 1 s timeout ended the command (exit 143, reported)",
    );
    check(
      (await pgrepExact(`sleep ${mark}`)) === 0,
      "both sleeps, grandchildren of the shell, are gone (pgrep finds none)",
    );
    says(
      srv.stderrSoFar().split("\n").filter((l) => / exec peer=/.test(l))
        .at(-1)!.replace(/^denocat: \[[^\]]*\] /, "audit: "),
    );

    section("shell: the seeds' Python client against --compat seed-simple");
    await using seed = await startServer([
      "shell",
      "-l",
      "--compat",
      "seed-simple",
      "127.0.0.1",
      "0",
    ]);
    const script = SEED_CLIENT;
    shows(`denocat shell -l --compat seed-simple 127.0.0.1 ${seed.port} &`);
    shows(`python3 seed_client.py ${seed.port} 'echo hello' 'seq 1 500'`);
    const py = await new Deno.Command("python3", {
      args: [script, String(seed.port), "echo hello", "seq 1 500"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(py.stdout);
    const expected = "hello\n" +
      Array.from({ length: 500 }, (_, i) => `${i + 1}\n`).join("");
    says(
      `${text.split("\n").slice(0, 3).join("\n")}\n… (${text.length} bytes)`,
    );
    check(
      py.success && text === expected,
      "the seed client got every byte, past its 1024-byte recv loop",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
