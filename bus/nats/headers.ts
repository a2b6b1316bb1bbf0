import { MsgHdrsImpl, type MsgHdrs } from '@nats-io/nats-core';
import type { Headers } from '../types.js';

const EMPTY: Headers = Object.freeze({});

/**
 * Headers already checked by validateHeaders (names HTTP tokens, values one
 * line). They go straight into nats.js's map, trimmed as its own set() would
 * trim them: set() validates and searches the keys again on every call,
 * about 1 µs a header, several per journal append.
 */
export function toMsgHdrs(headers: Headers | undefined): MsgHdrs | undefined {
  if (headers === undefined) return undefined;
  let h: MsgHdrsImpl | undefined;
  for (const name in headers) {
    h ??= new MsgHdrsImpl();
    h.headers.set(name, [headers[name]!.trim()]);
  }
  return h;
}

/** Last value wins for repeated names, matching what `toMsgHdrs` writes. */
export function fromMsgHdrs(h: MsgHdrs | undefined): Headers {
  if (h === undefined) return EMPTY;
  const out: Record<string, string> = {};
  for (const [name, values] of h) {
    const v = values[values.length - 1];
    if (v !== undefined) out[name] = v;
  }
  return out;
}
