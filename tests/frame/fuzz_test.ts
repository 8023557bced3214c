// Fuzzing: random and mutated byte streams into every decoder give only the
// typed FrameError subclasses, never a hang, never an allocation beyond the
// configured caps.
import fc from "fast-check";
import {
  BufferedReader,
  encodeFrame,
  encodeJsonHeaderFrame,
  FrameDecoder,
  FrameError,
  JsonFrameDecoder,
  JsonHeaderDecoder,
  PREFIX_FORMATS,
} from "../../lib/frame/mod.ts";
import type { PrefixFormat } from "../../lib/frame/format.ts";
import { assertEquals, assertOk } from "../../lib/_assert.ts";
import {
  concat,
  cut,
  memoryReader,
  withAllocationLimit,
  withAllocationLimitAsync,
} from "./_util.ts";

const MAX_FRAME = 1024;
const MAX_HEADER = 256;
const MAX_BODY = 2048;

/** A decoder under test, reduced to push/next/end. */
interface Fuzzable {
  push(c: Uint8Array): void;
  next(): unknown;
  end(): void;
}

function decoders(
  format: PrefixFormat,
  seedCompat: boolean,
): [string, () => Fuzzable, number][] {
  return [
    [
      "FrameDecoder",
      () => new FrameDecoder({ format, maxFrameSize: MAX_FRAME, seedCompat }),
      MAX_FRAME,
    ],
    [
      "JsonHeaderDecoder",
      () =>
        new JsonHeaderDecoder({
          format,
          maxHeaderSize: MAX_HEADER,
          seedCompat,
        }),
      MAX_HEADER,
    ],
    [
      "JsonFrameDecoder",
      () =>
        new JsonFrameDecoder({
          format,
          maxHeaderSize: MAX_HEADER,
          maxBodySize: MAX_BODY,
          seedCompat,
        }),
      MAX_BODY,
    ],
  ];
}

function assertTypedFrameError(err: unknown): asserts err is FrameError {
  assertOk(err instanceof FrameError, `untyped error: ${err}`);
  assertOk(err.constructor !== FrameError, "base FrameError thrown");
  assertOk(
    /^cannot decode frame at byte \d+: expected /.test(err.message),
    err.message,
  );
}

/** Feeds every chunk, draining; returns the thrown error, if any. */
function run(
  dec: Fuzzable,
  chunks: Uint8Array[],
  inputLength: number,
): unknown {
  let outputs = 0;
  try {
    for (const c of chunks) {
      dec.push(c);
      while (dec.next() !== null) {
        // Every output consumes at least one byte, except one `end` event
        // per header: 3 per byte bounds any decoder that makes progress.
        assertOk(++outputs <= 3 * inputLength + 3, "decoder does not progress");
      }
    }
    dec.end();
    while (dec.next() !== null) assertOk(++outputs <= 3 * inputLength + 3);
  } catch (err) {
    return err;
  }
  return undefined;
}

function checkOne(
  make: () => Fuzzable,
  cap: number,
  chunks: Uint8Array[],
  length: number,
) {
  const dec = make();
  let err: unknown;
  withAllocationLimit(cap, () => {
    err = run(dec, chunks, length);
  });
  if (err === undefined) return;
  assertTypedFrameError(err);
  assertOk(err.offset >= 0 && err.offset <= length);
  // Poisoned: every later call throws the same error.
  for (
    const call of [
      () => dec.next(),
      () => dec.end(),
      () => dec.push(new Uint8Array([0])),
    ]
  ) {
    try {
      call();
      assertOk(false, "call after an error did not throw");
    } catch (again) {
      assertOk(again === err, `different error after poisoning: ${again}`);
    }
  }
}

const cuts = fc.oneof(
  fc.constant([1]),
  fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 4 }),
  fc.constant([1 << 20]),
);

/** A valid stream of frames for `format`, then mutated. */
function validStream(format: PrefixFormat) {
  const frame = fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((p) => encodeFrame(p, { format })),
    fc.uint8Array({ maxLength: 64 }).map((p) =>
      encodeJsonHeaderFrame({ name: "x", total_size: p.length }, p, { format })
    ),
  );
  return fc.array(frame, { minLength: 1, maxLength: 6 }).map(concat);
}

const mutation = fc.oneof(
  fc.record({
    kind: fc.constant("set" as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }),
  }),
);

type Mutation = {
  kind: string;
  at: number;
  value?: number;
  bytes?: Uint8Array;
};

function mutate(bytes: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let out: Uint8Array = bytes.slice();
  for (const m of ms) {
    if (out.length === 0) break;
    const at = m.at % (out.length + 1);
    if (m.kind === "set") {
      out[at % out.length] = m.value!;
    } else if (m.kind === "cut") {
      out = out.slice(0, at);
    } else {
      out = concat([out.subarray(0, at), m.bytes!, out.subarray(at)]);
    }
  }
  return out;
}

for (const format of PREFIX_FORMATS) {
  for (const seedCompat of [false, true]) {
    for (const [name, make, cap] of decoders(format, seedCompat)) {
      Deno.test(`${name} fuzz: random bytes give only typed errors (${format}${seedCompat ? ", seedCompat" : ""})`, () => {
        fc.assert(
          fc.property(
            fc.uint8Array({ maxLength: 600, size: "large" }),
            cuts,
            (bytes, sizes) => {
              checkOne(make, cap, cut(bytes, sizes), bytes.length);
            },
          ),
          { numRuns: 1000 },
        );
      });
    }
  }
  for (const [name, make, cap] of decoders(format, false)) {
    Deno.test(`${name} fuzz: mutated valid streams give frames or typed errors (${format})`, () => {
      fc.assert(
        fc.property(
          validStream(format),
          fc.array(mutation, { minLength: 1, maxLength: 3 }),
          cuts,
          (wire, ms, sizes) => {
            const bytes = mutate(wire, ms);
            checkOne(make, cap, cut(bytes, sizes), bytes.length);
          },
        ),
        { numRuns: 1000 },
      );
    });
  }
}

Deno.test("BufferedReader fuzz: random and mutated input gives frames, null or typed errors", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...PREFIX_FORMATS),
      fc.oneof(
        fc.uint8Array({ maxLength: 600, size: "large" }),
        fc.constantFrom(...PREFIX_FORMATS).chain((f) =>
          fc.tuple(
            validStream(f),
            fc.array(mutation, { minLength: 1, maxLength: 3 }),
          ).map(([w, ms]) => mutate(w, ms))
        ),
      ),
      cuts,
      fc.boolean(),
      async (format, bytes, sizes, json) => {
        const r = new BufferedReader(memoryReader(cut(bytes, sizes)), {
          bufferSize: 64,
        });
        let reads = 0;
        try {
          await withAllocationLimitAsync(MAX_BODY, async () => {
            for (;;) {
              assertOk(++reads <= bytes.length + 1, "reader does not progress");
              const got = json
                ? await r.readJsonFrame({
                  format,
                  maxHeaderSize: MAX_HEADER,
                  maxBodySize: MAX_BODY,
                })
                : await r.readFrame(format, MAX_FRAME);
              if (got === null) break;
            }
          });
          assertEquals(r.offset, bytes.length);
        } catch (err) {
          assertTypedFrameError(err);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("decoders refuse huge declared lengths before allocating", () => {
  const huge: [PrefixFormat, number[]][] = [
    ["u16be", [0xff, 0xff]],
    ["u32be", [0xff, 0xff, 0xff, 0xff]],
    ["u32le", [0xff, 0xff, 0xff, 0x7f]],
    ["u64be", [0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ["varint", [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]],
  ];
  for (const [format, prefix] of huge) {
    for (const [, make] of decoders(format, false)) {
      const dec = make();
      let err: unknown;
      const largest = withAllocationLimit(64, () => {
        dec.push(new Uint8Array([...prefix, 1, 2, 3]));
        err = run(dec, [], 0);
      });
      assertTypedFrameError(err);
      assertEquals(err.name, "OversizeFrameError");
      assertOk(largest <= 64, `allocated ${largest}`);
    }
  }
});
