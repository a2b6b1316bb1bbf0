import { describe, expect, it } from 'vitest';
import { encode } from '../../internal.js';
import { readableLogLine } from '../../harness/localWorker.js';
import { decodeEntry } from '../../cli/sessionRecords.js';

const entry = (data: Uint8Array) => ({ subject: 'cohort.c.jrnl.1.counter.x', seq: 7, data, headers: {}, time: 0 });

describe('what the operator commands decode', () => {
  it('a journal record: each event with its seq, type, fields and meta; anything else is named unreadable', () => {
    const meta = { time: Date.UTC(2026, 0, 1), cmdId: 'c1', client: 'teller#1' };
    const good = decodeEntry(entry(encode({ v: 1, events: [{ seq: 3, event: { type: 'ADD', by: 2, meta } }] })));
    expect(good.events).toEqual([
      { seq: 3, type: 'ADD', client: 'teller#1', cmdId: 'c1', time: '2026-01-01T00:00:00.000Z', data: { by: 2 } },
    ]);
    expect(good.error).toBeUndefined();
    expect(decodeEntry(entry(new Uint8Array([0xc1]))).error).toMatch(/journal entry 7/);
    expect(decodeEntry(entry(encode({ v: 2, events: [] }))).error).toMatch(/version 2 is not 1/);
    expect(decodeEntry(entry(encode({ v: 1, events: [{ seq: 1, event: { type: 'X' } }] }))).error).toMatch(/no meta/);
  });

  it("cohort up's worker lines keep the time, level, message and bindings (pino-pretty)", () => {
    const line = JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 1, 10, 2, 3), pid: 1, worker: 'w2', msg: 'slow' });
    const pretty = readableLogLine(line);
    expect(pretty).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: slow/);
    expect(pretty).toMatch(/"worker":"w2"/);
    expect(pretty).not.toMatch(/"pid"/);
    expect(readableLogLine('not json')).toBe('not json');
  });
});
