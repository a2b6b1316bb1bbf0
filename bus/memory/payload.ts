import { PayloadTooLargeError } from '../errors.js';
import { validateHeaders } from '../names.js';
import type { Headers } from '../types.js';
import { wireSize } from '../wireSize.js';

export { wireSize } from '../wireSize.js';

/**
 * What travels: headers as nats.js would send them and bodies the server owns,
 * so size limits agree with a real server and nobody shares a buffer.
 */

/** A message as the server holds it: `data` is its own copy, never handed out. */
export interface WireMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: Headers;
  readonly reply?: string;
}

const NO_HEADERS: Headers = Object.freeze({});

/** Validates and freezes a copy; values are trimmed, as nats.js trims them on set. */
export function normalizeHeaders(headers: Headers | undefined): Headers {
  validateHeaders(headers);
  if (headers === undefined) return NO_HEADERS;
  const names = Object.keys(headers);
  if (names.length === 0) return NO_HEADERS;
  const copy: Record<string, string> = {};
  for (const name of names) copy[name] = headers[name]!.trim();
  return Object.freeze(copy);
}

export function checkPayload(data: Uint8Array, headers: Headers, limit: number, where: string): void {
  const size = wireSize(data, headers);
  if (size > limit) throw new PayloadTooLargeError(size, limit, where);
}

/** A fresh Uint8Array (never a Buffer view) so no caller can alias another's bytes. */
export function copyBytes(data: Uint8Array): Uint8Array {
  return new Uint8Array(data);
}
