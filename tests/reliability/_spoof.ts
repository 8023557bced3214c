/**
 * Sends UDP datagrams with a made-up source address and port, on loopback
 * only, through a python3 raw socket: what an attacker off-path does to a
 * UDP responder. Raw sockets need root or CAP_NET_RAW (or passwordless
 * sudo, used when there); tests that spoof are `ignore`d without them.
 *
 * @module
 */
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import { hasCommand } from "../_helpers.ts";

const SENDER = `
import json, socket, struct, sys, time
spec = json.load(sys.stdin)
pace = spec.get('pace', 0)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def packet(src, sport, dst, dport, payload):
    udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64,
                     socket.IPPROTO_UDP, 0, socket.inet_aton(src),
                     socket.inet_aton(dst))
    return ip + udp
sent = 0
for src, sport, dst, dport, hexdata, count in spec.get('packets', []):
    assert dst.startswith('127.') and src.startswith('127.')
    p = packet(src, sport, dst, dport, bytes.fromhex(hexdata))
    for _ in range(count):
        s.sendto(p, (dst, 0))
        sent += 1
        if pace and sent % 100 == 0: time.sleep(pace)
spray = spec.get('spray')
if spray:
    assert spray['dst'].startswith('127.')
    # Distinct made-up sources 127.A.B.C (all of 127/8 is loopback, so the
    # replies stay on this machine), one datagram each.
    for i in range(spray['n']):
        src = '127.%d.%d.%d' % (100 + (i >> 16) % 100, (i >> 8) & 255, 1 + (i & 255) % 254)
        s.sendto(packet(src, 40000 + i % 20000, spray['dst'], spray['dport'], b'x'), (spray['dst'], 0))
        sent += 1
        if pace and sent % 100 == 0: time.sleep(pace)
print(sent)
`;

const RAW_CHECK =
  "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)";

function succeeds(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/**
 * How to run python3 with a raw socket: directly (root, CAP_NET_RAW), else
 * through passwordless sudo (as CI runners have), else not at all.
 */
const PYTHON: string[] | undefined = !hasCommand("python3")
  ? undefined
  : succeeds("python3", ["-c", RAW_CHECK])
  ? ["python3"]
  : hasCommand("sudo") && succeeds("sudo", ["-n", "python3", "-c", RAW_CHECK])
  ? ["sudo", "-n", "python3"]
  : undefined;

/** Whether datagrams can be spoofed here (see the module doc). */
export const canSpoof: boolean = PYTHON !== undefined;

/** One spoofed datagram, sent `count` times (1 by default). */
export interface Spoofed {
  /** Source address: 127.x.y.z. */
  src: string;
  sport: number;
  /** Destination: 127.x.y.z. */
  dst: string;
  dport: number;
  payload?: Uint8Array;
  count?: number;
}

/**
 * Sends `packets` (and, with `spray`, one datagram each from `n` distinct
 * made-up 127/8 addresses) and returns how many datagrams went out. With
 * `paceMs`, it pauses that long after every 100 datagrams.
 */
export async function spoof(
  packets: Spoofed[],
  spray?: { n: number; dst: string; dport: number },
  paceMs = 0,
): Promise<number> {
  const spec = {
    packets: packets.map((p) => [
      p.src,
      p.sport,
      p.dst,
      p.dport,
      (p.payload ?? new TextEncoder().encode("spoofed")).toHex(),
      p.count ?? 1,
    ]),
    ...(spray ? { spray } : {}),
    pace: paceMs / 1000,
  };
  const [cmd, ...pre] = PYTHON!;
  const child = new Deno.Command(cmd!, {
    args: [...pre, "-c", SENDER],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(spec)));
  await w.close();
  const out = await child.output();
  const err = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, err);
  const sent = Number(new TextDecoder().decode(out.stdout).trim());
  assertOk(Number.isInteger(sent), `spoof sender printed ${sent}`);
  return sent;
}
