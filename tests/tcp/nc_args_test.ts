/**
 * The pieces behind the nc-style command line, tested directly: port lists
 * and service names, -C, flag hints, negative values, socket addresses.
 */
import { assertEquals, assertThrows } from "../../lib/_assert.ts";
import { parsePort, serviceName, servicePort } from "../../lib/address.ts";
import { crlfReader } from "../../lib/crlf.ts";
import { sockaddr } from "../../lib/native/socket_fd.ts";
import { parsePortList } from "../../lib/tcp/probe.ts";
import {
  keepaliveOption,
  nearestFlag,
  parse,
  unixPath,
} from "../../lib/commands/_args.ts";

const hasServices = (() => {
  try {
    return /^http\s+80\/tcp/m.test(Deno.readTextFileSync("/etc/services"));
  } catch {
    return false;
  }
})();

Deno.test("parsePort() takes /etc/services names for the protocol asked", {
  ignore: !hasServices,
}, () => {
  assertEquals(parsePort("http"), 80);
  assertEquals(parsePort("www"), 80); // an alias
  assertEquals(parsePort("domain", { protocol: "udp" }), 53);
  assertEquals(servicePort("ssh", "tcp"), 22);
  assertEquals(serviceName(80, "tcp"), "http");
  assertThrows(
    () => parsePort("no-such-service"),
    Error,
    "not a tcp service in /etc/services",
  );
  assertThrows(() => parsePort("-1"), Error, "invalid port: -1");
});

Deno.test(
  "parsePortList() takes ports, ranges, names and commas, drops repeats",
  {
    ignore: !hasServices,
  },
  () => {
    assertEquals(parsePortList(["22,80", "8000-8002", "http"]), [
      22,
      80,
      8000,
      8001,
      8002,
    ]);
    assertThrows(() => parsePortList(["80,"]), Error, "an empty item");
    assertThrows(() => parsePortList(["9-1"]), Error, "invalid port range");
    assertThrows(() => parsePortList([]), Error, "missing PORT");
  },
);

function chunks(...parts: string[]) {
  const enc = new TextEncoder();
  const queue = parts.map((p) => enc.encode(p));
  return {
    read(p: Uint8Array) {
      const c = queue.shift();
      if (!c) return Promise.resolve(null);
      const n = Math.min(c.length, p.length);
      p.set(c.subarray(0, n));
      if (n < c.length) queue.unshift(c.subarray(n));
      return Promise.resolve(n);
    },
  };
}

async function readAllWith(r: ReturnType<typeof crlfReader>, size: number) {
  const buf = new Uint8Array(size);
  let out = "";
  let n;
  while ((n = await r.read(buf)) !== null) {
    out += new TextDecoder().decode(buf.subarray(0, n));
  }
  return out;
}

Deno.test("crlfReader() turns bare LFs into CR LF, across reads and with tiny buffers", async () => {
  for (const size of [1, 2, 3, 64]) {
    assertEquals(
      await readAllWith(crlfReader(chunks("a\n", "\nb\r", "\nc\r\n")), size),
      "a\r\n\r\nb\r\nc\r\n",
      `buffer of ${size}`,
    );
  }
});

Deno.test("nearestFlag() names a long flag within two edits, nothing for letters", () => {
  const options = {
    "keep-open": { type: "boolean" },
    "send-only": { type: "boolean" },
    listen: { type: "boolean", short: "l" },
  } as const;
  assertEquals(nearestFlag("--keep-opne", options), "--keep-open");
  assertEquals(nearestFlag("--sendonly", options), "--send-only");
  assertEquals(nearestFlag("--frobnicate", options), undefined);
  assertEquals(nearestFlag("-x", options), undefined);
});

Deno.test("parse() takes -q -1 and -vq -1 as values, and --unix=PATH as --unix PATH", () => {
  const options = {
    quit: { type: "string", short: "q" },
    verbose: { type: "boolean", short: "v" },
    unix: { type: "boolean", short: "U" },
    keepalive: { type: "string" },
  } as const;
  assertEquals(parse(["-q", "-1", "h", "1"], options).values.quit, "-1");
  const grouped = parse(["-vq", "-1"], options);
  assertEquals([grouped.values.verbose, grouped.values.quit], [true, "-1"]);
  const unix = parse(["--unix=/tmp/s"], options);
  assertEquals([unix.values.unix, unix.positionals], [true, ["/tmp/s"]]);
  const ka = parse(["--keepalive", "host", "80"], options);
  assertEquals([ka.values.keepalive, ka.positionals], ["", ["host", "80"]]);
  // After "--" everything is positional.
  assertEquals(parse(["--", "-q", "-1"], options).positionals, ["-q", "-1"]);
});

Deno.test("keepaliveOption() reads IDLE[,INTVL[,CNT]]", () => {
  assertEquals(keepaliveOption(undefined), undefined);
  assertEquals(keepaliveOption(""), true);
  assertEquals(keepaliveOption("30"), { idle: 30 });
  assertEquals(keepaliveOption("30,5,3"), { idle: 30, interval: 5, count: 3 });
  assertThrows(() => keepaliveOption("30,5,3,1"), Error, "IDLE[,INTVL[,CNT]]");
  assertThrows(() => keepaliveOption("0"), Error, "--keepalive IDLE");
});

Deno.test("unixPath() maps @NAME to an abstract name and wants one PATH", () => {
  assertEquals(unixPath(["/tmp/s"]), "/tmp/s");
  if (Deno.build.os === "linux") assertEquals(unixPath(["@app"]), "\0app");
  assertThrows(() => unixPath([]), Error, "missing PATH for -U");
  assertThrows(() => unixPath(["a", "b"]), Error, "-U takes one PATH");
});

Deno.test("sockaddr() encodes IPv4, IPv6 and mapped addresses", () => {
  assertEquals(
    [...sockaddr("10.1.2.3", 443).subarray(0, 8)],
    [2, 0, 1, 187, 10, 1, 2, 3],
  );
  const v6 = sockaddr("2001:db8::1", 80);
  assertEquals(v6.length, 28);
  assertEquals([v6[0], v6[8], v6[9], v6[10], v6[11], v6[23]], [
    10,
    0x20,
    0x01,
    0x0d,
    0xb8,
    1,
  ]);
  assertEquals([...sockaddr("::", 0).subarray(8, 24)], new Array(16).fill(0));
  assertThrows(() => sockaddr("1.2.3", 1), TypeError, "not an IP address");
  assertThrows(() => sockaddr("1::2::3", 1), TypeError, "not an IP address");
});

Deno.test("parseStrict() agrees with node:util's strict parseArgs on 4,000 command lines, messages included", async () => {
  const { parseArgs } = await import("node:util");
  const { parseStrict } = await import("../../lib/commands/_args.ts");
  const options = {
    verbose: { type: "boolean", short: "v" },
    numeric: { type: "boolean", short: "n" },
    wait: { type: "string", short: "w" },
    allow: { type: "string", multiple: true },
    env: { type: "string", short: "e", multiple: true },
    x: { type: "boolean" },
  } as const;
  const pool = [
    "-v",
    "-n",
    "-w",
    "5",
    "-1",
    "-vw",
    "-wv",
    "-nvw3",
    "-vn",
    "-vv",
    "-e",
    "A=1",
    "--wait",
    "--wait=",
    "--wait=-1",
    "-w-1",
    "--verbose",
    "--verbose=x",
    "-x",
    "--x",
    "-z",
    "--zz",
    "-",
    "--",
    "a",
    "b c",
    "--allow",
    "--allow=y",
    "---x",
    "--=x",
    "-v=1",
    "--env=K=V",
    "-ez",
    "--__proto__",
    "--constructor",
    "-",
  ];
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const outcome = (f: () => { values: object; positionals: string[] }) => {
    try {
      const r = f();
      return JSON.stringify([{ ...r.values }, r.positionals]);
    } catch (err) {
      return `error: ${(err as Error).message}`;
    }
  };
  for (let i = 0; i < 4000; i++) {
    const args = Array.from(
      { length: rand(6) },
      () => pool[rand(pool.length)]!,
    );
    assertEquals(
      outcome(() => parseStrict(args, options)),
      outcome(() =>
        parseArgs({ args, options, strict: true, allowPositionals: true })
      ),
      JSON.stringify(args),
    );
  }
});
