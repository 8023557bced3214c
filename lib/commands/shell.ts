/**
 * `denocat shell`: the remote shell server (`-l`), the one-shot client
 * (`HOST PORT -- CMD...`) and the interactive client (`HOST PORT`).
 *
 * @module
 */
import { stderrWriter, stdinReader, stdoutWriter } from "../stdio.ts";
import { formatAddr } from "../address.ts";
import { DenocatError, UsageError } from "../errors.ts";
import { stderrLogger } from "../log.ts";
import {
  type AuditRecord,
  formatAudit,
  formatAuditJson,
} from "../shell/audit.ts";
import { envPolicy, riskyAccepted } from "../shell/accept_env.ts";
import type { Token } from "../shell/auth.ts";
import { connectShell, EXIT_SHELL_FAILURE } from "../shell/client.ts";
import {
  describeExit,
  interactiveShell,
  processInterrupts,
} from "../shell/interactive.ts";
import { ignoreInspectorSignal, makeNonDumpable } from "../native/prctl.ts";
import { processTerminal, runOnTerminal } from "../shell/terminal.ts";
import {
  SEED_MODES,
  seedCompatServer,
  type SeedMode,
} from "../shell/seed_compat.ts";
import { shellServer } from "../shell/server.ts";
import {
  clientEndpoint,
  COMMON_OPTIONS,
  familyOf,
  keepaliveOption,
  parse,
  positiveInt,
  print,
  seconds,
  serverEndpoint,
  serverKeepalive,
  shutdownSignal,
} from "./_args.ts";
import { ACCESS_OPTIONS } from "./_net_flags.ts";
import { accessFrom } from "./_net.ts";

/** Help for `denocat shell`. */
export const HELP =
  `Usage: denocat shell -l [options] [HOST] PORT        serve commands
       denocat shell [options] HOST PORT -- CMD...     run one command
       denocat shell [options] HOST PORT               interactive prompt
       denocat shell -t [options] HOST PORT [-- CMD...]  on a terminal (like ssh -t)

A remote shell with separate stdout and stderr, exit codes, timeouts and
authentication. Output is passed through byte for byte, never decoded.
As with ssh, the words after -- are joined with single spaces and the
result is run by the server's shell (SHELL -c "CMD..."): quote for the
remote shell, e.g. -- 'ls "my dir"' or -- ls '"my dir"'.

Authentication (both sides):
      --token T           shared secret (proved by HMAC challenge-response;
                          it never crosses the wire). Other local users see
                          it in ps: prefer --token-file or DENOCAT_TOKEN
      --token-file F      read the secret from F, as bytes (one trailing
                          newline ignored; never decoded, so binary works)
                          (else the DENOCAT_TOKEN environment variable,
                          which commands run by the server do not inherit)
    Use at least 16 random bytes (e.g. openssl rand -hex 16); shorter tokens
    are warned about. Both sides prove the token: a client holding one
    refuses a server that cannot, or that offers no authentication. Without
    TLS an active man-in-the-middle can still read and alter a session after
    login: use TLS off loopback.

Server options (-l; binds 127.0.0.1 unless HOST is given):
      --insecure-no-auth  serve without a token (loopback only)
      --shell PATH        shell running each command as PATH -c CMD (/bin/sh)
      --cwd DIR           working directory of commands
      --timeout SECS      kill a command's whole process group after SECS (300; 0: never)
                          (processes that leave the group with setsid or
                          by daemonizing are not killed: a known limit; the
                          command still ends, 1.25 s after its group, and
                          the audit marks it "escaped")
      --max-output BYTES  stop a command once its stdout+stderr reach BYTES
      --max-sessions N    sessions at once; more are told the server is busy (8)
      --max-pending N     connections not yet past their hello (64); beyond,
                          the oldest of the source holding the most is dropped
      --max-pending-per-ip N  such connections per IPv4 address or IPv6 /64 (8)
      --idle-timeout SECS end a session that sends nothing for SECS while no
                          command runs (default: never)
      --tls-cert F --tls-key F   serve over TLS (PEM files)
      --accept-env LIST   variables clients may set, comma-separated names or
                          patterns with * and ? (like sshd's AcceptEnv);
                          default none: a command setting another is refused
      --no-client-env     accept no variables (the default; for old scripts)
      --no-client-cwd     refuse commands that choose their directory
      --compat MODE       speak a seed protocol instead: seed-simple or seed-json
                          (loopback only, no authentication)
      --log-json          audit lines as JSON
      --allow LIST, --deny LIST, --allowfile FILE, --denyfile FILE
                          who may connect (addresses, CIDR blocks, names
                          resolved at start); others are closed unread
  -v, --verbose           log sessions to stderr

Client options:
      --tls               connect with TLS (system CAs unless --ca)
      --ca FILE           trust this PEM CA certificate
      --insecure          do not verify the server certificate (testing only)
  -w SECS                 timeout for connecting and authenticating
  -e, --env NAME=VALUE    set a variable for the command (repeatable; not the
                          -e of nc or ncat, which runs a program: the command
                          goes after --)
      --cwd DIR           run the command in DIR on the server
  -n, --no-stdin          do not forward stdin (the command reads /dev/null;
                          not nc's -n, which is numeric addresses)
      --keepalive[=IDLE[,INTVL[,CNT]]]
                          TCP keepalive (not with --tls); timers need Linux
                          with FFI. A server (-l) takes plain --keepalive
  -t                      run on a terminal of the server (raw mode here,
                          window size forwarded); without a command, the
                          server's shell itself. The server needs util-linux
                          script (see README)

Common: -4, -6 (IPv4/IPv6 only), -h (this help).

The one-shot client exits with the remote exit code, 128+N when the command
died of signal N, and 255 when the connection, authentication or protocol
failed (or the server refused the command). The interactive prompt reads one
command per line (each its own SHELL -c), shows non-zero statuses, sends
Ctrl-C and Ctrl-\ to the running command's process group, and ends on EOF or
'exit'. The server writes an audit line to stderr when a command starts and
when it ends; it exits 2 on a refused configuration (e.g. a non-loopback
address without a token).
`;

const OPTIONS = {
  help: COMMON_OPTIONS.help,
  verbose: COMMON_OPTIONS.verbose,
  ipv4: COMMON_OPTIONS.ipv4,
  ipv6: COMMON_OPTIONS.ipv6,
  listen: { type: "boolean", short: "l" },
  token: { type: "string" },
  "token-file": { type: "string" },
  "insecure-no-auth": { type: "boolean" },
  shell: { type: "string" },
  cwd: { type: "string" },
  timeout: { type: "string" },
  "max-output": { type: "string" },
  "max-sessions": { type: "string" },
  "max-pending": { type: "string" },
  "max-pending-per-ip": { type: "string" },
  "accept-env": { type: "string", multiple: true },
  "idle-timeout": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "no-client-env": { type: "boolean" },
  "no-client-cwd": { type: "boolean" },
  compat: { type: "string" },
  "log-json": { type: "boolean" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  insecure: { type: "boolean" },
  wait: { type: "string", short: "w" },
  env: { type: "string", short: "e", multiple: true },
  "no-stdin": { type: "boolean", short: "n" },
  tty: { type: "boolean", short: "t" },
  keepalive: { type: "string" },
  ...ACCESS_OPTIONS,
  // Not offered: parsed only to say why in one line.
  "ssl-verify-client": { type: "boolean" },
} as const;

const SERVER_ONLY = [
  "insecure-no-auth",
  "shell",
  "timeout",
  "max-output",
  "max-sessions",
  "max-pending",
  "max-pending-per-ip",
  "accept-env",
  "idle-timeout",
  "tls-cert",
  "tls-key",
  "no-client-env",
  "no-client-cwd",
  "compat",
  "log-json",
  "allow",
  "deny",
  "allowfile",
  "denyfile",
] as const;
const CLIENT_ONLY = [
  "tls",
  "ca",
  "insecure",
  "wait",
  "env",
  "no-stdin",
  "tty",
] as const;

async function readText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new DenocatError(
      `cannot read ${what} ${path}: ${
        err instanceof Deno.errors.NotFound ? "no such file" : String(err)
      }`,
    );
  }
}

/**
 * The token as bytes: `--token` as UTF-8, `--token-file` exactly as stored
 * (one trailing `\n` or `\r\n` dropped), `DENOCAT_TOKEN` as the process
 * got it (read from /proc when it is not valid UTF-8). Never decoded, so
 * two different binary tokens never compare equal.
 */
async function resolveToken(
  values: { token?: string | undefined; "token-file"?: string | undefined },
): Promise<Uint8Array | undefined> {
  let token: Uint8Array | undefined;
  if (values.token !== undefined) {
    token = new TextEncoder().encode(values.token);
  } else if (values["token-file"] !== undefined) {
    const path = values["token-file"];
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (err) {
      throw new DenocatError(
        `cannot read token file ${path}: ${
          err instanceof Deno.errors.NotFound ? "no such file" : String(err)
        }`,
      );
    }
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0a) end--;
    if (end > 0 && end < bytes.length && bytes[end - 1] === 0x0d) end--;
    token = bytes.subarray(0, end);
  } else {
    const text = Deno.env.get("DENOCAT_TOKEN");
    if (text !== undefined && text !== "") {
      token = text.includes("\ufffd") ? rawEnv("DENOCAT_TOKEN") : undefined;
      token ??= new TextEncoder().encode(text);
    }
  }
  if (token !== undefined && token.length === 0) {
    throw new UsageError("the token is empty");
  }
  if (token !== undefined) warnShortToken(token);
  return token;
}

/** A variable's bytes from /proc/self/environ (Linux), or undefined. */
function rawEnv(name: string): Uint8Array | undefined {
  let all: Uint8Array;
  try {
    all = Deno.readFileSync("/proc/self/environ");
  } catch {
    return undefined;
  }
  const key = new TextEncoder().encode(`${name}=`);
  let start = 0;
  while (start < all.length) {
    let end = all.indexOf(0, start);
    if (end < 0) end = all.length;
    if (
      end - start >= key.length && key.every((b, i) => all[start + i] === b)
    ) {
      return all.slice(start + key.length, end);
    }
    start = end + 1;
  }
  return undefined;
}

/** Tokens shorter than this many bytes get a warning. */
const MIN_TOKEN_BYTES = 16;
let warnedShortToken = false;

function warnShortToken(token: Uint8Array): void {
  const bytes = token.length;
  if (bytes >= MIN_TOKEN_BYTES || warnedShortToken) return;
  warnedShortToken = true;
  console.error(
    `denocat: warning: the token is ${bytes} bytes; use at least ${MIN_TOKEN_BYTES} random bytes (e.g. openssl rand -hex 16)`,
  );
}

/** Runs `denocat shell`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const dash = args.indexOf("--");
  const own = dash >= 0 ? args.slice(0, dash) : args;
  const command = dash >= 0 ? args.slice(dash + 1) : undefined;
  const { values, positionals } = parse(own, OPTIONS);
  if (values.help) {
    print(HELP);
    return 0;
  }
  if (values["ssl-verify-client"]) {
    throw new UsageError(
      "shell does not take --ssl-verify-client: its server authenticates clients by --token (HMAC challenge-response), and its TLS (--tls-cert) asks for no client certificate",
    );
  }
  const family = familyOf(values);
  if (values.listen) {
    const wrong = CLIENT_ONLY.find((k) => values[k] !== undefined);
    if (wrong) {
      throw new UsageError(`--${wrong} is a client option (see --help)`);
    }
    if (command) throw new UsageError("a server takes no command (see --help)");
    return await serve(values, positionals, family);
  }
  const wrong = SERVER_ONLY.find((k) => values[k] !== undefined);
  if (wrong) {
    throw new UsageError(`--${wrong} is a server option; add -l (see --help)`);
  }
  if (values.tty && values["no-stdin"]) {
    throw new UsageError("-t and --no-stdin do not go together");
  }
  if (values.insecure && !values.tls) {
    throw new UsageError("--insecure needs --tls");
  }
  if (values.ca !== undefined && !values.tls) {
    throw new UsageError("--ca needs --tls");
  }
  if (command && command.length === 0) {
    throw new UsageError("missing command after -- (see --help)");
  }
  const endpoint = clientEndpoint(positionals, undefined) as {
    hostname: string;
    port: number;
  };
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) {
      throw new UsageError(`invalid --env value: ${kv} (NAME=VALUE expected)`);
    }
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const token = await resolveToken(values);
  const wait = seconds(values.wait, "-w");
  const tls = values.tls
    ? {
      ...(values.ca !== undefined
        ? { caCerts: [await readText(values.ca, "CA file")] }
        : {}),
      ...(values.insecure ? { insecure: true } : {}),
    }
    : undefined;
  const keepalive = keepaliveOption(values.keepalive);
  if (keepalive !== undefined && tls) {
    throw new UsageError("--keepalive cannot be combined with --tls");
  }
  // Checked before connecting: no terminal is a usage error, not a login.
  const terminal = values.tty ? processTerminal() : undefined;
  await using session = await connectShell(endpoint, {
    ...(keepalive !== undefined ? { keepalive } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(tls ? { tls } : {}),
    ...(wait !== undefined ? { timeout: wait } : {}),
    ...(family ? { family } : {}),
  });
  if (terminal) {
    if (Object.keys(env).length || values.cwd !== undefined) {
      throw new UsageError("--env and --cwd do not apply to -t");
    }
    const exit = await runOnTerminal(
      session,
      command?.join(" ") ?? "",
      terminal,
    );
    if (exit.timedOut || exit.truncated) {
      console.error(`denocat: remote command ${describeExit(exit)}`);
    }
    return exit.exitCode;
  }
  if (!command) {
    if (Object.keys(env).length || values.cwd !== undefined) {
      throw new UsageError("--env and --cwd apply to a command after --");
    }
    return await interactiveShell(session, {
      input: stdinReader(),
      stdout: stdoutWriter(),
      stderr: stderrWriter(),
      prompt: `denocat ${positionals[0]}:${endpoint.port}> `,
      interrupts: processInterrupts,
    });
  }
  const exit = await session.exec(command.join(" "), {
    stdout: stdoutWriter(),
    stderr: stderrWriter(),
    ...(values["no-stdin"] ? {} : { stdin: stdinReader() }),
    ...(Object.keys(env).length ? { env } : {}),
    ...(values.cwd !== undefined ? { cwd: values.cwd } : {}),
  });
  if (exit.timedOut || exit.truncated) {
    console.error(`denocat: remote command ${describeExit(exit)}`);
  }
  return exit.exitCode;
}

async function serve(
  values: {
    verbose?: boolean | undefined;
    token?: string | undefined;
    "token-file"?: string | undefined;
    "insecure-no-auth"?: boolean | undefined;
    shell?: string | undefined;
    cwd?: string | undefined;
    timeout?: string | undefined;
    "max-output"?: string | undefined;
    "max-sessions"?: string | undefined;
    "max-pending"?: string | undefined;
    "max-pending-per-ip"?: string | undefined;
    "accept-env"?: string[] | undefined;
    "idle-timeout"?: string | undefined;
    "tls-cert"?: string | undefined;
    "tls-key"?: string | undefined;
    "no-client-env"?: boolean | undefined;
    "no-client-cwd"?: boolean | undefined;
    compat?: string | undefined;
    "log-json"?: boolean | undefined;
    keepalive?: string | undefined;
    allow?: string[] | undefined;
    deny?: string[] | undefined;
    allowfile?: string[] | undefined;
    denyfile?: string[] | undefined;
  },
  positionals: string[],
  family: 4 | 6 | undefined,
): Promise<number> {
  const logger = stderrLogger(values.verbose ?? false);
  const auditLog = stderrLogger(true);
  const encoder = new TextEncoder();
  const audit = values["log-json"]
    ? (r: AuditRecord) =>
      Deno.stderr.writeSync(encoder.encode(formatAuditJson(r) + "\n"))
    : (r: AuditRecord) => auditLog.log(formatAudit(r));
  const endpoint = serverEndpoint(positionals, undefined, "127.0.0.1") as {
    hostname: string;
    port: number;
  };
  const timeout = seconds(values.timeout, "--timeout");
  const maxOutput = positiveInt(values["max-output"], "--max-output");
  const maxSessions = positiveInt(values["max-sessions"], "--max-sessions");
  const maxPending = positiveInt(values["max-pending"], "--max-pending");
  const maxPendingPerSource = positiveInt(
    values["max-pending-per-ip"],
    "--max-pending-per-ip",
  );
  const acceptEnv = (values["accept-env"] ?? []).flatMap((v) =>
    v.split(",").map((p) => p.trim()).filter((p) => p !== "")
  );
  if (acceptEnv.length && values["no-client-env"]) {
    throw new UsageError("--accept-env and --no-client-env contradict");
  }
  const risky = riskyAccepted(envPolicy(acceptEnv));
  const idleTimeout = seconds(values["idle-timeout"], "--idle-timeout");
  const common = {
    logger,
    audit,
    ...(values.shell !== undefined ? { shell: values.shell } : {}),
    ...(values.cwd !== undefined ? { cwd: values.cwd } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
    ...(maxOutput !== undefined ? { maxOutput } : {}),
    ...(maxSessions !== undefined ? { maxSessions } : {}),
  };
  if (values.shell !== undefined) {
    const info = await Deno.stat(values.shell).catch(() => undefined);
    if (!info?.isFile) {
      throw new UsageError(`--shell ${values.shell}: no such file`);
    }
  }
  if (values.cwd !== undefined) {
    const info = await Deno.stat(values.cwd).catch(() => undefined);
    if (!info?.isDirectory) {
      throw new UsageError(`--cwd ${values.cwd}: not a directory`);
    }
  }
  let server: { addr: Deno.NetAddr; close(): Promise<void> };
  if (values.compat !== undefined) {
    if (!SEED_MODES.includes(values.compat as SeedMode)) {
      throw new UsageError(
        `invalid --compat value: ${values.compat} (seed-simple or seed-json)`,
      );
    }
    if (values.token !== undefined || values["token-file"] !== undefined) {
      throw new UsageError(
        `--compat ${values.compat} cannot check a token (the seed protocols have no authentication); drop --token/--token-file`,
      );
    }
    if (values["tls-cert"] !== undefined || values["tls-key"] !== undefined) {
      throw new UsageError(`--compat ${values.compat} cannot use TLS`);
    }
    for (
      const flag of [
        "idle-timeout",
        "max-pending",
        "max-pending-per-ip",
        "accept-env",
        "allow",
        "deny",
        "allowfile",
        "denyfile",
      ] as const
    ) {
      if (values[flag] !== undefined) {
        throw new UsageError(`--${flag} does not apply to --compat`);
      }
    }
    if (values.keepalive !== undefined) {
      throw new UsageError(`--keepalive does not apply to --compat`);
    }
    server = seedCompatServer(endpoint, {
      mode: values.compat as SeedMode,
      ...common,
    });
  } else {
    if (
      (values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)
    ) {
      throw new UsageError("--tls-cert and --tls-key go together");
    }
    const token: Token | undefined = await resolveToken(values);
    if (risky.length) {
      console.error(
        `denocat: warning: --accept-env lets clients set ${
          risky.join(", ")
        }, which can make a shell or the loader run other code`,
      );
    }
    // The token lives in this process: keep same-user processes (the
    // commands we run among them) out of its memory and environment.
    const dump = makeNonDumpable();
    // Deno opens an inspector on SIGUSR1, which any same-user process (our
    // commands) can send: an inspector reads anything, dumpable or not.
    if (!ignoreInspectorSignal() && token !== undefined) {
      console.error(
        `denocat: warning: cannot ignore SIGUSR1 (no FFI): a process of this user that sends it opens Deno's inspector on 127.0.0.1:9229 in the server`,
      );
    }
    if (dump.ok) logger.log("server process made non-dumpable");
    else if (token !== undefined) {
      console.error(
        `denocat: warning: cannot make the server non-dumpable (${dump.reason}): commands it runs can read the token from /proc/${Deno.pid}/environ or its memory`,
      );
    }
    const tls = values["tls-cert"] !== undefined
      ? {
        cert: await readText(values["tls-cert"], "certificate"),
        key: await readText(values["tls-key"]!, "key"),
      }
      : undefined;
    const access = await accessFrom({
      ...(values.allow ? { allow: values.allow } : {}),
      ...(values.deny ? { deny: values.deny } : {}),
      ...(values.allowfile ? { allowfile: values.allowfile } : {}),
      ...(values.denyfile ? { denyfile: values.denyfile } : {}),
    });
    if (access.active) logger.log(`access list: ${access.describe()}`);
    server = shellServer(endpoint, {
      ...common,
      ...(access.active
        ? { accept: (a: Deno.NetAddr) => access.allowsAddr(a) }
        : {}),
      ...(token !== undefined ? { token } : {}),
      ...(values["insecure-no-auth"] ? { insecureNoAuth: true } : {}),
      ...(tls ? { tls } : {}),
      acceptEnv,
      ...(values["no-client-cwd"] ? { allowCwd: false } : {}),
      ...(maxPending !== undefined ? { maxPending } : {}),
      ...(maxPendingPerSource !== undefined ? { maxPendingPerSource } : {}),
      ...(idleTimeout ? { idleTimeout } : {}),
      ...(family ? { family } : {}),
      ...(serverKeepalive(values.keepalive) ? { keepalive: true } : {}),
    });
  }
  using signal = shutdownSignal();
  logger.log(
    `shell server${values.compat ? ` (${values.compat})` : ""} listening on ${
      formatAddr(server.addr)
    }`,
  );
  await new Promise((resolve) =>
    signal.addEventListener("abort", resolve, { once: true })
  );
  logger.log("shutting down: killing running commands");
  await server.close();
  return 0;
}

export { EXIT_SHELL_FAILURE };
