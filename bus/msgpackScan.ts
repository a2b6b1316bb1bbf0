/**
 * The byte-level check behind decode(): one pass over untrusted input that
 * accepts exactly the MessagePack cohort writes (one value, string map
 * keys, well-formed UTF-8, valid timestamps, no `__proto__` key, bounded
 * nesting) before msgpackr sees a byte, so no input can make it misbehave.
 */
import { isUtf8 } from 'node:buffer';
import { DecodeError } from './errors.js';

const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f]; // "__proto__"
/** JavaScript dates end 8.64e15 ms either side of the epoch. */
const MAX_DATE_SECONDS = 8.64e12;

/** Depths up to codec.ts's MAX_DEPTH_LIMIT scan in these; a deeper limit gets arrays of its own. */
const SHARED_DEPTH = 1000;
const SHARED_LEFT = new Float64Array(SHARED_DEPTH);
const SHARED_IS_MAP = new Uint8Array(SHARED_DEPTH);

/**
 * Walks the MessagePack structure without recursion and without building
 * values, so hostile input (deep nesting, huge declared lengths, foreign
 * extensions, trailing bytes) is refused before msgpackr reads it.
 * Everything it accepts, msgpackr decodes into the value model of codec.ts.
 */
export function scan(bytes: Uint8Array, maxDepth: number, where: string): void {
  const end = bytes.length;
  if (end === 0) throw new DecodeError(where, 'empty input');
  // left[d] counts the items still to come in the open container at depth d + 1
  // (a map counts keys and values); isMap[d] says which kind it is (1: a map).
  // Shared between scans (one runs at a time, start to end, calling no JS): every decode asks.
  const shared = maxDepth <= SHARED_DEPTH;
  const left = shared ? SHARED_LEFT : new Float64Array(maxDepth);
  const isMap = shared ? SHARED_IS_MAP : new Uint8Array(maxDepth);
  let depth = 0;
  let pos = 0;
  for (;;) {
    if (pos >= end) throw truncated(where, pos);
    let isKey = false;
    if (depth > 0) {
      const d = depth - 1;
      isKey = isMap[d] === 1 && left[d]! % 2 === 0;
      left[d]!--;
    }
    const t = bytes[pos]!;
    let count = -1; // items in a container whose header was just read
    let map = false;
    if (isKey && !((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb))) {
      throw new DecodeError(where, `map key that is not a string at byte ${pos}`);
    }
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) {
      pos += 1;
    } else if (t <= 0x8f) {
      count = (t & 0x0f) * 2;
      map = true;
      pos += 1;
    } else if (t <= 0x9f) {
      count = t & 0x0f;
      pos += 1;
    } else if (t <= 0xbf) {
      pos = string(bytes, pos + 1, t & 0x1f, isKey, where);
    } else {
      const header = HEADER[t - 0xc0]!;
      if (header === 0) throw new DecodeError(where, `the never-used byte 0xc1 at byte ${pos}`);
      if (header > end - pos) throw truncated(where, pos);
      const at = pos + 1;
      switch (t) {
        case 0xc4:
          pos = blob(bytes, pos + 2, bytes[at]!, where);
          break;
        case 0xc5:
          pos = blob(bytes, pos + 3, u16(bytes, at), where);
          break;
        case 0xc6:
          pos = blob(bytes, pos + 5, u32(bytes, at), where);
          break;
        case 0xc7:
          pos = ext(bytes, pos + 2, bytes[at]!, where);
          break;
        case 0xc8:
          pos = ext(bytes, pos + 3, u16(bytes, at), where);
          break;
        case 0xc9:
          pos = ext(bytes, pos + 5, u32(bytes, at), where);
          break;
        case 0xd4:
          pos = ext(bytes, at, 1, where);
          break;
        case 0xd5:
          pos = ext(bytes, at, 2, where);
          break;
        case 0xd6:
          pos = ext(bytes, at, 4, where);
          break;
        case 0xd7:
          pos = ext(bytes, at, 8, where);
          break;
        case 0xd8:
          pos = ext(bytes, at, 16, where);
          break;
        case 0xd9:
          pos = string(bytes, pos + 2, bytes[at]!, isKey, where);
          break;
        case 0xda:
          pos = string(bytes, pos + 3, u16(bytes, at), isKey, where);
          break;
        case 0xdb:
          pos = string(bytes, pos + 5, u32(bytes, at), isKey, where);
          break;
        case 0xdc:
          count = u16(bytes, at);
          pos += 3;
          break;
        case 0xdd:
          count = u32(bytes, at);
          pos += 5;
          break;
        case 0xde:
          count = u16(bytes, at) * 2;
          map = true;
          pos += 3;
          break;
        case 0xdf:
          count = u32(bytes, at) * 2;
          map = true;
          pos += 5;
          break;
        default:
          pos += header; // nil, booleans, floats and integers: fixed size
      }
    }
    if (count >= 0) {
      if (depth >= maxDepth) throw new DecodeError(where, `nesting deeper than ${maxDepth} levels at byte ${pos}`);
      // Every item takes at least one byte: a larger count cannot be satisfied.
      if (count > end - pos) throw truncated(where, pos);
      if (count > 0) {
        left[depth] = count;
        isMap[depth] = map ? 1 : 0;
        depth++;
        continue;
      }
    }
    while (depth > 0 && left[depth - 1] === 0) depth--;
    if (depth === 0) break;
  }
  if (pos !== end) throw new DecodeError(where, `${end - pos} trailing byte(s) after a complete value`);
}

/**
 * Bytes from the type byte to the end of the header (fixed-size types: the
 * whole item), for type bytes 0xc0..0xdf; 0 marks 0xc1, which is never used.
 */
const HEADER = [
  1,
  0,
  1,
  1,
  2,
  3,
  5,
  2,
  3,
  5,
  5,
  9,
  2,
  3,
  5,
  9, // c0 nil, c1, bool, bin, ext, float, uint
  2,
  3,
  5,
  9,
  3,
  4,
  6,
  10,
  18,
  2,
  3,
  5,
  3,
  5,
  3,
  5, // d0 int, fixext (whole item), str, array, map
];

const u16 = (bytes: Uint8Array, at: number): number => (bytes[at]! << 8) | bytes[at + 1]!;
const u32 = (bytes: Uint8Array, at: number): number =>
  bytes[at]! * 0x1000000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);

function truncated(where: string, pos: number): DecodeError {
  return new DecodeError(where, `truncated input at byte ${pos}`);
}

function blob(bytes: Uint8Array, start: number, length: number, where: string): number {
  if (length > bytes.length - start) throw truncated(where, start);
  return start + length;
}

function string(bytes: Uint8Array, start: number, length: number, isKey: boolean, where: string): number {
  const stop = blob(bytes, start, length, where);
  for (let i = start; i < stop; i++) {
    if (bytes[i]! >= 0x80) {
      if (!isUtf8(bytes.subarray(i, stop)))
        throw new DecodeError(where, `string that is not valid UTF-8 at byte ${start}`);
      break;
    }
  }
  if (isKey && length === PROTO_KEY.length && PROTO_KEY.every((b, i) => bytes[start + i] === b)) {
    throw new DecodeError(where, `the key '__proto__' at byte ${start}`);
  }
  return stop;
}

/** `start` is the position of the extension's type byte; only a valid timestamp is accepted. */
function ext(bytes: Uint8Array, start: number, length: number, where: string): number {
  const data = start + 1;
  if (1 + length > bytes.length - start) throw truncated(where, start);
  const type = bytes[start]!;
  if (type !== 0xff) throw new DecodeError(where, `extension type ${type > 127 ? type - 256 : type} at byte ${start}`);
  if (length === 8) {
    if (u32(bytes, data) >>> 2 >= 1e9)
      throw new DecodeError(where, `timestamp nanoseconds out of range at byte ${start}`);
  } else if (length === 12) {
    if (u32(bytes, data) >= 1e9) throw new DecodeError(where, `timestamp nanoseconds out of range at byte ${start}`);
    const seconds = (u32(bytes, data + 4) | 0) * 2 ** 32 + u32(bytes, data + 8);
    if (Math.abs(seconds) > MAX_DATE_SECONDS) {
      throw new DecodeError(where, `timestamp outside the range of a JavaScript Date at byte ${start}`);
    }
  } else if (length !== 4) {
    throw new DecodeError(where, `timestamp of ${length} bytes at byte ${start}`);
  }
  return data + length;
}
