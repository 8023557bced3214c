/**
 * A UDP echo server: every datagram goes back to its own sender, whatever
 * the number of senders, except those a {@linkcode SourceGuard} refuses
 * (loop sources, and beyond a rate per source address).
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import { describeError } from "../errors.ts";
import { upperAsciiInPlace } from "../upper.ts";
import { type Logger, silent } from "../log.ts";
import { bindUdp, type BindUdpOptions } from "./socket.ts";
import { ffiAllowed, libc } from "../native/libc.ts";
import { claimSocket } from "../native/identity.ts";
import { ThreadGroup } from "../native/threads.ts";
import type { UdpEchoJob } from "../native/_udp_echo_worker.ts";
import {
  ADMIT,
  DEFAULT_MAX_SOURCES,
  DEFAULT_RATE,
  DropLog,
  SourceGuard,
} from "../source_guard.ts";

/** Options for {@linkcode udpEcho}. */
export interface UdpEchoOptions extends BindUdpOptions {
  /** Upper-case ASCII letters before echoing, like the seeds' server. @default {false} */
  upper?: boolean;
  /** Log every datagram (peer and size) as well as errors. @default {false} */
  logDatagrams?: boolean;
  /** Where events go. */
  logger?: Logger;
  /**
   * `auto` echoes on a thread of its own, a `recvfrom`/`sendto` loop through
   * libc, where it can (Linux, `--allow-ffi`), else on Deno's event loop;
   * `deno` always on the event loop. @default {"auto"}
   */
  engine?: "auto" | "deno";
  /**
   * Datagrams a second answered per source address (`--rate`), with a
   * burst of one second's worth; `Infinity` for no limit. Datagrams from
   * the server's own port, port 0 and ports 7, 13, 17, 19 and 37 are never
   * answered, whatever the rate (see `source_guard.ts`).
   * @default {DEFAULT_RATE}
   */
  rate?: number;
  /** Source addresses the rate limit tracks at once. @default {DEFAULT_MAX_SOURCES} */
  maxSources?: number;
  /**
   * Whether a datagram from this peer is answered (`--allow`/`--deny`);
   * others are dropped unanswered. A server with a list runs on `deno`.
   * @default {every peer}
   */
  accept?: (addr: Deno.NetAddr) => boolean;
}

/** Datagrams a {@linkcode UdpEchoServer} refused to answer, by reason. */
export interface UdpEchoDrops {
  /** From a loop source: its own port, port 0, or 7, 13, 17, 19, 37. */
  loop: number;
  /** Over the rate of their source address. */
  rate: number;
}

/** A running UDP echo server. */
export interface UdpEchoServer extends AsyncDisposable {
  /** The bound address (read the port from here when you bound port 0). */
  readonly addr: Deno.NetAddr;
  /** Datagrams echoed so far. */
  readonly echoed: number;
  /** Datagrams refused so far (not echoed), by reason. */
  readonly dropped: UdpEchoDrops;
  /** Source addresses the rate limit tracks now (at most `maxSources`). */
  readonly sources: number;
  /** Resolves with the engine serving, once it runs (see {@linkcode UdpEchoOptions.engine}). */
  readonly ready: Promise<"thread" | "deno">;
  /** Stops the server and waits for its loop to end; idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a UDP echo server (port 0 by default: read `addr.port`).
 *
 * @example Usage
 * ```ts
 * import { udpEcho } from "./echo.ts";
 * import { bindUdp } from "./socket.ts";
 * import { assertEquals } from "../_assert.ts";
 * await using server = udpEcho({ hostname: "127.0.0.1", upper: true });
 * using client = bindUdp({ hostname: "127.0.0.1" });
 * await client.send(new TextEncoder().encode("hah"), server.addr);
 * const reply = await client.receive();
 * assertEquals(new TextDecoder().decode(reply!.data), "HAH");
 * ```
 */
export function udpEcho(options: UdpEchoOptions = {}): UdpEchoServer {
  const socket = bindUdp(options);
  const logger = options.logger ?? silent;
  const upper = options.upper ?? false;
  const logDatagrams = (options.logDatagrams ?? false) && logger.enabled;
  let echoed = 0;
  const guardOptions = {
    ownPort: socket.addr.port,
    ...(options.rate !== undefined ? { rate: options.rate } : {}),
    ...(options.maxSources !== undefined
      ? { maxSources: options.maxSources }
      : {}),
  };
  let guard: SourceGuard;
  try {
    guard = new SourceGuard(guardOptions);
  } catch (err) {
    socket.close(); // a bad rate: nothing starts
    throw err;
  }
  const drops = new DropLog();

  const echoOnLoop = async () => {
    while (true) {
      let d;
      try {
        d = await socket.receiveView(); // sent back before the next receive
      } catch (err) {
        logger.log(describeError(err));
        continue;
      }
      if (d === null) return;
      if (options.accept && !options.accept(d.from)) continue;
      const now = performance.now();
      const verdict = guard.check(d.from.hostname, d.from.port, now);
      if (verdict !== ADMIT) {
        const from = d.from;
        const line = drops.note(verdict, () => formatAddr(from), now);
        if (line !== undefined) logger.log(line);
        continue;
      }
      if (upper) upperAsciiInPlace(d.data);
      if (logDatagrams) {
        logger.log(`${d.data.length} bytes from ${formatAddr(d.from)}`);
      }
      try {
        await socket.send(d.data, d.from);
        echoed++;
      } catch (err) {
        if (socket.closed) return;
        logger.log(describeError(err));
      }
    }
  };

  let thread: ThreadGroup | undefined;
  let loop: Promise<void> | undefined;
  const onLoop = () => {
    loop = echoOnLoop();
    return "deno" as const;
  };
  // The thread gets its own close-on-exec duplicate of the socket, proved
  // to be this very socket by its exact identity (native/identity.ts): a
  // UDP socket bound to this family, address and port, and no other.
  const c = (options.engine ?? "auto") === "auto" && !options.accept &&
      ffiAllowed()
    ? libc()
    : null;
  const claim = c === null
    ? undefined
    : claimSocket(c, { kind: "datagram", local: socket.addr });
  if (claim !== undefined && "declined" in claim) {
    logger.log(
      `echo thread not used: ${claim.declined}; serving on the event loop`,
    );
  }
  const fd = claim !== undefined && "fd" in claim ? claim.fd : -1;
  const job: UdpEchoJob = {
    fd,
    port: socket.addr.port,
    upper,
    logDatagrams,
    verbose: logger.enabled,
    rate: guardOptions.rate ?? DEFAULT_RATE,
    maxSources: guardOptions.maxSources ?? DEFAULT_MAX_SOURCES,
    shared: new SharedArrayBuffer(4),
    echoed: new SharedArrayBuffer(32),
  };
  const threadEchoed = new Float64Array(job.echoed);
  const ready: Promise<"thread" | "deno"> = fd >= 0
    ? ThreadGroup.start(
      new URL("../native/_udp_echo_worker.ts", import.meta.url),
      1,
      job,
      logger,
    ).then((t) => {
      if (!(t instanceof ThreadGroup)) {
        if (t.stopped) c!.close(fd);
        else logger.log("echo thread did not stop; its socket is left open");
        return onLoop();
      }
      thread = t;
      // Deno's descriptor is closed early: the thread echoes on its own
      // duplicate, and Deno's event loop stops being woken by every
      // datagram. This close cannot hit anything else's descriptor: it goes
      // through Deno's resource (by resource id, never reused), so it
      // closes the number Deno holds, once, and the later close() below is
      // a no-op; nothing here uses Deno's number again, only the
      // duplicate, which stays open until the thread has stopped
      // (tests/native/identity_test.ts).
      socket.close();
      return "thread" as const;
    })
    : Promise.resolve().then(onLoop);

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      await ready;
      if (thread) {
        // Once the thread confirms it stopped, the duplicate is ours to
        // close; a thread ended without confirming may still be in a
        // receive on it, so it stays open (native/threads.ts).
        if (await thread.stop()) c!.close(fd);
        else logger.log("echo thread did not stop; its socket is left open");
      }
      socket.close();
      await loop;
    })();

  return {
    addr: socket.addr,
    ready,
    get echoed() {
      return thread ? threadEchoed[0]! : echoed;
    },
    get dropped() {
      return thread
        ? { loop: threadEchoed[1]!, rate: threadEchoed[2]! }
        : { loop: drops.loop, rate: drops.rate };
    },
    get sources() {
      return thread ? threadEchoed[3]! : guard.tracked;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
