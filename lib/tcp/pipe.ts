/**
 * The netcat duplex: local input to the connection, the connection to local
 * output, with a correct half-close and optional quit and idle timers.
 *
 * @module
 */
import { type Reader, writeAll, type Writer } from "../copy.ts";
import { DenocatError, netError, OutputClosedError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { fastCopy, type Pump } from "../native/pump.ts";
import { readyNow } from "../native/ready.ts";
import { closeQuietly, closeWriteQuietly, type Conn } from "./connect.ts";

/** Options for {@linkcode pipeDuplex}. */
export interface PipeOptions {
  /** Local source of bytes to send (stdin). */
  input: Reader;
  /** Local sink of bytes received (stdout). */
  output: Writer;
  /**
   * Send FIN when `input` reaches EOF, then keep receiving until the peer
   * closes. When false the write side stays open. @default {true}
   */
  halfClose?: boolean;
  /** Close the connection this many ms after input EOF, whatever the peer does. */
  quitAfterEof?: number;
  /**
   * End the pipe (reason `"idle"`, not an error: nc -w's rule) when no byte
   * moves either way for this many ms.
   */
  idleTimeout?: number;
  /**
   * End once the peer has closed its side, even while local input is still
   * open (interactive use, and nc's rule for a listener): what was already
   * read from input is sent, plus one chunk input has ready at that instant,
   * then the pipe ends. When false, input keeps flowing to the peer after
   * its FIN until input EOF or a write fails. @default {false}
   */
  endOnPeerEof?: boolean;
  /** Abort the pipe (the connection is closed). */
  signal?: AbortSignal;
  /** Copy buffer size. @default {256 KiB} */
  bufferSize?: number;
  /**
   * Diagnostic lines: said once when a bulk transfer stays off the pump
   * threads because its socket could not be proved to be this connection's.
   */
  logger?: Logger;
}

/** What {@linkcode pipeDuplex} moved. */
export interface PipeResult {
  /** Bytes written to the connection. */
  sent: number;
  /** Bytes received from the connection and written to `output`. */
  received: number;
  /** Whether local input reached EOF before the pipe ended. */
  inputEnded: boolean;
  /**
   * Why the pipe ended: the peer closed, the `-q` timer fired, `output` was
   * closed by its reader (EPIPE: `denocat … | head`), the idle timeout
   * passed, or it was aborted.
   */
  reason: "peer-closed" | "quit" | "output-closed" | "idle" | "aborted";
  /** Of `sent` + `received`, the bytes moved by pump threads (fdpump.ts). */
  pumped: number;
  /**
   * With `endOnPeerEof`: the pipe ended while input still had bytes ready
   * that were not sent (the peer ended first; see `endOnPeerEof`).
   */
  inputLeft: boolean;
}

/**
 * Runs the duplex until both directions are done: the peer closed its side
 * and local input reached EOF (or the peer stopped accepting data). A peer
 * that half-closes early, such as a listener whose own input is empty, still
 * receives everything. `quitAfterEof` and `endOnPeerEof` end it sooner. The
 * connection is closed on return; with `endOnPeerEof` the local input may
 * still have a read pending, and callers that own stdin simply exit.
 *
 * @example Half-close: the peer replies only after our EOF
 * ```ts
 * import { pipeDuplex } from "./pipe.ts";
 * import { assertEquals } from "../_assert.ts";
 * using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const server = (async () => {
 *   const c = await l.accept();
 *   const buf = new Uint8Array(16);
 *   let got = 0, n;
 *   while ((n = await c.read(buf.subarray(got))) !== null) got += n;
 *   await c.write(new TextEncoder().encode(`got ${got}`));
 *   c.close();
 * })();
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
 * const data = [new TextEncoder().encode("hello")];
 * const input = { read(p: Uint8Array) {
 *   const d = data.shift(); if (!d) return Promise.resolve(null);
 *   p.set(d); return Promise.resolve(d.length);
 * } };
 * const out: Uint8Array[] = [];
 * const output = { write(p: Uint8Array) { out.push(p.slice()); return Promise.resolve(p.length); } };
 * const r = await pipeDuplex(conn, { input, output });
 * await server;
 * assertEquals(new TextDecoder().decode(out[0]), "got 5");
 * assertEquals(r.sent, 5);
 * ```
 */
export async function pipeDuplex(
  conn: Conn,
  options: PipeOptions,
): Promise<PipeResult> {
  const { input, output } = options;
  const halfClose = options.halfClose ?? true;
  const bufferSize = options.bufferSize;
  let sent = 0;
  let received = 0;
  let inputEnded = false;
  let reason: PipeResult["reason"] = "peer-closed";
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  let quitTimer: ReturnType<typeof setTimeout> | undefined;
  let failure: unknown;
  let closed = false;
  let inputLeft = false;

  // Bulk directions may run on pump threads (fdpump.ts); they are stopped
  // before the connection is closed.
  const pumps: Pump[] = [];
  let upstreamPumped = false;
  const stopPumps = new AbortController();
  let declineTold = false;
  const pumpOptions = {
    conn,
    signal: stopPumps.signal,
    ...(bufferSize ? { bufferSize } : {}),
    onDecline: (why: string) => {
      if (declineTold) return;
      declineTold = true;
      options.logger?.log(`pump threads not used: ${why}; Deno's loop goes on`);
    },
  };
  // Once our FIN is out and the download runs on a pump thread, Deno has
  // nothing left to do with the socket: its descriptor is closed early (the
  // pump keeps its own), so Deno's reactor is no longer woken by every
  // arrival of data (measured: 1.53-1.68 against 1.48-1.52 GB/s).
  // This close cannot hit a descriptor that belongs to anything else: it
  // goes through Deno's resource (by resource id, never reused), which
  // closes the number Deno itself holds, once; every later close of `conn`
  // below is a no-op on the closed resource (BadResource, ignored). The
  // pumps never use Deno's number: each has its own duplicate, open until
  // its thread has ended, so stop() shuts down the right socket even after
  // the number Deno held has been reused (tests/native/identity_test.ts).
  let finSent = false, downstreamPumped = false;
  const release = () => {
    if (finSent && downstreamPumped && !closed) closeQuietly(conn);
  };
  const { promise: shutDown, resolve: onShut } = Promise.withResolvers<void>();
  const shut = (why: PipeResult["reason"], err?: unknown) => {
    if (closed) return;
    closed = true;
    onShut();
    stopPumps.abort();
    reason = why;
    if (err !== undefined && failure === undefined) failure = err;
    closeQuietly(conn);
  };
  // Chunks only stamp the time; one timer re-arms itself for what is left.
  const idleMs = options.idleTimeout;
  let lastActivity = performance.now();
  const touch = idleMs === undefined ? undefined : () => {
    lastActivity = performance.now();
  };
  const checkIdle = () => {
    for (const p of pumps) {
      const at = p.lastActive() - performance.timeOrigin;
      if (at > lastActivity) lastActivity = at;
    }
    const left = lastActivity + idleMs! - performance.now();
    if (left > 0) idleTimer = setTimeout(checkIdle, left);
    else shut("idle"); // a normal end, as with nc -w: no failure
  };
  if (idleMs !== undefined) idleTimer = setTimeout(checkIdle, idleMs);
  const onAbort = () =>
    shut("aborted", options.signal?.reason ?? new DenocatError("aborted"));
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  // Chunks read from input and not yet written to the connection, and a
  // wake-up after each one is written: see finishInput() below.
  let writing = 0;
  let stepped: (() => void) | undefined;
  const connOut: Writer = {
    write: async (p) => {
      writing++;
      try {
        await writeAll(conn, p);
        return p.length;
      } finally {
        writing--;
        stepped?.();
      }
    },
  };
  let upstreamDone = false;
  const upstream = (async () => {
    await fastCopy(input, connOut, {
      ...pumpOptions,
      onPump: (p: Pump) => {
        pumps.push(p);
        upstreamPumped = true;
      },
      onChunk: (n) => {
        sent += n;
        touch?.();
      },
    });
    inputEnded = true;
    if (closed) return;
    if (halfClose) {
      await closeWriteQuietly(conn);
      finSent = true;
      release();
    }
    if (options.quitAfterEof !== undefined) {
      quitTimer = setTimeout(() => shut("quit"), options.quitAfterEof);
    }
  })().catch((err) => {
    // Writing failed: the peer went away. Reading will tell us how.
    if (!closed && !isGoneError(err)) shut("aborted", err);
  }).finally(() => upstreamDone = true);

  // The peer ended first under `endOnPeerEof` (nc's rule for -l): what was
  // read from input still goes out, and so does one more chunk when input
  // has one ready this instant (nc flushes the buffer of its last poll
  // round); then the session ends, however much input is still to come. A
  // read in Deno's thread pool can hold bytes we cannot see; "ready" comes
  // from poll(2) (FFI), or, without FFI, from a wait of at most 25 ms for
  // a read already pending.
  const finishInput = async () => {
    let extra = false;
    // (A pumped upstream is stopped with the connection: its thread holds
    // no chunk of ours.)
    while (!closed && !upstreamDone && !upstreamPumped) {
      if (writing === 0) {
        if (extra) return;
        extra = true;
        const ready = input.fd === undefined ? false : readyNow(input.fd);
        // "Not ready" can also mean Deno's pool thread has just taken the
        // bytes and its result is on its way to us (seen under load: a
        // chunk written before the client connected was lost): give a
        // pending read the same 25 ms as when readiness is unknown.
        if (ready === false || ready === undefined) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const late = new Promise<void>((r) => timer = setTimeout(r, 25));
          await Promise.race([
            new Promise<void>((r) => stepped = r),
            upstream,
            shutDown,
            late,
          ]);
          clearTimeout(timer);
          if (writing === 0) return;
          continue;
        }
      }
      await Promise.race([
        new Promise<void>((r) => stepped = r),
        upstream,
        shutDown,
      ]);
    }
  };

  try {
    await fastCopy(conn, output, {
      ...pumpOptions,
      onPump: (p: Pump) => {
        pumps.push(p);
        downstreamPumped = true;
        release();
      },
      onChunk: (n) => {
        received += n;
        touch?.();
      },
    });
    // The peer is done sending; finish our direction unless told not to.
    // (A quit, idle or abort ends the wait even while input is still open.)
    if (!closed && !options.endOnPeerEof) {
      await Promise.race([upstream, shutDown]);
    } else if (!closed) {
      await finishInput();
      if (
        !closed && !upstreamDone && input.fd !== undefined &&
        (upstreamPumped || readyNow(input.fd) === true)
      ) inputLeft = true;
    }
  } catch (err) {
    // Output closed by its reader (`| head`): nothing more can be shown, so
    // the relay ends here, quietly. (Reading a socket never fails with
    // EPIPE, so BrokenPipe here is the pump's write to `output`.)
    if (isOutputClosed(err)) shut("output-closed");
    else if (!closed) failure ??= err;
  } finally {
    clearTimeout(idleTimer);
    clearTimeout(quitTimer);
    options.signal?.removeEventListener("abort", onAbort);
    closed = true;
    stopPumps.abort();
    closeQuietly(conn);
  }
  // The upstream copy either finished or is blocked on local input; when
  // input is at EOF already, wait so the counters are final.
  // A pumped upstream was stopped above and settles at once; its count
  // comes in as it does.
  if (inputEnded || upstreamPumped) await upstream;
  if (failure !== undefined) throw netError("relay data", failure);
  const pumped = pumps.reduce((sum, p) => sum + p.moved(), 0);
  return { sent, received, inputEnded, reason, pumped, inputLeft };
}

function isOutputClosed(err: unknown): boolean {
  return err instanceof OutputClosedError ||
    err instanceof Deno.errors.BrokenPipe;
}

function isGoneError(err: unknown): boolean {
  return err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.NotConnected ||
    err instanceof Deno.errors.BadResource;
}
