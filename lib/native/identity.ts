/**
 * Finding, by its exact identity, the descriptor of a socket that Deno
 * opened (Deno never hands one out), and claiming a close-on-exec duplicate
 * of it for a native thread.
 *
 * The rule: a descriptor is the socket only when everything the kernel
 * says about it equals what Deno says about the socket.
 *
 * - a connection: a TCP stream socket, not listening, whose family, local
 *   address and port (`getsockname`) and remote address and port
 *   (`getpeername`) are the connection's `localAddr` and `remoteAddr`;
 * - a listener: a TCP stream socket with `SO_ACCEPTCONN` set, bound to the
 *   listener's family, address and port;
 * - a UDP socket: `SO_TYPE` datagram, protocol UDP, bound to its family,
 *   address and port.
 *
 * Every descriptor of the process is looked at (`/proc/self/fd`, so there
 * is no ceiling). Several matching descriptors are accepted only when they
 * are the same open socket (one socket inode, as `/proc/self/fd` links
 * name it: a pump's own duplicate of a connection Deno still holds). Any
 * doubt (a `getpeername` that fails because the peer reset, no match, two
 * different sockets) is a refusal with its reason, and the caller keeps to
 * the portable Deno path. The duplicate is checked again after `fcntl`
 * made it: the number found could have been closed and reused by another
 * thread in between.
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  F_DUPFD_CLOEXEC,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type Libc,
  SO_ACCEPTCONN,
  SO_PROTOCOL,
  SO_TYPE,
  SOCK_DGRAM,
  SOCK_STREAM,
  sockaddrOf,
  SOL_SOCKET,
} from "./libc.ts";

/**
 * Marks a stream layered on a connection (TLS) that presents itself as a
 * connection: never a socket's identity.
 */
export const LAYERED: unique symbol = Symbol.for("denocat.layered");

/** What a socket is, as Deno describes it. */
export interface SocketIdentity {
  /** A connected TCP socket, a TCP listener, or a bound UDP socket. */
  kind: "connection" | "listener" | "datagram";
  /** The bound (local) address and port. */
  local: Deno.NetAddr;
  /** The peer's address and port (connections only). */
  remote?: Deno.NetAddr;
}

/** A descriptor proved to be the socket, or why none could be. */
export type Claim = { fd: number } | { declined: string };

/**
 * The identity of a Deno TCP connection, TCP listener or UDP socket;
 * `undefined` for anything else (Unix sockets).
 */
export function identityOf(
  socket: Deno.Conn | Deno.Listener | { addr: Deno.Addr },
): SocketIdentity | undefined {
  if ("remoteAddr" in socket) {
    // Only a plain TCP connection: a TLS layer (Deno's TlsConn, or a stream
    // dressed as a connection, tcp/stream_conn.ts) has the same addresses as
    // the socket under it, and a pump on that socket would move bytes past
    // the layer.
    if ("handshake" in socket || LAYERED in socket) return undefined;
    const { localAddr: local, remoteAddr: remote } = socket;
    return local.transport === "tcp" && remote.transport === "tcp"
      ? { kind: "connection", local, remote }
      : undefined;
  }
  const local = socket.addr;
  if (local.transport === "tcp") return { kind: "listener", local };
  if (local.transport === "udp") return { kind: "datagram", local };
  return undefined;
}

/** The expected sockaddrs of an identity, encoded once per search. */
interface Wanted {
  kind: SocketIdentity["kind"];
  local: Uint8Array;
  remote: Uint8Array | undefined;
}

function wanted(id: SocketIdentity): Wanted | undefined {
  const local = sockaddrOf(id.local.hostname, id.local.port);
  const remote = id.remote && sockaddrOf(id.remote.hostname, id.remote.port);
  if (local === undefined || (id.kind === "connection") !== !!remote) {
    return undefined;
  }
  return { kind: id.kind, local, remote };
}

const sa = new Uint8Array(128);
const saLen = new Uint32Array(1);
const saLenBytes = new Uint8Array(saLen.buffer);
const opt = new Int32Array(1);
const optLen = new Uint32Array(1);
const optBytes = new Uint8Array(opt.buffer);
const optLenBytes = new Uint8Array(optLen.buffer);

function option(c: Libc, fd: number, name: number): number {
  optLen[0] = 4;
  return c.getsockopt(fd, SOL_SOCKET, name, optBytes, optLenBytes) === 0
    ? opt[0]!
    : -1;
}

/** Whether the sockaddr `get` reports for `fd` has `want`'s family, port and address. */
function sameAddr(
  get: Libc["getsockname"],
  fd: number,
  want: Uint8Array,
): boolean {
  saLen[0] = sa.length;
  if (get(fd, sa, saLenBytes) !== 0) return false;
  const family = sa[0]! | (sa[1]! << 8);
  if (family !== (want[0]! | (want[1]! << 8))) return false;
  if (sa[2] !== want[2] || sa[3] !== want[3]) return false;
  // The address: 4 bytes at 4 (IPv4), 16 at 8 (IPv6; flow and scope are
  // not part of what Deno reports).
  const [from, to] = family === AF_INET
    ? [4, 8]
    : family === AF_INET6
    ? [8, 24]
    : [0, 0];
  if (to === 0 || saLen[0]! < to) return false;
  for (let i = from; i < to; i++) if (sa[i] !== want[i]) return false;
  return true;
}

function matches(c: Libc, fd: number, w: Wanted): boolean {
  if (!sameAddr(c.getsockname, fd, w.local)) return false;
  const type = option(c, fd, SO_TYPE);
  const protocol = option(c, fd, SO_PROTOCOL);
  if (w.kind === "datagram") {
    return type === SOCK_DGRAM && protocol === IPPROTO_UDP;
  }
  if (type !== SOCK_STREAM || protocol !== IPPROTO_TCP) return false;
  const listening = option(c, fd, SO_ACCEPTCONN);
  if (w.kind === "listener") return listening === 1;
  return listening === 0 && sameAddr(c.getpeername, fd, w.remote!);
}

const linkBuf = new Uint8Array(64);
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** What `/proc/self/fd/N` links to (`socket:[12345]`), or "" when unreadable. */
export function fdTarget(c: Libc, fd: number): string {
  const n = Number(
    c.readlink(
      encoder.encode(`/proc/self/fd/${fd}\0`),
      linkBuf,
      BigInt(linkBuf.length),
    ),
  );
  return n > 0 ? decoder.decode(linkBuf.subarray(0, n)) : "";
}

const PROC_FD = encoder.encode("/proc/self/fd\0");
/** `struct dirent` (glibc, 64-bit Linux): the name starts at byte 19. */
const D_NAME = 19;

/**
 * Every descriptor open in this process, read from `/proc/self/fd` (no
 * ceiling); `undefined` when that cannot be read. The list includes the
 * directory's own descriptor, which is no socket.
 */
export function openDescriptors(c: Libc): number[] | undefined {
  const dir = c.opendir(PROC_FD);
  if (dir === null) return undefined;
  const fds: number[] = [];
  try {
    for (;;) {
      const ent = c.readdir(dir);
      if (ent === null) break;
      const name = new Deno.UnsafePointerView(ent).getCString(D_NAME);
      if (/^\d+$/.test(name)) fds.push(Number(name));
    }
  } finally {
    c.closedir(dir);
  }
  return fds;
}

/**
 * The descriptor of the socket `id` describes (see the module's rule), or
 * why there is none to use.
 */
export function findSocket(
  c: Libc,
  id: SocketIdentity,
): { fd: number; socket: string } | { declined: string } {
  const w = wanted(id);
  if (w === undefined) {
    return { declined: `cannot compare the ${id.kind}'s address` };
  }
  const fds = openDescriptors(c);
  if (fds === undefined) return { declined: "cannot read /proc/self/fd" };
  let found: { fd: number; socket: string } | undefined;
  for (const fd of fds) {
    if (!matches(c, fd, w)) continue;
    const socket = fdTarget(c, fd);
    if (!socket.startsWith("socket:")) continue; // closed meanwhile
    if (found === undefined) found = { fd, socket };
    else if (found.socket !== socket) {
      return { declined: `several sockets match the ${id.kind}` };
    }
  }
  if (found !== undefined) return found;
  return {
    declined: id.kind === "connection"
      ? "no socket matches the connection (the peer may have reset it)"
      : `no socket matches the ${id.kind}`,
  };
}

/**
 * A close-on-exec duplicate (numbered 3 or above) of the socket `id`
 * describes, checked after it was made: it must still have the identity
 * and be the very socket that was found. The caller owns the duplicate and
 * closes it. A refusal says why.
 */
export function claimSocket(c: Libc, id: SocketIdentity): Claim {
  const found = findSocket(c, id);
  if ("declined" in found) return found;
  const fd = c.fcntl(found.fd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return { declined: "cannot duplicate the descriptor" };
  const w = wanted(id)!;
  if (matches(c, fd, w) && fdTarget(c, fd) === found.socket) return { fd };
  c.close(fd);
  return {
    declined:
      "the socket changed while it was duplicated (the peer may have reset it)",
  };
}
