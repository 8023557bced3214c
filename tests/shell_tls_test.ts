/**
 * `denocat shell` over TLS with a test CA made by openssl in a temp dir.
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { needs, runCli, startServer, testOnlyOn } from "./_helpers.ts";
import { connectShell, shellServer } from "../lib/shell/mod.ts";

const test = testOnlyOn(
  ["linux", "darwin"],
  "process groups and POSIX signals (the shell server)",
);

async function sh(cwd: string, script: string): Promise<void> {
  const r = await new Deno.Command("sh", {
    args: ["-c", script],
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`openssl failed: ${new TextDecoder().decode(r.stderr)}`);
  }
}

/** A CA and a server certificate for 127.0.0.1/localhost signed by it. */
async function makeCerts(dir: string): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    // rustls refuses a CA:TRUE certificate as an end entity (PLATFORM.md).
    "basicConstraints=critical,CA:FALSE\n" +
      "subjectAltName=IP:127.0.0.1,DNS:localhost\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  const ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  await sh(
    dir,
    `openssl req -x509 ${ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=denocat-test-ca &&
     openssl req ${ec} -keyout server.key -out server.csr -subj /CN=localhost &&
     openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
       -out server.pem -days 2 -extfile server.ext &&
     openssl req -x509 ${ec} -keyout other.key -out other.pem -days 2 -subj /CN=other-ca`,
  );
}

test({
  name: "denocat shell: TLS with a test CA, refusals without it",
  ignore: needs("openssl"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await makeCerts(dir);
      await using srv = await startServer([
        "shell",
        "-l",
        "--token",
        "tls-token",
        "--tls-cert",
        `${dir}/server.pem`,
        "--tls-key",
        `${dir}/server.key`,
        "127.0.0.1",
        "0",
      ]);
      const base = [
        "shell",
        "--token",
        "tls-token",
        "127.0.0.1",
        String(srv.port),
      ];
      const ok = await runCli(
        [
          ...base,
          "--tls",
          "--ca",
          `${dir}/ca.pem`,
          "--",
          "echo secure; exit 5",
        ],
      );
      assertEquals([ok.code, ok.text], [5, "secure\n"]);

      const stdin = await runCli(
        [...base, "--tls", "--ca", `${dir}/ca.pem`, "--", "wc", "-c"],
        { stdin: "abcdef" },
      );
      assertEquals(stdin.text.trim(), "6");

      // Another CA does not vouch for this server.
      const wrongCa = await runCli(
        [...base, "--tls", "--ca", `${dir}/other.pem`, "--", "true"],
      );
      assertEquals(wrongCa.code, 255);
      assertOk(/cannot connect/.test(wrongCa.stderr), wrongCa.stderr);

      // --insecure skips verification (testing only).
      const insecure = await runCli(
        [...base, "--tls", "--insecure", "--", "echo unverified"],
      );
      assertEquals([insecure.code, insecure.text], [0, "unverified\n"]);

      // A plain-TCP client cannot talk to a TLS server.
      const plain = await runCli([...base, "-w", "1", "--", "true"]);
      assertEquals(plain.code, 255);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Milliseconds until the server ends a raw TCP connection that sends nothing. */
async function closedAfter(port: number): Promise<number> {
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // Bounded: a server that never closes fails the test after 5 s.
  const giveUp = setTimeout(() => conn.close(), 5000);
  const buf = new Uint8Array(64);
  try {
    while ((await conn.read(buf)) !== null) { /* a TLS alert, say */ }
  } catch { /* reset, or given up */ }
  clearTimeout(giveUp);
  const took = performance.now() - t0;
  try {
    conn.close();
  } catch { /* given up */ }
  return took;
}

test({
  name:
    "TLS shell server: connections that never handshake are closed at the deadline, busy or not",
  ignore: needs("openssl"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await makeCerts(dir);
      await using srv = shellServer({ port: 0 }, {
        token: "tls-token-0123456789",
        tls: {
          cert: await Deno.readTextFile(`${dir}/server.pem`),
          key: await Deno.readTextFile(`${dir}/server.key`),
        },
        handshakeTimeout: 300,
        maxSessions: 1,
      });
      const port = srv.addr.port;
      const [a, b] = await Promise.all([closedAfter(port), closedAfter(port)]);
      assertOk(a < 1500 && b < 1500, `closed after ${a} and ${b} ms`);
      // With the only session slot taken, the busy refusal is bounded too.
      await using session = await connectShell(
        { hostname: "127.0.0.1", port },
        {
          token: "tls-token-0123456789",
          tls: { caCerts: [await Deno.readTextFile(`${dir}/ca.pem`)] },
        },
      );
      assertEquals((await session.exec("exit 4")).code, 4);
      const busy = await closedAfter(port);
      assertOk(busy < 1500, `busy refusal closed after ${busy} ms`);
      assertEquals((await session.exec("exit 5")).code, 5);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
