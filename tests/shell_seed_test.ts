/**
 * `denocat shell -l --compat seed-simple|seed-json` against the seeds'
 * Python clients (tutorial 001, "simulated ssh"), run as real processes.
 *
 * The fixtures keep the seeds' protocol code line for line (send the
 * command, `recv(4)`, `struct.unpack('i', ...)`, `recv(header_size)`,
 * `json.loads`, the `recv(1024)` loop). Two adaptations make them
 * testable: commands come from argv instead of `input('>>:')`, and the
 * whole reply is written raw instead of `print(data.decode('gbk'))` (which
 * prints only the last 1024-byte chunk, a bug of the seed's).
 */
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { needs, spawn, startServer, testOnlyOn } from "./_helpers.ts";
import { seedCompatServer } from "../lib/shell/seed_compat.ts";
import type { AuditRecord } from "../lib/shell/audit.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "process groups and POSIX signals (the shell server)",
);

/** The seeds' Python clients, kept line for line in tests/fixtures/. */
const SEED_SIMPLE_CLIENT = fileURLToPath(
  new URL("./fixtures/seed_shell_simple_client.py", import.meta.url),
);
const SEED_JSON_CLIENT = fileURLToPath(
  new URL("./fixtures/seed_shell_json_client.py", import.meta.url),
);

const COMMANDS = [
  "echo hello",
  "seq 1 3000",
  "echo out; echo err >&2",
  "printf 'caf\\303\\251\\n'",
];

function expectedOutput(): string {
  let seq = "";
  for (let i = 1; i <= 3000; i++) seq += `${i}\n`;
  return `hello\n${seq}out\nerr\ncafé\n`;
}

async function runSeedClient(
  mode: "seed-simple" | "seed-json",
  script: string,
) {
  await using srv = await startServer([
    "shell",
    "-l",
    "--compat",
    mode,
    "127.0.0.1",
    "0",
  ]);
  await using client = spawn("python3", [
    script,
    String(srv.port),
    ...COMMANDS,
  ], { timeout: 15000 });
  const out = await client.output;
  // One audit line per command on the server.
  await srv.waitForStderr(/(exec peer=.*\n[^]*){4}/);
  return { out, serverLog: srv.stderrSoFar() };
}

test({
  name:
    "denocat shell --compat seed-simple: the seed's Python client works unchanged",
  ignore: needs("python3"),
  async fn() {
    const { out, serverLog } = await runSeedClient(
      "seed-simple",
      SEED_SIMPLE_CLIENT,
    );
    assertEquals(out.code, 0, out.stderr);
    assertEquals(out.text, expectedOutput());
    assertOk(/exec peer=127\.0\.0\.1:\d+ exit=0 .*cmd="seq 1 3000"/.test(
      serverLog,
    ));
  },
});

test({
  name:
    "denocat shell --compat seed-json: header with filename, md5, total_size",
  ignore: needs("python3"),
  async fn() {
    const { out } = await runSeedClient("seed-json", SEED_JSON_CLIENT);
    assertEquals(out.code, 0, out.stderr);
    assertEquals(out.text, expectedOutput());
    const headers = out.stderr.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(headers.length, COMMANDS.length);
    const hello = new TextEncoder().encode("hello\n");
    assertEquals(headers[0], {
      filename: "output",
      md5: createHash("md5").update(hello).digest("hex"),
      total_size: hello.length,
    });
  },
});

/** PIDs whose whole command line is `cmdline`. */
async function pgrep(cmdline: string): Promise<number[]> {
  const out = await new Deno.Command("pgrep", {
    args: ["-f", `^${cmdline.replaceAll(".", "\\.")}$`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean)
    .map(Number);
}

test({
  name:
    "denocat shell --compat: a seed client that leaves mid-command gets the command killed",
  ignore: needs("python3"),
  async fn() {
    const mark = `100.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    const records: AuditRecord[] = [];
    await using srv = seedCompatServer({ port: 0 }, {
      mode: "seed-simple",
      audit: (r) => records.push(r),
    });
    // The seed client's first lines, then it gives up and closes.
    await using client = spawn("python3", [
      "-c",
      `import socket, sys, time
phone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
phone.connect(('127.0.0.1', int(sys.argv[1])))
phone.send(sys.argv[2].encode('utf-8'))
time.sleep(0.5)
phone.close()`,
      String(srv.addr.port),
      `sh -c 'sleep ${mark} & sleep ${mark}'`,
    ], { timeout: 10000 });
    assertEquals((await client.output).code, 0);
    const deadline = Date.now() + 4000;
    while ((await pgrep(`sleep ${mark}`)).length > 0) {
      assertOk(Date.now() < deadline, "the sleeps outlived the client");
      await new Promise((r) => setTimeout(r, 50));
    }
    while (!records.some((r) => r.event === "exec")) {
      assertOk(Date.now() < deadline, "no audit record");
      await new Promise((r) => setTimeout(r, 20));
    }
    const rec = records.find((r) => r.event === "exec");
    assertOk(rec?.event === "exec" && rec.disconnected);
  },
});
