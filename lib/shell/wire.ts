/**
 * Shell-protocol messages over a connection: a reader that yields frame
 * headers and lets the caller take, stream or skip each body, and a writer
 * that serializes whole frames from concurrent producers (stdout, stderr
 * and control messages share one socket).
 *
 * @module
 */
import { DenocatError } from "../errors.ts";
import { decodePrefix } from "../frame/prefix.ts";
import { BufferedReader, type Reader, type Writer } from "../frame/reader.ts";
import { escapeText } from "../transfer/show.ts";
import {
  decodeError,
  FRAME_HEADER_SIZE,
  MAX_FRAME_LENGTH,
  MsgType,
  ShellProtocolError,
} from "./protocol.ts";

/**
 * An ERROR message received from the peer. Its `message` is the peer's
 * text with every control and reordering character escaped (the same
 * escaping the transfer code applies to names), since it is printed on a
 * terminal: an unauthenticated peer must not be able to send terminal
 * escapes (clipboard writes, titles, screen clears) through it.
 *
 * @example Escapes are shown, not obeyed
 * ```ts
 * import { ShellRemoteError } from "./wire.ts";
 * import { assertEquals } from "../_assert.ts";
 * const e = new ShellRemoteError(2, "busy\x1b]52;c;ZXZpbA==\x07\x1b[2J");
 * assertEquals(e.message, "busy\\u001b]52;c;ZXZpbA==\\u0007\\u001b[2J");
 * assertEquals(e.remoteMessage.length, 24);
 * ```
 */
export class ShellRemoteError extends DenocatError {
  /** The {@linkcode ErrorCode} the peer sent. */
  readonly code: number;
  /** The peer's text as it came (unsafe to print). */
  readonly remoteMessage: string;
  /** Creates the error from the server's ERROR `code` and `message` (escaped). */
  constructor(code: number, message: string) {
    super(escapeText(message), 255);
    this.name = "ShellRemoteError";
    this.code = code;
    this.remoteMessage = message;
  }
}

/** The header of one received message. */
export interface MessageHead {
  /** The type byte. */
  type: number;
  /** Body length in bytes (the frame length minus the type byte). */
  length: number;
}

const discard: Writer = { write: (p) => Promise.resolve(p.length) };

/**
 * Reads messages: `next()` returns a header, then exactly one of `body`,
 * `copyBody` or `skip` must consume its body before the next `next()`.
 *
 * @example Reading a message from bytes
 * ```ts
 * import { MessageReader } from "./wire.ts";
 * import { encodeMessage, MsgType } from "./protocol.ts";
 * import { assertEquals } from "../_assert.ts";
 * const bytes = encodeMessage(MsgType.Stdout, new Uint8Array([1, 2]));
 * let done = false;
 * const src = { read(p: Uint8Array) {
 *   if (done) return Promise.resolve(null);
 *   done = true; p.set(bytes); return Promise.resolve(bytes.length);
 * } };
 * const r = new MessageReader(src);
 * assertEquals(await r.next(), { type: MsgType.Stdout, length: 2 });
 * assertEquals(await r.body(2), new Uint8Array([1, 2]));
 * assertEquals(await r.next(), null);
 * ```
 */
export class MessageReader {
  readonly #br: BufferedReader;
  readonly #head = new Uint8Array(FRAME_HEADER_SIZE);

  constructor(reader: Reader, options: { bufferSize?: number } = {}) {
    this.#br = new BufferedReader(reader, options);
  }

  /**
   * The next message header, or `null` on a clean end of input between
   * messages. A frame longer than `maxLength` (type byte included) is a
   * protocol error, raised before any of its body is read.
   */
  async next(maxLength = MAX_FRAME_LENGTH): Promise<MessageHead | null> {
    const first = await this.#br.readSome(FRAME_HEADER_SIZE);
    if (first === null) return null;
    const got = first.length;
    this.#head.set(first);
    if (got < FRAME_HEADER_SIZE) {
      await this.#br.readInto(this.#head.subarray(got));
    }
    const length = decodePrefix(this.#head, "u32be")!.length;
    if (length < 1 || length > maxLength) {
      throw new ShellProtocolError(
        maxLength < MAX_FRAME_LENGTH && length >= 1 &&
          length <= MAX_FRAME_LENGTH
          ? `protocol error: message of ${length} bytes before authentication (limit ${maxLength})`
          : `protocol error: frame length ${length} out of range (not a denocat shell peer?)`,
      );
    }
    return { type: this.#head[4]!, length: length - 1 };
  }

  /** Reads a body of `n` bytes into a new array. */
  body(n: number): Promise<Uint8Array> {
    return this.#br.readExact(n);
  }

  /** Streams a body of `n` bytes to `w` through the reader's buffer. */
  copyBody(w: Writer, n: number): Promise<void> {
    return this.#br.copyExact(w, n);
  }

  /** Discards a body of `n` bytes. */
  skip(n: number): Promise<void> {
    return this.#br.copyExact(discard, n);
  }

  /**
   * Bytes read from the source but not yet handed out, taken out of this
   * reader (to hand a connection over to a reader with a larger buffer).
   */
  async takeBuffered(): Promise<Uint8Array> {
    const n = this.#br.buffered;
    return n > 0 ? await this.#br.readExact(n) : new Uint8Array(0);
  }

  /**
   * Reads the next message, which must be of `type` (an ERROR becomes a
   * thrown {@linkcode ShellRemoteError}); returns its body. `maxLength` as
   * in {@linkcode next}.
   */
  async expect(
    type: number,
    what: string,
    maxLength = MAX_FRAME_LENGTH,
  ): Promise<Uint8Array> {
    const head = await this.next(maxLength);
    if (head === null) {
      throw new ShellProtocolError(
        `connection closed by the server while waiting for ${what}`,
      );
    }
    const body = await this.body(head.length);
    if (head.type === MsgType.Error) {
      const e = decodeError(body);
      throw new ShellRemoteError(e.code, e.message);
    }
    if (head.type !== type) {
      throw new ShellProtocolError(
        `protocol error: expected ${what}, got message type 0x${
          head.type.toString(16)
        }`,
      );
    }
    return body;
  }
}

/**
 * Writes whole frames one after another, whoever calls: each `send`
 * resolves once its bytes are written, so a producer that awaits it never
 * has more than one frame in flight (backpressure from the socket).
 *
 * @example Usage
 * ```ts
 * import { MessageWriter } from "./wire.ts";
 * import { assertEquals } from "../_assert.ts";
 * const out: number[] = [];
 * const w = new MessageWriter({ write: (p) => (out.push(...p.subarray(0, 1)), Promise.resolve(1)) });
 * await Promise.all([w.send(new Uint8Array([1, 2])), w.send(new Uint8Array([3]))]);
 * assertEquals(out, [1, 2, 3]);
 * ```
 */
export class MessageWriter {
  readonly #w: Writer;
  #tail: Promise<void> = Promise.resolve();
  /** Bytes written so far. */
  written = 0;

  constructor(w: Writer) {
    this.#w = w;
  }

  /** Writes `frame` after every frame sent before it. */
  send(frame: Uint8Array): Promise<void> {
    const p = this.#tail.then(async () => {
      let off = 0;
      while (off < frame.length) {
        off += await this.#w.write(frame.subarray(off));
      }
      this.written += frame.length;
    });
    this.#tail = p.catch(() => {});
    return p;
  }
}
