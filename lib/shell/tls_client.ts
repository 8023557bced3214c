/**
 * Client-side TLS for the shell: Deno's verified `connectTls` (optionally
 * with a private CA), and, for `--insecure` only, a `node:tls` socket that
 * skips certificate verification (Deno's own TLS API has no per-connection
 * switch for that), adapted to the `read`/`write`/`closeWrite`/`close`
 * shape the rest of the code uses.
 *
 * @module
 */
import * as tls from "node:tls";
import type { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";

/** The connection shape the shell client needs. */
export interface ShellTransport {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** Options for {@linkcode connectTlsTransport}. */
export interface TlsTransportOptions {
  /** PEM CA certificates to trust instead of the system's. */
  caCerts?: string[];
  /** Skip certificate verification entirely (testing only). @default {false} */
  insecure?: boolean;
  /** Abort the connection attempt. */
  signal?: AbortSignal;
}

/**
 * Connects with TLS and completes the handshake, so certificate problems
 * surface here as errors.
 *
 * @example A refused connection
 * ```ts
 * import { connectTlsTransport } from "./tls_client.ts";
 * import { assertRejects } from "../_assert.ts";
 * const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const port = l.addr.port;
 * l.close();
 * await assertRejects(() => connectTlsTransport("127.0.0.1", port), Error);
 * ```
 */
export async function connectTlsTransport(
  hostname: string,
  port: number,
  options: TlsTransportOptions = {},
): Promise<ShellTransport> {
  if (options.insecure) return await connectInsecure(hostname, port, options);
  const conn = await Deno.connectTls({
    hostname,
    port,
    ...(options.caCerts ? { caCerts: options.caCerts } : {}),
  });
  try {
    await conn.handshake();
  } catch (err) {
    conn.close();
    throw err;
  }
  return conn;
}

function connectInsecure(
  hostname: string,
  port: number,
  options: TlsTransportOptions,
): Promise<ShellTransport> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host: hostname,
      port,
      rejectUnauthorized: false,
      ...(/^[\d.]+$|:/.test(hostname) ? {} : { servername: hostname }),
    });
    const onAbort = () => {
      sock.destroy();
      reject(options.signal?.reason ?? new Error("aborted"));
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    sock.once("error", (err) => {
      options.signal?.removeEventListener("abort", onAbort);
      reject(err);
    });
    sock.once("secureConnect", () => {
      options.signal?.removeEventListener("abort", onAbort);
      resolve(new NodeSocketTransport(sock));
    });
  });
}

/** Decrypted bytes held for a reader that lags before the socket is paused. */
const READ_AHEAD = 1024 * 1024;

/**
 * Adapts a node socket to `read`/`write`, pausing it when reads lag.
 *
 * @example Over a node TLS socket
 * ```ts ignore
 * const t = new NodeSocketTransport(tls.connect({ host, port }));
 * await t.write(new Uint8Array([1]));
 * ```
 */
export class NodeSocketTransport implements ShellTransport {
  readonly #sock: tls.TLSSocket;
  readonly #under: Duplex | undefined;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  /**
   * `under`: the stream the TLS socket reads its records from, when it is
   * not a socket of node's own (see shell/tls_server.ts duplexOf): paused
   * with the TLS socket when reads lag.
   */
  constructor(sock: tls.TLSSocket, under?: Duplex) {
    this.#sock = sock;
    this.#under = under;
    sock.on("data", (chunk: Buffer) => {
      this.#queue.push(
        new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
      );
      this.#queued += chunk.byteLength;
      if (this.#queued > READ_AHEAD) {
        sock.pause();
        // Deno's TLS socket goes on draining the stream underneath while
        // paused (a client that sends and never reads grew echo --ssl-cert
        // by 5 GB in 8 s, measured): that stream is paused too.
        this.#under?.pause();
      }
      this.#notify();
    });
    sock.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    sock.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
    sock.on("error", (err: Error) => {
      this.#error = err;
      this.#notify();
    });
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#queue.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      this.#sock.resume();
      this.#under?.resume();
      await new Promise<void>((r) => (this.#wake = r));
    }
    const head = this.#queue[0]!;
    const n = Math.min(p.length, head.length);
    p.set(head.subarray(0, n));
    if (n === head.length) this.#queue.shift();
    else this.#queue[0] = head.subarray(n);
    this.#queued -= n;
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    const copy = p.slice();
    return new Promise((resolve, reject) => {
      this.#sock.write(
        copy,
        (err) => err ? reject(err) : resolve(copy.length),
      );
    });
  }

  closeWrite(): Promise<void> {
    this.#sock.end();
    return Promise.resolve();
  }

  close(): void {
    this.#sock.destroy();
  }
}
