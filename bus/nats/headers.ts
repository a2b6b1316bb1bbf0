import { MsgHdrsImpl, type Match, type Msg, type MsgHdrs } from '@nats-io/nats-core';
import { MsgImpl } from '@nats-io/nats-core/internal';
import { validateHeader } from '../names.js';
import type { Headers } from '../types.js';

const EMPTY: Headers = Object.freeze({});

/**
 * A header block encoded once, as the bytes nats.js's MsgHdrsImpl would
 * encode for the same headers (`NATS/1.0`, then `name: value` lines, values
 * trimmed, in order). A publish only asks for encode(): nats.js's own
 * headers cost a Map, an array per header and a string rebuilt and encoded
 * per publish, several hundred bytes of garbage per journal append. Anything
 * else asked of it reads (and a change rebuilds) a MsgHdrsImpl decoded from
 * the bytes, so it behaves as nats.js's headers do.
 */
export class PackedHeaders implements MsgHdrs {
  #bytes: Uint8Array | undefined;
  #opened: MsgHdrsImpl | undefined;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  #open(): MsgHdrs {
    return (this.#opened ??= MsgHdrsImpl.decode(this.#bytes!));
  }
  #change(): MsgHdrs {
    const h = this.#open();
    this.#bytes = undefined;
    return h;
  }

  encode(): Uint8Array {
    return this.#bytes ?? (this.#open() as MsgHdrsImpl).encode();
  }
  toString(): string {
    return this.#open().toString();
  }
  get hasError(): boolean {
    return this.#open().hasError;
  }
  get status(): string {
    return this.#open().status;
  }
  get code(): number {
    return this.#open().code;
  }
  get description(): string {
    return this.#open().description;
  }
  get(k: string, match?: Match): string {
    return this.#open().get(k, match);
  }
  has(k: string, match?: Match): boolean {
    return this.#open().has(k, match);
  }
  keys(): string[] {
    return this.#open().keys();
  }
  values(k: string, match?: Match): string[] {
    return this.#open().values(k, match);
  }
  last(k: string, match?: Match): string {
    return this.#open().last(k, match);
  }
  set(k: string, v: string, match?: Match): void {
    this.#change().set(k, v, match);
  }
  append(k: string, v: string, match?: Match): void {
    this.#change().append(k, v, match);
  }
  delete(k: string, match?: Match): void {
    this.#change().delete(k, match);
  }
  [Symbol.iterator](): Iterator<[string, string[]]> {
    return this.#open()[Symbol.iterator]();
  }
}

/** A checked, encoded header block, and its size as it counts against max_payload. */
export interface PackedBlock {
  readonly headers: PackedHeaders;
  readonly size: number;
}

const PREAMBLE = 'NATS/1.0';
const CRLF = 13 * 256 + 10;
const COLON_SPACE = 58 * 256 + 32;

/**
 * Checks `headers` (then `extra`, whose names replace the same names of
 * `headers` in place, as `{ ...headers, ...extra }` would) as
 * validateHeaders does, and encodes them: the size wireSize would count and
 * the bytes nats.js would send, written straight into one buffer (no string
 * of the block is built). Undefined when there are none.
 */
export function packHeaders(headers: Headers | undefined, extra?: Headers): PackedBlock | undefined {
  // First the checks and the size; then the bytes, in the same order.
  let size = PREAMBLE.length + 4;
  let any = false;
  if (headers !== undefined) {
    for (const name in headers) {
      if (!Object.hasOwn(headers, name)) continue;
      const value = extra !== undefined && Object.hasOwn(extra, name) ? extra[name] : headers[name];
      validateHeader(name, value);
      size += 4 + Buffer.byteLength(name) + Buffer.byteLength(value.trim());
      any = true;
    }
  }
  if (extra !== undefined) {
    for (const name in extra) {
      if (!Object.hasOwn(extra, name) || (headers !== undefined && Object.hasOwn(headers, name))) continue;
      const value = extra[name];
      validateHeader(name, value);
      size += 4 + Buffer.byteLength(name) + Buffer.byteLength(value.trim());
      any = true;
    }
  }
  if (!any) return undefined;
  // Under 4 KB, allocUnsafe takes its bytes from Node's shared pool rather than a buffer of their own.
  const bytes = Buffer.allocUnsafe(size);
  let at = bytes.write(PREAMBLE, 0, 'latin1');
  const line = (name: string, value: string): void => {
    at = bytes.writeUInt16BE(CRLF, at);
    at += bytes.write(name, at, 'utf8');
    at = bytes.writeUInt16BE(COLON_SPACE, at);
    at += bytes.write(value.trim(), at, 'utf8');
  };
  if (headers !== undefined) {
    for (const name in headers) {
      if (!Object.hasOwn(headers, name)) continue;
      line(name, (extra !== undefined && Object.hasOwn(extra, name) ? extra[name] : headers[name])!);
    }
  }
  if (extra !== undefined) {
    for (const name in extra) {
      if (!Object.hasOwn(extra, name) || (headers !== undefined && Object.hasOwn(headers, name))) continue;
      line(name, extra[name]!);
    }
  }
  at = bytes.writeUInt16BE(CRLF, at);
  bytes.writeUInt16BE(CRLF, at);
  return { headers: new PackedHeaders(bytes), size };
}

/** Last value wins for repeated names (packHeaders writes each name once). */
export function fromMsgHdrs(h: MsgHdrs | undefined): Headers {
  if (h === undefined) return EMPTY;
  const out: Record<string, string> = {};
  for (const [name, values] of h) {
    const v = values[values.length - 1];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

const utf8 = new TextDecoder();

/**
 * The headers of a message off the wire, as fromMsgHdrs(msg.headers) gives
 * them, read from its header block directly: every request a worker serves
 * carries a few, and nats.js's decoding (a split, a Map of arrays, a
 * canonical copy and a key search per header) was the largest allocation
 * left in a send. A block nats.js would refuse (a name outside its
 * characters, a value with a lone line break) is left to nats.js, which
 * throws as before.
 */
export function headersOf(msg: Msg): Headers {
  if (!(msg instanceof MsgImpl) || msg._headers !== undefined) return fromMsgHdrs(msg.headers);
  const end = msg._msg.hdr;
  if (end <= -1) return EMPTY;
  return parseBlock(utf8.decode(msg._rdata.subarray(0, end))) ?? fromMsgHdrs(msg.headers);
}

const LINE_BREAK = /[\r\n]/;

/** A decoded block's headers (the status line skipped, the last value of a name kept); undefined where nats.js would throw. */
function parseBlock(text: string): Headers | undefined {
  const out: Record<string, string> = {};
  let at = text.indexOf('\r\n');
  if (at < 0) return out;
  at += 2;
  while (at < text.length) {
    let end = text.indexOf('\r\n', at);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', at);
    if (colon > -1 && colon < end) {
      for (let i = at; i < colon; i++) {
        const c = text.charCodeAt(i);
        if (c < 33 || c > 126) return undefined;
      }
      const value = text.slice(colon + 1, end).trim();
      if (LINE_BREAK.test(value)) return undefined;
      out[text.slice(at, colon)] = value;
    }
    at = end + 2;
  }
  return out;
}
