import { Packr, type Options } from 'msgpackr';
import { DecodeError, EncodeError, PayloadTooLargeError } from './errors.js';
import { scan } from './msgpackScan.js';

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
  const name =
    typeof value.constructor === 'function' && value.constructor.name !== '' ? value.constructor.name : 'anonymous';
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
