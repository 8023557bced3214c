/**
 * `--compat seed` against python3 programs speaking the seeds' advanced
 * header (`struct.pack('i', len(header))`, JSON `{"filename", "md5",
 * "total_size"}`, body), modeled on the seed tutorial's client and server.
 */
import { assertEquals, assertOk } from "../lib/_assert.ts";
import { encodeSeedHeader } from "../lib/transfer/seed.ts";
import {
  needs,
  randomBytes,
  runCli,
  sha256,
  spawn,
  startServer,
} from "./_helpers.ts";

/** The seed's client, uploading files with the advanced header. */
const SEED_UPLOAD = `
import hashlib, json, os, socket, struct, sys

host, port = sys.argv[1], int(sys.argv[2])
corrupt = os.environ.get("CORRUPT_MD5") == "1"
phone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
phone.connect((host, port))
for path in sys.argv[3:]:
    with open(path, "rb") as f:
        data = f.read()
    md5 = hashlib.md5(data).hexdigest()
    if corrupt:
        md5 = hashlib.md5(data + b"x").hexdigest()
    header_dic = {
        "filename": os.path.basename(path),
        "md5": md5,
        "total_size": len(data),
    }
    header_json = json.dumps(header_dic)
    header_bytes = header_json.encode("utf-8")
    phone.sendall(struct.pack("i", len(header_bytes)))
    phone.sendall(header_bytes)
    phone.sendall(data)
phone.close()
`;

/** The seed's server turned downloader: receives files, checks each md5. */
const SEED_DOWNLOAD = `
import hashlib, json, os, socket, struct, sys

out_dir = sys.argv[1]
phone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
phone.bind(("127.0.0.1", 0))
phone.listen(5)
print("port", phone.getsockname()[1], file=sys.stderr, flush=True)
conn, client = phone.accept()

def recv_exact(n):
    buf = b""
    while len(buf) < n:
        data = conn.recv(min(65536, n - len(buf)))
        if not data:
            return None
        buf += data
    return buf

while True:
    obj = recv_exact(4)
    if obj is None:
        break
    header_size = struct.unpack("i", obj)[0]
    header = recv_exact(header_size)
    header_dic = json.loads(header.decode("utf-8"))
    total_size = header_dic["total_size"]
    md5 = hashlib.md5()
    recv_size = 0
    with open(os.path.join(out_dir, header_dic["filename"]), "wb") as f:
        while recv_size < total_size:
            data = conn.recv(min(65536, total_size - recv_size))
            if not data:
                break
            f.write(data)
            md5.update(data)
            recv_size += len(data)
    ok = md5.hexdigest() == header_dic["md5"] and recv_size == total_size
    print("ok" if ok else "BAD", header_dic["filename"], recv_size, flush=True)
conn.close()
phone.close()
`;

async function fixture(dir: string, name: string, text: string) {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

async function tempDir(): Promise<string> {
  return await Deno.realPath(await Deno.makeTempDir({ prefix: "xfer-seed-" }));
}

Deno.test({
  name:
    "recv --compat seed: files from the seed's python uploader arrive verified",
  ignore: needs("python3"),
  async fn() {
    const dir = await tempDir();
    try {
      const upload = await fixture(dir, "seed_upload.py", SEED_UPLOAD);
      await Deno.mkdir(`${dir}/src`);
      await Deno.mkdir(`${dir}/out`);
      const files = [
        ["empty.txt", new Uint8Array()],
        ["one.bin", new Uint8Array([7])],
        ["été.bin", randomBytes(300_000)],
      ] as const;
      for (const [n, d] of files) await Deno.writeFile(`${dir}/src/${n}`, d);
      await using recv = await startServer([
        "recv",
        "--compat",
        "seed",
        "-o",
        `${dir}/out`,
        "127.0.0.1",
        "0",
      ]);
      const py = await spawn("python3", [
        upload,
        "127.0.0.1",
        String(recv.port),
        ...files.map(([n]) => `${dir}/src/${n}`),
      ]).output;
      assertEquals(py.code, 0, py.stderr);
      const got = await recv.output;
      assertEquals(got.code, 0, got.stderr);
      for (const [n, d] of files) {
        assertEquals(
          sha256(await Deno.readFile(`${dir}/out/${n}`)),
          sha256(d),
          n,
        );
      }
      assertOk(
        /received "été\.bin": 300000 bytes/.test(got.stderr),
        got.stderr,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "recv --compat seed: a wrong md5 from the python uploader gives exit 3 and no file",
  ignore: needs("python3"),
  async fn() {
    const dir = await tempDir();
    try {
      const upload = await fixture(dir, "seed_upload.py", SEED_UPLOAD);
      await Deno.writeFile(`${dir}/x.bin`, randomBytes(10_000));
      await Deno.mkdir(`${dir}/out`);
      await using recv = await startServer([
        "recv",
        "--compat",
        "seed",
        "-o",
        `${dir}/out`,
        "127.0.0.1",
        "0",
      ]);
      await spawn("python3", [
        upload,
        "127.0.0.1",
        String(recv.port),
        `${dir}/x.bin`,
      ], {
        env: { CORRUPT_MD5: "1" },
      }).output;
      const got = await recv.output;
      assertEquals(got.code, 3, got.stderr);
      assertOk(got.stderr.includes("md5 mismatch"), got.stderr);
      assertEquals([...Deno.readDirSync(`${dir}/out`)], []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "send --compat seed: the seed's python downloader receives files and stdin with matching md5",
  ignore: needs("python3"),
  async fn() {
    const dir = await tempDir();
    try {
      const download = await fixture(dir, "seed_download.py", SEED_DOWNLOAD);
      await Deno.mkdir(`${dir}/out`);
      const a = randomBytes(500_000);
      await Deno.writeFile(`${dir}/a.bin`, a);
      await Deno.writeFile(`${dir}/empty`, new Uint8Array());
      await using py = spawn("python3", [download, `${dir}/out`]);
      const port = (await py.waitForStderr(/port (\d+)/))[1]!;
      const sent = await runCli(
        [
          "send",
          "-v",
          "--compat",
          "seed",
          "--name",
          "from-stdin.bin",
          "127.0.0.1",
          port,
          `${dir}/a.bin`,
          `${dir}/empty`,
          "-",
        ],
        { stdin: "piped through stdin\n" },
      );
      assertEquals(sent.code, 0, sent.stderr);
      const out = await py.output;
      assertEquals(out.code, 0, out.stderr);
      assertEquals(
        out.text,
        "ok a.bin 500000\nok empty 0\nok from-stdin.bin 20\n",
      );
      assertEquals(sha256(await Deno.readFile(`${dir}/out/a.bin`)), sha256(a));
      assertEquals(
        await Deno.readTextFile(`${dir}/out/from-stdin.bin`),
        "piped through stdin\n",
      );
      assertOk(sent.stderr.includes(`sha256 ${sha256(a)}`), sent.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "encodeSeedHeader() is byte for byte what the seed's python writes",
  ignore: needs("python3"),
  async fn() {
    const name = 'été 文件 "q".txt';
    const md5 = "0123456789abcdef0123456789abcdef";
    const py = await spawn("python3", [
      "-c",
      `import json, struct, sys
h = json.dumps({"filename": sys.argv[1], "md5": sys.argv[2], "total_size": int(sys.argv[3])}).encode("utf-8")
sys.stdout.write((struct.pack("i", len(h)) + h).hex())`,
      name,
      md5,
      "123456789012",
    ]).output;
    assertEquals(py.code, 0, py.stderr);
    assertEquals(encodeSeedHeader(name, md5, 123456789012).toHex(), py.text);
  },
});
