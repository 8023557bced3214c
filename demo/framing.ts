/**
 * Demo section: the sticky-packet problem and `--frame`. A python3 seed
 * sender fires messages back to back; plain `denocat -l` gets one glued byte
 * stream, `denocat -l --frame seed` gets every message back exactly, and
 * `--frame seed-json --output json` shows the seeds' JSON headers.
 */
import { check, says, section, shows, startServer } from "./_util.ts";
import { spawn } from "../tests/_helpers.ts";

const COUNT = 2000;

const PY_SEED_SENDER = `
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for i in range(${COUNT}):
    msg = ("message %d from the seed client" % i).encode("utf-8")
    s.send(struct.pack('i', len(msg)))
    s.send(msg)
s.close()
`;

const PY_SEED_JSON_SENDER = `
import hashlib, json, socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for name, body in [("motd.txt", b"welcome\\n"), ("data.bin", bytes(range(256)))]:
    header = json.dumps({"filename": name, "md5": hashlib.md5(body).hexdigest(), "total_size": len(body)}).encode("utf-8")
    s.send(struct.pack('i', len(header)))
    s.send(header)
    s.sendall(body)
s.close()
`;

async function python(script: string, port: number): Promise<number> {
  await using p = spawn("python3", ["-c", script, String(port)]);
  return (await p.output).code;
}

export async function run(): Promise<void> {
  const messages = Array.from(
    { length: COUNT },
    (_, i) => `message ${i} from the seed client`,
  );

  section("Framing: the sticky-packet problem, then --frame seed");
  {
    await using plain = await startServer(["-l", "127.0.0.1", "0"]);
    shows(`denocat -l 127.0.0.1 ${plain.port} > glued.bin &`);
    shows(
      `python3 seed_client.py   # ${COUNT}x send(struct.pack('i', len(msg))); send(msg)`,
    );
    check(
      await python(PY_SEED_SENDER, plain.port) === 0,
      "python3 sender ran",
    );
    const out = await plain.output;
    const text = new TextDecoder().decode(out.stdout);
    says(
      `${out.stdout.length} bytes, no message boundaries: ${
        JSON.stringify(text.slice(0, 48))
      }…`,
    );
    check(
      !text.includes("\n") && text.includes(messages[1]!),
      "without framing the messages arrive glued together with their binary headers",
    );
  }
  {
    await using framed = await startServer([
      "-l",
      "--frame",
      "seed",
      "127.0.0.1",
      "0",
    ]);
    shows(`denocat -l --frame seed 127.0.0.1 ${framed.port}`);
    const t0 = performance.now();
    check(
      await python(PY_SEED_SENDER, framed.port) === 0,
      "python3 sender ran again",
    );
    const out = await framed.output;
    const lines = out.text.split("\n");
    lines.pop();
    says(
      `${lines[0]}\n${lines[1]}\n…\n${
        lines.at(-1)
      }   (${lines.length} lines in ${
        ((performance.now() - t0) / 1000).toFixed(2)
      } s)`,
    );
    check(out.code === 0, "listener exited 0 at the sender's clean end");
    check(
      lines.length === COUNT && lines.every((l, i) => l === messages[i]),
      `all ${COUNT} messages separated exactly, in order, one per line`,
    );
    const m = out.stderr.match(/closed: (\d+) frames/);
    check(m?.[1] === String(COUNT), `-v log counts ${COUNT} frames`);
  }

  section("Framing: the seeds' JSON header, --frame seed-json --output json");
  {
    await using server = await startServer([
      "-l",
      "--frame",
      "seed-json",
      "--output",
      "json",
      "127.0.0.1",
      "0",
    ]);
    shows(
      `denocat -l --frame seed-json --output json 127.0.0.1 ${server.port}`,
    );
    check(
      await python(PY_SEED_JSON_SENDER, server.port) === 0,
      "python3 sender wrote struct.pack('i', len(header)) + header + body, twice",
    );
    const out = await server.output;
    says(out.text.replace(/"data":"([^"]{24})[^"]+"/g, '"data":"$1…"'));
    const records = out.text.trimEnd().split("\n").map((l) => JSON.parse(l));
    const { createHash } = await import("node:crypto");
    const motd = new TextEncoder().encode("welcome\n");
    check(
      records.length === 2 && records[0].header.filename === "motd.txt" &&
        records[0].header.md5 ===
          createHash("md5").update(motd).digest("hex") &&
        records[0].data === motd.toBase64(),
      "first record: header fields (filename, md5, total_size) and body come through",
    );
    const bin = Uint8Array.from({ length: 256 }, (_, i) => i);
    check(
      records[1].len === 256 && records[1].header.total_size === 256 &&
        records[1].data === bin.toBase64(),
      "second record: 256 binary bytes, base64 matches",
    );
  }

  section("Framing: a truncated frame is an error, not data");
  {
    await using server = await startServer([
      "-l",
      "--frame",
      "u32be",
      "127.0.0.1",
      "0",
    ]);
    shows(
      `printf '\\0\\0\\0\\2hi\\0\\0\\0\\11cut' | denocat 127.0.0.1 ${server.port}`,
    );
    {
      using conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: server.port,
      });
      await conn.write(Uint8Array.fromHex("000000026869" + "00000009637574"));
    }
    const out = await server.output;
    const last = out.stderr.trimEnd().split("\n").at(-1)!;
    says(`stdout: ${JSON.stringify(out.text)}\n${last}\nexit ${out.code}`);
    check(
      out.code === 1 && out.text === "hi\n" &&
        last.includes("cannot decode frame at byte 6"),
      "exit 1, the whole frame printed, the cut one named by its byte offset",
    );
  }
}
