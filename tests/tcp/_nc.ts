/**
 * Shared pieces of the nc/ncat compatibility tests (issue 16).
 *
 * @module
 */
import { assertOk } from "../../lib/_assert.ts";
import { freePort, spawn, type startCli } from "../_helpers.ts";

/** Asserts that `text` matches `re`, showing the text when it does not. */
export function assertMatch(text: string, re: RegExp): void {
  assertOk(re.test(text), `${JSON.stringify(text)} does not match ${re}`);
}

/** A python3 TCP server: prints its port, then per connection the peer address and what it received as hex. */
export const PY_PEER_SERVER = `
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    c, a = s.accept()
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.sendall(("%s %d %s\\n" % (a[0], a[1], data.hex())).encode())
    c.close()
`;

/** Runs python3 with `code` and returns stdout lines as they come. */
export function pyLines(code: string) {
  const p = spawn("python3", ["-c", code], { keepStdin: true });
  return p;
}

/** A free port outside the ephemeral range other tests draw from. */
export const freeHighPort = freePort;

/** Waits for a `-v` server's "listening on" line. */
export async function listening(p: ReturnType<typeof startCli>): Promise<void> {
  await p.waitForStderr(/listening on/);
}

/** A listener on a free port that /etc/services names (the first name given for it). */
export async function listenOnServicePort() {
  const services = await Deno.readTextFile("/etc/services").catch(() => "");
  const seen = new Set<number>();
  for (const line of services.split("\n")) {
    const m = /^([a-z][\w-]*)\s+(\d+)\/tcp/.exec(line);
    if (!m) continue;
    const port = Number(m[2]);
    if (seen.has(port)) continue; // only a port's first name is its name
    seen.add(port);
    if (port < 10000) continue;
    try {
      const listener = Deno.listen({ hostname: "127.0.0.1", port });
      return { listener, port, name: m[1]! };
    } catch { /* in use */ }
  }
  return undefined;
}

/** nc's lines without the program prefix, lower-cased, for comparison. */
export function scanLines(stderr: string): string[] {
  return stderr.trimEnd().split("\n").filter((l) => l !== "").map((l) =>
    l.replace(/^(nc|denocat): /, "").toLowerCase()
  );
}
