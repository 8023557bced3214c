/**
 * Flag groups several commands share: access lists, a proxy toward the
 * target, TLS as a client and as a server, programs on connections, and
 * session recording. Each group is an options fragment for `parse` and a
 * function that turns its values into the library's options, with the
 * usage errors a wrong combination deserves.
 *
 * @module
 */
import { type AccessList, buildAccessList } from "../access/list.ts";
import { createPrivateKey, X509Certificate } from "node:crypto";
import {
  DenocatError,
  describeError,
  netError,
  UsageError,
} from "../errors.ts";
import {
  type ClientTlsOptions,
  parsePin,
  type ServerTlsPem,
} from "../forward/tls.ts";
import type { Conn, ConnectOptions, Endpoint } from "../tcp/connect.ts";
import {
  parseProxy,
  parseProxyType,
  type ProxySpec,
} from "../proxy/connect.ts";
import { type ExecSpec, parseExec } from "../exec/stream.ts";
import type { SessionLogOptions, SessionRecorder } from "../session_log.ts";

// The flag groups are plain data in _net_flags.ts, so that a command can
// declare them without loading what turns them into options (node:crypto,
// TLS, proxies): the probe command loads this module only when one is used.
export {
  ACCESS_OPTIONS,
  CLIENT_TLS_OPTIONS,
  EXEC_OPTIONS,
  LISTENER_TLS_OPTIONS,
  PROXY_OPTIONS,
  SERVER_TLS_OPTIONS,
  SESSION_LOG_OPTIONS,
  TLS_OPTIONS,
} from "./_net_flags.ts";

/** Reads a PEM file named by `flag`, or fails in one line. */
export async function readPem(path: string, flag: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw netError(`read ${flag} ${path}`, err);
  }
}

/** The access list the flags describe (open when none is given). */
export function accessFrom(values: {
  allow?: string[];
  deny?: string[];
  allowfile?: string[];
  denyfile?: string[];
}): Promise<AccessList> {
  return buildAccessList({
    ...(values.allow ? { allow: values.allow } : {}),
    ...(values.deny ? { deny: values.deny } : {}),
    ...(values.allowfile ? { allowFiles: values.allowfile } : {}),
    ...(values.denyfile ? { denyFiles: values.denyfile } : {}),
  });
}

/** The proxy the flags name, or `undefined`; `--proxy-*` without `--proxy` is a usage error. */
export function proxyFrom(values: {
  proxy?: string;
  "proxy-type"?: string;
  "proxy-auth"?: string;
  "proxy-dns"?: string;
}): ProxySpec | undefined {
  if (values.proxy === undefined) {
    for (const f of ["proxy-type", "proxy-auth", "proxy-dns"] as const) {
      if (values[f] !== undefined) throw new UsageError(`--${f} needs --proxy`);
    }
    return undefined;
  }
  const auth = values["proxy-auth"] ?? Deno.env.get("DENOCAT_PROXY_AUTH");
  return parseProxy(values.proxy, {
    type: parseProxyType(values["proxy-type"] ?? "socks5"),
    ...(auth !== undefined && auth !== "" ? { auth } : {}),
    ...(values["proxy-dns"] !== undefined ? { dns: values["proxy-dns"] } : {}),
  });
}

/**
 * The client TLS settings, or `undefined` without `--ssl`/`--tls` (the
 * other client TLS flags alone are usage errors). `--insecure` says so on
 * stderr.
 */
export async function clientTlsFrom(
  values: {
    ssl?: boolean;
    tls?: boolean;
    "ssl-trustfile"?: string[];
    ca?: string[];
    "ssl-servername"?: string;
    "ssl-alpn"?: string;
    insecure?: boolean;
    "ssl-pin"?: string[];
  },
  /** Who the certificate belongs to, for the `--insecure` warning. */
  peer = "peer",
): Promise<ClientTlsOptions | undefined> {
  const ssl = values.ssl || values.tls || false;
  const trustFiles = [...(values["ssl-trustfile"] ?? []), ...(values.ca ?? [])];
  if (!ssl) {
    const set: Array<[string, unknown]> = [
      ["--ssl-trustfile/--ca", trustFiles.length ? trustFiles : undefined],
      ["--ssl-servername", values["ssl-servername"]],
      ["--ssl-alpn", values["ssl-alpn"]],
      ["--insecure", values.insecure],
      ["--ssl-pin", values["ssl-pin"]],
    ];
    for (const [flag, v] of set) {
      if (v !== undefined) throw new UsageError(`${flag} needs --ssl`);
    }
    return undefined;
  }
  const tls: ClientTlsOptions = {};
  if (trustFiles.length) {
    tls.caCerts = await Promise.all(
      trustFiles.map((f) => readPem(f, "--ssl-trustfile")),
    );
  }
  if (values["ssl-servername"] !== undefined) {
    tls.serverName = values["ssl-servername"];
  }
  if (values["ssl-alpn"] !== undefined) {
    tls.alpn = values["ssl-alpn"].split(",").filter((s) => s !== "");
  }
  if (values["ssl-pin"] !== undefined) {
    if (values.insecure) {
      throw new UsageError("--ssl-pin and --insecure cannot be combined");
    }
    if (trustFiles.length) {
      throw new UsageError(
        "--ssl-pin replaces chain verification: drop --ssl-trustfile/--ca",
      );
    }
    tls.pins = values["ssl-pin"].map(parsePin);
  }
  if (values.insecure) {
    tls.insecure = true;
    console.error(
      `denocat: warning: --insecure: the ${peer}'s TLS certificate is NOT verified; anyone on the path can read and change the traffic`,
    );
  }
  return tls;
}

/** The values of {@linkcode TLS_OPTIONS}. */
export interface TlsValues {
  ssl?: boolean;
  tls?: boolean;
  "ssl-trustfile"?: string[];
  ca?: string[];
  "ssl-servername"?: string;
  "ssl-alpn"?: string;
  insecure?: boolean;
  "ssl-pin"?: string[];
  "ssl-cert"?: string;
  "ssl-key"?: string;
  "ssl-verify-client"?: boolean;
}

/** The certificate and key files, read; one without the other is a usage error. */
async function certPair(
  values: TlsValues,
): Promise<{ cert: string; key: string } | undefined> {
  if (
    (values["ssl-cert"] === undefined) !== (values["ssl-key"] === undefined)
  ) {
    throw new UsageError("--ssl-cert and --ssl-key go together");
  }
  if (values["ssl-cert"] === undefined) return undefined;
  const pair = {
    cert: await readPem(values["ssl-cert"], "--ssl-cert"),
    key: await readPem(values["ssl-key"]!, "--ssl-key"),
  };
  checkPair(pair, values["ssl-cert"], values["ssl-key"]!);
  return pair;
}

/**
 * Fails in one line when the key is not the certificate's (the TLS stack
 * would only say "unsupported protocol" at the first handshake).
 */
function checkPair(
  pair: { cert: string; key: string },
  certFile: string,
  keyFile: string,
): void {
  let matches: boolean;
  try {
    matches = new X509Certificate(pair.cert).checkPrivateKey(
      createPrivateKey(pair.key),
    );
  } catch (err) {
    throw new DenocatError(
      `cannot use --ssl-cert ${certFile} / --ssl-key ${keyFile}: ${
        describeError(err)
      }`,
    );
  }
  if (!matches) {
    throw new DenocatError(
      `cannot use --ssl-cert ${certFile}: --ssl-key ${keyFile} is not its key`,
    );
  }
}

/**
 * The server certificate and key, or `undefined`; one without the other is
 * a usage error. `--ssl-verify-client` adds the CAs of `--ssl-trustfile`
 * (required with it) as those client certificates must come from.
 */
export async function serverTlsFrom(
  values: TlsValues,
): Promise<ServerTlsPem | undefined> {
  const pair = await certPair(values);
  if (!values["ssl-verify-client"]) return pair;
  if (!pair) {
    throw new UsageError("--ssl-verify-client needs --ssl-cert and --ssl-key");
  }
  const trustFiles = [...(values["ssl-trustfile"] ?? []), ...(values.ca ?? [])];
  if (!trustFiles.length) {
    throw new UsageError(
      "--ssl-verify-client needs --ssl-trustfile CA (the CA that issues the client certificates)",
    );
  }
  return {
    ...pair,
    clientCas: await Promise.all(
      trustFiles.map((f) => readPem(f, "--ssl-trustfile")),
    ),
  };
}

/**
 * The TLS flags for a command that either connects (`client`: `--ssl`
 * and its companions; `--ssl-cert`/`--ssl-key` are then a client
 * certificate) or listens (`server`: `--ssl-cert`/`--ssl-key`, and
 * `--ssl-verify-client --ssl-trustfile CA`). Flags of the other role are
 * usage errors naming the flag.
 */
export async function tlsFrom(
  values: TlsValues,
  role: "client" | "server",
  /** Who the certificate belongs to, for the `--insecure` warning. */
  peer = "peer",
): Promise<{ client?: ClientTlsOptions; server?: ServerTlsPem }> {
  if (role === "server") {
    if (values.ssl || values.tls) {
      throw new UsageError(
        "--ssl is for connecting; a listener takes --ssl-cert and --ssl-key",
      );
    }
    const clientOnly: Array<[string, unknown]> = [
      ["--ssl-servername", values["ssl-servername"]],
      ["--ssl-alpn", values["ssl-alpn"]],
      ["--insecure", values.insecure],
      ["--ssl-pin", values["ssl-pin"]],
    ];
    for (const [flag, v] of clientOnly) {
      if (v !== undefined) {
        throw new UsageError(`${flag} applies when connecting`);
      }
    }
    if (
      !values["ssl-verify-client"] &&
      (values["ssl-trustfile"] !== undefined || values.ca !== undefined)
    ) {
      throw new UsageError(
        "--ssl-trustfile on a listener goes with --ssl-verify-client (the CA of the client certificates)",
      );
    }
    const server = await serverTlsFrom(values);
    return server ? { server } : {};
  }
  if (values["ssl-verify-client"]) {
    throw new UsageError(
      "--ssl-verify-client applies to listeners (with --ssl-cert and --ssl-key)",
    );
  }
  const ssl = values.ssl || values.tls;
  if (!ssl && (values["ssl-cert"] || values["ssl-key"])) {
    throw new UsageError(
      "--ssl-cert/--ssl-key when connecting are a client certificate: add --ssl (listening takes -l)",
    );
  }
  const client = await clientTlsFrom(values, peer);
  if (!client) return {};
  const pair = await certPair(values);
  if (pair) client.cert = pair;
  return { client };
}

/** `-s`, `-p`, `-n`, `--keepalive` of a direct connection. */
export type ConnectFrom = Pick<
  ConnectOptions,
  "sourceHost" | "sourcePort" | "keepalive" | "numeric"
>;

/** How long an accepted client has for its TLS handshake. */
export const TLS_HANDSHAKE_MS = 10_000;

/**
 * Terminates TLS on each accepted connection (10 s for the handshake; a
 * demanded client certificate is checked), presenting the result as a
 * connection no native pump may take (tcp/stream_conn.ts).
 */
export async function tlsWrap(
  pem: ServerTlsPem,
): Promise<(conn: Conn) => Promise<Conn>> {
  const { acceptServerTls, serverTls } = await import("../forward/tls.ts");
  const { streamConn } = await import("../tcp/stream_conn.ts");
  const server = serverTls(pem);
  return async (conn) =>
    streamConn(
      await acceptServerTls(conn as Deno.TcpConn, server, TLS_HANDSHAKE_MS),
      conn,
    );
}

/**
 * How a client connects when it is not a plain connect: through a proxy,
 * with TLS, or both; `undefined` for a plain connect. The TLS connection
 * comes back dressed as a connection no native pump may take.
 */
export function dialerFor(
  endpoint: Endpoint,
  proxy: ProxySpec | undefined,
  clientTls: ClientTlsOptions | undefined,
  options: {
    family?: 4 | 6 | undefined;
    wait?: number | undefined;
    /** `-s`, `-p`, `-n`, `--keepalive` of a direct connection. */
    connectFrom?: ConnectFrom;
    /** Records the connection's bytes (`--hex-dump`/`--session-log`). */
    record?: SessionRecorder | undefined;
  } = {},
): (() => Promise<Conn>) | undefined {
  if (!proxy && !clientTls && !options.record) return undefined;
  const { record } = options;
  const dial = async (): Promise<Conn> => {
    let raw: Conn;
    if (proxy) {
      const { connectViaProxy } = await import("../proxy/connect.ts");
      raw = await connectViaProxy(proxy, {
        hostname: endpoint.hostname!,
        port: endpoint.port!,
      }, {
        ...(options.family ? { family: options.family } : {}),
        ...(options.wait !== undefined ? { timeout: options.wait } : {}),
      });
    } else {
      const { connect } = await import("../tcp/connect.ts");
      raw = await connect(endpoint, {
        ...options.connectFrom,
        ...(options.family ? { family: options.family } : {}),
        ...(options.wait !== undefined ? { timeout: options.wait } : {}),
      });
    }
    if (!clientTls) return raw;
    const { startClientTls } = await import("../forward/tls.ts");
    const { streamConn } = await import("../tcp/stream_conn.ts");
    const host = endpoint.hostname ?? endpoint.path ?? "";
    const stream = await startClientTls(raw as Deno.TcpConn, host, clientTls);
    return streamConn(stream, raw);
  };
  if (!record) return dial;
  return async () => recorded(await dial(), record);
}

/**
 * `conn` with its bytes recorded (what it reads as received, what it
 * writes as sent), dressed as a connection no native pump may take.
 */
export async function recorded(
  conn: Conn,
  record: SessionRecorder,
): Promise<Conn> {
  const { streamConn } = await import("../tcp/stream_conn.ts");
  return streamConn(record.tapStream(conn), conn);
}

/** What `-e`/`-c` ask to run, or `undefined`; both at once is a usage error. */
export function execFrom(values: {
  exec?: string;
  "sh-exec"?: string;
}): ExecSpec | undefined {
  if (values.exec !== undefined && values["sh-exec"] !== undefined) {
    throw new UsageError("-e/--exec and -c/--sh-exec cannot be combined");
  }
  if (values.exec !== undefined) return parseExec(values.exec);
  if (values["sh-exec"] !== undefined) {
    if (values["sh-exec"].trim() === "") {
      throw new UsageError("-c needs a command line to run");
    }
    return { shell: values["sh-exec"] };
  }
  return undefined;
}

/** The session recording the flags ask for, or `undefined`. */
export function sessionLogFrom(values: {
  "hex-dump"?: string;
  "session-log"?: string;
  append?: boolean;
}): SessionLogOptions | undefined {
  if (values["hex-dump"] === undefined && values["session-log"] === undefined) {
    if (values.append) {
      throw new UsageError("--append needs --hex-dump or --session-log");
    }
    return undefined;
  }
  return {
    ...(values["hex-dump"] !== undefined
      ? { hexDump: values["hex-dump"] }
      : {}),
    ...(values["session-log"] !== undefined
      ? { sessionLog: values["session-log"] }
      : {}),
    append: values.append ?? false,
  };
}
