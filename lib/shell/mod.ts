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
 * await using server = shellServer({ port: 0 }, { insecureNoAuth: true });
 * await using session = await connectShell({ hostname: "127.0.0.1", port: server.addr.port });
 * assertEquals((await session.exec("kill -TERM $$")).exitCode, 143);
 * ```
 *
 * @module
 */
export * from "./accept_env.ts";
export * from "./audit.ts";
export * from "./auth.ts";
export * from "./auth_gate.ts";
export * from "./client.ts";
export * from "./interactive.ts";
export * from "./policy.ts";
export * from "./process_group.ts";
export * from "./protocol.ts";
export * from "./seed_compat.ts";
export * from "./server.ts";
export * from "./tls_client.ts";
export * from "./tls_server.ts";
export * from "./wire.ts";
