import type { Headers } from './types.js';

/**
 * Bytes a message counts against max_payload: its body plus the encoded
 * `NATS/1.0` header block, as nats.js counts them. Both buses check with it,
 * so a body that fits alone but not with its headers is refused the same
 * way on each (PayloadTooLargeError, not a retryable connection error).
 */
export function wireSize(data: Uint8Array, headers: Headers | undefined): number {
  if (headers === undefined) return data.length;
  const names = Object.keys(headers);
  if (names.length === 0) return data.length;
  let block = 'NATS/1.0';
  for (const name of names) block += `\r\n${name}: ${headers[name]!.trim()}`;
  block += '\r\n\r\n';
  return data.length + Buffer.byteLength(block);
}
