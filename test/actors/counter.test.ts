import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptCounterError, type Counter } from '../../index.js';
import { createCounter } from '../../internal.js';
import { escapeToken } from '../../bus/subjects.js';
import type { Bus, KvStore } from '../../bus/types.js';
import { busTargets } from '../busTargets.js';

const targets = busTargets();

const text = (value: Uint8Array): string => new TextDecoder().decode(value);

describe.each(targets)('counters ($name)', (target) => {
  const opened: Bus[] = [];
  const buckets: KvStore[] = [];
  let bucket: string;

  afterEach(async () => {
    // Every handle names the same bucket: destroying it once is enough.
    await buckets.splice(0)[0]?.destroy();
    await Promise.all(opened.splice(0).map((b) => b.close()));
  });

  /** One "client": its own bus connection and its own handle on the shared bucket. */
  async function client(): Promise<KvStore> {
    const bus = await target.bus();
    opened.push(bus);
    const kv = await bus.kv({ bucket, storage: 'memory' });
    buckets.push(kv);
    return kv;
  }

  async function clients(n: number): Promise<KvStore[]> {
    bucket = `cohort_t${randomUUID().slice(0, 8)}_counters`;
    const out: KvStore[] = [];
    for (let i = 0; i < n; i++) out.push(await client());
    return out;
  }

  /** `waves` rounds of `perWave` concurrent next() calls; results in call order. */
  async function take(counter: Counter, waves: number, perWave: number): Promise<number[]> {
    const ids: number[] = [];
    for (let w = 0; w < waves; w++)
      ids.push(...(await Promise.all(Array.from({ length: perWave }, () => counter.next()))));
    return ids;
  }

  function expectIncreasing(ids: number[]): void {
    for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
  }

  it('gives 4 clients 2,000 unique ids, each client increasing, with about one reservation per 100', async () => {
    const kvs = await clients(4);
    const name = 'orders.2024/ü';
    const perClient = await Promise.all(kvs.map((kv) => take(createCounter(kv, name), 5, 100)));
    const all = perClient.flat();
    expect(all).toHaveLength(2_000);
    expect(new Set(all).size).toBe(2_000);
    for (const ids of perClient) expectIncreasing(ids);
    // Each write is one revision (failed compare-and-sets store nothing): 20 blocks of 100.
    const entry = (await kvs[0]!.get(escapeToken(name)))!;
    expect(entry.revision).toBe(20);
    expect(text(entry.value)).toBe('2000');
    expect(Math.max(...all)).toBe(2_000);
  });

  it('shares one reservation among concurrent calls of one client', async () => {
    const [kv] = await clients(1);
    const counter = createCounter(kv!, 'shared', { block: 100 });
    const ids = await Promise.all(Array.from({ length: 250 }, () => counter.next()));
    expect(ids).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    const entry = (await kv!.get('shared'))!;
    expect(entry.revision).toBe(3);
    expect(text(entry.value)).toBe('300');
  });

  it('resumes above the high-water mark another counter left', async () => {
    const [a, b] = await clients(2);
    expect(await createCounter(a!, 'resume', { block: 10 }).next()).toBe(1);
    expect(await createCounter(b!, 'resume', { block: 10 }).next()).toBe(11);
  });

  it('consecutive: 4 clients take exactly 1..N with no gaps', async () => {
    const kvs = await clients(4);
    const perClient = await Promise.all(
      kvs.map((kv) => take(createCounter(kv, 'tickets', { consecutive: true }), 5, 10)),
    );
    for (const ids of perClient) expectIncreasing(ids);
    const all = perClient.flat().sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const entry = (await kvs[0]!.get('tickets'))!;
    expect(text(entry.value)).toBe('200');
    expect(entry.revision).toBe(200);
  });

  it.each(['abc', '-5', '1.5', '', ' 7', '99999999999999999'])(
    'refuses a stored %j with CorruptCounterError and overwrites nothing',
    async (stored) => {
      const [kv] = await clients(1);
      const revision = await kv!.put('bad', new TextEncoder().encode(stored));
      const counter = createCounter(kv!, 'bad');
      const results = await Promise.allSettled([counter.next(), counter.next()]);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        const error = (r as PromiseRejectedResult).reason;
        expect(error).toBeInstanceOf(CorruptCounterError);
        expect(error).toMatchObject({ bucket, key: 'bad', value: stored });
      }
      const entry = (await kv!.get('bad'))!;
      expect(entry.revision).toBe(revision);
      expect(text(entry.value)).toBe(stored);
    },
  );
});

describe('counter options', () => {
  it.each([
    [{ block: 0 }, RangeError],
    [{ block: -1 }, RangeError],
    [{ block: 1.5 }, RangeError],
    [{ block: Number.MAX_SAFE_INTEGER + 1 }, RangeError],
    [{ block: NaN }, RangeError],
    [{ block: '10' }, TypeError],
    [{ consecutive: 'yes' }, TypeError],
    [{ consecutive: true, block: 10 }, RangeError],
  ])('refuses %j', (options, error) => {
    expect(() => createCounter(undefined as never, 'x', options as never)).toThrow(error);
  });

  it('refuses a name that is empty or not a string', () => {
    expect(() => createCounter(undefined as never, '')).toThrow(RangeError);
    expect(() => createCounter(undefined as never, 42 as never)).toThrow(TypeError);
  });

  it('accepts consecutive with block 1', () => {
    expect(createCounter(undefined as never, 'x', { consecutive: true, block: 1 }).name).toBe('x');
  });
});
