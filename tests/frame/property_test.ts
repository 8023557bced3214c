// Property tests: any payloads, cut anywhere, decode back exactly (the
// sticky-packet problem, solved for every format and every decoder).
import fc from "fast-check";
import {
  BufferedReader,
  encodeFrame,
  encodeJsonHeaderFrame,
  FrameDecoder,
  FrameDecoderStream,
  type JsonFrame,
  JsonFrameDecoder,
  JsonHeaderDecoder,
  PREFIX_FORMATS,
} from "../../lib/frame/mod.ts";
import type { PrefixFormat } from "../../lib/frame/format.ts";
import { assertEquals } from "../../lib/_assert.ts";
import { concat, cut, memoryReader } from "./_util.ts";

const RUNS = 3000;
const JSON_RUNS = 2000;

/** Empty and tiny payloads mixed with larger ones (up to 400 bytes). */
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 4 }),
  fc.uint8Array({ maxLength: 400, size: "large" }),
);
const payloads = fc.array(payload, { maxLength: 12, size: "medium" });
/** Chunk sizes to cycle through; `[1]` feeds one byte at a time. */
const cuts = fc.oneof(
  fc.constant([1]),
  fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 6 }),
  fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 6 }),
);

function decodeAll(
  format: PrefixFormat,
  chunks: Uint8Array[],
  drainEachPush: boolean,
): Uint8Array[] {
  const dec = new FrameDecoder({ format });
  const got: Uint8Array[] = [];
  const drain = () => {
    for (let p = dec.next(); p !== null; p = dec.next()) got.push(p);
  };
  for (const c of chunks) {
    dec.push(c);
    if (drainEachPush) drain();
  }
  dec.end();
  drain();
  return got;
}

for (const format of PREFIX_FORMATS) {
  Deno.test(`FrameDecoder round-trips any payloads cut anywhere (${format})`, () => {
    fc.assert(
      fc.property(payloads, cuts, fc.boolean(), (ps, sizes, eager) => {
        const wire = concat(ps.map((p) => encodeFrame(p, { format })));
        const got = decodeAll(format, cut(wire, sizes), eager);
        assertEquals(got, ps);
      }),
      { numRuns: RUNS },
    );
  });
}

Deno.test("FrameDecoder round-trips multi-byte lengths (varint, u16be limit)", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...PREFIX_FORMATS),
      fc.array(fc.integer({ min: 0, max: 65535 }), { maxLength: 4 }),
      fc.integer({ min: 1, max: 40000 }),
      (format, lengths, size) => {
        const ps = lengths.map((n, i) => new Uint8Array(n).fill(i + 1));
        const wire = concat(ps.map((p) => encodeFrame(p, { format })));
        assertEquals(decodeAll(format, cut(wire, [size]), true), ps);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("FrameDecoderStream round-trips any payloads cut anywhere", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...PREFIX_FORMATS),
      payloads,
      cuts,
      async (format, ps, sizes) => {
        const wire = concat(ps.map((p) => encodeFrame(p, { format })));
        const got = await Array.fromAsync(
          ReadableStream.from(cut(wire, sizes)).pipeThrough(
            new FrameDecoderStream({ format }),
          ),
        );
        assertEquals(got, ps);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("BufferedReader.readFrame() round-trips any payloads cut anywhere", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...PREFIX_FORMATS),
      payloads,
      cuts,
      fc.integer({ min: 16, max: 1024 }),
      async (format, ps, sizes, bufferSize) => {
        const wire = concat(ps.map((p) => encodeFrame(p, { format })));
        const r = new BufferedReader(memoryReader(cut(wire, sizes)), {
          bufferSize,
        });
        const got: Uint8Array[] = [];
        for (
          let p = await r.readFrame(format);
          p;
          p = await r.readFrame(format)
        ) {
          got.push(p);
        }
        assertEquals(got, ps);
        assertEquals(r.offset, wire.length);
      },
    ),
    { numRuns: 1000 },
  );
});

// JSON-header frames.
const headerExtras = fc.dictionary(
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 4 },
);
const jsonFrames = fc.array(
  fc.tuple(headerExtras, payload),
  { maxLength: 8, size: "medium" },
);

function expectedFrames(
  frames: [Record<string, unknown>, Uint8Array][],
): JsonFrame[] {
  return frames.map(([extra, body]) => ({
    header: JSON.parse(JSON.stringify({ ...extra, total_size: body.length })),
    body,
  }));
}

for (const format of PREFIX_FORMATS) {
  Deno.test(`JsonHeaderDecoder round-trips any frames cut anywhere (${format})`, () => {
    fc.assert(
      fc.property(jsonFrames, cuts, (frames, sizes) => {
        const wire = concat(
          frames.map(([extra, body]) =>
            encodeJsonHeaderFrame({ ...extra, total_size: body.length }, body, {
              format,
            })
          ),
        );
        const events = new JsonHeaderDecoder({ format });
        const whole = new JsonFrameDecoder({ format });
        const got: JsonFrame[] = [];
        const gathered: JsonFrame[] = [];
        let current:
          | { header: JsonFrame["header"]; parts: Uint8Array[] }
          | null = null;
        for (const c of cut(wire, sizes)) {
          events.push(c);
          whole.push(c);
          for (let e = events.next(); e !== null; e = events.next()) {
            if (e.type === "header") {
              assertEquals(current, null);
              assertEquals(e.totalSize, e.header.total_size);
              current = { header: e.header, parts: [] };
            } else if (e.type === "body") {
              assertEquals(e.chunk.length > 0, true);
              current!.parts.push(e.chunk);
            } else {
              got.push({
                header: current!.header,
                body: concat(current!.parts),
              });
              current = null;
            }
          }
          for (let f = whole.next(); f !== null; f = whole.next()) {
            gathered.push(f);
          }
        }
        events.end();
        whole.end();
        const want = expectedFrames(frames);
        assertEquals(got, want);
        assertEquals(gathered, want);
        assertEquals(events.offset, wire.length);
      }),
      { numRuns: JSON_RUNS },
    );
  });
}

Deno.test("BufferedReader.readJsonFrame() round-trips any frames cut anywhere", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...PREFIX_FORMATS),
      jsonFrames,
      cuts,
      fc.integer({ min: 16, max: 1024 }),
      async (format, frames, sizes, bufferSize) => {
        const wire = concat(
          frames.map(([extra, body]) =>
            encodeJsonHeaderFrame({ ...extra, total_size: body.length }, body, {
              format,
            })
          ),
        );
        const r = new BufferedReader(memoryReader(cut(wire, sizes)), {
          bufferSize,
        });
        const got: JsonFrame[] = [];
        for (
          let f = await r.readJsonFrame({ format });
          f;
          f = await r.readJsonFrame({ format })
        ) {
          got.push(f);
        }
        assertEquals(got, expectedFrames(frames));
      },
    ),
    { numRuns: 1000 },
  );
});
