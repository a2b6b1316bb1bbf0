/**
 * Documents compared as clients see them: after the codec's round trip (a
 * Map stays a Map, undefined keys go), key order ignored. A difference is
 * named by its first path, so a violation says where two documents part.
 */
import { isDeepStrictEqual } from 'node:util';
import { decode, encode } from '../../internal.js';

/** As a client would read it back; a value the codec refuses is kept as it is. */
export function asRead(value: unknown): unknown {
  try {
    return decode(encode(value));
  } catch {
    return value;
  }
}

export function sameDocument(a: unknown, b: unknown): boolean {
  // Equal as they are, equal after the round trip too: only a difference needs the codec to judge it.
  return isDeepStrictEqual(a, b) || isDeepStrictEqual(asRead(a), asRead(b));
}

/** The first place two documents differ, as a JSON pointer with both values (`/balance: 500 ≠ 700`); undefined when equal. */
export function firstDifference(a: unknown, b: unknown): string | undefined {
  return isDeepStrictEqual(a, b) ? undefined : differ(asRead(a), asRead(b), '');
}

function differ(a: unknown, b: unknown, path: string): string | undefined {
  if (isDeepStrictEqual(a, b)) return undefined;
  const plain = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const d = differ(a[i], b[i], `${path}/${i}`);
      if (d !== undefined) return d;
    }
  } else if (plain(a) && plain(b)) {
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const d = differ(a[key], b[key], `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`);
      if (d !== undefined) return d;
    }
  }
  return `${path === '' ? '/' : path}: ${show(a)} ≠ ${show(b)}`;
}

function show(v: unknown): string {
  if (v === undefined) return 'absent';
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
