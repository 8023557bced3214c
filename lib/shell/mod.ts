/**
 * The remote shell: a server that runs commands in their own process
 * groups with timeouts, output limits and backpressure, behind
 * challenge-response authentication and optional TLS; a client for one-shot
 * and interactive use; and servers speaking the seeds' two "simulated ssh"
 * protocols. The wire format is in `docs/PROTOCOL.md` ("Shell protocol").
 *
 * @example One command
 * ```ts
 * import { connectShell, shellServer } from "./mod.ts";
 * import { assertEquals } from "../_assert.ts";
 * // Windows has no process groups: the server refuses to start there.
 * if (Deno.build.os !== "windows") {
 *   await using server = shellServer({ port: 0 }, { insecureNoAuth: true });
 *   await using session = await connectShell({ hostname: "127.0.0.1", port: server.addr.port });
 *   assertEquals((await session.exec("kill -TERM $$")).exitCode, 143);
 * }
 * ```
 *
 * @module
 */
export type { Family } from "../address.ts";
export {
  type ShellServer,
  shellServer,
  type ShellServerOptions,
} from "./server.ts";
export {
  connectShell,
  type ConnectShellOptions,
  type ExecOptions,
  EXIT_SHELL_FAILURE,
  type ShellExit,
  type ShellSession,
} from "./client.ts";
export {
  type InteractiveOptions,
  interactiveShell,
  processInterrupts,
} from "./interactive.ts";
export {
  SEED_MODES,
  type SeedCompatOptions,
  type SeedCompatServer,
  seedCompatServer,
  type SeedMode,
} from "./seed_compat.ts";
export {
  type AuditRecord,
  type AuditSink,
  type ExecRecord,
  type RefusalRecord,
  type StartRecord,
} from "./audit.ts";
export {
  EXIT_TIMED_OUT,
  EXIT_TRUNCATED,
  type ExitInfo,
  type PtyRequest,
  ShellProtocolError,
} from "./protocol.ts";
export { ShellRemoteError } from "./wire.ts";
export type { Token } from "./auth.ts";
export {
  type AuthAttempt,
  AuthGate,
  type AuthThrottleOptions,
  type GateTicket,
} from "./auth_gate.ts";
export { type LocalTerminal, runOnTerminal } from "./terminal.ts";
