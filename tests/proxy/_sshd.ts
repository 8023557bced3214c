/**
 * A private OpenSSH server for the interop tests: `sshd -D -e` on
 * 127.0.0.1 and a free port, started from a temporary directory holding its
 * config, a fresh host key and a fresh user key (the only entry of its
 * authorized_keys), plus the `ssh` arguments that log in with that key and
 * read no user or system configuration.
 *
 * @module
 */
import { freePort, needs, type Running, spawn } from "../_helpers.ts";

const dec = new TextDecoder();

/** Where sshd is: on PATH, or Debian's /usr/sbin/sshd (not on every PATH). */
export function sshdPath(): string | undefined {
  for (
    const dir of (Deno.env.get("PATH") ?? "").split(":").concat("/usr/sbin")
  ) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(`${dir}/sshd`);
      if (info.isFile && (info.mode ?? 0o111) & 0o111) return `${dir}/sshd`;
    } catch { /* not here */ }
  }
  return undefined;
}

/**
 * `ignore` flag for tests that need ssh, ssh-keygen and sshd (see
 * {@linkcode needs}: ignored when missing, unless DENOCAT_REQUIRE_PEERS=1).
 */
export function needsSsh(): boolean {
  if (needs("ssh", "ssh-keygen")) return true;
  return sshdPath() === undefined && needs("sshd");
}

/** A running sshd; disposing kills it and removes its directory. */
export interface SshdPeer extends AsyncDisposable {
  port: number;
  process: Running;
  /** The user the client logs in as (whoever runs the tests). */
  user: string;
  /**
   * `ssh` arguments up to (not including) the destination: batch mode,
   * the test's key, no configuration files, no known-hosts file, and
   * `extra` (say `-o ProxyCommand=...`) before them.
   */
  sshArgs(port: number, extra?: string[]): string[];
}

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const r = await new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${dec.decode(r.stderr)}`);
  }
  return dec.decode(r.stdout).trim();
}

/** Starts sshd on 127.0.0.1 on a free port; resolves once it listens. */
export async function startSshd(): Promise<SshdPeer> {
  const sshd = sshdPath();
  if (!sshd) throw new Error("sshd is not installed (Debian: openssh-server)");
  // sshd refuses to start without its privilege separation directory, which
  // only the package's service unit creates (at boot, under /run).
  if (Deno.uid() === 0) await Deno.mkdir("/run/sshd", { recursive: true });
  const dir = await Deno.makeTempDir({ prefix: "denocat-sshd-" });
  try {
    const user = await run("id", ["-un"], dir);
    for (const key of ["host_key", "user_key"]) {
      await run(
        "ssh-keygen",
        ["-q", "-t", "ed25519", "-N", "", "-f", key],
        dir,
      );
    }
    await Deno.copyFile(`${dir}/user_key.pub`, `${dir}/authorized_keys`);
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/sshd_config`,
      [
        "ListenAddress 127.0.0.1",
        `Port ${port}`,
        `HostKey ${dir}/host_key`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
        "PidFile none",
        // The temporary directory is not owned the way sshd insists on.
        "StrictModes no",
        "UsePAM no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        `AllowUsers ${user}`,
        "LogLevel VERBOSE",
        "",
      ].join("\n"),
    );
    const process = spawn(sshd, ["-D", "-e", "-f", `${dir}/sshd_config`], {
      timeout: 120_000,
    });
    try {
      await process.waitForStderr(
        /Server listening on 127\.0\.0\.1 port/,
        10_000,
      );
    } catch (err) {
      await process[Symbol.asyncDispose]();
      throw err;
    }
    return {
      port,
      process,
      user,
      sshArgs: (to: number, extra: string[] = []) => [
        "-F",
        "/dev/null",
        ...extra,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "-i",
        `${dir}/user_key`,
        "-p",
        String(to),
        "-l",
        user,
      ],
      async [Symbol.asyncDispose]() {
        await process[Symbol.asyncDispose]();
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}
