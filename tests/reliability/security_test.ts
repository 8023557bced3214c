/**
 * Security: no exec without authentication on a non-loopback bind, wrong
 * and replayed authentication run nothing, path traversal is refused in
 * every form, and the token never crosses the wire.
 */
import { assertEquals } from "../../lib/_assert.ts";
import { sendItems } from "../../lib/transfer/mod.ts";
import { runCli, startServer, testOnlyOn } from "../_helpers.ts";
import { assertNoCrash, concat, recordingProxy, summary } from "./_util.ts";

const test = testOnlyOn(
  ["linux"],
  "/proc (the reliability checks read memory and processes there)",
);

const te = new TextEncoder();

test("security: bind policy, wrong and replayed auth, traversal, token on the wire", async () => {
  const dir = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "denocat-sec-" }),
  );
  const checks: Array<[string, boolean]> = [];
  const check = (what: string, ok: boolean) => checks.push([what, ok]);
  try {
    // 1. Non-loopback binds without a token are refused (exit 2, one line).
    for (
      const args of [
        ["0.0.0.0", "0"],
        ["::", "0"],
        ["--insecure-no-auth", "0.0.0.0", "0"],
        ["--insecure-no-auth", "::", "0"],
        ["0", "0"], // "0" is 0.0.0.0 to the resolver
      ]
    ) {
      const r = await runCli(["shell", "-l", ...args]);
      check(
        `shell -l ${args.join(" ")} refused`,
        r.code === 2 && /^denocat: refusing [^\n]+\n$/.test(r.stderr),
      );
    }

    // 2. With a token on 0.0.0.0 (reached over loopback only), no token and
    //    a wrong token run nothing.
    const token = `tok-${crypto.getRandomValues(new Uint8Array(16)).toHex()}`;
    const marker = `${dir}/marker`;
    {
      await using srv = await startServer([
        "shell",
        "-l",
        "--token",
        token,
        "0.0.0.0",
        "0",
      ]);
      const port = String(srv.port);
      const none = await runCli(
        ["shell", "127.0.0.1", port, "--", `touch ${marker}`],
        { env: { DENOCAT_TOKEN: "" } },
      );
      const wrong = await runCli([
        "shell",
        "--token",
        token + "x",
        "127.0.0.1",
        port,
        "--",
        `touch ${marker}`,
      ]);
      check("no token: exit 255 or 2", [2, 255].includes(none.code));
      check("wrong token: exit 255", wrong.code === 255);
      check("no marker after a wrong token", !exists(marker));

      // 3. Replay: record a real session, then send its bytes again.
      const legit = `${dir}/legit`;
      let recorded: Uint8Array[][];
      {
        await using proxy = recordingProxy(srv.port);
        const r = await runCli([
          "shell",
          "--token",
          token,
          "127.0.0.1",
          String(proxy.port),
          "--",
          `touch ${legit}`,
        ]);
        check("recorded session ran", r.code === 0 && exists(legit));
        recorded = proxy.recording.up;
        // 4. The token never crosses the wire, in any encoding.
        const wire = concat([
          ...proxy.recording.up.flat(),
          ...proxy.recording.down.flat(),
        ]);
        const raw = te.encode(token);
        const forms = [
          raw,
          te.encode(raw.toHex()),
          te.encode(raw.toHex().toUpperCase()),
          te.encode(raw.toBase64()),
          te.encode(raw.toBase64({ alphabet: "base64url", omitPadding: true })),
          te.encode(token.split("").reverse().join("")),
        ];
        check(
          "capture holds the session (DCSH hellos)",
          find(wire, te.encode("DCSH")) && wire.length > 40,
        );
        check(
          "token absent from the wire (plain, hex, base64)",
          forms.every((f) => !find(wire, f)),
        );
      }
      await Deno.remove(legit);
      const replay = concat(recorded[0]!);
      using c = await Deno.connect({ hostname: "127.0.0.1", port: srv.port });
      await c.write(replay);
      await c.closeWrite();
      const reply = await readAll(c);
      await new Promise((r) => setTimeout(r, 300));
      check(
        "replayed session refused",
        find(reply, te.encode("authentication failed")),
      );
      check("replay ran nothing", !exists(legit));
      srv.kill("SIGTERM");
      assertNoCrash("shell", (await srv.output).stderr);
    }

    // 5. Path traversal in every form, against recv -k.
    const out = `${dir}/out`;
    const outside = `${dir}/outside`;
    await Deno.mkdir(out);
    await Deno.mkdir(outside);
    await Deno.symlink(outside, `${out}/link`);
    await Deno.symlink(`${outside}/target`, `${out}/dangling`);
    {
      await using recv = await startServer(["recv", "-k", "-o", out, "0"]);
      const hostile = [
        "../escape",
        "../../escape",
        "a/../../escape",
        "a/b/../../../escape",
        "..",
        ".",
        "/tmp/escape-abs",
        `${outside}/abs`,
        "a//b",
        "./x",
        "a\\..\\..\\escape",
        "..\\escape",
        "a\0b",
        "a\nb",
        "\u001b[31mred",
        "a\u0085b", // C1 control
        "link/escape", // through a symlink to outside
        "dangling", // a symlink as the final component
        "",
        "x".repeat(5000),
      ];
      let refused = 0;
      for (const name of hostile) {
        const r = await sendItems({ hostname: "127.0.0.1", port: recv.port }, [{
          kind: "stream",
          name,
          reader: once("pwned"),
        }]);
        if (r.exitCode !== 0 && r.items[0]?.code === "unsafe-name") refused++;
        else {console.error(
            `not refused as unsafe: ${JSON.stringify(name)}: ${
              JSON.stringify(r.items[0])
            }`,
          );}
      }
      check(
        `${hostile.length} traversal names refused`,
        refused === hostile.length,
      );
      // Full-width dots and lookalike slashes are ordinary characters on
      // Linux: accepted, and written inside DIR.
      for (const name of ["\uff0e\uff0e\u2215x", "\u2024\u2024"]) {
        const r = await sendItems({ hostname: "127.0.0.1", port: recv.port }, [{
          kind: "stream",
          name,
          reader: once("fine"),
        }]);
        check(
          `${JSON.stringify(name)} stays inside DIR`,
          r.exitCode === 0 &&
            Deno.readTextFileSync(`${out}/${name}`) === "fine",
        );
      }
      recv.kill("SIGTERM");
      assertNoCrash("recv", (await recv.output).stderr);
    }
    const escaped = [
      ...Deno.readDirSync(outside),
      ...Deno.readDirSync(dir),
    ].map((e) => e.name).filter((n) => !["out", "outside"].includes(n));
    check(
      "nothing written outside DIR",
      escaped.length === 0 && !exists("/tmp/escape-abs"),
    );

    const passed = checks.filter(([, ok]) => ok).length;
    summary(
      `security: ${passed}/${checks.length} checks passed (bind policy, wrong/replayed auth, traversal, token off the wire)`,
    );
    assertEquals(checks.filter(([, ok]) => !ok).map(([w]) => w), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function find(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) continue outer;
    }
    return true;
  }
  return false;
}

function once(text: string) {
  let done = false;
  return {
    read(p: Uint8Array) {
      if (done) return Promise.resolve(null);
      done = true;
      const b = te.encode(text);
      p.set(b);
      return Promise.resolve(b.length);
    },
  };
}

async function readAll(c: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  try {
    let n: number | null;
    while ((n = await c.read(buf)) !== null) chunks.push(buf.slice(0, n));
  } catch { /* reset */ }
  return concat(chunks);
}
