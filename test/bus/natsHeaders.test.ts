import fc from 'fast-check';
import { MsgHdrsImpl } from '@nats-io/nats-core';
import { MsgImpl } from '@nats-io/nats-core/internal';
import { describe, expect, it } from 'vitest';
import { InvalidNameError } from '../../bus/errors.js';
import { validateHeaders } from '../../bus/names.js';
import { fromMsgHdrs, headersOf, packHeaders } from '../../bus/nats/headers.js';
import type { Headers } from '../../bus/types.js';
import { wireSize } from '../../bus/wireSize.js';

/** What nats.js itself sends for `headers`: its MsgHdrsImpl, set one by one, encoded. */
function natsBytes(headers: Headers): Uint8Array {
  const h = new MsgHdrsImpl();
  for (const [name, value] of Object.entries(headers)) h.set(name, value);
  return h.encode();
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const value = fc.string({ maxLength: 24, unit: 'binary' }).filter((v) => !/[\r\n]/.test(v));

describe('packHeaders', () => {
  it('encodes the bytes nats.js would, and counts them as wireSize does', () => {
    fc.assert(
      fc.property(fc.dictionary(token, value, { minKeys: 1, maxKeys: 8 }), (headers) => {
        const block = packHeaders(headers)!;
        const bytes = block.headers.encode();
        expect(Buffer.from(bytes).toString('latin1')).toBe(Buffer.from(natsBytes(headers)).toString('latin1'));
        expect(block.size).toBe(wireSize(new Uint8Array(0), headers));
      }),
    );
  });

  it('encodes text beyond ASCII as nats.js does (UTF-8, trimmed of any white space)', () => {
    const headers = { 'Cohort-Client': '\u00a0 café ünï 日本 😀\u2003', X: ' ', Y: '' };
    const block = packHeaders(headers)!;
    expect(Buffer.from(block.headers.encode()).equals(Buffer.from(natsBytes(headers)))).toBe(true);
    expect(block.size).toBe(wireSize(new Uint8Array(0), headers));
  });

  it('merges extra headers as a spread would: same names replaced in place, new ones after', () => {
    const headers = { 'Cohort-Type': 'event', 'Nats-Msg-Id': 'from-caller', 'Cohort-Seq': ' 7 ' };
    const extra = { 'Nats-Msg-Id': 'cmd-1', 'Nats-Expected-Last-Subject-Sequence': '41' };
    const merged = { ...headers, ...extra };
    const block = packHeaders(headers, extra)!;
    expect(Buffer.from(block.headers.encode()).toString()).toBe(Buffer.from(natsBytes(merged)).toString());
    expect(Buffer.from(block.headers.encode()).toString()).toBe(
      'NATS/1.0\r\nCohort-Type: event\r\nNats-Msg-Id: cmd-1\r\nCohort-Seq: 7\r\nNats-Expected-Last-Subject-Sequence: 41\r\n\r\n',
    );
    expect(block.size).toBe(wireSize(new Uint8Array(0), merged));
    expect(Buffer.from(packHeaders(undefined, extra)!.headers.encode()).toString()).toBe(
      Buffer.from(natsBytes(extra)).toString(),
    );
  });

  it('is undefined without headers', () => {
    expect(packHeaders(undefined)).toBeUndefined();
    expect(packHeaders({})).toBeUndefined();
    expect(packHeaders({}, {})).toBeUndefined();
  });

  it('refuses what validateHeaders refuses, with the same error', () => {
    const bad: Headers[] = [
      { 'Bad Name': 'v' },
      { Ok: 'line\r\nInjected: yes' },
      { Ok: 'fine', 'Also:Bad': 'v' },
      { Ok: 42 as unknown as string },
    ];
    for (const headers of bad) {
      const packed = thrown(() => packHeaders(headers));
      const checked = thrown(() => validateHeaders(headers));
      expect(packed).toBeInstanceOf(InvalidNameError);
      expect((packed as Error).message).toBe((checked as Error).message);
      // An extra header is checked too.
      expect(() => packHeaders({ Ok: 'v' }, headers)).toThrow(InvalidNameError);
    }
  });

  it('reads and changes as nats.js headers do', () => {
    const h = packHeaders({ 'Cohort-Seq': '7', 'Cohort-Type': 'event' })!.headers;
    expect(h.get('Cohort-Seq')).toBe('7');
    expect(h.has('Cohort-Type')).toBe(true);
    expect(h.keys()).toEqual(['Cohort-Seq', 'Cohort-Type']);
    expect([...h]).toEqual([
      ['Cohort-Seq', ['7']],
      ['Cohort-Type', ['event']],
    ]);
    expect(h.code).toBe(0);
    h.set('Cohort-Seq', '8');
    h.delete('Cohort-Type');
    expect(Buffer.from(h.encode()).toString()).toBe('NATS/1.0\r\nCohort-Seq: 8\r\n\r\n');
  });
});

/** A message as nats.js's parser hands it over: the header block, then the body, in one buffer. */
function received(block: Uint8Array | undefined, body = new Uint8Array([1, 2, 3])): MsgImpl {
  const hdr = block === undefined ? -1 : block.length;
  const rdata = block === undefined ? body : Buffer.concat([block, body]);
  const publisher = { publish: () => undefined };
  return new MsgImpl({ subject: Buffer.from('a.b'), sid: 1, hdr, size: rdata.length }, rdata, publisher);
}

function outcome(fn: () => object): { ok: true; value: [string, unknown][] } | { ok: false; error: string } {
  try {
    return { ok: true, value: Object.entries(fn()) };
  } catch (error) {
    return { ok: false, error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

describe('headersOf', () => {
  it('reads what nats.js decodes, for any block, hostile ones included (its errors too)', () => {
    const piece = fc.constantFrom(
      'Cohort-Type',
      'a',
      ':',
      ': ',
      ' ',
      '\r\n',
      '\r',
      '\n',
      'é',
      '\u0001',
      'x-y',
      '=',
      '\u00a0',
      '7',
    );
    const text = fc.array(piece, { maxLength: 30 }).map((parts) => parts.join(''));
    const block = fc.tuple(fc.constantFrom('NATS/1.0', 'NATS/1.0 503', 'NATS/1.0 408 Timeout', 'junk'), text);
    fc.assert(
      fc.property(block, fc.boolean(), ([status, rest], closed) => {
        const bytes = Buffer.from(`${status}${rest}${closed ? '\r\n\r\n' : ''}`);
        const ours = outcome(() => headersOf(received(bytes)));
        const theirs = outcome(() => fromMsgHdrs(received(bytes).headers));
        expect(ours).toEqual(theirs);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads the headers cohort sends, and none when there are none', () => {
    const sent = packHeaders({ 'Cohort-Type': 'event', 'Cohort-Client': 'web-1#3', 'X-Empty': '' })!;
    const msg = received(sent.headers.encode());
    expect(headersOf(msg)).toEqual({ 'Cohort-Type': 'event', 'Cohort-Client': 'web-1#3', 'X-Empty': '' });
    expect(Buffer.from(msg.data)).toEqual(Buffer.from([1, 2, 3]));
    expect(headersOf(received(undefined))).toEqual({});
    // A repeated name keeps its first place and its last value, as nats.js's decoding does.
    const repeated = Buffer.from('NATS/1.0\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\n');
    expect(Object.entries(headersOf(received(repeated)))).toEqual([
      ['A', '3'],
      ['B', '2'],
    ]);
    // A name nats.js refuses is refused the same way (a typed nats.js error, not a half-read map).
    expect(() => headersOf(received(Buffer.from('NATS/1.0\r\nBad Name: v\r\n\r\n')))).toThrow(/header/);
  });
});
