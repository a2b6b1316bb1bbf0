import { isUtf8 } from 'node:buffer';
import { Packr, type Options } from 'msgpackr';
import { DecodeError, EncodeError, PayloadTooLargeError } from './errors.js';

/**
 * The wire format of every cohort body: plain MessagePack that any decoder
 * in any language reads, so two processes never need to share state (no
 * msgpackr records, no structured clone, no private extensions).
 *
 * The value model, and what happens outside it:
 * - plain objects (own enumerable string keys; symbol keys and
 *   non-enumerable properties are not seen, as with JSON), arrays, strings,
 *   booleans, null and finite or non-finite numbers round-trip. `-0`
 *   travels as the integer 0.
 * - integers above 2^32 are written as float64, so safe integers come back
 *   as numbers; a `bigint` in [-2^63, 2^64) travels as int64/uint64 and
 *   comes back as a `bigint` (so do int64/uint64 written by other encoders).
 * - `Date` travels as the MessagePack timestamp extension (-1), with
 *   millisecond precision. `Uint8Array` (and Node's `Buffer`) travels as
 *   bin and always comes back as a plain `Uint8Array` that owns its bytes.
 * - an object property whose value is `undefined` is dropped, as with JSON,
 *   so optional fields need no ceremony.
 * - refused with `EncodeError`, because they would otherwise change on the
 *   way: `undefined` anywhere else (array element or hole, the root), Map,
 *   Set, any other class instance, functions, symbols, bigints outside 64
 *   bits, invalid dates, strings with lone surrogates, the key
 *   `__proto__`, cycles and nesting deeper than `maxDepth`.
 * - refused with `DecodeError`: anything that is not exactly one such value
 *   (empty, truncated, trailing bytes), non-string map keys, invalid UTF-8,
 *   extension types other than a valid timestamp, the byte 0xc1, and
 *   nesting deeper than `maxDepth`.
 */
export const CODEC = {
  format: 'msgpack',
  library: 'msgpackr',
  packr: {
    useRecords: false,
    variableMapSize: true,
    moreTypes: false,
    structuredClone: false,
    bundleStrings: false,
    useTimestamp32: false,
    encodeUndefinedAsNil: false,
    largeBigIntToFloat: false,
    largeBigIntToString: false,
    useBigIntExtension: false,
    mapsAsObjects: true,
    int64AsType: 'bigint',
    copyBuffers: true,
  },
  undefinedProperties: 'dropped',
  timestampExtension: -1,
} as const satisfies { packr: Options } & Record<string, unknown>;

/** Containers nested inside one another, the root container counting as 1. */
export const DEFAULT_MAX_DEPTH = 64;
/** Beyond this the recursive encoder and decoder would risk the call stack. */
export const MAX_DEPTH_LIMIT = 1000;

export interface EncodeOptions {
  /** Refuse (PayloadTooLargeError) an encoding longer than this many bytes. */
  maxBytes?: number;
  /** Names the body in errors, e.g. "command body". */
  where?: string;
  maxDepth?: number;
}

export interface DecodeOptions {
  maxDepth?: number;
  /** Names the body in errors, e.g. "journal entry 17". */
  where?: string;
}

// Two packers with one wire format: msgpackr's undefined-skipping writer is
// slower, so it is used only for values that actually hold an undefined property.
const packr = new Packr({ ...CODEC.packr });
const skippingPackr = new Packr({ ...CODEC.packr, skipValues: [undefined] } as Options);

/**
 * Encodes `value` in the fixed wire format, or throws EncodeError naming
 * where the value is not representable. The result views a slab msgpackr
 * shares between encodings (no copy): slice() it before transferring its buffer.
 */
export function encode(value: unknown, options?: EncodeOptions): Uint8Array {
  const maxDepth = checkedMaxDepth(options?.maxDepth);
  const walk: Walk = { maxDepth, keys: [], stack: [], hasUndefinedProperty: false };
  check(value, 0, walk);
  const packed = (walk.hasUndefinedProperty ? skippingPackr : packr).pack(value);
  // msgpackr hands out a Buffer view; callers get a plain Uint8Array.
  const bytes = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  const maxBytes = options?.maxBytes;
  if (maxBytes !== undefined && bytes.byteLength > maxBytes) {
    throw new PayloadTooLargeError(bytes.byteLength, maxBytes, options?.where ?? 'body');
  }
  return bytes;
}

/** Decodes exactly one value, or throws DecodeError: no input bytes cause any other error. */
export function decode(bytes: Uint8Array, options?: DecodeOptions): unknown {
  const where = options?.where ?? 'body';
  const maxDepth = checkedMaxDepth(options?.maxDepth);
  if (!(bytes instanceof Uint8Array)) throw new DecodeError(where, 'not a Uint8Array');
  // A fresh view: msgpackr caches a DataView on its input, and a Buffer input
  // would make it return Buffers for bin values.
  const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  scan(view, maxDepth, where);
  try {
    return packr.unpack(view);
  } catch (error) {
    // scan() accepts only what msgpackr reads back faithfully; this is a backstop.
    throw new DecodeError(where, error instanceof Error ? error.message : String(error), { cause: error });
  }
}

function checkedMaxDepth(maxDepth: number | undefined): number {
  if (maxDepth === undefined) return DEFAULT_MAX_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 1 || maxDepth > MAX_DEPTH_LIMIT) {
    throw new RangeError(`maxDepth must be an integer from 1 to ${MAX_DEPTH_LIMIT}, got ${maxDepth}`);
  }
  return maxDepth;
}

// ---------------------------------------------------------------- encode side

interface Walk {
  readonly maxDepth: number;
  /** keys[d] leads from the container at depth d to its child; read only to build an error path. */
  readonly keys: (string | number)[];
  /** stack[d] is the container at depth d + 1; read only to tell a cycle from deep nesting. */
  readonly stack: object[];
  hasUndefinedProperty: boolean;
}

const MIN_INT64 = -(2n ** 63n);
const MAX_UINT64 = 2n ** 64n - 1n;
const isWellFormed = (String.prototype as unknown as { isWellFormed(this: string): boolean }).isWellFormed;

/**
 * One validating walk over the value msgpackr is about to write, mirroring
 * its dispatch, so nothing it would silently change gets through. No copy.
 */
function check(value: unknown, depth: number, walk: Walk): void {
  switch (typeof value) {
    case 'string':
      if (!isWellFormed.call(value)) fail(walk, depth, 'string holds a lone surrogate, which UTF-8 cannot carry');
      return;
    case 'number':
    case 'boolean':
      return;
    case 'bigint':
      if (value < MIN_INT64 || value > MAX_UINT64) fail(walk, depth, 'bigint does not fit in 64 bits');
      return;
    case 'undefined':
      fail(walk, depth, 'undefined is only allowed as an object property value (where it is dropped)');
    case 'object':
      break;
    default:
      fail(walk, depth, `${typeof value} is not supported`);
  }
  if (value === null) return;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    enter(value, depth, walk);
    const record = value as Record<string, unknown>;
    // for-in rides V8's enum cache (Object.keys allocates); it also yields
    // inherited enumerable keys, which only makes the check stricter.
    for (const key in record) {
      walk.keys[depth] = key;
      if (key === '__proto__') fail(walk, depth + 1, "the key '__proto__' is not supported");
      if (!isWellFormed.call(key)) fail(walk, depth + 1, 'key holds a lone surrogate, which UTF-8 cannot carry');
      const child = record[key];
      const type = typeof child;
      // Inline the commonest leaves: a call per number is measurable on small bodies.
      if (type === 'number' || type === 'boolean' || child === null) continue;
      if (child === undefined) walk.hasUndefinedProperty = true;
      else check(child, depth + 1, walk);
    }
    return;
  }
  if (proto === Array.prototype) {
    enter(value, depth, walk);
    const array = value as unknown[];
    for (let i = 0; i < array.length; i++) {
      walk.keys[depth] = i;
      const child = array[i];
      const type = typeof child;
      if (type === 'number' || type === 'boolean' || child === null) continue;
      check(child, depth + 1, walk);
    }
    return;
  }
  if (proto === Uint8Array.prototype || proto === Buffer.prototype) return;
  if (proto === Date.prototype) {
    if (Number.isNaN((value as Date).getTime())) fail(walk, depth, 'invalid Date');
    return;
  }
  fail(walk, depth, refusedClass(value as object));
}

function enter(container: object, depth: number, walk: Walk): void {
  if (depth >= walk.maxDepth) {
    walk.stack[depth] = container;
    const repeat = firstRepeat(walk.stack, depth);
    if (repeat >= 0) fail(walk, repeat, 'cyclic reference');
    fail(walk, depth, `nested deeper than ${walk.maxDepth} levels`);
  }
  walk.stack[depth] = container;
}

/** Index of the first container on the path that is also one of its own ancestors, or -1. */
function firstRepeat(stack: readonly object[], depth: number): number {
  const seen = new Set<object>();
  for (let d = 0; d <= depth; d++) {
    const container = stack[d]!;
    if (seen.has(container)) return d;
    seen.add(container);
  }
  return -1;
}

function refusedClass(value: object): string {
  if (value instanceof Map) return 'Map is not supported; use a plain object or an array of entries';
  if (value instanceof Set) return 'Set is not supported; use an array';
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return `${value.constructor.name} is not supported; only Uint8Array travels as binary`;
  }
  if (Array.isArray(value)) return 'array subclasses are not supported; use a plain array';
  const name = typeof value.constructor === 'function' && value.constructor.name !== '' ? value.constructor.name : 'anonymous';
  return `instances of ${name} are not supported; use plain objects`;
}

function fail(walk: Walk, depth: number, reason: string): never {
  throw new EncodeError(formatPath(walk.keys, depth), reason);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function formatPath(keys: readonly (string | number)[], depth: number): string {
  let path = '$';
  for (let d = 0; d < depth; d++) {
    const key = keys[d]!;
    if (typeof key === 'number') path += `[${key}]`;
    else path += IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  }
  return path;
}

// ---------------------------------------------------------------- decode side

const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f]; // "__proto__"
/** JavaScript dates end 8.64e15 ms either side of the epoch. */
const MAX_DATE_SECONDS = 8.64e12;

/**
 * Walks the MessagePack structure without recursion and without building
 * values, so hostile input (deep nesting, huge declared lengths, foreign
 * extensions, trailing bytes) is refused before msgpackr reads it.
 * Everything it accepts, msgpackr decodes into the value model above.
 */
function scan(bytes: Uint8Array, maxDepth: number, where: string): void {
  const end = bytes.length;
  if (end === 0) throw new DecodeError(where, 'empty input');
  // left[d] counts the items still to come in the open container at depth d + 1
  // (a map counts keys and values); isMap[d] says which kind it is.
  const left: number[] = [];
  const isMap: boolean[] = [];
  let depth = 0;
  let pos = 0;
  for (;;) {
    if (pos >= end) throw truncated(where, pos);
    let isKey = false;
    if (depth > 0) {
      const d = depth - 1;
      isKey = isMap[d]! && left[d]! % 2 === 0;
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
        case 0xc4: pos = blob(bytes, pos + 2, bytes[at]!, where); break;
        case 0xc5: pos = blob(bytes, pos + 3, u16(bytes, at), where); break;
        case 0xc6: pos = blob(bytes, pos + 5, u32(bytes, at), where); break;
        case 0xc7: pos = ext(bytes, pos + 2, bytes[at]!, where); break;
        case 0xc8: pos = ext(bytes, pos + 3, u16(bytes, at), where); break;
        case 0xc9: pos = ext(bytes, pos + 5, u32(bytes, at), where); break;
        case 0xd4: pos = ext(bytes, at, 1, where); break;
        case 0xd5: pos = ext(bytes, at, 2, where); break;
        case 0xd6: pos = ext(bytes, at, 4, where); break;
        case 0xd7: pos = ext(bytes, at, 8, where); break;
        case 0xd8: pos = ext(bytes, at, 16, where); break;
        case 0xd9: pos = string(bytes, pos + 2, bytes[at]!, isKey, where); break;
        case 0xda: pos = string(bytes, pos + 3, u16(bytes, at), isKey, where); break;
        case 0xdb: pos = string(bytes, pos + 5, u32(bytes, at), isKey, where); break;
        case 0xdc: count = u16(bytes, at); pos += 3; break;
        case 0xdd: count = u32(bytes, at); pos += 5; break;
        case 0xde: count = u16(bytes, at) * 2; map = true; pos += 3; break;
        case 0xdf: count = u32(bytes, at) * 2; map = true; pos += 5; break;
        default: pos += header; // nil, booleans, floats and integers: fixed size
      }
    }
    if (count >= 0) {
      if (depth >= maxDepth) throw new DecodeError(where, `nesting deeper than ${maxDepth} levels at byte ${pos}`);
      // Every item takes at least one byte: a larger count cannot be satisfied.
      if (count > end - pos) throw truncated(where, pos);
      if (count > 0) {
        left[depth] = count;
        isMap[depth] = map;
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
  1, 0, 1, 1, 2, 3, 5, 2, 3, 5, 5, 9, 2, 3, 5, 9, // c0 nil, c1, bool, bin, ext, float, uint
  2, 3, 5, 9, 3, 4, 6, 10, 18, 2, 3, 5, 3, 5, 3, 5, // d0 int, fixext (whole item), str, array, map
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
      if (!isUtf8(bytes.subarray(i, stop))) throw new DecodeError(where, `string that is not valid UTF-8 at byte ${start}`);
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
    if (u32(bytes, data) >>> 2 >= 1e9) throw new DecodeError(where, `timestamp nanoseconds out of range at byte ${start}`);
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
