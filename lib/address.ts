/**
 * Parsing and printing of ports and socket addresses.
 *
 * @module
 */
import { UsageError } from "./errors.ts";

/** Address family restriction: `4` for IPv4 only, `6` for IPv6 only. */
export type Family = 4 | 6;

/** Options for {@linkcode parsePort}. */
export interface ParsePortOptions {
  /** Accept `0` (listeners: let the system pick a free port). @default {false} */
  allowZero?: boolean;
  /** The protocol a service name is looked up for. @default {"tcp"} */
  protocol?: "tcp" | "udp";
}

/**
 * Parses a port: a decimal number, or a service name from `/etc/services`
 * (`http`, `ssh`, `domain`) for `options.protocol`. `0` is accepted only
 * with `allowZero`.
 *
 * @example Usage
 * ```ts
 * import { parsePort } from "./address.ts";
 * import { assertEquals, assertThrows } from "./_assert.ts";
 * assertEquals(parsePort("8080"), 8080);
 * assertThrows(() => parsePort("99999"), Error, "invalid port");
 * ```
 */
export function parsePort(
  text: string,
  options: ParsePortOptions = {},
): number {
  if (!/^\d{1,5}$/.test(text)) {
    const named = /^[a-zA-Z][\w.+-]*$/.test(text)
      ? servicePort(text, options.protocol ?? "tcp")
      : undefined;
    if (named !== undefined) return named;
    throw new UsageError(
      /^[a-zA-Z]/.test(text)
        ? `invalid port: ${text} (not a ${
          options.protocol ?? "tcp"
        } service in /etc/services)`
        : `invalid port: ${text}`,
    );
  }
  const port = Number(text);
  const min = options.allowZero ? 0 : 1;
  if (port < min || port > 65535) throw new UsageError(`invalid port: ${text}`);
  return port;
}

/**
 * Formats a host and port for messages: IPv6 literals get brackets.
 *
 * @example Usage
 * ```ts
 * import { hostPort } from "./address.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(hostPort("::1", 80), "[::1]:80");
 * assertEquals(hostPort("127.0.0.1", 80), "127.0.0.1:80");
 * assertEquals(hostPort("[::1]", 80), "[::1]:80");
 * ```
 */
export function hostPort(hostname: string, port: number): string {
  hostname = unbracket(hostname);
  return hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}

/**
 * Formats any Deno address (TCP, UDP or Unix) for messages.
 *
 * @example Usage
 * ```ts
 * import { formatAddr } from "./address.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(formatAddr({ transport: "tcp", hostname: "::1", port: 7 }), "[::1]:7");
 * assertEquals(formatAddr({ transport: "unix", path: "/tmp/s" }), "/tmp/s");
 * ```
 */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return hostPort(addr.hostname, addr.port);
  }
  return unixName((addr as Deno.UnixAddr).path);
}

/**
 * A Unix socket path for messages: an abstract name (`"\0name"`) shows as
 * `@name`, as `ss` and nc users write it.
 */
export function unixName(path: string): string {
  if (!path) return "(unnamed unix socket)";
  return path.startsWith("\0") ? `@${path.slice(1)}` : path;
}

/** Returns 4 or 6 for an IP literal, or `undefined` for a host name. */
export function ipFamily(hostname: string): Family | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(hostname)) return 4;
  if (hostname.includes(":")) return 6;
  return undefined;
}

/** Strips the brackets users may put around an IPv6 literal (`[::1]`). */
export function unbracket(hostname: string): string {
  return hostname.startsWith("[") && hostname.endsWith("]")
    ? hostname.slice(1, -1)
    : hostname;
}

/** name/protocol to port, and port/protocol to name, from `/etc/services`. */
let services:
  | { byName: Map<string, number>; byPort: Map<string, string> }
  | undefined;

function serviceTable() {
  if (services) return services;
  services = { byName: new Map(), byPort: new Map() };
  let text = "";
  try {
    text = Deno.readTextFileSync(SERVICES_FILE);
  } catch { /* no services file: numbers only */ }
  for (const raw of text.split("\n")) {
    const [name, spec, ...aliases] = raw.replace(/#.*/, "").trim().split(
      /\s+/,
    );
    const m = spec && /^(\d+)\/(tcp|udp)$/.exec(spec);
    if (!name || !m) continue;
    const port = Number(m[1]);
    for (const n of [name, ...aliases]) {
      if (!services.byName.has(`${n}/${m[2]}`)) {
        services.byName.set(`${n}/${m[2]}`, port);
      }
    }
    if (!services.byPort.has(`${port}/${m[2]}`)) {
      services.byPort.set(`${port}/${m[2]}`, name);
    }
  }
  return services;
}

/** Where service names come from. */
export const SERVICES_FILE = "/etc/services";

/**
 * The port of service `name` for `protocol` in `/etc/services`, or
 * `undefined` when it is not listed (or the file is missing).
 *
 * @example Usage
 * ```ts
 * import { servicePort } from "./address.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(servicePort("no-such-service", "tcp"), undefined);
 * ```
 */
export function servicePort(
  name: string,
  protocol: "tcp" | "udp",
): number | undefined {
  return serviceTable().byName.get(`${name}/${protocol}`);
}

/** The `/etc/services` name of `port` for `protocol`, as `nc -v` prints it. */
export function serviceName(
  port: number,
  protocol: "tcp" | "udp",
): string | undefined {
  return serviceTable().byPort.get(`${port}/${protocol}`);
}
