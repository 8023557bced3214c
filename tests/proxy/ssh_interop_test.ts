/**
 * OpenSSH as the real peer of the proxy client and of `forward`: `ssh` with
 * `ProxyCommand=denocat -X 5 -x ...` (and `-X 4`, `-X connect`) logs into a
 * private sshd on loopback through dante-server and tinyproxy, and through
 * `denocat forward`, moving data both ways and passing the remote exit
 * status on.
 */
import { fileURLToPath } from "node:url";
import { match as assertMatch } from "node:assert/strict";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import {
  needs,
  type Output,
  randomBytes,
  sha256,
  spawn,
  startServer,
} from "../_helpers.ts";
import {
  canManageUsers,
  startDante,
  startTinyproxy,
  tempUser,
} from "./_peers.ts";
import { needsSsh, type SshdPeer, startSshd } from "./_sshd.ts";

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));

/** `s` quoted for sh, which runs ssh's ProxyCommand. */
function q(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The ProxyCommand that runs denocat from source with `args`, then %h %p. */
function proxyCommand(args: string[]): string {
  return [Deno.execPath(), "run", "-A", CLI, ...args]
    .map(q)
    .concat("%h", "%p")
    .join(" ");
}

/** Runs `ssh` to 127.0.0.1 (or `host`) on `port`, running `command` there. */
async function ssh(
  sshd: SshdPeer,
  port: number,
  command: string,
  opts: {
    extra?: string[];
    stdin?: Uint8Array;
    env?: Record<string, string>;
    host?: string;
  } = {},
): Promise<Output> {
  await using p = spawn(
    "ssh",
    [...sshd.sshArgs(port, opts.extra), opts.host ?? "127.0.0.1", command],
    {
      timeout: 30_000,
      ...(opts.stdin ? { stdin: opts.stdin } : {}),
      ...(opts.env ? { env: opts.env } : {}),
    },
  );
  return await p.output;
}

/** Asserts `out` carried `sent` back intact and ended with status 7. */
function assertEchoed(out: Output, sent: Uint8Array, what: string) {
  assertEquals(out.code, 7, `${what}: ssh exit code; stderr: ${out.stderr}`);
  assertEquals(out.stdout.length, sent.length, `${what}: bytes back`);
  assertEquals(sha256(out.stdout), sha256(sent), `${what}: sha256`);
}

Deno.test({
  name:
    "ssh ProxyCommand through denocat -X 5 and -X 4 -x (dante) reaches a private sshd: 2 MiB each way, exit status passed on; a refusal is one line",
  ignore: needsSsh() || needs("danted"),
  async fn() {
    await using sshd = await startSshd();
    await using dante = await startDante("none");
    const data = randomBytes(2 << 20);
    for (const type of ["5", "4"]) {
      const out = await ssh(sshd, sshd.port, "cat; exit 7", {
        extra: [
          "-o",
          `ProxyCommand=${
            proxyCommand(["-v", "-X", type, "-x", `127.0.0.1:${dante.port}`])
          }`,
        ],
        stdin: data,
      });
      assertEchoed(out, data, `-X ${type}`);
      // denocat's -v line (ssh passes its ProxyCommand's stderr on): it
      // connected to the proxy, for the sshd's address.
      assertOk(
        out.stderr.includes(
          `connected to 127.0.0.1:${dante.port} (127.0.0.1:${sshd.port})`,
        ),
        out.stderr,
      );
    }
    assertMatch(
      sshd.process.stderrSoFar(),
      new RegExp(`Accepted publickey for ${sshd.user} from 127\\.0\\.0\\.1`),
    );

    // dante's rules block 127.0.0.99: ssh fails (255) and its stderr holds
    // denocat's one line with the proxy's reason.
    const refused = await ssh(sshd, sshd.port, "true", {
      host: "127.0.0.99",
      extra: [
        "-o",
        `ProxyCommand=${
          proxyCommand(["-X", "5", "-x", `127.0.0.1:${dante.port}`])
        }`,
      ],
    });
    assertEquals(refused.code, 255, refused.stderr);
    assertMatch(
      refused.stderr,
      /^denocat: cannot connect to 127\.0\.0\.99:\d+ through socks5 proxy 127\.0\.0\.1:\d+: the SOCKS5 proxy refused: connection not allowed by ruleset \(reply 2\)$/m,
    );
  },
});

Deno.test({
  name:
    "ssh ProxyCommand through denocat -X 5 -x with a username and password (dante, DENOCAT_PROXY_AUTH); a wrong password is one line",
  ignore: needsSsh() || needs("danted") || !canManageUsers(),
  async fn() {
    await using sshd = await startSshd();
    await using account = await tempUser();
    await using dante = await startDante("username");
    const extra = [
      "-o",
      `ProxyCommand=${
        proxyCommand(["-X", "5", "-x", `127.0.0.1:${dante.port}`])
      }`,
    ];
    const data = randomBytes(256 << 10);
    // ssh passes its environment to the ProxyCommand: the password stays
    // out of the process list.
    const ok = await ssh(sshd, sshd.port, "cat; exit 7", {
      extra,
      stdin: data,
      env: { DENOCAT_PROXY_AUTH: `${account.user}:${account.password}` },
    });
    assertEchoed(ok, data, "SOCKS5 with username/password");

    const wrong = await ssh(sshd, sshd.port, "true", {
      extra,
      env: { DENOCAT_PROXY_AUTH: `${account.user}:not-${account.password}` },
    });
    assertEquals(wrong.code, 255, wrong.stderr);
    assertMatch(
      wrong.stderr,
      new RegExp(
        String
          .raw`^denocat: cannot connect to 127\.0\.0\.1:\d+ through socks5 proxy 127\.0\.0\.1:\d+: the SOCKS5 proxy refused the credentials for user ${account.user} \(status \d+\)$`,
        "m",
      ),
    );
  },
});

Deno.test({
  name:
    "ssh ProxyCommand through denocat -X connect -x (tinyproxy) reaches a private sshd: 1 MiB each way, exit status passed on",
  ignore: needsSsh() || needs("tinyproxy"),
  async fn() {
    await using sshd = await startSshd();
    await using proxy = await startTinyproxy();
    const data = randomBytes(1 << 20);
    const out = await ssh(sshd, sshd.port, "cat; exit 7", {
      extra: [
        "-o",
        `ProxyCommand=${
          proxyCommand(["-X", "connect", "-x", `127.0.0.1:${proxy.port}`])
        }`,
      ],
      stdin: data,
    });
    assertEchoed(out, data, "-X connect");
    // tinyproxy itself logged the tunnel to the sshd (on stdout, read once
    // it has been stopped).
    proxy.process.kill();
    const log = await proxy.process.output;
    assertMatch(
      log.text + log.stderr,
      new RegExp(`opening connection to 127\\.0\\.0\\.1:${sshd.port}`),
    );
  },
});

Deno.test({
  name:
    "ssh through denocat forward, directly and with forward --proxy (dante): 2 MiB each way, exit status passed on",
  ignore: needsSsh() || needs("danted"),
  async fn() {
    await using sshd = await startSshd();
    await using dante = await startDante("none");
    const data = randomBytes(2 << 20);
    {
      await using fwd = await startServer([
        "forward",
        "0",
        "127.0.0.1",
        String(sshd.port),
      ], { timeout: 60_000 });
      const out = await ssh(sshd, fwd.port, "cat; exit 7", { stdin: data });
      assertEchoed(out, data, "forward");
    }
    {
      await using fwd = await startServer([
        "forward",
        "--proxy",
        `127.0.0.1:${dante.port}`,
        "0",
        "127.0.0.1",
        String(sshd.port),
      ], { timeout: 60_000 });
      const out = await ssh(sshd, fwd.port, "cat; exit 7", { stdin: data });
      assertEchoed(out, data, "forward --proxy");
    }
  },
});
