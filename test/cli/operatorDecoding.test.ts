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

  it("a multi-session transaction's intent, abort and record are explained, not called unreadable", () => {
    const meta = { time: Date.UTC(2026, 0, 1), cmdId: 'c1', client: 'teller#1' };
    const intent = decodeEntry(entry(encode({ v: 1, intent: { tx: 'tx-1', at: { app: 'counter', id: 'home' } } })));
    expect(intent.events).toEqual([]);
    expect(intent.error).toBeUndefined();
    expect(intent.note).toMatch(/intent of transaction tx-1.*counter\/home/);
    const abort = decodeEntry(entry(encode({ v: 1, abort: 'tx-1' })));
    expect(abort.note).toMatch(/abort of transaction tx-1/);
    const record = decodeEntry(
      entry(
        encode({
          v: 1,
          events: [{ seq: 4, event: { type: 'ADD', by: 1, meta } }],
          tx: {
            id: 'tx-2',
            parts: [
              { app: 'counter', id: 'other', intent: 5, events: [{ seq: 1, event: { type: 'ADD', by: 1, meta } }] },
            ],
          },
        }),
      ),
    );
    expect(record.events.map((e) => e.seq)).toEqual([4]);
    expect(record.note).toMatch(/transaction tx-2, with events for counter\/other \(1\)/);
    expect(decodeEntry(entry(encode({ v: 1, intent: { tx: 'tx-1' } }))).error).toMatch(/no coordinator/);
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
