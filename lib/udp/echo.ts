/**
 * A UDP echo server: every datagram goes back to its own sender, whatever
 * the number of senders.
 *
 * @module
 */
import { formatAddr } from "../address.ts";
import { describeError } from "../errors.ts";
import { upperAsciiInPlace } from "../upper.ts";
import { type Logger, silent } from "../log.ts";
import { bindUdp, type BindUdpOptions } from "./socket.ts";
import { ffiAllowed } from "../native/libc.ts";
import { ThreadGroup } from "../native/threads.ts";
import type { UdpEchoJob } from "../native/_udp_echo_worker.ts";

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
}

/** A running UDP echo server. */
export interface UdpEchoServer extends AsyncDisposable {
  /** The bound address (read the port from here when you bound port 0). */
  readonly addr: Deno.NetAddr;
  /** Datagrams echoed so far. */
  readonly echoed: number;
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
  const job: UdpEchoJob = {
    port: socket.addr.port,
    upper,
    logDatagrams,
    verbose: logger.enabled,
    shared: new SharedArrayBuffer(4),
    echoed: new SharedArrayBuffer(8),
  };
  const threadEchoed = new Float64Array(job.echoed);
  const ready: Promise<"thread" | "deno"> =
    (options.engine ?? "auto") === "auto" && ffiAllowed()
      ? ThreadGroup.start(
        new URL("../native/_udp_echo_worker.ts", import.meta.url),
        1,
        job,
        logger,
      ).then((t) => {
        if (t) {
          // The thread echoes on its own descriptor of the socket.
          thread = t;
          socket.close();
          return "thread" as const;
        }
        loop = echoOnLoop();
        return "deno" as const;
      })
      : Promise.resolve().then(() => {
        loop = echoOnLoop();
        return "deno" as const;
      });

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      await ready;
      if (thread) await thread.stop();
      socket.close();
      await loop;
    })();

  return {
    addr: socket.addr,
    ready,
    get echoed() {
      return thread ? threadEchoed[0]! : echoed;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
