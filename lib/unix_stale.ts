/**
 * A Unix socket file left behind by a process that died: `-l -U PATH`
 * removes it and binds, as nc does, but only when it can tell it is stale.
 *
 * @module
 */
import { unixName } from "./address.ts";
import { DenocatError, netError } from "./errors.ts";
import { type Logger, silent } from "./log.ts";

/**
 * Removes `path` when it is a socket file that nothing accepts connections
 * on (connecting is refused). Leaves alone: a missing path, an abstract name
 * (`"\0name"`, nothing on disk), a socket someone still listens on (stream
 * or datagram), and anything that is not a socket, which is an error.
 * Returns whether a stale socket was removed.
 *
 * @example Usage
 * ```ts
 * import { removeStaleSocket } from "./unix_stale.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(await removeStaleSocket("/nonexistent/dir/sock"), false);
 * ```
 */
export async function removeStaleSocket(
  path: string,
  logger: Logger = silent,
): Promise<boolean> {
  if (path.startsWith("\0")) return false;
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw netError(`listen on ${path}`, err);
  }
  if (!info.isSocket) {
    throw new DenocatError(
      `cannot listen on ${path}: it exists and is not a socket (left alone)`,
    );
  }
  // Bound sockets are listed in /proc/net/unix by the path given to bind:
  // finding ours there means someone still holds it, with no need to
  // connect (which a one-connection listener would take as its session).
  if (boundPaths()?.has(await absolute(path))) return false;
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return false; // alive: binding will say "address already in use"
  } catch (err) {
    // Refused: no listener behind the file. Anything else (a datagram
    // socket answers "protocol wrong type", no permission) means leave it.
    if (!(err instanceof Deno.errors.ConnectionRefused)) return false;
  }
  try {
    await Deno.remove(path);
  } catch (err) {
    throw netError(`remove the stale socket ${path}`, err);
  }
  logger.log(`removed stale socket ${unixName(path)}`);
  return true;
}

/** Absolute paths of the Unix sockets bound in this network namespace (Linux). */
function boundPaths(): Set<string> | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/net/unix");
  } catch {
    return undefined;
  }
  const paths = new Set<string>();
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length >= 8 && fields[7]!.startsWith("/")) {
      paths.add(fields.slice(7).join(" "));
    }
  }
  return paths;
}

async function absolute(path: string): Promise<string> {
  if (path.startsWith("/")) return path;
  try {
    const slash = path.lastIndexOf("/");
    const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
    return `${await Deno.realPath(dir)}/${path.slice(slash + 1)}`;
  } catch {
    return path;
  }
}
