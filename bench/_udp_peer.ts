/**
 * Benchmark helper processes for bench/udp_echo.ts, one role per run:
 *
 * - `server PORT`: the raw Deno UDP echo loop (receive, send back).
 * - `load PORT SECS SIZE INFLIGHT`: keeps INFLIGHT datagrams of SIZE bytes in
 *   flight for SECS seconds and prints `{"datagrams":N,"ms":T}`.
 * - `ping PORT COUNT INTERVAL_MS`: one datagram at a time, COUNT times at the
 *   given interval; prints the RTTs in ms as a JSON array.
 *
 * @module
 */
const [role, portText, a, b, c] = Deno.args;
const target: Deno.NetAddr = {
  transport: "udp",
  hostname: "127.0.0.1",
  port: Number(portText),
};
const buf = new Uint8Array(65536);

if (role === "server") {
  const s = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: target.port,
  });
  console.error(`listening on 127.0.0.1:${target.port}`);
  while (true) {
    const [data, from] = await s.receive(buf);
    await s.send(data, from);
  }
} else if (role === "load") {
  const secs = Number(a), size = Number(b), inflight = Number(c);
  const s = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const payload = new Uint8Array(size).fill(0x41);
  let received = 0;
  let lastTickReceived = 0;
  let stop = false;
  const refill = async (n: number) => {
    for (let i = 0; i < n; i++) await s.send(payload, target);
  };
  // A lost datagram would shrink the window for good: refill when stalled.
  const watchdog = setInterval(() => {
    if (received === lastTickReceived && !stop) refill(inflight);
    lastTickReceived = received;
  }, 50);
  await refill(inflight);
  const t0 = performance.now();
  const end = t0 + secs * 1000;
  while (true) {
    await s.receive(buf);
    received++;
    if ((received & 255) === 0 && performance.now() >= end) break;
    await s.send(payload, target);
  }
  stop = true;
  clearInterval(watchdog);
  console.log(
    JSON.stringify({ datagrams: received, ms: performance.now() - t0 }),
  );
  s.close();
} else if (role === "ping") {
  const count = Number(a), interval = Number(b);
  const s = Deno.listenDatagram({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 0,
  });
  const rtts: number[] = [];
  const payload = new Uint8Array(32).fill(0x41);
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await s.send(payload, target);
    await s.receive(buf);
    rtts.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, interval));
  }
  console.log(JSON.stringify(rtts));
  s.close();
} else {
  console.error("usage: _udp_peer.ts server|load|ping PORT ...");
  Deno.exit(2);
}
