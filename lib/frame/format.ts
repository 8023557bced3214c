/**
 * The names of the length-prefix formats, shared by the encoder and the
 * decoders.
 *
 * @module
 */

/**
 * How a length is written in front of a frame.
 *
 * - `u16be`: 2 bytes, big-endian unsigned (0 to 65535).
 * - `u32be`: 4 bytes, big-endian unsigned (0 to 2^32 - 1). The default.
 * - `u32le`: 4 bytes, little-endian unsigned. Python's `struct.pack('i', n)`
 *   on common machines writes this for 0 <= n < 2^31.
 * - `u64be`: 8 bytes, big-endian unsigned; values beyond 2^53 - 1 are refused.
 * - `varint`: unsigned LEB128, 1 to 8 bytes, 7 bits per byte, low bits
 *   first, high bit set on every byte but the last; at most 2^53 - 1.
 */
export type PrefixFormat = "u16be" | "u32be" | "u32le" | "u64be" | "varint";
