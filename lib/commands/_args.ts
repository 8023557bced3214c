/**
 * Shared command-line parsing for every denocat command, on `node:util`'s
 * strict `parseArgs`. Parse failures become {@linkcode UsageError}s (exit 2).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { type Family, parsePort } from "../address.ts";
import { UsageError } from "../errors.ts";
import type { Endpoint } from "../tcp/connect.ts";

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  help: { type: "boolean", short: "h" },
  verbose: { type: "boolean", short: "v" },
  ipv4: { type: "boolean", short: "4" },
  ipv6: { type: "boolean", short: "6" },
  unix: { type: "string", short: "U" },
} as const satisfies ParseArgsOptionsConfig;

/** Parses `args` strictly against `options`; unknown flags are usage errors. */
export function parse<T extends ParseArgsOptionsConfig>(
  args: string[],
  options: T,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    const msg = err instanceof Error
      ? err.message.split("\n")[0]!
      : String(err);
    throw new UsageError(
      `${msg.replace(/\. To specify a positional.*$/, "")} (see --help)`,
    );
  }
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

/** Parses `HOST PORT` (exactly two positionals). */
export function hostAndPort(
  positionals: string[],
): { hostname: string; port: number } {
  if (positionals.length !== 2) {
    throw new UsageError(
      positionals.length < 2
        ? "missing HOST and PORT (see --help)"
        : `unexpected argument: ${positionals[2]}`,
    );
  }
  return { hostname: positionals[0]!, port: parsePort(positionals[1]!) };
}

/** Parses `--split`: one datagram or frame per `line` (default) or per read `chunk`. */
export function splitMode(value: string | undefined): "line" | "chunk" {
  if (value === undefined || value === "line" || value === "chunk") {
    return value ?? "line";
  }
  throw new UsageError(`invalid --split value: ${value} (line or chunk)`);
}

/** Builds the endpoint a client connects to: `HOST PORT` or `-U PATH`. */
export function clientEndpoint(
  positionals: string[],
  unix: string | undefined,
): Endpoint {
  if (unix !== undefined) {
    if (positionals.length) {
      throw new UsageError("-U takes a path instead of HOST PORT");
    }
    return { path: unix };
  }
  return hostAndPort(positionals);
}

/** Builds the endpoint a server binds: `[HOST] PORT` or `-U PATH`. */
export function serverEndpoint(
  positionals: string[],
  unix: string | undefined,
  defaultHost?: string,
): Endpoint | { port: number; hostname?: undefined; path?: undefined } {
  if (unix !== undefined) {
    if (positionals.length) {
      throw new UsageError("-U takes a path instead of [HOST] PORT");
    }
    return { path: unix };
  }
  if (positionals.length === 1) {
    const port = parsePort(positionals[0]!, { allowZero: true });
    return defaultHost === undefined
      ? { port }
      : { hostname: defaultHost, port };
  }
  if (positionals.length === 2) {
    return {
      hostname: positionals[0]!,
      port: parsePort(positionals[1]!, { allowZero: true }),
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

/** Writes help or other text to stdout. */
export function print(text: string): void {
  const bytes = encoder.encode(text.endsWith("\n") ? text : text + "\n");
  for (let off = 0; off < bytes.length;) {
    off += Deno.stdout.writeSync(bytes.subarray(off));
  }
}
