/**
 * JSON on the wire, for people: requests typed by hand (`nats req -H
 * Content-Type:application/json`) and the replies to them, and the micro
 * service endpoints. msgpack stays every client's format; this is the
 * readable side door, held to the same value model (bus/codec.ts).
 */
import { DecodeError, EncodeError } from '../bus/errors.js';
import { encode } from '../bus/codec.js';
import type { Headers } from '../bus/types.js';

export const CONTENT_TYPE_HEADER = 'Content-Type';

/** The request says its body is JSON (header names compared without case, parameters such as charset allowed). */
export function isJsonRequest(headers: Headers): boolean {
  // Every request asks: names of another length are passed over without a lower-cased copy each.
  for (const name in headers) {
    if (name.length !== 12 || !Object.hasOwn(headers, name) || name.toLowerCase() !== 'content-type') continue;
    return headers[name]!.split(';', 1)[0]!.trim().toLowerCase() === 'application/json';
  }
  return false;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One JSON value, or undefined for an empty body. DecodeError for invalid
 * UTF-8 or JSON, and for what msgpack could not carry either (a `__proto__`
 * key, nesting deeper than the codec allows, lone surrogates): a JSON
 * request becomes the same value a msgpack one would be.
 */
export function parseJson(data: Uint8Array, where: string): unknown {
  if (data.byteLength === 0) return undefined;
  let value: unknown;
  try {
    const text = utf8.decode(data);
    if (text.trim() === '') return undefined;
    value = JSON.parse(text) as unknown;
  } catch (err) {
    throw new DecodeError(where, `not JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  try {
    encode(value, { where });
  } catch (err) {
    if (err instanceof EncodeError) throw new DecodeError(where, err.message, { cause: err });
    throw err;
  }
  return value;
}

/**
 * A reply as JSON text. What JSON lacks is spelled out: a bigint as its
 * decimal digits, bytes as base64, a Date as ISO 8601 (its own toJSON).
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    return v;
  });
}

export function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(toJson(value));
}
