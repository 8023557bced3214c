/**
 * The plainest Deno TCP echo server (read, write, repeat), beside which
 * bench/echo_load.ts measures `denocat echo`: what the runtime itself gives.
 *
 * Usage: deno run -A bench/raw_echo.ts PORT
 */
const listener = Deno.listen({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0]),
});
for await (const conn of listener) {
  conn.setNoDelay(true);
  (async () => {
    const buf = new Uint8Array(16384);
    let n: number | null;
    try {
      while ((n = await conn.read(buf)) !== null) {
        await conn.write(buf.subarray(0, n));
      }
    } catch { /* the client went away */ }
    try {
      conn.close();
    } catch { /* already closed */ }
  })();
}
