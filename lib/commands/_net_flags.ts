/**
 * The flag groups several commands share (see _net.ts, which turns their
 * values into the library's options), as plain data: declaring them costs
 * no import.
 *
 * @module
 */

/** `--allow`, `--deny`, `--allowfile`, `--denyfile`. */
export const ACCESS_OPTIONS = {
  allow: { type: "string", multiple: true },
  deny: { type: "string", multiple: true },
  allowfile: { type: "string", multiple: true },
  denyfile: { type: "string", multiple: true },
} as const;

/** nc's `-x`/`-X`/`-P` and ncat's `--proxy*`. */
export const PROXY_OPTIONS = {
  proxy: { type: "string", short: "x" },
  "proxy-type": { type: "string", short: "X" },
  "proxy-auth": { type: "string", short: "P" },
  "proxy-dns": { type: "string" },
} as const;

/** TLS toward the peer we connect to. */
export const CLIENT_TLS_OPTIONS = {
  ssl: { type: "boolean" },
  tls: { type: "boolean" },
  "ssl-trustfile": { type: "string", multiple: true },
  ca: { type: "string", multiple: true },
  "ssl-servername": { type: "string" },
  "ssl-alpn": { type: "string" },
  insecure: { type: "boolean" },
  "ssl-pin": { type: "string", multiple: true },
} as const;

/**
 * TLS toward the clients of a listener (when connecting, `--ssl-cert` and
 * `--ssl-key` are the client's own certificate).
 */
export const SERVER_TLS_OPTIONS = {
  "ssl-cert": { type: "string" },
  "ssl-key": { type: "string" },
  "ssl-verify-client": { type: "boolean" },
} as const;

/** What a listener-only command takes: its certificate, and client verification. */
export const LISTENER_TLS_OPTIONS = {
  ...SERVER_TLS_OPTIONS,
  "ssl-trustfile": { type: "string", multiple: true },
  ca: { type: "string", multiple: true },
} as const;

/** Both TLS groups, for commands that connect or listen. */
export const TLS_OPTIONS = {
  ...CLIENT_TLS_OPTIONS,
  ...SERVER_TLS_OPTIONS,
} as const;

/** ncat's `-e`/`--exec` and `-c`/`--sh-exec`. */
export const EXEC_OPTIONS = {
  exec: { type: "string", short: "e" },
  "sh-exec": { type: "string", short: "c" },
} as const;

/** ncat's `--hex-dump`, and `--session-log`/`--append`. */
export const SESSION_LOG_OPTIONS = {
  "hex-dump": { type: "string" },
  "session-log": { type: "string" },
  append: { type: "boolean" },
} as const;
