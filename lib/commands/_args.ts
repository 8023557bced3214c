/**
 * Shared command-line parsing for every denocat command: a strict parser
 * with the rules and messages of `node:util`'s `parseArgs` (strict, with
 * positionals), written here because loading `node:util` costs about 6 ms
 * and 3-5 MB of memory in every command. Parse failures become
 * {@linkcode UsageError}s (exit 2).
 *
 * @module
 */
import { type Family, parsePort } from "../address.ts";
import { UsageError } from "../errors.ts";
import type { KeepaliveTimers } from "../native/socket_fd.ts";
import { writeStdoutSync } from "../stdio.ts";
import type { Endpoint } from "../tcp/connect.ts";

/** One option: a flag (`boolean`) or an option with a value (`string`). */
export interface OptionConfig {
  type: "boolean" | "string";
  /** A one-letter alias (`-v` for `--verbose`). */
  short?: string;
  /** Collects every use into an array. */
  multiple?: boolean;
}

/** The options a command accepts, by long name. */
export type ParseArgsOptionsConfig = Record<string, OptionConfig>;

/** What {@linkcode parseStrict} makes of each option of `T`. */
export type ParsedValues<T extends ParseArgsOptionsConfig> = {
  -readonly [K in keyof T]?: T[K] extends { type: "string" }
    ? T[K] extends { multiple: true } ? string[] : string
    : T[K] extends { multiple: true } ? boolean[]
    : boolean;
};

interface Token {
  name: string;
  rawName: string;
  value: string | undefined;
  inline: boolean;
}

/**
 * Parses `args` as `node:util`'s `parseArgs({ args, options, strict: true,
 * allowPositionals: true })` does, with the same error messages: `-abc`
 * groups, `-wVALUE`, `--name=value`, `--` ending the options. Throws a
 * plain `Error` on misuse.
 */
export function parseStrict<T extends ParseArgsOptionsConfig>(
  args: readonly string[],
  options: T,
): { values: ParsedValues<T>; positionals: string[] } {
  const has = (name: string) => Object.hasOwn(options, name);
  const longFor = (short: string) => {
    for (const name of Object.keys(options)) {
      if (options[name]!.short === short) return name;
    }
    return short;
  };
  const typeOf = (name: string) => has(name) ? options[name]!.type : undefined;
  const tokens: Token[] = [];
  const positionals: string[] = [];
  const rest = [...args];
  while (rest.length > 0) {
    const arg = rest.shift()!;
    if (arg === "--") {
      positionals.push(...rest);
      break;
    }
    const next = rest[0];
    if (arg.length === 2 && arg[0] === "-" && arg[1] !== "-") {
      const name = longFor(arg[1]!);
      const value = typeOf(name) === "string" && next !== undefined
        ? rest.shift()
        : undefined;
      tokens.push({ name, rawName: arg, value, inline: false });
    } else if (arg.length > 2 && arg[0] === "-" && arg[1] !== "-") {
      const name = longFor(arg[1]!);
      if (typeOf(name) === "string") {
        // -wVALUE
        tokens.push({
          name,
          rawName: arg.slice(0, 2),
          value: arg.slice(2),
          inline: true,
        });
      } else {
        // -abc is -a -b -c; a letter that takes a value takes the rest.
        const expanded: string[] = [];
        for (let i = 1; i < arg.length; i++) {
          const letter = arg[i]!;
          if (typeOf(longFor(letter)) !== "string" || i === arg.length - 1) {
            expanded.push(`-${letter}`);
          } else {
            expanded.push(`-${arg.slice(i)}`);
            break;
          }
        }
        rest.unshift(...expanded);
      }
    } else if (arg.length > 2 && arg.startsWith("--")) {
      const eq = arg.indexOf("=", 3);
      if (eq === -1) {
        const name = arg.slice(2);
        const value = typeOf(name) === "string" && next !== undefined
          ? rest.shift()
          : undefined;
        tokens.push({ name, rawName: arg, value, inline: false });
      } else {
        tokens.push({
          name: arg.slice(2, eq),
          rawName: arg.slice(0, eq),
          value: arg.slice(eq + 1),
          inline: true,
        });
      }
    } else {
      positionals.push(arg);
    }
  }
  const values: Record<string, unknown> = Object.create(null);
  for (const t of tokens) {
    if (!has(t.name)) {
      throw new Error(
        `Unknown option '${t.rawName}'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- ${
          JSON.stringify(t.rawName)
        }`,
      );
    }
    const { type, short, multiple } = options[t.name]!;
    const shortAndLong = `${short ? `-${short}, ` : ""}--${t.name}`;
    if (type === "string" && t.value === undefined) {
      throw new Error(`Option '${shortAndLong} <value>' argument missing`);
    }
    if (type === "boolean" && t.value !== undefined) {
      throw new Error(`Option '${shortAndLong}' does not take an argument`);
    }
    if (
      !t.inline && t.value !== undefined && t.value.length > 1 &&
      t.value[0] === "-"
    ) {
      const example = t.rawName.startsWith("--")
        ? `'${t.rawName}=-XYZ'`
        : `'--${t.name}=-XYZ' or '${t.rawName}-XYZ'`;
      throw new Error(
        `Option '${t.rawName}' argument is ambiguous.\nDid you forget to specify the option argument for '${t.rawName}'?\nTo specify an option argument starting with a dash use ${example}.`,
      );
    }
    if (t.name === "__proto__") continue;
    const value = t.value ?? true;
    if (multiple) {
      ((values[t.name] as unknown[] | undefined) ??= []).push(value);
    } else values[t.name] = value;
  }
  return { values: values as ParsedValues<T>, positionals };
}

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
    return parseStrict(normalize(args, options), options);
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
