import {
  BufferedReader,
  encodeFrame,
  encodeJsonHeaderFrame,
  HeaderEncodingError,
  HeaderJsonError,
  JsonFrameDecoder,
  JsonFrameDecoderStream,
  type JsonFrameEvent,
  JsonHeaderDecoder,
  JsonHeaderDecoderStream,
  OversizeFrameError,
  PrefixRangeError,
  TruncatedFrameError,
} from "../../lib/frame/mod.ts";
import {
  assertEquals,
  assertOk,
  assertRejects,
  assertThrows,
} from "../../lib/_assert.ts";
import { concat } from "./_util.ts";

const te = new TextEncoder();

function events(dec: JsonHeaderDecoder): JsonFrameEvent[] {
  const out: JsonFrameEvent[] = [];
  for (let e = dec.next(); e !== null; e = dec.next()) out.push(e);
  return out;
}

/** A raw JSON-header frame with any header text (valid or not). */
function rawFrame(
  headerText: string | Uint8Array,
  body = new Uint8Array(0),
): Uint8Array {
  const h = typeof headerText === "string" ? te.encode(headerText) : headerText;
  return concat([encodeFrame(h), body]);
}

Deno.test("encodeJsonHeaderFrame() writes prefix, UTF-8 header and body in one array", () => {
  const frame = encodeJsonHeaderFrame({ total_size: 2 }, te.encode("hi"));
  assertEquals(frame.buffer.byteLength, frame.length);
  assertEquals(
    frame.toHex(),
    "00000010" + te.encode('{"total_size":2}').toHex() + "6869",
  );
  assertEquals(
    encodeJsonHeaderFrame({ total_size: 2 }, te.encode("hi"), {
      format: "varint",
    }).toHex(),
    "10" + te.encode('{"total_size":2}').toHex() + "6869",
  );
});

Deno.test("encodeJsonHeaderFrame() counts UTF-8 bytes of non-ASCII headers exactly", () => {
  for (
    const name of [
      "é",
      "日本語",
      "😀 emoji",
      "lone \ud800 surrogate",
      "mixé😀\u07ff\u0800",
    ]
  ) {
    const frame = encodeJsonHeaderFrame({ filename: name, total_size: 0 });
    const dec = new JsonHeaderDecoder();
    dec.push(frame);
    const [h, end] = events(dec);
    assertEquals(h, {
      type: "header",
      header: { filename: name, total_size: 0 },
      totalSize: 0,
    });
    assertEquals(end, { type: "end" });
    assertEquals(dec.offset, frame.length);
  }
});

Deno.test("encodeJsonHeaderFrame() without a body returns prefix and header only", () => {
  const head = encodeJsonHeaderFrame({ filename: "a.txt", total_size: 5 });
  const dec = new JsonHeaderDecoder();
  dec.push(head);
  assertEquals(events(dec)[0]?.type, "header");
  dec.push(te.encode("hello"));
  assertEquals(events(dec), [{ type: "body", chunk: te.encode("hello") }, {
    type: "end",
  }]);
});

Deno.test("encodeJsonHeaderFrame() refuses a bad total_size, a mismatched body and a large header", () => {
  for (const bad of [-1, 1.5, 2 ** 53, NaN, "3"]) {
    assertThrows(
      () => encodeJsonHeaderFrame({ total_size: bad as number }),
      HeaderJsonError,
      "cannot encode frame: total_size must be a non-negative safe integer",
    );
  }
  assertThrows(
    () => encodeJsonHeaderFrame({ total_size: 3 }, new Uint8Array(2)),
    HeaderJsonError,
    "total_size is 3 but the body has 2 bytes",
  );
  assertThrows(
    () =>
      encodeJsonHeaderFrame(
        { pad: "x".repeat(100), total_size: 0 },
        undefined,
        { maxHeaderSize: 100 },
      ),
    OversizeFrameError,
    "exceeds maxHeaderSize 100",
  );
});

Deno.test("JsonHeaderDecoder reads the seeds' frames: u32le prefix, Python json.dumps spacing", () => {
  const header = '{"filename": "a.txt", "md5": "xxfdxxx", "total_size": 5}';
  const h = te.encode(header);
  const wire = concat([
    encodeFrame(h, { format: "u32le" }),
    te.encode("hello"),
  ]);
  const dec = new JsonHeaderDecoder({ format: "u32le", seedCompat: true });
  dec.push(wire);
  assertEquals(events(dec), [
    {
      type: "header",
      header: { filename: "a.txt", md5: "xxfdxxx", total_size: 5 },
      totalSize: 5,
    },
    { type: "body", chunk: te.encode("hello") },
    { type: "end" },
  ]);
  dec.end();
});

Deno.test("JsonHeaderDecoder streams body pieces as views without buffering", () => {
  const body = new Uint8Array(100).map((_, i) => i);
  const wire = encodeJsonHeaderFrame({ total_size: 100 }, body);
  const dec = new JsonHeaderDecoder({ maxBodySize: 100 });
  const headerEnd = wire.length - 100;
  dec.push(wire.subarray(0, headerEnd + 30));
  dec.push(wire.subarray(headerEnd + 30));
  const [, a, b, end] = events(dec);
  assertOk(a?.type === "body" && b?.type === "body");
  assertEquals(a.chunk.length, 30);
  assertEquals(b.chunk.length, 70);
  assertOk(a.chunk.buffer === wire.buffer && b.chunk.buffer === wire.buffer);
  assertEquals(end, { type: "end" });
});

Deno.test("JsonHeaderDecoder: each header error is typed and gives the frame offset", () => {
  const good = encodeJsonHeaderFrame({ total_size: 1 }, new Uint8Array([1])); // 20 bytes
  const cases: [Uint8Array, new (...a: never[]) => Error, string][] = [
    [
      rawFrame(new Uint8Array([0x7b, 0xff, 0x7d])),
      HeaderEncodingError,
      "expected a UTF-8 JSON header, got invalid UTF-8",
    ],
    [
      rawFrame("{total_size: 1}"),
      HeaderJsonError,
      "expected a JSON object header, got invalid JSON",
    ],
    [
      rawFrame(""),
      HeaderJsonError,
      "expected a JSON object header, got invalid JSON",
    ],
    [
      rawFrame("[1]"),
      HeaderJsonError,
      "expected a JSON object header, got an array",
    ],
    [
      rawFrame("null"),
      HeaderJsonError,
      "expected a JSON object header, got null",
    ],
    [
      rawFrame("42"),
      HeaderJsonError,
      "expected a JSON object header, got number",
    ],
    [
      rawFrame('{"filename":"a"}'),
      HeaderJsonError,
      "expected total_size as a non-negative safe integer, got no total_size",
    ],
    [
      rawFrame('{"total_size":-1}'),
      HeaderJsonError,
      "expected total_size as a non-negative safe integer, got -1",
    ],
    [
      rawFrame('{"total_size":1.5}'),
      HeaderJsonError,
      "expected total_size as a non-negative safe integer, got 1.5",
    ],
    [
      rawFrame('{"total_size":"5"}'),
      HeaderJsonError,
      'expected total_size as a non-negative safe integer, got "5"',
    ],
    [
      rawFrame('{"total_size":9007199254740992}'),
      HeaderJsonError,
      "expected total_size as a non-negative safe integer, got 9007199254740992",
    ],
  ];
  for (const [frame, cls, message] of cases) {
    const dec = new JsonHeaderDecoder();
    dec.push(concat([good, frame]));
    assertEquals(dec.next()?.type, "header");
    assertEquals(dec.next()?.type, "body");
    assertEquals(dec.next()?.type, "end");
    const err = assertThrows(
      () => dec.next(),
      cls as never,
      `cannot decode frame at byte ${good.length}: ${message}`,
    );
    assertEquals((err as HeaderJsonError).offset, good.length);
    assertThrows(() => dec.next(), cls as never); // poisoned
  }
});

Deno.test("JsonHeaderDecoder refuses an oversize header or body before allocating", () => {
  const dec = new JsonHeaderDecoder({ maxHeaderSize: 10 });
  dec.push(new Uint8Array([0, 0, 0, 11]));
  assertThrows(
    () => dec.next(),
    OversizeFrameError,
    "expected a header length of at most 10, got 11",
  );
  const body = new JsonHeaderDecoder({ maxBodySize: 4 });
  body.push(encodeJsonHeaderFrame({ total_size: 5 }));
  assertThrows(
    () => body.next(),
    OversizeFrameError,
    "expected a total_size of at most 4, got 5",
  );
  const seed = new JsonHeaderDecoder({ format: "u32le", seedCompat: true });
  seed.push(Uint8Array.fromHex("ffffffff"));
  assertThrows(() => seed.next(), PrefixRangeError);
});

Deno.test("JsonHeaderDecoder.end() reports truncation in the prefix, header or body", () => {
  const wire = encodeJsonHeaderFrame({ total_size: 4 }, new Uint8Array(4));
  const headerEnd = wire.length - 4;
  const cases: [number, string][] = [
    [2, "expected a u32be prefix of 4 bytes, got 2 bytes then end of input"],
    [
      6,
      `expected a JSON header of ${
        headerEnd - 4
      } bytes, got 2 bytes then end of input`,
    ],
    [
      headerEnd + 1,
      "expected a body of 4 bytes, got 1 bytes then end of input",
    ],
  ];
  for (const [at, message] of cases) {
    const dec = new JsonHeaderDecoder();
    dec.push(wire.subarray(0, at));
    events(dec);
    assertThrows(() => dec.end(), TruncatedFrameError, `at byte 0: ${message}`);
  }
  const whole = new JsonHeaderDecoder();
  whole.push(wire);
  whole.end(); // events still waiting: no error
  assertEquals(events(whole).map((e) => e.type), ["header", "body", "end"]);
});

Deno.test("JsonFrameDecoder gathers bodies and caps them at 16 MiB by default", () => {
  const frames = [
    encodeJsonHeaderFrame({ n: 1, total_size: 3 }, new Uint8Array([1, 2, 3])),
    encodeJsonHeaderFrame({ n: 2, total_size: 0 }),
  ];
  const wire = concat(frames);
  const dec = new JsonFrameDecoder();
  dec.push(wire.subarray(0, 25));
  dec.push(wire.subarray(25));
  assertEquals(dec.next(), {
    header: { n: 1, total_size: 3 },
    body: new Uint8Array([1, 2, 3]),
  });
  assertEquals(dec.next(), {
    header: { n: 2, total_size: 0 },
    body: new Uint8Array(0),
  });
  assertEquals(dec.next(), null);
  dec.end();
  const big = new JsonFrameDecoder();
  big.push(encodeJsonHeaderFrame({ total_size: 16 * 1024 * 1024 + 1 }));
  assertThrows(() => big.next(), OversizeFrameError, "at most 16777216");
  assertThrows(
    () => new JsonFrameDecoder({ maxBodySize: Infinity }),
    TypeError,
  );
});

Deno.test("JsonHeaderDecoderStream and JsonFrameDecoderStream decode and report truncation", async () => {
  const wire = concat([
    encodeJsonHeaderFrame({ total_size: 2 }, new Uint8Array([5, 6])),
    encodeJsonHeaderFrame({ total_size: 1 }, new Uint8Array([7])),
  ]);
  const types = await Array.fromAsync(
    ReadableStream.from([wire.subarray(0, 7), wire.subarray(7)]).pipeThrough(
      new JsonHeaderDecoderStream(),
    ),
    (e) => e.type,
  );
  assertEquals(types, ["header", "body", "end", "header", "body", "end"]);
  const frames = await Array.fromAsync(
    ReadableStream.from([wire]).pipeThrough(new JsonFrameDecoderStream()),
  );
  assertEquals(frames.map((f) => f.body), [
    new Uint8Array([5, 6]),
    new Uint8Array([7]),
  ]);
  await assertRejects(
    () =>
      Array.fromAsync(
        ReadableStream.from([wire.subarray(0, wire.length - 1)]).pipeThrough(
          new JsonFrameDecoderStream(),
        ),
      ),
    TruncatedFrameError,
    "at byte 22",
  );
});

const hasPython = (() => {
  try {
    return new Deno.Command("python3", { args: ["-c", "1"] }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "BufferedReader reads frames written by a python3 seed-style sender",
  ignore: !hasPython,
  async fn() {
    const script = `
import json, struct, sys
out = sys.stdout.buffer
for msg in [b"hello", b"", "\\u4f60\\u597d".encode("utf-8")]:
    out.write(struct.pack('i', len(msg)))
    out.write(msg)
body = b"x" * 100000
header = json.dumps({'filename': 'a.txt', 'md5': 'xxfdxxx', 'total_size': len(body)}).encode('utf-8')
out.write(struct.pack('i', len(header)))
out.write(header)
out.write(body)
out.flush()
`;
    const child = new Deno.Command("python3", {
      args: ["-c", script],
      stdout: "piped",
    }).spawn();
    const reader = child.stdout.getReader({ mode: "byob" });
    const r = new BufferedReader({
      async read(p) {
        const { value, done } = await reader.read(new Uint8Array(p.length));
        if (done || !value) return null;
        p.set(value);
        return value.length;
      },
    });
    const opts = { seedCompat: true };
    assertEquals(await r.readFrame("u32le", 1024, opts), te.encode("hello"));
    assertEquals(await r.readFrame("u32le", 1024, opts), new Uint8Array(0));
    assertEquals(
      new TextDecoder().decode((await r.readFrame("u32le", 1024, opts))!),
      "你好",
    );
    const frame = await r.readJsonFrame({ format: "u32le", seedCompat: true });
    assertEquals(frame?.header, {
      filename: "a.txt",
      md5: "xxfdxxx",
      total_size: 100000,
    });
    assertOk(frame?.body.every((b) => b === 0x78));
    assertEquals(await r.readFrame("u32le", 1024, opts), null);
    reader.releaseLock();
    assertEquals((await child.status).code, 0);
  },
});
