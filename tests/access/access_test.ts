import fc from "fast-check";
import {
  AccessList,
  buildAccessList,
  formatBlock,
  inBlock,
  parseAccessEntries,
  parseBlock,
  parseIp,
  parseIPv6,
} from "../../lib/access/mod.ts";
import { DenocatError, UsageError } from "../../lib/errors.ts";
import {
  assertEquals,
  assertOk,
  assertRejects,
  assertThrows,
} from "../../lib/_assert.ts";

const hex = (b: Uint8Array | undefined) => b ? b.toHex() : "none";

Deno.test("parseIPv6() reads every textual form", () => {
  const cases: Array<[string, string]> = [
    ["::", "00000000000000000000000000000000"],
    ["::1", "00000000000000000000000000000001"],
    ["1::", "00010000000000000000000000000000"],
    [
      "2001:db8::8:800:200c:417a",
      "20010db8000000000008080020 0c417a".replace(" ", ""),
    ],
    [
      "2001:DB8:0:0:8:800:200C:417A",
      "20010db8000000000008080020 0c417a".replace(" ", ""),
    ],
    ["::ffff:192.0.2.1", "00000000000000000000ffffc0000201"],
    ["64:ff9b::192.0.2.33", "0064ff9b0000000000000000c0000221"],
    ["fe80::1%eth0", "fe800000000000000000000000000001"],
  ];
  for (const [text, want] of cases) {
    assertEquals(hex(parseIPv6(text)), want, text);
  }
  for (
    const bad of [
      "",
      ":",
      ":::",
      "1:::2",
      "1::2::3",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7::8:9",
      "12345::",
      "g::1",
      "::1.2.3",
      "::256.0.0.1",
      "1.2.3.4::",
    ]
  ) assertEquals(parseIPv6(bad), undefined, bad);
});

Deno.test("parseIp() folds IPv4-mapped IPv6 to IPv4 and refuses names and leading zeros", () => {
  assertEquals(hex(parseIp("::ffff:10.1.2.3")), "0a010203");
  assertEquals(hex(parseIp("::FFFF:a01:203")), "0a010203");
  assertEquals(hex(parseIp("[::1]")), "00000000000000000000000000000001");
  assertEquals(parseIp("010.0.0.1"), undefined);
  assertEquals(parseIp("localhost"), undefined);
  assertEquals(parseIp("1.2.3.4.5"), undefined);
});

Deno.test("formatBlock() and parseBlock() round-trip any IPv6 address and prefix", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 128 }),
      (bytes, prefix) => {
        const mapped = bytes.subarray(0, 10).every((b) => b === 0) &&
          bytes[10] === 0xff && bytes[11] === 0xff;
        fc.pre(!mapped);
        const block = parseBlock(
          `${formatBlock({ bytes, prefix: 128 })}/${prefix}`,
        )!;
        assertEquals(block.prefix, prefix);
        // The block holds the address it was made from, and nothing that
        // differs in the first `prefix` bits.
        assertOk(inBlock(bytes, block));
        if (prefix > 0) {
          const other = bytes.slice();
          const bit = prefix - 1;
          other[bit >> 3]! ^= 0x80 >> (bit & 7);
          assertEquals(inBlock(other, block), false);
        }
        // Formatting the network address again gives the same block.
        assertEquals(parseBlock(formatBlock(block)), block);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("inBlock() agrees with integer arithmetic on IPv4 prefixes", () => {
  const toInt = (b: Uint8Array) =>
    ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!;
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.integer({ min: 0, max: 32 }),
      (net, addr, prefix) => {
        const block = parseBlock(`${[...net].join(".")}/${prefix}`)!;
        const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
        const want =
          ((toInt(net) & mask) >>> 0) === ((toInt(addr) & mask) >>> 0);
        assertEquals(inBlock(addr, block), want);
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("parseBlock() clears host bits, maps ::ffff:0:0/96 blocks to IPv4 and refuses bad prefixes", () => {
  assertEquals(formatBlock(parseBlock("192.168.77.9/16")!), "192.168.0.0/16");
  assertEquals(
    formatBlock(parseBlock("::ffff:192.168.0.0/112")!),
    "192.168.0.0/16",
  );
  assertEquals(formatBlock(parseBlock("2001:db8:1:2::/32")!), "2001:db8::/32");
  assertEquals(formatBlock(parseBlock("[::1]/128")!), "::1");
  for (
    const bad of [
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/",
      "10.0.0.0/-1",
      "10.0.0.0/8/8",
    ]
  ) {
    assertThrows(() => parseBlock(bad), RangeError);
  }
  assertEquals(parseBlock("example.test"), undefined);
});

Deno.test("AccessList.allows(): allow entries restrict, deny entries win, families never mix", () => {
  const acl = AccessList.fromBlocks(
    parseAccessEntries("127.0.0.0/8 ::1, 2001:db8::/32", "--allow"),
    parseAccessEntries("127.0.0.66\n2001:db8:bad::/48", "--deny"),
  );
  const cases: Array<[string, boolean]> = [
    ["127.0.0.1", true],
    ["::ffff:127.0.0.1", true], // a dual-stack listener's view of an IPv4 peer
    ["127.0.0.66", false],
    ["::ffff:127.0.0.66", false],
    ["::1", true],
    ["::2", false],
    ["2001:db8:1::5", true],
    ["2001:db8:bad::1", false],
    ["10.0.0.1", false],
    ["::127.0.0.1", false], // IPv4-compatible, not mapped: an IPv6 address
    ["not-an-address", false],
  ];
  for (const [addr, want] of cases) assertEquals(acl.allows(addr), want, addr);
  assertEquals(
    acl.describe(),
    "allow 127.0.0.0/8, ::1, 2001:db8::/32; deny 127.0.0.66, 2001:db8:bad::/48",
  );
});

Deno.test("AccessList: deny only lets everyone else in; no list lets everyone in, Unix peers included", () => {
  const deny = AccessList.fromBlocks(
    [],
    parseAccessEntries("0.0.0.0/0", "--deny"),
  );
  assertEquals(deny.allows("192.0.2.1"), false);
  assertEquals(deny.allows("::ffff:192.0.2.1"), false);
  assertEquals(deny.allows("2001:db8::1"), true);
  assertEquals(deny.allowsAddr({ transport: "unix", path: "/tmp/x" }), false);
  assertEquals(AccessList.open.allows("anything"), true);
  assertEquals(
    AccessList.open.allowsAddr({ transport: "unix", path: "/tmp/x" }),
    true,
  );
  assertEquals(AccessList.open.active, false);
});

Deno.test("parseAccessEntries() names the flag and the bad entry", () => {
  assertThrows(
    () => parseAccessEntries("10.0.0.0/8,10.0.0.0/40", "--allow"),
    UsageError,
    "invalid --allow entry: 10.0.0.0/40 (the prefix must be 0-32)",
  );
  assertThrows(
    () => parseAccessEntries("host/8", "--deny"),
    UsageError,
    "invalid --deny entry: host/8",
  );
  assertThrows(
    () => parseAccessEntries("a..b", "--deny"),
    UsageError,
    "invalid --deny entry: a..b",
  );
  assertEquals(parseAccessEntries("# only a comment\n\n  ", "f").length, 0);
});

Deno.test("buildAccessList() reads files, resolves names at start and fails loudly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/allow`,
      "# office\n192.0.2.0/24\nlocalhost # resolved now\n",
    );
    await Deno.writeTextFile(`${dir}/deny`, "192.0.2.13\n");
    await Deno.writeTextFile(`${dir}/empty`, "# nothing yet\n");
    const acl = await buildAccessList({
      allowFiles: [`${dir}/allow`],
      denyFiles: [`${dir}/deny`],
    });
    assertEquals(acl.allows("192.0.2.200"), true);
    assertEquals(acl.allows("192.0.2.13"), false);
    assertEquals(acl.allows("127.0.0.1"), true); // localhost, from the system resolver
    assertEquals(acl.allows("198.51.100.1"), false);

    await assertRejects(
      () => buildAccessList({ allowFiles: [`${dir}/missing`] }),
      DenocatError,
      `cannot read --allowfile ${dir}/missing: no such file or directory`,
    );
    await assertRejects(
      () => buildAccessList({ allowFiles: [`${dir}/empty`] }),
      UsageError,
      "lists no address",
    );
    await assertRejects(
      () =>
        buildAccessList({
          deny: ["nowhere.invalid"],
          resolve: () =>
            Promise.reject(new Error("getaddrinfo ENOTFOUND nowhere.invalid")),
        }),
      DenocatError,
      "cannot resolve nowhere.invalid (--deny): unknown host",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
