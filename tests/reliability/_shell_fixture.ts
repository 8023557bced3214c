/**
 * A shell server in a process of its own, for figures that need the
 * library's options the CLI does not expose (a fast penalty schedule, wide
 * pending limits): `deno run -A _shell_fixture.ts 'OPTIONS-JSON'`. Prints
 * `listening PORT` on stdout, then serves until SIGTERM. `token` in the
 * JSON is hex (bytes).
 *
 * @module
 */
import { shellServer, type ShellServerOptions } from "../../lib/shell/mod.ts";

const raw = JSON.parse(Deno.args[0] ?? "{}") as
  & Omit<ShellServerOptions, "token">
  & { token?: string; hostname?: string };
const { token, hostname, ...rest } = raw;
const server = shellServer({ hostname: hostname ?? "127.0.0.1", port: 0 }, {
  ...rest,
  ...(token !== undefined ? { token: Uint8Array.fromHex(token) } : {}),
});
console.log(`listening ${server.addr.port}`);
const stop = Promise.withResolvers<void>();
Deno.addSignalListener("SIGTERM", () => stop.resolve());
// SIGUSR2: print the memory figures (stdout, one JSON line).
Deno.addSignalListener("SIGUSR2", () => {
  const m = Deno.memoryUsage();
  console.log(JSON.stringify({ ...m, pending: server.pending }));
});
await stop.promise;
await server.close();
Deno.exit(0);
