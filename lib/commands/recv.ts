/**
 * `denocat recv [options] [HOST] PORT`: receive verified items into a
 * directory (`-o DIR`) or a single stream to stdout.
 *
 * @module
 */
import { stdoutWriter } from "../stdio.ts";
import { formatAddr } from "../address.ts";
import {
  DenocatError,
  describeError,
  OutputClosedError,
  UsageError,
} from "../errors.ts";
import { type Logger, stderrLogger } from "../log.ts";
import { terminalProgress } from "../transfer/progress.ts";
import type { ConnectionResult } from "../transfer/recv.ts";
import { receiveServer } from "../transfer/server.ts";
import { escapeText } from "../transfer/show.ts";
import {
  COMMON_OPTIONS,
  familyOf,
  parse,
  positiveInt,
  print,
  seconds,
  serverEndpoint,
  serverKeepalive,
  shutdownSignal,
} from "./_args.ts";
import { compatMode } from "./send.ts";
import {
  ACCESS_OPTIONS,
  accessFrom,
  LISTENER_TLS_OPTIONS,
  tlsFrom,
  tlsWrap,
} from "./_net.ts";

/** Help for `denocat recv`. */
export const HELP = `Usage: denocat recv [options] [HOST] PORT
       denocat recv [options] -U SOCKET

Receive items sent by 'denocat send'. With -o DIR each item is written to a
temporary file in DIR, verified (size and sha256), then renamed into place;
nothing appears under the final name unless it verified. Without -o, one
item is written to stdout, and the exit code says whether it verified.

A receiver holds a lock on each temporary file while writing it; on start,
recv -o DIR removes the temporary files (.NAME.denocat-HEX.part) under DIR
that no live receiver holds, such as those of a receiver that was killed.

Names are checked: absolute paths, '..', control characters and paths that
lead outside DIR (symlinks included) are refused, and the sender is told.
Names over 4096 bytes or 64 components (--max-depth), bidirectional and
line-separator characters, and names like a temporary file are refused too.
Every file, directory and symlink is created relative to a descriptor of
DIR, never through a symlink (Linux with FFI; without it, a DIR that other
users can write to is refused). A file gets the permission bits the sender
asks for less this process's umask; setuid, setgid and sticky bits are never
set. A symlink is created only if it stays inside DIR.

Options:
  -o, --output DIR    write items into DIR (created if missing; not ncat's -o,
                      a session log)
  -k, --keep-open     keep serving, senders concurrently (needs -o)
      --max-conns N   with -k, serve at most N senders at once (default 64;
                      each may use 2 MiB of buffers). A sender holds a slot
                      from its first item header until done; one whose
                      header comes while all are taken is told "busy" (seed
                      senders: closed)
      --max-pending N with -k, hold at most N connections that have not yet
                      sent an item header (default 256; they take no slot);
                      beyond that the oldest of the address holding the
                      most is closed, so idle connections cannot lock
                      senders out. Raise it for bursts of more
                      than N senders connecting at the same moment
      --allow LIST, --deny LIST, --allowfile FILE, --denyfile FILE
                      accept senders only from / never from these peers
                      (addresses, CIDR blocks, names resolved at start;
                      --deny wins); refused ones are closed before a byte is
                      read
      --max-conns-per-ip N
                      with -k, at most N of those slots per source address
                      (an IPv6 /64; default 8); more senders from it are
                      told "busy"
      --max-size BYTES
                      refuse an item larger than BYTES (suffix K, M, G, T:
                      powers of 1024); the session then ends. Items that do
                      not fit in DIR's free space are refused the same way
      --max-depth N   refuse names with more than N components (default 64)
      --overwrite     replace existing files and symlinks (default: a clash
                      is an error); directories are never replaced
      --compat MODE   native (default) or seed: the seeds' header, md5 checked
      --idle-timeout SECS
                      close a sender that sends nothing for SECS; its
                      unfinished item is discarded (default 60; 0: never).
                      A sender waiting on a slow stdin sends keep-alives
      --no-progress   no progress bar (it is shown only when stderr is a terminal)
      --keepalive     TCP keepalive on every connection (the system's timers)
      --ssl-cert FILE --ssl-key FILE
                      senders speak TLS ('denocat send --ssl'); PEM files
      --ssl-verify-client --ssl-trustfile CA
                      with --ssl-cert: demand a client certificate issued by
                      CA ('send --ssl-cert/--ssl-key'); others are refused
  -4, -6              IPv4 / IPv6 only
  -U, --unix          PATH is a Unix socket (@NAME: abstract, Linux) instead of
                      [HOST] PORT
  -v, --verbose       log connections and items to stderr
  -h, --help          this help

Exit codes (without -k): 0 every item verified, 1 network or protocol
failure or a refused item, 2 usage error, 3 verification failed.
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  output: { type: "string", short: "o" },
  "keep-open": { type: "boolean", short: "k" },
  overwrite: { type: "boolean" },
  compat: { type: "string" },
  "no-progress": { type: "boolean" },
  "idle-timeout": { type: "string" },
  "max-conns": { type: "string" },
  "max-pending": { type: "string" },
  "max-conns-per-ip": { type: "string" },
  "max-size": { type: "string" },
  "max-depth": { type: "string" },
  keepalive: { type: "string" },
  ...ACCESS_OPTIONS,
  ...LISTENER_TLS_OPTIONS,
} as const;

/**
 * Parses a byte count: digits, optionally followed by K, M, G or T
 * (powers of 1024).
 *
 * @example Usage
 * ```ts
 * import { byteCount } from "./recv.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(byteCount("10M", "--max-size"), 10 * 1024 * 1024);
 * assertEquals(byteCount("0", "--max-size"), 0);
 * ```
 */
export function byteCount(value: string, flag: string): number {
  const m = /^(\d+)([KMGT]?)i?B?$/i.exec(value.trim());
  const n = m
    ? Number(m[1]) * 1024 ** "_KMGT".indexOf(m[2]!.toUpperCase() || "_")
    : NaN;
  if (!m || !Number.isSafeInteger(n)) {
    throw new UsageError(
      `invalid ${flag} value: ${value} (bytes expected, e.g. 500M)`,
    );
  }
  return n;
}

/** Runs `denocat recv`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS);
  if (values.help) {
    print(HELP);
    return 0;
  }
  const family = familyOf(values);
  const compat = compatMode(values.compat);
  const keep = values["keep-open"] ?? false;
  const dir = values.output;
  const idleTimeout = seconds(values["idle-timeout"], "--idle-timeout");
  const maxConns = positiveInt(values["max-conns"], "--max-conns");
  if (maxConns !== undefined && !keep) {
    throw new UsageError(
      "--max-conns needs -k (without it one sender is served)",
    );
  }
  const maxPending = positiveInt(values["max-pending"], "--max-pending");
  const maxPerIp = positiveInt(
    values["max-conns-per-ip"],
    "--max-conns-per-ip",
  );
  if (maxPerIp !== undefined && !keep) {
    throw new UsageError(
      "--max-conns-per-ip needs -k (without it one sender is served)",
    );
  }
  const maxDepth = positiveInt(values["max-depth"], "--max-depth");
  const maxSize = values["max-size"] === undefined
    ? undefined
    : byteCount(values["max-size"], "--max-size");
  if (maxPending !== undefined && !keep) {
    throw new UsageError(
      "--max-pending needs -k (without it one sender is served)",
    );
  }
  if (keep && dir === undefined) {
    throw new UsageError("-k needs -o DIR (stdout takes a single item)");
  }
  if (dir !== undefined) {
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (err) {
      // The argument is well-formed; the file system said no: a runtime failure.
      throw new DenocatError(`cannot use -o ${dir}: ${describeError(err)}`);
    }
  }
  const endpoint = serverEndpoint(positionals, values.unix);
  const progress = terminalProgress(!values["no-progress"]);
  const base = stderrLogger(values.verbose ?? false);
  const logger: Logger = {
    enabled: base.enabled,
    log(m) {
      progress?.clear();
      base.log(m);
    },
  };
  const access = await accessFrom(values);
  if (access.active && values.unix) {
    throw new UsageError("--allow/--deny apply to IP peers, not to -U");
  }
  if (access.active) base.log(`access list: ${access.describe()}`);
  const { server: serverTls } = await tlsFrom(values, "server");
  if (serverTls && values.unix) {
    throw new UsageError("--ssl-cert/--ssl-key apply to TCP, not to -U");
  }
  const wrap = serverTls ? await tlsWrap(serverTls) : undefined;
  using signal = shutdownSignal();
  let last: ConnectionResult | undefined;
  // A single item to stdout: `recv … | head` closing it ends quietly, exit 0.
  const stdout = stdoutWriter();
  let stdoutClosed = false;
  const output = {
    write: (p: Uint8Array) =>
      stdout.write(p).catch((err) => {
        if (err instanceof OutputClosedError) stdoutClosed = true;
        throw err;
      }),
  };
  const server = receiveServer(endpoint, {
    ...(access.active
      ? { accept: (a: Deno.Addr) => access.allowsAddr(a) }
      : {}),
    ...(wrap ? { wrap } : {}),
    onConnection: (r) => last = r,
    keep,
    compat,
    logger,
    overwrite: values.overwrite ?? false,
    ...(serverKeepalive(values.keepalive) ? { keepalive: true } : {}),
    ...(dir !== undefined ? { dir } : { output }),
    ...(family ? { family } : {}),
    ...(progress ? { progress } : {}),
    ...(idleTimeout !== undefined ? { idleTimeout } : {}),
    ...(maxConns !== undefined ? { maxConns } : {}),
    ...(maxPending !== undefined ? { maxPending } : {}),
    ...(maxPerIp !== undefined ? { maxConnsPerIp: maxPerIp } : {}),
    ...(maxDepth !== undefined ? { maxDepth } : {}),
    ...(maxSize !== undefined ? { maxSize } : {}),
  });
  try {
    await server.ready;
  } catch (err) {
    await server.close();
    throw err instanceof DenocatError
      ? err
      : new DenocatError(`cannot receive into ${dir}: ${describeError(err)}`);
  }
  logger.log(`listening on ${formatAddr(server.addr)}`);
  const onAbort = () => server.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const code = await server.finished;
    await server.close();
    if (stdoutClosed) return 0;
    if (code !== 0 && !keep) {
      // Without -k the exit code is this connection's: say why in one line.
      const failed = last?.items.find((i) => !i.ok);
      // Names and errors come from the peer: escaped before printing.
      throw new DenocatError(
        escapeText(
          last?.error ??
            (failed ? `${failed.name}: ${failed.error}` : "failed"),
        ),
        code,
      );
    }
    return code;
  } finally {
    signal.removeEventListener("abort", onAbort);
    progress?.end();
  }
}
