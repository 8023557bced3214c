/**
 * `denocat send [options] HOST PORT [PATH|-]...`: verified transfer of
 * files, directory trees and stdin.
 *
 * @module
 */
import { stdinReader } from "../stdio.ts";
import { parsePort } from "../address.ts";
import { UsageError } from "../errors.ts";
import { type Logger, stderrLogger } from "../log.ts";
import { closeQuietly, connect, type Endpoint } from "../tcp/connect.ts";
import { collectItems } from "../transfer/items.ts";
import { terminalProgress } from "../transfer/progress.ts";
import { seedSendOver } from "../transfer/seed.ts";
import { sendOver } from "../transfer/send.ts";
import { escapeText } from "../transfer/show.ts";
import {
  dialerFor,
  PROXY_OPTIONS,
  proxyFrom,
  TLS_OPTIONS,
  tlsFrom,
} from "./_net.ts";
import {
  COMMON_OPTIONS,
  familyOf,
  keepaliveOption,
  parse,
  print,
  seconds,
  unixPath,
} from "./_args.ts";

/** Help for `denocat send`. */
export const HELP = `Usage: denocat send [options] HOST PORT [PATH|-]...
       denocat send [options] -U SOCKET [PATH|-]...

Send files, directory trees (-r) and stdin (- or no PATH) to 'denocat recv'.
Every item carries its sha256; the receiver writes it to a temporary file,
verifies it, renames it into place and acknowledges it. In a tree,
directories (empty ones too) are sent with their mode, and symlinks as
symlinks (the receiver creates one only if it stays inside its directory);
with -L what they point to. Symlinks named on the command line are
followed. Anything left out (sockets, FIFOs, devices) is reported.

Options:
  -r, --recursive     send directories, keeping paths relative to their parent
  -L, --dereference   in trees, follow symlinks (default: send them as symlinks)
      --name NAME     name of the stdin item (default: stdin)
      --compat MODE   native (default) or seed: the seeds' header
                      (u32le length, {"filename","md5","total_size"}, body;
                      no acknowledgements)
      --no-progress   no progress bar (it is shown only when stderr is a terminal)
  -w SECS             connect timeout
      --keepalive[=IDLE[,INTVL[,CNT]]]
                      TCP keepalive; timers (seconds, probes) need Linux
                      with FFI
  -x, --proxy ADDR[:PORT]
                      connect through a proxy; -X, --proxy-type 4|5|connect
                      (default socks5); -P, --proxy-auth USER[:PASS];
                      --proxy-dns local|remote (as the main mode)
      --ssl, --tls    TLS toward 'recv --ssl-cert', verified against the
                      system roots and --ssl-trustfile/--ca FILE; also
                      --ssl-servername NAME, --ssl-alpn LIST, --ssl-pin
                      sha256:HEX, --insecure (no verification; said on stderr)
      --ssl-cert FILE --ssl-key FILE
                      with --ssl: present this client certificate
  -4, -6              IPv4 / IPv6 only
  -U, --unix          the first argument is a Unix socket path (@NAME: abstract,
                      Linux) instead of HOST PORT
  -v, --verbose       per item: name, bytes, duration, MB/s, sha256
  -h, --help          this help

Exit codes: 0 every item acknowledged as written and verified, 1 network
failure, an item refused (name clash, unsafe name, busy, too large, no
space) or a file that could not be read, 2 usage error, 3 an item failed
verification. With --compat seed there are no
acknowledgements: 0 means every item was sent, not that it was verified
(a seed receiver that refuses an item can only close the connection).
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  recursive: { type: "boolean", short: "r" },
  dereference: { type: "boolean", short: "L" },
  name: { type: "string" },
  compat: { type: "string" },
  "no-progress": { type: "boolean" },
  wait: { type: "string", short: "w" },
  keepalive: { type: "string" },
  ...PROXY_OPTIONS,
  ...TLS_OPTIONS,
} as const;

/** Parses `--compat`. */
export function compatMode(value: string | undefined): "native" | "seed" {
  if (value === undefined || value === "native") return "native";
  if (value === "seed") return "seed";
  throw new UsageError(`invalid --compat value: ${value} (native or seed)`);
}

/**
 * Whether an error message already names the item (`NAME: ...`,
 * `NAME already ...`, `cannot write NAME: ...`, `unsafe name "NAME": ...`),
 * so the line need not repeat it.
 *
 * @example Usage
 * ```ts
 * import { mentions } from "./send.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(mentions('unsafe name "a/b": x', "a/b"), true);
 * assertEquals(mentions("a already exists", "a"), true);
 * assertEquals(mentions("not sent: more than --max-size", "z"), false);
 * ```
 */
export function mentions(msg: string, name: string): boolean {
  if (name === "") return true;
  return msg.startsWith(`${name}:`) || msg.startsWith(`${name} `) ||
    msg.includes(` ${name}:`) || msg.includes(JSON.stringify(name));
}

/** Runs `denocat send`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, OPTIONS);
  if (values.help) {
    print(HELP);
    return 0;
  }
  const family = familyOf(values);
  const timeout = seconds(values.wait, "-w");
  const compat = compatMode(values.compat);
  let endpoint: Endpoint;
  let paths: string[];
  if (values.unix) {
    endpoint = { path: unixPath(positionals.slice(0, 1)) };
    paths = positionals.slice(1);
  } else {
    if (positionals.length < 2) {
      throw new UsageError("missing HOST and PORT (see --help)");
    }
    endpoint = { hostname: positionals[0]!, port: parsePort(positionals[1]!) };
    paths = positionals.slice(2);
  }
  const keepalive = keepaliveOption(values.keepalive);
  const proxy = proxyFrom(values);
  if (proxy && values.unix) {
    throw new UsageError("--proxy needs HOST PORT, not -U");
  }
  if (proxy && keepalive !== undefined) {
    throw new UsageError(
      "--keepalive cannot be combined with --proxy (the proxy makes the connection)",
    );
  }
  const { client: tls } = await tlsFrom(values, "client", "receiver");
  const progress = terminalProgress(!values["no-progress"]);
  const base = stderrLogger(values.verbose ?? false);
  const logger: Logger = {
    enabled: base.enabled,
    log(m) {
      progress?.clear();
      base.log(m);
    },
  };
  // What is left out is said without -v: a copy that silently lacks
  // something is the failure users do not notice.
  const skip = (p: string, why: string) => {
    progress?.clear();
    console.error(`denocat: skipping ${escapeText(p)}: ${why}`);
  };
  let items = await collectItems(paths, {
    recursive: values.recursive ?? false,
    followLinks: values.dereference ?? false,
    ...(values.name !== undefined ? { stdinName: values.name } : {}),
    stdin: stdinReader(),
    onSkip: skip,
  });
  if (compat === "seed") {
    // The seeds' header carries files only: directories are implied by
    // the names, symlinks cannot be sent.
    items = items.filter((i) => {
      if (i.kind === "symlink") {
        skip(i.name, "symlink (--compat seed carries only files)");
      }
      return i.kind !== "dir" && i.kind !== "symlink";
    });
  }
  if (items.length === 0) throw new UsageError("nothing to send");
  const dial = dialerFor(endpoint, proxy, tls, {
    family,
    wait: timeout,
    ...(keepalive !== undefined ? { connectFrom: { keepalive } } : {}),
  });
  const conn = dial ? await dial() : await connect(endpoint, {
    ...(keepalive !== undefined ? { keepalive } : {}),
    ...(family ? { family } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
  });
  try {
    const opts = {
      logger,
      ...(progress ? { progress } : {}),
      // An HTTP CONNECT proxy may end both directions at our FIN (tinyproxy
      // does), taking the receiver's acknowledgements with it.
      ...(proxy?.type === "http" ? { halfClose: false } : {}),
    };
    const result = compat === "seed"
      ? await seedSendOver(conn, items, opts)
      : await sendOver(conn, items, opts);
    progress?.end();
    // Items lost to one cause (the connection ended, the receiver is too
    // old) are said once, not once per item of a large tree.
    const lost = new Map<string, string[]>();
    for (const r of result.items) {
      if (r.ok || r.code !== "network") continue;
      const why = (r.error ?? "failed").replace(
        /^(no acknowledgement|not sent): /,
        "",
      );
      lost.set(why, [...lost.get(why) ?? [], r.name]);
    }
    for (const r of result.items) {
      if (r.ok) continue;
      // The error may be the receiver's own words: escaped before printing.
      const msg = r.error ?? "failed";
      if (r.code === "network") {
        const why = msg.replace(/^(no acknowledgement|not sent): /, "");
        const names = lost.get(why);
        if (!names) continue; // said already
        lost.delete(why);
        if (names.length > 1) {
          console.error(
            `denocat: ${names.length} items (${
              escapeText(names[0]!)
            } and the rest) not acknowledged: ${escapeText(why)}`,
          );
          continue;
        }
      }
      console.error(
        `denocat: ${
          escapeText(mentions(msg, r.name) ? msg : `${r.name}: ${msg}`)
        }`,
      );
    }
    return result.exitCode;
  } finally {
    progress?.end();
    closeQuietly(conn);
  }
}
