/**
 * Real proxies for the tests, started on loopback from temporary configs:
 * dante-server (SOCKS5, and SOCKS4) and tinyproxy (HTTP CONNECT), plus a
 * throwaway system user for dante's username method.
 *
 * @module
 */
import { freePort, hasCommand, type Running, spawn } from "../_helpers.ts";

/** Whether tests may create and delete a system user (root with useradd). */
export function canManageUsers(): boolean {
  return Deno.uid() === 0 && hasCommand("useradd") && hasCommand("chpasswd");
}

/** Waits until `port` is listening on 127.0.0.1, asking `ss` (no connection made). */
export async function waitListening(port: number, p: Running, ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const out = await new Deno.Command("ss", {
      args: ["-Hltn", `sport = :${port}`],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (new TextDecoder().decode(out.stdout).includes(`:${port}`)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  await p[Symbol.asyncDispose]();
  throw new Error(`proxy did not listen on ${port}: ${p.stderrSoFar()}`);
}

/** A proxy child with its port; disposing stops it and removes its files. */
export interface ProxyPeer extends AsyncDisposable {
  port: number;
  process: Running;
}

/**
 * Starts danted on 127.0.0.1 and ::1. `auth: "username"` demands RFC 1929
 * credentials (checked against the system's password files), `none`
 * accepts anyone.
 */
export async function startDante(
  auth: "none" | "username",
): Promise<ProxyPeer> {
  const dir = await Deno.makeTempDir({ prefix: "denocat-dante-" });
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/danted.conf`,
    [
      "logoutput: stderr",
      `internal: 127.0.0.1 port = ${port}`,
      `internal: ::1 port = ${port}`,
      "external: lo",
      "clientmethod: none",
      `socksmethod: ${auth}`,
      "user.privileged: root",
      "user.notprivileged: nobody",
      "client pass { from: 0/0 to: 0/0 }",
      "client pass { from: ::/0 to: ::/0 }",
      // Only loopback targets; the tests also check a refused rule.
      "socks block { from: 0/0 to: 127.0.0.99/32 log: error }",
      "socks pass { from: 0/0 to: 127.0.0.0/8 }",
      "socks pass { from: ::/0 to: ::1/128 }",
      "socks pass { from: 0/0 to: ::1/128 }",
      "",
    ].join("\n"),
  );
  const process = spawn("danted", [
    "-f",
    `${dir}/danted.conf`,
    "-N",
    "1",
    "-p",
    `${dir}/pid`,
  ], {
    timeout: 60000,
  });
  await waitListening(port, process);
  return {
    port,
    process,
    async [Symbol.asyncDispose]() {
      await process[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Starts tinyproxy on 127.0.0.1, optionally demanding Basic credentials. */
export async function startTinyproxy(
  auth?: { user: string; password: string },
): Promise<ProxyPeer> {
  const dir = await Deno.makeTempDir({ prefix: "denocat-tinyproxy-" });
  const port = freePort();
  const lines = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    "Timeout 30",
    "MaxClients 50",
    "Allow 127.0.0.1",
    "LogLevel Info",
    `PidFile "${dir}/pid"`,
  ];
  if (Deno.uid() === 0) lines.push("User nobody", "Group nogroup");
  if (auth) lines.push(`BasicAuth ${auth.user} ${auth.password}`);
  await Deno.writeTextFile(`${dir}/tinyproxy.conf`, lines.join("\n") + "\n");
  const process = spawn("tinyproxy", ["-d", "-c", `${dir}/tinyproxy.conf`], {
    timeout: 60000,
  });
  await waitListening(port, process);
  return {
    port,
    process,
    async [Symbol.asyncDispose]() {
      await process[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A system user with a password, for dante's username method; disposing deletes it. */
export async function tempUser(): Promise<
  { user: string; password: string } & AsyncDisposable
> {
  const user = `dncat${Deno.pid % 100000}`;
  const password = `pw-${crypto.randomUUID().slice(0, 12)}`;
  const run = async (cmd: string, args: string[], stdin?: string) => {
    const child = new Deno.Command(cmd, {
      args,
      stdin: stdin ? "piped" : "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    if (stdin) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(stdin));
      await w.close();
    }
    const out = await child.output();
    if (!out.success) {
      throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  // A leftover from a killed run would make useradd fail: remove it first.
  await run("userdel", [user]).catch(() => {});
  await run("useradd", ["-M", "-s", "/usr/sbin/nologin", user]);
  try {
    await run("chpasswd", [], `${user}:${password}\n`);
  } catch (err) {
    await run("userdel", [user]);
    throw err;
  }
  return {
    user,
    password,
    async [Symbol.asyncDispose]() {
      await run("userdel", [user]);
    },
  };
}
