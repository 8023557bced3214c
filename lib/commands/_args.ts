/**
 * Shared command-line parsing for every denocat command, on `node:util`'s
 * strict `parseArgs`. Parse failures become {@linkcode UsageError}s (exit 2).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { type Family, parsePort } from "../address.ts";
import { UsageError } from "../errors.ts";
import type { KeepaliveTimers } from "../native/socket_fd.ts";
import { writeStdoutSync } from "../stdio.ts";
import type { Endpoint } from "../tcp/connect.ts";

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  help: { type: "boolean", short: "h" },
  verbose: { type: "boolean", short: "v" },
  ipv4: { type: "boolean", short: "4" },
  ipv6: { type: "boolean", short: "6" },
  // A flag, as in nc and ncat: the socket path is the positional argument.
  unix: { type: "boolean", short: "U" },
} as const satisfies ParseArgsOptionsConfig;

/**
 * Parses `args` strictly against `options`; unknown flags are usage errors
 * that name the nearest known flag. A value that looks like a negative
 * number (`-q -1`) is taken as the value of the flag before it, and
 * `--unix=PATH` as `--unix PATH`.
 */
export function parse<T extends ParseArgsOptionsConfig>(
  args: string[],
  options: T,
) {
  try {
    return parseArgs({
      args: normalize(args, options),
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    const msg = err instanceof Error
      ? err.message.split("\n")[0]!
      : String(err);
    const unknown = /^Unknown option '([^']+)'/.exec(msg)?.[1];
    if (unknown !== undefined) {
      const near = nearestFlag(unknown, options);
      throw new UsageError(
        `unknown option ${unknown}${
          near ? `; did you mean ${near}?` : ""
        } (see --help)`,
      );
    }
    throw new UsageError(
      `${msg.replace(/\. To specify a positional.*$/, "")} (see --help)`,
    );
  }
}

function normalize(args: string[], options: ParseArgsOptionsConfig): string[] {
  const out: string[] = [];
  const takesValue = (short: string) =>
    Object.values(options).some((o) =>
      o.short === short && o.type === "string"
    );
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    // `-q -1`, `-vq -1`: the last letter of the group takes the negative value.
    if (
      /^-[^-]+$/.test(a) && takesValue(a.at(-1)!) && next !== undefined &&
      /^-\d/.test(next)
    ) {
      out.push(a + next);
      i++;
      continue;
    }
    // `--keepalive` alone keeps the system's timers; its value is optional.
    if (a === "--keepalive" && "keepalive" in options) {
      out.push("--keepalive=");
      continue;
    }
    if (a.startsWith("--unix=")) {
      out.push("--unix", a.slice("--unix=".length));
      continue;
    }
    out.push(a);
  }
  return out;
}

/** The known flag nearest to `typed` (edit distance at most 2), or `undefined`. */
export function nearestFlag(
  typed: string,
  options: ParseArgsOptionsConfig,
): string | undefined {
  // Every single letter is one edit from every other: suggest only long flags.
  if (!typed.startsWith("--")) return undefined;
  const candidates = Object.keys(options).map((long) => `--${long}`);
  let best: string | undefined;
  let bestDist = 3;
  for (const c of candidates) {
    const d = editDistance(typed, c);
    if (d < bestDist) [best, bestDist] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(
        prev[j]! + 1,
        cur[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Parses a duration in seconds (`-w 1.5`) into milliseconds. */
export function seconds(
  value: string | undefined,
  flag: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`invalid ${flag} value: ${value} (seconds expected)`);
  }
  return Math.round(n * 1000);
}

/** `--keepalive[=IDLE[,INTVL[,CNT]]]`. */
export function keepaliveOption(
  value: string | undefined,
): boolean | KeepaliveTimers | undefined {
  if (value === undefined) return undefined;
  if (value === "") return true;
  const parts = value.split(",");
  if (parts.length > 3) {
    throw new UsageError(
      `invalid --keepalive value: ${value} (IDLE[,INTVL[,CNT]])`,
    );
  }
  const [idle, interval, count] = parts.map((p, i) =>
    positiveInt(
      p,
      ["--keepalive IDLE", "--keepalive INTVL", "--keepalive CNT"][
        i
      ]!,
    )
  );
  return {
    ...(idle !== undefined ? { idle } : {}),
    ...(interval !== undefined ? { interval } : {}),
    ...(count !== undefined ? { count } : {}),
  };
}

/** `--keepalive` for a server: plain keepalive only (the system's timers). */
export function serverKeepalive(value: string | undefined): boolean {
  const k = keepaliveOption(value);
  if (typeof k === "object") {
    throw new UsageError(
      "--keepalive timers apply when connecting; a server takes plain --keepalive",
    );
  }
  return k ?? false;
}

/** Parses a positive integer option. */
export function positiveInt(
  value: string | undefined,
  flag: string,
  min = 1,
): number | undefined {
  if (value === undefined) return undefined;
  if (
    !/^\d+$/.test(value) || Number(value) < min ||
    !Number.isSafeInteger(Number(value))
  ) {
    throw new UsageError(
      `invalid ${flag} value: ${value} (an integer >= ${min} expected)`,
    );
  }
  return Number(value);
}

/** The address family selected by `-4`/`-6`. */
export function familyOf(
  values: { ipv4?: boolean; ipv6?: boolean },
): Family | undefined {
  if (values.ipv4 && values.ipv6) {
    throw new UsageError("-4 and -6 cannot be combined");
  }
  return values.ipv4 ? 4 : values.ipv6 ? 6 : undefined;
}

/** Parses `HOST PORT` (exactly two positionals); PORT may be a service name. */
export function hostAndPort(
  positionals: string[],
  protocol: "tcp" | "udp" = "tcp",
): { hostname: string; port: number } {
  if (positionals.length !== 2) {
    throw new UsageError(
      positionals.length < 2
        ? "missing HOST and PORT (see --help)"
        : `unexpected argument: ${positionals[2]}`,
    );
  }
  return {
    hostname: positionals[0]!,
    port: parsePort(positionals[1]!, { protocol }),
  };
}

/** Parses `--split`: one datagram or frame per `line` (default) or per read `chunk`. */
export function splitMode(value: string | undefined): "line" | "chunk" {
  if (value === undefined || value === "line" || value === "chunk") {
    return value ?? "line";
  }
  throw new UsageError(`invalid --split value: ${value} (line or chunk)`);
}

/**
 * The socket path of `-U PATH`: one positional. `@name` is a Linux abstract
 * socket (no file), passed to Deno as `"\0name"`.
 */
export function unixPath(positionals: string[]): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "missing PATH for -U (see --help)"
        : `-U takes one PATH instead of HOST PORT (unexpected: ${
          positionals[1]
        })`,
    );
  }
  const path = positionals[0]!;
  if (path.startsWith("@")) {
    if (Deno.build.os !== "linux") {
      throw new UsageError(
        `abstract Unix sockets (${path}) exist only on Linux`,
      );
    }
    if (path.length === 1) throw new UsageError("missing name after @");
    return "\0" + path.slice(1);
  }
  if (path === "") throw new UsageError("empty Unix socket path");
  return path;
}

/** Builds the endpoint a client connects to: `HOST PORT` or `-U PATH`. */
export function clientEndpoint(
  positionals: string[],
  unix: boolean | undefined,
  protocol: "tcp" | "udp" = "tcp",
): Endpoint {
  if (unix) return { path: unixPath(positionals) };
  return hostAndPort(positionals, protocol);
}

/** Builds the endpoint a server binds: `[HOST] PORT` or `-U PATH`. */
export function serverEndpoint(
  positionals: string[],
  unix: boolean | undefined,
  defaultHost?: string,
  protocol: "tcp" | "udp" = "tcp",
): Endpoint | { port: number; hostname?: undefined; path?: undefined } {
  if (unix) return { path: unixPath(positionals) };
  if (positionals.length === 1) {
    const port = parsePort(positionals[0]!, { allowZero: true, protocol });
    return defaultHost === undefined
      ? { port }
      : { hostname: defaultHost, port };
  }
  if (positionals.length === 2) {
    return {
      hostname: positionals[0]!,
      port: parsePort(positionals[1]!, { allowZero: true, protocol }),
    };
  }
  throw new UsageError(
    positionals.length === 0
      ? "missing PORT (see --help)"
      : `unexpected argument: ${positionals[2]}`,
  );
}

/**
 * An AbortSignal that fires on SIGINT or SIGTERM (SIGINT or SIGBREAK on
 * Windows); dispose to remove the handlers.
 */
export function shutdownSignal(): AbortSignal & Disposable {
  const ac = new AbortController();
  const onSignal = () => ac.abort(new Error("interrupted"));
  // Windows delivers only Ctrl-C and Ctrl-Break (adding SIGTERM throws).
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  return Object.assign(ac.signal, {
    [Symbol.dispose]() {
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
    },
  });
}

const encoder = new TextEncoder();

/** Writes help or other text to stdout (waiting while a non-blocking stdout is full). */
export function print(text: string): void {
  writeStdoutSync(
    encoder.encode(text.endsWith("\n") ? text : text + "\n"),
  );
}
