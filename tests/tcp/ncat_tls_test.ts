/**
 * TLS against ncat (Debian's `ncat`, OpenSSL inside) both ways: denocat
 * `--ssl` connecting to `ncat --ssl -l`, and `ncat --ssl` (with and without
 * `--ssl-verify`) connecting to `denocat -l --ssl-cert --ssl-key`, with
 * bytes checked in both directions; a wrong CA, a wrong name and ncat's
 * favourite self-signed `openssl req -x509` certificate (pinned, or
 * explained in one line).
 */
import { match as assertMatch } from "node:assert/strict";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import {
  freePort,
  needs,
  type Output,
  randomBytes,
  runCli,
  sha256,
  spawn,
  startServer,
  waitForListen,
  within,
} from "../_helpers.ts";
import { makeCerts, type TestPki } from "../forward/_certs.ts";

const ignore = needs("ncat", "openssl");

/**
 * Where the one-shot listeners listen: another loopback address on Linux,
 * out of the way of port scans of 127.0.0.1 that other tests (and other
 * programs) run at the same time; a scan's connection would use up an
 * `ncat -l` meant for the test's client. The certificates name
 * `localhost`, which the clients are told to verify.
 */
const HOST = Deno.build.os === "linux" ? "127.0.0.2" : "127.0.0.1";

/** `ncat --ssl -l` on {@linkcode HOST} with `cert`/`key`, sending `data`; resolves once it listens. */
async function ncatServer(cert: string, key: string, data: Uint8Array) {
  const port = freePort();
  const p = spawn("ncat", [
    "--ssl",
    "--ssl-cert",
    cert,
    "--ssl-key",
    key,
    "-l",
    HOST,
    String(port),
  ], { stdin: data, timeout: 30_000 });
  try {
    await waitForListen(port);
  } catch (err) {
    await p[Symbol.asyncDispose]();
    throw new Error(`ncat did not listen: ${err}; ${p.stderrSoFar()}`);
  }
  return Object.assign(p, { port });
}

/** Asserts that one side's output is exactly `sent`. */
function assertGot(out: Output, sent: Uint8Array, what: string) {
  assertEquals(out.stdout.length, sent.length, `${what}: byte count`);
  assertEquals(sha256(out.stdout), sha256(sent), `${what}: sha256`);
}

/** The one line denocat printed, checked to be one line matching `re`. */
function assertOneLine(out: Output, re: RegExp) {
  assertEquals(out.code, 1, out.stderr);
  const lines = out.stderr.trimEnd().split("\n");
  assertEquals(lines.length, 1, out.stderr);
  assertMatch(lines[0]!, re);
}

Deno.test({
  name:
    "denocat --ssl --ssl-trustfile CA against ncat --ssl -l: 1 MiB each way; a wrong CA and a wrong name end in one line, exit 1",
  ignore,
  async fn() {
    await using pki = await makeCerts();
    const down = randomBytes(1 << 20);
    const up = randomBytes(1 << 20);
    {
      await using ncat = await ncatServer(pki.cert, pki.key, down);
      // --no-shutdown: ncat -l ends its session at the client's FIN, before
      // its own stdin is sent; without a FIN it sends everything, then
      // closes, which ends denocat.
      const out = await runCli([
        "--no-shutdown",
        "--ssl",
        "--ssl-trustfile",
        pki.ca,
        "--ssl-servername",
        "localhost",
        HOST,
        String(ncat.port),
      ], { stdin: up, timeout: 30_000 });
      assertEquals(out.code, 0, out.stderr);
      assertGot(out, down, "ncat -> denocat");
      const server = await within(ncat.output, "ncat -l to exit", 15_000);
      assertEquals(server.code, 0, server.stderr);
      assertGot(server, up, "denocat -> ncat");
    }
    {
      await using ncat = await ncatServer(pki.cert, pki.key, down);
      const out = await runCli([
        "--ssl",
        "--ssl-trustfile",
        pki.otherCa,
        "--ssl-servername",
        "localhost",
        HOST,
        String(ncat.port),
      ], { stdin: up });
      assertOneLine(
        out,
        /^denocat: TLS with localhost: certificate not trusted \(unknown issuer/,
      );
      assertEquals(out.stdout.length, 0);
    }
    {
      await using ncat = await ncatServer(pki.cert, pki.key, down);
      const out = await runCli([
        "--ssl",
        "--ssl-trustfile",
        pki.ca,
        "--ssl-servername",
        "wrong.example",
        HOST,
        String(ncat.port),
      ], { stdin: up });
      assertOneLine(out, /not valid for name "wrong\.example"/);
      assertEquals(out.stdout.length, 0);
    }
  },
});

Deno.test({
  name:
    "denocat --ssl-pin accepts ncat -l with a self-signed openssl req -x509 certificate; as --ssl-trustfile it is refused in one line that says why",
  ignore,
  async fn() {
    await using pki = await makeCerts();
    // What ncat users make: CA:TRUE by default, the certificate its own issuer.
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "self.key",
        "-out",
        "self.pem",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      cwd: pki.dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    assertOk(made.success, new TextDecoder().decode(made.stderr));
    const fp = await new Deno.Command("openssl", {
      args: ["x509", "-in", "self.pem", "-noout", "-fingerprint", "-sha256"],
      cwd: pki.dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const hex = new TextDecoder().decode(fp.stdout).trim().split("=")[1]!;
    assertMatch(hex, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const self = { cert: `${pki.dir}/self.pem`, key: `${pki.dir}/self.key` };
    const down = randomBytes(64 << 10);
    const up = randomBytes(64 << 10);
    {
      await using ncat = await ncatServer(self.cert, self.key, down);
      const out = await runCli([
        "--no-shutdown",
        "--ssl",
        "--ssl-pin",
        `sha256:${hex}`,
        HOST,
        String(ncat.port),
      ], { stdin: up, timeout: 30_000 });
      assertEquals(out.code, 0, out.stderr);
      assertGot(out, down, "ncat -> denocat (pinned)");
      const server = await within(ncat.output, "ncat -l to exit", 15_000);
      assertGot(server, up, "denocat -> ncat (pinned)");
    }
    {
      await using ncat = await ncatServer(self.cert, self.key, down);
      const out = await runCli([
        "--ssl",
        "--ssl-trustfile",
        self.cert,
        HOST,
        String(ncat.port),
      ], { stdin: up });
      assertOneLine(
        out,
        /the server's certificate is a CA certificate .* --ssl-pin sha256:HEX .* openssl req -x509 .*basicConstraints=critical,CA:FALSE/,
      );
    }
  },
});

Deno.test({
  name:
    "ncat --ssl against denocat -l --ssl-cert --ssl-key: 1 MiB each way unverified and with --ssl-verify --ssl-trustfile CA; --ssl-verify without the CA is refused",
  ignore,
  async fn() {
    await using pki = await makeCerts();
    const down = randomBytes(1 << 20);
    const up = randomBytes(1 << 20);
    // ncat 7.93 matches only DNS names, never IP addresses, against the
    // certificate (measured: for 127.0.0.1 it quits with "Certificate
    // verification error" even with the right CA), so it verifies the
    // name localhost, given as --ssl-servername.
    const verify = ["--ssl-verify", "--ssl-servername", "localhost"];
    const cases: Array<[string, string[]]> = [
      ["unverified", []],
      ["verified", [...verify, "--ssl-trustfile", pki.ca]],
    ];
    for (const [what, args] of cases) {
      await using server = await tlsListener(pki, down);
      // --no-shutdown: denocat -l, like ncat -l and nc -l, ends its session
      // at the client's FIN; without one it sends all of its stdin, then
      // its own FIN, which ends ncat.
      await using ncat = spawn(
        "ncat",
        ["--no-shutdown", "--ssl", ...args, HOST, String(server.port)],
        { stdin: up, timeout: 30_000 },
      );
      const client = await within(ncat.output, `ncat (${what}) to exit`);
      assertEquals(client.code, 0, `${what}: ${client.stderr}`);
      assertGot(client, down, `denocat -> ncat (${what})`);
      const srv = await within(server.output, "denocat -l to exit", 15_000);
      assertEquals(srv.code, 0, srv.stderr);
      assertGot(srv, up, `ncat -> denocat (${what})`);
    }
    {
      await using server = await tlsListener(pki, down);
      await using ncat = spawn(
        "ncat",
        ["-v", "--ssl", ...verify, HOST, String(server.port)],
        { stdin: up, timeout: 30_000 },
      );
      const client = await within(ncat.output, "ncat (no CA) to exit");
      assertOk(client.code !== 0, "ncat --ssl-verify trusted an unknown CA");
      assertEquals(client.stdout.length, 0);
      assertMatch(
        client.stderr,
        /Certificate verification failed \(unable to get local issuer/,
      );
      // denocat logs the failed handshake (ncat's alert) in one line.
      await server.waitForStderr(
        /TLS handshake with the client failed: .*UnknownCA/,
        15_000,
      );
    }
  },
});

/** `denocat -l --ssl-cert --ssl-key HOST 0` with `-v`, sending `data`. */
function tlsListener(pki: TestPki, data: Uint8Array) {
  return startServer([
    "-l",
    "--ssl-cert",
    pki.cert,
    "--ssl-key",
    pki.key,
    HOST,
    "0",
  ], { stdin: data, timeout: 30_000 });
}

Deno.test({
  name:
    "denocat -l --ssl-cert: a peer that connects and hangs up without a handshake (a port scan) is logged at once, and ncat --ssl is served next",
  ignore,
  async fn() {
    await using pki = await makeCerts();
    const down = randomBytes(64 << 10);
    const up = randomBytes(64 << 10);
    await using server = await tlsListener(pki, down);
    const scan = await Deno.connect({ hostname: HOST, port: server.port });
    scan.close();
    // Well inside the 10 s handshake timeout: the hang-up itself ends it
    // (it used to hold the one-shot listener for those 10 s).
    await server.waitForStderr(
      /TLS handshake with the client failed: the client hung up without starting a TLS handshake/,
      3_000,
    );
    await using ncat = spawn(
      "ncat",
      ["--no-shutdown", "--ssl", HOST, String(server.port)],
      { stdin: up, timeout: 30_000 },
    );
    const client = await within(ncat.output, "ncat to exit");
    assertEquals(client.code, 0, client.stderr);
    assertGot(client, down, "denocat -> ncat after the hang-up");
    const srv = await within(server.output, "denocat -l to exit", 15_000);
    assertEquals(srv.code, 0, srv.stderr);
    assertGot(srv, up, "ncat -> denocat after the hang-up");
  },
});
