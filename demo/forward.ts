/**
 * Demo section: what people use ncat and socat for: a port forward with an
 * access list, a program per connection (`-l -k -c`), and TLS with a pinned
 * self-signed certificate (when openssl is installed to make one).
 */
import { hasCommand } from "../tests/_helpers.ts";
import {
  check,
  runCli,
  says,
  section,
  shows,
  startCli,
  startServer,
} from "./_util.ts";

export async function run(): Promise<void> {
  section("forward: a port forward, half-close passed on, an access list");
  await using echo = await startServer(["echo", "--upper", "127.0.0.1", "0"]);
  await using fwd = await startServer([
    "forward",
    "0",
    "127.0.0.1",
    String(echo.port),
  ]);
  shows(`denocat echo --upper 127.0.0.1 ${echo.port} &`);
  shows(`denocat forward ${fwd.port} 127.0.0.1 ${echo.port} &`);
  shows(`echo 'through the forward' | denocat 127.0.0.1 ${fwd.port}`);
  const r = await runCli(["127.0.0.1", String(fwd.port)], {
    stdin: "through the forward\n",
  });
  says(r.text);
  check(
    r.code === 0 && r.text === "THROUGH THE FORWARD\n",
    "the client's FIN reached the echo server and the reply came back",
  );
  await using guarded = await startServer([
    "forward",
    "--deny",
    "127.0.0.1",
    "0",
    "127.0.0.1",
    String(echo.port),
  ]);
  shows(
    `denocat forward --deny 127.0.0.1 ${guarded.port} 127.0.0.1 ${echo.port} &`,
  );
  const refused = await runCli(["127.0.0.1", String(guarded.port)], {
    stdin: "let me in\n",
  });
  const line = (await guarded.waitForStderr(/[^\n]*refused[^\n]*/))[0];
  says(`(-v: ${line.replace(/^denocat: \[[^\]]*\] /, "")})`);
  check(
    refused.text === "",
    "a peer the access list refuses is closed before a byte moves",
  );

  section("exec: a program per connection (-l -k -c), as inetd");
  await using inetd = await startServer([
    "-l",
    "-k",
    "-c",
    'printf "%s says: " "$NCAT_REMOTE_PORT"; tr a-z A-Z',
    "127.0.0.1",
    "0",
  ]);
  shows(
    `denocat -l -k -c 'printf "%s says: " "$NCAT_REMOTE_PORT"; tr a-z A-Z' 127.0.0.1 ${inetd.port} &`,
  );
  shows(`echo one | denocat 127.0.0.1 ${inetd.port} & echo two | denocat …`);
  const [one, two] = await Promise.all(
    ["one\n", "two\n"].map((stdin) =>
      runCli(["127.0.0.1", String(inetd.port)], { stdin })
    ),
  );
  says(`${one!.text}${two!.text}`);
  check(
    one!.code === 0 && /^\d+ says: ONE\n$/.test(one!.text) &&
      /^\d+ says: TWO\n$/.test(two!.text),
    "each client got its own child, which saw its port in NCAT_REMOTE_PORT",
  );

  section("TLS: a self-signed certificate, pinned by its SHA-256");
  if (!hasCommand("openssl")) {
    says("(skipped: openssl is not installed to make a certificate)");
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "denocat-demo-tls-" });
  try {
    const mk = await new Deno.Command("sh", {
      args: [
        "-c",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=demo && openssl x509 -in cert.pem -noout -fingerprint -sha256",
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "null",
    }).output();
    check(mk.success, "openssl made a self-signed certificate");
    const pin = "sha256:" +
      new TextDecoder().decode(mk.stdout).trim().split("=")[1]!;
    await using tls = await startServer([
      "-l",
      "--ssl-cert",
      `${dir}/cert.pem`,
      "--ssl-key",
      `${dir}/key.pem`,
      "127.0.0.1",
      "0",
    ]);
    shows(
      `denocat -l --ssl-cert cert.pem --ssl-key key.pem 127.0.0.1 ${tls.port} &`,
    );
    shows(`echo secret | denocat --ssl 127.0.0.1 ${tls.port}`);
    const unpinned = await runCli(["--ssl", "127.0.0.1", String(tls.port)], {
      stdin: "secret\n",
    });
    says(unpinned.stderr.trim().slice(0, 150) + "…");
    check(
      unpinned.code === 1,
      "without a pin the self-signed certificate is refused in one line",
    );
    shows(
      `echo secret | denocat --ssl --ssl-pin ${
        pin.slice(0, 20)
      }… 127.0.0.1 ${tls.port}`,
    );
    await using client = startCli(
      ["--ssl", "--ssl-pin", pin, "127.0.0.1", String(tls.port)],
      { stdin: "secret over TLS\n" },
    );
    const sent = await client.output;
    tls.kill("SIGTERM");
    const got = await tls.output;
    says(got.text);
    check(
      sent.code === 0 && got.text === "secret over TLS\n",
      "with the pin the bytes crossed TLS intact",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
