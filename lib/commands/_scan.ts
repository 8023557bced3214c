/**
 * `denocat -z HOST PORT...`: nc's port scan on the engine of `denocat probe`
 * (tcp/probe.ts), with nc's arguments, `-v` lines and exit codes.
 *
 * @module
 */
import type { Family } from "../address.ts";
import { DenocatError, EXIT_FAILURE, UsageError } from "../errors.ts";
import { sourceSocketsUnavailable } from "../native/socket_fd.ts";
import { checkNumeric } from "../tcp/connect.ts";
import { ncScanLine, parsePortList, scanPorts } from "../tcp/probe.ts";
import { shutdownSignal } from "./_args.ts";

/** The flags `-z` uses. */
export interface NcScanFlags {
  /** `-u`: nc's UDP test. */
  udp: boolean;
  /** `-v`: print each result as nc does. */
  verbose: boolean;
  /** `-n`: no DNS or service lookups. */
  numeric: boolean;
  family: Family | undefined;
  /** `-w` in ms: the connect timeout per port. */
  wait: number | undefined;
}

/** Scans; exit 0 when a port is open, 1 when none is. */
export async function runNcScan(
  given: string[],
  flags: NcScanFlags,
): Promise<number> {
  if (given.length < 2) {
    throw new UsageError("-z needs HOST and at least one PORT (see --help)");
  }
  const [host, ...specs] = given as [string, ...string[]];
  checkNumeric(host, flags.numeric);
  const protocol = flags.udp ? "udp" : "tcp";
  if (flags.numeric) {
    for (const s of specs) {
      if (/[a-zA-Z]/.test(s)) {
        throw new UsageError(
          `-n: ${s} is not a port number (no service lookups with -n)`,
        );
      }
    }
  }
  const ports = parsePortList(specs, protocol);
  const why = flags.udp ? sourceSocketsUnavailable() : undefined;
  if (why !== undefined) {
    throw new DenocatError(`cannot use -zu (the UDP port test): ${why}`);
  }
  using signal = shutdownSignal();
  const report = await scanPorts({
    hostname: host,
    ports,
    protocol,
    signal,
    // nc's -z waits for the system's connect timeout; -w bounds it here too.
    ...(flags.wait !== undefined ? { timeout: flags.wait } : {}),
    ...(flags.family ? { family: flags.family } : {}),
  });
  if (flags.verbose) {
    // In the order given, as nc prints them.
    const byPort = new Map(report.results.map((r) => [r.port, r]));
    for (const port of ports) {
      const r = byPort.get(port);
      if (r === undefined) continue;
      const line = ncScanLine(host, report.host, protocol, r);
      if (line !== undefined) console.error(line);
    }
  }
  return report.open.length ? 0 : EXIT_FAILURE;
}
