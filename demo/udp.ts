/** Demo section: UDP echo with the seeds' client, the -u client, probes and a port scan. */
import { spawn } from "../tests/_helpers.ts";
import { check, runCli, says, section, shows, startServer } from "./_util.ts";

const SEED_UDP_CLIENT = `
import socket, sys
ip_port = ("127.0.0.1", int(sys.argv[1]))
udp_sk = socket.socket(type=socket.SOCK_DGRAM)
udp_sk.settimeout(5)
udp_sk.sendto(b"hah", ip_port)
back_msg, addr = udp_sk.recvfrom(1024)
print(back_msg.decode("utf-8"))
`;

export async function run(): Promise<void> {
  section(
    "UDP: echo server, the seeds' client, and a client that waits for late replies",
  );
  await using echo = await startServer([
    "echo",
    "-u",
    "--upper",
    "127.0.0.1",
    "0",
  ]);
  shows(`denocat echo -u --upper 127.0.0.1 ${echo.port} &`);
  shows(`python3 seed_udp_client.py   # sendto(b'hah'), recvfrom(1024)`);
  const py = await spawn("python3", ["-c", SEED_UDP_CLIENT, String(echo.port)])
    .output;
  says(py.text);
  check(
    py.code === 0 && py.text === "HAH\n",
    "the seeds' python3 UDP client got b'HAH' back",
  );
  shows(`printf 'one\\ntwo\\n' | denocat -u 127.0.0.1 ${echo.port}`);
  const u = await runCli(["-u", "127.0.0.1", String(echo.port)], {
    stdin: "one\ntwo\n",
  });
  says(u.text);
  check(
    u.code === 0 && u.text === "ONE\nTWO\n",
    "each line went as one datagram and both replies were printed",
  );

  section("UDP: probe with sequence numbers, RTT and loss");
  shows(`denocat probe -u -c 10 -i 0.02 127.0.0.1 ${echo.port}`);
  const p = await runCli([
    "probe",
    "-u",
    "-c",
    "10",
    "-i",
    "0.02",
    "--json",
    "127.0.0.1",
    String(echo.port),
  ]);
  const report = JSON.parse(p.text);
  says(
    `sent=${report.sent} received=${report.received} loss=${report.loss}% ` +
      `rtt p50=${
        report.rtt.p50.toFixed(3)
      } ms (an upper-casing echo server; replies matched by sequence number)`,
  );
  check(
    p.code === 0 && report.sent === 10 && report.received === 10,
    "10 probes sent, 10 replies matched, 0% loss",
  );

  section("TCP: port scan over a range");
  using open1 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = open1.addr.port;
  shows(`denocat probe 127.0.0.1 ${port}-${port + 4}`);
  const scan = await runCli([
    "probe",
    "--json",
    "127.0.0.1",
    `${port}-${port + 4}`,
  ]);
  const s = JSON.parse(scan.text);
  const openPorts = (s.open as Array<{ port: number }>).map((r) => r.port);
  says(`open: ${openPorts.join(", ")}`);
  check(
    openPorts.includes(port),
    `port ${port}, bound by this demo, is reported open with its connect time`,
  );
  echo.kill("SIGTERM");
  check((await echo.output).code === 0, "UDP echo server stopped cleanly");
}
