import { InvalidNameError } from './errors.js';
import type { Headers } from './types.js';

/**
 * What the server accepts, checked before anything is sent so both bus
 * implementations refuse the same names with the same typed error.
 */

const MAX_SUBJECT_BYTES = 4096; // below the server's default max_control_line
const TOKEN_FORBIDDEN = /[\s\u0000-\u001f\u007f]/;

/**
 * Subjects repeat (a session's command and journal subjects, a shard's
 * filter), so a validated one is remembered: the hot path pays a Set lookup,
 * not a parse. Bounded: cleared when full.
 */
const CACHE_LIMIT = 8192;
const validConcrete = new Set<string>();
const validFilters = new Set<string>();

export function validateSubject(subject: string, options: { wildcards: boolean; kind?: string }): void {
  const cache = options.wildcards ? validFilters : validConcrete;
  if (cache.has(subject)) return;
  parseSubjectTokens(subject, options.wildcards, options.kind ?? 'subject');
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.add(subject);
}

function parseSubjectTokens(subject: string, wildcards: boolean, kind: string): void {
  if (typeof subject !== 'string' || subject.length === 0) throw new InvalidNameError(kind, String(subject), 'empty');
  if (Buffer.byteLength(subject) > MAX_SUBJECT_BYTES) {
    throw new InvalidNameError(kind, subject, `longer than ${MAX_SUBJECT_BYTES} bytes`);
  }
  const tokens = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) throw new InvalidNameError(kind, subject, `empty token at position ${i}`);
    if (TOKEN_FORBIDDEN.test(t))
      throw new InvalidNameError(kind, subject, `whitespace or control character in token ${i}`);
    const wild = t === '*' || t === '>';
    if (wild && !wildcards) throw new InvalidNameError(kind, subject, 'wildcards are not allowed here');
    if (t === '>' && i !== tokens.length - 1) throw new InvalidNameError(kind, subject, "'>' must be the last token");
    if (!wild && (t.includes('*') || t.includes('>'))) {
      throw new InvalidNameError(kind, subject, `'*' or '>' inside token ${i}`);
    }
  }
}

/** Does `subject` (no wildcards) fall under `filter` (wildcards allowed)? */
export function subjectMatches(filter: string, subject: string): boolean {
  if (filter === subject) return true;
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    const ft = f[i];
    if (ft === '>') return s.length > i;
    if (i >= s.length) return false;
    if (ft !== '*' && ft !== s[i]) return false;
  }
  return f.length === s.length;
}

const STREAM_NAME = /^[A-Za-z0-9_-]{1,128}$/;

/** Stream, bucket and queue names. */
export function validateName(kind: string, name: string): void {
  if (typeof name !== 'string' || !STREAM_NAME.test(name)) {
    throw new InvalidNameError(kind, String(name), 'must be 1-128 characters of A-Z a-z 0-9 _ -');
  }
}

const KV_KEY = /^[-/_=.a-zA-Z0-9]+$/;

export function validateKvKey(key: string, options: { wildcards: boolean }): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidNameError('key', String(key), 'empty');
  if (options.wildcards) {
    validateSubject(key, { wildcards: true, kind: 'key pattern' });
    for (const t of key.split('.')) {
      if (t !== '*' && t !== '>' && !KV_KEY.test(t)) {
        throw new InvalidNameError('key pattern', key, 'tokens may hold only A-Z a-z 0-9 - / _ = .');
      }
    }
    return;
  }
  if (!KV_KEY.test(key)) throw new InvalidNameError('key', key, 'may hold only A-Z a-z 0-9 - / _ = .');
  if (key.startsWith('.') || key.endsWith('.')) throw new InvalidNameError('key', key, "may not start or end with '.'");
  validateSubject(key, { wildcards: false, kind: 'key' });
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const LINE_BREAK = /[\r\n]/;

/** One header: the name an HTTP token, the value a string on one line. */
export function validateHeader(name: string, value: unknown): asserts value is string {
  if (!HEADER_NAME.test(name)) throw new InvalidNameError('header name', name, 'must be an HTTP token');
  if (typeof value !== 'string')
    throw new InvalidNameError('header value', String(value), `header ${name} is not a string`);
  if (LINE_BREAK.test(value)) throw new InvalidNameError('header value', value, `header ${name} spans lines`);
}

/** Every own header, in order (a loop over the keys: no array of entries per message). */
export function validateHeaders(headers: Headers | undefined): void {
  if (headers === undefined) return;
  for (const name in headers) if (Object.hasOwn(headers, name)) validateHeader(name, headers[name]);
}
