import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import type { Headers } from '../types.js';

const EMPTY: Headers = Object.freeze({});

export function toMsgHdrs(headers: Headers | undefined): MsgHdrs | undefined {
  if (headers === undefined) return undefined;
  let h: MsgHdrs | undefined;
  for (const name in headers) {
    h ??= natsHeaders();
    h.set(name, headers[name]!);
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
