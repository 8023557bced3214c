/**
 * `denocat send [options] HOST PORT [PATH|-]...`: verified transfer of
 * files, directory trees and stdin.
 *
 * @module
 */
import { parsePort } from "../address.ts";
import { UsageError } from "../errors.ts";
import { type Logger, stderrLogger } from "../log.ts";
import { closeQuietly, connect, type Endpoint } from "../tcp/connect.ts";
import { collectItems } from "../transfer/items.ts";
import { terminalProgress } from "../transfer/progress.ts";
import { seedSendOver } from "../transfer/seed.ts";
import { sendOver } from "../transfer/send.ts";
import { escapeText } from "../transfer/show.ts";
import { COMMON_OPTIONS, familyOf, parse, print, seconds } from "./_args.ts";

/** Help for `denocat send`. */
export const HELP = `Usage: denocat send [options] HOST PORT [PATH|-]...
       denocat send [options] -U SOCKET [PATH|-]...

Send files, directory trees (-r) and stdin (- or no PATH) to 'denocat recv'.
Every item carries its sha256; the receiver writes it to a temporary file,
verifies it, renames it into place and acknowledges it.

Options:
  -r, --recursive     send directories, keeping paths relative to their parent
      --name NAME     name of the stdin item (default: stdin)
      --compat MODE   native (default) or seed: the seeds' header
                      (u32le length, {"filename","md5","total_size"}, body;
                      no acknowledgements)
      --no-progress   no progress bar (it is shown only when stderr is a terminal)
  -w SECS             connect timeout
  -4, -6              IPv4 / IPv6 only
  -U, --unix PATH     connect to a Unix socket
  -v, --verbose       per item: name, bytes, duration, MB/s, sha256
  -h, --help          this help

Exit codes: 0 every item acknowledged as written and verified, 1 network
failure or an item refused (name clash, unsafe name), 2 usage error,
3 an item failed verification. With --compat seed there are no
acknowledgements: 0 means every item was sent, not that it was verified
(a seed receiver that refuses an item can only close the connection).
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  recursive: { type: "boolean", short: "r" },
  name: { type: "string" },
  compat: { type: "string" },
  "no-progress": { type: "boolean" },
  wait: { type: "string", short: "w" },
} as const;

/** Parses `--compat`. */
export function compatMode(value: string | undefined): "native" | "seed" {
  if (value === undefined || value === "native") return "native";
  if (value === "seed") return "seed";
  throw new UsageError(`invalid --compat value: ${value} (native or seed)`);
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
  if (values.unix !== undefined) {
    endpoint = { path: values.unix };
    paths = positionals;
  } else {
    if (positionals.length < 2) {
      throw new UsageError("missing HOST and PORT (see --help)");
    }
    endpoint = { hostname: positionals[0]!, port: parsePort(positionals[1]!) };
    paths = positionals.slice(2);
  }
  const progress = terminalProgress(!values["no-progress"]);
  const base = stderrLogger(values.verbose ?? false);
  const logger: Logger = {
    enabled: base.enabled,
    log(m) {
      progress?.clear();
      base.log(m);
    },
  };
  const items = await collectItems(paths, {
    recursive: values.recursive ?? false,
    ...(values.name !== undefined ? { stdinName: values.name } : {}),
    onSkip: (p, why) => logger.log(`skipping ${p}: ${why}`),
  });
  if (items.length === 0) throw new UsageError("nothing to send");
  const conn = await connect(endpoint, {
    ...(family ? { family } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
  });
  try {
    const opts = { logger, ...(progress ? { progress } : {}) };
    const result = compat === "seed"
      ? await seedSendOver(conn, items, opts)
      : await sendOver(conn, items, opts);
    progress?.end();
    for (const r of result.items) {
      if (r.ok) continue;
      // The error may be the receiver's own words: escaped before printing.
      const msg = r.error ?? "failed";
      console.error(
        `denocat: ${
          escapeText(msg.includes(r.name) && r.name ? msg : `${r.name}: ${msg}`)
        }`,
      );
    }
    return result.exitCode;
  } finally {
    progress?.end();
    closeQuietly(conn);
  }
}
