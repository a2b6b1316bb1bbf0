import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CachedDocument, DEFAULT_CACHE_SIZE, DocumentCache } from '../../internal.js';
import { encode } from '../../bus/codec.js';
import { EncodeError } from '../../bus/errors.js';

const sizeOf = (entry: CachedDocument): number =>
  encode({ seq: entry.seq, document: entry.document, state: entry.state }).byteLength;

/** An entry whose encoding is exactly `bytes` long (for bytes >= 30). */
function entryOf(seq: number, bytes: number): CachedDocument {
  const base = { seq, document: { text: '' }, state: 'open' };
  const overhead = sizeOf(base);
  // str8 up to 255 characters adds one length byte over fixstr (up to 31), str16 two.
  let pad = bytes - overhead;
  if (pad > 31) pad -= 1;
  if (pad > 255) pad -= 1;
  const entry = { ...base, document: { text: 'x'.repeat(pad) } };
  expect(sizeOf(entry)).toBe(bytes);
  return entry;
}

const ids = (cache: DocumentCache): string[] => cache.entries().map((e) => e.id);

describe('DocumentCache', () => {
  it('defaults to 20 MB and refuses a bad budget', () => {
    expect(new DocumentCache().cacheSize).toBe(DEFAULT_CACHE_SIZE);
    expect(DEFAULT_CACHE_SIZE).toBe(20 * 1024 * 1024);
    expect(() => new DocumentCache({ cacheSize: -1 })).toThrow(RangeError);
    expect(() => new DocumentCache({ cacheSize: 1.5 })).toThrow(RangeError);
    expect(() => new DocumentCache({ cacheSize: '1' as never })).toThrow(TypeError);
  });

  it('evicts the least recently used first, and get() protects an entry', () => {
    const cache = new DocumentCache({ cacheSize: 300 });
    for (const id of ['a', 'b', 'c']) expect(cache.set('app', id, entryOf(1, 100))).toBe('stored');
    expect(cache.bytes).toBe(300);
    expect(cache.get('app', 'a')?.seq).toBe(1);
    expect(ids(cache)).toEqual(['b', 'c', 'a']);
    cache.set('app', 'd', entryOf(1, 100));
    expect(ids(cache)).toEqual(['c', 'a', 'd']);
    // peek does not protect: c stays least recent and goes next.
    cache.peek('app', 'c');
    cache.set('app', 'e', entryOf(1, 150));
    expect(ids(cache)).toEqual(['d', 'e']);
    expect(cache.bytes).toBe(250);
    expect(cache.size).toBe(2);
  });

  it('refuses an entry larger than the whole budget and drops the older copy', () => {
    const cache = new DocumentCache({ cacheSize: 200 });
    cache.set('app', 'a', entryOf(1, 100));
    cache.set('app', 'b', entryOf(1, 100));
    expect(cache.set('app', 'a', entryOf(2, 201))).toBe('too-large');
    expect(cache.peek('app', 'a')).toBeUndefined();
    expect(ids(cache)).toEqual(['b']);
    expect(cache.bytes).toBe(100);
    expect(cache.set('app', 'c', entryOf(1, 200))).toBe('stored');
    expect(ids(cache)).toEqual(['c']);
  });

  it('keeps the newer seq unless forced', () => {
    const cache = new DocumentCache();
    cache.set('app', 'a', { seq: 5, document: { n: 5 }, state: 's' });
    expect(cache.set('app', 'a', { seq: 4, document: { n: 4 }, state: 's' })).toBe('not-newer');
    expect(cache.set('app', 'a', { seq: 5, document: { n: 0 }, state: 's' })).toBe('not-newer');
    expect(cache.peek('app', 'a')?.document).toEqual({ n: 5 });
    expect(cache.set('app', 'a', { seq: 3, document: { n: 3 }, state: 's' }, { force: true })).toBe('stored');
    expect(cache.peek('app', 'a')).toEqual({ seq: 3, document: { n: 3 }, state: 's' });
    expect(cache.set('app', 'a', { seq: 6, document: { n: 6 }, state: 't' })).toBe('stored');
    expect(cache.peek('app', 'a')).toEqual({ seq: 6, document: { n: 6 }, state: 't' });
  });

  it('keeps sessions apart whatever their ids hold', () => {
    const cache = new DocumentCache();
    cache.set('a', 'b/c', { seq: 1, document: 1, state: null });
    cache.set('a/b', 'c', { seq: 1, document: 2, state: null });
    expect(cache.peek('a', 'b/c')?.document).toBe(1);
    expect(cache.peek('a/b', 'c')?.document).toBe(2);
    expect(cache.entries()).toEqual([
      { app: 'a', id: 'b/c', seq: 1 },
      { app: 'a/b', id: 'c', seq: 1 },
    ]);
  });

  it('refuses a value outside the codec model and an invalid seq, changing nothing', () => {
    const cache = new DocumentCache();
    expect(() => cache.set('app', 'a', { seq: 1, document: new Map(), state: null })).toThrow(EncodeError);
    expect(() => cache.set('app', 'a', { seq: -1, document: {}, state: null })).toThrow(RangeError);
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  describe('applyPatch', () => {
    function seeded(): DocumentCache {
      const cache = new DocumentCache();
      cache.set('app', 'a', { seq: 3, document: { items: ['x'], total: 1 }, state: 'open' });
      return cache;
    }

    it('applies a patch made from the held seq', () => {
      const cache = seeded();
      const outcome = cache.applyPatch('app', 'a', {
        seq: 4,
        prev: 3,
        ops: [
          { op: 'add', path: '/items/-', value: 'y' },
          { op: 'replace', path: '/total', value: 2 },
        ],
      });
      expect(outcome).toBe('applied');
      expect(cache.peek('app', 'a')).toEqual({ seq: 4, document: { items: ['x', 'y'], total: 2 }, state: 'open' });
    });

    it('reports absent, stale and gap, and keeps the entry unchanged', () => {
      const cache = seeded();
      const before = cache.peek('app', 'a');
      const ops = [{ op: 'replace', path: '/total', value: 9 }] as const;
      expect(cache.applyPatch('app', 'b', { seq: 4, prev: 3, ops })).toBe('absent');
      expect(cache.applyPatch('app', 'a', { seq: 3, prev: 2, ops })).toBe('stale');
      expect(cache.applyPatch('app', 'a', { seq: 2, prev: 1, ops })).toBe('stale');
      expect(cache.applyPatch('app', 'a', { seq: 6, prev: 5, ops })).toBe('gap');
      expect(cache.applyPatch('app', 'a', { seq: 5, prev: 2, ops })).toBe('gap');
      expect(cache.peek('app', 'a')).toBe(before);
      expect(cache.size).toBe(1);
    });

    it('drops an entry the ops do not apply to', () => {
      const cache = seeded();
      const bytes = cache.bytes;
      expect(cache.applyPatch('app', 'a', { seq: 4, prev: 3, ops: [{ op: 'test', path: '/total', value: 7 }] })).toBe(
        'failed',
      );
      expect(cache.peek('app', 'a')).toBeUndefined();
      cache.set('app', 'a', { seq: 3, document: { items: [] }, state: 'open' });
      expect(cache.bytes).toBeLessThan(bytes);
      expect(cache.applyPatch('app', 'a', { seq: 4, prev: 3, ops: [{ op: 'remove', path: '/missing/deep' }] })).toBe(
        'failed',
      );
      expect(cache.size).toBe(0);
      expect(cache.bytes).toBe(0);
    });

    it('never mutates a document a caller holds, nor the patch', () => {
      const cache = new DocumentCache();
      const document = { list: [{ n: 1 }], meta: { tag: 'a' } };
      cache.set('app', 'a', { seq: 1, document, state: null });
      const held = cache.get('app', 'a')!;
      const value = { n: 2 };
      const ops = [
        { op: 'add', path: '/list/-', value },
        { op: 'replace', path: '/list/0/n', value: 10 },
        { op: 'replace', path: '/meta/tag', value: 'b' },
      ] as const;
      expect(cache.applyPatch('app', 'a', { seq: 2, prev: 1, ops })).toBe('applied');
      expect(document).toEqual({ list: [{ n: 1 }], meta: { tag: 'a' } });
      expect(held).toEqual({ seq: 1, document: { list: [{ n: 1 }], meta: { tag: 'a' } }, state: null });
      // The next patch changes the copy, not the value the first patch carried.
      cache.applyPatch('app', 'a', { seq: 3, prev: 2, ops: [{ op: 'replace', path: '/list/1/n', value: 20 }] });
      expect(value).toEqual({ n: 2 });
      expect(cache.peek('app', 'a')?.document).toEqual({ list: [{ n: 10 }, { n: 20 }], meta: { tag: 'b' } });
    });

    it('keeps bytes exact after a patch and a delete, and leaves recency alone', () => {
      const cache = new DocumentCache({ cacheSize: 1_000 });
      cache.set('app', 'a', { seq: 1, document: { text: 'short' }, state: 's' });
      cache.set('app', 'b', { seq: 1, document: { text: 'other' }, state: 's' });
      expect(
        cache.applyPatch('app', 'a', {
          seq: 2,
          prev: 1,
          ops: [{ op: 'replace', path: '/text', value: 'y'.repeat(300) }],
        }),
      ).toBe('applied');
      expect(ids(cache)).toEqual(['a', 'b']);
      const total = () => cache.entries().reduce((sum, e) => sum + sizeOf(cache.peek(e.app, e.id)!), 0);
      expect(cache.bytes).toBe(total());
      expect(cache.delete('app', 'a')).toBe(true);
      expect(cache.delete('app', 'a')).toBe(false);
      expect(cache.bytes).toBe(total());
      expect(cache.bytes).toBe(sizeOf({ seq: 1, document: { text: 'other' }, state: 's' }));
      cache.clear();
      expect(cache.size).toBe(0);
      expect(cache.bytes).toBe(0);
    });

    it('evicts others, or the entry itself, when a patch grows it past the budget', () => {
      const cache = new DocumentCache({ cacheSize: 300 });
      cache.set('app', 'a', entryOf(1, 100));
      cache.set('app', 'b', entryOf(1, 100));
      cache.set('app', 'c', entryOf(1, 100));
      expect(
        cache.applyPatch('app', 'c', {
          seq: 2,
          prev: 1,
          ops: [{ op: 'replace', path: '/document/text', value: 'z'.repeat(150) }],
        }),
      ).toBe('failed');
      // Patches address the document, not the entry.
      expect(
        cache.applyPatch('app', 'b', {
          seq: 2,
          prev: 1,
          ops: [{ op: 'replace', path: '/text', value: 'z'.repeat(250) }],
        }),
      ).toBe('applied');
      expect(ids(cache)).toEqual(['b']);
      expect(
        cache.applyPatch('app', 'b', {
          seq: 3,
          prev: 2,
          ops: [{ op: 'replace', path: '/text', value: 'z'.repeat(400) }],
        }),
      ).toBe('applied');
      expect(cache.size).toBe(0);
      expect(cache.bytes).toBe(0);
    });
  });

  it('property: bytes never exceed the budget and equal the sum of entry sizes', () => {
    const id = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
    const doc = fc.record({ text: fc.string({ maxLength: 120 }), n: fc.integer() });
    const command = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), id, seq: fc.nat(20), document: doc, force: fc.boolean() }),
      fc.record({ kind: fc.constant('get' as const), id }),
      fc.record({ kind: fc.constant('delete' as const), id }),
      fc.record({
        kind: fc.constant('patch' as const),
        id,
        seq: fc.nat(20),
        prev: fc.nat(20),
        text: fc.string({ maxLength: 200 }),
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 600 }), fc.array(command, { maxLength: 60 }), (cacheSize, commands) => {
        const cache = new DocumentCache({ cacheSize });
        for (const c of commands) {
          if (c.kind === 'set') {
            const entry = { seq: c.seq, document: c.document, state: 'open' };
            const outcome = cache.set('app', c.id, entry, { force: c.force });
            // What was just stored is the most recent entry and is never its own victim.
            if (outcome === 'stored') expect(cache.entries().at(-1)?.id).toBe(c.id);
            if (outcome === 'too-large') expect(sizeOf(entry)).toBeGreaterThan(cacheSize);
          } else if (c.kind === 'get') cache.get('app', c.id);
          else if (c.kind === 'delete') cache.delete('app', c.id);
          else
            cache.applyPatch('app', c.id, {
              seq: c.seq,
              prev: c.prev,
              ops: [{ op: 'replace', path: '/text', value: c.text }],
            });
          const entries = cache.entries();
          expect(cache.bytes).toBeLessThanOrEqual(cacheSize);
          expect(cache.size).toBe(entries.length);
          expect(cache.bytes).toBe(entries.reduce((sum, e) => sum + sizeOf(cache.peek(e.app, e.id)!), 0));
        }
      }),
      { numRuns: 300 },
    );
  });
});
