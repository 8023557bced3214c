/**
 * A TCP listening socket that the native code creates, binds and owns
 * through libc, for the epoll echo engine: a socket made here needs no
 * finding among the process's descriptors, so it cannot be confused with
 * anyone else's.
 *
 * It is set up the way `Deno.listen` sets up its own (measured on Deno
 * 2.9: `SO_REUSEADDR` on, `IPV6_V6ONLY` left at the system default, so
 * `::` is dual-stack, a backlog of 511), and a failure to bind throws the
 * error Deno would throw (`Deno.errors.AddrInUse`, `AddrNotAvailable`,
 * `PermissionDenied`, with the same "(os error N)" text).
 *
 * @module
 */
import {
  errnoReader,
  type Libc,
  osError,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  sockaddrOf,
  sockaddrToAddr,
  SOL_SOCKET,
} from "./libc.ts";

/** A listening TCP socket owned by this process's native code. */
export interface NativeListener {
  /** Its descriptor: non-blocking, close-on-exec. */
  readonly fd: number;
  /** The bound address, as `getsockname` reports it. */
  readonly addr: Deno.NetAddr;
  /** Closes the descriptor; calling it again does nothing. */
  close(): void;
}

/** The backlog `Deno.listen` asks for (`ss -ltn` shows it). */
const BACKLOG = 511;

let errno: (() => number) | undefined;

/**
 * Creates a non-blocking, close-on-exec TCP socket, binds it to the IP
 * literal `hostname` and `port` (0: a free port) and listens on it.
 * `undefined` when `hostname` is not an IP literal (the caller lets Deno
 * resolve and bind a name); throws what `Deno.listen` would throw when the
 * socket cannot be made, bound or listened on.
 */
export function listenNative(
  c: Libc,
  hostname: string,
  port: number,
): NativeListener | undefined {
  const sa = sockaddrOf(hostname, port);
  if (sa === undefined) return undefined;
  errno ??= errnoReader(c);
  const family = sa[0]!;
  const fd = c.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw osError(c, errno());
  const fail = (): never => {
    const code = errno!();
    c.close(fd);
    throw osError(c, code);
  };
  const one = new Uint8Array(new Int32Array([1]).buffer);
  if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) !== 0) fail();
  if (c.bind(fd, sa, sa.length) !== 0) fail();
  if (c.listen(fd, BACKLOG) !== 0) fail();
  const bound = new Uint8Array(128);
  const len = new Uint32Array([bound.length]);
  if (c.getsockname(fd, bound, new Uint8Array(len.buffer)) !== 0) fail();
  const addr = sockaddrToAddr(bound);
  if (addr === undefined) {
    c.close(fd);
    throw new Error("Cannot listen: the socket reports no IP address");
  }
  let open = true;
  return {
    fd,
    addr,
    close() {
      if (!open) return;
      open = false;
      c.close(fd);
    },
  };
}
