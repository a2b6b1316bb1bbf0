/**
 * A timer index value (the timers bucket): when a sleeping session's
 * earliest timer falls due, as text an operator reads with `nats kv get`,
 * an ISO time (`2026-12-04T03:40:17.123Z`) for a whole millisecond, plain
 * decimal milliseconds for a fraction (virtual clocks give them), which an
 * ISO time would round. Values an older version wrote (a msgpack number)
 * still read. The single bytes `0`..`9` are read as text: as msgpack they
 * would be 48..57 ms from the epoch, which no real clock is at.
 */
import { decode } from '../bus/codec.js';
import { DecodeError } from '../bus/errors.js';

const utf8 = new TextEncoder();
const ascii = new TextDecoder();

/** The furthest a Date reaches either side of the epoch (ms). */
const DATE_RANGE = 8.64e15;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const DECIMAL = /^-?\d+(\.\d+)?(e[+-]?\d+)?$/;

export function encodeDue(due: number): Uint8Array {
  if (!Number.isFinite(due)) throw new RangeError(`a timer is due at a finite time, got ${due}`);
  const whole = Number.isInteger(due) && due >= 0 && due <= DATE_RANGE;
  return utf8.encode(whole ? new Date(due).toISOString() : String(due));
}

/** The time in ms from the epoch; DecodeError for a value that is none of the forms above. */
export function decodeDue(value: Uint8Array, where: string): number {
  const printable = value.length > 0 && value.every((b) => b >= 0x20 && b < 0x7f);
  if (printable) {
    const text = ascii.decode(value);
    if (ISO.test(text)) {
      const ms = Date.parse(text);
      if (Number.isFinite(ms)) return ms;
    } else if (DECIMAL.test(text)) {
      const ms = Number(text);
      if (Number.isFinite(ms)) return ms;
    }
    // A printable value in neither form may still be msgpack (a short string, say): it is not a time either way.
  }
  const due: unknown = decode(value, { where });
  if (typeof due === 'number' && Number.isFinite(due)) return due;
  throw new DecodeError(where, 'not a time (ISO, decimal milliseconds, or a msgpack number)');
}
