/**
 * Faults: senders and receivers SIGKILLed at random points, and shell
 * clients that vanish mid-command. Nothing unverified under a final name,
 * no temporary file left, a clear one-line error and exit code on the
 * surviving side, and the next transfer succeeds.
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { TEMP_NAME } from "../../lib/transfer/stale.ts";
import {
  randomBytes,
  runCli,
  sha256,
  startCli,
  startServer,
  testOnlyOn,
} from "../_helpers.ts";
import { scaled } from "./_scale.ts";
import {
  assertNoCrash,
  pidsWith,
  pool,
  sleep,
  summary,
  waitUntil,
} from "./_util.ts";

const test = testOnlyOn(
  ["linux"],
  "/proc (the reliability checks read memory and processes there)",
);

const SIZE = 24 * 1024 * 1024;

/** Every file under `dir` (relative names). */
function listing(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) out.push(...listing(`${dir}/${e.name}`, `${e.name}/`));
    else out.push(prefix + e.name);
  }
  return out;
}

/** Files under final names whose content is not what was sent. */
async function unverified(out: string, sums: Map<string, string>) {
  const bad: string[] = [];
  for (const name of listing(out)) {
    if (TEMP_NAME.test(name.split("/").at(-1)!)) continue;
    const want = sums.get(name);
    if (
      want === undefined ||
      sha256(await Deno.readFile(`${out}/${name}`)) !== want
    ) {
      bad.push(name);
    }
  }
  return bad;
}

const temps = (out: string) =>
  listing(out).filter((n) => TEMP_NAME.test(n.split("/").at(-1)!));

/** A one-line `denocat: ...` error, nothing else. */
function oneLine(stderr: string): boolean {
  return /^denocat: [^\n]+\n$/.test(stderr);
}

/** A random delay: before connecting, at the start, or deep in the body. */
const killDelay = () => Math.floor(Math.random() * 500);

interface Round {
  survived: boolean;
  partial: number;
  stale: number;
  note?: string;
}

/** Sends `data` as stdin item `name`; resolves with the process output. */
function sendStdin(port: number, name: string, data: Uint8Array) {
  return startCli(["send", "--name", name, "127.0.0.1", String(port), "-"], {
    timeout: 60_000,
    stdin: data,
  });
}

/** The next transfer after a fault, into `out`, must succeed. */
async function nextTransfer(
  out: string,
  sums: Map<string, string>,
  name: string,
  small: Uint8Array,
  server?: Awaited<ReturnType<typeof startServer>>,
): Promise<string | undefined> {
  await using recv = server ??
    await startServer(["recv", "-o", out, "0"], { timeout: 60_000 });
  sums.set(name, sha256(small));
  await using send = sendStdin(recv.port, name, small);
  const r = await send.output;
  const n = await recv.output;
  assertNoCrash("recv", n.stderr);
  if (r.code !== 0 || n.code !== 0) {
    return `next transfer: send ${r.code} ${r.stderr}recv ${n.code} ${n.stderr}`;
  }
  return undefined;
}

/** The sender dies at a random point; the receiver (single mode) reports it. */
async function senderKilled(
  out: string,
  data: Uint8Array,
  small: Uint8Array,
): Promise<Round> {
  const sums = new Map([["big.bin", sha256(data)]]);
  const recv = await startServer(["recv", "-o", out, "0"], {
    timeout: 60_000,
  });
  let note: string | undefined;
  try {
    const send = sendStdin(recv.port, "big.bin", data);
    await sleep(killDelay());
    send.kill("SIGKILL");
    await send.output;
    await sleep(50);
    // A sender killed before it connected leaves the receiver waiting: the
    // next transfer is then served by that same receiver.
    const connected = /connection from/.test(recv.stderrSoFar());
    if (connected) {
      const r = await recv.output;
      const errors = r.stderr.split("\n").filter((l) =>
        l && !/^denocat: \[/.test(l)
      );
      // 0 if the whole file went through before the kill.
      if (!(r.code === 0 || r.code === 1 && errors.length === 1)) {
        note = `recv after sender kill: ${r.code} ${r.stderr}`;
      }
      assertNoCrash("recv", r.stderr);
    }
    const partial = (await unverified(out, sums)).length;
    const stale = temps(out).length;
    note ??= await nextTransfer(
      out,
      sums,
      "next.bin",
      small,
      connected ? undefined : recv,
    );
    return {
      survived: note === undefined,
      partial,
      stale,
      ...(note ? { note } : {}),
    };
  } finally {
    await recv[Symbol.asyncDispose]();
  }
}

/** The receiver dies at a random point; the sender reports one line, exit 1. */
async function receiverKilled(
  out: string,
  src: string,
  sum: string,
  small: Uint8Array,
): Promise<Round> {
  const sums = new Map([["big.bin", sum]]);
  const recv = await startServer(["recv", "-o", out, "0"], {
    timeout: 60_000,
  });
  await using send = startCli([
    "send",
    "127.0.0.1",
    String(recv.port),
    src,
  ], { timeout: 60_000 });
  await sleep(killDelay());
  recv.kill("SIGKILL");
  await recv[Symbol.asyncDispose]();
  const s = await send.output;
  let note: string | undefined;
  if (!(s.code === 0 || s.code === 1 && oneLine(s.stderr))) {
    note = `send after receiver kill: ${s.code} ${JSON.stringify(s.stderr)}`;
  }
  const partial = (await unverified(out, sums)).length;
  // The next receiver removes what the dead one left.
  note ??= await nextTransfer(out, sums, "next.bin", small);
  const stale = temps(out).length;
  return {
    survived: note === undefined,
    partial,
    stale,
    ...(note ? { note } : {}),
  };
}

test("faults: senders, then receivers, SIGKILLed at random points", async () => {
  const rounds = scaled(20);
  const dir = await Deno.makeTempDir({ prefix: "denocat-faults-" });
  const src = `${dir}/big.bin`;
  const data = randomBytes(SIZE);
  await Deno.writeFile(src, data);
  const small = randomBytes(100_000);
  try {
    const senders = await pool(
      rounds,
      3,
      (i) => senderKilled(`${dir}/s${i}`, data, small),
    );
    const receivers = await pool(
      rounds,
      3,
      (i) => receiverKilled(`${dir}/r${i}`, src, sha256(data), small),
    );
    const all = [...senders, ...receivers];
    const survived = all.filter((r) => r.survived).length;
    const partial = all.reduce((a, r) => a + r.partial, 0);
    const stale = all.reduce((a, r) => a + r.stale, 0);
    summary(
      `faults: ${survived}/${all.length} survived, ${partial} partial files, ${stale} temp files left`,
    );
    assertEquals(all.flatMap((r) => r.note ?? []), []);
    assertEquals(partial, 0);
    assertEquals(stale, 0);
    assertEquals(survived, all.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("faults: a shell client SIGKILLed mid-command leaves no process behind", async () => {
  const rounds = scaled(4);
  await using server = await startServer([
    "shell",
    "-l",
    "--token",
    "reliability",
    "0",
  ], { timeout: 120_000 });
  let clean = 0;
  for (let i = 0; i < rounds; i++) {
    // A unique duration is the marker: sleep and the shell running it carry it.
    const marker = `1000.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    const client = startCli([
      "shell",
      "--token",
      "reliability",
      "127.0.0.1",
      String(server.port),
      "--",
      `sleep ${marker}; sleep ${marker}`,
    ], { timeout: 30_000 });
    // The check can fail: the command's processes are seen running first.
    const running = await waitUntil(
      () => pidsWith(marker).filter((p) => p !== client.child.pid).length >= 2,
      10_000,
    );
    assertOk(running, "the remote command did not start");
    client.kill("SIGKILL");
    await client.output;
    if (await waitUntil(() => pidsWith(marker).length === 0, 8000)) clean++;
  }
  // The server is still good.
  const r = await runCli([
    "shell",
    "--token",
    "reliability",
    "127.0.0.1",
    String(server.port),
    "--",
    "exit 3",
  ]);
  summary(`faults: shell ${clean}/${rounds} vanished clients left no process`);
  assertEquals(clean, rounds);
  assertEquals(r.code, 3);
  server.kill("SIGTERM");
  const out = await server.output;
  assertNoCrash("shell", out.stderr);
});
