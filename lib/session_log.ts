/**
 * Session recording for the relaying modes: `--hex-dump FILE` (ncat's name)
 * writes both directions as a hex dump, each chunk under a line naming its
 * direction, with offsets counted per direction; `--session-log FILE` writes
 * the raw bytes received from the peer. `--append` appends to either file
 * instead of replacing it.
 *
 * Recording taps the bytes in JavaScript, so a recorded relay never moves
 * onto the native pump threads (the wrapped reader and writer carry no
 * descriptor).
 *
 * @module
 */
import type { Reader, Writer } from "./copy.ts";
import { hexdump } from "./hexdump.ts";
import { netError } from "./errors.ts";

/** Where to record a session. */
export interface SessionLogOptions {
  /** A file for the hex dump of both directions. */
  hexDump?: string;
  /** A file for the raw bytes received from the peer. */
  sessionLog?: string;
  /** Append to the files instead of truncating them. @default {false} */
  append?: boolean;
}

const encoder = new TextEncoder();

/**
 * A connection as the forwarder relays it: what
 * {@linkcode SessionRecorder.tapStream} wraps.
 */
export interface RecordedStream {
  /** Reads into `p`; `null` at end of input. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; resolves with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
  /** Sends FIN; the other direction stays open. */
  closeWrite(): Promise<void>;
  /** Closes at once. */
  close(): void;
}

/** Records one session's bytes; see the module doc. */
export class SessionRecorder implements Disposable {
  #files: { hex: Deno.FsFile | undefined; raw: Deno.FsFile | undefined };
  #label: string;
  #owner: boolean;
  #sentAt = 0;
  #receivedAt = 0;

  private constructor(
    files: { hex: Deno.FsFile | undefined; raw: Deno.FsFile | undefined },
    label = "",
    owner = true,
  ) {
    this.#files = files;
    this.#label = label;
    this.#owner = owner;
  }

  get #hex(): Deno.FsFile | undefined {
    return this.#files.hex;
  }

  get #raw(): Deno.FsFile | undefined {
    return this.#files.raw;
  }

  /**
   * A recorder for one of many connections sharing these files (the
   * forwarder's clients): its own offsets, and `peer` on each chunk's line
   * (`# 127.0.0.1:5000 received 5 bytes at offset 0`). Closing it leaves
   * the files open; they close with this recorder.
   */
  forPeer(peer: string): SessionRecorder {
    return new SessionRecorder(this.#files, `${peer} `, false);
  }

  /**
   * Opens the files `options` names; `undefined` when it names none. Throws
   * a one-line error when a file cannot be opened.
   */
  static open(options: SessionLogOptions): SessionRecorder | undefined {
    if (options.hexDump === undefined && options.sessionLog === undefined) {
      return undefined;
    }
    const mode = {
      write: true,
      create: true,
      append: options.append ?? false,
      truncate: !(options.append ?? false),
    };
    const openOne = (path: string | undefined) => {
      if (path === undefined) return undefined;
      try {
        return Deno.openSync(path, mode);
      } catch (err) {
        throw netError(`open ${path}`, err);
      }
    };
    const hex = openOne(options.hexDump);
    try {
      return new SessionRecorder({ hex, raw: openOne(options.sessionLog) });
    } catch (err) {
      hex?.close();
      throw err;
    }
  }

  /** Records bytes sent to the peer. */
  sent(chunk: Uint8Array): void {
    this.#dump("sent", chunk, this.#sentAt);
    this.#sentAt += chunk.length;
  }

  /** Records bytes received from the peer. */
  received(chunk: Uint8Array): void {
    this.#dump("received", chunk, this.#receivedAt);
    this.#receivedAt += chunk.length;
    if (this.#raw) writeAllSync(this.#raw, chunk);
  }

  #dump(direction: string, chunk: Uint8Array, at: number): void {
    if (!this.#hex || chunk.length === 0) return;
    writeAllSync(
      this.#hex,
      encoder.encode(
        `# ${this.#label}${direction} ${chunk.length} bytes at offset ${at}\n${
          hexdump(chunk, at)
        }`,
      ),
    );
  }

  /** `input` with every chunk read recorded as sent to the peer. */
  tapInput(input: Reader): Reader {
    return {
      read: async (p) => {
        const n = await input.read(p);
        if (n !== null) this.sent(p.subarray(0, n));
        return n;
      },
    };
  }

  /** `output` with every chunk written recorded as received from the peer. */
  tapOutput(output: Writer): Writer {
    return {
      write: async (p) => {
        const n = await output.write(p);
        this.received(p.subarray(0, n));
        return n;
      },
    };
  }

  /**
   * `stream` with every chunk read recorded as received from the peer and
   * every chunk written as sent to it. The wrapper carries no descriptor,
   * so a recorded connection is never handed to the pump threads.
   */
  tapStream(stream: RecordedStream): RecordedStream {
    return {
      read: async (p) => {
        const n = await stream.read(p);
        if (n !== null) this.received(p.subarray(0, n));
        return n;
      },
      write: async (p) => {
        const n = await stream.write(p);
        this.sent(p.subarray(0, n));
        return n;
      },
      closeWrite: () => stream.closeWrite(),
      close: () => stream.close(),
    };
  }

  /** Closes the files (a {@linkcode SessionRecorder.forPeer} one: nothing); idempotent. */
  close(): void {
    if (!this.#owner) return;
    this.#files.hex?.close();
    this.#files.raw?.close();
    this.#files.hex = this.#files.raw = undefined;
  }

  /** Closes the files (the same as {@linkcode SessionRecorder.close}). */
  [Symbol.dispose](): void {
    this.close();
  }
}

function writeAllSync(f: Deno.FsFile, data: Uint8Array): void {
  for (let at = 0; at < data.length;) at += f.writeSync(data.subarray(at));
}
